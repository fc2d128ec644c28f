//! Scheme M's `Read`s, batched (DESIGN.md §6): a hardware TPM signs only tens of `Read`s per
//! second, so one `Read` serves every buyer queued when the device comes free.
//!
//! Each request joins a queue. If no request leads, it leads: it takes the device, takes the
//! queue (up to [`candor_core::MAX_READ_BATCH`] requests, itself first), signs one `Read` over
//! the root of their nonces ([`candor_core::NonceTree`]), and answers each with its head and
//! the path from its nonce to that root; the heads are built under the same locks as the
//! `Read`, so all agree with its t. Then it hands the lead to the oldest request still queued
//! (those that came while the device was signing), or gives it up. The others wait on their
//! own channel, for their answer or the lead: no request leads more than once, so none
//! starves, and an answered one returns at once. A lone buyer's `Read` signs its own nonce,
//! as without batching.

use crate::node::{ListingNode, ServeError};
use candor_core::{NonceTree, RetrieveRequest, StepHead, MAX_READ_BATCH};
use candor_device::TrustedDevice;
use std::collections::VecDeque;
use std::sync::mpsc;
use std::sync::Mutex;

/// The most requests waiting for a `Read` at once; more are refused as busy.
pub(crate) const MAX_QUEUED_READS: usize = 4 * MAX_READ_BATCH;

type Answer = Result<StepHead, ServeError>;

/// What a waiting request receives.
enum Msg {
    /// Its answer.
    Answer(Box<Answer>),
    /// The lead: it is the oldest request queued, and signs the next `Read`.
    Lead,
}

struct Queued {
    req: RetrieveRequest,
    tx: mpsc::SyncSender<Msg>,
}

#[derive(Default)]
struct Queue {
    waiting: VecDeque<Queued>,
    /// Whether a request leads (holds, or is about to take, the device for a batch).
    leading: bool,
}

/// The requests waiting for a `Read`, oldest first.
#[derive(Default)]
pub(crate) struct ReadQueue(Mutex<Queue>);

impl ReadQueue {
    fn lock(&self) -> std::sync::MutexGuard<'_, Queue> {
        // Entries are whole once pushed: a panic elsewhere leaves nothing half-done.
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The lead, handed on when dropped (a panic in the device included): to the oldest request
/// still queued, or given up.
struct Lead<'a>(&'a ReadQueue);

impl Drop for Lead<'_> {
    fn drop(&mut self) {
        let mut q = self.0.lock();
        loop {
            match q.waiting.front() {
                None => {
                    q.leading = false;
                    return;
                }
                Some(next) => {
                    if next.tx.send(Msg::Lead).is_ok() {
                        return;
                    }
                    // Its caller is gone: the next one leads.
                    q.waiting.pop_front();
                }
            }
        }
    }
}

impl<D: TrustedDevice> ListingNode<D> {
    /// Answers a scheme-M retrieve's opening: the certificate, a `Read` whose nonce is the
    /// request's (or the root of a batch it is in), the step at t and the proof for the
    /// item — all under the device lock, so they agree.
    pub(crate) fn step_head(&self, req: &RetrieveRequest) -> Answer {
        // One answer and at most one lead per request, the lead first: never blocks.
        let (tx, rx) = mpsc::sync_channel(2);
        let lead = {
            let mut q = self.reads.lock();
            if q.waiting.len() >= MAX_QUEUED_READS {
                return Err(ServeError::Busy(
                    "too many reads are waiting for the device",
                ));
            }
            q.waiting.push_back(Queued {
                req: req.clone(),
                tx,
            });
            !std::mem::replace(&mut q.leading, true)
        };
        if lead {
            self.lead_batch();
        }
        loop {
            match rx.recv() {
                Ok(Msg::Answer(answer)) => return *answer,
                Ok(Msg::Lead) => self.lead_batch(),
                // The batch it was in was dropped half-way (a panic in the device).
                Err(_) => return Err(ServeError::Busy("the read was lost; try again")),
            }
        }
    }

    /// Signs one `Read` for the oldest queued requests and answers them; hands the lead on.
    fn lead_batch(&self) {
        let _lead = Lead(&self.reads);
        let mut dev = self.device();
        let batch: Vec<Queued> = {
            let mut q = self.reads.lock();
            let n = q.waiting.len().min(MAX_READ_BATCH);
            q.waiting.drain(..n).collect()
        };
        if batch.is_empty() {
            return;
        }
        match self.sign_heads(&mut dev, &batch) {
            Ok(heads) => {
                for (q, head) in batch.into_iter().zip(heads) {
                    let _ = q.tx.send(Msg::Answer(Box::new(Ok(head))));
                }
            }
            Err(e) => {
                for q in batch {
                    let _ = q.tx.send(Msg::Answer(Box::new(Err(e.shared()))));
                }
            }
        }
    }

    /// One `Read` over the batch's nonces, and each request's head under it.
    fn sign_heads(&self, dev: &mut D, batch: &[Queued]) -> Result<Vec<StepHead>, ServeError> {
        self.settle(dev).map_err(ServeError::Reconciling)?;
        let guard = self.step_state();
        let state = guard.as_ref().ok_or(ServeError::WrongScheme)?;
        let nonces: Vec<[u8; 32]> = batch.iter().map(|q| q.req.nonce).collect();
        let tree = NonceTree::new(&nonces)
            .map_err(|_| ServeError::Busy("a read batch of an impossible size"))?;
        let read = dev.read_sign(state.prev_counter(), tree.root())?;
        let horizon = self.head_horizon(state)?;
        if batch.len() > 1 {
            tracing::debug!(
                buyers = batch.len(),
                t = read.read.value,
                "one Read for a batch"
            );
        }
        Ok(batch
            .iter()
            .enumerate()
            .map(|(i, q)| {
                let mut head = state.head(self.cert.clone(), read.clone(), &q.req.item);
                head.nonces = tree.path(i).unwrap_or_default();
                // Gap steps below the horizon no longer matter: no audit goes there.
                if let Some(h) = &horizon {
                    head.gaps.retain(|g| g.header.value >= h.header.value);
                }
                head.horizon = horizon.clone();
                head
            })
            .collect())
    }
}
