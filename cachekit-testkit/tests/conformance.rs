//! The conformance suite passes a correct backend and catches broken ones.

#![allow(clippy::unwrap_used)] // Tests may unwrap.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use cachekit_core::{Backend, Health, MemoryBackend, Result, Ttl};
use cachekit_testkit::{conformance_tests, run_conformance, CHECKS};

conformance_tests!(memory, async || MemoryBackend::builder().build().unwrap());

// The fault-free map passes, so in the tests below only the fault fails.
conformance_tests!(map, async || MapBackend::default());

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_share_a_backend_through_an_arc() {
    let backend: Arc<dyn Backend> = Arc::new(MemoryBackend::builder().build().unwrap());
    let other = Arc::clone(&backend);
    // Concurrent runs must not see each other's keys.
    let task = tokio::spawn(async move { run_conformance(&*other).await });
    run_conformance(&*backend).await;
    task.await.unwrap();
}

/// A deliberately simple map backend with one optional contract violation.
#[derive(Debug, Default)]
struct MapBackend {
    entries: Mutex<HashMap<String, (Bytes, Option<Instant>)>>,
    fault: Option<Fault>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Fault {
    SetIfAbsentAlwaysWins,
    TtlAlwaysPersistent,
    GetManyReversed,
    /// delete_prefix as `SCAN MATCH prefix*` would do it without escaping.
    GlobDeletePrefix,
    /// delete_prefix("") removes every key instead of failing.
    EmptyPrefixAccepted,
    EmptyValueIsMissing,
    SetKeepsOldTtl,
    UnhealthyName,
}

/// `*` and `?` wildcards, enough to show what unescaped patterns do.
fn glob(pattern: &[char], text: &[char]) -> bool {
    match (pattern.first(), text.first()) {
        (None, None) => true,
        (Some('*'), _) => {
            glob(&pattern[1..], text) || (!text.is_empty() && glob(pattern, &text[1..]))
        }
        (Some('?'), Some(_)) => glob(&pattern[1..], &text[1..]),
        (Some(p), Some(t)) if p == t => glob(&pattern[1..], &text[1..]),
        _ => false,
    }
}

impl MapBackend {
    fn with(fault: Fault) -> Self {
        Self {
            fault: Some(fault),
            ..Self::default()
        }
    }

    fn live(&self) -> std::sync::MutexGuard<'_, HashMap<String, (Bytes, Option<Instant>)>> {
        let mut map = self.entries.lock().unwrap();
        let now = Instant::now();
        map.retain(|_, (_, expiry)| expiry.is_none_or(|at| at > now));
        map
    }
}

/// TTLs are clamped to a thousand years, as a backend must clamp what it
/// cannot store.
fn deadline(ttl: Option<Duration>) -> Option<Instant> {
    const MAX: Duration = Duration::from_secs(1000 * 365 * 24 * 3600);
    ttl.map(|ttl| Instant::now() + ttl.min(MAX))
}

#[async_trait]
impl Backend for MapBackend {
    fn name(&self) -> &str {
        "map"
    }

    async fn get(&self, key: &str) -> Result<Option<Bytes>> {
        let value = self.live().get(key).map(|(v, _)| v.clone());
        if self.fault == Some(Fault::EmptyValueIsMissing) {
            return Ok(value.filter(|v| !v.is_empty()));
        }
        Ok(value)
    }

    async fn set(&self, key: &str, value: Bytes, ttl: Option<Duration>) -> Result<()> {
        let mut map = self.live();
        let expiry = match (self.fault, map.get(key)) {
            (Some(Fault::SetKeepsOldTtl), Some((_, old))) if ttl.is_none() => *old,
            _ => deadline(ttl),
        };
        map.insert(key.to_owned(), (value, expiry));
        Ok(())
    }

    async fn delete(&self, key: &str) -> Result<bool> {
        Ok(self.live().remove(key).is_some())
    }

    async fn ttl(&self, key: &str) -> Result<Ttl> {
        Ok(match self.live().get(key) {
            None => Ttl::Missing,
            Some(_) if self.fault == Some(Fault::TtlAlwaysPersistent) => Ttl::Persistent,
            Some((_, None)) => Ttl::Persistent,
            Some((_, Some(at))) => Ttl::Remaining(at.saturating_duration_since(Instant::now())),
        })
    }

    async fn expire(&self, key: &str, ttl: Option<Duration>) -> Result<bool> {
        Ok(match self.live().get_mut(key) {
            Some((_, expiry)) => {
                *expiry = deadline(ttl);
                true
            }
            None => false,
        })
    }

    async fn get_many(&self, keys: &[&str]) -> Result<Vec<Option<Bytes>>> {
        let mut out = Vec::new();
        for key in keys {
            out.push(self.get(key).await?);
        }
        if self.fault == Some(Fault::GetManyReversed) {
            out.reverse();
        }
        Ok(out)
    }

    async fn set_if_absent(&self, key: &str, value: Bytes, ttl: Option<Duration>) -> Result<bool> {
        let mut map = self.live();
        if map.contains_key(key) && self.fault != Some(Fault::SetIfAbsentAlwaysWins) {
            return Ok(false);
        }
        map.insert(key.to_owned(), (value, deadline(ttl)));
        Ok(true)
    }

