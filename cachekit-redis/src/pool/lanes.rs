//! Lanes: the pooled connections commands are being sent on.
//!
//! A lane is a bb8 checkout held across many commands. Sending a command
//! takes a handle to a lane (a cheap clone of its multiplexed connection)
//! under a read lock, so the hot path has neither bb8's mutex nor a clock
//! read. bb8 still opens connections, counts them against `pool_size`,
//! replenishes `min_idle`, closes idle ones and discards broken ones; a lane
//! only borrows a connection from it for as long as the lane is in use.
//!
//! Commands fill one lane before the next: with `n` commands in flight
//! (the pool's slot count, so no per-lane counter is kept) a command goes
//! to lane `(n - 1) / LANE_DEPTH`. One connection's pipeline batches many
//! commands into one write and one read; spreading them over several
//! connections costs more system calls and task wake-ups than it saves.
//! When the lane a command should go to does not exist, the command goes
//! to the last lane and another is opened in the background, up to
//! `pool_size`.
//!
//! Once a lane is marked broken, the next command drops it (bb8 discards
//! the connection). Every [`TICK`] lanes used by no command since the
//! previous tick, and lanes older than [`MAX_LIFETIME`], are handed back
//! to bb8, whose idle timeout then closes connections a burst opened.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, PoisonError, RwLock, Weak};
use std::time::{Duration, Instant};

use bb8::{PooledConnection, RunError};
use cachekit_core::runtime::{on_task_runtime, task_runtime};
use cachekit_core::Error;

use super::{ConnState, Link, Manager};
use crate::errors::Target;

/// Commands awaiting replies on one lane before the next lane is used.
pub(crate) const LANE_DEPTH: u32 = 64;

/// How often unused lanes are handed back to bb8.
const TICK: Duration = Duration::from_secs(5);

/// Lanes older than this are retired, as bb8's `max_lifetime` would.
pub(crate) const MAX_LIFETIME: Duration = Duration::from_secs(30 * 60);

struct Lane {
    conn: Link,
    state: Arc<ConnState>,
    // Held, not used: while it lives the connection counts as checked out.
    _pooled: PooledConnection<'static, Manager>,
}

impl Lane {
    fn handle(&self) -> Handle {
        let state = &self.state;
        // Read first: a store on every command would bounce the cache line.
        if !state.used.load(Ordering::Relaxed) {
            state.used.store(true, Ordering::Relaxed);
        }
        Handle {
            conn: self.conn.clone(),
            state: state.clone(),
        }
    }
}

/// One command's share of a lane.
pub(crate) struct Handle {
    pub(crate) conn: Link,
    pub(crate) state: Arc<ConnState>,
}

/// Why no lane could be had.
pub(crate) enum OpenError {
    /// bb8 could not hand out or open a connection within its timeout.
    TimedOut,
    /// Opening a connection failed.
    Failed(Error),
}

/// The lanes of one pool.
pub(crate) struct Lanes {
    pool: bb8::Pool<Manager>,
    target: Arc<Target>,
    max_lanes: usize,
    lanes: RwLock<Vec<Lane>>,
    /// One task at a time opens a lane when none is usable, so that a burst
    /// of commands after a restart waits for one connection instead of
    /// checking out every connection the pool has.
    opening: tokio::sync::Mutex<()>,
    growing: AtomicBool,
}

impl Lanes {
    /// Lanes over `pool`, with a background task that hands unused lanes
    /// back to it.
    pub(crate) fn new(pool: bb8::Pool<Manager>, target: Arc<Target>, max_lanes: u32) -> Arc<Self> {
        let lanes = Arc::new(Self {
            pool,
            target,
            max_lanes: usize::try_from(max_lanes).unwrap_or(usize::MAX),
            lanes: RwLock::new(Vec::new()),
            opening: tokio::sync::Mutex::new(()),
            growing: AtomicBool::new(false),
        });
        if let Some(runtime) = task_runtime() {
            runtime.spawn(maintain(Arc::downgrade(&lanes)));
        }
        lanes
    }

    pub(crate) fn pool(&self) -> &bb8::Pool<Manager> {
        &self.pool
    }

    /// A handle to the lane for a command that makes `in_flight`; `None`
    /// when there is no usable lane.
    pub(crate) fn pick(self: &Arc<Self>, in_flight: u32) -> Option<Handle> {
        let wanted = (in_flight.saturating_sub(1) / LANE_DEPTH) as usize;
        let lanes = self.lanes.read().unwrap_or_else(PoisonError::into_inner);
        let mut chosen = None;
        let mut live = 0;
        let mut reached = false;
        let mut broken = false;
        for lane in lanes.iter() {
            if lane.state.is_broken() {
                broken = true;
                continue;
            }
            chosen = Some(lane);
            if live == wanted {
                reached = true;
                break;
            }
            live += 1;
        }
        let grow = chosen.is_some() && !reached && lanes.len() < self.max_lanes;
        let handle = chosen.map(Lane::handle);
        drop(lanes);
        if broken {
            self.remove(|lane| lane.state.is_broken());
        }
        if grow {
            self.grow();
        }
        handle
    }

