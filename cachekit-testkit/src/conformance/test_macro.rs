//! `conformance_tests!`: one `#[tokio::test]` per check for one backend.

use cachekit_core::Backend;

/// Generates a module holding one `#[tokio::test]` per check in
/// [`CHECKS`](crate::CHECKS), named after the check, so a run lists
/// `file::ttl_is_reported ... FAILED` next to the checks that passed.
///
/// Each test evaluates the expression after `async ||` (it may `.await`)
/// to make a fresh backend and runs its one check against it. The
/// expression yields anything that is a [`ConformanceSubject`]: the backend
/// itself, or a [`WithGuard`] pairing it with what must outlive it (a temp
/// dir, a [`RedisServer`](crate::RedisServer)). It sees the items of the
/// module the macro is called in. Each test is a `#[tokio::test]`, or
/// carries the test attribute written before the module name, e.g.
/// `conformance_tests!(#[tokio::test(flavor = "multi_thread")] file, ...)`;
/// the calling crate needs `tokio` with the `macros` and `rt` features.
///
/// ```no_run
/// use cachekit_core::MemoryBackend;
/// use cachekit_redis::{RedisBackend, RedisConfig};
/// use cachekit_testkit::{conformance_tests, RedisServer, WithGuard};
///
/// conformance_tests!(memory, async || MemoryBackend::builder().build().unwrap());
///
/// // One server per test: starting one takes milliseconds.
/// conformance_tests!(redis, async || {
///     let server = RedisServer::start();
///     let config = RedisConfig::builder().url(server.url()).build().unwrap();
///     WithGuard(RedisBackend::new(config).await.unwrap(), server)
/// });
/// # fn main() {}
/// ```
#[macro_export]
macro_rules! conformance_tests {
    ($module:ident, async || $make:expr $(,)?) => {
        $crate::conformance_tests!(#[::tokio::test] $module, async || $make);
    };
    (#[$test:meta] $module:ident, async || $make:expr $(,)?) => {
        $crate::__conformance_checks!([$crate::__conformance_module] $module [$test] $make);
    };
}

/// The body of [`conformance_tests!`], called back with the list of checks.
#[doc(hidden)]
#[macro_export]
macro_rules! __conformance_module {
    ([$module:ident [$test:meta] $make:expr] $($section:ident::$name:ident,)*) => {
        mod $module {
            #[allow(unused_imports)]
            use super::*;

            $(
                #[$test]
                async fn $name() {
                    let subject = $make;
                    let backend = $crate::ConformanceSubject::backend(&subject);
                    $crate::Check::named(::std::stringify!($name)).run(backend).await;
                }
            )*
        }
    };
}

/// What a [`conformance_tests!`] expression may yield: a [`Backend`], or a
/// [`WithGuard`] around one.
pub trait ConformanceSubject {
    /// The backend under test.
    fn backend(&self) -> &dyn Backend;
}

impl<B: Backend> ConformanceSubject for B {
    fn backend(&self) -> &dyn Backend {
        self
    }
}

/// A backend and something that must stay alive while it is tested, such
/// as its temp dir or its [`RedisServer`](crate::RedisServer).
///
/// Fields drop in order: the backend first, then the guard, so a server
/// outlives the connections to it.
///
/// ```no_run
/// use cachekit_redis::{RedisBackend, RedisConfig};
/// use cachekit_testkit::{RedisServer, WithGuard};
///
/// # async fn f() -> WithGuard<RedisBackend, RedisServer> {
/// let server = RedisServer::start();
/// let config = RedisConfig::builder().url(server.url()).build().unwrap();
/// WithGuard(RedisBackend::new(config).await.unwrap(), server)
/// # }
/// ```
#[derive(Debug)]
pub struct WithGuard<B, G>(pub B, pub G);

impl<B: Backend, G> ConformanceSubject for WithGuard<B, G> {
    fn backend(&self) -> &dyn Backend {
        &self.0
    }
}
