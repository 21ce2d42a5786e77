#![allow(clippy::unwrap_used)] // Tests may unwrap: a panic is the failure report.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::ser::{SerializeMap, Serializer};
use serde::Serialize;

use super::*;

fn hex_of(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn args_hex<A: Serialize + ?Sized>(args: &A) -> String {
    hex_of(&canonical_args(args).unwrap())
}

fn invalid_message<T: std::fmt::Debug>(result: Result<T>) -> String {
    let err = result.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    err.message().to_owned()
}

/// Bytes that serialize through `serialize_bytes`, like `serde_bytes`.
struct Bytes<'a>(&'a [u8]);

impl Serialize for Bytes<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(self.0)
    }
}

/// A sequence whose length serde does not know up front.
struct Unsized(Vec<u32>);

impl Serialize for Unsized {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.iter().filter(|_| true))
    }
}

#[test]
fn segment_validation_table() {
    let cases: &[(&str, bool)] = &[
        ("users", true),
        ("a", true),
        ("0", true),
        ("get_user", true),
        ("v1.2-beta_3", true),
        (&"a".repeat(64), true),
        (&"a".repeat(65), false),
        ("", false),
        ("Users", false),
        ("get:user", false),
        ("users\n", false),
        ("\nusers", false),
        ("_users", false),
        (".users", false),
        ("-users", false),
        ("us ers", false),
        ("usérs", false),
        ("users/1", false),
    ];
    for (segment, ok) in cases {
        let result = validate_segment("namespace", segment);
        assert_eq!(result.is_ok(), *ok, "segment {segment:?}: {result:?}");
        if let Err(err) = result {
            assert_eq!(err.kind(), ErrorKind::InvalidInput);
            assert!(err.message().starts_with("invalid namespace "), "{err}");
            assert!(
                err.message().contains("^[a-z0-9][a-z0-9._-]{0,63}$"),
                "{err}"
            );
        }
    }
    let err = derive_key("users", "get:user", &()).unwrap_err();
    assert!(
        err.message().starts_with("invalid operation \"get:user\""),
        "{err}"
    );
}

#[test]
fn root_forms() {
    assert_eq!(args_hex(&()), "90");
    assert_eq!(args_hex(&Vec::<u8>::new()), "90");
    assert_eq!(args_hex(&(42,)), "912a");
    assert_eq!(args_hex(&[42_u8][..]), "912a");
    assert_eq!(args_hex(&vec![1, 2]), "920102");
    assert_eq!(args_hex(&Unsized(vec![1, 2])), "920102");
    let many: Vec<u32> = (0..16).collect();
    assert_eq!(args_hex(&Unsized(many.clone())), args_hex(&many));
    assert!(args_hex(&many).starts_with("dc0010"));
    let message = invalid_message(derive_key("t", "op", &42));
    assert!(
        message.contains("must serialize as a sequence"),
        "{message}"
    );
    invalid_message(canonical_args(&"abc"));
    invalid_message(canonical_args(&BTreeMap::from([("a", 1)])));
}

#[test]
fn integers_use_the_shortest_form_and_i128_bounds() {
    assert_eq!(
        args_hex(&(0_u8, -1_i8, 200_u8, -200_i16)),
        "9400ffccc8d1ff38"
    );
    assert_eq!(args_hex(&(300_i64,)), args_hex(&(300_u16,)));
    assert_eq!(args_hex(&(i128::from(i64::MIN),)), "91d38000000000000000");
    assert_eq!(args_hex(&(i128::from(u64::MAX),)), "91cfffffffffffffffff");
    assert_eq!(args_hex(&(u128::from(u64::MAX),)), "91cfffffffffffffffff");
    assert_eq!(args_hex(&(-5_i128, 7_u128)), "92fb07");
    let message = invalid_message(canonical_args(&(1, i128::from(i64::MIN) - 1)));
    assert!(message.starts_with("argument 1: "), "{message}");
    assert!(message.contains("below -2^63"), "{message}");
    let message = invalid_message(canonical_args(&(i128::from(u64::MAX) + 1,)));
    assert!(message.contains("above 2^64-1"), "{message}");
    let message = invalid_message(canonical_args(&(u128::from(u64::MAX) + 1,)));
    assert!(message.contains("above 2^64-1"), "{message}");
}

