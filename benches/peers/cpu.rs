//! CPU time per operation on 64 tasks (scenario 4, and uniform L2 reads on
//! two workers and on one), client and Redis server together.
//!
//! On a machine whose two cores the client and the server share, ops/s
//! swing with whatever else the VM runs; the CPU time an operation costs
//! both processes moves far less, and it is what a busier machine runs out
//! of first. Read around a fixed number of operations (the process's own
//! CPU clock, the server's scheduler statistics), interleaved over the
//! libraries, the median of the rounds.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::runtime::Runtime;

use super::clients::{run_tasks, Mix};
use super::libs::Lib;
use super::values::Zipf;

const OPS: u64 = 200_000;
const ROUNDS: usize = 5;

/// CPU time the bench process has used, all its threads, dead ones included.
fn own_cpu() -> Duration {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ProcessCPUTime);
    Duration::new(
        u64::try_from(t.tv_sec).unwrap_or(0),
        u32::try_from(t.tv_nsec).unwrap_or(0),
    )
}

/// CPU time the threads of `pid` (the Redis server) have used, in
/// nanoseconds from the scheduler (`/proc/PID/task/*/schedstat`), not in
/// clock ticks, so that a short round is measured as well as a long one.
fn server_cpu(pid: u32) -> Duration {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).expect("the server's /proc");
    let nanos = tasks
        .flatten()
        .filter_map(|task| std::fs::read_to_string(task.path().join("schedstat")).ok())
        .filter_map(|stat| stat.split_whitespace().next()?.parse::<u64>().ok())
        .sum();
    Duration::from_nanos(nanos)
}

/// CPU time of the bench process and of the server at one moment.
#[derive(Clone, Copy)]
pub struct Cpu {
    client: Duration,
    server: Duration,
}

impl Cpu {
    pub fn now(server_pid: u32) -> Self {
        Self {
            client: own_cpu(),
            server: server_cpu(server_pid),
        }
    }

    /// µs of client and server CPU per operation since `self`.
    pub fn per_op(self, server_pid: u32, ops: u64) -> (f64, f64) {
        let now = Self::now(server_pid);
        let us = |d: Duration| d.as_secs_f64() * 1e6 / ops as f64;
        (us(now.client - self.client), us(now.server - self.server))
    }
}

pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Prints, per library, the µs of CPU an operation of scenario 4 costs the
/// bench process and `server_pid`, and its ops/s in the same rounds; then
/// the same for reads of uniformly drawn keys, where single-flight joins
/// few reads and every library sends about one command per read.
pub fn report(rt: &Runtime, libs: &[(&'static str, Lib)], server_pid: u32) {
    let zipf = Mix::Zipf90(Arc::new(Zipf::new(10_000, 1.0)));
    report_mix(rt, libs, server_pid, "s4_cpu_per_op", &zipf);
    report_mix(rt, libs, server_pid, "l2_uniform_cpu_per_op", &Mix::Uniform);
}

/// The uniform reads once more on a runtime with one worker, with every
/// library's connections opened on it, so that each connection's driver
/// and the tasks it wakes share one thread. Set beside the two-worker
/// table, it tells what a read costs from what passing its task, its
/// future and its allocations between two cores costs.
pub fn report_one_worker(url: &str, server_pid: u32) {
    let rt = super::runtime(1);
    let libs = rt.block_on(super::libs::libs(url));
    report_mix(
        &rt,
        &libs,
        server_pid,
        "l2_uniform_cpu_per_op_one_worker",
        &Mix::Uniform,
    );
}

fn report_mix(rt: &Runtime, libs: &[(&'static str, Lib)], server_pid: u32, title: &str, mix: &Mix) {
    let mut rounds: BTreeMap<&str, Vec<(f64, f64, f64)>> = BTreeMap::new();
    for _ in 0..ROUNDS {
        for (name, lib) in libs {
            let before = Cpu::now(server_pid);
            let wall = run_tasks(rt, OPS, 64, lib, mix);
            let (client, server) = before.per_op(server_pid, OPS);
            let ops = OPS as f64 / wall.as_secs_f64();
            rounds.entry(name).or_default().push((client, server, ops));
        }
    }
    println!("\n### {title} (64 tasks, {OPS} operations per round, median of {ROUNDS} rounds)\n");
    println!("| library | client µs/op | Redis µs/op | total µs/op | × cachekit total | ops/s in these rounds |");
    println!("|---|---|---|---|---|---|");
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
