//! Several real processes on one directory: a writer killed with SIGKILL
//! mid-write, and two processes hammering the same keys.
//!
//! The child processes are this test binary itself, re-executed with
//! [`ROLE`] set: `child_process_role` is a no-op unless that variable is
//! set, and then acts as the requested writer.

#![allow(clippy::unwrap_used)] // tests may unwrap: a panic is the failure report

#[path = "support/fs.rs"]
mod support;

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use cachekit_core::{Backend, ErrorKind};
use cachekit_file::{FileBackend, FileConfig, FileConfigBuilder};
use support::{check_value, entry_files, make_value, temp_files};

const ROLE: &str = "CACHEKIT_FILE_TEST_ROLE";
const DIR: &str = "CACHEKIT_FILE_TEST_DIR";
const SEED: &str = "CACHEKIT_FILE_TEST_SEED";

const CRASH_KEYS: u32 = 16;
const HAMMER_KEYS: u32 = 32;
const HAMMER_FOR: Duration = Duration::from_millis(2500);

fn crash_config(dir: &Path, durable: bool) -> FileConfigBuilder {
    FileConfig::builder()
        .dir(dir)
        .max_bytes(1 << 30)
        .max_value_size(4 << 20)
        .durable(durable)
}

fn hammer_config(dir: &Path) -> FileConfigBuilder {
    FileConfig::builder()
        .dir(dir)
        .max_entries(12)
        .max_bytes(64 << 10)
        .max_value_size(16 << 10)
        .sweep_interval(Duration::from_millis(200))
}

