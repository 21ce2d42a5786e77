//! [`FileConfig`] and its builder.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

use cachekit_core::{Error, ErrorKind, Result};

use crate::format::HEADER_LEN;

/// The environment variable naming the cache directory.
pub const DIR_ENV: &str = "CACHEKIT_FILE_DIR";

/// Everything [`FileBackend::open`](crate::FileBackend::open) needs: where
/// the cache lives and how large it may grow.
///
/// Build one with [`FileConfig::builder`]; every field has a default.
///
/// ```
/// use cachekit::file::FileConfig;
///
/// # fn main() -> cachekit::Result<()> {
/// let dir = std::env::temp_dir().join("cachekit-doc-config");
/// let config = FileConfig::builder()
///     .dir(&dir)
///     .max_bytes(64 << 20)
///     .max_entries(10_000)
///     .durable(true)
///     .build()?;
/// assert_eq!(config.dir(), dir.as_path());
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct FileConfig {
    pub(crate) dir: PathBuf,
    pub(crate) max_bytes: u64,
    pub(crate) max_entries: u64,
    pub(crate) max_value_size: u64,
    pub(crate) durable: bool,
    pub(crate) caller_writes: bool,
    pub(crate) high_watermark: f64,
    pub(crate) low_watermark: f64,
    pub(crate) sweep_interval: Duration,
}

impl FileConfig {
    /// A builder with the defaults: the [default directory](Self::default_dir),
    /// 256 MiB, 100 000 entries, values up to 16 MiB, not durable, writes
    /// on the blocking pool, eviction from 95 % down to 85 %, a sweep every
    /// 60 s.
    pub fn builder() -> FileConfigBuilder {
        FileConfigBuilder::default()
    }

    /// The cache directory used when none is configured:
    /// `$CACHEKIT_FILE_DIR` if set, else the platform cache directory plus
    /// `cachekit` (`$XDG_CACHE_HOME/cachekit` or `~/.cache/cachekit` on
    /// Linux, `~/Library/Caches/cachekit` on macOS).
    ///
    /// # Errors
    /// [`ErrorKind::Config`] when neither the variable nor a home directory
    /// is known.
    pub fn default_dir() -> Result<PathBuf> {
        let var = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
        default_dir_from(var(DIR_ENV), var("XDG_CACHE_HOME"), var("HOME"))
    }

    /// The cache directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The byte budget: header plus value length of every entry.
    pub fn max_bytes(&self) -> u64 {
        self.max_bytes
    }

    /// The entry budget.
    pub fn max_entries(&self) -> u64 {
        self.max_entries
    }

    /// The largest value `set` accepts.
    pub fn max_value_size(&self) -> u64 {
        self.max_value_size
    }

    /// Whether writes are fsynced (file and directory) before `set` returns.
    pub fn durable(&self) -> bool {
        self.durable
    }

    /// Whether writes run on the calling thread where Tokio allows it; see
    /// [`FileConfigBuilder::caller_writes`].
    pub fn caller_writes(&self) -> bool {
        self.caller_writes
    }

    /// Usage above which eviction starts (bytes, entries).
    pub(crate) fn high(&self) -> (u64, u64) {
        (
            fraction(self.max_bytes, self.high_watermark),
            fraction(self.max_entries, self.high_watermark),
        )
    }

    /// Usage that eviction brings the cache down to (bytes, entries).
    pub(crate) fn low(&self) -> (u64, u64) {
        (
            fraction(self.max_bytes, self.low_watermark),
            fraction(self.max_entries, self.low_watermark),
        )
    }
}

