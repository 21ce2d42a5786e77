//! Helpers shared by the integration tests: raw directory inspection and
//! hand-made entry files.

#![allow(dead_code)]

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use cachekit_file::{FileBackend, FileConfig, FileConfigBuilder};

/// Opens a backend on `dir` with the builder adjusted by `tune`.
pub fn open(dir: &Path, tune: impl FnOnce(FileConfigBuilder) -> FileConfigBuilder) -> FileBackend {
    FileBackend::open(tune(FileConfig::builder().dir(dir)).build().unwrap()).unwrap()
}

/// Entry files (32 lowercase hex names) with their lengths; a file removed
/// while the directory is read is left out.
pub fn entry_files(dir: &Path) -> Vec<(String, u64)> {
    let mut out = Vec::new();
    for item in std::fs::read_dir(dir).unwrap() {
        let item = item.unwrap();
        let name = item.file_name().to_string_lossy().into_owned();
        if name.len() == 32
            && name
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        {
            // A file removed since the listing (eviction running in the
            // background) is not there any more: skip it.
            match item.metadata() {
                Ok(meta) => out.push((name, meta.len())),
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
                Err(err) => panic!("{name}: {err}"),
            }
        }
    }
    out.sort();
    out
}

/// Temp files left in the directory.
pub fn temp_files(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|i| i.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".tmp-"))
        .collect()
}

/// A version-1 header, built by hand from the format description.
pub fn header(expiry: u64) -> Vec<u8> {
    let mut h = b"CK\x01\x00\x00\x00".to_vec();
    h.extend_from_slice(&expiry.to_be_bytes());
    h
}

/// The expiry field of an entry file.
pub fn stored_expiry(path: &Path) -> u64 {
    let bytes = std::fs::read(path).unwrap();
    u64::from_be_bytes(bytes[6..14].try_into().unwrap())
}

pub fn unix_secs_f64() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

pub fn unix_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A self-checking value: `key` and `generation` in front, then bytes
/// derived from both, so any mix of two writes or a cut is detected.
pub fn make_value(key: u32, generation: u64, len: usize) -> Vec<u8> {
    let len = len.max(16);
    let mut out = Vec::with_capacity(len);
    out.extend_from_slice(&key.to_le_bytes());
    out.extend_from_slice(&generation.to_le_bytes());
    out.extend_from_slice(&u32::try_from(len).unwrap().to_le_bytes());
    let mut state = seed(key, generation);
    while out.len() < len {
        out.push(next(&mut state));
    }
    out
}

/// Checks a value made by [`make_value`]; returns its key and generation.
pub fn check_value(value: &[u8]) -> Result<(u32, u64), String> {
    if value.len() < 16 {
        return Err(format!(
            "value of {} bytes is shorter than its 16-byte preamble",
            value.len()
        ));
    }
    let key = u32::from_le_bytes(value[0..4].try_into().unwrap());
    let generation = u64::from_le_bytes(value[4..12].try_into().unwrap());
    let len = u32::from_le_bytes(value[12..16].try_into().unwrap()) as usize;
    if len != value.len() {
        return Err(format!(
            "key {key} gen {generation}: preamble says {len} bytes, got {}",
            value.len()
        ));
    }
    let mut state = seed(key, generation);
    if let Some(at) = value[16..].iter().position(|&b| b != next(&mut state)) {
        return Err(format!(
            "key {key} gen {generation}: byte {} differs (torn or mixed value)",
            at + 16
        ));
    }
    Ok((key, generation))
}

fn seed(key: u32, generation: u64) -> u64 {
    (u64::from(key) << 40 ^ generation).wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1
}

fn next(state: &mut u64) -> u8 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    state.to_le_bytes()[3]
}
