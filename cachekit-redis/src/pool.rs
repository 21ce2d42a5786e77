//! The bb8 pool of redis-rs connections and the one place commands are sent.
//!
//! A command holds an *in-flight slot* plus a handle to one of the pool's
//! multiplexed connections, so commands from concurrent tasks pipeline on
//! it as they do on a bare redis-rs `MultiplexedConnection`; an exclusive
//! connection per command would cap throughput at `pool_size` round trips
//! at a time. The handle comes from a [lane](lanes): a connection checked
//! out of bb8 once and shared by many commands, so that a command costs no
//! bb8 checkout. bb8 opens, reaps and discards connections; a fair
//! semaphore of `max_in_flight` slots bounds the commands awaiting replies,
//! and when every slot stays busy for `checkout_timeout` the operation
//! fails as pool-exhausted.
//!
//! Every send has the response deadline; a connection that timed out or
//! failed at the socket level is marked broken so that the pool drops it.
//! An operation run [`within`](cachekit_core::deadline::within) a nearer
//! deadline (a `TieredCache`'s `l2_timeout`) waits no longer than that, on
//! the same single deadline, and its connection is not condemned for it.
//! The deadlines are kept by a [watchdog thread](deadlines), not by a tokio
//! timer per command.

mod clients;
mod cluster;
mod coalesce;
mod deadlines;
mod lanes;
mod link;
mod listen;
mod manager;
mod sentinel;
mod tls;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cachekit_core::backend::PoolState;
use cachekit_core::{deadline, Error, ErrorKind, Result};
use redis::aio::ConnectionLike;
use redis::cluster_routing::{RoutingInfo, SingleNodeRoutingInfo};
use redis::{FromRedisValue, RedisResult, Value};
use tokio::sync::watch;

use self::deadlines::Deadlines;
use self::lanes::{Handle, Lanes, OpenError};
use crate::config::bench::{BenchCheckout, BenchDeadlines};
use crate::errors::{self, Op, Target};

pub(crate) use clients::{Clients, Endpoint};
pub(crate) use cluster::{primaries, served_slots, SLOTS};
pub(crate) use link::Link;
pub(crate) use listen::Targets;
pub(crate) use manager::Manager;
pub(crate) use sentinel::Sentinels;

/// What can be sent on a connection: one command or one pipeline.
#[derive(Clone, Copy)]
pub(crate) enum Request<'a> {
    Cmd(&'a redis::Cmd),
    Pipe(&'a redis::Pipeline),
    /// A command for one cluster node (`host`, `port`), such as SCAN; on
    /// a single server, the server.
    At(&'a redis::Cmd, &'a str, u16),
}

impl<'a> From<&'a redis::Cmd> for Request<'a> {
    fn from(cmd: &'a redis::Cmd) -> Self {
        Request::Cmd(cmd)
    }
}

impl<'a> From<&'a redis::Pipeline> for Request<'a> {
    fn from(pipe: &'a redis::Pipeline) -> Self {
        Request::Pipe(pipe)
    }
}

impl Request<'_> {
    async fn send<T: FromRedisValue>(self, conn: &mut Link) -> RedisResult<T> {
        match (self, conn) {
            (Request::At(cmd, host, port), Link::Cluster(conn)) => {
                let node = SingleNodeRoutingInfo::ByAddress {
                    host: host.to_owned(),
                    port,
                };
                let value = conn
                    .route_command(cmd.clone(), RoutingInfo::SingleNode(node))
                    .await?
                    .extract_error()?;
                Ok(redis::from_redis_value(value)?)
            }
            (Request::Cmd(cmd), Link::Cluster(conn)) => {
                let value = match conn
                    .req_packed_command(cmd)
                    .await
                    .and_then(Value::extract_error)
                {
                    Ok(value) => value,
                    Err(err) => cluster::after_redirects(conn, cmd, err).await?,
                };
                Ok(redis::from_redis_value(value)?)
            }
            (Request::Cmd(cmd) | Request::At(cmd, ..), conn) => cmd.query_async(conn).await,
            (Request::Pipe(pipe), conn) => pipe.query_async(conn).await,
        }
    }
}

