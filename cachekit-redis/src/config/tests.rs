use std::collections::HashMap;
use std::time::Duration;

use cachekit_core::ErrorKind;

use super::*;

fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let map: HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    move |name| map.get(name).cloned()
}

fn config_error_field(result: Result<RedisConfig>) -> String {
    let err = result.expect_err("expected a config error");
    assert_eq!(err.kind(), ErrorKind::Config, "{err}");
    err.message().to_owned()
}

#[test]
fn defaults_are_the_documented_ones() {
    let c = RedisConfig::default();
    assert_eq!(c.url, "redis://localhost:6379");
    assert_eq!(c.pool_size, 10);
    assert_eq!(c.max_in_flight, 256);
    assert_eq!(c.min_idle, None);
    assert_eq!(c.connect_timeout, Duration::from_secs(2));
    assert_eq!(c.response_timeout, Duration::from_secs(1));
    assert_eq!(c.checkout_timeout, Duration::from_secs(1));
    assert_eq!(c.tcp_keepalive, Some(Duration::from_secs(60)));
    assert!(c.tcp_nodelay);
    assert!(c.coalesce_writes);
    assert_eq!(c.protocol, Protocol::Resp2);
    assert_eq!(c.key_prefix, "");
    assert!(!c.tls_insecure);
    assert_eq!(c.lock_wait, Duration::from_secs(10));
    c.validate().unwrap();
}

#[test]
fn builder_sets_every_field() {
    let c = RedisConfig::builder()
        .url("rediss://cache:6380/4")
        .password("pw")
        .pool_size(3)
        .max_in_flight(9)
        .min_idle(2)
        .connect_timeout(Duration::from_millis(10))
        .response_timeout(Duration::from_millis(20))
        .checkout_timeout(Duration::from_millis(30))
        .tcp_keepalive(None)
        .tcp_nodelay(false)
        .coalesce_writes(false)
        .protocol(Protocol::Resp3)
        .key_prefix("app:")
        .tls_ca_file("/ca.pem")
        .tls_client_cert("/c.pem", "/k.pem")
        .tls_insecure(true)
        .lock_wait(Duration::from_millis(40))
        .build()
        .unwrap();
    assert_eq!(c.url, "rediss://cache:6380/4");
    assert_eq!(c.password.as_deref(), Some("pw"));
    assert_eq!((c.pool_size, c.min_idle), (3, Some(2)));
    assert_eq!(c.max_in_flight, 9);
    assert_eq!(c.connect_timeout, Duration::from_millis(10));
    assert_eq!(c.response_timeout, Duration::from_millis(20));
    assert_eq!(c.checkout_timeout, Duration::from_millis(30));
    assert_eq!(c.tcp_keepalive, None);
    assert!(!c.tcp_nodelay);
    assert!(!c.coalesce_writes);
    assert_eq!(c.protocol, Protocol::Resp3);
    assert_eq!(c.key_prefix, "app:");
    assert_eq!(
        c.tls_ca_file.as_deref(),
        Some(std::path::Path::new("/ca.pem"))
    );
    assert!(c.tls_client_cert_file.is_some() && c.tls_client_key_file.is_some());
    assert!(c.tls_insecure);
    assert_eq!(c.lock_wait, Duration::from_millis(40));
}

#[test]
fn url_forms_parse() {
    let u = parse_url("redis://h:7000/3").unwrap();
    assert_eq!((u.host(), u.port(), u.db, u.tls), ("h", 7000, 3, false));
    assert!(u.username.is_none() && u.password.is_none());

    let u = parse_url("redis://:pw@h").unwrap();
    assert_eq!((u.port(), u.db), (6379, 0));
    assert_eq!((u.username, u.password.as_deref()), (None, Some("pw")));

    let u = parse_url("redis://alice:pw@h:1/15").unwrap();
    assert_eq!(u.username.as_deref(), Some("alice"));
    assert_eq!((u.password.as_deref(), u.db), (Some("pw"), 15));

    let u = parse_url("redis://:p%40ss%3Aw%2Frd%25@h/").unwrap();
    assert_eq!(u.password.as_deref(), Some("p@ss:w/rd%"));

    let u = parse_url("rediss://[::1]:6380").unwrap();
    assert_eq!((u.host(), u.tls), ("::1", true));
}

