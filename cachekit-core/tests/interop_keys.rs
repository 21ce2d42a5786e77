//! The cachekit interop/v1 conformance vectors, byte for byte.
//!
//! `interop-mode.json` is shared by every cachekit implementation. Each key
//! vector's arguments are rebuilt as a serde value (keeping the JSON map
//! order, so the encoder's own sorting is what gets tested) and must give
//! the same canonical bytes, hash and key; each error vector must be
//! rejected; each value vector must give the same canonical value bytes.

use std::fmt;
use std::path::PathBuf;

use cachekit_core::keys::{
    args_hash, canonical_args, canonical_value, derive_key, KeyBuilder, Set, Timestamp,
};
use cachekit_core::{Codec, ErrorKind, ValueFormat};
use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::ser::{SerializeMap, SerializeSeq, Serializer};
use serde::Serialize;

/// JSON as the file spells it, maps in file order (serde_json's own `Value`
/// sorts keys unless a feature is enabled, which would do the encoder's
/// sorting for it).
#[derive(Debug)]
enum Json {
    Null,
    Bool(bool),
    Int(i128),
    Str(String),
    Array(Vec<Json>),
    Object(Vec<(String, Json)>),
}

impl Json {
    fn get(&self, name: &str) -> Option<&Json> {
        match self {
            Json::Object(entries) => entries.iter().find(|(k, _)| k == name).map(|(_, v)| v),
            _ => None,
        }
    }

    fn as_str(&self) -> Option<&str> {
        match self {
            Json::Str(text) => Some(text),
            _ => None,
        }
    }

    fn as_array(&self) -> Option<&[Json]> {
        match self {
            Json::Array(items) => Some(items),
            _ => None,
        }
    }
}

impl<'de> Deserialize<'de> for Json {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(JsonVisitor)
    }
}

struct JsonVisitor;

impl<'de> Visitor<'de> for JsonVisitor {
    type Value = Json;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("JSON without fractional numbers")
    }

    fn visit_unit<E>(self) -> Result<Json, E> {
        Ok(Json::Null)
    }

    fn visit_bool<E>(self, v: bool) -> Result<Json, E> {
        Ok(Json::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Json, E> {
        Ok(Json::Int(v.into()))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Json, E> {
        Ok(Json::Int(v.into()))
    }

    fn visit_str<E>(self, v: &str) -> Result<Json, E> {
        Ok(Json::Str(v.to_owned()))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Json, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Json::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Json, A::Error> {
        let mut entries = Vec::new();
        while let Some(entry) = map.next_entry::<String, Json>()? {
            entries.push(entry);
        }
        Ok(Json::Object(entries))
    }
}

/// A vector argument, typed as the tagged JSON describes it.
#[derive(Debug)]
enum Arg {
    Null,
    Bool(bool),
    Int(i128),
    Float(f64),
    Str(String),
    Bytes(Vec<u8>),
    Array(Vec<Arg>),
    /// Entries in file order.
    Map(Vec<(String, Arg)>),
    Set(Vec<Arg>),
    Time(Timestamp),
}

impl Serialize for Arg {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Arg::Null => s.serialize_none(),
            Arg::Bool(b) => s.serialize_bool(*b),
            Arg::Int(i) => s.serialize_i128(*i),
            Arg::Float(f) => s.serialize_f64(*f),
            Arg::Str(text) => s.serialize_str(text),
            Arg::Bytes(bytes) => s.serialize_bytes(bytes),
            Arg::Array(items) => {
                let mut seq = s.serialize_seq(Some(items.len()))?;
                for item in items {
                    seq.serialize_element(item)?;
                }
                seq.end()
            }
            Arg::Map(entries) => {
                let mut map = s.serialize_map(Some(entries.len()))?;
                for (key, value) in entries {
                    map.serialize_entry(key, value)?;
                }
                map.end()
            }
            Arg::Set(items) => Set(items).serialize(s),
            Arg::Time(at) => at.serialize(s),
        }
    }
}

fn decode_hex(text: &str) -> Vec<u8> {
    assert!(text.len().is_multiple_of(2), "odd-length hex {text:?}");
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).expect("hex digit"))
        .collect()
}

fn encode_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Converts tagged JSON. `Err` only where the input itself is rejected at
/// conversion (an unparseable `$datetime`), which error vectors accept.
fn convert(value: &Json) -> Result<Arg, String> {
    Ok(match value {
        Json::Null => Arg::Null,
        Json::Bool(b) => Arg::Bool(*b),
        Json::Int(i) => Arg::Int(*i),
        Json::Str(text) => Arg::Str(text.clone()),
        Json::Array(items) => Arg::Array(items.iter().map(convert).collect::<Result<_, _>>()?),
        Json::Object(entries) => match entries.as_slice() {
            [(tag, inner)] if tag.starts_with('$') => convert_tagged(tag, inner)?,
            _ => Arg::Map(
                entries
                    .iter()
                    .map(|(k, v)| Ok((k.clone(), convert(v)?)))
                    .collect::<Result<_, String>>()?,
            ),
        },
    })
}

fn convert_tagged(tag: &str, inner: &Json) -> Result<Arg, String> {
    let text = || {
        inner
            .as_str()
            .unwrap_or_else(|| panic!("{tag} holds a string"))
    };
    Ok(match tag {
        "$int" => Arg::Int(text().parse().expect("$int fits i128")),
        // Rust's parser agrees with Python and JS on "nan" and "1e999".
        "$float" => Arg::Float(text().parse().expect("$float literal")),
        "$bytes" => Arg::Bytes(decode_hex(text())),
        "$uuid" => Arg::Str(text().to_lowercase()),
        "$datetime" => Arg::Time(Timestamp::parse_rfc3339(text()).map_err(|e| e.to_string())?),
        "$set" => Arg::Set(
            inner
                .as_array()
                .expect("$set holds an array")
                .iter()
                .map(convert)
                .collect::<Result<_, _>>()?,
        ),
        other => panic!("unknown tag {other}: update this test for the new vectors"),
    })
}

