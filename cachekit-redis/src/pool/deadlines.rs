//! Reply deadlines, kept by one watchdog thread for every pool in the
//! process.
//!
//! Every command waits for its reply under a deadline: the response
//! timeout, or the caller's nearer one. Nearly every reply comes long
//! before it, so a deadline is nearly always cancelled. A tokio timer per
//! command pays for the case that almost never happens: an insertion into
//! the runtime's timer wheel and a removal, each under the timer driver's
//! one lock, which every worker of the runtime takes for every command.
//! callgrind counts about 450 instructions for it on an L2 hit; a command
//! here costs about 200.
//!
//! Here a waiting command is an entry in a slab under one mutex: its
//! deadline and its task's waker. The watchdog thread sleeps until the
//! earliest deadline it knows of, wakes the commands whose deadline has
//! passed and sleeps again; a command whose deadline comes before the
//! watchdog's next look by more than [`SLACK`] wakes it. Under steady
//! traffic the watchdog looks about once per deadline length (every
//! [`IDLE_LOOK`] when nothing happens to be waiting), and a command costs
//! two short critical sections and one clone of its waker. A command whose
//! reply is already there when first polled registers nothing.
//!
//! General timer crates do not fit: they wake their thread (or take the
//! runtime's timer lock) for every new timer, since they are made for
//! timers that fire.
//!
//! A deadline fires when the watchdog looks: after the deadline, at most
//! [`SLACK`] plus the operating system's wake-up latency late. If the
//! watchdog thread cannot be started, [`Deadlines::global`] is `None` and
//! the pool falls back to tokio's timer.

use std::future::{poll_fn, Future};
use std::pin::pin;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError, Weak};
use std::task::{Poll, Waker};
use std::thread::{self, Thread};
use std::time::{Duration, Instant};

use slab::Slab;

/// How much earlier than the watchdog's next look a new deadline must be
/// for the command to wake the watchdog: tokio's timer resolution, so a
/// deadline is never later than it would be under a tokio timer by more
/// than this.
pub(crate) const SLACK: Duration = Duration::from_millis(1);

/// How often the watchdog looks while nothing is waiting but commands came
/// since its last look. A caller sending one command at a time leaves the
/// slab empty between commands: were the watchdog to sleep until woken
/// then, nearly every command would have to wake it. A command whose
/// deadline is nearer than this still wakes it.
const IDLE_LOOK: Duration = Duration::from_millis(100);

/// The deadline passed before the reply came.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Elapsed;

/// A watchdog and the commands it watches.
pub(crate) struct Deadlines {
    shared: Arc<Shared>,
    watchdog: Thread,
    /// Taken by tests, to see the thread end.
    #[cfg(test)]
    joined: Option<thread::JoinHandle<()>>,
}

struct Shared {
    state: Mutex<State>,
}

struct State {
    waiting: Slab<Waiting>,
    /// When the watchdog looks next; `None` while it sleeps until woken.
    next_look: Option<Instant>,
    /// Commands registered since the watchdog last looked.
    registered: u64,
}

