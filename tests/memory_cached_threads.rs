//! `#[cached]` functions called from many threads stay within the L1
//! budget: the entries each thread remembers for its repeated calls do not
//! keep values alive beyond it, neither while the threads run nor after
//! they exit. (One test per file: RSS is process-wide, and the default
//! cache is fixed once per process.)

#![cfg(all(target_os = "linux", target_env = "gnu"))]
#![allow(
    clippy::unwrap_used,
    reason = "test helpers too: a failed setup step must fail the test loudly"
)]

#[path = "memory_support/rss.rs"]
mod rss;

use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Barrier};

use cachekit::{cached, TieredCache};
use rss::{assert_bounded, assert_bounded_plus, random_letters, settled_rss, MIB};

const BUDGET: u64 = 8 * MIB;
const THREADS: u64 = 64;
/// Arguments per thread and function, each called in every round: the
/// repeated calls are the ones a thread remembers the entries of.
const ARGS: u64 = 4;
const ROUNDS: usize = 2;
const VALUE_LEN: usize = 8 * 1024;
/// What each live thread keeps outside the cache once its values are
/// 8 KiB, not 16 bytes: the codec's two scratch buffers (see `codec.rs`).
const SCRATCH_PER_THREAD: u64 = 2 * (VALUE_LEN as u64 + 1024);

/// The length of the values the functions make now.
static LEN: AtomicUsize = AtomicUsize::new(16);

macro_rules! random_fns {
    ($($name:ident = $salt:literal),+ $(,)?) => {
        $(
            #[cached(namespace = "mem", ttl = 600)]
            fn $name(x: u64) -> String {
                random_letters(x * 100 + $salt, LEN.load(Relaxed))
            }
        )+
        const FNS: &[fn(u64) -> String] = &[$($name),+];
    };
}

random_fns! {
    f00 = 0, f01 = 1, f02 = 2, f03 = 3, f04 = 4, f05 = 5, f06 = 6, f07 = 7, f08 = 8, f09 = 9,
    f10 = 10, f11 = 11, f12 = 12, f13 = 13, f14 = 14, f15 = 15, f16 = 16, f17 = 17, f18 = 18,
    f19 = 19,
}

/// Runs `THREADS` threads, each calling every function with its own
/// arguments from `first` on, `ROUNDS` times; `running` runs while they
/// are all done calling but still alive.
fn run_threads(first: u64, running: impl FnOnce()) {
    let called = Arc::new(Barrier::new(THREADS as usize + 1));
    let exit = Arc::new(Barrier::new(THREADS as usize + 1));
    let threads: Vec<_> = (0..THREADS)
        .map(|t| {
            let (called, exit) = (called.clone(), exit.clone());
            std::thread::spawn(move || {
                for _ in 0..ROUNDS {
                    for f in FNS {
                        for i in 0..ARGS {
                            assert_eq!(f(first + t * ARGS + i).len(), LEN.load(Relaxed));
                        }
                    }
                }
                called.wait();
                exit.wait();
            })
        })
        .collect();
    called.wait();
    running();
    exit.wait();
    for thread in threads {
        thread.join().unwrap();
    }
}

#[test]
fn many_threads_stay_within_the_budget_and_free_on_exit() {
    let cache = TieredCache::builder().l1_max_bytes(BUDGET).build().unwrap();
    cachekit::set_default_backend(cache.clone()).unwrap();
    let l1 = cache.l1().unwrap();
    // The same threads and calls with 16-byte values first, measured the
    // same way: the fixed cost of 64 live threads (their stacks, arenas and
    // key tables, about 7 KiB per thread and function) is not what the
    // budget bounds.
    let mut running_before = 0;
    run_threads(0, || running_before = settled_rss());
    let before = settled_rss();

    LEN.store(VALUE_LEN, Relaxed);
    let detail = || {
        l1.run_pending_tasks();
        format!(
            "{THREADS} threads x {} functions x {ARGS} arguments, random values of {VALUE_LEN} \
             bytes; L1 keeps {} entries weighing {} bytes",
            FNS.len(),
            l1.entry_count(),
            l1.weighted_size()
        )
    };
    run_threads(1 << 20, || {
        let scratch = THREADS * SCRATCH_PER_THREAD;
        assert_bounded_plus(
            "threads running",
            running_before,
            BUDGET,
            scratch,
            &detail(),
        );
    });
    assert_bounded("threads exited", before, BUDGET, &detail());
}
