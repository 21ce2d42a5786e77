//! One library's call of the peers bench, run `n` times, for counting
//! instructions with callgrind: wall time on a shared VM moves by tens of
//! percent between runs, an instruction count does not.
//!
//! `scripts/callcount.sh` runs every path below under
//! `valgrind --tool=callgrind` at two call counts and prints the difference
//! per call, so that starting the process and the Redis server cancels out.
//! Run alone (`cargo bench --bench callcount`), each path makes 2,000 calls
//! and prints its wall time per call, as a check that it works; with the
//! argument `list` it prints the paths' names.
//!
//! Paths: `l1-cachekit`, `l1-cached` (scenario 1, small value);
//! `hit-cachekit`, `hit-cached`, `hit-raw` (scenario 2, small value);
//! `miss-cachekit`, `miss-cached`, `miss-raw` (scenario 3, small value).
//! One task on a current-thread runtime, as in scenarios 2 and 3.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

#[allow(dead_code)]
#[path = "peers/libs.rs"]
mod libs;
#[allow(dead_code)]
#[path = "peers/values.rs"]
mod values;

use std::hint::black_box;
use std::time::Instant;

use cachekit_testkit::RedisServer;

use libs::*;
use values::small;

const PATHS: [&str; 8] = [
    "l1-cachekit",
    "l1-cached",
    "hit-cachekit",
    "hit-cached",
    "hit-raw",
    "miss-cachekit",
    "miss-cached",
    "miss-raw",
];

fn main() {
    let mut args = std::env::args().skip(1).filter(|a| !a.starts_with("--"));
    let (paths, n) = match (args.next(), args.next()) {
        (Some(list), None) if list == "list" => {
            println!("{}", PATHS.join(" "));
            return;
        }
        (Some(path), Some(n)) => (vec![path], n.parse().expect("a call count")),
        _ => (PATHS.iter().map(|p| (*p).to_owned()).collect(), 2_000),
    };
    let server = RedisServer::start();
    URL.set(server.url()).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut raw = raw_conn(&server.url()).await;
        for path in &paths {
            assert!(PATHS.contains(&path.as_str()), "unknown path {path}");
            // Hits read id 1, stored (and its key remembered) before the
            // count starts; misses take a fresh id per call.
            let mut next = 1_000_000u64;
            let mut id = || {
                if path.starts_with("miss") {
                    next += 1;
                    next
                } else {
                    1
                }
            };
            call(path, &mut raw, 1).await;
            let start = Instant::now();
            for _ in 0..n {
                call(path, &mut raw, id()).await;
            }
            let per_call = start.elapsed().as_secs_f64() * 1e6 / n as f64;
            println!("{path}: {n} calls, {per_call:.2} µs per call");
        }
    });
}

async fn call(path: &str, raw: &mut redis::aio::MultiplexedConnection, id: u64) {
    match path {
        "l1-cachekit" => {
            black_box(ours_small_l1(black_box(id)));
        }
        "l1-cached" => {
            black_box(cached_small_l1(black_box(id)));
        }
        "hit-cachekit" | "miss-cachekit" => {
            black_box(ours_small_l2(id).await);
        }
        "hit-cached" | "miss-cached" => {
            black_box(cached_small_l2(id).await.expect("cached"));
        }
        _ => {
            let key = format!("raw:small:{id}");
            black_box(raw_memo(raw, &key, id, small).await);
        }
    }
}
