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
//! Here a waiting command is an entry in a slab: its deadline and its
//! task's waker. The watchdog thread sleeps until the earliest deadline it
//! knows of, wakes the commands whose deadline has passed and sleeps
//! again; a command whose deadline comes before the watchdog's next look by
//! more than [`SLACK`] wakes it. Under steady traffic the watchdog looks
//! about once per deadline length (every [`IDLE_LOOK`] when nothing happens
//! to be waiting), and a command costs two short critical sections and one
//! clone of its waker. A command whose reply is already there when first
//! polled registers nothing.
//!
//! The slab is split into [shards](Shard), each on cache lines of its own,
//! and a thread always uses the same shard: a command enters and leaves
//! the table on the thread its task runs on, so the workers of a runtime do
//! not pass one lock's cache line between them for every command. Only the
//! watchdog visits every shard. When it looks next is an atomic that
//! commands read without a lock (see [`Shared::next_look`]).
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
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError, Weak};
use std::task::{Poll, Waker};
use std::thread::{self, Thread};
use std::time::{Duration, Instant};

use crossbeam_utils::CachePadded;
use slab::Slab;

/// How much earlier than the watchdog's next look a new deadline must be
/// for the command to wake the watchdog: tokio's timer resolution, so a
/// deadline is never later than it would be under a tokio timer by more
/// than this.
pub(crate) const SLACK: Duration = Duration::from_millis(1);

/// [`SLACK`] in the nanoseconds of [`Shared::next_look`].
#[allow(clippy::cast_possible_truncation)] // one millisecond
const SLACK_NANOS: u64 = SLACK.as_nanos() as u64;

/// How often the watchdog looks while nothing is waiting but commands came
/// since its last look. A caller sending one command at a time leaves the
/// slab empty between commands: were the watchdog to sleep until woken
/// then, nearly every command would have to wake it. A command whose
/// deadline is nearer than this still wakes it.
const IDLE_LOOK: Duration = Duration::from_millis(100);

/// Shards per available core: threads get shards in turn, and a runtime's
/// workers share one only if more threads than this use the table.
const SHARDS_PER_CORE: usize = 4;

/// The most shards: the watchdog locks each of them when it looks.
const MAX_SHARDS: usize = 256;

/// The flag of [`Shared::next_look`] set while the watchdog is looking.
const LOOKING: u64 = 1 << 63;

/// [`Shared::next_look`] while the watchdog sleeps until woken; the
/// latest instant it can hold.
const ASLEEP: u64 = LOOKING - 1;

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
    shards: Box<[CachePadded<Shard>]>,
    /// When the watchdog looks next, in nanoseconds since `epoch`
    /// ([`ASLEEP`]: when woken). While it looks, [`LOOKING`] is set and the
    /// rest is the earliest deadline of the commands that came meanwhile.
    ///
    /// The watchdog stores [`LOOKING`] before it visits the shards; after,
    /// it replaces it with the nearer of its plan and what the commands
    /// left, and sleeps until then. A command enters its shard first and
    /// reads this after:
    /// - a plan: the command wakes the watchdog if its deadline is nearer.
    ///   Had the watchdog started looking since, the command's entry was in
    ///   its shard before the visit (the visit is ordered after the store
    ///   of [`LOOKING`], which came after the command's read), so the look
    ///   sees it;
    /// - [`LOOKING`]: the watchdog may have visited its shard already, so
    ///   the command leaves its deadline here (an atomic minimum), which
    ///   the watchdog takes into its plan. It need not wake the watchdog,
    ///   and commands that come while the watchdog looks do not make it
    ///   look again.
    ///
    /// So no deadline goes unseen, and no lock is shared by all commands.
    next_look: AtomicU64,
    epoch: Instant,
}

/// One part of the table.
#[derive(Default)]
struct Shard(Mutex<State>);

#[derive(Default)]
struct State {
    waiting: Slab<Waiting>,
    /// Commands registered here since the watchdog last looked.
    registered: u64,
}

struct Waiting {
    by: Instant,
    waker: Waker,
    /// Woken by the watchdog: it is not looked at again.
    woken: bool,
}

impl Shard {
    fn lock(&self) -> MutexGuard<'_, State> {
        // Nothing panics while the lock is held; were it poisoned, the slab
        // would still be whole.
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Shared {
    fn new() -> Self {
        let cores = thread::available_parallelism().map_or(1, usize::from);
        let shards = cores.saturating_mul(SHARDS_PER_CORE).clamp(1, MAX_SHARDS);
        Self {
            shards: (0..shards).map(|_| CachePadded::default()).collect(),
            next_look: AtomicU64::new(ASLEEP),
            epoch: Instant::now(),
        }
    }

    /// `at` as a [`next_look`](Self::next_look) value, earlier than
    /// [`ASLEEP`].
    fn encode(&self, at: Instant) -> u64 {
        let nanos = at.saturating_duration_since(self.epoch).as_nanos();
        u64::try_from(nanos).map_or(ASLEEP - 1, |nanos| nanos.min(ASLEEP - 1))
    }

    /// A [`next_look`](Self::next_look) value as an instant; `None` for
    /// [`ASLEEP`].
    fn decode(&self, next: u64) -> Option<Instant> {
        (next < ASLEEP).then(|| self.epoch + Duration::from_nanos(next))
    }

    /// The shard of the calling thread.
    fn own_shard(&self) -> usize {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        thread_local! {
            static TURN: usize = NEXT.fetch_add(1, Ordering::Relaxed);
        }
        TURN.with(|turn| turn % self.shards.len())
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
        let shared = Arc::new(Shared::new());
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
            at: None,
        };
        poll_fn(|cx| {
            if let Poll::Ready(out) = fut.as_mut().poll(cx) {
                return Poll::Ready(Ok(out));
            }
            match entry.at {
                None => entry.at = Some(self.register(by, cx.waker())),
                // Polled again with no reply: woken by the watchdog, by
                // something else `fut` waits on, or spuriously.
                Some(at) => {
                    if Instant::now() >= by {
                        return Poll::Ready(Err(Elapsed));
                    }
                    self.rewake(at, cx.waker());
                }
            }
            Poll::Pending
        })
        .await
    }