fn default_dir_from(
    explicit: Option<OsString>,
    xdg_cache: Option<OsString>,
    home: Option<OsString>,
) -> Result<PathBuf> {
    if let Some(dir) = explicit {
        return Ok(PathBuf::from(dir));
    }
    if cfg!(target_os = "macos") {
        if let Some(home) = home {
            return Ok(PathBuf::from(home).join("Library/Caches/cachekit"));
        }
    } else {
        // The XDG spec says relative values are invalid and must be ignored.
        if let Some(xdg) = xdg_cache.map(PathBuf::from).filter(|p| p.is_absolute()) {
            return Ok(xdg.join("cachekit"));
        }
        if let Some(home) = home {
            return Ok(PathBuf::from(home).join(".cache/cachekit"));
        }
    }
    Err(Error::new(
        ErrorKind::Config,
        format!("no cache directory: neither {DIR_ENV} nor HOME is set; set {DIR_ENV} to a directory this user owns"),
    ))
}

fn fraction(max: u64, fraction: f64) -> u64 {
    // Budgets are far below 2^53, where f64 is exact for integers.
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss
    )]
    let value = (max as f64 * fraction).floor() as u64;
    value.clamp(1, max)
}

/// The largest value a file cache accepts unless told otherwise (or its
/// budget holds less).
pub const DEFAULT_MAX_VALUE_SIZE: u64 = 16 << 20;

/// Builds a [`FileConfig`]; see [`FileConfig::builder`] for the defaults.
#[derive(Debug, Clone)]
#[must_use]
pub struct FileConfigBuilder {
    dir: Option<PathBuf>,
    max_bytes: u64,
    max_entries: u64,
    /// `None`: the default, [`DEFAULT_MAX_VALUE_SIZE`] or what fits the
    /// budget, whichever is smaller.
    max_value_size: Option<u64>,
    durable: bool,
    caller_writes: bool,
    high_watermark: f64,
    low_watermark: f64,
    sweep_interval: Duration,
}

impl Default for FileConfigBuilder {
    fn default() -> Self {
        Self {
            dir: None,
            max_bytes: 256 << 20,
            max_entries: 100_000,
            max_value_size: None,
            durable: false,
            caller_writes: false,
            high_watermark: 0.95,
            low_watermark: 0.85,
            sweep_interval: Duration::from_secs(60),
        }
    }
}