/// Whether a command may be sent again after its connection broke.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Retry {
    /// Sending it twice has the effect of sending it once (GET, SET, UNLINK...).
    Idempotent,
    /// Never resend (scripts whose second run could see their own first write).
    Never,
}

/// How many connections this process has opened.
static OPENED: AtomicU64 = AtomicU64::new(0);

/// A pooled connection. Its state is shared with the handles lent out, so
/// that a command failing on a handle condemns the pooled connection.
pub(crate) struct Conn {
    pub(crate) inner: Link,
    pub(crate) state: Arc<ConnState>,
}

/// What every handle to one connection shares.
#[derive(Debug)]
pub(crate) struct ConnState {
    broken: AtomicBool,
    /// When it was opened, for the lanes' lifetime limit.
    opened: Instant,
    /// Its place in the order connections were opened (process-wide): one
    /// opened before an operation started may have died unnoticed while
    /// idle in the pool. Cheaper than reading the clock per command.
    seq: u64,
    /// Whether a command used it since the lanes were last checked.
    used: AtomicBool,
    /// The task driving a connection we opened ourselves; redis-rs stops
    /// the ones it spawns when their last handle goes, and so do we.
    driver: Option<tokio::task::AbortHandle>,
    /// For a connection to the primary the sentinels named: the count of
    /// primary switches seen then, and the live count. A connection opened
    /// before the last switch is broken.
    switches: Option<(Arc<AtomicU64>, u64)>,
}

impl Drop for ConnState {
    fn drop(&mut self) {
        // A write a hung server never takes keeps the task flushing:
        // without this the task and its socket would outlive every handle.
        if let Some(driver) = &self.driver {
            driver.abort();
        }
    }
}

impl ConnState {
    pub(crate) fn is_broken(&self) -> bool {
        self.broken.load(Ordering::Relaxed)
            || self
                .switches
                .as_ref()
                .is_some_and(|(now, then)| now.load(Ordering::Relaxed) != *then)
    }
}

impl Conn {
    /// A connection; `driver` is the task driving it, if we spawned it.
    pub(crate) fn new(inner: Link, driver: Option<tokio::task::AbortHandle>) -> Self {
        Self {
            inner,
            state: Arc::new(ConnState {
                broken: AtomicBool::new(false),
                opened: Instant::now(),
                seq: OPENED.fetch_add(1, Ordering::AcqRel),
                used: AtomicBool::new(false),
                driver,
                switches: None,
            }),
        }
    }

    /// Marks the connection broken once `switches` moves past `seen`.
    pub(crate) fn until_switch(mut self, switches: Arc<AtomicU64>, seen: u64) -> Self {
        if let Some(state) = Arc::get_mut(&mut self.state) {
            state.switches = Some((switches, seen));
        }
        self
    }
}

/// The last connection failure, shared with the pool's error sink so that a
/// waiting operation can report why no connection came instead of a bare
/// timeout.
#[derive(Debug)]
pub(crate) struct Failures {
    last: Mutex<Option<(ErrorKind, String)>>,
    generation: watch::Sender<u64>,
}

impl Failures {
    fn new() -> Self {
        Self {
            last: Mutex::new(None),
            generation: watch::channel(0).0,
        }
    }

    fn record(&self, err: &Error) {
        if let Ok(mut last) = self.last.lock() {
            *last = Some((err.kind(), err.message().to_owned()));
        }
        self.generation.send_modify(|g| *g = g.wrapping_add(1));
    }

    fn last(&self) -> Option<Error> {
        let last = self.last.lock().ok()?;
        last.as_ref()
            .map(|(kind, message)| Error::new(*kind, message.clone()))
    }
}

#[derive(Debug, Clone)]
struct Sink(Arc<Failures>);

impl bb8::ErrorSink<Error> for Sink {
    fn sink(&self, error: Error) {
        // DEBUG: the operation that needed the connection returns this
        // error, and TieredCache logs outages at a bounded rate; a WARN
        // here was one long line per call while Redis was down.
        tracing::debug!(error = %error, "cachekit-redis: opening a pooled connection failed");
        self.0.record(&error);
    }

