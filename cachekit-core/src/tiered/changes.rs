//! Which keys changed since a read or a computation began, so that what it
//! brings back is not stored over the change.
//!
//! A read of L2 or a computation takes a [`Ticket`] before it starts; every
//! change of a key (a delete or invalidation here, an invalidation from
//! another process) bumps the key's counter, and a flush or prefix clear
//! bumps the epoch. A result whose ticket no longer matches is returned to
//! its caller but not stored. Keys share counters by hash (a change of one
//! key also voids tickets of the few keys it shares a counter with, which
//! costs them a store, never correctness).

use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};

/// Counters per key hash: enough that unrelated keys rarely share one.
const STRIPES: usize = 1024;

pub(crate) struct Changes {
    /// Bumped when every key may have changed (a prefix clear, a flushed
    /// server).
    epoch: AtomicU64,
    /// Bumped when L1 was flushed because the invalidation channel broke
    /// or came back: it voids what reads put in L1, not what computations
    /// store in L2.
    flushes: AtomicU64,
    stripes: Box<[AtomicU64]>,
    hasher: foldhash::fast::FixedState,
}

/// What a read or computation saw when it began.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ticket {
    epoch: u64,
    flushes: u64,
    stripe: usize,
    seen: u64,
}

impl Default for Changes {
    fn default() -> Self {
        Self {
            epoch: AtomicU64::new(0),
            flushes: AtomicU64::new(0),
            stripes: (0..STRIPES).map(|_| AtomicU64::new(0)).collect(),
            hasher: foldhash::fast::FixedState::default(),
        }
    }
}

impl Changes {
    fn stripe(&self, key: &str) -> usize {
        // The modulus keeps the index in range whatever the hash.
        (self.hasher.hash_one(key) as usize) % self.stripes.len()
    }

    /// What a read or computation of `key` starting now must not miss.
    pub(crate) fn ticket(&self, key: &str) -> Ticket {
        let stripe = self.stripe(key);
        Ticket {
            epoch: self.epoch.load(Ordering::SeqCst),
            flushes: self.flushes.load(Ordering::SeqCst),
            stripe,
            seen: self.stripes[stripe].load(Ordering::SeqCst),
        }
    }

    /// Whether the ticket's key was neither changed nor cleared since it
    /// was taken (an L1 flush aside: see [`generation_of`](Self::generation_of)).
    /// Called before a computed value is stored, and after a value is put
    /// in L1 (with a fence between), so that a change either shows here or
    /// removes the entry itself.
    pub(crate) fn unchanged(&self, ticket: &Ticket) -> bool {
        std::sync::atomic::fence(Ordering::SeqCst);
        self.epoch.load(Ordering::SeqCst) == ticket.epoch
            && self.stripes[ticket.stripe].load(Ordering::SeqCst) == ticket.seen
    }

    /// The L1 generation when the ticket was taken: what a value read
    /// from L2 under it is stamped with, so that a flush since makes it
    /// stale at once.
    pub(crate) fn generation_of(ticket: &Ticket) -> u64 {
        ticket.flushes
    }

    /// The L1 generation now (bumped by every flush).
    #[inline]
    pub(crate) fn generation(&self) -> u64 {
        self.flushes.load(Ordering::Acquire)
    }

    /// `key` changed; called before the key is removed from L1.
    pub(crate) fn key(&self, key: &str) {
        self.stripes[self.stripe(key)].fetch_add(1, Ordering::SeqCst);
    }

    /// Any key may have changed; called before L1 is flushed or cleared.
    pub(crate) fn all(&self) {
        self.epoch.fetch_add(1, Ordering::SeqCst);
    }

    /// L1 is flushed though no key is known to have changed: its entries
    /// become stale (the next generation begins).
    pub(crate) fn flushed(&self) {
        self.flushes.fetch_add(1, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_change_of_the_key_or_of_all_voids_the_ticket() {
        let changes = Changes::default();
        let ticket = changes.ticket("a");
        assert!(changes.unchanged(&ticket));
        changes.key("a");
        assert!(!changes.unchanged(&ticket), "the key changed");

        let ticket = changes.ticket("a");
        changes.all();
        assert!(!changes.unchanged(&ticket), "everything changed");

        let ticket = changes.ticket("a");
        changes.flushed();
        assert!(changes.unchanged(&ticket), "a flush changes no key");
        assert_eq!(Changes::generation_of(&ticket) + 1, changes.generation());

        let ticket = changes.ticket("a");
        // A key in another stripe leaves the ticket valid.
        let other = (0..10_000)
            .map(|i| format!("k{i}"))
            .find(|k| changes.stripe(k) != changes.stripe("a"))
            .unwrap();
        changes.key(&other);
        assert!(changes.unchanged(&ticket));
    }
}
