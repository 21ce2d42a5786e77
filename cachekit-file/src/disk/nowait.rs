//! Reading an entry on the calling thread, and only when the kernel can
//! answer from memory.
//!
//! [`FileBackend`](crate::FileBackend) is called on async worker threads,
//! which must never wait for a device: a stalled disk or a hung network
//! mount would then stall every task of the runtime, not just the cache
//! call, and no timeout above could give up on it. So file IO hops to the
//! blocking pool, which costs about 20 µs per call on an idle machine, ten
//! times the system calls of a small read from the page cache. This
//! module makes the read that needs no hop, relying on two kernel
//! guarantees:
//! - `openat2` with `RESOLVE_CACHED` (Linux 5.12) resolves the name from
//!   the dentry cache only and fails with `EAGAIN` where it would have to
//!   ask the filesystem, which may read the directory from disk. A cached
//!   negative entry answers `ENOENT` the same way: a miss, also without IO.
//! - `preadv2` with `RWF_NOWAIT` (Linux 4.14) copies from the page cache
//!   only, and fails with `EAGAIN` (or reads short) where it would wait for
//!   the device. It may start readahead before failing, so the blocking
//!   retry often finds the data on its way.
//!
//! The open also asks for no access time update (`O_NOATIME`): updating it
//! dirties the inode, which on ext4 starts a journal handle, and that can
//! wait for a commit. Reads are recorded as uses by the store instead, off
//! this thread. `O_NONBLOCK` keeps a FIFO planted under an entry name from
//! blocking the open. `fstat` of an open file and `close` do no IO on the
//! local filesystems this is enabled for, except the last close of a file
//! that was unlinked, which frees it: a file found unlinked is handed to
//! the blocking thread to close. (A writer unlinking it between that check
//! and the close, a window of a few hundred nanoseconds, is accepted.)
//!
//! Network filesystems (NFS, SMB, FUSE) can make a round trip in `open` or
//! `fstat`, which no flag prevents, so [`Disk::supports_nowait_reads`]
//! enables the path only on known local filesystems whose kernel and
//! mount pass a trial read.

use std::fs::File;

#[cfg(target_os = "linux")]
use rustix::io::Errno;

use super::{Disk, ReadOutcome};
use crate::format::FileName;

/// What a non-blocking read found.
pub(crate) enum NoWait {
    /// The kernel answered from memory.
    Read(ReadOutcome),
    /// It would have waited, or the file is over the limit. `hold` is an
    /// open file to close on the blocking thread rather than here.
    Blocked(Option<File>),
    /// This kernel, filesystem or sandbox cannot read without blocking;
    /// stop trying.
    Unsupported,
}

/// `ext2`, `ext3` and `ext4` share the magic.
#[cfg(target_os = "linux")]
const LOCAL_FILESYSTEMS: [(u32, &str); 6] = [
    (0xEF53, "ext4"),
    (0x5846_5342, "xfs"),
    (0x9123_683E, "btrfs"),
    (0xF2F5_2010, "f2fs"),
    (0x0102_1994, "tmpfs"),
    (0x794C_7630, "overlayfs"),
];

