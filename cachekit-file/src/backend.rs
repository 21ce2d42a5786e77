//! [`FileBackend`]: the async [`Backend`] over the blocking [`Store`].

mod writes;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use cachekit_core::{Backend, Health, Result, Ttl};

use crate::config::FileConfig;
use crate::format::{key_hash, ttl_at, unix_now, FileName};
use crate::store::{Inline, Store, SweepStats, INLINE_KEY_COST, INLINE_MAX};

/// A [`Backend`] that keeps one file per key in a directory shared by any
/// number of processes; see the [crate docs](crate) for the format and the
/// guarantees.
///
/// Cloning is cheap; clones share the directory handle and the index.
/// File IO runs on Tokio's blocking pool, so every async method needs a
/// Tokio runtime. All of it, small non-durable writes included: a stalled
/// or slow filesystem (NFS, dirty-page throttling, ext4 without a journal
/// scanning for a free inode) then delays only the call, which a tiered
/// cache's L2 timeout can give up on, and never an async worker thread.
/// The exceptions: a read the kernel can answer from memory skips the hop
/// (see [reads without a hop](crate#reads-without-a-hop)), and so do
/// writes if [`caller_writes`](crate::FileConfigBuilder::caller_writes) is
/// on (see [writes on the calling thread](crate#writes-on-the-calling-thread)).
///
/// ```
/// use cachekit::Backend;
/// use cachekit::file::{FileBackend, FileConfig};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> cachekit::Result<()> {
/// # let tmp = std::env::temp_dir().join(format!("cachekit-doc-{}", std::process::id()));
/// let backend = FileBackend::open(FileConfig::builder().dir(&tmp).build()?)?;
/// backend.set("greeting", "hello".into(), None).await?;
/// assert_eq!(backend.get("greeting").await?.as_deref(), Some(&b"hello"[..]));
/// # std::fs::remove_dir_all(&tmp).ok();
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct FileBackend {
    store: Arc<Store>,
}

impl FileBackend {
    /// Opens (creating if needed) the cache directory and indexes it.
    ///
    /// Synchronous: it lists the directory and reads each entry's header,
    /// about a second per 100 000 entries on a warm SSD. In async code
    /// with a large cache, call it from `tokio::task::spawn_blocking`.
    /// Stale temp files of crashed writers, expired and corrupt entries
    /// are removed, and the budgets enforced, before it returns.
    ///
    /// # Errors
    /// [`ErrorKind::Config`](cachekit_core::ErrorKind::Config) if the
    /// directory is owned by another user, or other users can write it and
    /// it is not sticky (see [permissions](crate#permissions-and-the-directory));
    /// [`ErrorKind::Io`](cachekit_core::ErrorKind::Io) if it cannot be
    /// created, opened, listed or written (the message names the path and
    /// the fix; a full disk is transient).
    pub fn open(config: FileConfig) -> Result<Self> {
        Ok(Self {
            store: Arc::new(Store::open(config)?),
        })
    }

    /// The configuration it was opened with.
    pub fn config(&self) -> &FileConfig {
        &self.store.config
    }

    /// The cache directory.
    pub fn dir(&self) -> &Path {
        self.store.disk.path()
    }

    /// The file that holds (or would hold) `key`: the directory plus the
    /// lowercase hex Blake2b-128 of the key.
    pub fn path_for(&self, key: &str) -> PathBuf {
        self.store
            .disk
            .entry_path(FileName::of(&key_hash(key)).as_str())
    }

    /// Entries this process knows of; other processes' recent writes
    /// appear after the next sweep.
    pub fn entry_count(&self) -> u64 {
        self.store.index().len()
    }

    /// Bytes (headers plus values) of the entries this process knows of.
    pub fn total_bytes(&self) -> u64 {
        self.store.index().bytes()
    }

    /// Whether keys are stored with entries, which `delete_prefix` needs
    /// (`false` on filesystems without user extended attributes).
    pub fn stores_keys(&self) -> bool {
        self.store.key_xattr
    }

