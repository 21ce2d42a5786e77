//! A `#[cached]` function remembers the L1 entry of each recent call and
//! reads a repeated call's value straight from it. These tests change the
//! entry behind the function's back (writes, deletes, local invalidation,
//! expiry, eviction, concurrent refreshes) and check that the function never
//! answers from an entry that has left L1.

use std::sync::atomic::{AtomicU32, Ordering::SeqCst};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use cachekit::__private::clock::{Clock, MockClock};
use cachekit::{cached, TieredCache};

const MINUTE: Option<Duration> = Some(Duration::from_secs(60));

fn l1() -> cachekit::Result<TieredCache> {
    TieredCache::builder().build()
}

/// `(id, run)`: which run of the body produced the value.
static RUNS: AtomicU32 = AtomicU32::new(0);

#[cached(backend = l1(), ttl = 60)]
fn versioned(id: u64) -> (u64, u32) {
    (id, RUNS.fetch_add(1, SeqCst))
}

fn key_of(id: u64) -> String {
    let keys = versioned_cache().keys().expect("the function is cached");
    keys.key(&(id,)).expect("a u64 always has a key")
}

fn cache() -> &'static TieredCache {
    versioned_cache().cache().expect("the function is cached")
}

#[test]
fn writes_deletes_and_invalidations_reach_a_remembered_call() {
    let first = versioned(1);
    assert_eq!(versioned(1), first, "a repeated call is a hit");
    assert_eq!(versioned_cache().stats().computes, 1);

    // Another writer of the same key, through the cache.
    cache()
        .set_blocking(&key_of(1), &(1_u64, 900_u32), MINUTE)
        .unwrap();
    assert_eq!(versioned(1), (1, 900));
    assert_eq!(versioned(1), (1, 900));

    // Another process's write, announced by invalidation.
    cache().invalidate_local(&key_of(1));
    let recomputed = versioned(1);
    assert_ne!(recomputed.1, 900);
    assert_eq!(versioned(1), recomputed);

    // A delete through the cache.
    assert!(cache().delete_blocking(&key_of(1)).unwrap());
    let again = versioned(1);
    assert!(again.1 > recomputed.1, "{again:?} after {recomputed:?}");

    // The function's own companions.
    let refreshed = versioned_refresh(1);
    assert!(refreshed.1 > again.1);
    assert_eq!(versioned(1), refreshed);
    assert!(versioned_invalidate(1).unwrap());
    assert!(versioned(1).1 > refreshed.1);
}

static SHORT_RUNS: AtomicU32 = AtomicU32::new(0);
static SHORT_CLOCK: OnceLock<MockClock> = OnceLock::new();

/// An L1 on a clock the test advances.
fn mocked_l1() -> cachekit::Result<TieredCache> {
    let (clock, mock) = Clock::mock();
    assert!(SHORT_CLOCK.set(mock).is_ok(), "built once");
    TieredCache::builder().clock(clock).build()
}

#[cached(backend = mocked_l1(), ttl = 40)]
async fn short_lived(id: u64) -> u32 {
    let _ = id;
    SHORT_RUNS.fetch_add(1, SeqCst)
}

#[tokio::test]
async fn a_remembered_entry_expires_with_its_ttl() {
    let first = short_lived(1).await;
    assert_eq!(short_lived(1).await, first);
    assert_eq!(short_lived(1).await, first, "the remembered entry serves");
    let clock = SHORT_CLOCK.get().expect("built by the first call");
    clock.advance(Duration::from_secs(39));
    assert_eq!(short_lived(1).await, first, "expired early");
    clock.advance(Duration::from_secs(1));
    let second = short_lived(1).await;
    assert_ne!(second, first, "served past its TTL");
    assert_eq!(short_lived(1).await, second);
}

fn tiny_l1() -> cachekit::Result<TieredCache> {
    TieredCache::builder().l1_max_bytes(64 * 1024).build()
}

#[cached(backend = tiny_l1(), ttl = 60)]
fn block(id: u64) -> Vec<u8> {
    vec![(id % 251) as u8; 4096]
}

#[test]
fn eviction_never_changes_an_answer() {
    // Far more than the 64 KiB budget holds: entries are evicted while
    // their calls are remembered.
    for round in 0..3 {
        for id in 0..200_u64 {
            let value = block(id);
            assert_eq!(value.len(), 4096, "round {round}");
            assert!(
                value.iter().all(|&b| u64::from(b) == id % 251),
                "round {round}"
            );
        }
        block_cache()
            .cache()
            .unwrap()
            .l1()
            .unwrap()
            .run_pending_tasks();
    }
    let l1 = block_cache().cache().unwrap().l1().unwrap();
    assert!(l1.weighted_size() <= l1.max_bytes());
}

static RACE_RUNS: AtomicU32 = AtomicU32::new(0);

#[cached(backend = l1(), ttl = 60)]
fn raced(id: u64) -> u32 {
    let _ = id;
    RACE_RUNS.fetch_add(1, SeqCst)
}

#[test]
fn after_a_refresh_returns_no_reader_sees_the_old_value() {
    raced(7);
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    // Readers keep the call hot (remembered) while values are replaced.
    let readers: Vec<_> = (0..3)
        .map(|_| {
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || {
                while !stop.load(SeqCst) {
                    raced(7);
                }
            })
        })
        .collect();
    for _ in 0..200 {
        let fresh = raced_refresh(7);
        // The refresh has returned: every call from now on sees at least it.
        for _ in 0..5 {
            let seen = raced(7);
            assert!(seen >= fresh, "saw {seen} after refresh to {fresh}");
        }
    }
    stop.store(true, SeqCst);
    for reader in readers {
        reader.join().unwrap();
    }
}
