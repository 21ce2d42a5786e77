//! One behavioural suite that every [`Backend`] must pass.
//!
//! The suite is a list of named checks ([`CHECKS`]), each a small async
//! function that runs alone in its own key namespace, and every failure
//! message names the backend, the check and the key, so a red test points
//! at the broken method. [`conformance_tests!`](crate::conformance_tests)
//! gives each check its own `#[tokio::test]` per backend, so one broken
//! behaviour does not hide the others; [`run_conformance`] runs them all in
//! one test.

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
mod test_macro;
mod ttl;

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use cachekit_core::{Backend, Ttl};

pub use test_macro::{ConformanceSubject, WithGuard};

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

/// The one list of checks, as `module::check_name`, in the order
/// [`run_conformance`] runs them. It hands the list to the macro named in
/// brackets, so [`CHECKS`] and `conformance_tests!` cannot disagree.
#[doc(hidden)]
#[macro_export]
macro_rules! __conformance_checks {
    ([$($then:tt)*] $($args:tt)*) => {
        $($then)*! {
            [$($args)*]
            basic::a_missing_key_reads_as_missing,
            basic::set_round_trips_and_overwrites,
            basic::an_empty_value_is_not_missing,
            basic::binary_values_round_trip,
            basic::a_one_mib_value_round_trips,
            basic::delete_reports_whether_the_key_existed,
            ttl::ttl_is_reported,
            ttl::set_without_ttl_clears_the_expiry,
            ttl::expire_changes_the_lifetime,
            ttl::get_with_ttl_reports_value_and_ttl,
            ttl::a_zero_ttl_expires_at_once,
            ttl::a_huge_ttl_is_clamped,
            ttl::expired_keys_are_gone_from_every_read_path,
            batch::get_many_keeps_order,
            batch::set_many_stores_every_entry,
            batch::set_if_absent_stores_only_once,
            batch::set_if_absent_race_has_one_winner,
            prefix::delete_prefix_refuses_an_empty_prefix,
            prefix::delete_prefix_removes_exactly_its_keys,
            prefix::delete_prefix_matches_glob_characters_literally,
            prefix::unusual_keys_round_trip,
            basic::health_reports_healthy_under_its_name,
        }
    };
}

type CheckFuture<'c> = Pin<Box<dyn Future<Output = ()> + Send + 'c>>;

/// One named behaviour of the [`Backend`] contract, e.g. `ttl_is_reported`.
///
/// ```no_run
/// use cachekit_core::MemoryBackend;
///
/// # #[tokio::main] async fn main() -> cachekit_core::Result<()> {
/// let backend = MemoryBackend::builder().build()?;
/// cachekit_testkit::Check::named("ttl_is_reported").run(&backend).await;
/// # Ok(()) }
/// ```
pub struct Check {
    name: &'static str,
    body: for<'c, 'b> fn(&'c Ctx<'b>) -> CheckFuture<'c>,
}

macro_rules! check_list {
    ([] $($module:ident::$name:ident,)*) => {
        /// Every check of the suite, in the order [`run_conformance`] runs them.
        pub const CHECKS: &[Check] = &[$(Check {
            name: stringify!($name),
            body: |ctx| Box::pin($module::$name(ctx)),
        },)*];
    };
}
crate::__conformance_checks!([check_list]);

impl fmt::Debug for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Check").field(&self.name).finish()
    }
}

impl Check {
    /// The check's name, which is also its test's name.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The check called `name`.
    ///
    /// # Panics
    ///
    /// When no check in [`CHECKS`] has that name.
    pub fn named(name: &str) -> &'static Check {
        match CHECKS.iter().find(|check| check.name == name) {
            Some(check) => check,
            None => panic!("no conformance check is named {name:?}; see cachekit_testkit::CHECKS"),
        }
    }

    /// Runs this check alone against `backend`, under a fresh namespace it
    /// removes when the check passes.
    ///
    /// Must run inside a Tokio runtime with timers enabled.
    ///
    /// # Panics
    ///
    /// On a violation of the contract, or when a backend call returns an
    /// error, with a message naming the backend, the check and the key.
    pub async fn run(&self, backend: &dyn Backend) {
        let root = Ctx::new(backend);
        (self.body)(&root.within(self.name)).await;
        root.delete_prefix(&root.ns).await;
    }
}

/// Runs every check in [`CHECKS`] against `backend`, panicking with a
/// precise message at the first violation of the [`Backend`] contract.
///
/// Prefer [`conformance_tests!`](crate::conformance_tests), which reports
/// each failing check as its own test; this function suits a backend that
/// is costly to set up (a Sentinel set, a cluster) or a test that asserts
/// something about the backend after the whole suite.
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
    for check in CHECKS {
        (check.body)(&root.within(check.name)).await;
    }
    root.delete_prefix(&root.ns).await;
}

/// A check's view of the backend: its own key namespace, and wrappers that
/// turn backend errors into failures naming the call.
pub(crate) struct Ctx<'a> {
    backend: &'a dyn Backend,
    ns: String,
    /// The check running, for failure messages.
    check: &'static str,
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
            check: "cleanup",
        }
    }

    /// The context for check `name`: a namespace of its own inside this one.
    fn within(&self, name: &'static str) -> Ctx<'a> {
        Ctx {
            backend: self.backend,
            ns: format!("{}{name}:", self.ns),
            check: name,
        }
    }

    /// The full key for `name` in this check's namespace.
    pub(crate) fn key(&self, name: &str) -> String {
        format!("{}{name}", self.ns)
    }

    // The panic's location is then the check's line, not this one.
    #[track_caller]
    pub(crate) fn fail(&self, message: impl fmt::Display) -> ! {
        panic!(
            "backend conformance failed for {:?} in `{}`: {message}",
            self.backend.name(),
            self.check
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
    #[track_caller]
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
