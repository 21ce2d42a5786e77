//! The blocking half of the backend: every operation as plain synchronous
//! code over [`Disk`] and the [`Index`], run on Tokio's blocking pool by
//! [`FileBackend`](crate::FileBackend). The exceptions run on the caller's
//! thread: the inline read path (`store/inline.rs`), which only makes calls
//! that cannot wait for a device, and, when the user opts in, writes
//! (`store/caller.rs` holds their side of it).
//!
//! The index lock is only ever held for in-memory updates, never across
//! IO, so an async worker taking it waits for memory work at most.

mod caller;
mod inline;
mod sweep;

use std::fs::File;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use cachekit_core::{Error, ErrorKind, Result, Ttl};

use crate::config::FileConfig;
use crate::disk::{Disk, ReadOutcome, Replaced, Temp, MAX_KEY_LEN};
use crate::format::{
    encode_header, expiry_for, is_live, key_hash, ttl_at, unix_now, FileName, Header, KeyHash,
    HEADER_LEN,
};
use crate::index::Index;

pub(crate) use inline::{Inline, INLINE_KEY_COST, INLINE_MAX};
pub use sweep::SweepStats;

/// The directory, this process's view of it, and the configuration.
#[derive(Debug)]
pub(crate) struct Store {
    pub(crate) config: FileConfig,
    pub(crate) disk: Disk,
    index: Mutex<Index>,
    /// Whether keys are stored in an extended attribute (see the crate docs).
    pub(crate) key_xattr: bool,
    inline: inline::InlineReads,
    writes: caller::CallerWrites,
    /// When the next periodic sweep is due, Unix nanoseconds.
    next_sweep: AtomicU64,
    sweeping: AtomicBool,
}

pub(crate) fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// Who evicts when a write takes the cache over its high watermark.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Evict {
    /// The writing thread, before the write returns: on the blocking pool,
    /// where an L2 deadline can give up on the wait.
    Here,
    /// A blocking task, started after the write returns
    /// ([`Store::claim_eviction`]): for a write on the calling thread,
    /// which nothing can interrupt, and which should cost one write, not
    /// the removal of a tenth of the cache.
    Later,
}

/// An entry written to a temp file, not yet published.
struct Staged<'a> {
    hash: KeyHash,
    name: FileName,
    now: Duration,
    expiry: u64,
    temp: Temp<'a>,
}

/// What a read found, decided in one place for the blocking and the
/// inline path.
enum Settled {
    /// The answer, and the file to mark as read when the index asks for it.
    Answer(Option<(Bytes, u64)>, Option<File>),
    /// A miss whose file must be removed (why: "corrupt", "expired").
    Remove(&'static str),
}

/// A key as it may appear in a message: quoted, and cut if long.
fn shown(key: &str) -> String {
    match key.char_indices().nth(80) {
        Some((cut, _)) => format!("{:?}...", &key[..cut]),
        None => format!("{key:?}"),
    }
}

impl Store {
    /// Opens the directory, checks who owns it, and builds the index.
    pub(crate) fn open(config: FileConfig) -> Result<Self> {
        let disk = Disk::open(&config.dir)?;
        let (owner, mode) = disk.owner_and_mode()?;
        let me = rustix::process::geteuid().as_raw();
        let dir = config.dir.display();
        if owner != me {
            return Err(Error::new(
                ErrorKind::Config,
                format!(
                    "cache directory {dir} is owned by uid {owner}, not by this user (uid {me}): \
                     its owner could read, replace or plant entries; use a directory you own \
                     (set it in the config or with CACHEKIT_FILE_DIR)"
                ),
            ));
        }
        // Without the sticky bit, anyone who can write the directory can
        // also rename this user's entries, so one key's value could be
        // moved under another key's name: no per-file check catches that.
        if mode & 0o022 != 0 && mode & 0o1000 == 0 {
            return Err(Error::config(
                "dir",
                format!(
                    "cache directory {dir} has mode {mode:o}: other users can write it, so they \
                     could remove, swap or plant entries; fix: chmod 700 {dir} (or use another \
                     directory, set in the config or with CACHEKIT_FILE_DIR)"
                ),
            ));
        }
        if mode & 0o077 != 0 {
            tracing::warn!(
                dir = %dir,
                mode = format_args!("{mode:o}"),
                "cache directory {dir} has mode {mode:o}, looser than 0700: other users can list it \
                 and maybe add files; fix: chmod 700 {dir}"
            );
        }
        let key_xattr = disk.supports_key_xattr()?;
        if !key_xattr {
            tracing::warn!(
                dir = %dir,
                "the filesystem of cache directory {dir} does not support user extended \
                 attributes, where keys are kept: delete_prefix will fail with Unsupported; \
                 use ext4, xfs, btrfs or tmpfs (Linux 6.6+) to get it"
            );
        }
        let inline = inline::InlineReads::new(disk.supports_nowait_reads());
        let store = Self {
            config,
            disk,
            index: Mutex::new(Index::default()),
            key_xattr,
            inline,
            writes: caller::CallerWrites::default(),
            next_sweep: AtomicU64::new(0),
            sweeping: AtomicBool::new(false),
        };
        store.sweep()?;
        Ok(store)
    }

