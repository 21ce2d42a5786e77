//! What metrics-util's debugging recorder took since its last snapshot (a
//! snapshot resets counters and gauges), keyed by series:
//! `name{label=value,...}` with the labels sorted, as a test names it.

use std::collections::HashMap;

use metrics_util::debugging::{DebugValue, Snapshotter};

/// Every series the recorder has seen, with what it took since the last
/// snapshot.
pub fn series(snapshotter: &Snapshotter) -> HashMap<String, DebugValue> {
    snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .map(|(key, _, _, value)| {
            let key = key.key();
            let mut labels: Vec<String> = key
                .labels()
                .map(|l| format!("{}={}", l.key(), l.value()))
                .collect();
            labels.sort();
            (format!("{}{{{}}}", key.name(), labels.join(",")), value)
        })
        .collect()
}

/// [`series`]' counters and gauges, as numbers (histograms left out).
pub fn numbers(snapshotter: &Snapshotter) -> HashMap<String, f64> {
    series(snapshotter)
        .into_iter()
        .filter_map(|(name, value)| match value {
            DebugValue::Counter(n) => Some((name, n as f64)),
            DebugValue::Gauge(v) => Some((name, v.into_inner())),
            DebugValue::Histogram(_) => None,
        })
        .collect()
}