    /// Waits for a usable lane, opening one if no other task is.
    ///
    /// The caller bounds the wait (and reports connection failures that
    /// another task met meanwhile).
    ///
    /// The opening runs on [`task_runtime`]: a task that holds `opening` must
    /// not be left waiting on a current-thread runtime that a blocking call
    /// then blocks.
    pub(crate) async fn open(self: &Arc<Self>) -> std::result::Result<Handle, OpenError> {
        let lanes = self.clone();
        on_task_runtime(async move { lanes.open_here().await })
            .await
            .unwrap_or_else(|join| {
                Err(OpenError::Failed(Error::new(
                    cachekit_core::ErrorKind::Connection,
                    format!(
                        "cannot connect to Redis at {}: the task opening the connection ended early ({join}); the next operation tries again",
                        self.target
                    ),
                )))
            })
    }

    async fn open_here(self: &Arc<Self>) -> std::result::Result<Handle, OpenError> {
        let _opening = self.opening.lock().await;
        if let Some(handle) = self.pick(1) {
            return Ok(handle);
        }
        loop {
            // bb8 applies checkout_timeout itself.
            let pooled = match self.pool.get_owned().await {
                Ok(pooled) => pooled,
                Err(RunError::User(err)) => return Err(OpenError::Failed(err)),
                Err(RunError::TimedOut) => return Err(OpenError::TimedOut),
            };
            // Dropping a broken one makes bb8 discard it.
            if !pooled.state.is_broken() {
                return Ok(self.add(pooled));
            }
        }
    }

    fn add(&self, pooled: PooledConnection<'static, Manager>) -> Handle {
        let lane = Lane {
            conn: pooled.inner.clone(),
            state: pooled.state.clone(),
            _pooled: pooled,
        };
        let handle = lane.handle();
        self.lanes
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .push(lane);
        handle
    }

    /// Opens one more lane in the background, unless one is being opened.
    fn grow(self: &Arc<Self>) {
        let Some(runtime) = task_runtime() else {
            return;
        };
        if self.growing.swap(true, Ordering::AcqRel) {
            return;
        }
        let lanes = self.clone();
        runtime.spawn(async move {
            // A failure reaches the pool's error sink; commands keep using
            // the lanes there are.
            if let Ok(pooled) = lanes.pool.get_owned().await {
                let room = lanes
                    .lanes
                    .read()
                    .unwrap_or_else(PoisonError::into_inner)
                    .len()
                    < lanes.max_lanes;
                if room && !pooled.state.is_broken() {
                    drop(lanes.add(pooled));
                }
            }
            lanes.growing.store(false, Ordering::Release);
        });
    }

    /// Hands the lanes `retire` picks back to bb8, outside the lock.
    fn remove(&self, mut retire: impl FnMut(&Lane) -> bool) {
        let retired: Vec<Lane> = {
            let mut lanes = self.lanes.write().unwrap_or_else(PoisonError::into_inner);
            let (retired, kept) = lanes.drain(..).partition(|lane| retire(lane));
            *lanes = kept;
            retired
        };
        drop(retired);
    }

    /// Hands back the lanes no command used since the last call, and those
    /// past [`MAX_LIFETIME`].
    fn release_unused(&self) {
        let now = Instant::now();
        self.remove(|lane| {
            let state = &lane.state;
            // A command still waiting on a lane handed back keeps its
            // handle: the connection is multiplexed.
            let used = state.used.swap(false, Ordering::Relaxed);
            state.is_broken() || now.duration_since(state.opened) >= MAX_LIFETIME || !used
        });
    }
}

impl Drop for Lanes {
    fn drop(&mut self) {
        // The pool goes away with the lanes: a broken connection handed back
        // as such would make bb8 spawn a replacement (and panic outside a
        // runtime), so every lane returns as a healthy one.
        let lanes = self.lanes.get_mut().unwrap_or_else(PoisonError::into_inner);
        for lane in lanes.iter() {
            lane.state.broken.store(false, Ordering::Relaxed);
        }
    }
}

async fn maintain(lanes: Weak<Lanes>) {
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The first tick completes at once.
    tick.tick().await;
    loop {
        tick.tick().await;
        let Some(lanes) = lanes.upgrade() else {
            return;
        };
        lanes.release_unused();
    }
}
