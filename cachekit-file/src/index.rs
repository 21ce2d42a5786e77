//! The in-memory index: what this process believes is in the directory,
//! so that set and get never scan it and eviction knows what to remove.
//!
//! It is a view, not the truth: other processes add and remove files
//! behind it. Reads always go to disk and correct the view; the periodic
//! sweep ([`Index::merge_listing`]) re-synchronises it with a listing.

mod eviction;

use std::collections::HashMap;

use crate::format::KeyHash;

pub(crate) use eviction::Victim;

/// Reads refresh the on-disk access time at most this often per entry, so
/// that a hot key costs one metadata write per minute, not one per read.
const TOUCH_EVERY_NANOS: u64 = 60 * 1_000_000_000;

/// What the index knows about one entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Slot {
    /// Header plus value length.
    pub(crate) size: u64,
    /// Unix seconds, 0 = never.
    pub(crate) expiry: u64,
    /// Last read or write, Unix nanoseconds: comparable with file times, so
    /// entries first seen in a listing slot into the same order.
    pub(crate) last_use: u64,
    /// When this process last recorded a read on disk (access time), Unix
    /// nanoseconds; 0 if it has not since it last wrote or found the file.
    touched: u64,
    /// The sweep that last saw the file, to drop entries that vanished.
    seen_in: u64,
}

/// One file found by a directory listing, with its header's expiry.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Found {
    pub(crate) hash: KeyHash,
    pub(crate) size: u64,
    pub(crate) expiry: u64,
    pub(crate) recency: u64,
}

/// The entries this process knows about, with running totals.
#[derive(Debug, Default)]
pub(crate) struct Index {
    map: HashMap<KeyHash, Slot>,
    bytes: u64,
    sweeps: u64,
}

impl Index {
    pub(crate) fn len(&self) -> u64 {
        self.map.len() as u64
    }

    pub(crate) fn bytes(&self) -> u64 {
        self.bytes
    }

    pub(crate) fn get(&self, hash: &KeyHash) -> Option<&Slot> {
        self.map.get(hash)
    }

    /// Records a write by this process at `now`.
    pub(crate) fn wrote(&mut self, hash: KeyHash, size: u64, expiry: u64, now: u64) {
        self.put(
            hash,
            Slot {
                size,
                expiry,
                last_use: now,
                // No read recorded on disk yet: the first read records one.
                touched: 0,
                seen_in: self.sweeps,
            },
        );
    }

    /// Records a read at `now`. Returns whether the caller should record it
    /// on disk too (the file's access time): on the first read this process
    /// sees, then at most once a minute.
    pub(crate) fn read(&mut self, hash: KeyHash, size: u64, expiry: u64, now: u64) -> bool {
        let touched = self.map.get(&hash).map_or(0, |s| s.touched);
        let touch = now.saturating_sub(touched) >= TOUCH_EVERY_NANOS;
        self.put(
            hash,
            Slot {
                size,
                expiry,
                last_use: now,
                touched: if touch { now } else { touched },
                seen_in: self.sweeps,
            },
        );
        touch
    }

    /// Updates the expiry of a known entry (after `expire`).
    pub(crate) fn set_expiry(&mut self, hash: &KeyHash, expiry: u64, size: u64, now: u64) {
        match self.map.get_mut(hash) {
            Some(slot) => {
                slot.expiry = expiry;
                slot.last_use = now;
            }
            None => self.wrote(*hash, size, expiry, now),
        }
    }

    fn put(&mut self, hash: KeyHash, slot: Slot) {
        let size = slot.size;
        if let Some(old) = self.map.insert(hash, slot) {
            self.bytes = self.bytes.saturating_sub(old.size);
        }
        self.bytes = self.bytes.saturating_add(size);
    }

    pub(crate) fn remove(&mut self, hash: &KeyHash) -> Option<Slot> {
        let old = self.map.remove(hash)?;
        self.bytes = self.bytes.saturating_sub(old.size);
        Some(old)
    }

    /// Removes a victim chosen earlier, unless it was used since (a read or
    /// write in the meantime makes it no longer least recently used).
    pub(crate) fn remove_victim(&mut self, victim: &Victim) -> bool {
        match self.map.get(&victim.hash) {
            Some(slot) if slot.last_use == victim.last_use => {
                self.remove(&victim.hash);
                true
            }
            _ => false,
        }
    }

