//! The file backend of [cachekit](https://docs.rs/cachekit): a durable,
//! bounded cache directory that any number of processes can share.
//! Most users reach it as `cachekit::FileBackend`; it is also the embedded
//! default L2 when no Redis is configured.
//!
//! ```
//! use std::time::Duration;
//! use cachekit::{Backend, Ttl};
//! use cachekit::file::{FileBackend, FileConfig};
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> cachekit::Result<()> {
//! # let dir = std::env::temp_dir().join(format!("cachekit-doc-lib-{}", std::process::id()));
//! // Without .dir(..): $CACHEKIT_FILE_DIR, else ~/.cache/cachekit.
//! let config = FileConfig::builder().dir(&dir).max_bytes(64 << 20).build()?;
//! let cache = FileBackend::open(config)?;
//! cache.set("user:42", "Ada".into(), Some(Duration::from_millis(1500))).await?;
//! // TTLs are stored in whole seconds, rounded up.
//! assert!(matches!(cache.ttl("user:42").await?, Ttl::Remaining(d) if d <= Duration::from_millis(2500)));
//! # std::fs::remove_dir_all(&dir).ok();
//! # Ok(()) }
//! ```
//!
//! # On-disk format
//! Shared byte for byte with the cachekit family's file backends:
//! - one file per key, named by the lowercase hex Blake2b-128 (16-byte
//!   digest) of the key, so no user string ever becomes a path;
//! - each file is a 14-byte header, `C` `K`, version 1, a reserved 0 byte,
//!   u16 big-endian flags (0), u64 big-endian absolute expiry in Unix
//!   seconds (0 = never), followed by the value bytes, unchanged.
//!
//! A file with another version or non-zero flags is a miss and is left
//! alone by reads and sweeps (a newer writer owns it); writes of the same
//! key (`set`, `delete`) replace it. A file under an entry name that is not
//! a cachekit entry at all (wrong magic, shorter than the header) is a miss
//! and is removed. A file holding exactly a header is a valid empty value.
//!
//! TTLs are stored as an absolute time in whole seconds, **rounded up**:
//! an entry never expires early, and lives up to one second longer than
//! asked (a 200 ms TTL lasts until the next whole second after it, so
//! 200 ms to 1.2 s). A zero TTL removes the key. Expiry follows the wall
//! clock, as it must to mean the same thing in every process.
//!
//! # Where the keys are kept
//! File names are hashes, yet `delete_prefix` needs the key names, across
//! restarts and processes. The value region cannot carry them (other
//! family members read it as the value), so each entry file carries its
//! key in the extended attribute `user.cachekit.key`. It is set on the temp
//! file before the rename, so an entry and its key appear atomically and
//! vanish together: no side file to keep consistent, no journal to compact,
//! nothing extra per entry on disk beyond the attribute. `delete_prefix`
//! lists the directory and reads the attribute of each entry (one system
//! call each), so it is O(entries), like Redis's `SCAN`. Keys are limited
//! to 1024 bytes (longer ones fail `set` with `InvalidInput`). Entries
//! written by implementations that do not set the attribute are invisible
//! to `delete_prefix`.
//!
//! ext4, xfs, btrfs, zfs and tmpfs since Linux 6.6 support user attributes;
//! where the filesystem does not (detected at open, with a warning),
//! everything works except `delete_prefix`, which fails with
//! [`ErrorKind::Unsupported`](cachekit_core::ErrorKind::Unsupported).
//!
//! # Writes and crashes
//! A write creates `.tmp-<pid>-<random>` in the cache directory (exclusive
//! create, never through a symlink, mode 0600), sets the key attribute,
//! writes header and value (one `writev`), fsyncs when
//! [durable](FileConfigBuilder::durable), and moves it into place
//! atomically (then fsyncs the directory when durable). On Linux the move
//! is a swap (`renameat2(RENAME_EXCHANGE)`) followed by removing the old
//! file, because ext4 flushes a file renamed over another, which costs a
//! plain rename five times the whole write; elsewhere, and for a new key,
//! it is a rename. A reader sees the whole old or the whole new file, even
//! if the writer is killed mid-write. `set` and `set_many` return once the
//! new value is in place; the blocking thread removes the swapped-out file
//! right after answering (freeing an inode is the slowest step of a
//! replace on ext4), or, for a write on the calling thread (see below), a
//! blocking task does, so for a moment it may still be there under its
//! temp name, which no reader looks up. `set_if_absent` publishes with `link`,
//! which fails atomically if the entry exists, so concurrent callers in any
//! process have one winner. `expire` rewrites the 8 expiry bytes in place,
//! so it can never resurrect an older value over a concurrent `set`.
//!
//! Temp files whose writer process is dead, or older than 10 minutes, are
//! removed at open and by each sweep. The pid check is only meaningful
//! within one PID namespace: two containers sharing a directory can
//! remove each other's in-flight temp file, which makes that one `set`
//! fail with an IO error, never corrupts an entry.
//!
//! # Budgets, eviction and other processes
//! Each process keeps an in-memory index (hash → size, expiry, last use),
//! built at open by listing the directory, so `get` and `set` are O(1)
//! amortised however many entries there are. When the indexed bytes or
//! entries exceed the high watermark (95 % of `max_bytes` / `max_entries`
//! by default), the write that crossed it evicts expired entries, then
//! least recently used ones, down to the low watermark (85 %); a write on
//! the [calling thread](#writes-on-the-calling-thread) leaves that to a
//! blocking task instead. Reads count
//! as use: in memory at once, and on disk (the file's access time, at most
//! once a minute per entry, set by a blocking task shortly after the read)
//! so that other processes and later runs see it too; at open, recency is
//! the later of each file's access and modification times.
//!
//! Other processes' writes are found by reads (a hash missing from the
//! index is still looked up on disk) and by the periodic sweep, which
//! relists the directory every `sweep_interval` (60 s by default) and
//! also removes expired entries. So with N processes sharing a directory,
//! each keeps what it knows within its budget, and the directory can
//! exceed the budget by at most what the other processes wrote since this
//! one's last sweep; every sweep brings it back under. Entries removed
//! by another process are simply misses. Eviction can remove a value that
//! another writer stored a moment before: a later miss, never a torn read.
//!
//! # Reads without a hop
//! File IO runs on Tokio's blocking pool so that a stalled disk or a hung
//! network mount never blocks an async worker thread. The hop costs about
//! 20 µs, ten times a small read from the page cache, so on Linux 5.12 and
//! later a read is first tried on the calling thread with calls the kernel
//! promises never to wait for a device: `openat2(RESOLVE_CACHED)`, which
//! resolves the name from the dentry cache only, and
//! `preadv2(RWF_NOWAIT)`, which copies from the page cache only; each
//! fails with `EAGAIN` instead of waiting. Values over 128 KiB, reads the
//! kernel cannot answer from memory, and expired or corrupt entries (whose
//! removal is disk work) go to the blocking pool as before, with the same
//! results. Recording a read on disk (the access time, see below) is a
//! metadata write, so it is queued for a blocking task and never waited
//! for.
//!
//! This is enabled only on local filesystems (ext2/3/4, xfs, btrfs, f2fs,
//! tmpfs, overlayfs) where a trial read at open succeeds: on NFS, SMB or
//! FUSE even `open` can be a round trip. If the kernel later refuses the
//! calls, the backend stops trying. [`Backend::health`](cachekit_core::Backend::health)
//! reports `inline_reads` (enabled or not) and the counts `reads_inline`
//! and `reads_blocking`.
//!
//! # Writes on the calling thread
//! Writes run on the blocking pool for the same reason, and there the hop
//! is most of a small write's cost. On an idle 2-core VM, where waking a
//! thread takes 10 to 25 µs, a non-durable 1 KiB `set` on ext4 (medians
//! of `cargo bench --bench file`) took 20 µs as bare system calls, 80 µs
//! through the pool (120 µs from a worker thread) and 32 to 44 µs on the
//! calling thread; on a tmpfs, 14, 56 to 60 (86 to 106) and 17 to 24 µs.
//! At 64 KiB on ext4: 46 to 51, 125 to 145, and 65 to 77 µs.
//! [`caller_writes`](FileConfigBuilder::caller_writes) opts into running
//! `set`, `set_many`, `set_if_absent`, `delete` and `expire` on the
//! calling thread instead, inside [`tokio::task::block_in_place`] where
//! Tokio provably allows it (reads
//! of the directory, `delete_prefix`, `ttl`, sweeps and the health probe
//! stay on the pool). Results, atomicity and crash safety are the same;
//! what changes is what a slow disk does:
//! - on the pool, a write that stalls (a journal commit, dirty-page
//!   throttling, a hung NFS server) delays only its call, which a tiered
//!   cache's L2 deadline (a timeout around the backend call) gives up on,
//!   and the write completes in the background;
//! - on the calling thread, nothing can interrupt a write in progress.
//!   The write runs inside the poll of the backend call, so the L2
//!   deadline cannot fire during it: the calling task waits for the disk
//!   for as long as it takes, and gets a late success (or error) instead
//!   of a timeout. The runtime keeps going: `block_in_place` first hands
//!   the worker's other tasks to another thread.
//!
//! So turn it on for a cache on a local SSD or a tmpfs when write latency
//! matters, and leave it off for NFS, SMB, FUSE, network block devices and
//! slow or shared disks. It applies only inside a multi-thread Tokio
//! runtime: on a current-thread runtime, blocking would stop every task,
//! so writes take the pool as without it (see the option's docs for the
//! threads where the write runs without `block_in_place`). The file a `set`
//! replaced is removed by a blocking task after the call returns, as the
//! pool thread does after answering: unlinking a file whose data has
//! reached the disk costs 75 to 100 µs on ext4 (a file still in the page
//! cache, 5 to 10 µs). Eviction, when a write crosses the high watermark,
//! is left to a blocking task too (on the pool, the write that crossed it
//! evicts before answering): it removes a tenth of the cache. [`Backend::health`](cachekit_core::Backend::health)
//! reports `caller_writes` (the option) and the counts `writes_caller` and
//! `writes_blocking` (write calls; a `set_many` is one).
//!
//! # Permissions and the directory
//! The directory is created 0700 and files 0600. The path may be or
//! contain a symlink (a home directory on another disk is common), but
//! the directory it leads to must be owned by this user, or `open` fails
//! with `Config`. The threat is a shared location such as `/tmp`: another
//! user who creates the directory, or a symlink to a directory of theirs,
//! first would otherwise receive every cached value and could plant
//! entries that this process then trusts.
//!
//! An existing directory that other users can write (group or world
//! writable) is refused with `Config` naming the path and the fix
//! (`chmod 700`), unless it has the sticky bit, as `/tmp` has: without
//! it, anyone who can write the directory can rename this user's entries
//! and so serve one key's value under another key's name, which no check
//! of a single file can detect. One that others can merely read is used
//! with a warning.
//!
//! Whatever the directory's mode, only regular files owned by this
//! process's effective uid are entries: a file of another user under an
//! entry name (planted, in a sticky directory) or a symlink is a miss for
//! every read, `expire` reports it missing, and `delete`, a write of the
//! key and the sweep remove the name itself, never what a link points at.
//! FIFOs, devices and directories under entry names are misses and are
//! left alone. All entry IO, listing included, is relative to the
//! directory handle opened at start (`openat` with `O_NOFOLLOW`,
//! `fstatat` with `AT_SYMLINK_NOFOLLOW`, `unlinkat`, and the key attribute
//! read from the opened file), so the path being swapped later does not
//! redirect it.
//!
//! # Errors
//! A full disk (or quota) is [`ErrorKind::Io`](cachekit_core::ErrorKind::Io)
//! and transient; permission denied and a read-only filesystem are `Io` and
//! permanent. Each message names the path and what fixes it. A value
//! larger than `max_value_size` fails with `TooLarge` and nothing is
//! written.
//!
//! # Platforms
//! Unix only (Linux and macOS); the crate relies on `openat`-style calls,
//! `link`, and extended attributes.

mod backend;
mod config;
mod disk;
mod error;
mod format;
mod index;
mod store;

pub use backend::FileBackend;
pub use config::{FileConfig, FileConfigBuilder, DEFAULT_MAX_VALUE_SIZE, DIR_ENV};
pub use store::SweepStats;