#[test]
fn malformed_urls_name_the_field_and_hide_the_password() {
    for url in [
        "redis//:hunter2@h",
        "http://:hunter2@h:1",
        "redis://:hunter2@h:99999",
        "redis://:hunter2@h/0?protocol=resp3",
        "rediss://:hunter2@h/#insecure",
        "redis://:hunter2@",
    ] {
        let message = config_error_field(RedisConfig::builder().url(url).build());
        assert!(message.contains("`url`"), "{url}: {message}");
        assert!(!message.contains("hunter2"), "{url}: {message}");
    }
}

#[test]
fn invalid_db_index_names_db() {
    for url in ["redis://h/abc", "redis://h/-1", "redis://:hunter2@h/1/2"] {
        let message = config_error_field(RedisConfig::builder().url(url).build());
        assert!(message.contains("`db`"), "{url}: {message}");
        assert!(!message.contains("hunter2"), "{url}: {message}");
    }
}

#[test]
fn invalid_fields_are_named() {
    let cases: Vec<(RedisConfigBuilder, &str)> = vec![
        (RedisConfig::builder().pool_size(0), "`pool_size`"),
        (RedisConfig::builder().max_in_flight(0), "`max_in_flight`"),
        (
            RedisConfig::builder().pool_size(2).min_idle(3),
            "`min_idle`",
        ),
        (
            RedisConfig::builder().response_timeout(Duration::ZERO),
            "`response_timeout`",
        ),
        (
            RedisConfig::builder().tcp_keepalive(Some(Duration::from_millis(500))),
            "`tcp_keepalive`",
        ),
        (
            RedisConfig::builder().tls_ca_file("/ca.pem"),
            "`tls_ca_file`",
        ),
        (RedisConfig::builder().tls_insecure(true), "`tls_insecure`"),
    ];
    for (builder, field) in cases {
        let message = config_error_field(builder.build());
        assert!(message.contains(field), "{field}: {message}");
    }
    let mut half_mtls = RedisConfig::builder().url("rediss://h").build().unwrap();
    half_mtls.tls_client_cert_file = Some("/c.pem".into());
    let err = half_mtls.validate().unwrap_err();
    assert!(err.message().contains("`tls_client_key_file`"), "{err}");
}

#[test]
fn debug_and_display_hide_passwords() {
    let c = RedisConfig::builder()
        .url("redis://alice:s3cr%40t@h:1/2")
        .password("hunter2")
        .build()
        .unwrap();
    let builder = RedisConfig::builder()
        .url("redis://alice:s3cr%40t@h:1/2")
        .password("hunter2");
    for shown in [
        format!("{c:?}"),
        format!("{c:#?}"),
        c.to_string(),
        c.redacted_url(),
        format!("{builder:?}"),
    ] {
        for secret in ["s3cr", "hunter2"] {
            assert!(!shown.contains(secret), "{shown}");
        }
        assert!(shown.contains("h:1"), "{shown}");
    }
    assert_eq!(c.redacted_url(), "redis://alice:***@h:1/2");
}

#[test]
fn env_url_precedence_and_password() {
    let c = RedisConfig::builder()
        .env()
        .build_with_env(env(&[
            ("CACHEKIT_REDIS_URL", "redis://first:1"),
            ("REDIS_URL", "redis://second:2"),
            ("REDIS_PASSWORD", "pw"),
        ]))
        .unwrap();
    assert_eq!(c.url, "redis://first:1");
    assert_eq!(c.password.as_deref(), Some("pw"));

    let c = RedisConfig::builder()
        .env()
        .build_with_env(env(&[("REDIS_URL", "redis://second:2")]))
        .unwrap();
    assert_eq!(c.url, "redis://second:2");

    let c = RedisConfig::builder()
        .env()
        .build_with_env(env(&[]))
        .unwrap();
    assert_eq!(c.url, DEFAULT_URL);
}

