//! The tagged JSON of the cachekit family's interop vectors, turned into
//! values cachekit's key encoder takes.
//!
//! JSON has no bytes, sets or datetimes and cannot tell `2.0` from `2`, so
//! the family writes what JSON cannot say as a one-entry object:
//! `{"$float": "2.0"}`, `{"$bytes": "00ff"}`, `{"$set": [...]}`,
//! `{"$datetime": "2024-01-01T12:30:45.123456+00:00"}`, `{"$uuid": "..."}`
//! and `{"$int": "..."}` for integers past what JSON numbers carry.
//! `cachekit-core/tests/interop_keys.rs` reads the shared vectors this way,
//! and `tests/interop_python.rs` the argument lists cachekit-py generates.
//!
//! ```
//! use cachekit_testkit::tagged::Json;
//!
//! let args = Json::parse(r#"[42, {"$float": "2.0"}, {"b": 1, "a": [null]}]"#)?.to_arg()?;
//! let key = cachekit_core::keys::derive_key("t", "op", &args).map_err(|e| e.to_string())?;
//! assert!(key.starts_with("t:op:"));
//! # Ok::<(), String>(())
//! ```

use std::fmt;

use cachekit_core::keys::{Set, Timestamp};
use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::ser::{Serialize, SerializeMap, SerializeSeq, Serializer};

/// JSON as the text spells it, maps in text order (serde_json's own
/// `Value` sorts keys unless a feature is enabled, which would do the
/// encoder's sorting for it). Fractional numbers are refused: the family
/// tags floats.
#[derive(Debug, Clone, PartialEq)]
pub enum Json {
    /// `null`.
    Null,
    /// `true` or `false`.
    Bool(bool),
    /// An integer literal.
    Int(i128),
    /// A string.
    Str(String),
    /// An array.
    Array(Vec<Json>),
    /// An object, entries in text order.
    Object(Vec<(String, Json)>),
}

impl Json {
    /// Parses JSON text.
    ///
    /// # Errors
    ///
    /// When the text is not JSON, or holds a fractional number.
    pub fn parse(text: &str) -> Result<Json, String> {
        serde_json::from_str(text).map_err(|e| format!("tagged JSON: {e}"))
    }

    /// The entry `name` of an object.
    pub fn get(&self, name: &str) -> Option<&Json> {
        match self {
            Json::Object(entries) => entries.iter().find(|(k, _)| k == name).map(|(_, v)| v),
            _ => None,
        }
    }

    /// The text of a string.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Json::Str(text) => Some(text),
            _ => None,
        }
    }

    /// The items of an array.
    pub fn as_array(&self) -> Option<&[Json]> {
        match self {
            Json::Array(items) => Some(items),
            _ => None,
        }
    }

    /// The value this tagged JSON describes.
    ///
    /// # Errors
    ///
    /// An unknown `$tag`, a tag holding the wrong JSON type, or a literal
    /// (`$float`, `$bytes`, `$datetime`, `$int`) that does not parse; the
    /// message starts with the tag (`$datetime: ...`).
    pub fn to_arg(&self) -> Result<Arg, String> {
        Ok(match self {
            Json::Null => Arg::Null,
            Json::Bool(b) => Arg::Bool(*b),
            Json::Int(i) => Arg::Int(*i),
            Json::Str(text) => Arg::Str(text.clone()),
            Json::Array(items) => {
                Arg::Array(items.iter().map(Json::to_arg).collect::<Result<_, _>>()?)
            }
            Json::Object(entries) => match entries.as_slice() {
                [(tag, inner)] if tag.starts_with('$') => tagged(tag, inner)?,
                _ => Arg::Map(
                    entries
                        .iter()
                        .map(|(k, v)| Ok((k.clone(), v.to_arg()?)))
                        .collect::<Result<_, String>>()?,
                ),
            },
        })
    }
}

fn tagged(tag: &str, inner: &Json) -> Result<Arg, String> {
    let text = || {
        inner
            .as_str()
            .ok_or_else(|| format!("{tag} holds a string, not {inner:?}"))
    };
    Ok(match tag {
        "$int" => Arg::Int(text()?.parse().map_err(|e| format!("$int: {e}"))?),
        // Rust's parser agrees with Python and JS on "nan" and "1e999".
        "$float" => Arg::Float(text()?.parse().map_err(|e| format!("$float: {e}"))?),
        "$bytes" => Arg::Bytes(decode_hex(text()?)?),
        "$uuid" => Arg::Str(text()?.to_lowercase()),
        "$datetime" => {
            Arg::Time(Timestamp::parse_rfc3339(text()?).map_err(|e| format!("$datetime: {e}"))?)
        }
        "$set" => Arg::Set(
            inner
                .as_array()
                .ok_or_else(|| format!("$set holds an array, not {inner:?}"))?
                .iter()
                .map(Json::to_arg)
                .collect::<Result<_, _>>()?,
        ),
        other => return Err(format!("{other}: unknown tag")),
    })
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

/// An argument (or value), typed as the tagged JSON describes it; it
/// serializes as the matching interop/v1 type.
#[derive(Debug, Clone, PartialEq)]
pub enum Arg {
    /// nil.
    Null,
    /// A boolean.
    Bool(bool),
    /// An integer.
    Int(i128),
    /// A float64.
    Float(f64),
    /// A string (a `$uuid` too, lowercased).
    Str(String),
    /// A byte string.
    Bytes(Vec<u8>),
    /// An array.
    Array(Vec<Arg>),
    /// A map, entries in text order.
    Map(Vec<(String, Arg)>),
    /// A set, elements in text order.
    Set(Vec<Arg>),
    /// A timezone-aware datetime (an argument: epoch seconds).
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

/// Bytes from lowercase or uppercase hex.
///
/// # Errors
///
/// An odd length or a character that is not a hex digit.
pub fn decode_hex(text: &str) -> Result<Vec<u8>, String> {
    if !text.len().is_multiple_of(2) || !text.is_ascii() {
        return Err(format!("not hex: {text:?}"));
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).map_err(|_| format!("not hex: {text:?}")))
        .collect()
}

/// Lowercase hex of `bytes`.
pub fn encode_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
