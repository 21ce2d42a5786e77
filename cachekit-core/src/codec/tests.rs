use super::*;
use serde::Deserialize;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct User {
    id: u64,
    name: String,
    tags: Vec<String>,
}

fn user() -> User {
    User {
        id: 7,
        name: "alice".into(),
        tags: vec!["a".into(), "b".into()],
    }
}

#[test]
fn roundtrip_small_is_uncompressed() {
    let codec = Codec::default();
    let bytes = codec.encode(&user()).unwrap();
    assert_eq!(&bytes[..3], &[0xC1, 0x4B, 1]);
    assert_eq!(bytes[3], 0, "small payloads are not compressed");
    assert_eq!(codec.decode::<User>(&bytes).unwrap(), user());
}

#[test]
fn structs_are_encoded_as_maps() {
    let codec = Codec::default();
    let bytes = codec.encode(&user()).unwrap();
    // 0x83 = fixmap of 3 entries: field names travel with the value.
    assert_eq!(bytes[HEADER_LEN], 0x83);
}

#[test]
fn large_compressible_values_are_compressed() {
    let codec = Codec::default();
    let value = "A".repeat(100_000);
    let bytes = codec.encode(&value).unwrap();
    assert_eq!(bytes[3], FLAG_LZ4);
    assert!(bytes.len() < 2_000, "compressed to {}", bytes.len());
    assert_eq!(codec.decode::<String>(&bytes).unwrap(), value);
}

/// Xorshift noise: neither LZ4 nor its sample finds anything to shrink.
fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

#[test]
fn incompressible_values_stay_raw() {
    let codec = Codec::new(CodecConfig::default().compress_threshold(0));
    // Below the sampling size LZ4 runs on the whole payload, and above it
    // only on the sample: raw either way.
    for len in [3_000, 40_000] {
        let value = noise(len as u64, len);
        let bytes = codec.encode(&value).unwrap();
        assert_eq!(
            bytes[3], 0,
            "{len}: compression that does not shrink is not kept"
        );
        assert_eq!(
            bytes.len(),
            HEADER_LEN + rmp_serde::to_vec(&value).unwrap().len()
        );
        assert_eq!(codec.decode::<Vec<u8>>(&bytes).unwrap(), value);
    }
}

#[test]
fn the_sample_spans_the_whole_payload() {
    let may_pay = |payload: &[u8]| lz4_may_pay(payload, &mut Vec::new());
    let random = noise(7, 16 * 1024);
    assert!(!may_pay(&random));
    // Small payloads are never judged by a sample.
    assert!(may_pay(&random[..4 * SAMPLE - 1]));
    let text = "cachekit sample text; ".repeat(800);
    assert!(may_pay(text.as_bytes()));
    // Only the last quarter repeats itself: the last window sees it.
    let mut tail = noise(8, 12 * 1024);
    tail.extend(std::iter::repeat_n(b'A', 4 * 1024));
    assert!(may_pay(&tail));
    // A window's worth of repetition at the start is not enough on its own.
    let mut head = vec![b'A'; 64];
    head.extend(noise(9, 16 * 1024));
    assert!(!may_pay(&head));
}

#[test]
fn compressible_values_past_the_sample_size_are_compressed() {
    let codec = Codec::default();
    let head = noise(10, 12 * 1024);
    let mut value = head.clone();
    value.extend(std::iter::repeat_n(b'z', 20 * 1024));
    let bytes = codec.encode(&value).unwrap();
    assert_eq!(bytes[3], FLAG_LZ4);
    // The noise stays about as long as it was; the run of `z`s all but goes.
    let noise_len = rmp_serde::to_vec(&head).unwrap().len();
    assert!(
        bytes.len() < noise_len + 1024,
        "compressed to {}",
        bytes.len()
    );
    assert_eq!(codec.decode::<Vec<u8>>(&bytes).unwrap(), value);
}

/// The bytes a thread that never encoded anything makes of `value`.
fn fresh_encoding<T: Serialize + Sync>(codec: &Codec, value: &T) -> Bytes {
    std::thread::scope(|s| s.spawn(|| codec.encode(value).unwrap()).join().unwrap())
}