#[test]
fn env_knobs_are_read() {
    let c = RedisConfig::builder()
        .env()
        .build_with_env(env(&[
            ("CACHEKIT_REDIS_POOL_SIZE", "7"),
            ("CACHEKIT_REDIS_MIN_IDLE", "2"),
            ("CACHEKIT_REDIS_MAX_IN_FLIGHT", "64"),
            ("CACHEKIT_REDIS_CONNECT_TIMEOUT_MS", "150"),
            ("CACHEKIT_REDIS_RESPONSE_TIMEOUT_MS", "250"),
            ("CACHEKIT_REDIS_CHECKOUT_TIMEOUT_MS", "350"),
            ("CACHEKIT_REDIS_TCP_KEEPALIVE_SECS", "0"),
            ("CACHEKIT_REDIS_TCP_NODELAY", "off"),
            ("CACHEKIT_REDIS_COALESCE_WRITES", "off"),
            ("CACHEKIT_REDIS_PROTOCOL", "RESP3"),
            ("CACHEKIT_REDIS_KEY_PREFIX", "svc:"),
            ("CACHEKIT_REDIS_LOCK_WAIT_MS", "450"),
        ]))
        .unwrap();
    assert_eq!((c.pool_size, c.min_idle), (7, Some(2)));
    assert_eq!(c.max_in_flight, 64);
    assert_eq!(c.connect_timeout, Duration::from_millis(150));
    assert_eq!(c.response_timeout, Duration::from_millis(250));
    assert_eq!(c.checkout_timeout, Duration::from_millis(350));
    assert_eq!(c.tcp_keepalive, None);
    assert!(!c.tcp_nodelay);
    assert!(!c.coalesce_writes);
    assert_eq!(c.protocol, Protocol::Resp3);
    assert_eq!(c.key_prefix, "svc:");
    assert_eq!(c.lock_wait, Duration::from_millis(450));
}

#[test]
fn code_wins_over_env_whatever_the_call_order() {
    let vars = env(&[
        ("CACHEKIT_REDIS_URL", "redis://from-env:1"),
        ("CACHEKIT_REDIS_POOL_SIZE", "7"),
        ("REDIS_PASSWORD", "env-pw"),
    ]);
    let c = RedisConfig::builder()
        .pool_size(3)
        .env()
        .url("redis://from-code:2")
        .password("code-pw")
        .build_with_env(vars)
        .unwrap();
    assert_eq!(c.url, "redis://from-code:2");
    assert_eq!(c.pool_size, 3);
    assert_eq!(c.password.as_deref(), Some("code-pw"));
}

#[test]
fn bad_env_values_name_the_variable() {
    for (name, value) in [
        ("CACHEKIT_REDIS_POOL_SIZE", "ten"),
        ("CACHEKIT_REDIS_RESPONSE_TIMEOUT_MS", "-5"),
        ("CACHEKIT_REDIS_PROTOCOL", "resp4"),
        ("CACHEKIT_REDIS_TLS_INSECURE", "maybe"),
        ("CACHEKIT_REDIS_URL", "redis//:hunter2@h"),
        ("REDIS_URL", "nope://:hunter2@h"),
    ] {
        let message = config_error_field(
            RedisConfig::builder()
                .env()
                .build_with_env(env(&[(name, value)])),
        );
        assert!(message.contains(name), "{name}: {message}");
        assert!(!message.contains("hunter2"), "{name}: {message}");
    }
}

#[test]
fn redact_url_keeps_everything_but_the_password() {
    assert_eq!(redact_url("redis://h:1/0"), "redis://h:1/0");
    assert_eq!(redact_url("redis://:pw@h:1/0"), "redis://:***@h:1/0");
    assert!(!redact_url("redis//:pw@h").contains("pw"));
}

#[test]
fn malformed_urls_say_which_part_is_wrong() {
    for (url, says) in [
        ("redis://127.0.0.1:6390?password=pw", "query parameters"),
        ("redis://u:1234/pw@host", "percent-encode `/` as %2F"),
        ("redis:/:pw@host", "followed by `://`"),
        ("redis://:pw@h:99999", "invalid port number"),
        ("redis://h/one", "must be a database index"),
        ("hunter2:pw@host", "unsupported scheme"),
    ] {
        let message = config_error_field(RedisConfig::builder().url(url).build());
        assert!(message.contains(says), "{url}: {message}");
        assert!(!message.contains("pw"), "{url}: {message}");
        assert!(!message.contains("hunter2"), "{url}: {message}");
    }
    let message = config_error_field(
        RedisConfig::builder()
            .url("redis://127.0.0.1:6390?password=pw")
            .build(),
    );
    assert!(message.contains("redis://127.0.0.1:6390"), "{message}");
    assert_eq!(redact_url("redis://pw@h:1/2"), "redis://***@h:1/2");
    assert_eq!(
        redact_url("redis://h:1/x?y#z"),
        "redis://h:1/<hidden>?<hidden>#<hidden>"
    );
}