fn field<'a>(vector: &'a Json, name: &str) -> &'a str {
    vector
        .get(name)
        .and_then(Json::as_str)
        .unwrap_or_else(|| panic!("vector {vector:?} lacks string field {name}"))
}

fn args_of<'a>(vector: &'a Json, name: &str) -> &'a Json {
    vector
        .get(name)
        .unwrap_or_else(|| panic!("vector {} lacks {name}", field(vector, "name")))
}

/// The suite's copy in this repository (so a clone alone can run it).
fn vendored_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/vectors/interop-mode.json")
}

fn load_vectors() -> Json {
    let path = vendored_path();
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "cannot read the interop vectors at {}: {e}; they are required, not optional",
            path.display()
        )
    });
    serde_json::from_str(&text).expect("interop-mode.json is valid JSON")
}

/// Where the cachekit family publishes the suite, beside the repository in
/// the project's workspace. When it is there, the vendored copy must match.
#[test]
fn vendored_vectors_match_the_published_suite() {
    let published =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/vectors/interop-mode.json");
    let Ok(published) = std::fs::read(&published) else {
        eprintln!("note: no published suite beside the repository; checked the vendored copy only");
        return;
    };
    let vendored = std::fs::read(vendored_path()).expect("vendored vectors");
    assert!(
        published == vendored,
        "tests/vectors/interop-mode.json differs from the published suite: copy the new one in"
    );
}

fn list<'a>(vectors: &'a Json, name: &str) -> &'a [Json] {
    let list = vectors
        .get(name)
        .and_then(Json::as_array)
        .unwrap_or_else(|| panic!("interop-mode.json lacks the {name} list"));
    assert!(!list.is_empty(), "{name} is empty");
    list
}

#[test]
fn interop_vectors() {
    let vectors = load_vectors();
    let mut failures = Vec::new();
    let mut checked = 0;

    let keys = list(&vectors, "key_vectors");
    for v in keys {
        let name = field(v, "name");
        let args = convert(args_of(v, "args")).unwrap_or_else(|e| panic!("{name}: {e}"));
        let (ns, op) = (field(v, "namespace"), field(v, "operation"));
        let canonical = canonical_args(&args).map(|b| encode_hex(&b));
        let hash = args_hash(&args);
        let key = derive_key(ns, op, &args);
        let built = KeyBuilder::new(ns, op).and_then(|b| b.key(&args));
        let expected_key = field(v, "expected_key");
        match (canonical, hash, key, built) {
            (Ok(c), Ok(h), Ok(k), Ok(b))
                if c == field(v, "canonical_args_hex")
                    && h == field(v, "args_hash")
                    && k == expected_key
                    && b == expected_key => {}
            other => failures.push(format!("key vector {name}: got {other:?}")),
        }
        checked += 1;
    }

    let errors = list(&vectors, "error_vectors");
    for v in errors {
        let name = field(v, "name");
        let ns = v.get("namespace").and_then(Json::as_str).unwrap_or("t");
        let op = v.get("operation").and_then(Json::as_str).unwrap_or("op");
        let segment_case = v.get("namespace").is_some() || v.get("operation").is_some();
        match convert(args_of(v, "args")) {
            Err(reason) => {
                if segment_case {
                    failures.push(format!(
                        "error vector {name}: args should be valid: {reason}"
                    ));
                }
            }
            Ok(args) => match derive_key(ns, op, &args) {
                Ok(key) => failures.push(format!("error vector {name}: accepted as {key}")),
                Err(err) if err.kind() != ErrorKind::InvalidInput => {
                    failures.push(format!("error vector {name}: wrong kind: {err}"));
                }
                // The rejection must be for the reason the vector tests.
                Err(err) if segment_case && !err.message().starts_with("invalid ") => {
                    failures.push(format!(
                        "error vector {name}: rejected for another reason: {err}"
                    ));
                }
                Err(_) => {}
            },
        }
        checked += 1;
    }

    let values = list(&vectors, "value_vectors");
    for v in values {
        let name = field(v, "name");
        let value = convert(args_of(v, "value")).unwrap_or_else(|e| panic!("{name}: {e}"));
        match canonical_value(&value).map(|b| encode_hex(&b)) {
            Ok(hex) if hex == field(v, "canonical_msgpack_hex") => {}
            other => failures.push(format!("value vector {name}: got {other:?}")),
        }
        // What an interop cache stores is that document, and it reads it back.
        let codec = Codec::default();
        match codec.encode_as(ValueFormat::Interop, &value) {
            Ok(stored) if encode_hex(&stored) == field(v, "canonical_msgpack_hex") => {
                match codec.decode_as::<serde_json::Value>(ValueFormat::Interop, &stored) {
                    Ok(back) if canonical_value(&back).ok().as_deref() == Some(&stored[..]) => {}
                    other => failures.push(format!("value vector {name}: read back {other:?}")),
                }
            }
            other => failures.push(format!("value vector {name}: stored {other:?}")),
        }
        checked += 1;
    }

    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert_eq!(checked, keys.len() + errors.len() + values.len());
    // Guard against a truncated or emptied file passing vacuously.
    assert!(keys.len() >= 33 && errors.len() >= 9 && values.len() >= 4);
}
