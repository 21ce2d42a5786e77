//! Listing the directory: entry files with their sizes and recency, and
//! temp files whose writers are gone.

use std::time::Duration;

use cachekit_core::Result;
use rustix::fs::{AtFlags, FileType};
use rustix::io::Errno;

use super::{Disk, TEMP_PREFIX};
use crate::error::errno_error;
use crate::format::{FileName, KeyHash};

/// Temp files of a live writer older than this are abandoned and removed.
const STALE_TEMP_AGE: Duration = Duration::from_secs(600);

/// What a directory listing found.
pub(crate) enum Listed {
    /// A file named like an entry, with its length and recency (Unix nanos).
    Entry {
        hash: KeyHash,
        size: u64,
        recency: u64,
    },
    /// A temp file left by a writer that is gone.
    StaleTemp(String),
    /// A symlink, or a file of another user, under an entry name: never
    /// read, and removed by name (which never follows the link).
    Untrusted(String),
}

impl Listed {
    pub(crate) fn entry_hash(&self) -> Option<KeyHash> {
        match self {
            Self::Entry { hash, .. } => Some(*hash),
            Self::StaleTemp(_) | Self::Untrusted(_) => None,
        }
    }
}

impl Disk {
    /// Lists entry files and stale temp files.
    pub(crate) fn list(&self, now: Duration) -> Result<Vec<Listed>> {
        let dir = rustix::fs::Dir::read_from(&self.dir)
            .map_err(|e| errno_error("listing", &self.path, e))?;
        let mut out = Vec::new();
        for item in dir {
            let item = item.map_err(|e| errno_error("listing", &self.path, e))?;
            let name = item.file_name().to_bytes();
            if let Some(hash) = FileName::parse(name) {
                let name = FileName::of(&hash);
                let stat =
                    match rustix::fs::statat(&self.dir, name.as_str(), AtFlags::SYMLINK_NOFOLLOW) {
                        Ok(stat) => stat,
                        Err(Errno::NOENT) => continue,
                        Err(e) => {
                            return Err(errno_error(
                                "inspecting",
                                &self.entry_path(name.as_str()),
                                e,
                            ))
                        }
                    };
                match FileType::from_raw_mode(stat.st_mode) {
                    FileType::RegularFile if stat.st_uid == self.uid => out.push(Listed::Entry {
                        hash,
                        size: u64::try_from(stat.st_size).unwrap_or(0),
                        recency: nanos(stat.st_atime, stat.st_atime_nsec)
                            .max(nanos(stat.st_mtime, stat.st_mtime_nsec)),
                    }),
                    FileType::RegularFile | FileType::Symlink => {
                        out.push(Listed::Untrusted(name.as_str().to_owned()));
                    }
                    // A FIFO, device or directory: left alone, and never opened.
                    _ => {}
                }
            } else if let Some(name) = std::str::from_utf8(name)
                .ok()
                .filter(|n| n.starts_with(TEMP_PREFIX))
            {
                if self.is_stale_temp(name, now) {
                    out.push(Listed::StaleTemp(name.to_owned()));
                }
            }
        }
        Ok(out)
    }

    /// A temp file is stale when its writer is dead or it is older than any
    /// write could take. The pid is only meaningful in this PID namespace;
    /// see the crate docs.
    fn is_stale_temp(&self, name: &str, now: Duration) -> bool {
        let Ok(stat) = rustix::fs::statat(&self.dir, name, AtFlags::SYMLINK_NOFOLLOW) else {
            return false;
        };
        let modified = Duration::from_nanos(nanos(stat.st_mtime, 0));
        if now.saturating_sub(modified) > STALE_TEMP_AGE {
            return true;
        }
        let pid = name
            .strip_prefix(TEMP_PREFIX)
            .and_then(|rest| rest.split('-').next())
            .and_then(|pid| pid.parse::<i32>().ok())
            .and_then(rustix::process::Pid::from_raw);
        match pid {
            Some(pid) => matches!(rustix::process::test_kill_process(pid), Err(Errno::SRCH)),
            None => false,
        }
    }
}

/// A `stat` timestamp as Unix nanoseconds (0 before 1970). The field
/// types differ between platforms, hence the generic widening.
fn nanos(secs: impl Into<i128>, nsec: impl Into<i128>) -> u64 {
    let total = secs
        .into()
        .saturating_mul(1_000_000_000)
        .saturating_add(nsec.into());
    u64::try_from(total.max(0)).unwrap_or(u64::MAX)
}