#[test]
fn every_duration_field_rejects_what_it_cannot_honour() {
    let day = Duration::from_secs(24 * 3600);
    let over = day + Duration::from_millis(1);
    let cases: Vec<(RedisConfigBuilder, &str)> = vec![
        (
            RedisConfig::builder().connect_timeout(Duration::MAX),
            "`connect_timeout`",
        ),
        (
            RedisConfig::builder().response_timeout(Duration::MAX),
            "`response_timeout`",
        ),
        (
            RedisConfig::builder().checkout_timeout(Duration::MAX),
            "`checkout_timeout`",
        ),
        (
            RedisConfig::builder().lock_wait(Duration::MAX),
            "`lock_wait`",
        ),
        (
            RedisConfig::builder().connect_timeout(over),
            "`connect_timeout`",
        ),
        (
            RedisConfig::builder().tcp_keepalive(Some(Duration::MAX)),
            "`tcp_keepalive`",
        ),
        (
            RedisConfig::builder().tcp_keepalive(Some(Duration::from_secs(32_768))),
            "`tcp_keepalive`",
        ),
    ];
    for (builder, field) in cases {
        let message = config_error_field(builder.build());
        assert!(message.contains(field), "{field}: {message}");
    }
    // The bounds themselves are accepted.
    let c = RedisConfig::builder()
        .connect_timeout(day)
        .response_timeout(day)
        .checkout_timeout(day)
        .lock_wait(day)
        .tcp_keepalive(Some(Duration::from_secs(32_767)))
        .build()
        .unwrap();
    assert_eq!(c.tcp_keepalive, Some(Duration::from_secs(32_767)));
}

#[test]
fn env_durations_out_of_range_name_the_variable() {
    for (name, value) in [
        ("CACHEKIT_REDIS_CONNECT_TIMEOUT_MS", "18446744073709551615"),
        ("CACHEKIT_REDIS_RESPONSE_TIMEOUT_MS", "86400001"),
        ("CACHEKIT_REDIS_CHECKOUT_TIMEOUT_MS", "86400001"),
        ("CACHEKIT_REDIS_LOCK_WAIT_MS", "18446744073709551615"),
        ("CACHEKIT_REDIS_TCP_KEEPALIVE_SECS", "32768"),
        ("CACHEKIT_REDIS_TCP_KEEPALIVE_SECS", "18446744073709551615"),
    ] {
        let message = config_error_field(
            RedisConfig::builder()
                .env()
                .build_with_env(env(&[(name, value)])),
        );
        assert!(message.contains(name), "{name}: {message}");
    }
    let c = RedisConfig::builder()
        .env()
        .build_with_env(env(&[
            ("CACHEKIT_REDIS_TCP_KEEPALIVE_SECS", "32767"),
            ("CACHEKIT_REDIS_RESPONSE_TIMEOUT_MS", "86400000"),
        ]))
        .unwrap();
    assert_eq!(c.tcp_keepalive, Some(Duration::from_secs(32_767)));
    assert_eq!(c.response_timeout, Duration::from_secs(86_400));
}

#[test]
fn misspelled_variables_find_their_closest_known_name() {
    let found = env::misspelled([
        "CACHEKIT_REDIS_POOLSIZE",
        "CACHEKIT_REDIS_POOL_SIZE",
        "CACHEKIT_REDIS_TLS_CA",
        "CACHEKIT_REDISURL",
        "REDIS_URL",
        "HOME",
    ]);
    assert_eq!(
        found,
        vec![
            ("CACHEKIT_REDIS_POOLSIZE", "CACHEKIT_REDIS_POOL_SIZE"),
            ("CACHEKIT_REDIS_TLS_CA", "CACHEKIT_REDIS_TLS_CA_FILE"),
        ]
    );
}
