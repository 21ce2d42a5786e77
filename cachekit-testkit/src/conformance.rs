//! One behavioural suite that every [`Backend`] must pass.
//!
//! Each check lives in a small function named after the behaviour, and
//! every failure message names the backend, the check and the key, so a
//! red test points at the broken method.

/// Fails the check with a formatted message unless the condition holds.
macro_rules! ensure {
    ($ctx:expr, $cond:expr, $($msg:tt)+) => {
        if !$cond {
            $ctx.fail(format_args!($($msg)+));
        }
    };
}

mod basic;
mod batch;
mod prefix;
mod ttl;

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use cachekit_core::{Backend, Ttl};

/// How far a reported remaining TTL may exceed the TTL that was set.
///
/// Backends with coarse clocks round up: the file backend stores whole
/// seconds, so a 60 s TTL may read back as up to 61 s, and a 200 ms TTL may
/// last up to a second. Rounding *down* below zero is never tolerated.
pub(crate) const TTL_ROUNDING: Duration = Duration::from_secs(1);

/// A TTL long enough that no check outlives it.
pub(crate) const LONG_TTL: Duration = Duration::from_secs(60);

/// A TTL short enough to watch run out.
pub(crate) const SHORT_TTL: Duration = Duration::from_millis(200);

/// Slack on top of `SHORT_TTL + TTL_ROUNDING` before an unexpired key fails
/// the suite; generous because CI machines stall.
const EXPIRY_SLACK: Duration = Duration::from_secs(5);

/// Runs the whole suite against `backend`, panicking with a precise message
/// at the first violation of the [`Backend`] contract.
///
/// Keys live under a fresh namespace (`ck-conf-{pid}-{nanos}-{n}:`), so
/// runs can share a server with each other and with other tests; the
/// namespace is removed at the end of a successful run. Pass an
/// `Arc<dyn Backend>` by dereferencing it: `run_conformance(&*arc)`.
///
/// Must run inside a Tokio runtime with timers enabled (`#[tokio::test]`
/// does). Expiry is checked by polling with a deadline, not by sleeping;
/// TTL checks tolerate up to one second of rounding up (see the file
/// backend, which stores whole seconds).
///
/// ```no_run
/// use cachekit_core::MemoryBackend;
///
/// # #[tokio::main] async fn main() -> cachekit_core::Result<()> {
/// let backend = MemoryBackend::builder().build()?;
/// cachekit_testkit::run_conformance(&backend).await;
/// # Ok(()) }
/// ```
///
/// # Panics
///
/// On the first violation, or when any backend call returns an error.
pub async fn run_conformance(backend: &dyn Backend) {
    let root = Ctx::new(backend);
    basic::run(&root.section("basic")).await;
    ttl::run(&root.section("ttl")).await;
    ttl::run_expiry(&root.section("expiry")).await;
    batch::run(&root.section("batch")).await;
    prefix::run(&root.section("prefix")).await;
    prefix::run_unusual_keys(&root.section("keys")).await;
    health(&root.section("health")).await;
    root.delete_prefix(&root.ns).await;
}

async fn health(ctx: &Ctx<'_>) {
    let health = ctx.backend.health().await;
    ensure!(
        ctx,
        health.healthy,
        "health() reports unhealthy: {health:?}"
    );
    ensure!(
        ctx,
        health.backend == ctx.backend.name(),
        "health().backend is {:?} but name() is {:?}",
        health.backend,
        ctx.backend.name()
    );
}

/// A check's view of the backend: its own key namespace, and wrappers that
/// turn backend errors into failures naming the call.
pub(crate) struct Ctx<'a> {
    backend: &'a dyn Backend,
    ns: String,
    section: &'static str,
}

/// Shows a value without dumping a megabyte into the panic message.
pub(crate) struct Shown<'a>(pub(crate) Option<&'a [u8]>);

impl fmt::Display for Shown<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            None => f.write_str("None"),
            Some(b) if b.len() <= 48 => write!(f, "Some({:?})", Bytes::copy_from_slice(b)),
            Some(b) => write!(
                f,
                "Some({} bytes starting {:?})",
                b.len(),
                Bytes::copy_from_slice(&b[..48])
            ),
        }
    }
}

impl<'a> Ctx<'a> {
    fn new(backend: &'a dyn Backend) -> Self {
        static RUNS: AtomicU64 = AtomicU64::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let run = RUNS.fetch_add(1, Ordering::Relaxed);
        Self {
            backend,
            ns: format!("ck-conf-{}-{nanos}-{run}:", std::process::id()),
            section: "setup",
        }
    }

