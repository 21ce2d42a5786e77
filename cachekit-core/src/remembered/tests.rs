use std::time::Duration;

use super::*;
use crate::TieredCache;

const MINUTE: Option<Duration> = Some(Duration::from_secs(60));

/// What a lookup through the remembered entry found.
#[derive(Debug)]
enum Lookup<T> {
    Hit(T),
    Key(CallKey),
}

/// The probe as a caller uses it, in terms easy to assert on.
trait Probing {
    fn lookup<A: Serialize + ?Sized, T>(
        &self,
        args: &A,
        read: impl FnOnce(&L1Ref) -> Option<T>,
    ) -> Result<Lookup<T>>;
    fn call_key<A: Serialize + ?Sized>(&self, args: &A) -> Result<CallKey>;
    fn key<A: Serialize + ?Sized>(&self, args: &A) -> Result<Arc<str>> {
        self.call_key(args).map(|call| call.shared().clone())
    }
}

impl Probing for RecentCalls {
    fn lookup<A: Serialize + ?Sized, T>(
        &self,
        args: &A,
        read: impl FnOnce(&L1Ref) -> Option<T>,
    ) -> Result<Lookup<T>> {
        Ok(match self.probe_args(Want::Entry, args)? {
            Probe::Remembered(entry) => match entry.entry().and_then(read) {
                Some(value) => {
                    entry.hit();
                    Lookup::Hit(value)
                }
                None => Lookup::Key(entry.forget().expect("slot kept")),
            },
            Probe::Key(call) => Lookup::Key(call.expect("a key")),
        })
    }

    fn call_key<A: Serialize + ?Sized>(&self, args: &A) -> Result<CallKey> {
        match self.probe_args(Want::Key, args)? {
            Probe::Key(Some(call)) => Ok(call),
            other => panic!("asked for the key, got {other:?}"),
        }
    }
}

fn builder() -> KeyBuilder {
    KeyBuilder::new("users", "get_user").unwrap()
}

fn cache() -> TieredCache {
    TieredCache::builder().build().unwrap()
}

/// Looks `args` up, reading a remembered entry as a `u64` from `cache`.
fn lookup(keys: &RecentCalls, cache: &TieredCache, args: &impl Serialize) -> Lookup<u64> {
    keys.lookup(args, |entry| cache.get_ref::<u64>(entry))
        .unwrap()
}

fn call_key(found: Lookup<u64>) -> CallKey {
    match found {
        Lookup::Key(call) => call,
        Lookup::Hit(value) => panic!("unexpected hit: {value}"),
    }
}

/// Stores `value` under `args`' key and remembers the entry, as a caller
/// does after its second call (the first only records the key).
fn store_and_remember(keys: &RecentCalls, cache: &TieredCache, args: &impl Serialize, value: u64) {
    let call = call_key(lookup(keys, cache, args));
    cache.set_blocking(call.key(), &value, MINUTE).unwrap();
    keys.remember_entry(&call, &cache.l1_ref(call.key()).unwrap());
}

#[test]
fn gives_the_builders_keys_first_time_and_after() {
    let keys = RecentCalls::new(builder());
    for round in 0..3 {
        for id in 0..1_000_u64 {
            let want = builder().key(&(id, "en")).unwrap();
            assert_eq!(&*keys.key(&(id, "en")).unwrap(), want, "round {round}");
        }
    }
}

#[test]
fn equal_encodings_share_a_key_and_different_ones_never_do() {
    let keys = RecentCalls::new(builder());
    // 2.0 and 2 encode identically (interop rule), so they must agree.
    assert_eq!(keys.key(&(2.0,)).unwrap(), keys.key(&(2,)).unwrap());
    // Fill every slot, then make sure nothing returns another's key.
    let all: Vec<_> = (0..2_000_u64).map(|i| keys.key(&(i,)).unwrap()).collect();
    for (i, key) in all.iter().enumerate().rev() {
        assert_eq!(keys.key(&(i as u64,)).unwrap(), *key);
    }
    let distinct: std::collections::HashSet<_> = all.iter().collect();
    assert_eq!(distinct.len(), all.len());
}

