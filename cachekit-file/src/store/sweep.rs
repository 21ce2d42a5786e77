//! The sweep: list the directory, drop expired, corrupt and stale temp
//! files, symlinks and other users' files under entry names, re-synchronise the index with what other processes did, and
//! enforce the budgets. Runs at open and then every `sweep_interval`.

use cachekit_core::Result;

use super::{nanos, Store};
use crate::disk::Listed;
use crate::format::{is_live, unix_now, FileName, Header};
use crate::index::Found;

/// What one [`FileBackend::sweep`](crate::FileBackend::sweep) found and did.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SweepStats {
    /// Live entries in the index afterwards.
    pub entries: u64,
    /// Bytes (headers plus values) of those entries.
    pub bytes: u64,
    /// Expired entries removed.
    pub expired_removed: u64,
    /// Files that were not cachekit entries (wrong magic, truncated) removed.
    pub corrupt_removed: u64,
    /// Symlinks and files of other users under entry names removed (never
    /// followed: the link itself goes).
    pub untrusted_removed: u64,
    /// Temp files of dead or long-stalled writers removed.
    pub temp_files_removed: u64,
    /// Entries evicted to get under the budgets.
    pub evicted: u64,
}

impl Store {
    /// Runs one sweep now.
    ///
    /// Listing the directory is the only step whose failure is returned;
    /// a file that cannot be inspected or removed is logged and skipped.
    pub(crate) fn sweep(&self) -> Result<SweepStats> {
        let now = unix_now();
        let mark = self.index().begin_sweep();
        let listed = self.disk.list(now)?;
        let mut stats = SweepStats::default();
        let mut found = Vec::with_capacity(listed.len());
        for item in listed {
            let (hash, size, recency) = match item {
                Listed::StaleTemp(name) => {
                    stats.temp_files_removed += u64::from(self.unlink_logged(&name));
                    continue;
                }
                Listed::Untrusted(name) => {
                    stats.untrusted_removed += u64::from(self.unlink_logged(&name));
                    continue;
                }
                Listed::Entry {
                    hash,
                    size,
                    recency,
                } => (hash, size, recency),
            };
            let name = FileName::of(&hash);
            // Same size as when this process last saw it: trust the
            // recorded expiry rather than opening every file every sweep.
            let known = self
                .index()
                .get(&hash)
                .filter(|slot| slot.size == size)
                .map(|slot| slot.expiry);
            let expiry = match known.filter(|&e| is_live(e, now)) {
                Some(expiry) => expiry,
                // Unknown, or expired by the record: the header decides, as
                // another process may have rewritten the entry since.
                None => match self.disk.read_header(name.as_str()) {
                    Ok(Some(Header::Entry { expiry })) => expiry,
                    Ok(None | Some(Header::Foreign)) => continue,
                    Ok(Some(Header::Corrupt)) => {
                        stats.corrupt_removed += u64::from(self.unlink_logged(name.as_str()));
                        continue;
                    }
                    Err(err) => {
                        tracing::warn!(%err, "cache sweep skipped an unreadable entry");
                        continue;
                    }
                },
            };
            if !is_live(expiry, now) {
                stats.expired_removed += u64::from(self.unlink_logged(name.as_str()));
                continue;
            }
            found.push(Found {
                hash,
                size,
                expiry,
                recency,
            });
        }
        self.index().merge_listing(&found, mark, nanos(now));
        stats.evicted = self.enforce_limits();
        let index = self.index();
        stats.entries = index.len();
        stats.bytes = index.bytes();
        drop(index);
        self.schedule_next_sweep();
        Ok(stats)
    }

    fn unlink_logged(&self, name: &str) -> bool {
        match self.disk.unlink(name) {
            Ok(removed) => removed,
            Err(err) => {
                tracing::warn!(%err, "cache sweep could not remove a file");
                false
            }
        }
    }
}