    fn boxed_clone(&self) -> Box<dyn bb8::ErrorSink<Error>> {
        Box::new(self.clone())
    }
}

/// One checkout: an in-flight slot and a handle to a pooled connection.
struct Lease<'a> {
    handle: Handle,
    _slot: tokio::sync::SemaphorePermit<'a>,
    /// Bench-only ([`BenchCheckout::Bb8Held`]): the bb8 checkout held
    /// until the reply.
    _held: Option<bb8::PooledConnection<'a, Manager>>,
}

/// The pool with its deadlines and the server it talks to.
pub(crate) struct Pool {
    lanes: Arc<Lanes>,
    slots: tokio::sync::Semaphore,
    target: Arc<Target>,
    max_size: u32,
    max_in_flight: u32,
    response_timeout: Duration,
    checkout_timeout: Duration,
    failures: Arc<Failures>,
    /// `None` if the watchdog thread could not start: tokio timers then.
    deadlines: Option<&'static Deadlines>,
    /// Bench-only switches (`benches/layer.rs`): deadlines left to
    /// redis-rs, and how a command gets a connection.
    redis_rs_deadlines: bool,
    bench_checkout: BenchCheckout,
    /// Cluster: redis-rs reconnects to a failed node itself, so an error on
    /// one node does not condemn the connection (which spans every node).
    cluster: bool,
    /// Sentinel: a READONLY or LOADING reply means the primary moved.
    sentinels: Option<Arc<sentinel::Sentinels>>,
}

impl Pool {
    /// A pool that opens connections with `manager` when they are needed.
    pub(crate) fn new(manager: Manager, config: &crate::RedisConfig) -> Self {
        let target = manager.target();
        let sentinels = manager.sentinels();
        let cluster = manager.is_cluster();
        let failures = Arc::new(Failures::new());
        // bb8's reaper and min_idle connects are spawned on the runtime
        // entered here: not a current-thread one a blocking call may block.
        let home = cachekit_core::runtime::task_runtime();
        let _entered = home.as_ref().map(tokio::runtime::Handle::enter);
        let pool = bb8::Pool::builder()
            .max_size(config.pool_size)
            .min_idle(config.min_idle)
            // A PING per checkout would double the round trips; broken
            // connections are found by the commands themselves instead.
            .test_on_check_out(false)
            .connection_timeout(config.checkout_timeout)
            // One attempt per demand: a waiting operation learns of the
            // failure at once through the sink, and the next one retries.
            .retry_connection(false)
            // The lanes retire the connections they hold; bb8 retiring one
            // as it comes back from a lane would spawn a replacement.
            .max_lifetime(None)
            // A new lane takes the most recently used connection; those
            // opened under a burst then sit idle and bb8 reaps them
            // (idle_timeout, 10 min).
            .queue_strategy(bb8::QueueStrategy::Lifo)
            .error_sink(Box::new(Sink(failures.clone())))
            .build_unchecked(manager);
        Self {
            lanes: Lanes::new(pool, target.clone(), config.pool_size),
            slots: tokio::sync::Semaphore::new(config.max_in_flight as usize),
            target,
            max_size: config.pool_size,
            max_in_flight: config.max_in_flight,
            response_timeout: config.response_timeout,
            checkout_timeout: config.checkout_timeout,
            failures,
            deadlines: match config.bench.deadlines {
                BenchDeadlines::Watchdog => Deadlines::global(),
                BenchDeadlines::TokioTimer | BenchDeadlines::RedisRs => None,
            },
            redis_rs_deadlines: config.bench.deadlines == BenchDeadlines::RedisRs,
            bench_checkout: config.bench.checkout,
            cluster,
            sentinels,
        }
    }

    /// The sentinels, when the primary is found through them.
    pub(crate) fn sentinels(&self) -> Option<&sentinel::Sentinels> {
        self.sentinels.as_deref()
    }

