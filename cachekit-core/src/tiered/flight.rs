//! In-process single-flight: one computation per cold key, however many callers.

use std::any::Any;
use std::hash::BuildHasher;
use std::sync::{Arc, Mutex, PoisonError};

use crossbeam_utils::CachePadded;
use hashbrown::HashTable;

use tokio::sync::watch;

pub(crate) type Shared = Arc<dyn Any + Send + Sync>;

#[derive(Clone)]
pub(crate) enum FlightState {
    Running,
    /// The leader produced this value.
    Done(Shared),
    /// The leader's computation returned an error (errors are not shared:
    /// each waiting caller runs its own computation).
    Failed,
    /// The leader was cancelled before finishing; a waiter takes over.
    Abandoned,
}

type Flight = watch::Sender<FlightState>;

/// Shards of the flight table: every L2 read registers a flight, so one
/// lock for all keys was contended by concurrent calls of different keys.
/// Each shard has cache lines of its own: packed, two shards shared a line,
/// and threads working on keys of neighbouring shards passed it between
/// their cores.
const SHARDS: usize = 16;

/// A running flight. Its channel is made by the first caller that waits:
/// most flights (every L2 read of a warm key) finish without one, and a
/// `watch` channel costs an allocation and, when dropped, eight wake-up
/// locks.
struct Ongoing {
    key: Arc<str>,
    hash: u64,
    /// Tells this flight from a later one of the same key; unique within
    /// its shard, so the leader finds its own flight by it alone.
    id: u64,
    channel: Option<Arc<Flight>>,
}

#[derive(Default)]
struct Table {
    /// Keyed by the hash the leader keeps: a key is hashed once per flight,
    /// not again to remove it.
    running: HashTable<Ongoing>,
    next_id: u64,
}

pub(crate) struct Flights {
    shards: [CachePadded<Mutex<Table>>; SHARDS],
    /// Seeded per cache, so keys cannot be chosen to collide.
    hasher: foldhash::fast::RandomState,
}

impl Default for Flights {
    fn default() -> Self {
        Self {
            shards: std::array::from_fn(|_| CachePadded::default()),
            hasher: foldhash::fast::RandomState::default(),
        }
    }
}

pub(crate) enum Role<'a> {
    Leader(LeaderGuard<'a>),
    Follower(watch::Receiver<FlightState>),
}

impl Flights {
    /// The locked shard of `key`. A poisoned lock only means another
    /// thread panicked while holding it; the map itself is always
    /// consistent, so keep going.
    fn hash(&self, key: &str) -> u64 {
        self.hasher.hash_one(key)
    }

    /// The locked shard of a key hashing to `hash`.
    fn shard(&self, hash: u64) -> std::sync::MutexGuard<'_, Table> {
        // The table picks buckets by the low bits and tags them with the top
        // seven; the shard takes four bits from neither. SHARDS is a power
        // of two, so truncating is the point.
        #[allow(clippy::cast_possible_truncation)]
        let index = (hash >> 32) as usize & (SHARDS - 1);
        self.shards[index]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Joins the flight for `key`, leading it if none is running. A leader
    /// keeps `shared` when given (a copy of `key` the caller holds anyway),
    /// else a copy of its own.
    pub(crate) fn join(&self, key: &str, shared: Option<&Arc<str>>) -> Role<'_> {
        let hash = self.hash(key);
        let mut table = self.shard(hash);
        if let Some(flight) = table.running.find_mut(hash, |f| *f.key == *key) {
            let channel = flight
                .channel
                .get_or_insert_with(|| Arc::new(watch::Sender::new(FlightState::Running)));
            return Role::Follower(channel.subscribe());
        }
        let id = table.next_id;
        table.next_id = id.wrapping_add(1);
        let ongoing = Ongoing {
            key: shared.map_or_else(|| key.into(), Arc::clone),
            hash,
            id,
            channel: None,
        };
        table.running.insert_unique(hash, ongoing, |f| f.hash);
        Role::Leader(LeaderGuard {
            flights: self,
            hash,
            id,
            finished: false,
        })
    }

    /// Whether a computation of `key` is under way.
    pub(crate) fn is_running(&self, key: &str) -> bool {
        let hash = self.hash(key);
        let table = self.shard(hash);
        table.running.find(hash, |f| *f.key == *key).is_some()
    }

    /// Ends flight `id` (of a key hashing to `hash`); its channel, if
    /// anyone waits.
    fn remove(&self, hash: u64, id: u64) -> Option<Arc<Flight>> {
        let mut table = self.shard(hash);
        let entry = table.running.find_entry(hash, |f| f.id == id).ok()?;
        entry.remove().0.channel
    }
}

/// Held by the caller that computes; dropping it unfinished wakes the waiters.
pub(crate) struct LeaderGuard<'a> {
    flights: &'a Flights,
    hash: u64,
    id: u64,
    finished: bool,
}

impl LeaderGuard<'_> {
    pub(crate) fn finish(mut self, state: FlightState) {
        self.publish(state);
    }

    /// Publishes a value, made by `share` only if someone is waiting for
    /// it: a call that nobody joined does not copy its value.
    pub(crate) fn finish_with(mut self, share: impl FnOnce() -> Shared) {
        self.finished = true;
        // Once removed, nobody can join; only those already waiting count.
        if let Some(channel) = self.flights.remove(self.hash, self.id) {
            if channel.receiver_count() > 0 {
                channel.send_replace(FlightState::Done(share()));
            }
        }
    }

    fn publish(&mut self, state: FlightState) {
        self.finished = true;
        // Remove first: a caller arriving after this point must look at the
        // cache (already filled) rather than join a finished flight.
        if let Some(channel) = self.flights.remove(self.hash, self.id) {
            channel.send_replace(state);
        }
    }
}

impl Drop for LeaderGuard<'_> {
    fn drop(&mut self) {
        if !self.finished {
            self.publish(FlightState::Abandoned);
        }
    }
}

/// Waits until the leader publishes an outcome.
pub(crate) async fn wait(mut rx: watch::Receiver<FlightState>) -> FlightState {
    match rx.wait_for(|s| !matches!(s, FlightState::Running)).await {
        Ok(state) => state.clone(),
        Err(_) => FlightState::Abandoned,
    }
}
