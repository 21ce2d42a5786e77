//! `examples/metrics.rs`, served on a loopback port: a miss and two hits
//! through real HTTP requests show up in its Prometheus scrape.
#![cfg(all(feature = "metrics", feature = "macros"))]

#[path = "../examples/metrics.rs"]
#[allow(dead_code)]
mod example;

use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// One HTTP/1.1 GET; the status line and the body.
async fn get(addr: SocketAddr, path: &str) -> (String, String) {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("send");
    let mut response = String::new();
    stream.read_to_string(&mut response).await.expect("read");
    let (head, body) = response.split_once("\r\n\r\n").expect("a response");
    let status = head.lines().next().unwrap_or_default().to_owned();
    (status, body.to_owned())
}

/// The value of the series whose line starts with `series` (name and
/// labels as the exporter renders them).
fn value(scrape: &str, name: &str, labels: &[&str]) -> Option<f64> {
    scrape
        .lines()
        .filter(|line| line.starts_with(name) && labels.iter().all(|l| line.contains(l)))
        .find_map(|line| line.rsplit(' ').next()?.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_miss_and_two_hits_are_counted_in_the_scrape() {
    // The example serves from the environment's default backend: this
    // test wants the in-process one.
    std::env::remove_var("CACHEKIT_REDIS_URL");
    std::env::remove_var("REDIS_URL");
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("a port");
    let addr = listener.local_addr().expect("its address");
    tokio::spawn(example::serve(listener));

    for _ in 0..3 {
        let (status, body) = get(addr, "/users/42").await;
        assert!(status.contains("200"), "{status}");
        assert!(body.contains("\"user 42\""), "{body}");
    }
    let (status, scrape) = get(addr, "/metrics").await;
    assert!(status.contains("200"), "{status}");
    let calls = |result: &str| {
        value(
            &scrape,
            "cachekit_function_calls_total{",
            &[
                "namespace=\"users\"",
                "function=\"get_user\"",
                &format!("result=\"{result}\""),
            ],
        )
    };
    assert_eq!(calls("hit"), Some(2.0), "{scrape}");
    assert_eq!(calls("miss"), Some(1.0), "{scrape}");
    // cachekit-py's name for the same thing.
    let py = |status: &str| {
        value(
            &scrape,
            "redis_cache_operations_total{",
            &[
                "namespace=\"users\"",
                &format!("status=\"{status}\""),
                "operation=\"get\"",
            ],
        )
    };
    assert_eq!((py("hit"), py("miss")), (Some(2.0), Some(1.0)), "{scrape}");
    // Latencies: the exporter renders histograms as summaries by default.
    for histogram in [
        "cachekit_compute_duration_seconds",
        "cachekit_function_duration_seconds",
        "redis_cache_operation_duration_seconds",
    ] {
        let count = value(&scrape, &format!("{histogram}_count"), &[]);
        assert!(count.is_some_and(|n| n >= 1.0), "{histogram}: {scrape}");
    }
    assert_eq!(
        value(
            &scrape,
            "cachekit_requests_total{",
            &["tier=\"l1\"", "result=\"miss\""]
        ),
        Some(1.0),
        "{scrape}"
    );
}
