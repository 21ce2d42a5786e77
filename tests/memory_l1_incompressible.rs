//! The L1 byte budget bounds the process's memory when values do not
//! compress (random letters): the counterpart of `memory_l1_compressible`,
//! so that a weigher fixed for one kind of value keeps bounding the other.
//! (One test per file: RSS is process-wide.)

#![cfg(all(target_os = "linux", target_env = "gnu"))]
#![allow(
    clippy::unwrap_used,
    reason = "test helpers too: a failed setup step must fail the test loudly"
)]

#[path = "memory_support/rss.rs"]
mod rss;

use std::time::Duration;

use cachekit::TieredCache;
use rss::{assert_bounded, random_letters, settled_rss, MIB};

const BUDGET: u64 = 8 * MIB;
const VALUES: u64 = 6_000;
const VALUE_LEN: usize = 8 * 1024;

#[test]
fn incompressible_values_stay_within_the_budget() {
    let before = settled_rss();
    let cache = TieredCache::builder().l1_max_bytes(BUDGET).build().unwrap();
    let ttl = Some(Duration::from_secs(600));
    for i in 0..VALUES {
        let value = random_letters(i, VALUE_LEN);
        cache
            .set_blocking(&format!("mem:random:{i}"), &value, ttl)
            .unwrap();
    }
    let l1 = cache.l1().unwrap();
    l1.run_pending_tasks();
    let detail = format!(
        "{VALUES} values of {VALUE_LEN} bytes; L1 keeps {} entries weighing {} bytes",
        l1.entry_count(),
        l1.weighted_size()
    );
    // The entries are still there: what the cache keeps alive is measured.
    assert_bounded(
        "incompressible values via TieredCache::set",
        before,
        BUDGET,
        &detail,
    );
    drop(cache);
}
