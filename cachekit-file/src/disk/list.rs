//! Listing the directory: entry files with their sizes and recency, and
//! temp files whose writers are gone.

use std::io;
use std::os::unix::fs::MetadataExt;
use std::time::Duration;

use cachekit_core::Result;
use rustix::io::Errno;

use super::{Disk, TEMP_PREFIX};
use crate::error::{errno_error, io_error};
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
}

impl Listed {
    pub(crate) fn entry_hash(&self) -> Option<KeyHash> {
        match self {
            Self::Entry { hash, .. } => Some(*hash),
            Self::StaleTemp(_) => None,
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
                // Path-based lstat: std's metadata has stable field types.
                let path = self.path.join(FileName::of(&hash).as_str());
                match std::fs::symlink_metadata(&path) {
                    Ok(meta) if meta.is_file() => out.push(Listed::Entry {
                        hash,
                        size: meta.len(),
                        recency: recency(&meta),
                    }),
                    Ok(_) => {}
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(io_error("inspecting", &path, e)),
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
        let Ok(meta) = std::fs::symlink_metadata(self.path.join(name)) else {
            return false;
        };
        let modified = Duration::from_secs(u64::try_from(meta.mtime()).unwrap_or(0));
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

/// The later of access and modification time, Unix nanoseconds.
fn recency(meta: &std::fs::Metadata) -> u64 {
    let nanos = |secs: i64, nsec: i64| {
        u64::try_from(secs)
            .unwrap_or(0)
            .saturating_mul(1_000_000_000)
            .saturating_add(u64::try_from(nsec).unwrap_or(0))
    };
    nanos(meta.atime(), meta.atime_nsec()).max(nanos(meta.mtime(), meta.mtime_nsec()))
}
