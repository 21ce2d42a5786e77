//! The L1 byte budget bounds the process's memory when values compress
//! well: an entry is charged for its decoded value, not only for its
//! LZ4-compressed bytes. (One test per file: RSS is process-wide.)

#![cfg(all(target_os = "linux", target_env = "gnu"))]
#![allow(
    clippy::unwrap_used,
    reason = "test helpers too: a failed setup step must fail the test loudly"
)]

#[path = "memory_support/rss.rs"]
mod rss;

use rss::{assert_set_values_bounded, repetitive_text, MIB};

#[test]
fn compressible_values_stay_within_the_budget() {
    assert_set_values_bounded(
        "compressible values via TieredCache::set",
        8 * MIB,
        6_000,
        8 * 1024,
        repetitive_text,
    );
}
