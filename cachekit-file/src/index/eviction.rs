//! Choosing what to evict: expired entries first, then least recently used,
//! until the view is under the low watermark.
//!
//! Selection copies the index under the lock (O(n)) and sorts the copy
//! outside it (O(n log n)), but runs only when the high watermark is crossed, and each run frees the gap between the two
//! watermarks (10 % of the budget by default), so it costs O(log n)
//! amortised per write.

use std::time::Duration;

use super::Index;
use crate::format::{is_live, KeyHash};

/// An entry chosen for eviction, with the use it was chosen at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Victim {
    pub(crate) hash: KeyHash,
    pub(crate) last_use: u64,
}

impl Index {
    /// Copies what eviction needs, so that sorting happens outside the lock.
    pub(crate) fn candidates(&self) -> Candidates {
        Candidates {
            entries: self
                .map
                .iter()
                .map(|(hash, s)| (s.expiry, s.last_use, *hash, s.size))
                .collect(),
            bytes: self.bytes(),
        }
    }
}

/// A copy of the index for choosing victims.
pub(crate) struct Candidates {
    entries: Vec<(u64, u64, KeyHash, u64)>,
    bytes: u64,
}

impl Candidates {
    /// The entries to remove so that bytes and entries are at or below
    /// `low`: expired ones first, then the least recently used.
    pub(crate) fn victims(self, low: (u64, u64), now: Duration) -> Vec<Victim> {
        let mut order: Vec<(bool, u64, KeyHash, u64)> = self
            .entries
            .into_iter()
            .map(|(expiry, last_use, hash, size)| (is_live(expiry, now), last_use, hash, size))
            .collect();
        // `false` (expired) sorts first, then the oldest use.
        order.sort_unstable_by_key(|&(live, last_use, hash, _)| (live, last_use, hash));
        let (mut bytes, mut entries) = (self.bytes, order.len() as u64);
        let mut out = Vec::new();
        for (live, last_use, hash, size) in order {
            if live && bytes <= low.0 && entries <= low.1 {
                break;
            }
            out.push(Victim { hash, last_use });
            bytes = bytes.saturating_sub(size);
            entries = entries.saturating_sub(1);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_below_high_then_expired_first_then_lru_down_to_low() {
        let now = Duration::from_secs(1_000);
        let mut index = Index::default();
        for n in 0..10u8 {
            index.wrote([n; 16], 10, 0, 100 + u64::from(n));
        }
        assert!(!index.exceeds((100, 10)));

        index.wrote([10; 16], 10, 500, 200); // expired, but most recently used
        assert!(index.exceeds((100, 10)));
        let victims: Vec<u8> = index
            .candidates()
            .victims((80, 8), now)
            .iter()
            .map(|v| v.hash[0])
            .collect();
        assert_eq!(victims, [10, 0, 1]);

        // A byte budget alone also drives it.
        let victims = index.candidates().victims((30, 100), now);
        assert_eq!(victims.len(), 11 - 3);
    }

    #[test]
    fn a_victim_used_since_selection_is_spared() {
        let mut index = Index::default();
        index.wrote([1; 16], 10, 0, 1);
        index.wrote([2; 16], 10, 0, 2);
        let victims = index.candidates().victims((10, 1), Duration::ZERO);
        assert_eq!(victims.len(), 1);
        index.wrote([1; 16], 10, 0, 3);
        assert!(!index.remove_victim(&victims[0]));
        assert_eq!(index.len(), 2);
    }
}