    /// Enters a waiting command: where its entry is (shard, key).
    fn register(&self, by: Instant, waker: &Waker) -> (usize, usize) {
        let shared = &*self.shared;
        let shard = shared.own_shard();
        let key = {
            let mut state = shared.shards[shard].lock();
            state.registered += 1;
            state.waiting.insert(Waiting {
                by,
                waker: waker.clone(),
                woken: false,
            })
        };
        // After the entry is in: see `Shared::next_look`.
        let by = shared.encode(by);
        let mut next = shared.next_look.load(Ordering::SeqCst);
        if next & LOOKING != 0 {
            next = shared.next_look.fetch_min(LOOKING | by, Ordering::SeqCst);
            if next & LOOKING != 0 {
                // Left for the watchdog, which is still looking.
                return (shard, key);
            }
            // The watchdog has planned meanwhile: as if read just now.
        }
        if by.saturating_add(SLACK_NANOS) < next {
            // Later commands compare against this, so that a burst of them
            // wakes the watchdog once.
            shared.next_look.fetch_min(by, Ordering::SeqCst);
            self.watchdog.unpark();
        }
        (shard, key)
    }

    /// Keeps the waker of the task polling now.
    fn rewake(&self, (shard, key): (usize, usize), waker: &Waker) {
        let mut state = self.shared.shards[shard].lock();
        if let Some(waiting) = state.waiting.get_mut(key) {
            if !waiting.waker.will_wake(waker) {
                waiting.waker.clone_from(waker);
            }
        }
    }

    #[cfg(test)]
    fn waiting(&self) -> usize {
        self.shared
            .shards
            .iter()
            .map(|s| s.lock().waiting.len())
            .sum()
    }

    /// Something waits, and the watchdog has looked since the last command
    /// came and planned its next look.
    #[cfg(test)]
    fn settled(&self) -> bool {
        let (mut waiting, mut registered) = (0, 0);
        for shard in &self.shared.shards {
            let state = shard.lock();
            waiting += state.waiting.len();
            registered += state.registered;
        }
        let next = self.shared.next_look.load(Ordering::SeqCst);
        waiting > 0 && registered == 0 && next & LOOKING == 0 && next != ASLEEP
    }
}

impl Drop for Deadlines {
    fn drop(&mut self) {
        // Wakes the watchdog to find its state gone, so that it ends.
        self.watchdog.unpark();
    }
}

/// A command's place in the table, given back when the command is done.
struct Entry<'a> {
    deadlines: &'a Deadlines,
    /// Shard and key.
    at: Option<(usize, usize)>,
}

impl Drop for Entry<'_> {
    fn drop(&mut self) {
        if let Some((shard, key)) = self.at {
            // The watchdog never removes an entry, so the key is still ours.
            let _ = self.deadlines.shared.shards[shard]
                .lock()
                .waiting
                .try_remove(key);
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
        let now = Instant::now();
        let seen = shared.visit(now, &mut due);
        let next = shared.plan(seen);
        drop(shared);
        // Outside the locks: waking a task can wake a runtime's thread.
        due.drain(..).for_each(Waker::wake);
        match next {
            Some(next) => thread::park_timeout(next.saturating_duration_since(now)),
            None => thread::park(),
        }
    }
}

impl Shared {
    /// The first half of a look: collects the wakers of the commands whose
    /// deadline is past and returns the earliest deadline still to come
    /// (`now + IDLE_LOOK` if none but commands came since the last look).
    fn visit(&self, now: Instant, due: &mut Vec<Waker>) -> Option<Instant> {
        // Before any shard is visited: see `next_look`.
        self.next_look.store(LOOKING | ASLEEP, Ordering::SeqCst);
        let mut next: Option<Instant> = None;
        let mut registered = 0;
        for shard in &self.shards {
            let mut state = shard.lock();
            for (_, waiting) in state.waiting.iter_mut().filter(|(_, w)| !w.woken) {
                if waiting.by <= now {
                    waiting.woken = true;
                    due.push(waiting.waker.clone());
                } else {
                    next = Some(next.map_or(waiting.by, |next| next.min(waiting.by)));
                }
            }
            registered += std::mem::take(&mut state.registered);
        }
        // Nothing waiting: keep looking while commands come, sleep until
        // woken once they stop.
        if next.is_none() && registered > 0 {
            next = Some(now + IDLE_LOOK);
        }
        next
    }

    /// The second half: when to look next, given what [`visit`](Self::visit)
    /// saw and the deadlines of the commands that came meanwhile; `None`:
    /// when woken.
    fn plan(&self, seen: Option<Instant>) -> Option<Instant> {
        let plan = seen.map_or(ASLEEP, |seen| self.encode(seen));
        let left = match self
            .next_look
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |left| {
                Some(plan.min(left & !LOOKING))
            }) {
            Ok(left) | Err(left) => left,
        };
        self.decode(plan.min(left & !LOOKING))
    }
}

#[cfg(test)]
mod tests;