#[cfg(target_os = "linux")]
impl Disk {
    /// Whether [`Disk::read_nowait`] can work here: a local filesystem, and
    /// a trial open and read of a fresh file with the same flags succeed.
    /// Checked once at open, on the blocking thread, so that a kernel,
    /// filesystem or seccomp filter that refuses the calls never costs a
    /// failed attempt per read.
    pub(crate) fn supports_nowait_reads(&self) -> bool {
        use std::io::Write;

        let Ok(stat) = rustix::fs::fstatfs(&self.dir) else {
            return false;
        };
        // The magic is 32 bits wide whatever the width of `f_type`.
        #[allow(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            clippy::unnecessary_cast
        )]
        let magic = stat.f_type as u32;
        if !LOCAL_FILESYSTEMS.iter().any(|&(m, _)| m == magic) {
            tracing::debug!(
                dir = %self.path.display(),
                magic = format_args!("{magic:#x}"),
                "not a known local filesystem: every read goes through the blocking pool"
            );
            return false;
        }
        let Ok((mut file, temp)) = self.create_temp() else {
            return false;
        };
        if file.write_all(b"CK").is_err() {
            return false;
        }
        let trial = open_nowait(self, &temp.name).and_then(|file| {
            let mut byte = [0u8; 1];
            read_nowait_at(&file, &mut byte)
        });
        match trial {
            Ok(1) => true,
            Ok(_) => false,
            Err(errno) => {
                tracing::debug!(
                    dir = %self.path.display(),
                    %errno,
                    "openat2(RESOLVE_CACHED) or preadv2(RWF_NOWAIT) refused: every read goes \
                     through the blocking pool"
                );
                false
            }
        }
    }

    /// Reads a whole entry if the kernel can do it without waiting for a
    /// device and it is at most `limit` bytes; see the module docs.
    pub(crate) fn read_nowait(&self, name: &FileName, limit: u64) -> NoWait {
        let file = match open_nowait(self, name.as_str()) {
            Ok(file) => file,
            Err(Errno::NOENT) => return NoWait::Read(ReadOutcome::Missing),
            Err(e) if unsupported(e) => return NoWait::Unsupported,
            // EAGAIN: not in the dentry cache. Anything else (a symlink,
            // a file of another owner) the blocking path answers.
            Err(_) => return NoWait::Blocked(None),
        };
        let Ok(stat) = rustix::fs::fstat(&file) else {
            return NoWait::Blocked(None);
        };
        if stat.st_nlink == 0 {
            // Replaced since the lookup: the blocking path reads the name
            // again, and frees the old file there.
            return NoWait::Blocked(Some(file));
        }
        // Not a regular file, or planted by another user: not an entry.
        if rustix::fs::FileType::from_raw_mode(stat.st_mode) != rustix::fs::FileType::RegularFile
            || stat.st_uid != self.uid
        {
            return NoWait::Read(ReadOutcome::Foreign);
        }
        let len = match u64::try_from(stat.st_size) {
            Ok(size) if size <= limit => usize::try_from(size).unwrap_or(usize::MAX),
            _ => return NoWait::Blocked(None),
        };
        let mut buf = vec![0u8; len];
        match read_nowait_at(&file, &mut buf) {
            Ok(n) if n == len => NoWait::Read(ReadOutcome::parse(buf, file)),
            Err(e) if unsupported(e) => NoWait::Unsupported,
            // EAGAIN, or short: not all of it is in the page cache.
            _ => NoWait::Blocked(None),
        }
    }
}

/// Opens `name` in the directory for reading, resolving it from the
/// dentry cache only.
#[cfg(target_os = "linux")]
fn open_nowait(disk: &Disk, name: &str) -> rustix::io::Result<File> {
    use rustix::fs::{Mode, OFlags, ResolveFlags};

    let flags =
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NOATIME | OFlags::NONBLOCK;
    let resolve = ResolveFlags::CACHED
        | ResolveFlags::BENEATH
        | ResolveFlags::NO_SYMLINKS
        | ResolveFlags::NO_MAGICLINKS;
    rustix::fs::openat2(&disk.dir, name, flags, Mode::empty(), resolve).map(File::from)
}

/// Fills `buf` from the start of the file with what the page cache holds.
#[cfg(target_os = "linux")]
fn read_nowait_at(file: &File, buf: &mut [u8]) -> rustix::io::Result<usize> {
    let mut parts = [std::io::IoSliceMut::new(buf)];
    rustix::io::preadv2(file, &mut parts, 0, rustix::io::ReadWriteFlags::NOWAIT)
}

/// A kernel before 5.12 (`ENOSYS`, or `EINVAL` for the unknown resolve
/// flag), a filesystem without `RWF_NOWAIT` (`EOPNOTSUPP`).
#[cfg(target_os = "linux")]
fn unsupported(errno: Errno) -> bool {
    matches!(errno, Errno::NOSYS | Errno::INVAL | Errno::OPNOTSUPP)
}

#[cfg(not(target_os = "linux"))]
impl Disk {
    /// Only Linux has `RESOLVE_CACHED` and `RWF_NOWAIT`: elsewhere every
    /// read takes the blocking pool.
    pub(crate) fn supports_nowait_reads(&self) -> bool {
        false
    }

    /// Never called where [`Disk::supports_nowait_reads`] is false.
    pub(crate) fn read_nowait(&self, _name: &FileName, _limit: u64) -> NoWait {
        NoWait::Unsupported
    }
}
