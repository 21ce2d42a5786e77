//! In-process single-flight: one computation per cold key, however many callers.

use std::any::Any;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

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
const SHARDS: usize = 16;

/// A running flight. Its channel is made by the first caller that waits:
/// most flights (every L2 read of a warm key) finish without one, and a
/// `watch` channel costs an allocation and, when dropped, eight wake-up
/// locks.
struct Ongoing {
    /// Tells this flight from a later one of the same key.
    id: u64,
    channel: Option<Arc<Flight>>,
}

#[derive(Default)]
struct Table {
    running: HashMap<Arc<str>, Ongoing, foldhash::fast::RandomState>,
    next_id: u64,
}

pub(crate) struct Flights {
    shards: [Mutex<Table>; SHARDS],
}

impl Default for Flights {
    fn default() -> Self {
        Self {
            shards: std::array::from_fn(|_| Mutex::default()),
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
    fn shard(&self, key: &str) -> std::sync::MutexGuard<'_, Table> {
        // SHARDS is a power of two; truncating the hash is the point.
        #[allow(clippy::cast_possible_truncation)]
        let index = (xxhash_rust::xxh3::xxh3_64(key.as_bytes()) as usize) & (SHARDS - 1);
        self.shards[index]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Joins the flight for `key`, leading it if none is running.
    pub(crate) fn join(&self, key: &str) -> Role<'_> {
        let mut table = self.shard(key);
        if let Some(flight) = table.running.get_mut(key) {
            let channel = flight
                .channel
                .get_or_insert_with(|| Arc::new(watch::Sender::new(FlightState::Running)));
            return Role::Follower(channel.subscribe());
        }
        let id = table.next_id;
        table.next_id = id.wrapping_add(1);
        let key: Arc<str> = key.into();
        table
            .running
            .insert(Arc::clone(&key), Ongoing { id, channel: None });
        Role::Leader(LeaderGuard {
            flights: self,
            key,
            id,
            finished: false,
        })
    }

    /// Whether a computation of `key` is under way.
    pub(crate) fn is_running(&self, key: &str) -> bool {
        self.shard(key).running.contains_key(key)
    }

    /// Ends flight `id` of `key`; its channel, if anyone waits.
    fn remove(&self, key: &str, id: u64) -> Option<Arc<Flight>> {
        let mut table = self.shard(key);
        if table.running.get(key).is_some_and(|f| f.id == id) {
            return table.running.remove(key).and_then(|f| f.channel);
        }
        None
    }
}

/// Held by the caller that computes; dropping it unfinished wakes the waiters.
pub(crate) struct LeaderGuard<'a> {
    flights: &'a Flights,
    key: Arc<str>,
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
        if let Some(channel) = self.flights.remove(&self.key, self.id) {
            if channel.receiver_count() > 0 {
                channel.send_replace(FlightState::Done(share()));
            }
        }
    }

    fn publish(&mut self, state: FlightState) {
        self.finished = true;
        // Remove first: a caller arriving after this point must look at the
        // cache (already filled) rather than join a finished flight.
        if let Some(channel) = self.flights.remove(&self.key, self.id) {
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