    /// Whether the topology is a cluster.
    pub(crate) fn is_cluster(&self) -> bool {
        self.cluster
    }

    /// Whether the connection that produced `err` must not be reused, and
    /// whether the command may go again on a new one (the primary moved).
    fn condemns(&self, err: &redis::RedisError) -> (bool, bool) {
        if self.cluster {
            return (false, false);
        }
        if self.sentinels.is_some() && errors::primary_moved(err) {
            return (true, true);
        }
        (errors::breaks_connection(err), false)
    }

    /// Opens one connection now, returning why if it cannot, and keeps it
    /// in the pool.
    pub(crate) async fn connect_now(&self) -> Result<()> {
        let pool = self.lanes.pool();
        let conn = pool.dedicated_connection().await?;
        // Only fails when the pool is already full, and then it has
        // connections enough.
        let _ = pool.add(conn);
        Ok(())
    }

    pub(crate) fn target(&self) -> &Target {
        &self.target
    }

    pub(crate) fn state(&self) -> PoolState {
        let state = self.lanes.pool().state();
        let free = u32::try_from(self.slots.available_permits()).unwrap_or(u32::MAX);
        PoolState::new(
            self.max_size,
            state.connections,
            state.idle_connections,
            self.max_in_flight,
            self.max_in_flight.saturating_sub(free),
        )
    }

    pub(crate) fn statistics(&self) -> bb8::Statistics {
        self.lanes.pool().state().statistics
    }

