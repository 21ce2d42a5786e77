//! System calls on the cache directory, all relative to one directory handle
//! so that a path swapped after open cannot redirect entry IO.

mod list;
mod nowait;

use std::fs::File;
use std::io::{self, IoSlice, Read, Write};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use cachekit_core::Result;
use rustix::fs::{AtFlags, Mode, OFlags, XattrFlags};
use rustix::io::Errno;

use crate::error::{errno_error, io_error};
use crate::format::{FileName, Header, EXPIRY_OFFSET, HEADER_LEN};

pub(crate) use list::Listed;
pub(crate) use nowait::NoWait;

/// The extended attribute holding an entry's key (see the crate docs).
pub(crate) const KEY_XATTR: &str = "user.cachekit.key";

/// Longest key stored in [`KEY_XATTR`]; ext4 fits every xattr of a file in
/// one 4 KiB block, and cachekit keys are about 100 bytes.
pub(crate) const MAX_KEY_LEN: usize = 1024;

const TEMP_PREFIX: &str = ".tmp-";

/// Reading a header is not a use of the entry: leave its access time
/// alone, which is where reads are recorded for eviction order.
#[cfg(any(target_os = "linux", target_os = "android"))]
const NOATIME: OFlags = OFlags::NOATIME;
#[cfg(not(any(target_os = "linux", target_os = "android")))]
const NOATIME: OFlags = OFlags::empty();

#[derive(Clone, Copy)]
enum Access {
    /// Reading the value: a use.
    Read,
    /// Rewriting the expiry in place.
    Write,
    /// Reading the header only: not a use.
    Inspect,
}

/// The open cache directory.
#[derive(Debug)]
pub(crate) struct Disk {
    dir: File,
    path: PathBuf,
    /// This process's effective uid: only files it owns are entries.
    uid: u32,
}

/// What opening an entry name found.
enum Opened {
    /// No file under that name.
    Missing,
    /// Something this process must not read as an entry: a symlink, a
    /// FIFO, device or directory, or a file another user owns (planted:
    /// this process writes every entry it reads).
    NotOurs,
    /// A regular file of this user, and its length.
    Ours(File, u64),
}

/// A file read from the directory.
pub(crate) enum ReadOutcome {
    /// No file under that name.
    Missing,
    /// A version-1 entry (possibly expired: the caller decides).
    Entry(Loaded),
    /// A file this version must not interpret or remove.
    Foreign,
    /// Garbage under an entry name.
    Corrupt,
}

impl ReadOutcome {
    /// What the whole contents of an entry file, `buf`, hold.
    fn parse(buf: Vec<u8>, file: File) -> Self {
        match Header::parse(&buf) {
            Header::Entry { expiry } => {
                let value = Bytes::from(buf).slice(HEADER_LEN..);
                Self::Entry(Loaded {
                    expiry,
                    size: value.len() as u64 + HEADER_LEN as u64,
                    value,
                    file,
                })
            }
            Header::Foreign => Self::Foreign,
            Header::Corrupt => Self::Corrupt,
        }
    }
}

/// A version-1 entry read from disk, with its file still open.
pub(crate) struct Loaded {
    pub(crate) expiry: u64,
    pub(crate) value: Bytes,
    /// Header plus value length.
    pub(crate) size: u64,
    pub(crate) file: File,
}

/// A temp file, removed on drop unless renamed into place. After a swap
/// into place it names the replaced entry, which is what drop then removes.
pub(crate) struct Temp<'a> {
    disk: &'a Disk,
    name: String,
    live: bool,
}

/// The file a [`Disk::publish`] replaced, now under a temp name that no
/// reader looks up; removed on drop. Returned rather than removed at once
/// so that the caller can report the write done first: removing a file is
/// the slowest step of a replace on ext4 (it frees the inode and, with the
/// `discard` mount option, discards its blocks), and nothing depends on
/// it having happened.
#[must_use = "dropping it removes the replaced file"]
pub(crate) struct Replaced<'a> {
    old: Option<Temp<'a>>,
}

