//! Keeping L1s coherent across processes: where "this key changed" reaches
//! the caches.
//!
//! A backend that can tell when its keys change (Redis, through
//! server-assisted client-side caching) owns one [`Invalidations`] and
//! feeds it from its listener; every [`TieredCache`](crate::TieredCache)
//! with an L1 in front of that backend attaches to it. The listener
//! reports changed keys ([`key`](Invalidations::key)), cleared prefixes
//! ([`prefix`](Invalidations::prefix)), and the state of its channel
//! ([`lost`](Invalidations::lost), [`resumed`](Invalidations::resumed)).
//!
//! While the channel is down a process cannot know what it missed: every
//! attached L1 is flushed when it goes down and again when it comes back
//! (its entries are marked stale: never served as fresh again, only as
//! the fallback of a policy with `max_stale` when recomputing fails), and
//! in between L1 entries live at most the cache's
//! [`l1_ttl_unsynced`](crate::TieredCacheBuilder::l1_ttl_unsynced).

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::{Mutex, Weak};

use crate::metrics::ChannelMetrics;
use crate::tiered::Inner;

/// The state of an L1 invalidation channel.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ChannelState {
    /// The cache has no invalidation channel: its L2 cannot notify (a file
    /// backend), it has no L1, or invalidation is turned off. L1 entries
    /// live up to `l1_max_ttl`.
    #[default]
    Off,
    /// Not (or no longer) receiving invalidations: L1 entries live at most
    /// `l1_ttl_unsynced` until the channel is back.
    Down,
    /// Receiving invalidations: L1 entries live up to `l1_max_ttl` and are
    /// dropped as soon as their key changes anywhere.
    Live,
}

const DOWN: u8 = 0;
const LIVE: u8 = 1;

/// Counters of an invalidation channel, shared by every cache attached to it.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct InvalidationStats {
    /// The channel's state now.
    pub state: ChannelState,
    /// Changed keys reported by the channel (each dropped from every
    /// attached L1 that held it).
    pub keys: u64,
    /// Prefix clears reported by the channel.
    pub prefixes: u64,
    /// Times every attached L1 was flushed: the channel went down or came
    /// back, or the server was flushed.
    pub flushes: u64,
    /// Times the channel went down.
    pub losses: u64,
    /// Failures reported by the listener: losses, and each attempt to set
    /// the channel up again that failed (it retries every 0.1-2 s).
    pub failures: u64,
}

/// The invalidation channel of one backend, as the caches see it.
///
/// Made by a backend that can notify (see
/// [`Backend::invalidations`](crate::Backend::invalidations)); starts
/// [`Down`](ChannelState::Down) until its listener calls
/// [`resumed`](Self::resumed).
pub struct Invalidations {
    state: AtomicU8,
    /// The caches attached, weakly: a dropped cache leaves on its own.
    caches: Mutex<Vec<Weak<Inner>>>,
    keys: AtomicU64,
    prefixes: AtomicU64,
    flushes: AtomicU64,
    losses: AtomicU64,
    failures: AtomicU64,
    /// Whether the current outage has been logged.
    logged: AtomicBool,
    /// How logs name the channel (no credentials).
    name: String,
    /// The same counters, published under that name.
    published: ChannelMetrics,
}