struct Waiting {
    by: Instant,
    waker: Waker,
    /// Woken by the watchdog: it is not looked at again.
    woken: bool,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // Nothing panics while the lock is held; were it poisoned, the slab
        // would still be whole.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Deadlines {
    /// The process's watchdog, started on first use; `None` if its thread
    /// could not be started.
    pub(crate) fn global() -> Option<&'static Deadlines> {
        static GLOBAL: OnceLock<Option<Deadlines>> = OnceLock::new();
        GLOBAL
            .get_or_init(|| match Deadlines::start() {
                Ok(deadlines) => Some(deadlines),
                Err(err) => {
                    tracing::error!(
                        error = %err,
                        "cachekit-redis: could not start the reply-deadline thread; using tokio timers"
                    );
                    None
                }
            })
            .as_ref()
    }

    /// A watchdog with a thread of its own, which ends when this is dropped.
    pub(crate) fn start() -> std::io::Result<Self> {
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                waiting: Slab::new(),
                next_look: None,
                registered: 0,
            }),
        });
        let weak = Arc::downgrade(&shared);
        let handle = thread::Builder::new()
            .name("cachekit-deadlines".into())
            .spawn(move || watch(&weak))?;
        Ok(Self {
            shared,
            watchdog: handle.thread().clone(),
            #[cfg(test)]
            joined: Some(handle),
        })
    }

    /// Runs `fut` until it finishes or `by` passes, whichever comes first.
    pub(crate) async fn timeout<F: Future>(
        &self,
        by: Instant,
        fut: F,
    ) -> Result<F::Output, Elapsed> {
        let mut fut = pin!(fut);
        let mut entry = Entry {
            deadlines: self,
            key: None,
        };
        poll_fn(|cx| {
            if let Poll::Ready(out) = fut.as_mut().poll(cx) {
                return Poll::Ready(Ok(out));
            }
            match entry.key {
                None => entry.key = Some(self.register(by, cx.waker())),
                // Polled again with no reply: woken by the watchdog, by
                // something else `fut` waits on, or spuriously.
                Some(key) => {
                    if Instant::now() >= by {
                        return Poll::Ready(Err(Elapsed));
                    }
                    self.rewake(key, cx.waker());
                }
            }
            Poll::Pending
        })
        .await
    }

    fn register(&self, by: Instant, waker: &Waker) -> usize {
        let mut state = self.shared.lock();
        let key = state.waiting.insert(Waiting {
            by,
            waker: waker.clone(),
            woken: false,
        });
        state.registered += 1;
        let wake = state.next_look.is_none_or(|next| by + SLACK < next);
        if wake {
            // Later commands compare against this, so that a burst of them
            // wakes the watchdog once.
            state.next_look = Some(by);
        }
        drop(state);
        if wake {
            self.watchdog.unpark();
        }
        key
    }

    /// Keeps the waker of the task polling now.
    fn rewake(&self, key: usize, waker: &Waker) {
        let mut state = self.shared.lock();
        if let Some(waiting) = state.waiting.get_mut(key) {
            if !waiting.waker.will_wake(waker) {
                waiting.waker.clone_from(waker);
            }
        }
    }

    #[cfg(test)]
    fn waiting(&self) -> usize {
        self.shared.lock().waiting.len()
    }

    /// Something waits, and the watchdog has looked since the last command
    /// came.
    #[cfg(test)]
    fn settled(&self) -> bool {
        let state = self.shared.lock();
        !state.waiting.is_empty() && state.registered == 0 && state.next_look.is_some()
    }
}

impl Drop for Deadlines {
    fn drop(&mut self) {
        // Wakes the watchdog to find its state gone, so that it ends.
        self.watchdog.unpark();
    }
}

/// A command's place in the slab, given back when the command is done.
struct Entry<'a> {
    deadlines: &'a Deadlines,
    key: Option<usize>,
}

impl Drop for Entry<'_> {
    fn drop(&mut self) {
        if let Some(key) = self.key {
            // The watchdog never removes an entry, so the key is still ours.
            let _ = self.deadlines.shared.lock().waiting.try_remove(key);
        }
    }
}

/// The watchdog's loop: wake whoever's deadline passed, sleep until the
/// next one.
fn watch(shared: &Weak<Shared>) {
    let mut due = Vec::new();
    loop {
        let Some(shared) = shared.upgrade() else {
            return;
        };
        let sleep = {
            let mut state = shared.lock();
            let now = Instant::now();
            let mut next: Option<Instant> = None;
            for (_, waiting) in state.waiting.iter_mut().filter(|(_, w)| !w.woken) {
                if waiting.by <= now {
                    waiting.woken = true;
                    due.push(waiting.waker.clone());
                } else {
                    next = Some(next.map_or(waiting.by, |next| next.min(waiting.by)));
                }
            }
            // Nothing waiting: keep looking while commands come, sleep
            // until woken once they stop.
            if next.is_none() && state.registered > 0 {
                next = Some(now + IDLE_LOOK);
            }
            state.registered = 0;
            state.next_look = next;
            next.map(|next| next - now)
        };
        drop(shared);
        // Outside the lock: waking a task can wake a runtime's thread.
        due.drain(..).for_each(Waker::wake);
        match sleep {
            Some(sleep) => thread::park_timeout(sleep),
            None => thread::park(),
        }
    }
}

#[cfg(test)]
mod tests {
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
}
