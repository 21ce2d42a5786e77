//! CPU time per operation of scenario 4, client and Redis server together.
//!
//! On a machine whose two cores the client and the server share, ops/s
//! swing with whatever else the VM runs; the CPU time an operation costs
//! both processes moves far less, and it is what a busier machine runs out
//! of first. Read from `/proc` (utime + stime) around a fixed number of
//! operations, interleaved over the libraries, the median of the rounds.

use std::collections::BTreeMap;
use std::sync::Arc;

use tokio::runtime::Runtime;

use super::libs::Lib;
use super::scaling::{run_tasks, Mix};
use super::values::Zipf;

const OPS: u64 = 200_000;
const ROUNDS: usize = 5;

/// CPU seconds `pid` has used so far.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name, which is in parentheses and may hold spaces.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or("", |(_, rest)| rest)
        .split_whitespace()
        .collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // utime and stime are fields 14 and 15 of stat(5); 11 and 12 here.
    (ticks(11) + ticks(12)) as f64 / rustix::param::clock_ticks_per_second() as f64
}

/// Prints, per library, the µs of CPU an operation of scenario 4 costs the
/// bench process and `server_pid`, and its ops/s in the same rounds.
pub fn report(rt: &Runtime, libs: &[(&'static str, Lib)], server_pid: u32) {
    let mix = Mix::Zipf90(Arc::new(Zipf::new(10_000, 1.0)));
    let me = std::process::id();
    let mut rounds: BTreeMap<&str, Vec<(f64, f64, f64)>> = BTreeMap::new();
    for _ in 0..ROUNDS {
        for (name, lib) in libs {
            let (client, server) = (cpu_seconds(me), cpu_seconds(server_pid));
            let wall = run_tasks(rt, OPS, 64, lib, &mix);
            let per_op = |before: f64, pid: u32| (cpu_seconds(pid) - before) * 1e6 / OPS as f64;
            let ops = OPS as f64 / wall.as_secs_f64();
            rounds.entry(name).or_default().push((
                per_op(client, me),
                per_op(server, server_pid),
                ops,
            ));
        }
    }
    println!(
        "\n### s4_cpu_per_op (64 tasks, {OPS} operations per round, median of {ROUNDS} rounds)\n"
    );
    println!("| library | client µs/op | Redis µs/op | total µs/op | × cachekit total | ops/s in these rounds |");
    println!("|---|---|---|---|---|---|");
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let mut ours = None;
    for (name, _) in libs {
        let got = &rounds[name];
        let client = median(got.iter().map(|r| r.0).collect());
        let server = median(got.iter().map(|r| r.1).collect());
        let total = median(got.iter().map(|r| r.0 + r.1).collect());
        let ops = median(got.iter().map(|r| r.2).collect());
        let base = *ours.get_or_insert(total);
        println!(
            "| {name} | {client:.2} | {server:.2} | {total:.2} | {:.2} | {:.1} k |",
            total / base,
            ops / 1e3
        );
    }
}
