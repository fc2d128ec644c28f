//! Scheme M's audit horizon (DESIGN.md §9): the newest step dated before the node's window
//! edge (node time − L_max − 2·skew). Heads name it, buyers draw audits above it, and the
//! store drops the batches and proofs of the steps at or below it, keeping their headers so
//! roots still chain. Every offer a step below the horizon could have added or removed has
//! expired by every honest clock, so nothing a buyer or seller still needs is dropped.

use crate::node::{ListingNode, ServeError, COMPACT_LAG};
use candor_core::{Decode, SignedStep, StepState};
use candor_device::TrustedDevice;

impl<D: TrustedDevice> ListingNode<D> {
    /// The window's edge for scheme M: node time − L_max − 2·skew, node time being the lesser
    /// of the last step's `at` and the clock (as for the B/C window, [`Self::clock`]).
    fn step_edge(&self, state: &StepState) -> u64 {
        self.cert.cert.time.node_edge(state.at().min(self.clock()))
    }

    /// The horizon a head names now: the newest step before the edge, and never below what
    /// the store has pruned (a clock set back does not bring pruned steps back into the
    /// audits). Recorded as served, so pruning stays below it while a retrieve may still
    /// audit above it. None while no step is that old.
    pub(crate) fn head_horizon(&self, state: &StepState) -> Result<Option<SignedStep>, ServeError> {
        let counter = state.prev_counter();
        let _window = self.window.lock().unwrap_or_else(|p| p.into_inner());
        let pruned = self.store.step_horizon(counter)?;
        let Some(h) = state.horizon_below(self.step_edge(state)).max(pruned) else {
            // No horizon: the buyer may audit any step, so none may be pruned within the hold.
            self.serving(counter, state.base());
            return Ok(None);
        };
        self.serving(counter, h);
        let mut cached = self.horizon.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(s) = cached.as_ref().filter(|s| s.header.value == h) {
            return Ok(Some(s.clone()));
        }
        let bytes = self
            .store
            .step_header(counter, h)?
            .ok_or(ServeError::NoSuchStep(h))?;
        let step = SignedStep::from_bytes(&bytes).map_err(|_| ServeError::NoSuchStep(h))?;
        *cached = Some(step.clone());
        Ok(Some(step))
    }

    /// Drops the proofs of the steps at or below the horizon as it stood [`COMPACT_LAG`] of
    /// node time ago, and below every horizon a head served within the hold. Returns how many
    /// step proofs were dropped.
    pub(crate) fn prune_steps(&self) -> Result<u64, ServeError> {
        let (counter, upto) = {
            let guard = self.step_state();
            let Some(state) = guard.as_ref() else {
                return Ok(0);
            };
            let edge = self.step_edge(state).saturating_sub(COMPACT_LAG);
            (state.prev_counter(), state.horizon_below(edge))
        };
        let Some(upto) = upto else {
            return Ok(0);
        };
        let (n, upto) = {
            let _window = self.window.lock().unwrap_or_else(|p| p.into_inner());
            let upto = match self.lowest_served(counter) {
                Some(w) => upto.min(w),
                None => upto,
            };
            (self.store.prune_steps(counter, upto)?, upto)
        };
        // Node time and gap steps below the horizon are no longer needed in memory. (The
        // state is locked only once the window lock is released: heads take the state, then
        // the window.)
        if let Some(h) = self.store.step_horizon(counter)? {
            if let Some(state) = self.step_state().as_mut() {
                state.forget_before(h);
            }
        }
        if n > 0 {
            tracing::info!(
                pruned = n,
                horizon = upto,
                "dropped step proofs below the audit horizon"
            );
        }
        Ok(n)
    }
}