#[test]
fn long_arguments_are_derived_not_remembered() {
    let keys = RecentCalls::new(builder());
    let long = "x".repeat(MAX_REMEMBERED_ARGS * 2);
    let want = builder().key(&(&long,)).unwrap();
    assert_eq!(&*keys.key(&(&long,)).unwrap(), want);
    let call = call_key(keys.lookup(&(&long,), |_| Some(0_u64)).unwrap());
    assert!(!call.is_repeat() && call.from.slot().is_none());
    let untouched = keys
        .tables
        .threads
        .get()
        .is_none_or(|t| t.borrow().slots.iter().all(Option::is_none));
    assert!(untouched);
}

#[test]
fn a_remembered_entry_answers_until_it_leaves_l1() {
    let (cache, keys) = (cache(), RecentCalls::new(builder()));
    assert!(!call_key(lookup(&keys, &cache, &(1,))).is_repeat());
    store_and_remember(&keys, &cache, &(1,), 10);
    assert!(matches!(lookup(&keys, &cache, &(1,)), Lookup::Hit(10)));
    assert_eq!(keys.hits(), 1);

    // Replaced in L1: the old entry stops answering, the key stays.
    let key = keys.key(&(1,)).unwrap();
    cache.set_blocking(&key, &11_u64, MINUTE).unwrap();
    let call = call_key(lookup(&keys, &cache, &(1,)));
    assert!(call.is_repeat());
    assert_eq!(call.key(), &*key);
    assert_eq!(
        keys.tables.threads.get().unwrap().borrow().held,
        0,
        "released"
    );
    keys.remember_entry(&call, &cache.l1_ref(&key).unwrap());
    assert!(matches!(lookup(&keys, &cache, &(1,)), Lookup::Hit(11)));
    assert_eq!(keys.hits(), 2);
}

#[test]
fn asking_for_the_key_keeps_the_remembered_entry() {
    let (cache, keys) = (cache(), RecentCalls::new(builder()));
    let _ = lookup(&keys, &cache, &(5,));
    store_and_remember(&keys, &cache, &(5,), 50);
    let want = builder().key(&(5,)).unwrap();
    assert_eq!(&*keys.key(&(5,)).unwrap(), want);
    let call = keys.call_key(&(5,)).unwrap();
    assert!(call.is_repeat());
    assert_eq!(call.key(), want);
    assert!(matches!(lookup(&keys, &cache, &(5,)), Lookup::Hit(50)));
}

#[test]
fn remembers_an_entry_for_its_own_arguments_only() {
    let (cache, keys) = (cache(), RecentCalls::new(builder()));
    let _ = lookup(&keys, &cache, &(1,));
    let call = call_key(lookup(&keys, &cache, &(1,)));
    cache.set_blocking(call.key(), &1_u64, MINUTE).unwrap();
    let entry = cache.l1_ref(call.key()).unwrap();

    // Other arguments take over the slot: the old call's entry must not
    // be remembered for them.
    let other = (2..100_000_u64)
        .find(|id| call_key(lookup(&keys, &cache, &(*id,))).from.slot() == call.from.slot())
        .expect("some argument shares the slot");
    keys.remember_entry(&call, &entry);
    let taken = call_key(lookup(&keys, &cache, &(other,)));
    assert_ne!(taken.key(), call.key());
    assert!(matches!(lookup(&keys, &cache, &(other,)), Lookup::Key(_)));
}

#[test]
fn each_thread_remembers_its_own_entries() {
    let (cache, keys) = (cache(), RecentCalls::new(builder()));
    let _ = lookup(&keys, &cache, &(7,));
    store_and_remember(&keys, &cache, &(7,), 70);
    assert!(matches!(lookup(&keys, &cache, &(7,)), Lookup::Hit(70)));
    std::thread::scope(|s| {
        s.spawn(|| {
            let call = call_key(lookup(&keys, &cache, &(7,)));
            assert!(!call.is_repeat(), "another thread's table");
            assert_eq!(call.key(), &*builder().key(&(7,)).unwrap());
            // A remember with a key this thread's table does not hold
            // (here: a fresh one) changes nothing.
            let stranger = CallKey {
                key: call.key().into(),
                ..call.clone()
            };
            keys.remember_entry(&stranger, &cache.l1_ref(call.key()).unwrap());
            assert!(matches!(lookup(&keys, &cache, &(7,)), Lookup::Key(_)));
        });
    });
}