impl std::fmt::Debug for Invalidations {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Invalidations")
            .field("name", &self.name)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl Invalidations {
    /// A channel, down until [`resumed`](Self::resumed); `name` says in
    /// logs which server it listens to, and must hold no secret.
    pub fn new(name: impl Into<String>) -> Self {
        let name = name.into();
        Self {
            state: AtomicU8::new(DOWN),
            caches: Mutex::new(Vec::new()),
            keys: AtomicU64::new(0),
            prefixes: AtomicU64::new(0),
            flushes: AtomicU64::new(0),
            losses: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            logged: AtomicBool::new(false),
            published: ChannelMetrics::new(&name),
            name,
        }
    }

    /// `key` changed (written, deleted, expired or evicted): every attached
    /// L1 drops it, and computations of it that started before do not
    /// store their result.
    pub fn key(&self, key: &str) {
        // Also the echo of this process's own writes: BCAST announces a key
        // once per event-loop iteration however many clients wrote it, so
        // an echo cannot be told from another client's change landing in
        // the same iteration, and every announcement drops the entry.
        self.each(|cache| {
            cache.changed(key);
        });
        // Counted once applied: a reader that sees the count sees the drop.
        self.keys.fetch_add(1, Ordering::Release);
        self.published.key();
    }

    /// Every key starting with `prefix` was removed.
    pub fn prefix(&self, prefix: &str) {
        self.each(|cache| {
            cache.changed_prefix(prefix);
        });
        self.prefixes.fetch_add(1, Ordering::Release);
        self.published.prefix();
    }

    /// Every key may have changed (the server was flushed): every attached
    /// L1 is flushed; the channel stays up.
    pub fn all(&self) {
        self.each(Inner::changed_all);
        self.flushes.fetch_add(1, Ordering::Release);
    }

    /// The channel broke (or could not be set up): the listener cannot
    /// know what it missed. Every attached L1 is flushed (if it was live)
    /// and, until
    /// [`resumed`](Self::resumed), keeps entries only briefly. Logged once
    /// per outage; `why` must hold no secret.
    pub fn lost(&self, why: &str) {
        self.failures.fetch_add(1, Ordering::Relaxed);
        let was = self.state.swap(DOWN, Ordering::SeqCst);
        // Once down, entries are short-lived already: a failed attempt to
        // set the channel up again learns nothing new.
        self.published.up(false);
        if was == LIVE {
            self.losses.fetch_add(1, Ordering::Relaxed);
            self.published.lost();
            self.flush();
        }
        if !self.logged.swap(true, Ordering::AcqRel) {
            tracing::warn!(
                target: "cachekit",
                channel = %self.name,
                reason = why,
                "L1 invalidation channel down: L1 flushed; entries live briefly until it is back"
            );
        }
    }

    /// The channel is set up and receiving: every attached L1 is flushed
    /// (entries made while it was down may be stale) and entries live their
    /// full L1 lifetime again.
    pub fn resumed(&self) {
        self.flush();
        let was = self.state.swap(LIVE, Ordering::SeqCst);
        self.published.up(true);
        if was != LIVE && self.logged.swap(false, Ordering::AcqRel) {
            tracing::info!(target: "cachekit", channel = %self.name, "L1 invalidation channel back");
        }
    }

    /// Whether invalidations are being received now.
    pub fn is_live(&self) -> bool {
        self.state.load(Ordering::Acquire) == LIVE
    }

    /// The counters.
    pub fn stats(&self) -> InvalidationStats {
        InvalidationStats {
            state: if self.is_live() {
                ChannelState::Live
            } else {
                ChannelState::Down
            },
            keys: self.keys.load(Ordering::Acquire),
            prefixes: self.prefixes.load(Ordering::Acquire),
            flushes: self.flushes.load(Ordering::Acquire),
            losses: self.losses.load(Ordering::Relaxed),
            failures: self.failures.load(Ordering::Relaxed),
        }
    }

    /// Attaches a cache; it leaves when dropped.
    pub(crate) fn attach(&self, cache: Weak<Inner>) {
        let mut caches = self.caches.lock().unwrap_or_else(|p| p.into_inner());
        caches.retain(|c| c.strong_count() > 0);
        caches.push(cache);
    }

    fn flush(&self) {
        self.flushes.fetch_add(1, Ordering::Relaxed);
        self.published.flush();
        self.each(Inner::flush_l1);
    }

    fn each(&self, f: impl Fn(&Inner)) {
        // Upgraded under the lock, called outside it: a cache dropped by
        // `f` (its last handle) must not re-enter the lock.
        let caches: Vec<_> = {
            let caches = self.caches.lock().unwrap_or_else(|p| p.into_inner());
            caches.iter().filter_map(Weak::upgrade).collect()
        };
        for cache in &caches {
            f(cache);
        }
    }
}

#[cfg(test)]
mod tests;
