#!/usr/bin/env bash
# Instructions per hit with the `metrics` feature off, on with no recorder,
# and on with a Prometheus recorder (docs/performance.md, "Metrics"): a
# scratch program, built against this checkout, makes N hits of a
# `#[cached]` function or of `TieredCache::get`; callgrind counts two runs
# (100,000 and 500,000 hits) and the difference is divided by 400,000, so
# that start-up (the Prometheus recorder calibrates its clock for a time,
# not a number of instructions) cancels out. Needs valgrind.
#
#   ./scripts/metrics-callcount.sh
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
command -v valgrind >/dev/null || { echo "metrics-callcount: needs valgrind (apt-get install valgrind)" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/src"
cat >"$work/Cargo.toml" <<TOML
[package]
name = "metrics-callcount"
version = "0.0.0"
edition = "2021"
publish = false

[features]
metrics = ["cachekit/metrics"]

[dependencies]
cachekit = { path = "$root", default-features = false, features = ["macros"] }
metrics = "0.24"
metrics-exporter-prometheus = { version = "0.18", default-features = false }
tokio = { version = "1", features = ["rt", "time"] }

[profile.release]
debug = 1

[workspace]
TOML
cat >"$work/src/main.rs" <<'RS'
use std::hint::black_box;
use std::time::Duration;

#[cachekit::cached(namespace = "cg", name = "square", ttl = 600)]
fn square(x: u64) -> u64 {
    x * x
}

fn main() {
    let mut args = std::env::args().skip(1);
    let (path, recorder) = (args.next().unwrap_or_default(), args.next().unwrap_or_default());
    let hits: u64 = args.next().and_then(|n| n.parse().ok()).unwrap_or(100_000);
    if recorder == "prometheus" {
        let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
        metrics::set_global_recorder(recorder).expect("the only recorder");
    }
    let mut sum = 0u64;
    if path == "macro" {
        sum = square(7);
        for _ in 0..hits {
            sum = sum.wrapping_add(black_box(square(black_box(7))));
        }
    } else {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
        rt.block_on(async {
            let cache = cachekit::TieredCache::builder().build().expect("an L1-only cache");
            cache.set("k", &7u64, Some(Duration::from_secs(600))).await.expect("an L1 set");
            for _ in 0..hits {
                sum = sum.wrapping_add(cache.get::<u64>(black_box("k")).await.unwrap_or(0));
            }
        });
    }
    println!("{sum}");
}
RS
build() { # $1: target dir, $2...: cargo flags
  local dir=$1
  shift
  (cd "$work" && CARGO_TARGET_DIR="$work/$dir" cargo build --release -q "$@")
}
build off
build on --features metrics
total() {
  valgrind --tool=callgrind --callgrind-out-file=/dev/null "$@" 2>&1 | sed -n 's/.*I *refs: *\([0-9,]*\).*/\1/p' | tr -d ,
}
per_hit() { # $1: binary, $2: path, $3: recorder
  local a b
  a=$(total "$1" "$2" "$3" 100000)
  b=$(total "$1" "$2" "$3" 500000)
  awk -v a="$a" -v b="$b" 'BEGIN { printf "%.1f", (b - a) / 400000 }'
}
printf '%-8s %12s %18s %18s\n' path "feature off" "on, no recorder" "on, Prometheus"
for path in macro get; do
  printf '%-8s %12s %18s %18s\n' "$path" \
    "$(per_hit "$work/off/release/metrics-callcount" "$path" none)" \
    "$(per_hit "$work/on/release/metrics-callcount" "$path" none)" \
    "$(per_hit "$work/on/release/metrics-callcount" "$path" prometheus)"
done