#[test]
fn values_beyond_the_budget_are_held_weakly() {
    let (cache, keys) = (cache(), RecentCalls::new(builder()));
    // Random bytes: LZ4 would shrink a repeated one below the budget.
    let mut rng = fastrand::Rng::with_seed(7);
    let big: Vec<u8> = (0..HELD_BYTES).map(|_| rng.u8(..)).collect();
    let _ = lookup(&keys, &cache, &(1,));
    let call = call_key(lookup(&keys, &cache, &(1,)));
    cache.set_blocking(call.key(), &big, MINUTE).unwrap();
    let entry = cache.l1_ref(call.key()).unwrap();
    keys.remember_entry(&call, &entry);
    {
        let table = keys.tables.threads.get().unwrap().borrow();
        assert_eq!(table.held, 0);
        let slot = table
            .slots
            .iter()
            .flatten()
            .find(|s| Arc::ptr_eq(&s.key, &call.key));
        assert!(matches!(slot.unwrap().entry, Held::Weak(_)));
    }
    // Still answers while L1 keeps it.
    let got = keys.lookup(&(1,), |e| cache.get_ref::<Vec<u8>>(e)).unwrap();
    assert!(matches!(got, Lookup::Hit(v) if v == big));

    // A small one fits the budget and is held strongly.
    let _ = lookup(&keys, &cache, &(2,));
    store_and_remember(&keys, &cache, &(2,), 2);
    let held = keys.tables.threads.get().unwrap().borrow().held;
    assert!(held > 0 && held <= HELD_BYTES, "held {held}");
}

#[test]
fn a_read_that_calls_back_gets_a_derived_key() {
    let (cache, keys) = (cache(), RecentCalls::new(builder()));
    let _ = lookup(&keys, &cache, &(3,));
    store_and_remember(&keys, &cache, &(3,), 3);
    let got = keys.lookup(&(3,), |entry| {
        // The table is in use: the inner lookup must not panic and must
        // still give the right key.
        let inner = call_key(lookup(&keys, &cache, &(3,)));
        assert!(inner.from.slot().is_none());
        assert_eq!(inner.key(), &*builder().key(&(3,)).unwrap());
        cache.get_ref::<u64>(entry)
    });
    assert!(matches!(got, Ok(Lookup::Hit(3))));
}

#[test]
fn errors_are_the_builders() {
    let keys = RecentCalls::new(builder());
    let err = keys.key(&(f64::NAN,)).unwrap_err();
    assert_eq!(
        err.to_string(),
        builder().key(&(f64::NAN,)).unwrap_err().to_string()
    );
    let err = keys.lookup(&(f64::NAN,), |_| Some(())).unwrap_err();
    assert_eq!(
        err.to_string(),
        builder().key(&(f64::NAN,)).unwrap_err().to_string()
    );
}

#[test]
fn the_inline_compare_agrees_with_slice_equality() {
    let base: Vec<u8> = (0..40_u8).map(|b| b.wrapping_mul(37)).collect();
    for len in 0..base.len() {
        let a = &base[..len];
        assert!(super::same_bytes(a, a), "equal, {len} bytes");
        for at in 0..len {
            let mut b = a.to_vec();
            b[at] ^= 0x01;
            assert!(!super::same_bytes(a, &b), "byte {at} of {len} differs");
        }
        if len > 0 {
            assert!(
                !super::same_bytes(a, &base[..len - 1]),
                "lengths {len} and {}",
                len - 1
            );
        }
    }
}

