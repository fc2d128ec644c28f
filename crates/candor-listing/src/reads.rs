//! Scheme M's `Read`s, batched (DESIGN.md §6): a hardware TPM signs only tens of `Read`s per
//! second, so one `Read` serves every buyer queued when the device comes free.
//!
//! Each request joins a queue, then waits for the device. Whoever holds the device takes the
//! queue (up to [`candor_core::MAX_READ_BATCH`] requests, its own among them or answered
//! before), signs one `Read` over the root of their nonces ([`candor_core::NonceTree`]), and
//! answers each with its head and the path from its nonce to that root; the heads are built
//! under the same locks as the `Read`, so all agree with its t. A request that finds its
//! answer waiting when it gets the device returns it. A lone buyer's `Read` signs its own
//! nonce, as without batching.

use crate::node::{ListingNode, ServeError};
use candor_core::{NonceTree, RetrieveRequest, StepHead, MAX_READ_BATCH};
use candor_device::TrustedDevice;
use std::collections::VecDeque;
use std::sync::mpsc;
use std::sync::Mutex;

/// The most requests waiting for a `Read` at once; more are refused as busy.
pub(crate) const MAX_QUEUED_READS: usize = 4 * MAX_READ_BATCH;

type Answer = Result<StepHead, ServeError>;

struct Queued {
    req: RetrieveRequest,
    answer: mpsc::SyncSender<Answer>,
}

/// The requests waiting for a `Read`, oldest first.
#[derive(Default)]
pub(crate) struct ReadQueue(Mutex<VecDeque<Queued>>);

impl ReadQueue {
    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<Queued>> {
        // Entries are whole once pushed: a panic elsewhere leaves nothing half-done.
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl<D: TrustedDevice> ListingNode<D> {
    /// Answers a scheme-M retrieve's opening: the certificate, a `Read` whose nonce is the
    /// request's (or the root of a batch it is in), the step at t and the proof for the
    /// item — all under the device lock, so they agree.
    pub(crate) fn step_head(&self, req: &RetrieveRequest) -> Answer {
        // One answer per request: a bound of one never blocks the sender.
        let (tx, rx) = mpsc::sync_channel(1);
        {
            let mut q = self.reads.lock();
            if q.len() >= MAX_QUEUED_READS {
                return Err(ServeError::Busy(
                    "too many reads are waiting for the device",
                ));
            }
            q.push_back(Queued {
                req: req.clone(),
                answer: tx,
            });
        }
        let mut dev = self.device();
        loop {
            if let Ok(answer) = rx.try_recv() {
                return answer;
            }
            let batch: Vec<Queued> = {
                let mut q = self.reads.lock();
                let n = q.len().min(MAX_READ_BATCH);
                q.drain(..n).collect()
            };
            if batch.is_empty() {
                // Unreachable: this request is queued until it is answered, and it is
                // answered (under the device lock this thread holds) before it leaves.
                return Err(ServeError::Busy("the read was lost"));
            }
            match self.sign_heads(&mut dev, &batch) {
                Ok(heads) => {
                    for (q, head) in batch.into_iter().zip(heads) {
                        let _ = q.answer.send(Ok(head));
                    }
                }
                Err(e) => {
                    for q in batch {
                        let _ = q.answer.send(Err(e.shared()));
                    }
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
                head
            })
            .collect())
    }
}
