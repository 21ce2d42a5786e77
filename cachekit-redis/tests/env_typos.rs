//! An unknown `CACHEKIT_REDIS_*` variable (a misspelling) gets one WARN per
//! process naming the closest known variable, and never its value. The
//! only test in this binary: it sets the process environment.

#![allow(clippy::unwrap_used)] // tests may unwrap: a panic is the failure report

use cachekit_testkit::logs;

use cachekit_redis::RedisConfig;

#[test]
fn a_misspelled_variable_gets_one_warning_naming_the_closest() {
    let (subscriber, logs) = logs::capture();
    let _guard = tracing::subscriber::set_default(subscriber);
    std::env::set_var("CACHEKIT_REDIS_POOLSIZE", "3");
    std::env::set_var("CACHEKIT_REDIS_RESPONSE_TIMEOUT", "250");
    std::env::set_var("CACHEKIT_REDIS_PASSWORD", "Zq8SECRETxK");
    std::env::set_var("CACHEKIT_REDIS_POOL_SIZE", "4");

    for _ in 0..3 {
        let config = RedisConfig::from_env().unwrap();
        assert_eq!(config.pool_size, 4);
    }
    let text = logs.text();
    let warned = |name: &str, closest: &str| {
        let lines: Vec<&str> = text
            .lines()
            .filter(|l| l.contains("WARN") && l.contains(&format!("`{name}`")))
            .collect();
        assert_eq!(lines.len(), 1, "{name}: {text}");
        assert!(lines[0].contains(&format!("`{closest}`")), "{text}");
    };
    warned("CACHEKIT_REDIS_POOLSIZE", "CACHEKIT_REDIS_POOL_SIZE");
    warned(
        "CACHEKIT_REDIS_RESPONSE_TIMEOUT",
        "CACHEKIT_REDIS_RESPONSE_TIMEOUT_MS",
    );
    assert!(!text.contains("Zq8SECRETxK"), "{text}");
    assert!(text.contains("`CACHEKIT_REDIS_PASSWORD`"), "{text}");
    // Known variables are not warned about.
    assert!(
        !text.contains("`CACHEKIT_REDIS_POOL_SIZE` is not"),
        "{text}"
    );
}