impl FileConfigBuilder {
    /// The cache directory (default: [`FileConfig::default_dir`]). It is
    /// created with mode 0700 if missing; an existing one must be owned by
    /// this user.
    pub fn dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.dir = Some(dir.into());
        self
    }

    /// The byte budget (default 256 MiB), counted as header plus value
    /// length per entry; the space the filesystem allocates is larger for
    /// small values (a 4 KiB block each on most filesystems).
    pub fn max_bytes(mut self, bytes: u64) -> Self {
        self.max_bytes = bytes;
        self
    }

    /// The entry budget (default 100 000).
    pub fn max_entries(mut self, entries: u64) -> Self {
        self.max_entries = entries;
        self
    }

    /// The largest value accepted (default 16 MiB, or less when a smaller
    /// `max_bytes` would not hold it after eviction); larger values fail
    /// with [`ErrorKind::TooLarge`] and nothing is written.
    pub fn max_value_size(mut self, bytes: u64) -> Self {
        self.max_value_size = Some(bytes);
        self
    }

    /// Whether to fsync each written file and then the directory before a
    /// write returns (default `false`). Atomicity does not depend on it: a
    /// killed process never leaves a torn entry either way. Durability
    /// protects entries against power loss and kernel crashes, at the cost
    /// of a disk flush per write.
    pub fn durable(mut self, durable: bool) -> Self {
        self.durable = durable;
        self
    }

    /// Whether writes (`set`, `set_many`, `set_if_absent`, `delete`,
    /// `expire`) run on the calling thread instead of Tokio's blocking pool
    /// (default `false`). It saves the hop to the pool, most of a small
    /// write's cost: it halves the latency of a non-durable 1 KiB `set` on
    /// ext4 and cuts it to a third on a tmpfs (figures in the
    /// [crate docs](crate#writes-on-the-calling-thread)). Results and
    /// atomicity are the same on both paths.
    ///
    /// The price: a write in progress cannot be interrupted. On the pool, a
    /// write that stalls (a journal commit, dirty-page throttling, a hung
    /// NFS server) delays only the call, which a tiered cache's L2 deadline
    /// gives up on while the write finishes in the background. On the
    /// calling thread, the deadline cannot cut it short (the write runs
    /// inside the poll that the deadline's timer would have to interrupt):
    /// the calling task waits for the disk, however long, and then gets a
    /// late result instead of a timeout. Its thread is blocked meanwhile;
    /// on a multi-thread runtime's worker (other than the first) the write
    /// runs in [`tokio::task::block_in_place`], so Tokio hands the worker's
    /// other tasks to another thread, which keeps them running.
    ///
    /// Use it for a cache on a local SSD or a tmpfs, when write latency
    /// matters. Leave it off for NFS, SMB, FUSE and other network or slow
    /// disks, or if a stuck write must not hold up its caller.
    ///
    /// A write runs on the calling thread only inside a multi-thread Tokio
    /// runtime; on a current-thread runtime, where blocking would stop every
    /// task, it takes the pool as if this were off. Where Tokio cannot be
    /// shown to allow `block_in_place` (the runtime's first worker, the
    /// thread of its `block_on`, a `LocalSet`), the write runs on the
    /// calling thread without it, and the tasks that thread also runs wait
    /// for it; Tokio is never asked where it would refuse with a panic.
    /// Removing the file that a `set` replaced, and
    /// evicting when a write crossed the high watermark, are still left to
    /// the pool, after the call returns.
    /// [`Backend::health`](cachekit_core::Backend::health) reports
    /// `caller_writes` and the counts `writes_caller` and `writes_blocking`.
    ///
    /// ```
    /// use cachekit::file::FileConfig;
    ///
    /// # fn main() -> cachekit::Result<()> {
    /// let config = FileConfig::builder()
    ///     .dir("/dev/shm/my-app-cache")
    ///     .caller_writes(true)
    ///     .build()?;
    /// assert!(config.caller_writes());
    /// # Ok(()) }
    /// ```
    pub fn caller_writes(mut self, caller_writes: bool) -> Self {
        self.caller_writes = caller_writes;
        self
    }

    /// Eviction starts when bytes or entries exceed `high` times their
    /// budget and removes least recently used entries until both are at or
    /// below `low` times it (defaults 0.95 and 0.85). Requires
    /// `0 < low < high <= 1`.
    pub fn watermarks(mut self, high: f64, low: f64) -> Self {
        self.high_watermark = high;
        self.low_watermark = low;
        self
    }

    /// How often the directory is rescanned to pick up other processes'
    /// writes, drop expired entries and enforce the budgets (default 60 s).
    /// The sweep runs on a blocking thread, started by whichever operation
    /// finds it due.
    pub fn sweep_interval(mut self, interval: Duration) -> Self {
        self.sweep_interval = interval;
        self
    }

    /// Validates and builds the config.
    ///
    /// # Errors
    /// [`ErrorKind::Config`] naming the field: a zero budget or interval,
    /// watermarks outside `0 < low < high <= 1`, a `max_value_size` that does
    /// not fit under the low watermark, or no directory given and none
    /// [known](FileConfig::default_dir).
    pub fn build(self) -> Result<FileConfig> {
        if self.max_bytes == 0 {
            return Err(Error::config("max_bytes", "must be greater than 0"));
        }
        if self.max_entries == 0 {
            return Err(Error::config("max_entries", "must be greater than 0"));
        }
        if self.sweep_interval.is_zero() {
            return Err(Error::config("sweep_interval", "must be greater than 0"));
        }
        let (high, low) = (self.high_watermark, self.low_watermark);
        if !(low > 0.0 && low < high && high <= 1.0) {
            return Err(Error::config(
                "watermarks",
                format!("need 0 < low < high <= 1, got high {high} and low {low}"),
            ));
        }
        let dir = match self.dir {
            Some(dir) if dir.as_os_str().is_empty() => {
                return Err(Error::config("dir", "must not be empty"));
            }
            Some(dir) => dir,
            None => FileConfig::default_dir()?,
        };
        let mut config = FileConfig {
            dir,
            max_bytes: self.max_bytes,
            max_entries: self.max_entries,
            max_value_size: 0,
            durable: self.durable,
            caller_writes: self.caller_writes,
            high_watermark: high,
            low_watermark: low,
            sweep_interval: self.sweep_interval,
        };
        // One value must fit after eviction, or a set could evict itself.
        let fits = config.low().0.saturating_sub(HEADER_LEN as u64);
        let (field, max_value_size) = match self.max_value_size {
            Some(size) => ("max_value_size", size),
            None => ("max_bytes", DEFAULT_MAX_VALUE_SIZE.min(fits)),
        };
        if max_value_size == 0 || max_value_size > fits {
            return Err(Error::config(
                field,
                format!(
                    "max_value_size must be between 1 and the low watermark of max_bytes minus the {HEADER_LEN}-byte header ({fits} bytes), got {max_value_size}"
                ),
            ));
        }
        config.max_value_size = max_value_size;
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_dir_prefers_the_variable_then_xdg_then_home() {
        let os = |s: &str| Some(OsString::from(s));
        assert_eq!(
            default_dir_from(os("/x"), os("/xdg"), os("/home/u")).unwrap(),
            PathBuf::from("/x")
        );
        if cfg!(target_os = "linux") {
            assert_eq!(
                default_dir_from(None, os("/xdg"), os("/home/u")).unwrap(),
                PathBuf::from("/xdg/cachekit")
            );
            assert_eq!(
                default_dir_from(None, os("relative"), os("/home/u")).unwrap(),
                PathBuf::from("/home/u/.cache/cachekit")
            );
        }
        let err = default_dir_from(None, None, None).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Config);
        assert!(err.message().contains(DIR_ENV));
    }

    #[test]
    fn build_names_the_bad_field() {
        let base = || FileConfig::builder().dir("/tmp/x");
        let field = |b: FileConfigBuilder| b.build().unwrap_err().message().to_owned();
        assert!(field(base().max_bytes(0)).contains("`max_bytes`"));
        assert!(field(base().max_entries(0)).contains("`max_entries`"));
        assert!(field(base().sweep_interval(Duration::ZERO)).contains("`sweep_interval`"));
        assert!(field(base().watermarks(0.5, 0.9)).contains("`watermarks`"));
        assert!(field(base().watermarks(1.5, 0.9)).contains("`watermarks`"));
        assert!(field(base().watermarks(f64::NAN, 0.5)).contains("`watermarks`"));
        assert!(field(base().max_value_size(0)).contains("`max_value_size`"));
        assert!(field(base().max_bytes(1000).max_value_size(900)).contains("`max_value_size`"));
        assert!(field(base().dir("")).contains("`dir`"));
        // A budget too small for even one byte of value names max_bytes.
        assert!(field(base().max_bytes(10)).contains("`max_bytes`"));
        let ok = base().max_bytes(1000).max_value_size(100).build().unwrap();
        assert_eq!(ok.high(), (950, 95_000));
        assert_eq!(ok.low(), (850, 85_000));
    }

    #[test]
    fn the_default_value_size_fits_a_small_budget() {
        let base = || FileConfig::builder().dir("/tmp/x");
        let small = base().max_bytes(8 << 20).build().unwrap();
        assert_eq!(
            small.max_value_size(),
            small.low().0 - HEADER_LEN as u64,
            "the largest value that still fits after eviction"
        );
        let large = base().build().unwrap();
        assert_eq!(large.max_value_size(), DEFAULT_MAX_VALUE_SIZE);
        // Given explicitly, a size that does not fit is still refused.
        let err = base().max_bytes(8 << 20).max_value_size(16 << 20).build();
        assert!(err.unwrap_err().message().contains("`max_value_size`"));
    }
}
