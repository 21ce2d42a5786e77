//! Scenarios 2 and 3 again, with the libraries taking turns.
//!
//! Criterion measures one library for seconds, then the next: on a VM
//! whose wake-up latency drifts for seconds at a time, a slow stretch lands
//! on whichever library it meets, and single cells move by 1.5x between
//! runs. Here every round runs a few hundred calls of each library in turn
//! (each round starting with the next library), so a round lasts tens of
//! milliseconds and the libraries of one round meet the same machine. A
//! ratio to cachekit is taken within each round and the table shows the
//! median of those ratios over the rounds, beside the median times. The
//! CPU time a call costs the bench process and the Redis server together
//! is shown too: it depends less on how long the calls waited.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Instant;

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::cpu::{median, Cpu};
use super::{Calls, Fixture, L2_LIBS};

/// Odd, so that a median is one round's figure.
const ROUNDS: usize = 61;

/// Per library, one entry per round: µs of wall time, client CPU and
/// server CPU per call.
type Rounds = BTreeMap<usize, Vec<(f64, f64, f64)>>;

/// One scenario cell: `per_round` calls of each library a round; hits read id 1,
/// misses a fresh id each (from a range no criterion bench used).
fn measure<T>(f: &Fixture, calls: &Calls<T>, miss: bool, per_round: u64, ids: &AtomicU64) -> Rounds
where
    T: Serialize + DeserializeOwned + Send + Sync + 'static,
{
    let pid = f.server.pid();
    let mut rounds = Rounds::new();
    f.rt1.block_on(async {
        for lib in 0..L2_LIBS.len() {
            calls.call(f, lib, 1).await;
        }
        for round in 0..ROUNDS {
            for turn in 0..L2_LIBS.len() {
                let lib = (round + turn) % L2_LIBS.len();
                let before = Cpu::now(pid);
                let start = Instant::now();
                for _ in 0..per_round {
                    let id = if miss { ids.fetch_add(1, Relaxed) } else { 1 };
                    std::hint::black_box(calls.call(f, lib, id).await);
                }
                let wall = start.elapsed().as_secs_f64() * 1e6 / per_round as f64;
                let (client, server) = before.per_op(pid, per_round);
                rounds.entry(lib).or_default().push((wall, client, server));
            }
        }
    });
    if miss {
        f.flush();
    }
    rounds
}

/// Measures the four cells of scenarios 2 and 3 and prints their table.
pub fn report<S, L>(f: &Fixture, small: &Calls<S>, large: &Calls<L>)
where
    S: Serialize + DeserializeOwned + Send + Sync + 'static,
    L: Serialize + DeserializeOwned + Send + Sync + 'static,
{
    let ids = AtomicU64::new(50_000_000);
    let cells = [
        ("s2 small", measure(f, small, false, 200, &ids)),
        ("s2 16KiB", measure(f, large, false, 200, &ids)),
        ("s3 small", measure(f, small, true, 100, &ids)),
        ("s3 16KiB", measure(f, large, true, 100, &ids)),
    ];
    println!(
        "\n### s2_s3_interleaved (medians of {ROUNDS} rounds; each round runs every library in turn; × cachekit is the median of the ratios within a round)\n"
    );
    println!("| cell | library | wall µs/call | × cachekit | client CPU µs/call | Redis CPU µs/call | CPU total | × cachekit |");
    println!("|---|---|---|---|---|---|---|---|");
    for (cell, rounds) in &cells {
        let column = |lib: usize, pick: fn(&(f64, f64, f64)) -> f64| {
            median(rounds[&lib].iter().map(pick).collect())
        };
        // Library `lib`'s figure over cachekit's, round by round.
        let ratio = |lib: usize, pick: fn(&(f64, f64, f64)) -> f64| {
            let ours = rounds[&0].iter().map(pick);
            let theirs = rounds[&lib].iter().map(pick);
            median(theirs.zip(ours).map(|(t, o)| t / o).collect())
        };
        let wall = |r: &(f64, f64, f64)| r.0;
        let total = |r: &(f64, f64, f64)| r.1 + r.2;
        for (lib, name) in L2_LIBS.iter().enumerate() {
            println!(
                "| {cell} | {name} | {:.1} | {:.2} | {:.1} | {:.1} | {:.1} | {:.2} |",
                column(lib, wall),
                ratio(lib, wall),
                column(lib, |r| r.1),
                column(lib, |r| r.2),
                column(lib, total),
                ratio(lib, total),
            );
        }
    }
}
