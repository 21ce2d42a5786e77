//! The pool without its watchdog thread: if `cachekit-deadlines` cannot be
//! started, every command waits under a tokio timer instead, and the
//! deadlines must hold just the same. Against a real server, paused with
//! SIGSTOP so that no reply comes.

#![allow(clippy::unwrap_used)] // tests may unwrap: a panic is the failure report

use std::time::{Duration, Instant};

use cachekit_core::{deadline, ErrorKind};
use cachekit_testkit::RedisServer;

use super::{Manager, Pool};
use crate::errors::Op;
use crate::RedisConfig;

/// A pool on `server` that uses tokio timers, as when the watchdog thread
/// could not be started.
fn pool_without_watchdog(server: &RedisServer, response_timeout: Duration) -> Pool {
    let config = RedisConfig::builder()
        .url(server.url())
        .pool_size(1)
        .response_timeout(response_timeout)
        .build()
        .unwrap();
    let mut pool = Pool::new(Manager::new(&config).unwrap(), &config);
    pool.deadlines = None;
    pool
}

async fn get(pool: &Pool) -> cachekit_core::Result<Option<Vec<u8>>> {
    let mut cmd = redis::cmd("GET");
    cmd.arg("k");
    pool.query(&cmd, Op::new("GET", Some("k"))).await
}

async fn set(pool: &Pool) {
    let mut cmd = redis::cmd("SET");
    cmd.arg("k").arg("v");
    let () = pool.query(&cmd, Op::new("SET", Some("k"))).await.unwrap();
}

/// Waits for `fut`, failing the test if it is not done in ten seconds: a
/// wait that nothing bounds would otherwise hang the suite.
async fn bounded<F: std::future::Future>(fut: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(10), fut)
        .await
        .expect("the wait was not bounded")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_watchdog_a_paused_server_gives_a_response_timeout() {
    let server = RedisServer::start();
    let limit = Duration::from_millis(300);
    let pool = pool_without_watchdog(&server, limit);
    assert!(pool.deadlines.is_none());
    set(&pool).await;

    let started = Instant::now();
    let err = server.while_paused(bounded(get(&pool))).await.unwrap_err();
    let waited = started.elapsed();

    assert_eq!(err.kind(), ErrorKind::Timeout, "{err}");
    assert!(err.message().contains("response_timeout"), "{err}");
    assert!(waited >= limit, "{waited:?}");
    // The timed-out connection was condemned; the next command opens another.
    assert_eq!(get(&pool).await.unwrap().as_deref(), Some(&b"v"[..]));
    assert_eq!(pool.statistics().connections_created, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_watchdog_a_nearer_caller_deadline_ends_the_wait() {
    let server = RedisServer::start();
    let pool = pool_without_watchdog(&server, Duration::from_secs(20));
    set(&pool).await;

    let started = Instant::now();
    let limit = Duration::from_millis(200);
    let within = deadline::within(started + limit, get(&pool));
    let err = server.while_paused(bounded(within)).await.unwrap_err();
    let waited = started.elapsed();

    assert_eq!(err.kind(), ErrorKind::Timeout, "{err}");
    assert!(err.message().contains("caller's deadline"), "{err}");
    assert!(!err.message().contains("response_timeout"), "{err}");
    assert!(waited >= limit, "{waited:?}");
    // The caller's impatience does not condemn the connection.
    assert_eq!(get(&pool).await.unwrap().as_deref(), Some(&b"v"[..]));
    assert_eq!(pool.statistics().connections_created, 1);
}

/// The bench-only switches (`benches/layer.rs`) must swap a part, not
/// break the pool: with each of them commands still go through, and a
/// paused server's silence still ends at the response timeout (with
/// `RedisRs`, redis-rs's own timeout is the only one).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_bench_switch_sends_commands_under_a_deadline() {
    use crate::config::bench::{BenchCheckout, BenchDeadlines, BenchSwitches};

    let server = RedisServer::start();
    for deadlines in [
        BenchDeadlines::Watchdog,
        BenchDeadlines::TokioTimer,
        BenchDeadlines::RedisRs,
    ] {
        for checkout in [
            BenchCheckout::Lanes,
            BenchCheckout::Bb8PerCommand,
            BenchCheckout::Bb8Held,
        ] {
            let config = RedisConfig::builder()
                .url(server.url())
                .response_timeout(Duration::from_millis(300))
                .bench_switches(BenchSwitches::new(deadlines, checkout))
                .build()
                .unwrap();
            let pool = Pool::new(Manager::new(&config).unwrap(), &config);
            set(&pool).await;
            assert_eq!(get(&pool).await.unwrap().as_deref(), Some(&b"v"[..]));
            let paused = server.while_paused(bounded(get(&pool))).await;
            assert!(paused.is_err(), "{deadlines:?} {checkout:?}: {paused:?}");
        }
    }
}
