//! Resident memory of this process, for the `memory_*` tests: how much the
//! L1 byte budget really bounds.
//!
//! RSS is process-wide, so each `memory_*` file is a test binary of its own
//! with one test in it. Included with `#[path]` (the directory is not a
//! test target of its own).

// `malloc_trim` is a C call. Without it, glibc keeps freed memory in its
// arenas and RSS would count what the cache already let go of.
#![allow(unsafe_code)]
// Not every test file uses every helper.
#![allow(dead_code)]
#![allow(
    clippy::unwrap_used,
    reason = "a failed measurement must fail the test loudly"
)]

/// One mebibyte.
pub const MIB: u64 = 1024 * 1024;

/// What a test may add on top of 1.3 x the budget: the fixed cost of a
/// cache and its bookkeeping (moka's tables, the key tables, thread stacks
/// glibc keeps for reuse, allocator slack). Measured with an empty cache
/// and with caches holding only small values, it was 2-3.5 MiB (20 `#[cached]`
/// functions and their key tables at the top of that), and the `#[cached]`
/// tests came within 1 MiB of a 4 MiB allowance; 6 MiB leaves room for
/// allocator noise and another libc, and is still far below what an
/// unbounded cache grows (35-60 MiB more in these tests, before the fix).
pub const FIXED_ALLOWANCE: u64 = 6 * MIB;

/// The process's resident set in bytes, after handing freed heap memory
/// back to the OS.
pub fn settled_rss() -> u64 {
    // SAFETY: malloc_trim only releases free memory at the top of each
    // arena and unused pages inside them; it takes no pointers.
    unsafe {
        libc::malloc_trim(0);
    }
    rss()
}

/// VmRSS from /proc/self/status, in bytes.
pub fn rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    let line = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .expect("VmRSS in /proc/self/status");
    let kib: u64 = line
        .trim_start_matches("VmRSS:")
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .expect("VmRSS is a number of kB");
    kib * 1024
}

/// Asserts that the process grew by no more than 1.3 x `budget` plus
/// [`FIXED_ALLOWANCE`] since `before`.
pub fn assert_bounded(what: &str, before: u64, budget: u64, detail: &str) {
    assert_bounded_plus(what, before, budget, 0, detail);
}

/// As [`assert_bounded`], allowing `extra` bytes more (per-thread memory
/// outside the cache, such as the codec's scratch buffers).
pub fn assert_bounded_plus(what: &str, before: u64, budget: u64, extra: u64, detail: &str) {
    let after = settled_rss();
    let growth = after.saturating_sub(before);
    let bound = budget * 13 / 10 + FIXED_ALLOWANCE + extra;
    eprintln!(
        "{what}: RSS grew {:.1} MiB with a {:.1} MiB budget (bound {:.1} MiB); {detail}",
        growth as f64 / MIB as f64,
        budget as f64 / MIB as f64,
        bound as f64 / MIB as f64,
    );
    assert!(
        growth <= bound,
        "{what}: the process grew {:.1} MiB, more than 1.3 x the L1 budget of {:.1} MiB \
         plus {:.1} MiB; {detail}",
        growth as f64 / MIB as f64,
        budget as f64 / MIB as f64,
        (FIXED_ALLOWANCE + extra) as f64 / MIB as f64,
    );
}

/// `len` bytes of text that LZ4 shrinks many times over (a sentence
/// repeated, numbered by `seed` so that every value is distinct).
pub fn repetitive_text(seed: u64, len: usize) -> String {
    let mut text = format!("value {seed}: ");
    while text.len() < len {
        text.push_str("the quick brown fox jumps over the lazy dog. ");
    }
    text.truncate(len);
    text
}

/// `len` random lowercase letters, distinct for each `seed`: LZ4 finds
/// nothing to shrink. (Cut from one random text made once, so that debug
/// builds do not spend their time in the random number generator.)
pub fn random_letters(seed: u64, len: usize) -> String {
    static POOL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let pool = POOL.get_or_init(|| {
        let mut rng = fastrand::Rng::with_seed(25);
        (0..1 << 20).map(|_| rng.lowercase()).collect()
    });
    let mut text = format!("{seed}:");
    let room = pool.len().saturating_sub(len);
    let start = usize::try_from(seed.wrapping_mul(7919)).unwrap_or(0) % room.max(1);
    text.push_str(&pool[start..start + len]);
    text.truncate(len);
    text
}

/// Stores `values` strings of `len` bytes made by `make` through
/// `TieredCache::set` in an L1 of `budget` bytes, and asserts that the
/// process grew within the bound of [`assert_bounded`] while the cache
/// still holds them.
pub fn assert_set_values_bounded(
    what: &str,
    budget: u64,
    values: u64,
    len: usize,
    make: fn(u64, usize) -> String,
) {
    let before = settled_rss();
    let cache = cachekit::TieredCache::builder()
        .l1_max_bytes(budget)
        .build()
        .unwrap();
    let ttl = Some(std::time::Duration::from_secs(600));
    for i in 0..values {
        cache
            .set_blocking(&format!("mem:{i}"), &make(i, len), ttl)
            .unwrap();
    }
    let l1 = cache.l1().unwrap();
    l1.run_pending_tasks();
    let detail = format!(
        "{values} values of {len} bytes; L1 keeps {} entries weighing {} bytes",
        l1.entry_count(),
        l1.weighted_size()
    );
    // The entries are still there: what the cache keeps alive is measured.
    assert_bounded(what, before, budget, &detail);
    drop(cache);
}
