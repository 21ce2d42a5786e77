//! No error, `Debug` or `Display` about a Redis URL echoes a part of it that
//! could hold a secret, whatever shape the URL has. The only test in this
//! binary, because it sets `CACHEKIT_REDIS_URL` in the process environment.

#![allow(clippy::unwrap_used)] // tests may unwrap: a panic is the failure report

use cachekit_core::ErrorKind;
use cachekit_redis::RedisConfig;

/// Distinctive enough that any fragment of it in a message is a leak.
const SECRET: &str = "Zq8SECRETxK";

/// Each shape puts SECRET where a careless parser or redactor shows it;
/// `shown` is text the message must still contain (scheme, host, port).
const SHAPES: &[(&str, Option<&str>)] = &[
    (
        "redis://127.0.0.1:6390?password=@S@",
        Some("127.0.0.1:6390"),
    ),
    ("redis://u:1234/@S@@host", None),
    ("redis:/:@S@@host", None),
    ("redis:@S@@host", None),
    ("redis:///:@S@@host", None),
    ("redis://:@S@@", None),
    ("redis://:@S@@h:99999", None),
    ("redis://:@S@@h/0?protocol=resp3", Some("h")),
    ("rediss://:@S@@h/#insecure", Some("h")),
    ("redis://h:6379/0#@S@", Some("h:6379")),
    ("redis://u:@S@/x@host", None),
    ("redis://@S@/x@host", None),
    ("redis//:@S@@h", None),
    ("http://:@S@@h:1", None),
    ("@S@://h:1", None),
    ("redis://:@S@@h/abc", Some("h")),
    ("redis://:@S@@h/1/2", Some("h")),
    ("redis://h:6379/@S@", Some("h:6379")),
    ("redis://u:pa#@S@@host", None),
    ("redis://u:12?@S@@host", None),
    ("redis://:@S@@[::1", None),
    ("@S@", None),
    ("redis://h:1/0?@S@", Some("h:1")),
    ("rediss://:@S@@h:6380/0?ssl_cert_reqs=none", Some("h:6380")),
    ("redis://:p%FF@S@@h", None),
];

/// Shapes that are valid URLs: they build, and only `Debug`/`Display` and
/// `redacted_url` must hide the secret.
const VALID: &[&str] = &[
    "redis://:@S@@h:6379/0",
    "redis://alice:@S@@h:6379/0",
    "redis://@S@@h:6379",
    "rediss://alice:@S@@h",
    "redis:// :@S@@h",
];

fn expand(shape: &str) -> String {
    shape.replace("@S@", SECRET)
}

fn assert_hidden(what: &str, url: &str, text: &str) {
    for fragment in [SECRET, "SECRET", "Zq8", "xK"] {
        assert!(
            !text.contains(fragment),
            "{what} for {url:?} leaks `{fragment}`: {text}"
        );
    }
}

fn check_config_display(url: &str) {
    let mut config = RedisConfig::default();
    config.url = url.to_owned();
    assert_hidden("Debug", url, &format!("{config:?}"));
    assert_hidden("Debug", url, &format!("{config:#?}"));
    assert_hidden("Display", url, &config.to_string());
    assert_hidden("redacted_url", url, &config.redacted_url());
    let builder = RedisConfig::builder().url(url);
    assert_hidden("builder Debug", url, &format!("{builder:?}"));
}

#[test]
fn no_url_shape_leaks_its_secret() {
    assert!(SHAPES.len() >= 15);
    for (shape, shown) in SHAPES {
        let url = expand(shape);
        let err = RedisConfig::builder().url(&url).build().unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Config, "{url}: {err}");
        let text = format!("{err} {err:?}");
        assert_hidden("builder error", &url, &text);
        assert!(
            err.message().contains("`url`") || err.message().contains("`db`"),
            "{url}: {err}"
        );
        if let Some(shown) = shown {
            assert!(err.message().contains(shown), "{url}: {err}");
        }

        let mut config = RedisConfig::default();
        config.url = url.clone();
        let err = config.validate().unwrap_err();
        assert_hidden("validate error", &url, &format!("{err} {err:?}"));
        check_config_display(&url);

        // Through the environment: the error names the variable.
        std::env::set_var("CACHEKIT_REDIS_URL", &url);
        let err = RedisConfig::from_env().unwrap_err();
        assert!(err.message().contains("CACHEKIT_REDIS_URL"), "{url}: {err}");
        assert_hidden("from_env error", &url, &format!("{err} {err:?}"));
    }
    std::env::remove_var("CACHEKIT_REDIS_URL");

    for shape in VALID {
        let url = expand(shape);
        let config = RedisConfig::builder().url(&url).build().unwrap();
        assert_hidden("Debug", &url, &format!("{config:?}"));
        check_config_display(&url);
        assert!(config.redacted_url().contains("h"), "{url}");
    }
}