    fn section(&self, name: &'static str) -> Ctx<'a> {
        Ctx {
            backend: self.backend,
            ns: format!("{}{name}:", self.ns),
            section: name,
        }
    }

    /// The full key for `name` in this check's namespace.
    pub(crate) fn key(&self, name: &str) -> String {
        format!("{}{name}", self.ns)
    }

    pub(crate) fn fail(&self, message: impl fmt::Display) -> ! {
        panic!(
            "backend conformance failed for {:?} in `{}`: {message}",
            self.backend.name(),
            self.section
        )
    }

    fn ok<T>(&self, result: cachekit_core::Result<T>, call: impl FnOnce() -> String) -> T {
        match result {
            Ok(value) => value,
            Err(err) => self.fail(format_args!("{} returned an error: {err}", call())),
        }
    }

    pub(crate) async fn get(&self, key: &str) -> Option<Bytes> {
        let result = self.backend.get(key).await;
        self.ok(result, || format!("get({key:?})"))
    }

    pub(crate) async fn get_with_ttl(&self, key: &str) -> Option<(Bytes, Ttl)> {
        let result = self.backend.get_with_ttl(key).await;
        self.ok(result, || format!("get_with_ttl({key:?})"))
    }

    pub(crate) async fn set(&self, key: &str, value: impl Into<Bytes>, ttl: Option<Duration>) {
        let result = self.backend.set(key, value.into(), ttl).await;
        self.ok(result, || format!("set({key:?}, _, {ttl:?})"));
    }

    pub(crate) async fn delete(&self, key: &str) -> bool {
        let result = self.backend.delete(key).await;
        self.ok(result, || format!("delete({key:?})"))
    }

    pub(crate) async fn exists(&self, key: &str) -> bool {
        let result = self.backend.exists(key).await;
        self.ok(result, || format!("exists({key:?})"))
    }

    pub(crate) async fn ttl(&self, key: &str) -> Ttl {
        let result = self.backend.ttl(key).await;
        self.ok(result, || format!("ttl({key:?})"))
    }

    pub(crate) async fn expire(&self, key: &str, ttl: Option<Duration>) -> bool {
        let result = self.backend.expire(key, ttl).await;
        self.ok(result, || format!("expire({key:?}, {ttl:?})"))
    }

    pub(crate) async fn get_many(&self, keys: &[&str]) -> Vec<Option<Bytes>> {
        let result = self.backend.get_many(keys).await;
        self.ok(result, || format!("get_many({keys:?})"))
    }

    pub(crate) async fn set_many(&self, entries: &[(&str, Bytes)], ttl: Option<Duration>) {
        let result = self.backend.set_many(entries, ttl).await;
        self.ok(result, || {
            let keys: Vec<&str> = entries.iter().map(|(k, _)| *k).collect();
            format!("set_many({keys:?}, {ttl:?})")
        });
    }

    pub(crate) async fn set_if_absent(
        &self,
        key: &str,
        value: impl Into<Bytes>,
        ttl: Option<Duration>,
    ) -> bool {
        let result = self.backend.set_if_absent(key, value.into(), ttl).await;
        self.ok(result, || format!("set_if_absent({key:?}, _, {ttl:?})"))
    }

    pub(crate) async fn delete_prefix(&self, prefix: &str) -> u64 {
        let result = self.backend.delete_prefix(prefix).await;
        self.ok(result, || format!("delete_prefix({prefix:?})"))
    }

    /// Asserts `get(key)` returns exactly `expected`.
    pub(crate) async fn expect_value(&self, key: &str, expected: Option<&[u8]>, after: &str) {
        let got = self.get(key).await;
        ensure!(
            self,
            got.as_deref() == expected,
            "get({key:?}) after {after} returned {}, expected {}",
            Shown(got.as_deref()),
            Shown(expected)
        );
    }

    /// Asserts the key has an expiry of at most `set` (plus rounding) left.
    pub(crate) fn expect_remaining(&self, ttl: Ttl, set: Duration, what: &str) {
        let ok = matches!(ttl, Ttl::Remaining(d) if d > Duration::ZERO && d <= set + TTL_ROUNDING);
        ensure!(
            self,
            ok,
            "{what} is {ttl:?}, expected Remaining(d) with 0 < d <= {set:?} (+{TTL_ROUNDING:?} rounding)"
        );
    }

    /// Polls until `get(key)` stops finding the key, failing after the
    /// TTL, its rounding and some slack have passed.
    pub(crate) async fn await_expiry(&self, key: &str, ttl: Duration, how: &str) {
        let deadline = Instant::now() + ttl + TTL_ROUNDING + EXPIRY_SLACK;
        while self.get(key).await.is_some() {
            ensure!(
                self,
                Instant::now() < deadline,
                "{key:?} ({how}) still readable {:?} after its {ttl:?} TTL",
                TTL_ROUNDING + EXPIRY_SLACK
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}
