//! The interop/v1 value format: exactly the family's document, read back
//! strictly.

use serde::{Deserialize, Serialize};

use super::*;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct User {
    name: String,
    age: u32,
    tags: Vec<String>,
    #[serde(with = "serde_bytes")]
    avatar: Vec<u8>,
    manager: Option<Box<User>>,
    role: Role,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum Role {
    Admin,
    Member { team: String },
}

fn user() -> User {
    User {
        name: "ada".into(),
        age: 36,
        tags: vec!["x".into()],
        avatar: vec![0, 1, 2],
        manager: None,
        role: Role::Member {
            team: "core".into(),
        },
    }
}

fn interop<T: Serialize>(value: &T) -> Bytes {
    Codec::default()
        .encode_as(ValueFormat::Interop, value)
        .unwrap()
}

fn read<T: DeserializeOwned>(bytes: &[u8]) -> Result<T> {
    Codec::default().decode_as(ValueFormat::Interop, bytes)
}

#[test]
fn a_struct_is_a_map_with_sorted_field_names_and_no_envelope() {
    let doc = interop(&user());
    // fixmap of 6, first key "age" (sorted), bytes as bin, None as nil,
    // a struct variant as a one-entry map.
    assert_eq!(doc[0], 0x86);
    assert_eq!(&doc[1..5], b"\xa3age");
    let keys_in_order = [
        &b"\xa3age"[..],
        b"\xa6avatar",
        b"\xa7manager\xc0",
        b"\xa4name",
        b"\xa4role\x81\xa6Member\x81\xa4team",
        b"\xa4tags",
    ];
    let at = |needle: &[u8]| doc.windows(needle.len()).position(|w| w == needle).unwrap();
    let places: Vec<usize> = keys_in_order.iter().map(|k| at(k)).collect();
    assert!(places.windows(2).all(|p| p[0] < p[1]), "{places:?}");
    assert!(
        doc.windows(5).any(|w| w == b"\xc4\x03\x00\x01\x02"),
        "bin 8"
    );
    assert_eq!(read::<User>(&doc).unwrap(), user());
    assert_eq!(interop(&Role::Admin)[..], b"\xa5Admin"[..]);
}

#[test]
fn floats_stay_floats_and_the_data_model_refuses_what_others_cannot_read() {
    assert_eq!(
        &interop(&2.0f64)[..],
        b"\xcb\x40\x00\x00\x00\x00\x00\x00\x00"
    );
    let codec = Codec::default();
    for bad in [f64::NAN, f64::INFINITY] {
        let err = codec.encode_as(ValueFormat::Interop, &bad).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Serialization, "{err}");
    }
    let map: std::collections::HashMap<u32, u32> = [(1, 2)].into();
    assert!(codec.encode_as(ValueFormat::Interop, &map).is_err());
}

#[test]
fn anything_but_exactly_one_document_of_the_type_is_refused() {
    let doc = interop(&user()).to_vec();
    let mut trailing = doc.clone();
    trailing.push(0xc0);
    assert!(read::<User>(&trailing).is_err(), "trailing bytes");
    assert!(read::<User>(&doc[..doc.len() - 1]).is_err(), "cut short");
    assert!(read::<User>(b"").is_err(), "empty");
    assert!(read::<u64>(&interop(&"text")).is_err(), "another type");
    // A cachekit-py auto-mode frame starts with "CK": the integer 67 to a
    // MessagePack reader, so it is named rather than decoded.
    let err = read::<u64>(b"CK\x03rest").unwrap_err();
    assert!(err.to_string().contains("auto-mode"), "{err}");
    assert_eq!(read::<u64>(b"C").unwrap(), 67, "one byte is not the frame");
    // An envelope is not an interop document either.
    let envelope = Codec::default().encode(&user()).unwrap();
    assert!(read::<User>(&envelope).is_err());
}

#[test]
fn interop_values_keep_the_size_and_depth_limits() {
    let small = Codec::new(CodecConfig::default().max_value_size(8));
    let err = small
        .encode_as(ValueFormat::Interop, &"a string longer than 8")
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TooLarge);
    let big = interop(&"a string longer than 8");
    assert_eq!(
        small
            .decode_as::<String>(ValueFormat::Interop, &big)
            .unwrap_err()
            .kind(),
        ErrorKind::TooLarge
    );
    let shallow = Codec::new(CodecConfig::default().max_depth(2));
    let deep = interop(&vec![vec![vec![1u8]]]);
    assert!(shallow
        .encode_as(ValueFormat::Interop, &vec![vec![vec![1u8]]])
        .is_err());
    assert!(shallow
        .decode_as::<Vec<Vec<Vec<u8>>>>(ValueFormat::Interop, &deep)
        .is_err());
    // Nesting hostile input far past the limit costs a scan, not a stack.
    let hostile = vec![0x91u8; 1 << 20];
    assert!(read::<serde_json::Value>(&hostile).is_err());
}

#[test]
fn types_with_a_text_form_are_written_and_read_as_text() {
    let addr: std::net::IpAddr = "192.0.2.7".parse().unwrap();
    let doc = interop(&addr);
    assert_eq!(&doc[..], b"\xa9192.0.2.7");
    assert_eq!(read::<std::net::IpAddr>(&doc).unwrap(), addr);
    let pair = (addr, std::time::Duration::from_millis(1500));
    assert_eq!(
        read::<(std::net::IpAddr, std::time::Duration)>(&interop(&pair)).unwrap(),
        pair
    );
}