    async fn delete_prefix(&self, prefix: &str) -> Result<u64> {
        if self.fault != Some(Fault::EmptyPrefixAccepted) {
            cachekit_core::backend::check_prefix(prefix)?;
        }
        let mut map = self.live();
        let before = map.len();
        if self.fault == Some(Fault::GlobDeletePrefix) {
            let pattern: Vec<char> = format!("{prefix}*").chars().collect();
            map.retain(|k, _| !glob(&pattern, &k.chars().collect::<Vec<_>>()));
        } else {
            map.retain(|k, _| !k.starts_with(prefix));
        }
        Ok((before - map.len()) as u64)
    }

    async fn health(&self) -> Health {
        let name = if self.fault == Some(Fault::UnhealthyName) {
            "other"
        } else {
            "map"
        };
        Health::new(name, true, Duration::ZERO)
    }
}

/// Runs the suite on a task and returns its panic message.
async fn failure_of(fault: Fault) -> String {
    let backend = Arc::new(MapBackend::with(fault));
    let outcome = tokio::spawn(async move { run_conformance(&*backend).await }).await;
    let panic = outcome
        .expect_err("the suite passed a broken backend")
        .into_panic();
    panic
        .downcast_ref::<String>()
        .cloned()
        .unwrap_or_else(|| "<non-string panic>".to_owned())
}

#[tokio::test]
async fn violations_are_caught_with_precise_messages() {
    let cases = [
        (Fault::SetIfAbsentAlwaysWins, "set_if_absent"),
        (Fault::TtlAlwaysPersistent, "expected Remaining"),
        (Fault::GetManyReversed, "get_many"),
        (
            Fault::GlobDeletePrefix,
            "glob characters must match literally",
        ),
        (
            Fault::EmptyPrefixAccepted,
            "delete_prefix(\"\") returned Ok(",
        ),
        (Fault::EmptyValueIsMissing, "empty value"),
        (Fault::SetKeepsOldTtl, "a plain set replaces the old expiry"),
        (Fault::UnhealthyName, "health().backend is \"other\""),
    ];
    for (fault, expected) in cases {
        let message = failure_of(fault).await;
        assert!(
            message.starts_with("backend conformance failed for \"map\" in `"),
            "{fault:?}: {message}"
        );
        assert!(
            message.contains(expected),
            "{fault:?} should mention {expected:?}: {message}"
        );
    }
}

/// The checks that fail against a backend with `fault`, each run alone on
/// a fresh backend as `conformance_tests!` runs it, in `CHECKS` order.
async fn failing_checks(fault: Fault) -> Vec<&'static str> {
    let runs: Vec<_> = CHECKS
        .iter()
        .map(|check| {
            let backend = MapBackend::with(fault);
            (
                check.name(),
                tokio::spawn(async move { check.run(&backend).await }),
            )
        })
        .collect();
    let mut failing = Vec::new();
    for (name, run) in runs {
        if run.await.is_err() {
            failing.push(name);
        }
    }
    failing
}

/// A fault fails exactly the checks that exercise it, and the others still
/// pass: each test `conformance_tests!` generates reports one behaviour.
#[tokio::test]
async fn each_check_fails_on_its_own() {
    let cases: [(Fault, &[&str]); 8] = [
        (
            Fault::SetIfAbsentAlwaysWins,
            &[
                "a_zero_ttl_expires_at_once",
                "set_if_absent_stores_only_once",
                "set_if_absent_race_has_one_winner",
            ],
        ),
        (
            Fault::TtlAlwaysPersistent,
            &[
                "ttl_is_reported",
                "set_without_ttl_clears_the_expiry",
                "expire_changes_the_lifetime",
                "get_with_ttl_reports_value_and_ttl",
                "a_huge_ttl_is_clamped",
                "set_many_stores_every_entry",
                "set_if_absent_stores_only_once",
            ],
        ),
        (
            Fault::GetManyReversed,
            &["get_many_keeps_order", "unusual_keys_round_trip"],
        ),
        (
            Fault::GlobDeletePrefix,
            &["delete_prefix_matches_glob_characters_literally"],
        ),
        (
            Fault::EmptyPrefixAccepted,
            &["delete_prefix_refuses_an_empty_prefix"],
        ),
        (
            Fault::EmptyValueIsMissing,
            &[
                "an_empty_value_is_not_missing",
                "get_many_keeps_order",
                "set_many_stores_every_entry",
                "delete_prefix_refuses_an_empty_prefix",
            ],
        ),
        (
            Fault::SetKeepsOldTtl,
            &[
                "set_without_ttl_clears_the_expiry",
                "set_many_stores_every_entry",
            ],
        ),
        (
            Fault::UnhealthyName,
            &["health_reports_healthy_under_its_name"],
        ),
    ];
    for (fault, expected) in cases {
        assert_eq!(failing_checks(fault).await, expected, "{fault:?}");
    }
}
