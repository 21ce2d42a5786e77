//! Nesting depth: a valid envelope nested deeper than a debug build's
//! 2 MiB thread stack survives is refused, never a stack overflow.

use super::*;
use serde::Deserialize;

/// A named struct that recurses through a map per level: among the types
/// measured, the one a debug build spends the most stack on per level for
/// the fewest fields (about 5 KiB).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Node {
    a: String,
    b: u64,
    child: Option<Box<Node>>,
}

/// Recursion through enum variants, which rmp-serde's own depth limit does
/// not count.
#[derive(Debug, Deserialize)]
#[allow(dead_code, reason = "only decoded, to see how deep it recurses")]
enum Expr {
    Leaf(u8),
    Neg(Box<Expr>),
}

/// 25 fields: a debug build spends about 20 KiB of stack per level on it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
struct Wide {
    f0: String,
    f1: String,
    f2: String,
    f3: String,
    f4: String,
    f5: String,
    f6: String,
    f7: String,
    f8: String,
    f9: String,
    f10: String,
    f11: String,
    g0: Vec<u64>,
    g1: Vec<u64>,
    g2: Vec<u64>,
    g3: Vec<u64>,
    g4: Vec<u64>,
    g5: Vec<u64>,
    g6: Vec<u64>,
    g7: Vec<u64>,
    g8: Vec<u64>,
    g9: Vec<u64>,
    g10: Vec<u64>,
    g11: Vec<u64>,
    child: Option<Box<Wide>>,
}

/// The stack of a tokio worker thread and of `std::thread` by default.
const WORKER_STACK: usize = 2 << 20;

/// Runs `f` on a thread with a worker's stack. A stack overflow aborts the
/// whole test process, which fails the test run.
fn on_worker_stack<R: Send + 'static>(f: impl FnOnce() -> R + Send + 'static) -> R {
    std::thread::Builder::new()
        .stack_size(WORKER_STACK)
        .spawn(f)
        .unwrap()
        .join()
        .unwrap()
}

/// A valid envelope (right length and checksum) around `payload`.
fn envelope_of(payload: &[u8]) -> Vec<u8> {
    let mut out = header(0, payload.len(), XxHash3_64::oneshot(payload)).to_vec();
    out.extend_from_slice(payload);
    out
}

/// MessagePack of `depth` nested `Node`s, written by hand: serializing so
/// deep a value would itself recurse.
fn nodes(depth: usize) -> Vec<u8> {
    let mut p = Vec::new();
    for _ in 0..depth {
        p.extend_from_slice(b"\x83\xA1a\xA0\xA1b\x00\xA5child");
    }
    p.push(0xC0);
    p
}

fn node_chain(depth: usize) -> Node {
    let mut node = Node {
        a: String::new(),
        b: 0,
        child: None,
    };
    for _ in 1..depth {
        node = Node {
            a: String::new(),
            b: 0,
            child: Some(Box::new(node)),
        };
    }
    node
}

fn wide_chain(depth: usize) -> Wide {
    let mut wide = Wide::default();
    for _ in 1..depth {
        wide = Wide {
            child: Some(Box::new(wide)),
            ..Wide::default()
        };
    }
    wide
}

fn assert_too_deep<T>(result: Result<T>) {
    let Err(err) = result else {
        panic!("a value nested too deep was decoded")
    };
    assert_eq!(err.kind(), ErrorKind::Serialization, "{err}");
    assert!(err.message().contains("max_depth"), "{err}");
}

#[test]
fn deep_envelopes_are_refused_on_a_worker_stack_not_a_stack_overflow() {
    on_worker_stack(|| {
        let codec = Codec::default();
        // Within rmp-serde's own limit of 1,024.
        assert_too_deep(codec.decode::<Node>(&envelope_of(&nodes(1000))));
        // Enum variants, which rmp-serde does not count at all.
        let mut exprs = b"\x81\xA3Neg".repeat(100_000);
        exprs.extend_from_slice(b"\x81\xA4Leaf\x01");
        assert_too_deep(codec.decode::<Expr>(&envelope_of(&exprs)));
        // Arrays into a self-describing type.
        let mut arrays = vec![0x91; 1000];
        arrays.push(0x90);
        assert_too_deep(codec.decode::<serde_json::Value>(&envelope_of(&arrays)));
    });
}

#[test]
fn deep_lz4_envelopes_are_refused_too() {
    on_worker_stack(|| {
        let codec = Codec::default();
        let payload = nodes(5000);
        let packed = lz4_flex::block::compress(&payload);
        let mut v = header(FLAG_LZ4, payload.len(), XxHash3_64::oneshot(&payload)).to_vec();
        v.extend_from_slice(&packed);
        assert_too_deep(codec.decode::<Node>(&v));
    });
}

#[test]
fn values_at_the_limit_round_trip_on_a_worker_stack() {
    let limit = CodecConfig::default().max_depth;
    assert_eq!(limit, 64);
    on_worker_stack(move || {
        let codec = Codec::default();
        let node = node_chain(limit);
        let bytes = codec.encode(&node).unwrap();
        assert_eq!(&bytes[HEADER_LEN..], &nodes(limit)[..]);
        assert_eq!(codec.decode::<Node>(&bytes).unwrap(), node);
        // The most stack per level measured: still within a debug build's
        // 2 MiB at the limit (the innermost struct's lists are its last level).
        let wide = wide_chain(limit - 1);
        let bytes = codec.encode(&wide).unwrap();
        assert_eq!(codec.decode::<Wide>(&bytes).unwrap(), wide);
    });
}

#[test]
fn one_level_past_the_limit_is_refused_on_encode_and_decode() {
    let limit = CodecConfig::default().max_depth;
    let codec = Codec::default();
    assert_too_deep(codec.encode(&node_chain(limit + 1)));
    assert_too_deep(codec.decode::<Node>(&envelope_of(&nodes(limit + 1))));
    // An empty container one level past the limit counts too.
    let mut arrays = vec![0x91; limit];
    arrays.push(0x90);
    assert_too_deep(codec.decode::<serde_json::Value>(&envelope_of(&arrays)));
    arrays.truncate(limit - 1);
    arrays.push(0x90);
    assert!(codec
        .decode::<serde_json::Value>(&envelope_of(&arrays))
        .is_ok());
}

#[test]
fn the_limit_is_configurable() {
    let shallow = Codec::new(CodecConfig::default().max_depth(3));
    let value = vec![vec![vec![1u8]]];
    let bytes = shallow.encode(&value).unwrap();
    assert_eq!(shallow.decode::<Vec<Vec<Vec<u8>>>>(&bytes).unwrap(), value);
    assert_too_deep(shallow.encode(&vec![value.clone()]));
    let deep = Codec::default().encode(&vec![value]).unwrap();
    assert_too_deep(shallow.decode::<Vec<Vec<Vec<Vec<u8>>>>>(&deep));
}

#[test]
fn wide_and_flat_values_are_not_limited() {
    let codec = Codec::default();
    let flat: Vec<Vec<u32>> = (0..10_000).map(|i| vec![i; 3]).collect();
    let bytes = codec.encode(&flat).unwrap();
    assert_eq!(codec.decode::<Vec<Vec<u32>>>(&bytes).unwrap(), flat);
    let map: std::collections::BTreeMap<String, Vec<u8>> =
        (0..1000).map(|i| (format!("k{i}"), vec![1, 2])).collect();
    let bytes = codec.encode(&map).unwrap();
    assert_eq!(
        codec
            .decode::<std::collections::BTreeMap<String, Vec<u8>>>(&bytes)
            .unwrap(),
        map
    );
}