#[test]
fn floats_collapse_only_in_the_args_profile() {
    assert_eq!(args_hex(&(2.0_f64,)), args_hex(&(2_u8,)));
    assert_eq!(args_hex(&(2.0_f32,)), "9102");
    assert_eq!(args_hex(&(-0.0_f64, -3.0_f32)), "9200fd");
    // f32 is widened exactly, never reformatted through decimal.
    assert_eq!(args_hex(&(1.5_f32,)), "91cb3ff8000000000000");
    assert_eq!(
        args_hex(&(0.1_f32,)),
        format!("91cb{}", hex_of(&f64::from(0.1_f32).to_be_bytes()))
    );
    assert_eq!(
        hex_of(&canonical_value(&2.0_f32).unwrap()),
        "cb4000000000000000"
    );
    assert_eq!(hex_of(&canonical_value(&7_u8).unwrap()), "07");

    let message = invalid_message(derive_key("t", "op", &(1, f64::NAN)));
    assert_eq!(
        message,
        "argument 1: NaN is not allowed in cache key arguments"
    );
    let message = invalid_message(canonical_args(&(f32::INFINITY,)));
    assert_eq!(
        message,
        "argument 0: +Infinity is not allowed in cache key arguments"
    );
    let message = invalid_message(canonical_args(&(f64::NEG_INFINITY,)));
    assert!(message.contains("-Infinity"), "{message}");
    let message = invalid_message(canonical_value(&vec![f64::NAN]));
    assert_eq!(message, "NaN is not allowed in canonical values");
}

#[derive(Serialize)]
struct User {
    name: String,
    age: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    email: Option<String>,
}

#[derive(Serialize)]
struct UserId(u64);

#[derive(Serialize)]
struct Point(i32, i32);

#[derive(Serialize)]
struct Marker;

#[allow(dead_code)]
#[derive(Serialize)]
enum Query {
    All,
    ById(u64),
    Range(u32, u32),
    Filter { tag: String, limit: u8 },
}

#[test]
fn structs_encode_as_sorted_maps() {
    let user = User {
        name: "alice".into(),
        age: 30,
        email: None,
    };
    let map = serde_json::json!({"name": "alice", "age": 30});
    assert_eq!(args_hex(&(&user,)), args_hex(&(&map,)));
    assert_eq!(
        derive_key("users", "get", &(&user,)).unwrap(),
        derive_key("users", "get", &(&map,)).unwrap()
    );
    // The VALUE profile vector "issue_example_object".
    assert_eq!(
        hex_of(&canonical_value(&user).unwrap()),
        "82a36167651ea46e616d65a5616c696365"
    );
    assert_eq!(args_hex(&(UserId(7),)), "9107");
    assert_eq!(args_hex(&(Point(1, -1),)), "919201ff");
    assert_eq!(args_hex(&(Marker, None::<u8>, Some(5))), "93c0c005");
}

#[test]
fn enums_encode_as_names_and_single_entry_maps() {
    assert_eq!(args_hex(&(Query::All,)), "91a3416c6c");
    assert_eq!(args_hex(&(Query::ById(5),)), "9181a44279496405");
    assert_eq!(args_hex(&(Query::Range(1, 2),)), "9181a552616e6765920102");
    let filter = Query::Filter {
        tag: "x".into(),
        limit: 3,
    };
    let same = serde_json::json!({"Filter": {"tag": "x", "limit": 3}});
    assert_eq!(args_hex(&(&filter,)), args_hex(&(&same,)));
    assert!(args_hex(&(&filter,)).ends_with("82a56c696d697403a3746167a178"));
}

#[test]
fn maps_sort_at_every_level_regardless_of_insertion_order() {
    let forward: HashMap<String, HashMap<String, u32>> = (0..40)
        .map(|i| {
            (
                format!("k{i}"),
                (0..5).map(|j| (format!("n{j}"), j)).collect(),
            )
        })
        .collect();
    let mut backward = HashMap::new();
    for i in (0..40).rev() {
        let inner: HashMap<String, u32> = (0..5).rev().map(|j| (format!("n{j}"), j)).collect();
        backward.insert(format!("k{i}"), inner);
    }
    let sorted: BTreeMap<String, BTreeMap<String, u32>> = forward
        .iter()
        .map(|(k, v)| (k.clone(), v.iter().map(|(a, b)| (a.clone(), *b)).collect()))
        .collect();
    let expected = derive_key("t", "op", &(&sorted,)).unwrap();
    assert_eq!(derive_key("t", "op", &(&forward,)).unwrap(), expected);
    assert_eq!(derive_key("t", "op", &(&backward,)).unwrap(), expected);

    let mut btree = BTreeMap::new();
    for key in ["b", "a", "A", "é", "\u{10000}", "\u{ff61}"] {
        btree.insert(key, 1);
    }
    let json = serde_json::json!({"\u{10000}": 1, "b": 1, "\u{ff61}": 1, "A": 1, "é": 1, "a": 1});
    assert_eq!(args_hex(&(&btree,)), args_hex(&(&json,)));
    // Code-point order: U+FF61 before U+10000 (UTF-16 order would swap them).
    assert!(args_hex(&(&btree,)).contains("a3efbda101a4f090808001"));
}