#[test]
fn reused_buffers_give_the_bytes_a_fresh_thread_gives() {
    let codec = Codec::default();
    let big = SCRATCH_KEPT + 1000;
    let values: Vec<Vec<u8>> = vec![
        noise(1, big),                                   // raw, handed out in its buffer
        vec![b'q'; big],                                 // compressed from a large payload
        b"short".to_vec(),                               // after a large one: nothing left over
        noise(2, 20_000),                                // raw, copied out of the buffer
        [vec![b'r'; 10_000], noise(3, 10_000)].concat(), // compressed, copied out
        noise(4, 5_000),                                 // LZ4 tried on the whole, not kept
        Vec::new(),
    ];
    for round in 0..2 {
        for value in &values {
            let bytes = codec.encode(value).unwrap();
            assert_eq!(
                bytes,
                fresh_encoding(&codec, value),
                "round {round}, {} bytes",
                value.len()
            );
            assert_eq!(&codec.decode::<Vec<u8>>(&bytes).unwrap(), value);
        }
    }
    let (payload, packed) = SCRATCH.with(|s| {
        let s = s.borrow();
        (s.payload.capacity(), s.packed.capacity())
    });
    assert!(
        payload <= SCRATCH_KEPT && packed <= SCRATCH_KEPT,
        "kept {payload} / {packed} bytes"
    );
}

#[test]
fn every_truncation_is_an_error_not_a_panic() {
    let codec = Codec::new(CodecConfig::default().compress_threshold(64));
    for value in [
        codec.encode(&user()).unwrap(),
        codec.encode(&"B".repeat(5000)).unwrap(),
    ] {
        for cut in 0..value.len() {
            let err = codec.decode::<User>(&value[..cut]).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Serialization, "cut at {cut}");
        }
    }
}

#[test]
fn every_single_bit_flip_is_detected() {
    let codec = Codec::default();
    let value = codec.encode(&user()).unwrap();
    for byte in 0..value.len() {
        for bit in 0..8 {
            let mut v = value.to_vec();
            v[byte] ^= 1 << bit;
            assert!(
                codec.decode::<User>(&v).is_err(),
                "flip {byte}:{bit} undetected"
            );
        }
    }
}

#[test]
fn unknown_version_and_flags_are_rejected() {
    let codec = Codec::default();
    let mut v = codec.encode(&1u32).unwrap().to_vec();
    v[2] = 2;
    assert!(codec
        .decode::<u32>(&v)
        .unwrap_err()
        .message()
        .contains("version 2"));
    let mut v = codec.encode(&1u32).unwrap().to_vec();
    v[3] = 0x80;
    assert!(codec
        .decode::<u32>(&v)
        .unwrap_err()
        .message()
        .contains("flags"));
}

#[test]
fn plain_msgpack_and_garbage_are_rejected() {
    let codec = Codec::default();
    let plain = rmp_serde::to_vec(&user()).unwrap();
    assert!(codec.decode::<User>(&plain).is_err());
    assert!(codec.decode::<User>(b"").is_err());
    assert!(codec.decode::<User>(&[0xff; 64]).is_err());
}

#[test]
fn declared_size_is_bounded_before_allocation() {
    let codec = Codec::new(CodecConfig::default().max_value_size(1024));
    // Claims 1 GiB uncompressed in a 20-byte input: rejected without allocating.
    let mut v = header(FLAG_LZ4, 1 << 30, 0).to_vec();
    v.extend_from_slice(&[0u8; 4]);
    assert_eq!(
        codec.decode::<u32>(&v).unwrap_err().kind(),
        ErrorKind::TooLarge
    );
    let roomy = Codec::default();
    let mut v = header(FLAG_LZ4, 10_000_000, 0).to_vec();
    v.extend_from_slice(&[0u8; 4]);
    assert!(roomy
        .decode::<u32>(&v)
        .unwrap_err()
        .message()
        .contains("impossible"));
}

