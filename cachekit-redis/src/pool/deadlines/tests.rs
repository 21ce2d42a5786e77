//! The watchdog against real threads and tasks, and its looks made by hand.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Wake};

use super::*;

fn deadlines() -> Deadlines {
    Deadlines::start().expect("start a watchdog thread")
}

/// Fails the test instead of hanging it when a deadline never fires.
/// (Not `tokio::time::timeout`: its last poll of `fut` would see the
/// deadline passed even if nothing had woken it.)
async fn bounded<F: Future>(fut: F) -> F::Output {
    tokio::select! {
        biased;
        () = tokio::time::sleep(Duration::from_secs(10)) => panic!("the deadline never fired"),
        out = fut => out,
    }
}

#[tokio::test]
async fn a_reply_before_the_deadline_is_returned_and_leaves_nothing_behind() {
    let deadlines = deadlines();
    let by = Instant::now() + Duration::from_secs(5);
    let got = deadlines
        .timeout(by, async {
            tokio::task::yield_now().await;
            7
        })
        .await;
    assert_eq!(got, Ok(7));
    assert_eq!(deadlines.waiting(), 0);
}

#[tokio::test]
async fn a_missing_reply_ends_at_the_deadline_and_not_before() {
    let deadlines = deadlines();
    let by = Instant::now() + Duration::from_millis(50);
    let got = bounded(deadlines.timeout(by, std::future::pending::<()>())).await;
    assert_eq!(got, Err(Elapsed));
    assert!(Instant::now() >= by);
    assert_eq!(deadlines.waiting(), 0);
}

#[tokio::test]
async fn a_passed_deadline_ends_at_once() {
    let deadlines = deadlines();
    let got = bounded(deadlines.timeout(Instant::now(), std::future::pending::<()>())).await;
    assert_eq!(got, Err(Elapsed));
}