#[derive(Serialize, PartialEq, Eq, PartialOrd, Ord)]
enum Lang {
    En,
    De,
}

/// Writes the same key twice, which no real map does.
struct DuplicateKeys;

impl Serialize for DuplicateKeys {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(2))?;
        map.serialize_entry("a", &1)?;
        map.serialize_entry("a", &2)?;
        map.end()
    }
}

#[test]
fn map_keys_must_be_strings() {
    let by_id = BTreeMap::from([(1_u32, "x")]);
    let message = invalid_message(canonical_args(&("ok", &by_id)));
    assert!(message.starts_with("argument 1: "), "{message}");
    assert!(message.contains("map keys in cache key arguments must be strings, got an integer"));
    let message = invalid_message(canonical_value(&HashMap::from([(true, 1)])));
    assert!(message.contains("got a bool"), "{message}");

    // Keys that serialize as strings are accepted and sorted as strings.
    let by_char = BTreeMap::from([('b', 1), ('a', 2)]);
    assert_eq!(args_hex(&(&by_char,)), "9182a16102a16201");
    let by_lang = BTreeMap::from([(Lang::En, 1), (Lang::De, 2)]);
    assert_eq!(args_hex(&(&by_lang,)), "9182a2446502a2456e01");

    let message = invalid_message(canonical_args(&(DuplicateKeys,)));
    assert!(message.contains("duplicate map key \"a\""), "{message}");
}

#[test]
fn errors_name_the_argument_and_the_field() {
    #[derive(Serialize)]
    struct Order {
        id: u64,
        price: f64,
    }
    let order = Order {
        id: 1,
        price: f64::NAN,
    };
    let message = invalid_message(derive_key("shop", "order", &("x", &order)));
    assert_eq!(
        message,
        "argument 1: in `price`: NaN is not allowed in cache key arguments"
    );
    let nested = serde_json::json!({"outer": {"inner": [1, u64::MAX]}});
    let mut nested_map: BTreeMap<&str, BTreeMap<&str, Vec<f32>>> = BTreeMap::new();
    nested_map.insert("outer", BTreeMap::from([("inner", vec![1.0, f32::NAN])]));
    let message = invalid_message(canonical_args(&(&nested, &nested_map)));
    assert_eq!(
        message,
        "argument 1: in `outer`: in `inner`: NaN is not allowed in cache key arguments"
    );
}

#[test]
fn sets_sort_by_encoding_and_deduplicate() {
    assert_eq!(args_hex(&(Set(vec![3, 1, 2]),)), "9193010203");
    assert_eq!(args_hex(&(Set((2, 2.0_f64)),)), "919102");
    assert_eq!(args_hex(&(Set(Vec::<u8>::new()),)), "9190");
    // Byte order of the encodings, not numeric order.
    assert_eq!(
        hex_of(&canonical_args(&(Set((-5, "a", 1.5)),)).unwrap()),
        "9193a161cb3ff8000000000000fb"
    );

    let words = [
        "pear", "apple", "fig", "kiwi", "plum", "lime", "date", "yuzu",
    ];
    let mut expected = None;
    for round in 0..8 {
        // Different capacities give different iteration orders.
        let mut set: HashSet<&&str> = HashSet::with_capacity(round * 16);
        set.extend(words.iter().rev().skip(round % 3).chain(words.iter()));
        let key = derive_key("t", "op", &(Set(&set),)).unwrap();
        assert_eq!(expected.get_or_insert_with(|| key.clone()), &key);
    }

    // Sets nest, and hold maps whose keys still get sorted.
    let inner = Set(vec![
        serde_json::json!({"b": 1, "a": 2}),
        serde_json::json!({"a": 2, "b": 1}),
    ]);
    assert_eq!(
        args_hex(&(Set(vec![&inner, &inner]),)),
        "919191".to_owned() + "82a16102a16201"
    );
    // A set at the root is an argument list in canonical order.
    assert_eq!(args_hex(&Set(vec![2, 1])), "920102");
    let message = invalid_message(canonical_args(&(Set(5),)));
    assert!(
        message.contains("keys::Set must wrap a collection"),
        "{message}"
    );

    // Other serializers see a plain sequence.
    assert_eq!(serde_json::to_string(&Set(vec![3, 1])).unwrap(), "[3,1]");
    assert_eq!(
        args_hex(&(BTreeSet::from([3, 1, 2]),)),
        args_hex(&(Set(vec![3, 1, 2]),))
    );
}

