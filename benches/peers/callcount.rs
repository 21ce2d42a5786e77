//! One library's call of the peers bench, run `n` times, for counting
//! instructions with callgrind: wall time on a shared VM moves by tens of
//! percent between runs, an instruction count does not.
//!
//! `scripts/callcount.sh` runs every path below under
//! `valgrind --tool=callgrind` at two call counts and prints the difference
//! per call, so that starting the process and the Redis server cancels out.
//! Run alone (`cargo bench -p cachekit-peers --bench callcount`), each
//! path makes 2,000 calls
//! and prints its wall time per call, as a check that it works; with the
//! argument `list` it prints the paths' names.
//!
//! Paths: `l1-cachekit`, `l1-cached` (scenario 1, small value);
//! `hit-cachekit`, `hit-cached`, `hit-raw` (scenario 2, small value);
//! `miss-cachekit`, `miss-cached`, `miss-raw` (scenario 3, small value).
//! One task on a current-thread runtime, as in scenarios 2 and 3.
//!
//! With `CALLCOUNT_TASKS=t` set, a path's `n` calls are instead split over
//! `t` tasks on two worker threads, each task calling with its own
//! argument, and the run prints operations per second: a workload to
//! profile with `perf record` (callgrind runs threads one at a time), e.g.
//! `CALLCOUNT_TASKS=64 perf record -F 4999 <bench binary> hit-cachekit 400000`.
//! `CALLCOUNT_WORKERS=w` runs those tasks on `w` workers instead of two.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

#[allow(dead_code)]
#[path = "../common/clients.rs"]
mod clients;
#[allow(dead_code)]
mod libs;
#[allow(dead_code)]
#[path = "../common/values.rs"]
mod values;

use std::hint::black_box;
use std::time::Instant;

use cachekit_testkit::RedisServer;

use clients::{raw_conn, raw_memo};
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
    if let Ok(tasks) = std::env::var(TASKS) {
        let tasks = tasks.parse().expect("CALLCOUNT_TASKS: a task count");
        for path in &paths {
            concurrent(path, tasks, n, &server);
        }
        return;
    }
    // The L1 paths' first calls, which fill the caches, are made here,
    // outside the runtime, as in the peers bench. Inside a current-thread
    // runtime, cachekit runs a sync body on a helper thread; the value's
    // memory then comes from that thread's malloc arena, and every later
    // clone recycles it, each free paying a lookup of the chunk's arena.
    for path in &paths {
        match path.as_str() {
            "l1-cachekit" => drop(ours_small_l1(1)),
            "l1-cached" => drop(cached_small_l1(1)),
            _ => {}
        }
    }
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
            let per_call = start.elapsed().as_secs_f64() * 1e9 / n as f64;
            println!("{path}: {n} calls, {per_call:.1} ns per call");
        }
    });
}

/// The environment variable that splits the calls over tasks.
const TASKS: &str = "CALLCOUNT_TASKS";

/// The environment variable that sets the workers of the concurrent runs.
const WORKERS: &str = "CALLCOUNT_WORKERS";

/// `n` calls of `path` split over `tasks` tasks on two workers (or
/// [`WORKERS`]); task `t`
/// calls with argument `t + 1` (a hit after its first call), and all share
/// one raw connection, as in the peers bench.
fn concurrent(path: &str, tasks: u64, n: u64, server: &RedisServer) {
    assert!(PATHS.contains(&path), "unknown path {path}");
    assert!(tasks > 0, "{TASKS}: at least one task");
    let workers =
        std::env::var(WORKERS).map_or(2, |w| w.parse().expect("CALLCOUNT_WORKERS: a count"));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let shared = raw_conn(&server.url()).await;
        let mut set = tokio::task::JoinSet::new();
        let per_task = n.div_ceil(tasks);
        let start = Instant::now();
        for t in 0..tasks {
            let path = path.to_owned();
            let mut raw = shared.clone();
            set.spawn(async move {
                for _ in 0..per_task {
                    call(&path, &mut raw, t + 1).await;
                }
            });
        }
        while set.join_next().await.is_some() {}
        let calls = per_task * tasks;
        let per_second = calls as f64 / start.elapsed().as_secs_f64();
        println!("{path}: {calls} calls over {tasks} tasks on {workers} workers, {per_second:.0} per second");
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