fn spawn_child(role: &str, dir: &Path, seed: u64) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child_process_role",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(ROLE, role)
        .env(DIR, dir)
        .env(SEED, seed.to_string())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Lines between `@@` markers that a child printed (libtest may put its own
/// text on the same line).
fn marker(line: &str) -> Option<&str> {
    let start = line.find("@@")? + 2;
    let len = line[start..].find("@@")?;
    Some(&line[start..start + len])
}

/// Not a test of its own: the entry point of the child processes.
#[test]
fn child_process_role() {
    let Ok(role) = std::env::var(ROLE) else {
        return;
    };
    let dir = std::path::PathBuf::from(std::env::var(DIR).unwrap());
    let seed: u64 = std::env::var(SEED).unwrap().parse().unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    match role.as_str() {
        "crash-writer" => runtime.block_on(crash_writer(&dir, seed)),
        "hammer" => runtime.block_on(hammer(&dir, seed)),
        other => panic!("unknown role {other}"),
    }
}

/// Rewrites every key with large values, forever (until killed), and
/// reports each completed round.
async fn crash_writer(dir: &Path, seed: u64) {
    let durable = seed % 2 == 1;
    let cache = FileBackend::open(crash_config(dir, durable).build().unwrap()).unwrap();
    // Made up front, so that the writer spends its time writing, which is
    // where the kill should land.
    let values: Vec<Vec<bytes::Bytes>> = (0..3u64)
        .map(|variant| {
            (0..CRASH_KEYS)
                .map(|key| {
                    let len = (256 << 10)
                        + (key as usize * 7919 + variant as usize * 104_729) % (768 << 10);
                    make_value(key, seed << 32 | variant, len).into()
                })
                .collect()
        })
        .collect();
    let mut stdout = std::io::stdout();
    for round in 1u64.. {
        let variant = &values[(round % 3) as usize];
        for key in 0..CRASH_KEYS {
            let value = variant[key as usize].clone();
            cache
                .set(&format!("crash:{key}"), value, None)
                .await
                .unwrap();
        }
        writeln!(stdout, "@@round {round}@@").unwrap();
        stdout.flush().unwrap();
    }
}

#[test]
fn a_writer_killed_mid_write_leaves_whole_old_or_new_values() {
    let dir = tempfile::tempdir().unwrap();
    let mut generations_seen = std::collections::BTreeSet::new();
    let mut kills_leaving_temp_files = 0;
    // Odd attempts write durably (fsync), even ones do not.
    for attempt in 0..4u64 {
        let mut child = spawn_child("crash-writer", dir.path(), attempt);
        // Kept open until the kill: a closed pipe would stop the writer.
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let target = 2 + attempt % 2;
        for line in lines.by_ref() {
            let line = line.unwrap();
            if marker(&line) == Some(&format!("round {target}")) {
                break;
            }
        }
        // The writer is now in its next round of large writes. Kill it the
        // moment a temp file shows a write in progress (it may finish
        // before the signal lands: then the kill falls between writes).
        let deadline = Instant::now() + Duration::from_secs(10);
        while temp_files(dir.path()).is_empty() && Instant::now() < deadline {
            std::thread::yield_now();
        }
        child.kill().unwrap();
        let status = child.wait().unwrap();
        drop(lines);
        assert!(!status.success(), "the writer was killed, not finished");
        if !temp_files(dir.path()).is_empty() {
            kills_leaving_temp_files += 1;
        }

        let cache = FileBackend::open(crash_config(dir.path(), false).build().unwrap()).unwrap();
        assert_eq!(
            temp_files(dir.path()),
            Vec::<String>::new(),
            "open removes the dead writer's temp file"
        );
        let runtime = tokio::runtime::Runtime::new().unwrap();
        for key in 0..CRASH_KEYS {
            let value = runtime
                .block_on(cache.get(&format!("crash:{key}")))
                .unwrap()
                .unwrap_or_else(|| panic!("crash:{key} missing after {target} full rounds"));
            let (found_key, generation) = check_value(&value)
                .unwrap_or_else(|e| panic!("attempt {attempt}, crash:{key}: {e}"));
            assert_eq!(found_key, key);
            generations_seen.insert(generation);
        }
    }
    eprintln!(
        "{kills_leaving_temp_files} of 4 kills interrupted a write (left a temp file); \
         {} distinct generations read back whole",
        generations_seen.len()
    );
    assert!(
        kills_leaving_temp_files > 0,
        "no kill landed during a write, so this run proved nothing about torn writes"
    );
    assert_eq!(entry_files(dir.path()).len(), CRASH_KEYS as usize);
}

/// Random operations on shared keys for [`HAMMER_FOR`]; every value read
/// must be whole. Prints a summary marker.
async fn hammer(dir: &Path, seed: u64) {
    let cache = FileBackend::open(hammer_config(dir).build().unwrap()).unwrap();
    let mut rng = fastrand::Rng::with_seed(seed);
    let (mut gets, mut hits, mut sets, mut conflicts) = (0u64, 0u64, 0u64, 0u64);
    let deadline = Instant::now() + HAMMER_FOR;
    let mut counter = 0u64;
    while Instant::now() < deadline {
        let key_index = rng.u32(..HAMMER_KEYS);
        let key = format!("hammer:{key_index}");
        counter += 1;
        let generation = seed << 40 | counter;
        let len = rng.usize(16..16 << 10);
        let value = || make_value(key_index, generation, len);
        match rng.u8(..20) {
            0..=7 => {
                cache.set(&key, value().into(), None).await.unwrap();
                sets += 1;
            }
            8..=15 => {
                gets += 1;
                if let Some(got) = cache.get(&key).await.unwrap() {
                    hits += 1;
                    let (k, _) =
                        check_value(&got).unwrap_or_else(|e| panic!("torn read of {key}: {e}"));
                    assert_eq!(k, key_index, "{key} holds another key's value");
                }
            }
            16 => {
                cache.delete(&key).await.unwrap();
            }
            17 => match cache.set_if_absent(&key, value().into(), None).await {
                Ok(_) => sets += 1,
                Err(e) if e.kind() == ErrorKind::Conflict => conflicts += 1,
                Err(e) => panic!("set_if_absent({key}): {e}"),
            },
            18 => {
                cache
                    .expire(&key, Some(Duration::from_secs(60)))
                    .await
                    .unwrap();
            }
            _ => {
                if let Some((got, _)) = cache.get_with_ttl(&key).await.unwrap() {
                    check_value(&got).unwrap_or_else(|e| panic!("torn read of {key}: {e}"));
                }
            }
        }
    }
    println!("@@stats gets={gets} hits={hits} sets={sets} conflicts={conflicts}@@");
}

#[test]
fn two_processes_hammering_the_same_keys_never_tear_and_stay_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let children: Vec<Child> = (1..=2)
        .map(|seed| spawn_child("hammer", dir.path(), seed))
        .collect();
    for mut child in children {
        let mut out = String::new();
        std::io::Read::read_to_string(child.stdout.as_mut().unwrap(), &mut out).unwrap();
        let status = child.wait().unwrap();
        assert!(
            status.success(),
            "a hammering process failed ({status}):\n{out}"
        );
        let stats = out
            .lines()
            .find_map(marker)
            .unwrap_or_else(|| panic!("no stats from a child:\n{out}"))
            .to_owned();
        eprintln!("child: {stats}");
        let hits: u64 = stats
            .split_whitespace()
            .find_map(|f| f.strip_prefix("hits="))
            .unwrap()
            .parse()
            .unwrap();
        assert!(
            hits > 0,
            "the child read nothing back, so checked nothing: {stats}"
        );
    }

    // Every file on disk is whole.
    let files = entry_files(dir.path());
    for (name, _) in &files {
        let bytes = std::fs::read(dir.path().join(name)).unwrap();
        assert_eq!(&bytes[..3], b"CK\x01", "{name}");
        check_value(&bytes[14..]).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
    // Each process kept what it knew within its high watermark (plus the
    // one value in flight); a process is blind to the other's writes since
    // its last sweep, so together they stay within twice that.
    let config = hammer_config(dir.path()).build().unwrap();
    let high_bytes = (config.max_bytes() as f64 * 0.95) as u64;
    let per_process_bytes = high_bytes + config.max_value_size() + 14;
    let high_entries = (config.max_entries() as f64 * 0.95) as u64;
    let per_process_entries = high_entries + 1;
    let bytes: u64 = files.iter().map(|(_, len)| len).sum();
    assert!(
        bytes <= 2 * per_process_bytes,
        "{bytes} bytes on disk, over twice the per-process bound {per_process_bytes}"
    );
    assert!(
        files.len() as u64 <= 2 * per_process_entries,
        "{} files on disk, over twice the per-process bound {per_process_entries}",
        files.len()
    );
    eprintln!("after hammering: {} files, {bytes} bytes", files.len());

    // A sweep (here, the one at open) brings the directory under the budget.
    let cache = FileBackend::open(config.clone()).unwrap();
    let files = entry_files(dir.path());
    let bytes: u64 = files.iter().map(|(_, len)| len).sum();
    assert!(bytes <= high_bytes, "{bytes} bytes after a sweep");
    assert!(
        files.len() as u64 <= high_entries,
        "{} files after a sweep",
        files.len()
    );
    assert_eq!(cache.entry_count(), files.len() as u64);
}
