//! The bound on L2 operations in flight, and the queue of calls waiting
//! for a place under it.
//!
//! A call over the bound waits for a place, first come first served, for at
//! most what is left of its L2 deadline; then it skips L2. The queue is
//! bounded too (`max_l2_queued`): a call that finds it full skips L2 at once.
//!
//! The fast path is one compare-and-swap on entry and one on leaving, as
//! long as nobody waits (a tokio `Semaphore` locks its waiter list on
//! every release). Only when places run out do calls take the lock.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::sync::oneshot;

/// `state` holds the free places, shifted left by one, and this bit, set
/// while the queue is not empty. It changes only under the queue's lock,
/// and while it is set no place is free: a leaving call hands its place to
/// the first waiter instead, which keeps the queue first come, first served.
const QUEUED: usize = 1;
/// One free place in `state`.
const PLACE: usize = 2;

pub(super) struct InFlight {
    state: AtomicUsize,
    max: usize,
    max_queued: usize,
    /// One sender per waiting call; a send hands it a place. A waiter that
    /// gave up leaves its (closed) sender behind, skipped by the next hand-over.
    queue: Mutex<VecDeque<oneshot::Sender<()>>>,
}

/// One admitted call; gives its place back (or hands it on) when dropped.
pub(super) struct Slot<'a>(&'a InFlight);

/// Why a call got no place.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Refused {
    /// `max_queued` calls were already waiting.
    QueueFull,
    /// No place came free within the call's deadline.
    Deadline,
}

impl InFlight {
    pub(super) fn new(max: usize, max_queued: usize) -> Self {
        // Beyond `usize::MAX / 2` places the bound means nothing anyway.
        let max = max.min(usize::MAX / PLACE);
        Self {
            state: AtomicUsize::new(max * PLACE),
            max,
            max_queued,
            queue: Mutex::new(VecDeque::new()),
        }
    }

    pub(super) fn max(&self) -> usize {
        self.max
    }

    pub(super) fn max_queued(&self) -> usize {
        self.max_queued
    }

    /// A place if one is free and nobody waits for it.
    #[inline]
    pub(super) fn try_enter(&self) -> Option<Slot<'_>> {
        let mut state = self.state.load(Relaxed);
        // `state >= PLACE` implies that nobody waits (see `QUEUED`).
        while state >= PLACE {
            match self
                .state
                .compare_exchange_weak(state, state - PLACE, Relaxed, Relaxed)
            {
                Ok(_) => return Some(Slot(self)),
                Err(now) => state = now,
            }
        }
        None
    }

    /// Waits in line for a place, for at most `limit` (`None`: as long as
    /// it takes). Cancel-safe: a place handed to a dropped waiter is
    /// handed on.
    pub(super) async fn enter(&self, limit: Option<Duration>) -> Result<Slot<'_>, Refused> {
        if let Some(slot) = self.try_enter() {
            return Ok(slot);
        }
        let mut waiter = match self.queue_up()? {
            Queued::Admitted(slot) => return Ok(slot),
            Queued::Waiting(rx) => Waiter {
                in_flight: self,
                rx: Some(rx),
            },
        };
        let granted = match (limit, waiter.rx.as_mut()) {
            (_, None) => false,
            (Some(limit), Some(rx)) => matches!(tokio::time::timeout(limit, rx).await, Ok(Ok(()))),
            (None, Some(rx)) => rx.await.is_ok(),
        };
        if granted {
            // The place is ours now; the waiter must not hand it on.
            waiter.rx = None;
            Ok(Slot(self))
        } else {
            // Dropping `waiter` hands on a place granted at the last moment.
            Err(Refused::Deadline)
        }
    }

    fn lock(&self) -> MutexGuard<'_, VecDeque<oneshot::Sender<()>>> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Under the lock: takes a place that came free, or joins the queue.
    fn queue_up(&self) -> Result<Queued<'_>, Refused> {
        let mut queue = self.lock();
        if queue.len() >= self.max_queued {
            self.prune(&mut queue);
        }
        let mut state = self.state.load(Relaxed);
        loop {
            if state >= PLACE {
                match self
                    .state
                    .compare_exchange(state, state - PLACE, Relaxed, Relaxed)
                {
                    Ok(_) => return Ok(Queued::Admitted(Slot(self))),
                    Err(now) => state = now,
                }
                continue;
            }
            if queue.len() >= self.max_queued {
                return Err(Refused::QueueFull);
            }
            match self
                .state
                .compare_exchange(state, state | QUEUED, Relaxed, Relaxed)
            {
                Ok(_) => break,
                Err(now) => state = now,
            }
        }
        let (tx, rx) = oneshot::channel();
        queue.push_back(tx);
        Ok(Queued::Waiting(rx))
    }

    /// Drops the senders of waiters that gave up.
    #[cold]
    fn prune(&self, queue: &mut VecDeque<oneshot::Sender<()>>) {
        queue.retain(|tx| !tx.is_closed());
        if queue.is_empty() {
            self.state.fetch_and(!QUEUED, Relaxed);
        }
    }

    /// Gives a place back: to the first waiter, if any, else to the pool.
    #[inline]
    fn leave(&self) {
        let mut state = self.state.load(Relaxed);
        while state & QUEUED == 0 {
            match self
                .state
                .compare_exchange_weak(state, state + PLACE, Relaxed, Relaxed)
            {
                Ok(_) => return,
                Err(now) => state = now,
            }
        }
        self.hand_over();
    }

    #[cold]
    #[inline(never)]
    fn hand_over(&self) {
        let mut queue = self.lock();
        while let Some(tx) = queue.pop_front() {
            if tx.send(()).is_ok() {
                if queue.is_empty() {
                    self.state.fetch_and(!QUEUED, Relaxed);
                }
                return;
            }
        }
        // Nobody left waiting: the place is free again.
        let _ = self
            .state
            .fetch_update(Relaxed, Relaxed, |s| Some((s & !QUEUED) + PLACE));
    }
}

