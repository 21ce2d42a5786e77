//! The cachekit interop/v1 conformance vectors, byte for byte.
//!
//! `interop-mode.json` is shared by every cachekit implementation. Each key
//! vector's arguments are rebuilt as a serde value (keeping the JSON map
//! order, so the encoder's own sorting is what gets tested) and must give
//! the same canonical bytes, hash and key; each error vector must be
//! rejected; each value vector must give the same canonical value bytes.

use std::path::PathBuf;

use cachekit_core::keys::{args_hash, canonical_args, canonical_value, derive_key, KeyBuilder};
use cachekit_core::{Codec, ErrorKind, ValueFormat};
use cachekit_testkit::tagged::{encode_hex, Arg, Json};

/// The tagged JSON as a value. `Err` only where the input itself is
/// rejected at conversion (an unparseable `$datetime`), which error vectors
/// accept; any other failure means the vectors grew a shape this test does
/// not know.
fn convert(value: &Json) -> Result<Arg, String> {
    value.to_arg().inspect_err(|reason| {
        assert!(
            reason.starts_with("$datetime:"),
            "{reason}: update this test for the new vectors"
        );
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
    Json::parse(&text).expect("interop-mode.json is valid JSON")
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