    /// Starts a sweep; entries seen by it get the returned mark.
    pub(crate) fn begin_sweep(&mut self) -> u64 {
        self.sweeps += 1;
        self.sweeps
    }

    /// Replaces the view with a directory listing taken by sweep `mark`,
    /// which started at `started` (Unix nanos). Entries this process used
    /// after the listing started keep their own, newer facts; entries not
    /// in the listing and not used since are dropped (another process
    /// removed them).
    pub(crate) fn merge_listing(&mut self, found: &[Found], mark: u64, started: u64) {
        for f in found {
            let slot = match self.map.get(&f.hash) {
                Some(old) if old.last_use >= started => Slot {
                    seen_in: mark,
                    ..*old
                },
                Some(old) => Slot {
                    size: f.size,
                    expiry: f.expiry,
                    last_use: old.last_use.max(f.recency),
                    touched: old.touched,
                    seen_in: mark,
                },
                None => Slot {
                    size: f.size,
                    expiry: f.expiry,
                    last_use: f.recency,
                    touched: 0,
                    seen_in: mark,
                },
            };
            self.put(f.hash, slot);
        }
        let mut gone = 0;
        self.map.retain(|_, slot| {
            let keep = slot.seen_in >= mark || slot.last_use >= started;
            if !keep {
                gone += slot.size;
            }
            keep
        });
        self.bytes = self.bytes.saturating_sub(gone);
    }

    /// Whether bytes or entries exceed the given limits.
    pub(crate) fn exceeds(&self, (bytes, entries): (u64, u64)) -> bool {
        self.bytes > bytes || self.len() > entries
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(n: u8) -> KeyHash {
        [n; 16]
    }

    #[test]
    fn totals_follow_writes_overwrites_and_removals() {
        let mut index = Index::default();
        index.wrote(h(1), 100, 0, 1);
        index.wrote(h(2), 50, 0, 2);
        index.wrote(h(1), 10, 0, 3);
        assert_eq!((index.len(), index.bytes()), (2, 60));
        assert!(index.remove(&h(2)).is_some());
        assert!(index.remove(&h(2)).is_none());
        assert_eq!((index.len(), index.bytes()), (1, 10));
        assert!(index.exceeds((9, 10)));
        assert!(index.exceeds((100, 0)));
        assert!(!index.exceeds((10, 1)));
    }

    #[test]
    fn reads_ask_for_a_touch_at_most_once_a_minute() {
        let mut index = Index::default();
        let t0 = 1_000 * TOUCH_EVERY_NANOS;
        assert!(index.read(h(1), 10, 0, t0), "never touched: touch");
        assert!(!index.read(h(1), 10, 0, t0 + 1));
        assert!(index.read(h(1), 10, 0, t0 + TOUCH_EVERY_NANOS));
        index.wrote(h(3), 10, 0, t0);
        assert!(index.read(h(3), 10, 0, t0 + 1), "first read after a write");
        assert!(!index.read(h(3), 10, 0, t0 + 2));
    }

    #[test]
    fn merge_keeps_recent_local_facts_and_drops_vanished_entries() {
        let mut index = Index::default();
        index.wrote(h(1), 10, 0, 100); // used before the sweep, still on disk
        index.wrote(h(2), 20, 0, 100); // used before the sweep, gone from disk
        let mark = index.begin_sweep();
        index.wrote(h(3), 30, 7, 300); // written during the sweep
        let found = [
            Found {
                hash: h(1),
                size: 11,
                expiry: 5,
                recency: 50,
            },
            Found {
                hash: h(3),
                size: 31,
                expiry: 0,
                recency: 250,
            },
            Found {
                hash: h(4),
                size: 40,
                expiry: 0,
                recency: 60,
            },
        ];
        index.merge_listing(&found, mark, 200);
        assert_eq!(
            index.get(&h(1)).map(|s| (s.size, s.expiry, s.last_use)),
            Some((11, 5, 100))
        );
        assert!(index.get(&h(2)).is_none());
        assert_eq!(index.get(&h(3)).map(|s| (s.size, s.expiry)), Some((30, 7)));
        assert_eq!(index.get(&h(4)).map(|s| s.last_use), Some(60));
        assert_eq!((index.len(), index.bytes()), (3, 11 + 30 + 40));
    }
}