impl Replaced<'_> {
    /// Nothing was replaced.
    pub(crate) const NONE: Self = Replaced { old: None };

    /// The replaced file's temp name, for [`Disk::remove_replaced`] to
    /// remove later, on another thread; no longer removed on drop.
    pub(crate) fn detach(mut self) -> Option<ReplacedName> {
        let mut old = self.old.take()?;
        old.live = false;
        Some(ReplacedName(std::mem::take(&mut old.name)))
    }
}

/// A [detached](Replaced::detach) replaced file, still to be removed.
#[derive(Debug)]
pub(crate) struct ReplacedName(String);

impl Drop for Temp<'_> {
    fn drop(&mut self) {
        if self.live {
            // Best effort: a leftover temp is removed by the next open or sweep.
            let _ = rustix::fs::unlinkat(&self.disk.dir, self.name.as_str(), AtFlags::empty());
        }
    }
}

impl Disk {
    /// Opens (creating with mode 0700 if needed) the cache directory.
    pub(crate) fn open(path: &Path) -> Result<Self> {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(path)
            .map_err(|e| io_error("creating the cache directory", path, e))?;
        let fd = rustix::fs::open(
            path,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| errno_error("opening the cache directory", path, e))?;
        Ok(Self {
            dir: File::from(fd),
            path: path.to_owned(),
            uid: rustix::process::geteuid().as_raw(),
        })
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    pub(crate) fn entry_path(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    /// Owner uid and permission bits of the directory.
    pub(crate) fn owner_and_mode(&self) -> Result<(u32, u32)> {
        let meta = self
            .dir
            .metadata()
            .map_err(|e| io_error("inspecting", &self.path, e))?;
        Ok((meta.uid(), meta.mode() & 0o7777))
    }

    /// Whether the directory is still there and writable.
    pub(crate) fn probe_writable(&self) -> Result<()> {
        rustix::fs::accessat(
            &self.dir,
            ".",
            rustix::fs::Access::WRITE_OK,
            AtFlags::empty(),
        )
        .map_err(|e| errno_error("checking write access to", &self.path, e))
    }

    /// Whether files here accept the key attribute; `false` only when the
    /// filesystem does not support user extended attributes.
    pub(crate) fn supports_key_xattr(&self) -> Result<bool> {
        let (file, temp) = self.create_temp()?;
        match rustix::fs::fsetxattr(&file, KEY_XATTR, b"probe", XattrFlags::empty()) {
            Ok(()) => Ok(true),
            Err(Errno::NOTSUP) => Ok(false),
            Err(e) => Err(errno_error(
                "setting an extended attribute in",
                &self.entry_path(&temp.name),
                e,
            )),
        }
    }

    /// Creates an empty temp file: exclusive, never through a symlink, 0600.
    fn create_temp(&self) -> Result<(File, Temp<'_>)> {
        let mut last = Errno::EXIST;
        for _ in 0..8 {
            let name = format!(
                "{TEMP_PREFIX}{}-{:016x}",
                std::process::id(),
                fastrand::u64(..)
            );
            let flags =
                OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
            match rustix::fs::openat(&self.dir, name.as_str(), flags, Mode::RUSR | Mode::WUSR) {
                Ok(fd) => {
                    let temp = Temp {
                        disk: self,
                        name,
                        live: true,
                    };
                    return Ok((File::from(fd), temp));
                }
                Err(Errno::EXIST) => last = Errno::EXIST,
                Err(e) => {
                    return Err(errno_error("creating a temp file in", &self.path, e));
                }
            }
        }
        Err(errno_error("creating a temp file in", &self.path, last))
    }

    /// Writes a complete entry to a fresh temp file (key attribute, header,
    /// value, fsync when durable), ready to be published.
    pub(crate) fn write_temp(
        &self,
        key: Option<&str>,
        header: &[u8; HEADER_LEN],
        value: &[u8],
        durable: bool,
    ) -> Result<Temp<'_>> {
        let (mut file, temp) = self.create_temp()?;
        let path = || self.entry_path(&temp.name);
        if let Some(key) = key {
            // Set before the rename, so the entry and its key appear together.
            rustix::fs::fsetxattr(&file, KEY_XATTR, key.as_bytes(), XattrFlags::empty())
                .map_err(|e| errno_error("storing the key attribute of", &path(), e))?;
        }
        write_both(&mut file, header, value).map_err(|e| io_error("writing", &path(), e))?;
        if durable {
            file.sync_data()
                .map_err(|e| io_error("syncing", &path(), e))?;
        }
        Ok(temp)
    }

    /// Atomically replaces whatever is at `name` with the temp file;
    /// returns the replaced file, still to be removed (by dropping it).
    pub(crate) fn publish<'a>(
        &'a self,
        mut temp: Temp<'a>,
        name: &FileName,
        durable: bool,
    ) -> Result<Replaced<'a>> {
        #[cfg(any(target_os = "linux", target_os = "android"))]
        {
            // Swap rather than rename over: ext4 starts writeback of a file
            // renamed over another (auto_da_alloc), which makes a set five
            // times slower. The swap is just as atomic (the name always
            // holds a whole file) and leaves the old file under the temp
            // name, which dropping the returned `Replaced` removes.
            match rustix::fs::renameat_with(
                &self.dir,
                temp.name.as_str(),
                &self.dir,
                name.as_str(),
                rustix::fs::RenameFlags::EXCHANGE,
            ) {
                Ok(()) => {
                    let replaced = Replaced { old: Some(temp) };
                    self.sync_dir_if(durable)?;
                    return Ok(replaced);
                }
                // Nothing to swap with, or a filesystem that cannot swap.
                Err(Errno::NOENT | Errno::INVAL | Errno::NOSYS | Errno::NOTSUP) => {}
                Err(e) => {
                    return Err(errno_error(
                        "swapping into place",
                        &self.entry_path(name.as_str()),
                        e,
                    ))
                }
            }
        }
        rustix::fs::renameat(&self.dir, temp.name.as_str(), &self.dir, name.as_str())
            .map_err(|e| errno_error("renaming into place", &self.entry_path(name.as_str()), e))?;
        temp.live = false;
        self.sync_dir_if(durable)?;
        Ok(Replaced::NONE)
    }

    /// Publishes the temp file only if nothing is at `name`; `Ok(false)`
    /// when something is. `link` fails atomically on an existing target on
    /// every filesystem, NFS included, unlike `renameat2(NOREPLACE)`.
    pub(crate) fn publish_if_absent(
        &self,
        temp: &Temp<'_>,
        name: &FileName,
        durable: bool,
    ) -> Result<bool> {
        match rustix::fs::linkat(
            &self.dir,
            temp.name.as_str(),
            &self.dir,
            name.as_str(),
            AtFlags::empty(),
        ) {
            Ok(()) => {
                self.sync_dir_if(durable)?;
                Ok(true)
            }
            Err(Errno::EXIST) => Ok(false),
            Err(e) => Err(errno_error(
                "linking into place",
                &self.entry_path(name.as_str()),
                e,
            )),
        }
    }

    /// Moves the file at `name` aside to a private temp name, so it can be
    /// inspected without racing writers; `None` if there was no file.
    pub(crate) fn take_aside(&self, name: &FileName) -> Result<Option<Temp<'_>>> {
        let aside = format!(
            "{TEMP_PREFIX}{}-{:016x}",
            std::process::id(),
            fastrand::u64(..)
        );
        match rustix::fs::renameat(&self.dir, name.as_str(), &self.dir, aside.as_str()) {
            Ok(()) => Ok(Some(Temp {
                disk: self,
                name: aside,
                live: true,
            })),
            Err(Errno::NOENT) => Ok(None),
            Err(e) => Err(errno_error(
                "moving aside",
                &self.entry_path(name.as_str()),
                e,
            )),
        }
    }

    /// The header of a temp file (see [`Disk::take_aside`]).
    pub(crate) fn temp_header(&self, temp: &Temp<'_>) -> Result<Header> {
        Ok(self.read_header(&temp.name)?.unwrap_or(Header::Corrupt))
    }

    fn sync_dir_if(&self, durable: bool) -> Result<()> {
        if durable {
            rustix::fs::fsync(&self.dir)
                .map_err(|e| errno_error("syncing the directory", &self.path, e))?;
        }
        Ok(())
    }

    fn open_entry(&self, name: &str, access: Access) -> Result<Opened> {
        // O_NONBLOCK: opening or reading a FIFO planted under an entry name
        // must not hang the thread; regular files ignore it.
        let base = OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NONBLOCK;
        let flags = match access {
            Access::Read => base | OFlags::RDONLY,
            Access::Write => base | OFlags::RDWR,
            Access::Inspect => base | OFlags::RDONLY | NOATIME,
        };
        let opened = match rustix::fs::openat(&self.dir, name, flags, Mode::empty()) {
            // O_NOATIME is refused on files of other owners; fall back.
            Err(Errno::PERM) if flags.contains(NOATIME) && !NOATIME.is_empty() => {
                rustix::fs::openat(&self.dir, name, flags - NOATIME, Mode::empty())
            }
            other => other,
        };
        let file = match opened {
            Ok(fd) => File::from(fd),
            Err(Errno::NOENT) => return Ok(Opened::Missing),
            // O_NOFOLLOW refuses a symlink as the last component with ELOOP.
            Err(Errno::LOOP) => return Ok(Opened::NotOurs),
            // A file this user may not open is not one it wrote.
            Err(Errno::ACCESS) if self.owner_of(name) != Some(self.uid) => {
                return Ok(Opened::NotOurs)
            }
            Err(e) => return Err(errno_error("opening", &self.entry_path(name), e)),
        };
        let meta = file
            .metadata()
            .map_err(|e| io_error("inspecting", &self.entry_path(name), e))?;
        if !meta.is_file() || meta.uid() != self.uid {
            return Ok(Opened::NotOurs);
        }
        Ok(Opened::Ours(file, meta.len()))
    }

    /// The owner of the file at `name` (never following a symlink).
    fn owner_of(&self, name: &str) -> Option<u32> {
        rustix::fs::statat(&self.dir, name, AtFlags::SYMLINK_NOFOLLOW)
            .ok()
            .map(|stat| stat.st_uid)
    }

    /// Reads a whole entry. Files longer than `max_size` are [`ReadOutcome::Foreign`]:
    /// never allocate more than the configured budget for one value.
    pub(crate) fn read(&self, name: &FileName, max_size: u64) -> Result<ReadOutcome> {
        let (file, size) = match self.open_entry(name.as_str(), Access::Read)? {
            Opened::Missing => return Ok(ReadOutcome::Missing),
            Opened::NotOurs => return Ok(ReadOutcome::Foreign),
            Opened::Ours(file, size) => (file, size),
        };
        let path = || self.entry_path(name.as_str());
        if size > max_size {
            return Ok(ReadOutcome::Foreign);
        }
        let capacity = usize::try_from(size).unwrap_or(0);
        let mut buf = Vec::with_capacity(capacity);
        (&file)
            .take(size)
            .read_to_end(&mut buf)
            .map_err(|e| io_error("reading", &path(), e))?;
        Ok(ReadOutcome::parse(buf, file))
    }

    /// Reads only the header; `None` when there is no file, `Foreign` for
    /// one that is not this user's regular file.
    pub(crate) fn read_header(&self, name: &str) -> Result<Option<Header>> {
        let mut file = match self.open_entry(name, Access::Inspect)? {
            Opened::Missing => return Ok(None),
            Opened::NotOurs => return Ok(Some(Header::Foreign)),
            Opened::Ours(file, _) => file,
        };
        let mut head = [0u8; HEADER_LEN];
        let mut filled = 0;
        while filled < HEADER_LEN {
            match file.read(&mut head[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(io_error("reading", &self.entry_path(name), e)),
            }
        }
        Ok(Some(Header::parse(&head[..filled])))
    }

    /// Rewrites the expiry of the entry at `name` in place, if it is a live
    /// version-1 entry at `now`; returns whether it was.
    ///
    /// In place rather than copy-and-rename, so that a concurrent `set` of a
    /// new value is never overwritten by the old value with a new expiry.
    pub(crate) fn rewrite_expiry(
        &self,
        name: &FileName,
        expiry: u64,
        now: Duration,
        durable: bool,
    ) -> Result<Option<u64>> {
        let Opened::Ours(mut file, _) = self.open_entry(name.as_str(), Access::Write)? else {
            return Ok(None);
        };
        let path = || self.entry_path(name.as_str());
        let mut head = [0u8; HEADER_LEN];
        if file.read_exact(&mut head).is_err() {
            return Ok(None);
        }
        match Header::parse(&head) {
            Header::Entry { expiry: old } if crate::format::is_live(old, now) => {}
            _ => return Ok(None),
        }
        file.write_all_at(&expiry.to_be_bytes(), EXPIRY_OFFSET)
            .map_err(|e| io_error("rewriting the expiry of", &path(), e))?;
        if durable {
            file.sync_data()
                .map_err(|e| io_error("syncing", &path(), e))?;
        }
        let size = file.metadata().map_or(0, |m| m.len());
        Ok(Some(size))
    }

    /// Marks an entry as read now, for other processes' and later runs'
    /// eviction order (access time only; the modification time stays the
    /// write time).
    pub(crate) fn touch(file: &File) {
        let times = rustix::fs::Timestamps {
            last_access: rustix::fs::Timespec {
                tv_sec: 0,
                tv_nsec: rustix::fs::UTIME_NOW,
            },
            last_modification: rustix::fs::Timespec {
                tv_sec: 0,
                tv_nsec: rustix::fs::UTIME_OMIT,
            },
        };
        // Recency is a hint; failing to record it is harmless.
        let _ = rustix::fs::futimens(file, &times);
    }

    /// Removes a replaced file that [`Replaced::detach`] handed over; best
    /// effort, like dropping the [`Replaced`]: a leftover temp is removed by
    /// the next open or sweep.
    pub(crate) fn remove_replaced(&self, name: ReplacedName) {
        let _ = rustix::fs::unlinkat(&self.dir, name.0.as_str(), AtFlags::empty());
    }

    /// Removes `name`; `Ok(false)` if it was already gone.
    pub(crate) fn unlink(&self, name: &str) -> Result<bool> {
        match rustix::fs::unlinkat(&self.dir, name, AtFlags::empty()) {
            Ok(()) => Ok(true),
            Err(Errno::NOENT) => Ok(false),
            Err(e) => Err(errno_error("removing", &self.entry_path(name), e)),
        }
    }

    /// The key stored with the entry at `name`, `None` for entries without
    /// one (written by another implementation), already gone, or not this
    /// user's (see [`Opened::NotOurs`]).
    ///
    /// Read from the opened file: `fgetxattr` needs a real file descriptor
    /// (an `O_PATH` one fails with `EBADF`), so the entry is opened as for
    /// reading its header, which never follows a symlink.
    pub(crate) fn key_of(&self, name: &str) -> Result<Option<String>> {
        let Opened::Ours(file, _) = self.open_entry(name, Access::Inspect)? else {
            return Ok(None);
        };
        let mut buf = [0u8; MAX_KEY_LEN];
        match rustix::fs::fgetxattr(&file, KEY_XATTR, &mut buf[..]) {
            Ok(len) => Ok(buf
                .get(..len)
                .and_then(|k| std::str::from_utf8(k).ok())
                .map(str::to_owned)),
            Err(Errno::NOENT | Errno::NODATA | Errno::RANGE | Errno::NOTSUP) => Ok(None),
            Err(e) => Err(errno_error(
                "reading the key attribute of",
                &self.entry_path(name),
                e,
            )),
        }
    }
}

/// Writes header and value with one system call where the kernel takes
/// both at once (always, for regular files on local filesystems), looping
/// only on a short write.
fn write_both(file: &mut File, header: &[u8], value: &[u8]) -> io::Result<()> {
    let total = header.len() + value.len();
    let mut done = 0;
    while done < total {
        let written = if done < header.len() {
            let parts = [IoSlice::new(&header[done..]), IoSlice::new(value)];
            file.write_vectored(&parts)
        } else {
            file.write(&value[done - header.len()..])
        };
        match written {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
