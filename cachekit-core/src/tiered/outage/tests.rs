#![allow(clippy::unwrap_used)] // Tests may unwrap.

use std::io::Write;
use std::sync::{Arc, Mutex};

use super::*;
use crate::error::ErrorKind;

/// A subscriber that keeps every WARN line in memory.
#[derive(Clone, Default)]
struct Lines(Arc<Mutex<Vec<u8>>>);

impl Write for Lines {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Lines {
    fn capture(f: impl FnOnce()) -> Vec<String> {
        let lines = Lines::default();
        let writer = lines.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .with_max_level(tracing::Level::WARN)
            .finish();
        tracing::subscriber::with_default(subscriber, f);
        let text = String::from_utf8(lines.0.lock().unwrap().clone()).unwrap();
        text.lines().map(str::to_owned).collect()
    }
}

fn down() -> Error {
    Error::new(ErrorKind::Connection, "x".repeat(400))
}

#[test]
fn an_outage_logs_its_start_one_summary_per_interval_and_its_end() {
    let log = L2Log::new(Duration::from_secs(10));
    let t0 = Instant::now();
    let at = |ms: u64| t0 + Duration::from_millis(ms);
    let lines = Lines::capture(|| {
        // 25 s of failures, a read and a write every 10 ms.
        for i in 0..2500 {
            log.unavailable("redis", "get", &down(), at(i * 10));
            log.unavailable("redis", "set", &down(), at(i * 10 + 5));
        }
        log.answered("redis", || at(25_000));
        // Healthy again: nothing more.
        log.answered("redis", || at(25_001));
    });
    assert_eq!(lines.len(), 4, "{lines:#?}");
    assert!(
        lines[0].contains("L2 unavailable (redis get"),
        "{}",
        lines[0]
    );
    assert!(lines[0].len() < 400, "the first line is long: {}", lines[0]);
    assert!(
        lines[1].contains("1000 reads and 1000 writes skipped in the last 10s"),
        "{}",
        lines[1]
    );
    assert!(
        lines[2].contains("1000 reads and 1000 writes skipped in the last 10s"),
        "{}",
        lines[2]
    );
    assert!(
        lines[3].contains("L2 available again after 25.0s: 2500 reads and 2500 writes"),
        "{}",
        lines[3]
    );
    assert!(!log.down.load(Relaxed));
}

#[test]
fn a_new_outage_after_recovery_logs_its_start_again() {
    let log = L2Log::new(Duration::from_secs(10));
    let t0 = Instant::now();
    let lines = Lines::capture(|| {
        log.unavailable("redis", "get", &down(), t0);
        log.answered("redis", || t0);
        log.unavailable("redis", "set", &down(), t0);
    });
    assert_eq!(lines.len(), 3, "{lines:#?}");
    assert!(
        lines[2].contains("L2 unavailable (redis set"),
        "{}",
        lines[2]
    );
}

#[test]
fn refused_writes_and_requests_are_rate_limited_with_counts() {
    let log = L2Log::new(Duration::from_secs(10));
    let t0 = Instant::now();
    let bad = Error::new(ErrorKind::WrongType, "not a string");
    let lines = Lines::capture(|| {
        for i in 0..300u64 {
            let now = t0 + Duration::from_millis(i * 50);
            log.full("redis", "set", now);
            log.refused("redis", "get", &bad, now);
        }
    });
    // 15 s: the first of each, then one line each at 10 s.
    assert_eq!(lines.len(), 4, "{lines:#?}");
    assert!(lines[0].contains("refused 1 write(s)") && lines[0].contains("maxmemory-policy"));
    assert!(lines[2].contains("refused 200 write(s)"), "{}", lines[2]);
    assert!(
        lines[3].contains("200 since the last report"),
        "{}",
        lines[3]
    );
    // Not an outage.
    assert!(!log.down.load(Relaxed));
}

#[test]
fn reads_and_writes_are_told_apart() {
    assert!(is_read("get") && is_read("get_many"));
    assert!(!is_read("set") && !is_read("delete") && !is_read("lock"));
}
