//! With a bad Redis URL in the environment, functions that name no backend
//! fail open to memory, and the downgrade is visible: the ERROR repeats,
//! `default_backend_status()` says so, and no log line shows the password.
//! (One test per file: the default is resolved once per process.)
#![cfg(feature = "redis")]
#![allow(clippy::unwrap_used)] // tests may unwrap: a panic is the failure report

use cachekit_testkit::logs;

use std::time::{Duration, Instant};

use cachekit::{cached, DefaultBackendStatus};

const SECRET: &str = "Zq8SECRETxK";

#[cached(namespace = "degraded", name = "lookup", ttl = 30)]
fn lookup(id: u64) -> u64 {
    id * 2
}

fn degraded_errors(text: &str) -> usize {
    text.lines()
        .filter(|l| l.contains("ERROR") && l.contains("Redis is configured but unusable"))
        .count()
}

#[test]
fn a_bad_url_degrades_visibly_and_never_logs_the_password() {
    let (subscriber, logs) = logs::capture();
    // Global: the reminder comes from another thread.
    tracing::subscriber::set_global_default(subscriber).unwrap();
    cachekit::__set_degraded_reminder_interval(Duration::from_millis(20));
    std::env::set_var(
        "CACHEKIT_REDIS_URL",
        format!("redis://127.0.0.1:6390?password={SECRET}"),
    );
    std::env::remove_var("REDIS_URL");
    assert_eq!(
        cachekit::default_backend_status(),
        DefaultBackendStatus::Unresolved
    );

    // Fail-open: the function runs and caches in memory.
    assert_eq!(lookup(21), 42);
    assert_eq!(lookup(21), 42);
    let cache = lookup_cache().cache().unwrap();
    assert!(cache.l2().is_none());
    assert_eq!(cache.stats().l1.hits, 1);
    assert!(
        cache.stats().l2_unavailable,
        "the stats say Redis is unused"
    );

    let status = cachekit::default_backend_status();
    assert!(status.is_degraded(), "{status:?}");
    let DefaultBackendStatus::Degraded { reason } = &status else {
        panic!("{status:?}");
    };
    assert!(reason.contains("CACHEKIT_REDIS_URL"), "{reason}");
    assert!(reason.contains("127.0.0.1:6390"), "{reason}");
    assert!(!reason.contains(SECRET), "{reason}");

    // The strict start reports the same error once the fallback happened.
    let err = cachekit::init_default_backend().unwrap_err();
    assert_eq!(err.kind(), cachekit::ErrorKind::Config, "{err}");
    assert!(err.message().contains("CACHEKIT_REDIS_URL"), "{err}");

    // The ERROR repeats while the process runs degraded.
    let give_up = Instant::now() + Duration::from_secs(20);
    while degraded_errors(&logs.text()) < 3 && Instant::now() < give_up {
        std::thread::sleep(Duration::from_millis(10));
    }
    let text = logs.text();
    assert!(degraded_errors(&text) >= 3, "{text}");
    assert!(!text.contains(SECRET), "{text}");
    assert!(!text.contains("SECRET"), "{text}");
}
