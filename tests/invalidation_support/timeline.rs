//! What a reader saw and when, and how long each change took to reach it.
//!
//! Processes share no monotonic clock, so times are wall-clock nanoseconds
//! (`SystemTime`, one clock for every process on the machine). A reader
//! records its reads as segments of equal values (the start of the first
//! and of the last read of each); the writer records when each version's
//! change was acknowledged. A version's propagation delay is the start of
//! the first read after which the reader never again returned an older
//! value, minus the acknowledgement; a violation is a read that started
//! more than the bound after the acknowledgement and still returned an
//! older value (a read that started earlier but was descheduled for a
//! while is not one).

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Wall-clock nanoseconds since the Unix epoch.
pub fn now_ns() -> u64 {
    let since = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    u64::try_from(since.as_nanos()).unwrap()
}

/// Reads that returned one value in a row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment {
    pub value: u64,
    /// When the first of them started.
    pub first: u64,
    /// When the last of them started.
    pub last: u64,
}

/// A reader's record.
#[derive(Debug, Default)]
pub struct Timeline {
    segments: Vec<Segment>,
    reads: u64,
}

impl Timeline {
    /// A read that started at `started` returned `value`.
    pub fn record(&mut self, started: u64, value: u64) {
        self.reads += 1;
        match self.segments.last_mut() {
            Some(segment) if segment.value == value => segment.last = started,
            _ => self.segments.push(Segment {
                value,
                first: started,
                last: started,
            }),
        }
    }

    pub fn reads(&self) -> u64 {
        self.reads
    }

    /// `value,first,last;...` for the parent.
    pub fn encode(&self) -> String {
        let parts: Vec<String> = self
            .segments
            .iter()
            .map(|s| format!("{},{},{}", s.value, s.first, s.last))
            .collect();
        parts.join(";")
    }
}

/// The segments of [`Timeline::encode`].
pub fn decode(text: &str) -> Vec<Segment> {
    text.split(';')
        .filter(|part| !part.is_empty())
        .map(|part| {
            let numbers: Vec<u64> = part.split(',').map(|n| n.parse().unwrap()).collect();
            Segment {
                value: numbers[0],
                first: numbers[1],
                last: numbers[2],
            }
        })
        .collect()
}

/// Propagation delays and violations over every reader of one run.
#[derive(Debug, Default)]
pub struct Verdict {
    /// One per (reader, version), in nanoseconds.
    delays: Vec<u64>,
    /// What each violation was, for the failure message.
    pub violations: Vec<String>,
}

impl Verdict {
    /// Adds one reader's segments, judged against the writer's `acks`
    /// (`(version, acknowledged at)`, versions ascending).
    pub fn judge(
        &mut self,
        reader: &str,
        segments: &[Segment],
        acks: &[(u64, u64)],
        bound: Duration,
    ) {
        let bound = u64::try_from(bound.as_nanos()).unwrap();
        for &(version, acked) in acks {
            // The last run of reads that returned something older.
            let Some(stale) = segments.iter().rposition(|s| s.value < version) else {
                self.delays.push(0);
                continue;
            };
            let last_stale = segments[stale].last;
            let fresh = segments.get(stale + 1);
            if last_stale > acked + bound {
                self.violations.push(format!(
                    "{reader}: a read {:.1} ms after version {version} was acknowledged returned {}",
                    ms(last_stale - acked),
                    segments[stale].value
                ));
            } else if fresh.is_none() {
                self.violations.push(format!(
                    "{reader}: never returned version {version} (last value {})",
                    segments[stale].value
                ));
            }
            if let Some(fresh) = fresh {
                self.delays.push(fresh.first.saturating_sub(acked));
            }
        }
    }

    pub fn summary(&self) -> Summary {
        let mut all = self.delays.clone();
        all.sort_unstable();
        // No delays at all when no reader ever caught up (the violations
        // say so).
        let at = |q: f64| {
            let last = all.len().saturating_sub(1);
            all.get((last as f64 * q).round() as usize)
                .copied()
                .unwrap_or(0)
        };
        Summary {
            changes: all.len(),
            p50: at(0.50),
            p99: at(0.99),
            max: at(1.0),
            violations: self.violations.len(),
        }
    }
}

/// p50, p99 and max propagation delay of a [`Verdict`].
#[derive(Debug, Clone, Copy)]
pub struct Summary {
    /// (reader, version) pairs measured.
    pub changes: usize,
    pub p50: u64,
    pub p99: u64,
    pub max: u64,
    pub violations: usize,
}

fn ms(ns: u64) -> f64 {
    ns as f64 / 1e6
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "observed={} p50={:.2}ms p99={:.2}ms max={:.2}ms violations={}",
            self.changes,
            ms(self.p50),
            ms(self.p99),
            ms(self.max),
            self.violations
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(value: u64, first: u64, last: u64) -> Segment {
        Segment { value, first, last }
    }

    #[test]
    fn delays_and_violations() {
        let bound = Duration::from_nanos(100);
        let acks = [(1, 1_000), (2, 2_000)];
        let mut verdict = Verdict::default();
        // Version 1 seen 50 ns after its ack, version 2 stale for 500 ns.
        let reads = [seg(0, 0, 1_040), seg(1, 1_050, 2_500), seg(2, 2_510, 3_000)];
        verdict.judge("r", &reads, &acks, bound);
        assert_eq!(verdict.delays, vec![50, 510]);
        assert_eq!(verdict.violations.len(), 1, "{:?}", verdict.violations);
        // Going back to an older value is stale too; never catching up is
        // a violation.
        let mut verdict = Verdict::default();
        let reads = [seg(1, 0, 1_010), seg(2, 1_020, 1_030), seg(1, 1_040, 2_010)];
        verdict.judge("r", &reads, &acks, bound);
        assert_eq!(verdict.violations.len(), 1, "{:?}", verdict.violations);
        let timeline = {
            let mut t = Timeline::default();
            t.record(5, 1);
            t.record(6, 1);
            t.record(9, 2);
            t
        };
        assert_eq!(decode(&timeline.encode()), vec![seg(1, 5, 6), seg(2, 9, 9)]);
    }
}
