//! `#[cached]` functions on the default cache stay within its L1 budget
//! when their values compress well. (One test per file: RSS is
//! process-wide, and the default cache is fixed once per process.)

#![cfg(all(target_os = "linux", target_env = "gnu"))]
#![allow(
    clippy::unwrap_used,
    reason = "test helpers too: a failed setup step must fail the test loudly"
)]

#[path = "memory_support/rss.rs"]
mod rss;

use cachekit::{cached, TieredCache};
use rss::{assert_bounded, repetitive_text, settled_rss, MIB};

const BUDGET: u64 = 8 * MIB;
const ARGS: u64 = 300;
const VALUE_LEN: usize = 8 * 1024;

macro_rules! text_fns {
    ($($name:ident = $salt:literal),+ $(,)?) => {
        $(
            #[cached(namespace = "mem", ttl = 600)]
            fn $name(x: u64) -> String {
                repetitive_text(x * 100 + $salt, VALUE_LEN)
            }
        )+
        const FNS: &[fn(u64) -> String] = &[$($name),+];
    };
}

text_fns! {
    f00 = 0, f01 = 1, f02 = 2, f03 = 3, f04 = 4, f05 = 5, f06 = 6, f07 = 7, f08 = 8, f09 = 9,
    f10 = 10, f11 = 11, f12 = 12, f13 = 13, f14 = 14, f15 = 15, f16 = 16, f17 = 17, f18 = 18,
    f19 = 19,
}

#[test]
fn many_cached_functions_stay_within_the_default_budget() {
    let before = settled_rss();
    let cache = TieredCache::builder().l1_max_bytes(BUDGET).build().unwrap();
    cachekit::set_default_backend(cache.clone()).unwrap();
    for x in 0..ARGS {
        for f in FNS {
            let value = f(x);
            assert_eq!(value.len(), VALUE_LEN);
        }
    }
    let l1 = cache.l1().unwrap();
    l1.run_pending_tasks();
    let detail = format!(
        "{} functions x {ARGS} arguments, values of {VALUE_LEN} bytes; L1 keeps {} entries weighing {} bytes",
        FNS.len(),
        l1.entry_count(),
        l1.weighted_size()
    );
    assert_bounded(
        "#[cached] functions, compressible values",
        before,
        BUDGET,
        &detail,
    );
    assert_eq!(
        f00_cache().stats().computes,
        ARGS,
        "every call computed once"
    );
}
