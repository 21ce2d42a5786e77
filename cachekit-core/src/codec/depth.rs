//! How deep a MessagePack value nests, found in one pass without recursion.
//!
//! Deserializing recurses once per nested array or map (an enum variant is
//! a map too), and a debug build spends from under 1 KiB (an enum) to
//! 20 KiB (a struct of 25 fields) of stack per level. rmp-serde's own limit
//! (1,024 levels) is far past what a 2 MiB worker stack survives and does
//! not count enum variants, so the codec checks the depth before it
//! deserializes, and checks what it encodes against the same bound.

use rmp::Marker;

/// What [`scan`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Depth {
    /// The first value nests at most the allowed depth.
    Within,
    /// An array or map opens past the allowed depth.
    Deeper,
    /// The bytes end inside the value, or hold a reserved marker.
    Malformed,
}

/// Checks that the MessagePack value at the start of `payload` opens at
/// most `max` arrays and maps inside one another (an empty one counts).
/// Bytes after the value are not looked at, as rmp-serde does not look at
/// them. Time is linear in `payload`; memory in `max`.
pub(super) fn scan(payload: &[u8], max: usize) -> Depth {
    scan_to(payload, max).0
}

/// As [`scan`], but a value followed by more bytes is [`Depth::Malformed`]:
/// the bytes must be exactly one MessagePack document.
pub(super) fn scan_whole(payload: &[u8], max: usize) -> Depth {
    match scan_to(payload, max) {
        (Depth::Within, end) if end != payload.len() => Depth::Malformed,
        (depth, _) => depth,
    }
}

/// [`scan`]'s finding, and where the first value ends when it is within.
fn scan_to(payload: &[u8], max: usize) -> (Depth, usize) {
    // Items still to come in each open container, innermost last.
    let mut open: Vec<u64> = Vec::new();
    let mut at = 0usize;
    loop {
        let Some(item) = next_item(payload, &mut at) else {
            return (Depth::Malformed, at);
        };
        if let Item::Container(items) = item {
            if open.len() >= max {
                return (Depth::Deeper, at);
            }
            if items > 0 {
                open.push(items);
                continue;
            }
        }
        // A value is complete: it ends its container's last item, and maybe
        // the containers around that.
        loop {
            let Some(left) = open.last_mut() else {
                return (Depth::Within, at);
            };
            *left -= 1;
            if *left > 0 {
                break;
            }
            open.pop();
        }
    }
}

enum Item {
    /// A scalar, string, binary or extension: no nesting.
    Leaf,
    /// An array or map holding this many values (a map's keys count).
    Container(u64),
}

/// Reads the item at `*at` and moves past it (past a container's header
/// only). `None` if the bytes end first or the marker is reserved.
fn next_item(payload: &[u8], at: &mut usize) -> Option<Item> {
    let marker = Marker::from_u8(*payload.get(*at)?);
    *at += 1;
    let skip = match marker {
        Marker::FixPos(_) | Marker::FixNeg(_) | Marker::Null | Marker::True | Marker::False => 0,
        Marker::U8 | Marker::I8 => 1,
        Marker::U16 | Marker::I16 => 2,
        Marker::U32 | Marker::I32 | Marker::F32 => 4,
        Marker::U64 | Marker::I64 | Marker::F64 => 8,
        Marker::FixStr(len) => usize::from(len),
        Marker::Str8 | Marker::Bin8 => length(payload, at, 1)?,
        Marker::Str16 | Marker::Bin16 => length(payload, at, 2)?,
        Marker::Str32 | Marker::Bin32 => length(payload, at, 4)?,
        // Extensions: a type byte, then the data.
        Marker::FixExt1 => 2,
        Marker::FixExt2 => 3,
        Marker::FixExt4 => 5,
        Marker::FixExt8 => 9,
        Marker::FixExt16 => 17,
        Marker::Ext8 => length(payload, at, 1)?.checked_add(1)?,
        Marker::Ext16 => length(payload, at, 2)?.checked_add(1)?,
        Marker::Ext32 => length(payload, at, 4)?.checked_add(1)?,
        Marker::FixArray(n) => return Some(Item::Container(u64::from(n))),
        Marker::Array16 => return Some(Item::Container(count(payload, at, 2)?)),
        Marker::Array32 => return Some(Item::Container(count(payload, at, 4)?)),
        Marker::FixMap(n) => return Some(Item::Container(2 * u64::from(n))),
        Marker::Map16 => return Some(Item::Container(2 * count(payload, at, 2)?)),
        Marker::Map32 => return Some(Item::Container(2 * count(payload, at, 4)?)),
        Marker::Reserved => return None,
    };
    let end = at.checked_add(skip)?;
    if end > payload.len() {
        return None;
    }
    *at = end;
    Some(Item::Leaf)
}

/// The `width`-byte big-endian number at `*at`, moving past it.
fn count(payload: &[u8], at: &mut usize, width: usize) -> Option<u64> {
    let end = at.checked_add(width)?;
    let bytes = payload.get(*at..end)?;
    *at = end;
    Some(bytes.iter().fold(0u64, |n, &b| (n << 8) | u64::from(b)))
}

fn length(payload: &[u8], at: &mut usize, width: usize) -> Option<usize> {
    usize::try_from(count(payload, at, width)?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scalars_strings_and_extensions_are_depth_zero() {
        for bytes in [
            &b"\x01"[..],
            b"\xC0",
            b"\xCB\0\0\0\0\0\0\0\0",
            b"\xA3abc",
            b"\xD9\x03abc",
            b"\xC4\x02\x00\x01",
            b"\xD4\x01\x02",
            b"\xC7\x02\x05ab",
        ] {
            assert_eq!(scan(bytes, 0), Depth::Within, "{bytes:?}");
        }
    }

    #[test]
    fn depth_counts_open_containers_not_their_neighbours() {
        // [[1], [2], {"k": [3]}]: two levels at most.
        let v = b"\x93\x91\x01\x91\x02\x81\xA1k\x91\x03";
        assert_eq!(scan(v, 3), Depth::Within);
        assert_eq!(scan(v, 2), Depth::Deeper);
        // Array16 and Map16 headers.
        let v = b"\xDC\x00\x01\xDE\x00\x01\x01\x02";
        assert_eq!(scan(v, 2), Depth::Within);
        assert_eq!(scan(v, 1), Depth::Deeper);
    }

    #[test]
    fn truncated_and_reserved_bytes_are_malformed() {
        for bytes in [
            &b""[..],
            b"\xC1",
            b"\x92\x01",
            b"\xA3ab",
            b"\xDB\xFF\xFF\xFF\xFF",
            b"\xDD\xFF\xFF\xFF\xFF\x01",
            b"\xC9\xFF\xFF\xFF\xFF\x01",
        ] {
            assert_eq!(scan(bytes, 8), Depth::Malformed, "{bytes:?}");
        }
    }

    #[test]
    fn bytes_after_the_value_are_ignored() {
        assert_eq!(scan(b"\x01\xC1\xC1", 0), Depth::Within);
    }
}