enum Queued<'a> {
    Admitted(Slot<'a>),
    Waiting(oneshot::Receiver<()>),
}

/// A call in the queue. Dropped before it got its place (deadline passed,
/// or the call was cancelled), it makes sure a place handed to it at the
/// last moment is handed on.
struct Waiter<'a> {
    in_flight: &'a InFlight,
    rx: Option<oneshot::Receiver<()>>,
}

impl Drop for Waiter<'_> {
    fn drop(&mut self) {
        if let Some(mut rx) = self.rx.take() {
            rx.close();
            if rx.try_recv().is_ok() {
                self.in_flight.leave();
            }
        }
    }
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        self.0.leave();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    async fn settle() {
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
    }

    fn free(bound: &InFlight) -> usize {
        bound.state.load(Relaxed) / PLACE
    }

    #[tokio::test]
    async fn places_are_taken_and_given_back_without_the_queue() {
        let bound = InFlight::new(2, 8);
        let a = bound.try_enter().unwrap();
        let b = bound.enter(None).await.unwrap();
        assert!(bound.try_enter().is_none());
        drop(a);
        assert_eq!(free(&bound), 1);
        drop(b);
        assert_eq!(free(&bound), 2);
        assert_eq!(bound.state.load(Relaxed) & QUEUED, 0);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn waiters_get_places_in_arrival_order() {
        let bound = Arc::new(InFlight::new(1, 8));
        let held = bound.try_enter().unwrap();
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        for i in 0..5 {
            let (bound, order) = (bound.clone(), order.clone());
            tasks.push(tokio::spawn(async move {
                let slot = bound.enter(Some(Duration::from_secs(60))).await.unwrap();
                order.lock().unwrap().push(i);
                settle().await;
                drop(slot);
            }));
            settle().await;
        }
        // A newcomer does not jump the queue while others wait.
        assert!(bound.try_enter().is_none());
        drop(held);
        for task in tasks {
            task.await.unwrap();
        }
        assert_eq!(*order.lock().unwrap(), vec![0, 1, 2, 3, 4]);
        assert_eq!(free(&bound), 1);
        assert_eq!(bound.state.load(Relaxed) & QUEUED, 0);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_waiter_gives_up_at_its_deadline_and_the_line_moves_on() {
        let bound = Arc::new(InFlight::new(1, 8));
        let slot = bound.try_enter().unwrap();
        let late = bound.enter(Some(Duration::from_millis(100))).await;
        assert_eq!(late.err(), Some(Refused::Deadline));
        // The closed sender it left behind is skipped: the place goes to the
        // next live waiter, or back to the pool.
        let (b2, next) = (bound.clone(), tokio::sync::oneshot::channel::<()>());
        let (ready, waiting) = next;
        let task = tokio::spawn(async move {
            let _ = ready.send(());
            b2.enter(Some(Duration::from_secs(60))).await.is_ok()
        });
        waiting.await.unwrap();
        settle().await;
        drop(slot);
        assert!(task.await.unwrap());
        assert_eq!(free(&bound), 1);
        assert_eq!(bound.state.load(Relaxed) & QUEUED, 0);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_full_queue_refuses_at_once() {
        let bound = Arc::new(InFlight::new(1, 1));
        let slot = bound.try_enter().unwrap();
        let b2 = bound.clone();
        let waiter = tokio::spawn(async move { b2.enter(None).await.is_ok() });
        settle().await;
        assert_eq!(bound.enter(None).await.err(), Some(Refused::QueueFull));
        drop(slot);
        assert!(waiter.await.unwrap());
        let none_wait = InFlight::new(1, 0);
        let _held = none_wait.try_enter().unwrap();
        assert_eq!(none_wait.enter(None).await.err(), Some(Refused::QueueFull));
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_place_granted_to_a_cancelled_waiter_is_handed_on() {
        let bound = InFlight::new(1, 8);
        let slot = bound.try_enter().unwrap();
        let Ok(Queued::Waiting(rx)) = bound.queue_up() else {
            panic!("expected to wait");
        };
        let waiter = Waiter {
            in_flight: &bound,
            rx: Some(rx),
        };
        // Granted, then dropped before it saw the grant.
        drop(slot);
        drop(waiter);
        assert_eq!(free(&bound), 1);
        assert_eq!(bound.state.load(Relaxed) & QUEUED, 0);
    }
}