#[test]
fn bytes_are_bin_and_strings_are_str() {
    assert_eq!(
        args_hex(&(Bytes(&[0xde, 0xad]), "hi", 'é')),
        "93c402dead a26869 a2c3a9".replace(' ', "")
    );
    // A Vec<u8> is a sequence of integers to serde; use serde_bytes for bin.
    assert_eq!(args_hex(&(vec![1_u8, 2],)), "91920102");
    let long = "x".repeat(300);
    assert!(args_hex(&(&long,)).starts_with("91da012c"));
}

#[test]
fn timestamps_encode_as_epoch_seconds() {
    let whole = Timestamp::parse_rfc3339("2024-01-01T00:00:00Z").unwrap();
    assert_eq!(whole.unix_seconds(), 1_704_067_200);
    assert_eq!(args_hex(&(whole,)), "91ce65920080");
    let fractional = Timestamp::parse_rfc3339("2024-01-01T12:30:45.123456+00:00").unwrap();
    assert_eq!(args_hex(&(fractional,)), "91cb41d964ac1d47e6b4");
    // Below a microsecond is floored away.
    let nanos = Timestamp::parse_rfc3339("2024-01-01T12:30:45.123456999Z").unwrap();
    assert_eq!(nanos.subsec_nanos(), 123_456_999);
    assert_eq!(args_hex(&(nanos,)), args_hex(&(fractional,)));
    let sub_micro = Timestamp::from_unix(10, 999).unwrap();
    assert_eq!(args_hex(&(sub_micro,)), "910a");

    let pre = Timestamp::parse_rfc3339("1969-12-31T23:59:59.123456Z").unwrap();
    assert_eq!((pre.unix_seconds(), pre.subsec_nanos()), (-1, 123_456_000));
    assert_eq!(args_hex(&(pre,)), "91cbbfec0ca600b02928");

    let before = Timestamp::from(UNIX_EPOCH - Duration::from_millis(1500));
    assert_eq!(
        (before.unix_seconds(), before.subsec_nanos()),
        (-2, 500_000_000)
    );
    let after = Timestamp::from(UNIX_EPOCH + Duration::new(5, 7));
    assert_eq!((after.unix_seconds(), after.subsec_nanos()), (5, 7));
    let now = SystemTime::now();
    assert!(Timestamp::from(now) > Timestamp::UNIX_EPOCH);

    for naive in ["2024-01-01T00:00:00", "2024-01-01", "yesterday", ""] {
        let message = invalid_message(Timestamp::parse_rfc3339(naive));
        assert!(message.contains("UTC offset"), "{message}");
    }
    invalid_message(Timestamp::from_unix(0, 1_000_000_000));
}

#[test]
fn key_builder_matches_derive_key() {
    let builder = KeyBuilder::new("users", "get_user").unwrap();
    assert_eq!(builder.namespace(), "users");
    assert_eq!(builder.operation(), "get_user");
    assert_eq!(builder.prefix(), "users:get_user:");
    let key = builder.key(&(42,)).unwrap();
    assert_eq!(key, derive_key("users", "get_user", &(42,)).unwrap());
    assert_eq!(
        key,
        "users:get_user:61598716255080080f6456eb065c2e51badfaa4320b0efe97469c29cffee8875"
    );
    assert_eq!(key.len(), key.capacity());
    assert_eq!(args_hash(&(42,)).unwrap(), key["users:get_user:".len()..]);
    invalid_message(KeyBuilder::new("Users", "get"));
    invalid_message(KeyBuilder::new("users", ""));
    invalid_message(builder.key(&(f64::NAN,)));
}

/// An argument whose `Serialize` derives another key mid-encoding.
struct Reentrant;

impl Serialize for Reentrant {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let inner = derive_key("inner", "op", &(1, "x")).map_err(serde::ser::Error::custom)?;
        s.serialize_str(&inner)
    }
}

#[test]
fn encoder_reuse_survives_errors_reentrancy_and_large_inputs() {
    let small = derive_key("t", "op", &(1, "a")).unwrap();
    assert!(derive_key("t", "op", &(BTreeMap::from([("a", 1.0), ("z", f64::NAN)]),)).is_err());
    assert_eq!(derive_key("t", "op", &(1, "a")).unwrap(), small);

    let big = vec!["y".repeat(1000); 200];
    let big_key = derive_key("t", "op", &(&big,)).unwrap();
    assert_eq!(big_key, derive_key("t", "op", &(big.clone(),)).unwrap());
    assert_eq!(derive_key("t", "op", &(1, "a")).unwrap(), small);

    let inner = derive_key("inner", "op", &(1, "x")).unwrap();
    assert_eq!(
        derive_key("t", "op", &(Reentrant, 2)).unwrap(),
        derive_key("t", "op", &(inner, 2)).unwrap()
    );
}