#[tokio::test]
async fn a_nearer_deadline_wakes_a_watchdog_waiting_for_a_farther_one() {
    let deadlines = Arc::new(deadlines());
    let far = tokio::spawn({
        let deadlines = deadlines.clone();
        async move {
            let by = Instant::now() + Duration::from_secs(60);
            deadlines.timeout(by, std::future::pending::<()>()).await
        }
    });
    // Until the watchdog has looked at the far deadline and planned
    // to sleep until it.
    while !deadlines.settled() {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let by = Instant::now() + Duration::from_millis(30);
    let near = bounded(deadlines.timeout(by, std::future::pending::<()>())).await;
    assert_eq!(near, Err(Elapsed));
    assert!(Instant::now() >= by);
    far.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_one_of_many_deadlines_fires_none_early() {
    let deadlines = Arc::new(deadlines());
    let start = Instant::now();
    let tasks: Vec<_> = (0..200u64)
        .map(|i| {
            let deadlines = deadlines.clone();
            // Spread over 0-99 ms, out of order.
            let by = start + Duration::from_millis((i * 37) % 100);
            tokio::spawn(async move {
                let got = deadlines.timeout(by, std::future::pending::<()>()).await;
                (got, Instant::now() >= by)
            })
        })
        .collect();
    for task in tasks {
        let (got, not_early) = bounded(task).await.expect("task");
        assert_eq!(got, Err(Elapsed));
        assert!(not_early);
    }
    assert_eq!(deadlines.waiting(), 0);
}

struct Count(AtomicUsize);

impl Wake for Count {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn the_waker_of_the_latest_poll_is_the_one_woken() {
    let deadlines = deadlines();
    let (first, second) = (
        Arc::new(Count(AtomicUsize::new(0))),
        Arc::new(Count(AtomicUsize::new(0))),
    );
    let by = Instant::now() + Duration::from_millis(30);
    let mut fut = pin!(deadlines.timeout(by, std::future::pending::<()>()));
    let waker = Waker::from(first.clone());
    assert!(fut
        .as_mut()
        .poll(&mut Context::from_waker(&waker))
        .is_pending());
    let waker = Waker::from(second.clone());
    assert!(fut
        .as_mut()
        .poll(&mut Context::from_waker(&waker))
        .is_pending());
    let give_up = Instant::now() + Duration::from_secs(10);
    while second.0.load(Ordering::SeqCst) == 0 && Instant::now() < give_up {
        thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(second.0.load(Ordering::SeqCst), 1);
    assert_eq!(first.0.load(Ordering::SeqCst), 0);
    assert_eq!(
        fut.as_mut().poll(&mut Context::from_waker(&waker)),
        Poll::Ready(Err(Elapsed))
    );
}

/// A table without a watchdog thread, whose looks the test makes.
fn detached() -> Deadlines {
    Deadlines {
        shared: Arc::new(Shared::new()),
        // Unparking the test's thread wakes nothing.
        watchdog: thread::current(),
        joined: None,
    }
}

/// One look made by hand at `now`: when the next one is planned.
fn look(shared: &Shared, now: Instant) -> Option<Instant> {
    shared.plan(shared.visit(now, &mut Vec::new()))
}

#[test]
fn a_command_that_comes_while_the_watchdog_looks_is_in_its_plan() {
    let deadlines = detached();
    let shared = &*deadlines.shared;
    let waker = Waker::noop();
    let now = Instant::now();
    let far = now + Duration::from_secs(60);
    let near = now + Duration::from_millis(30);
    let _far = deadlines.register(far, waker);
    let seen = shared.visit(now, &mut Vec::new());
    assert_eq!(seen, Some(far));
    // Between the visit and the plan: its shard was visited already.
    let _near = deadlines.register(near, waker);
    assert_eq!(shared.plan(seen), Some(near));
    assert_eq!(
        shared.next_look.load(Ordering::SeqCst),
        shared.encode(near),
        "planned, no longer looking"
    );
    // The next look sees both and plans for the nearer.
    assert_eq!(shared.visit(now, &mut Vec::new()), Some(near));
}

#[test]
fn a_command_nearer_than_the_plan_moves_it_and_a_farther_one_does_not() {
    let deadlines = detached();
    let shared = &*deadlines.shared;
    let waker = Waker::noop();
    let now = Instant::now();
    let planned = now + Duration::from_secs(1);
    let _first = deadlines.register(planned, waker);
    assert_eq!(look(shared, now), Some(planned));
    let _later = deadlines.register(planned + Duration::from_secs(1), waker);
    assert_eq!(
        shared.next_look.load(Ordering::SeqCst),
        shared.encode(planned)
    );
    // Within SLACK of the plan: not worth a wake-up.
    let _close = deadlines.register(planned - SLACK / 2, waker);
    assert_eq!(
        shared.next_look.load(Ordering::SeqCst),
        shared.encode(planned)
    );
    let sooner = now + Duration::from_millis(10);
    let _sooner = deadlines.register(sooner, waker);
    assert_eq!(
        shared.next_look.load(Ordering::SeqCst),
        shared.encode(sooner)
    );
}

#[test]
fn a_plan_replaces_the_last_one_and_an_empty_table_sleeps_until_woken() {
    let deadlines = detached();
    let shared = &*deadlines.shared;
    let now = Instant::now();
    let soon = now + Duration::from_millis(10);
    let entry = Entry {
        deadlines: &deadlines,
        at: Some(deadlines.register(soon, Waker::noop())),
    };
    assert_eq!(look(shared, now), Some(soon));
    drop(entry);
    // A command came and went since: the next look comes IDLE_LOOK
    // later; the one after that finds nothing new.
    drop(Entry {
        deadlines: &deadlines,
        at: Some(deadlines.register(soon, Waker::noop())),
    });
    assert_eq!(look(shared, now), Some(now + IDLE_LOOK));
    assert_eq!(look(shared, now), None);
    assert_eq!(shared.next_look.load(Ordering::SeqCst), ASLEEP);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn deadlines_registered_while_the_watchdog_looks_all_fire() {
    // Short deadlines from four threads keep the watchdog looking, so
    // many commands register during a look.
    let deadlines = Arc::new(deadlines());
    let tasks: Vec<_> = (0..400u64)
        .map(|i| {
            let deadlines = deadlines.clone();
            tokio::spawn(async move {
                for round in 0..5u64 {
                    let by =
                        Instant::now() + Duration::from_micros(200 + (i * 7 + round * 13) % 900);
                    let got = deadlines.timeout(by, std::future::pending::<()>()).await;
                    assert_eq!(got, Err(Elapsed));
                    assert!(Instant::now() >= by);
                }
            })
        })
        .collect();
    for task in tasks {
        bounded(task).await.expect("task");
    }
    assert_eq!(deadlines.waiting(), 0);
}

#[test]
fn the_watchdog_thread_ends_with_its_deadlines() {
    let mut deadlines = deadlines();
    let thread = deadlines.joined.take().expect("a thread");
    drop(deadlines);
    let give_up = Instant::now() + Duration::from_secs(10);
    while !thread.is_finished() && Instant::now() < give_up {
        thread::sleep(Duration::from_millis(5));
    }
    assert!(thread.is_finished());
}
