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

use rss::{assert_set_values_bounded, random_letters, MIB};

#[test]
fn incompressible_values_stay_within_the_budget() {
    assert_set_values_bounded(
        "incompressible values via TieredCache::set",
        8 * MIB,
        6_000,
        8 * 1024,
        random_letters,
    );
}