#[test]
fn oversized_values_are_refused_on_encode() {
    let codec = Codec::new(CodecConfig::default().max_value_size(100));
    let err = codec.encode(&"x".repeat(200)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TooLarge);
}

#[test]
fn wrong_type_is_a_serialization_error() {
    let codec = Codec::default();
    let bytes = codec.encode(&"not a user").unwrap();
    let err = codec.decode::<User>(&bytes).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Serialization);
    assert!(err.message().contains("User"));
}

#[test]
fn random_inputs_behind_a_valid_header_never_panic() {
    let codec = Codec::new(CodecConfig::default().max_value_size(1 << 20));
    let mut x = 0x2545_F491_4F6C_DD1Du64;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for round in 0..20_000u32 {
        let len = (next() % 300) as usize;
        let body: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        let flags = (round % 2) as u8;
        let declared = (next() % 4096) as usize;
        let checksum = if round % 3 == 0 {
            XxHash3_64::oneshot(&body)
        } else {
            next()
        };
        let mut input = header(flags, declared, checksum).to_vec();
        input.extend_from_slice(&body);
        // Any outcome but a panic is acceptable; most are errors.
        let _ = codec.decode::<User>(&input);
        let _ = codec.decode::<Vec<String>>(&input);
    }
}

/// A value whose (de)serialization encodes (decodes) another value with a
/// codec, while the outer value is being encoded (decoded).
#[derive(Debug, PartialEq)]
struct Nested {
    inner: String,
    padding: String,
}

impl Serialize for Nested {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        let inner = Codec::default()
            .encode(&self.inner)
            .map_err(serde::ser::Error::custom)?;
        (inner.to_vec(), &self.padding).serialize(s)
    }
}

impl<'de> Deserialize<'de> for Nested {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let (inner, padding) = <(Vec<u8>, String)>::deserialize(d)?;
        let inner = Codec::default()
            .decode(&inner)
            .map_err(serde::de::Error::custom)?;
        Ok(Nested { inner, padding })
    }
}

#[test]
fn a_value_that_uses_a_codec_while_being_encoded_and_decoded() {
    let codec = Codec::default();
    // Both envelopes are compressed, so both levels need the LZ4 buffers.
    let value = Nested {
        inner: "inner".repeat(2000),
        padding: "p".repeat(10_000),
    };
    let bytes = codec.encode(&value).unwrap();
    assert_eq!(bytes[3], FLAG_LZ4);
    assert_eq!(codec.decode::<Nested>(&bytes).unwrap(), value);
}

#[test]
fn checksums_are_the_xxh3_every_stored_envelope_carries() {
    // Envelopes written before the checksum moved to twox-hash carry
    // xxhash-rust's XXH3-64: every input length class must agree.
    let data = noise(11, 300_000);
    let lengths = (0..=1100).chain([4096, 16 * 1024, 16 * 1024 + 7, 300_000]);
    for len in lengths {
        let input = &data[..len];
        assert_eq!(
            XxHash3_64::oneshot(input),
            xxhash_rust::xxh3::xxh3_64(input),
            "{len} bytes"
        );
    }
}

#[test]
fn only_envelopes_of_this_version_are_cachekits_own() {
    let codec = Codec::default();
    let valid = codec.encode(&user()).unwrap();
    assert_eq!(Origin::of(&valid), Origin::Envelope);
    let mut flipped = valid.to_vec();
    flipped[20] ^= 1;
    assert_eq!(
        Origin::of(&flipped),
        Origin::Envelope,
        "damaged: still ours"
    );
    assert_eq!(Origin::of(&valid[..2]), Origin::Envelope, "cut short");
    let mut newer = valid.to_vec();
    newer[2] = 2;
    assert_eq!(Origin::of(&newer), Origin::Foreign, "a newer writer's");
    let plain = rmp_serde::to_vec(&user()).unwrap();
    for other in [&plain[..], b"", b"\xC1", b"hello", b"\xC1X\x01"] {
        assert_eq!(Origin::of(other), Origin::Foreign, "{other:?}");
    }
}