    /// Runs a sweep now, instead of waiting for the periodic one: rescans
    /// the directory, removes expired, corrupt and stale temp files, and
    /// evicts down to the low watermark if over the high one.
    ///
    /// # Errors
    /// [`ErrorKind::Io`](cachekit_core::ErrorKind::Io) if the directory
    /// cannot be listed.
    pub async fn sweep(&self) -> Result<SweepStats> {
        self.blocking(|store| store.sweep()).await
    }

    /// Runs `f` on the blocking pool, then starts the periodic sweep in the
    /// background if it is due.
    async fn blocking<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Store) -> Result<T> + Send + 'static,
    {
        let store = Arc::clone(&self.store);
        let out = tokio::task::spawn_blocking(move || f(&store))
            .await
            .map_err(crate::error::join_error)?;
        self.after_io();
        out
    }

    /// Reads on this thread when the kernel can answer from memory, else
    /// on the blocking pool.
    async fn read(&self, key: &str) -> Result<Option<(Bytes, u64)>> {
        // An inline answer never yields; this keeps a task that reads in a
        // loop from starving the worker's other tasks, as Tokio's own IO
        // does.
        tokio::task::coop::consume_budget().await;
        match self.store.get_inline(key, INLINE_MAX) {
            Inline::Answered { got, drain_touches } => {
                self.after_inline(drain_touches);
                Ok(got)
            }
            Inline::Blocking { hold } => {
                let key = key.to_owned();
                self.blocking(move |s| {
                    drop(hold);
                    s.get(&key)
                })
                .await
            }
        }
    }

    /// After reads answered inline: starts the drain of the queued
    /// touches if asked to, and the periodic sweep if it is due.
    fn after_inline(&self, drain_touches: bool) {
        if drain_touches {
            let drain = TouchDrain {
                store: Arc::clone(&self.store),
                ran: false,
            };
            tokio::task::spawn_blocking(move || {
                let mut drain = drain;
                drain.store.drain_touches();
                drain.ran = true;
            });
        }
        self.after_io();
    }

    /// Starts the periodic sweep in the background if it is due.
    fn after_io(&self) {
        if self.store.claim_sweep() {
            let claim = SweepClaim(Arc::clone(&self.store));
            tokio::task::spawn_blocking(move || {
                if let Err(err) = claim.0.sweep() {
                    tracing::warn!(%err, "periodic cache sweep failed");
                }
            });
        }
    }
}

/// Releases the periodic sweep when dropped, also if a shutting-down
/// runtime drops the task without running it.
struct SweepClaim(Arc<Store>);

impl Drop for SweepClaim {
    fn drop(&mut self) {
        self.0.sweep_done();
    }
}

/// A drain of the touch queue; dropped without having run (a runtime
/// shutting down), it lets the next read start another.
struct TouchDrain {
    store: Arc<Store>,
    ran: bool,
}

impl Drop for TouchDrain {
    fn drop(&mut self) {
        if !self.ran {
            self.store.release_touches();
        }
    }
}

#[async_trait]
impl Backend for FileBackend {
    fn name(&self) -> &str {
        "file"
    }

    async fn get(&self, key: &str) -> Result<Option<Bytes>> {
        let got = self.read(key).await?;
        Ok(got.map(|(value, _)| value))
    }

    async fn get_with_ttl(&self, key: &str) -> Result<Option<(Bytes, Ttl)>> {
        let got = self.read(key).await?;
        Ok(got.map(|(value, expiry)| (value, ttl_at(expiry, unix_now()))))
    }

    async fn set(&self, key: &str, value: Bytes, ttl: Option<Duration>) -> Result<()> {
        let key = key.to_owned();
        self.writing(move |s, evict| Ok(vec![s.set(&key, &value, ttl, evict)?]))
            .await
    }

    async fn delete(&self, key: &str) -> Result<bool> {
        let key = key.to_owned();
        self.write(move |s, _| s.delete(&key)).await
    }

