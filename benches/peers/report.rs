//! Turns criterion's saved estimates of this bench's groups into the
//! markdown tables of `docs/performance.md`: median per library and the
//! ratio to cachekit. `scripts/peers-chart.py` reads the same estimates
//! and draws them as bars.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value;

/// Where criterion writes: `$CRITERION_HOME`, else `$CARGO_TARGET_DIR/criterion`,
/// else the workspace's `target/criterion` (the bench runs in this
/// package's directory, two levels below the workspace).
fn criterion_dir() -> PathBuf {
    if let Ok(home) = std::env::var("CRITERION_HOME") {
        return PathBuf::from(home);
    }
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"),
        PathBuf::from,
    );
    target.join("criterion")
}

struct Row {
    function: String,
    parameter: Option<String>,
    median_ns: f64,
}

fn read_json(path: &Path) -> Option<Value> {
    serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()
}

fn collect() -> BTreeMap<String, Vec<Row>> {
    let mut groups: BTreeMap<String, Vec<Row>> = BTreeMap::new();
    let mut stack = vec![criterion_dir()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if !path.is_dir() {
                continue;
            }
            if path.file_name().is_some_and(|n| n == "new") {
                let (Some(bench), Some(est)) = (
                    read_json(&path.join("benchmark.json")),
                    read_json(&path.join("estimates.json")),
                ) else {
                    continue;
                };
                let group = bench["group_id"].as_str().unwrap_or_default().to_string();
                let wanted = ["s1_", "s2_", "s3_", "s4_", "scaling_"];
                if !wanted.iter().any(|p| group.starts_with(p)) {
                    continue;
                }
                let median_ns = est["median"]["point_estimate"].as_f64().unwrap_or(f64::NAN);
                groups.entry(group).or_default().push(Row {
                    function: bench["function_id"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string(),
                    parameter: bench["value_str"].as_str().map(str::to_string),
                    median_ns,
                });
            } else if path
                .file_name()
                .is_some_and(|n| n != "report" && n != "base")
            {
                stack.push(path);
            }
        }
    }
    groups
}

fn human_time(ns: f64) -> String {
    if ns >= 1_000_000.0 {
        format!("{:.2} ms", ns / 1_000_000.0)
    } else if ns >= 1_000.0 {
        format!("{:.1} µs", ns / 1_000.0)
    } else {
        format!("{ns:.0} ns")
    }
}

fn human_rate(ns: f64) -> String {
    let per_sec = 1e9 / ns;
    if per_sec >= 1e6 {
        format!("{:.2} M ops/s", per_sec / 1e6)
    } else {
        format!("{:.1} k ops/s", per_sec / 1e3)
    }
}

/// Latency groups get "median time, × cachekit's time"; throughput groups
/// (many tasks or threads) get "median ops/s, × cachekit's ops/s".
pub fn print_tables() {
    let groups = collect();
    if groups.is_empty() {
        return;
    }
    println!(
        "\n## Tables (criterion medians, from {})",
        criterion_dir().display()
    );
    for (group, mut rows) in groups {
        let throughput = group.starts_with("s4_") || group.starts_with("scaling_");
        rows.sort_by(|a, b| {
            let pa = a.parameter.as_deref().and_then(|p| p.parse::<u64>().ok());
            let pb = b.parameter.as_deref().and_then(|p| p.parse::<u64>().ok());
            pa.cmp(&pb)
                .then(order(&a.function).cmp(&order(&b.function)))
        });
        println!("\n### {group}\n");
        if throughput {
            println!("| library | n | median ops/s | × cachekit ops/s |\n|---|---|---|---|");
        } else {
            println!("| library | median time | × cachekit time |\n|---|---|---|");
        }
        for row in &rows {
            let ours = rows
                .iter()
                .find(|r| r.function == "cachekit" && r.parameter == row.parameter)
                .map(|r| r.median_ns);
            if throughput {
                let ratio = ours.map_or(f64::NAN, |o| o / row.median_ns);
                println!(
                    "| {} | {} | {} | {ratio:.2} |",
                    row.function,
                    row.parameter.as_deref().unwrap_or("64"),
                    human_rate(row.median_ns)
                );
            } else {
                let ratio = ours.map_or(f64::NAN, |o| row.median_ns / o);
                println!(
                    "| {} | {} | {ratio:.2} |",
                    row.function,
                    human_time(row.median_ns)
                );
            }
        }
    }
}

fn order(function: &str) -> u8 {
    match function {
        "cachekit" => 0,
        "cached" => 1,
        "cachekit-rs" => 2,
        f if f.ends_with("(baseline)") => 3,
        _ => 4,
    }
}
