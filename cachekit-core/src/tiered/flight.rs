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

#[derive(Default)]
pub(crate) struct Flights {
    map: Mutex<HashMap<Arc<str>, Arc<Flight>>>,
}

pub(crate) enum Role<'a> {
    Leader(LeaderGuard<'a>),
    Follower(watch::Receiver<FlightState>),
}

impl Flights {
    /// Joins the flight for `key`, leading it if none is running.
    pub(crate) fn join(&self, key: &str) -> Role<'_> {
        // A poisoned lock only means another thread panicked while holding it;
        // the map itself is always consistent, so keep going.
        let mut map = self.map.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(flight) = map.get(key) {
            return Role::Follower(flight.subscribe());
        }
        let flight = Arc::new(watch::Sender::new(FlightState::Running));
        let key: Arc<str> = key.into();
        map.insert(key.clone(), Arc::clone(&flight));
        Role::Leader(LeaderGuard {
            flights: self,
            key,
            flight,
            finished: false,
        })
    }

    /// Whether a computation of `key` is under way.
    pub(crate) fn is_running(&self, key: &str) -> bool {
        self.map
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains_key(key)
    }

    fn remove(&self, key: &str, flight: &Arc<Flight>) {
        let mut map = self.map.lock().unwrap_or_else(PoisonError::into_inner);
        if map.get(key).is_some_and(|f| Arc::ptr_eq(f, flight)) {
            map.remove(key);
        }
    }
}

/// Held by the caller that computes; dropping it unfinished wakes the waiters.
pub(crate) struct LeaderGuard<'a> {
    flights: &'a Flights,
    key: Arc<str>,
    flight: Arc<Flight>,
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
        self.flights.remove(&self.key, &self.flight);
        if self.flight.receiver_count() > 0 {
            self.flight.send_replace(FlightState::Done(share()));
        }
    }

    fn publish(&mut self, state: FlightState) {
        self.finished = true;
        // Remove first: a caller arriving after this point must look at the
        // cache (already filled) rather than join a finished flight.
        self.flights.remove(&self.key, &self.flight);
        self.flight.send_replace(state);
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