    /// The index; a panic elsewhere while holding it leaves a view that is
    /// merely stale, which the next sweep repairs, so poison is ignored.
    pub(crate) fn index(&self) -> MutexGuard<'_, Index> {
        self.index.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn max_file_size(&self) -> u64 {
        self.config.max_value_size.saturating_add(HEADER_LEN as u64)
    }

    fn check_write(&self, key: &str, value_len: usize) -> Result<()> {
        let max = self.config.max_value_size;
        if value_len as u64 > max {
            return Err(Error::new(
                ErrorKind::TooLarge,
                format!(
                    "value for key {} is {value_len} bytes, over the file backend's \
                     max_value_size of {max}; raise max_value_size or store less",
                    shown(key)
                ),
            ));
        }
        if self.key_xattr && key.len() > MAX_KEY_LEN {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                format!(
                    "key {} is {} bytes; the file backend stores keys of up to {MAX_KEY_LEN} \
                     bytes (in an extended attribute); hash long keys first",
                    shown(key),
                    key.len()
                ),
            ));
        }
        Ok(())
    }

    /// Reads a live value and its expiry: the blocking path, for what
    /// [`Store::get_inline`] could not answer.
    pub(crate) fn get(&self, key: &str) -> Result<Option<(Bytes, u64)>> {
        self.inline.count_blocking();
        let hash = key_hash(key);
        let name = FileName::of(&hash);
        let now = unix_now();
        let outcome = self.disk.read(&name, self.max_file_size())?;
        match self.settle(hash, now, outcome) {
            Settled::Answer(got, touch) => {
                if let Some(file) = touch {
                    Disk::touch(&file);
                }
                Ok(got)
            }
            Settled::Remove(why) => {
                self.index().remove(&hash);
                self.remove_quietly(&name, why);
                Ok(None)
            }
        }
    }

    /// Decides what a read of `hash` at `now` found, updating the index
    /// (in memory only) for the answers that need no IO.
    fn settle(&self, hash: KeyHash, now: Duration, outcome: ReadOutcome) -> Settled {
        match outcome {
            ReadOutcome::Missing | ReadOutcome::Foreign => {
                self.index().remove(&hash);
                Settled::Answer(None, None)
            }
            ReadOutcome::Corrupt => Settled::Remove("corrupt"),
            ReadOutcome::Entry(loaded) if !is_live(loaded.expiry, now) => {
                Settled::Remove("expired")
            }
            ReadOutcome::Entry(loaded) => {
                let touch = self
                    .index()
                    .read(hash, loaded.size, loaded.expiry, nanos(now));
                let got = Some((loaded.value, loaded.expiry));
                Settled::Answer(got, touch.then_some(loaded.file))
            }
        }
    }

    /// Cleanup on a read path must not turn a miss into an error.
    fn remove_quietly(&self, name: &FileName, why: &str) {
        if let Err(err) = self.disk.unlink(name.as_str()) {
            tracing::debug!(%err, "could not remove {why} cache entry");
        }
    }

    /// Stores a value, replacing any previous one. The value is in place
    /// when this returns; the file it replaced is removed when the returned
    /// [`Replaced`] is dropped, which the caller may do after reporting
    /// success.
    pub(crate) fn set(
        &self,
        key: &str,
        value: &[u8],
        ttl: Option<Duration>,
        evict: Evict,
    ) -> Result<Replaced<'_>> {
        self.check_write(key, value.len())?;
        if ttl.is_some_and(|t| t.is_zero()) {
            // Stored and expired at once: what remains is that the key is gone.
            self.delete(key)?;
            return Ok(Replaced::NONE);
        }
        let Staged {
            hash,
            name,
            now,
            expiry,
            temp,
        } = self.stage(key, value, ttl)?;
        let replaced = self.disk.publish(temp, &name, self.config.durable)?;
        let size = value.len() as u64 + HEADER_LEN as u64;
        self.wrote(hash, size, expiry, now, evict);
        Ok(replaced)
    }

    /// Records a write in the index, then, if it crossed the high
    /// watermark, evicts as `evict` says (one lock in the common case of
    /// no eviction).
    fn wrote(&self, hash: KeyHash, size: u64, expiry: u64, now: Duration, evict: Evict) {
        let over = {
            let mut index = self.index();
            index.wrote(hash, size, expiry, nanos(now));
            index.exceeds(self.config.high())
        };
        match (over, evict) {
            (false, _) => {}
            (true, Evict::Here) => {
                self.enforce_limits();
            }
            (true, Evict::Later) => self.evict_later(),
        }
    }

    /// Writes the entry to a fresh temp file, ready to be published under
    /// the key's file name.
    fn stage(&self, key: &str, value: &[u8], ttl: Option<Duration>) -> Result<Staged<'_>> {
        let hash = key_hash(key);
        let name = FileName::of(&hash);
        let now = unix_now();
        let expiry = expiry_for(ttl, now);
        let temp = self.disk.write_temp(
            self.key_xattr.then_some(key),
            &encode_header(expiry),
            value,
            self.config.durable,
        )?;
        Ok(Staged {
            hash,
            name,
            now,
            expiry,
            temp,
        })
    }

    /// Stores a value only if no live entry exists; returns whether it did.
    pub(crate) fn set_if_absent(
        &self,
        key: &str,
        value: &[u8],
        ttl: Option<Duration>,
        evict: Evict,
    ) -> Result<bool> {
        self.check_write(key, value.len())?;
        if ttl.is_some_and(|t| t.is_zero()) {
            return Ok(self.ttl(key)? == Ttl::Missing);
        }
        let Staged {
            hash,
            name,
            now,
            expiry,
            temp,
        } = self.stage(key, value, ttl)?;
        let durable = self.config.durable;
        for _ in 0..8 {
            if self.disk.publish_if_absent(&temp, &name, durable)? {
                drop(temp);
                let size = value.len() as u64 + HEADER_LEN as u64;
                self.wrote(hash, size, expiry, now, evict);
                return Ok(true);
            }
            match self.disk.read_header(name.as_str())? {
                None => {}
                Some(Header::Entry { expiry: found }) if is_live(found, now) => return Ok(false),
                Some(_) => {
                    // Expired or unreadable. Move it aside before deleting it,
                    // so that a live value that raced in is never destroyed.
                    if let Some(aside) = self.disk.take_aside(&name)? {
                        if let Header::Entry { expiry: found } = self.disk.temp_header(&aside)? {
                            if is_live(found, now) {
                                // Put it back unless yet another value took its place.
                                self.disk.publish_if_absent(&aside, &name, false)?;
                                return Ok(false);
                            }
                        }
                        self.index().remove(&hash);
                    }
                }
            }
        }
        Err(Error::new(
            ErrorKind::Conflict,
            format!(
                "set_if_absent({}) kept racing with other writers of the same key; retry",
                shown(key)
            ),
        ))
    }

    /// Removes a key; returns whether a live entry was removed.
    pub(crate) fn delete(&self, key: &str) -> Result<bool> {
        let hash = key_hash(key);
        let name = FileName::of(&hash);
        let now = unix_now();
        let live = match self.disk.read_header(name.as_str())? {
            None => {
                self.index().remove(&hash);
                return Ok(false);
            }
            Some(Header::Entry { expiry }) => is_live(expiry, now),
            Some(_) => false,
        };
        let removed = self.disk.unlink(name.as_str())?;
        self.index().remove(&hash);
        Ok(live && removed)
    }

    /// The key's remaining lifetime.
    pub(crate) fn ttl(&self, key: &str) -> Result<Ttl> {
        let name = FileName::of(&key_hash(key));
        match self.disk.read_header(name.as_str())? {
            Some(Header::Entry { expiry }) => Ok(ttl_at(expiry, unix_now())),
            _ => Ok(Ttl::Missing),
        }
    }

    /// Changes a live key's lifetime; returns whether it existed.
    pub(crate) fn expire(&self, key: &str, ttl: Option<Duration>) -> Result<bool> {
        if ttl.is_some_and(|t| t.is_zero()) {
            return self.delete(key);
        }
        let hash = key_hash(key);
        let name = FileName::of(&hash);
        let now = unix_now();
        let expiry = expiry_for(ttl, now);
        match self
            .disk
            .rewrite_expiry(&name, expiry, now, self.config.durable)?
        {
            Some(size) => {
                self.index().set_expiry(&hash, expiry, size, nanos(now));
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// Removes every entry whose stored key starts with `prefix`.
    pub(crate) fn delete_prefix(&self, prefix: &str) -> Result<u64> {
        if !self.key_xattr {
            return Err(Error::new(
                ErrorKind::Unsupported,
                format!(
                    "delete_prefix needs the keys, which the file backend keeps in user extended \
                     attributes, and the filesystem of {} does not support them; use ext4, xfs, \
                     btrfs or tmpfs (Linux 6.6+)",
                    self.disk.path().display()
                ),
            ));
        }
        let now = unix_now();
        let mut removed = 0;
        for hash in self
            .disk
            .list(now)?
            .into_iter()
            .filter_map(|l| l.entry_hash())
        {
            let name = FileName::of(&hash);
            let Some(key) = self.disk.key_of(name.as_str())? else {
                continue;
            };
            // A key that does not hash to its file name belongs to some other file.
            if !key.starts_with(prefix) || key_hash(&key) != hash {
                continue;
            }
            let live = matches!(
                self.disk.read_header(name.as_str())?,
                Some(Header::Entry { expiry }) if is_live(expiry, now)
            );
            if self.disk.unlink(name.as_str())? && live {
                removed += 1;
            }
            self.index().remove(&hash);
        }
        Ok(removed)
    }

    /// Evicts down to the low watermark if the high one is exceeded;
    /// returns how many files were removed. Failures are logged, not
    /// returned: the write that triggered eviction did succeed.
    pub(crate) fn enforce_limits(&self) -> u64 {
        let candidates = {
            let index = self.index();
            if !index.exceeds(self.config.high()) {
                return 0;
            }
            index.candidates()
        };
        let mut victims = candidates.victims(self.config.low(), unix_now());
        {
            let mut index = self.index();
            victims.retain(|v| index.remove_victim(v));
        }
        let mut removed = 0;
        for victim in victims {
            match self.disk.unlink(FileName::of(&victim.hash).as_str()) {
                Ok(true) => removed += 1,
                Ok(false) => {}
                Err(err) => tracing::warn!(%err, "cache eviction could not remove an entry"),
            }
        }
        removed
    }

    /// Claims the periodic sweep if it is due; the caller must run it and
    /// then call [`Store::sweep_done`].
    pub(crate) fn claim_sweep(&self) -> bool {
        let due = nanos(unix_now()) >= self.next_sweep.load(Ordering::Relaxed);
        due && !self.sweeping.swap(true, Ordering::AcqRel)
    }

    pub(crate) fn sweep_done(&self) {
        self.sweeping.store(false, Ordering::Release);
    }

    fn schedule_next_sweep(&self) {
        let next = unix_now().saturating_add(self.config.sweep_interval);
        self.next_sweep.store(nanos(next), Ordering::Relaxed);
    }
}