#[test]
fn hits_sum_every_threads_tables_including_finished_threads() {
    let keys = RecentCalls::new(builder());
    let cache = cache();
    std::thread::scope(|s| {
        for t in 0..4_u64 {
            let (keys, cache) = (&keys, &cache);
            s.spawn(move || {
                // Each thread's own table learns the key, then the entry.
                lookup(keys, cache, &(t,));
                store_and_remember(keys, cache, &(t,), t);
                for _ in 0..10 {
                    assert!(matches!(lookup(keys, cache, &(t,)), Lookup::Hit(v) if v == t));
                }
            });
        }
    });
    // All four threads have exited; their counts remain.
    assert_eq!(keys.hits(), 40);
    // (This thread may have taken over a finished thread's table, with its
    // remembered entry: ids no thread used are not remembered anywhere.)
    assert!(matches!(lookup(&keys, &cache, &(99_u64,)), Lookup::Key(_)));
    assert_eq!(
        keys.hits(),
        40,
        "a lookup without a remembered entry is no hit"
    );
}

/// A weak reference to `key`'s entry lets go once L1 deletes it and moka
/// has freed it (lazily, epoch-based: keep it busy until it has), unless
/// something else still holds the entry.
fn freed_after_delete(cache: &TieredCache, key: &str) -> bool {
    let weak = cache.l1_ref(key).unwrap().downgrade();
    cache.delete_blocking(key).unwrap();
    (0..1_000_u64).any(|i| {
        cache
            .set_blocking(&format!("other{i}"), &i, MINUTE)
            .unwrap();
        cache.l1().unwrap().run_pending_tasks();
        weak.upgrade().is_none()
    })
}

#[test]
fn a_thread_lets_its_remembered_entries_go_when_it_exits() {
    let (cache, keys) = (cache(), Arc::new(RecentCalls::new(builder())));
    let key = std::thread::spawn({
        let (cache, keys) = (cache.clone(), keys.clone());
        move || {
            let _ = lookup(&keys, &cache, &(5,));
            store_and_remember(&keys, &cache, &(5,), 50);
            assert!(matches!(lookup(&keys, &cache, &(5,)), Lookup::Hit(50)));
            keys.call_key(&(5,)).unwrap().key().to_owned()
        }
    })
    .join()
    .unwrap();
    assert!(
        freed_after_delete(&cache, &key),
        "an exited thread's table still holds the entry it remembered"
    );
}

/// Stores `value` under `arg`'s key and remembers the entry; whether the
/// slot holds it strongly.
fn remember_held_strongly(
    keys: &RecentCalls,
    cache: &TieredCache,
    arg: u64,
    value: &Vec<u8>,
) -> bool {
    let _ = lookup(keys, cache, &(arg,));
    let call = call_key(lookup(keys, cache, &(arg,)));
    cache.set_blocking(call.key(), value, MINUTE).unwrap();
    keys.remember_entry(&call, &cache.l1_ref(call.key()).unwrap());
    let table = keys.tables.threads.get().unwrap().borrow();
    let slot = table
        .slots
        .iter()
        .flatten()
        .find(|s| Arc::ptr_eq(&s.key, &call.key));
    matches!(slot.unwrap().entry, Held::Strong(..))
}

#[test]
fn remembered_entries_share_a_fixed_share_of_the_l1_budget() {
    // 64 KiB of L1: a sixteenth, 4 KiB, may be held by remembered entries,
    // for every function (key cache) and thread on it together.
    let cache = TieredCache::builder()
        .l1_max_bytes(64 << 10)
        .build()
        .unwrap();
    let pins = cache.l1().unwrap().pins().clone();
    let mut rng = fastrand::Rng::with_seed(9);
    // About 2.5 KiB charged: one fits, two do not.
    let value: Vec<u8> = (0..1_000).map(|_| rng.u8(..)).collect();
    let first = RecentCalls::for_cache(builder(), &cache);
    let second = RecentCalls::for_cache(KeyBuilder::new("users", "other").unwrap(), &cache);
    assert!(remember_held_strongly(&first, &cache, 1, &value));
    let held = pins.held();
    assert!(held > 2_000 && held <= 4096, "held {held} bytes");
    // Each thread's own limit (64 KiB) would hold it; the shared one not.
    assert!(!remember_held_strongly(&second, &cache, 2, &value));
    assert_eq!(pins.held(), held);
    drop(first);
    assert_eq!(pins.held(), 0, "a dropped key cache gives its share back");
    assert!(remember_held_strongly(&second, &cache, 3, &value));
}