    async fn checkout(&self, op: Op<'_>) -> Result<Lease<'_>> {
        // Fair (FIFO), unlike bb8's own waiting, which lets a task that just
        // returned a connection take it straight back and can starve others.
        // The fast path sets no timer.
        // The waits are boxed: kept inline they would make every command's
        // future larger than glibc's per-thread cache serves.
        let slot = match self.slots.try_acquire() {
            Ok(slot) => slot,
            Err(_) => Box::pin(self.wait_for_slot(op)).await?,
        };
        if self.bench_checkout != BenchCheckout::Lanes {
            return Box::pin(self.bb8_checkout(op, slot)).await;
        }
        let free = u32::try_from(self.slots.available_permits()).unwrap_or(u32::MAX);
        let in_flight = self.max_in_flight.saturating_sub(free);
        let handle = match self.lanes.pick(in_flight) {
            Some(handle) => handle,
            None => Box::pin(self.open_lane(op)).await?,
        };
        Ok(Lease {
            handle,
            _slot: slot,
            _held: None,
        })
    }

    /// Bench-only: a bb8 checkout per command instead of a lane.
    #[cold]
    async fn bb8_checkout<'a>(
        &'a self,
        op: Op<'_>,
        slot: tokio::sync::SemaphorePermit<'a>,
    ) -> Result<Lease<'a>> {
        let pooled = match self.lanes.pool().get().await {
            Ok(pooled) => pooled,
            Err(bb8::RunError::User(err)) => return Err(err),
            Err(bb8::RunError::TimedOut) => {
                return Err(errors::checkout_connecting(
                    &self.target,
                    op,
                    self.checkout_timeout,
                ))
            }
        };
        let handle = Handle {
            conn: pooled.inner.clone(),
            state: pooled.state.clone(),
        };
        let held = (self.bench_checkout == BenchCheckout::Bb8Held).then_some(pooled);
        Ok(Lease {
            handle,
            _slot: slot,
            _held: held,
        })
    }

    #[cold]
    async fn wait_for_slot(&self, op: Op<'_>) -> Result<tokio::sync::SemaphorePermit<'_>> {
        let (limit, caller_binds) = deadline::bound(self.checkout_timeout);
        match tokio::time::timeout(limit, self.slots.acquire()).await {
            Ok(Ok(slot)) => Ok(slot),
            _ if caller_binds => Err(errors::deadline_passed(&self.target, op)),
            _ => Err(errors::pool_exhausted(
                &self.target,
                op,
                self.max_in_flight,
                self.checkout_timeout,
            )),
        }
    }

    /// Waits for a lane to be opened, by this task or another.
    #[cold]
    async fn open_lane(&self, op: Op<'_>) -> Result<Handle> {
        let mut failures = self.failures.generation.subscribe();
        let failed = async move {
            if failures.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        };
        let (limit, caller_binds) = deadline::bound(self.checkout_timeout);
        let timed_out = || {
            if caller_binds {
                errors::deadline_passed(&self.target, op)
            } else {
                errors::checkout_connecting(&self.target, op, self.checkout_timeout)
            }
        };
        // Waiting here means a connection is being opened; a failure to open
        // one is reported at once rather than after the deadline.
        tokio::select! {
            biased;
            opened = tokio::time::timeout(limit, self.lanes.open()) => match opened {
                Ok(Ok(handle)) => Ok(handle),
                Ok(Err(OpenError::Failed(err))) => Err(err),
                Ok(Err(OpenError::TimedOut)) | Err(_) => Err(timed_out()),
            },
            () = failed => Err(self.failures.last().unwrap_or_else(timed_out)),
        }
    }

    /// Sends `req` on a checked-out connection and returns the server's
    /// answer unmapped, so that callers can treat some replies (WRONGTYPE,
    /// NOSCRIPT) specially.
    ///
    /// The outer error is a checkout failure or a response timeout.
    pub(crate) async fn run<T: FromRedisValue + Send>(
        &self,
        req: impl Into<Request<'_>>,
        op: Op<'_>,
        retry: Retry,
    ) -> Result<RedisResult<T>> {
        let req = req.into();
        // Each retry discards one dead connection; after a server restart
        // every pooled one may be dead.
        let mut retries_left = self.max_size;
        let opened_before = OPENED.load(Ordering::Acquire);
        loop {
            let mut lease = self.checkout(op).await?;
            let reused = lease.handle.state.seq < opened_before;
            let now = Instant::now();
            let (by, caller_binds) = deadline::bound_at(now, self.response_timeout);
            if caller_binds && by <= now {
                // No time left to wait for a reply: send nothing.
                return Err(errors::deadline_passed(&self.target, op));
            }
            let sent = req.send::<T>(&mut lease.handle.conn);
            let sent = match self.deadlines {
                Some(deadlines) => deadlines.timeout(by, sent).await,
                None if self.redis_rs_deadlines => Ok(sent.await),
                None => Box::pin(tokio::time::timeout_at(by.into(), sent))
                    .await
                    .map_err(|_| deadlines::Elapsed),
            };
            match sent {
                // The caller gave up first: the connection may be fine.
                Err(_elapsed) if caller_binds => {
                    return Err(errors::deadline_passed(&self.target, op));
                }
                Err(_elapsed) => {
                    lease.handle.state.broken.store(true, Ordering::Relaxed);
                    return Err(errors::response_timeout(
                        &self.target,
                        op,
                        self.response_timeout,
                    ));
                }
                Ok(Err(err)) if self.condemns(&err).0 => {
                    lease.handle.state.broken.store(true, Ordering::Relaxed);
                    // A pooled connection can have died while idle (server
                    // restart, idle `timeout`); a fresh connection failing
                    // means the server is really gone. A primary that
                    // became a replica: the next connection asks the
                    // sentinels again.
                    let again = (reused && err.is_io_error()) || self.condemns(&err).1;
                    if retry == Retry::Idempotent && again && retries_left > 0 {
                        retries_left -= 1;
                        tracing::debug!(error = %err, "cachekit-redis: retrying on a new connection");
                        continue;
                    }
                    return Ok(Err(err));
                }
                Ok(result) => return Ok(result),
            }
        }
    }

    /// [`run`](Self::run), with server errors mapped to cachekit errors.
    pub(crate) async fn query<T: FromRedisValue + Send>(
        &self,
        req: impl Into<Request<'_>>,
        op: Op<'_>,
    ) -> Result<T> {
        self.run(req, op, Retry::Idempotent)
            .await?
            .map_err(|err| errors::command_error(err, &self.target, op))
    }
}

#[cfg(test)]
mod tests;