    async fn ttl(&self, key: &str) -> Result<Ttl> {
        let key = key.to_owned();
        self.blocking(move |s| s.ttl(&key)).await
    }

    async fn expire(&self, key: &str, ttl: Option<Duration>) -> Result<bool> {
        let key = key.to_owned();
        self.write(move |s, _| s.expire(&key, ttl)).await
    }

    async fn get_many(&self, keys: &[&str]) -> Result<Vec<Option<Bytes>>> {
        tokio::task::coop::consume_budget().await;
        // Inline while the budget lasts (see INLINE_KEY_COST); the rest,
        // with the files to close off this thread, in one blocking task.
        let mut out = Vec::with_capacity(keys.len());
        let mut rest = Vec::new();
        let mut holds = Vec::new();
        let (mut budget, mut drain_touches) = (INLINE_MAX, false);
        for (at, key) in keys.iter().enumerate() {
            let inline = match budget {
                0 => Inline::Blocking { hold: None },
                _ => self.store.get_inline(key, budget),
            };
            match inline {
                Inline::Answered {
                    got,
                    drain_touches: drain,
                } => {
                    let read = got.as_ref().map_or(0, |(value, _)| value.len() as u64);
                    budget = budget.saturating_sub(INLINE_KEY_COST + read);
                    drain_touches |= drain;
                    out.push(got.map(|(value, _)| value));
                }
                Inline::Blocking { hold } => {
                    holds.extend(hold);
                    rest.push((at, (*key).to_owned()));
                    out.push(None);
                }
            }
        }
        self.after_inline(drain_touches);
        if rest.is_empty() {
            return Ok(out);
        }
        let got = self
            .blocking(move |s| {
                drop(holds);
                rest.into_iter()
                    .map(|(at, key)| Ok((at, s.get(&key)?.map(|(value, _)| value))))
                    .collect::<Result<Vec<_>>>()
            })
            .await?;
        for (at, value) in got {
            out[at] = value;
        }
        Ok(out)
    }

    async fn set_many(&self, entries: &[(&str, Bytes)], ttl: Option<Duration>) -> Result<()> {
        let entries: Vec<(String, Bytes)> = entries
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect();
        self.writing(move |s, evict| {
            entries
                .iter()
                .map(|(key, value)| s.set(key, value, ttl, evict))
                .collect()
        })
        .await
    }

    async fn set_if_absent(&self, key: &str, value: Bytes, ttl: Option<Duration>) -> Result<bool> {
        let key = key.to_owned();
        self.write(move |s, evict| s.set_if_absent(&key, &value, ttl, evict))
            .await
    }

    async fn delete_prefix(&self, prefix: &str) -> Result<u64> {
        cachekit_core::backend::check_prefix(prefix)?;
        let prefix = prefix.to_owned();
        self.blocking(move |s| s.delete_prefix(&prefix)).await
    }

    async fn health(&self) -> Health {
        let started = Instant::now();
        let probe = self.blocking(|s| s.disk.probe_writable()).await;
        let latency = started.elapsed();
        let config = &self.store.config;
        let reads = self.store.inline_stats();
        let writes = self.store.write_stats();
        let health = Health::new("file", probe.is_ok(), latency)
            .detail("dir", config.dir.display())
            .detail("entries", self.entry_count())
            .detail("bytes", self.total_bytes())
            .detail("max_entries", config.max_entries)
            .detail("max_bytes", config.max_bytes)
            .detail("durable", config.durable)
            .detail("stores_keys", self.store.key_xattr)
            .detail("inline_reads", reads.enabled)
            .detail("reads_inline", reads.inline)
            .detail("reads_blocking", reads.blocking)
            .detail("caller_writes", config.caller_writes)
            .detail("writes_caller", writes.caller)
            .detail("writes_blocking", writes.blocking);
        match probe {
            Ok(()) => health,
            Err(err) => health.detail("error", err),
        }
    }
}
