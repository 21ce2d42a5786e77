//! The store's side of writes on the calling thread
//! ([`caller_writes`](crate::FileConfigBuilder::caller_writes)): which path
//! served each write, and the disk work that such a write leaves to
//! blocking tasks so that the caller does not wait for it: removing the
//! files that `set`s replaced, and eviction when a write crossed the high
//! watermark (down to the low one: thousands of files with the default
//! budgets).
//!
//! Removing a replaced file is the slowest step of a replace on ext4 (see
//! [`Replaced`]); on the blocking pool the same thread does it right after
//! answering. On a 2-core VM's ext4, unlinking a file whose blocks reached
//! the disk takes 75 to 100 µs (1 KiB and 64 KiB values), more than the
//! rest of the write; one still in the page cache takes 5 to 10 µs. A
//! caller that waited for it could lose more than skipping the hop saved,
//! so the names are queued and one blocking task at a time removes them:
//! a burst of writes costs one hop in total, and none of them waits for
//! it. (In a loop rewriting the same keys within milliseconds, as the
//! bench does, the cheap case dominates and waking the task costs the
//! caller a few µs more than unlinking itself would.)

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

use super::Store;
use crate::disk::{Replaced, ReplacedName};

/// Replaced files waiting for the blocking task; beyond this, a writer
/// removes its own, so that a disk that stopped answering slows writers
/// down instead of filling the queue.
const MAX_QUEUED_REMOVALS: usize = 1024;

/// Counts of the two write paths and the removal queue.
#[derive(Debug, Default)]
pub(crate) struct CallerWrites {
    /// Writes that ran on the calling thread.
    caller: AtomicU64,
    /// Writes that ran on the blocking pool.
    blocking: AtomicU64,
    removals: Mutex<Removals>,
    /// A write on the calling thread crossed the high watermark.
    eviction_due: AtomicBool,
    /// A blocking task has claimed the eviction.
    evicting: AtomicBool,
}

#[derive(Debug, Default)]
struct Removals {
    names: Vec<ReplacedName>,
    /// Whether a blocking task has been started to drain `names`.
    draining: bool,
}

/// What [`Store::write_stats`] reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct WriteStats {
    /// Writes that ran on the calling thread.
    pub(crate) caller: u64,
    /// Writes that ran on the blocking pool.
    pub(crate) blocking: u64,
}

impl CallerWrites {
    /// A panic while holding the queue leaves it merely incomplete.
    fn removals(&self) -> MutexGuard<'_, Removals> {
        self.removals.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Store {
    /// Counts a write (one call, however many entries) on its path.
    pub(crate) fn count_write(&self, on_caller: bool) {
        let counter = if on_caller {
            &self.writes.caller
        } else {
            &self.writes.blocking
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Queues the files a write replaced for removal off this thread;
    /// returns whether the caller must start [`Store::drain_removals`] on
    /// the blocking pool. What does not fit in the queue is removed here.
    pub(crate) fn remove_later(&self, replaced: Vec<Replaced<'_>>) -> bool {
        let mut names: Vec<ReplacedName> =
            replaced.into_iter().filter_map(Replaced::detach).collect();
        if names.is_empty() {
            return false;
        }
        let (start, overflow) = {
            let mut removals = self.writes.removals();
            let room = MAX_QUEUED_REMOVALS.saturating_sub(removals.names.len());
            let overflow = names.split_off(room.min(names.len()));
            let start = !names.is_empty() && !std::mem::replace(&mut removals.draining, true);
            removals.names.append(&mut names);
            (start, overflow)
        };
        for name in overflow {
            self.disk.remove_replaced(name);
        }
        start
    }

    /// Removes the queued replaced files until the queue is empty; runs on
    /// the blocking pool.
    pub(crate) fn drain_removals(&self) {
        loop {
            let batch = {
                let mut removals = self.writes.removals();
                if removals.names.is_empty() {
                    removals.draining = false;
                    return;
                }
                std::mem::take(&mut removals.names)
            };
            for name in batch {
                self.disk.remove_replaced(name);
            }
        }
    }

    /// Notes that a write crossed the high watermark and left eviction to
    /// a blocking task.
    pub(crate) fn evict_later(&self) {
        self.writes.eviction_due.store(true, Ordering::Release);
    }

    /// Claims a deferred eviction if one is due and none is running; the
    /// caller must then run [`Store::enforce_limits`] on the blocking pool
    /// and call [`Store::eviction_done`].
    pub(crate) fn claim_eviction(&self) -> bool {
        let writes = &self.writes;
        if !writes.eviction_due.load(Ordering::Acquire)
            || writes.evicting.swap(true, Ordering::AcqRel)
        {
            return false;
        }
        writes.eviction_due.store(false, Ordering::Release);
        true
    }

    /// Whether another deferred eviction became due while the claimed one
    /// ran (the claim is kept for it).
    pub(crate) fn eviction_due_again(&self) -> bool {
        self.writes.eviction_due.swap(false, Ordering::AcqRel)
    }

    pub(crate) fn eviction_done(&self) {
        self.writes.evicting.store(false, Ordering::Release);
    }

    pub(crate) fn write_stats(&self) -> WriteStats {
        WriteStats {
            caller: self.writes.caller.load(Ordering::Relaxed),
            blocking: self.writes.blocking.load(Ordering::Relaxed),
        }
    }
}
