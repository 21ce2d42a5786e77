//! The inline read path: answering a read on the caller's thread, an async
//! worker, when the kernel can do it from memory
//! ([`Disk::read_nowait`], whose docs explain the threat and the kernel
//! guarantees), and handing whatever may wait for a device to the
//! blocking pool.
//!
//! On the worker: the non-blocking open, `fstat`, read and close, and the
//! index update, whose lock is never held across IO (a sweep or an
//! eviction holds it for an in-memory pass at most). Off it:
//! - files over [`INLINE_MAX`], and reads the kernel cannot answer from
//!   memory: the blocking path reads them;
//! - expired and corrupt entries: the blocking path reads them again and
//!   removes them, exactly as it always has;
//! - recording a read on disk (the access time, at most once a minute per
//!   entry, as the index decides). `futimens` is a metadata write: on ext4
//!   it starts a journal handle, which can wait for a commit, and on NFS it
//!   is a round trip. Files to touch are queued, and one blocking task at a
//!   time drains the queue, so a burst of first reads costs one hop in
//!   total, none of them waited for.

use std::fs::File;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

use bytes::Bytes;

use super::{Settled, Store};
use crate::disk::{Disk, NoWait};
use crate::format::{key_hash, unix_now, FileName, HEADER_LEN};

/// Largest entry file read on a worker thread: a value of 128 KiB plus
/// its header.
///
/// Measured on a 2-core VM (medians), a get from the page cache takes
/// 1.6 µs at 1 KiB, 6 µs at 64 KiB, 9 µs at 128 KiB and 17 µs at 256 KiB
/// inline; through a warm blocking pool 6, 14, 19 and 38 µs, with a tail
/// past 100 µs, and a pool whose threads sleep adds about 20 µs more. Up
/// to 128 KiB the inline read saves most of the cost and holds up the
/// worker's other tasks no longer than a hop would take, well within
/// Tokio's guideline of 10 to 100 µs between awaits; above it, the copy
/// is the larger part of the cost, and the worker's other tasks would
/// wait longer for a smaller gain.
pub(crate) const INLINE_MAX: u64 = (128 << 10) + HEADER_LEN as u64;

/// What a `get_many` charges each key against its inline budget of
/// [`INLINE_MAX`] bytes on top of the bytes read: the system calls of one
/// read cost about as much as copying 4 KiB. So a batch spends at most
/// about one maximal inline read on the worker (32 small keys), and sends
/// the rest to the blocking pool in one task.
pub(crate) const INLINE_KEY_COST: u64 = 4 << 10;

/// Touches waiting for the blocking task; beyond this, new ones are
/// dropped (recency is a hint) rather than holding more files open while
/// the disk does not answer.
const MAX_QUEUED_TOUCHES: usize = 1024;

/// The inline path's switch, counters and touch queue.
#[derive(Debug)]
pub(crate) struct InlineReads {
    /// Cleared for good when the kernel or filesystem refuses the calls.
    enabled: AtomicBool,
    /// Reads answered inline.
    inline: AtomicU64,
    /// Reads that ran on the blocking pool.
    blocking: AtomicU64,
    touches: Mutex<Touches>,
}

#[derive(Debug, Default)]
struct Touches {
    /// Files whose access time is to be set to now.
    files: Vec<File>,
    /// Whether a blocking task has been started to drain `files`.
    draining: bool,
}

/// What [`Store::inline_stats`] reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct InlineStats {
    /// Whether reads are tried inline at all.
    pub(crate) enabled: bool,
    /// Reads answered inline.
    pub(crate) inline: u64,
    /// Reads that ran on the blocking pool.
    pub(crate) blocking: u64,
}

/// The result of [`Store::get_inline`].
pub(crate) enum Inline {
    /// Answered. With `drain_touches`, the caller must run
    /// [`Store::drain_touches`] on the blocking pool.
    Answered {
        got: Option<(Bytes, u64)>,
        drain_touches: bool,
    },
    /// The read must run on the blocking pool ([`Store::get`]); `hold` is
    /// a file to close there.
    Blocking { hold: Option<File> },
}

impl Inline {
    const BLOCKING: Self = Self::Blocking { hold: None };
}

impl InlineReads {
    pub(crate) fn new(enabled: bool) -> Self {
        Self {
            enabled: AtomicBool::new(enabled),
            inline: AtomicU64::new(0),
            blocking: AtomicU64::new(0),
            touches: Mutex::new(Touches::default()),
        }
    }

    pub(crate) fn count_blocking(&self) {
        self.blocking.fetch_add(1, Ordering::Relaxed);
    }

    /// A panic while holding the queue leaves it merely incomplete.
    fn touches(&self) -> MutexGuard<'_, Touches> {
        self.touches.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues `file` to be touched; returns whether the caller must start
    /// a drain.
    fn queue_touch(&self, file: File) -> bool {
        let mut touches = self.touches();
        if touches.files.len() >= MAX_QUEUED_TOUCHES {
            return false;
        }
        touches.files.push(file);
        !std::mem::replace(&mut touches.draining, true)
    }
}

impl Store {
    /// Reads `key` without blocking, if the kernel can answer from memory
    /// and the file is at most `limit` (and [`INLINE_MAX`]) bytes;
    /// otherwise says to take the blocking path. Answers, index updates and
    /// recency are those of [`Store::get`].
    pub(crate) fn get_inline(&self, key: &str, limit: u64) -> Inline {
        if !self.inline.enabled.load(Ordering::Relaxed) {
            return Inline::BLOCKING;
        }
        let hash = key_hash(key);
        let name = FileName::of(&hash);
        let now = unix_now();
        let limit = limit.min(INLINE_MAX).min(self.max_file_size());
        let outcome = match self.disk.read_nowait(&name, limit) {
            NoWait::Read(outcome) => outcome,
            NoWait::Blocked(hold) => return Inline::Blocking { hold },
            NoWait::Unsupported => {
                if self.inline.enabled.swap(false, Ordering::Relaxed) {
                    tracing::info!(
                        dir = %self.disk.path().display(),
                        "the filesystem refused a non-blocking read: from now on every read \
                         goes through the blocking pool"
                    );
                }
                return Inline::BLOCKING;
            }
        };
        let (got, touch) = match self.settle(hash, now, outcome) {
            Settled::Answer(got, touch) => (got, touch),
            Settled::Remove(_) => return Inline::BLOCKING,
        };
        self.inline.inline.fetch_add(1, Ordering::Relaxed);
        Inline::Answered {
            got,
            drain_touches: touch.is_some_and(|file| self.inline.queue_touch(file)),
        }
    }

    /// Records the queued reads on disk; runs on the blocking pool until
    /// the queue is empty.
    pub(crate) fn drain_touches(&self) {
        loop {
            let batch = {
                let mut touches = self.inline.touches();
                if touches.files.is_empty() {
                    touches.draining = false;
                    return;
                }
                std::mem::take(&mut touches.files)
            };
            for file in batch {
                Disk::touch(&file);
            }
        }
    }

    /// Lets the next read start a drain, after one that never ran (a
    /// runtime shutting down drops queued blocking tasks).
    pub(crate) fn release_touches(&self) {
        self.inline.touches().draining = false;
    }

    pub(crate) fn inline_stats(&self) -> InlineStats {
        InlineStats {
            enabled: self.inline.enabled.load(Ordering::Relaxed),
            inline: self.inline.inline.load(Ordering::Relaxed),
            blocking: self.inline.blocking.load(Ordering::Relaxed),
        }
    }
}
