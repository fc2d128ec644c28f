//! Group commit: publishes from many callers share one device call and one fsync.

use crate::node::{ListingNode, PublishError};
use crate::serve::Published;
use candor_core::SignedOffer;
use candor_device::TrustedDevice;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::Arc;
use std::thread::JoinHandle;
use thiserror::Error;

/// Why a publish through the committer failed.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum CommitterError {
    /// The committer has stopped.
    #[error("the committer has stopped")]
    Stopped,
    /// Its queue is full: the node is overloaded; try again later.
    #[error("the publish queue is full; try again later")]
    Busy,
    /// The node refused the offer.
    #[error(transparent)]
    Publish(#[from] PublishError),
}

struct Job {
    offer: SignedOffer,
    now: u64,
    reply: SyncSender<Result<Published, PublishError>>,
}

/// A thread that takes publishes from a bounded queue and commits them in batches of up to
/// `max_batch`: whatever queued while the previous batch was being made durable.
pub struct Committer {
    tx: Option<SyncSender<Job>>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Committer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Committer").finish_non_exhaustive()
    }
}

impl Committer {
    /// Starts the committer for `node`, with a queue of `queue` publishes.
    pub fn spawn<D: TrustedDevice + 'static>(
        node: Arc<ListingNode<D>>,
        max_batch: usize,
        queue: usize,
    ) -> Self {
        let (tx, rx) = sync_channel::<Job>(queue.max(1));
        let thread = std::thread::Builder::new()
            .name("candor-committer".into())
            .spawn(move || run(node, rx, max_batch.max(1)))
            .ok();
        Self {
            tx: Some(tx),
            thread,
        }
    }

    /// Publishes `offer` and waits for its durable receipt.
    pub fn publish(&self, offer: SignedOffer, now: u64) -> Result<Published, CommitterError> {
        let tx = self.tx.as_ref().ok_or(CommitterError::Stopped)?;
        let (reply, answer) = sync_channel(1);
        match tx.try_send(Job { offer, now, reply }) {
            Ok(()) => {}
            Err(TrySendError::Full(job)) => {
                // Wait for room rather than fail: callers are bounded by the queue.
                tx.send(job).map_err(|_| CommitterError::Stopped)?;
            }
            Err(TrySendError::Disconnected(_)) => return Err(CommitterError::Stopped),
        }
        Ok(answer.recv().map_err(|_| CommitterError::Stopped)??)
    }

    /// Stops after the queued publishes are committed.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        self.tx = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Committer {
    fn drop(&mut self) {
        self.stop();
    }
}

fn run<D: TrustedDevice>(node: Arc<ListingNode<D>>, rx: Receiver<Job>, max_batch: usize) {
    while let Ok(first) = rx.recv() {
        let mut jobs = vec![first];
        while jobs.len() < max_batch {
            match rx.try_recv() {
                Ok(j) => jobs.push(j),
                Err(_) => break,
            }
        }
        // One clock for the batch: the newest caller's.
        let now = jobs.iter().map(|j| j.now).max().unwrap_or(0);
        let offers: Vec<SignedOffer> = jobs.iter().map(|j| j.offer.clone()).collect();
        let results = node.publish_all(&offers, now);
        for (job, result) in jobs.into_iter().zip(results) {
            let _ = job.reply.send(result);
        }
    }
}
