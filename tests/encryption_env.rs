//! `#[cached(encrypted)]` reads its key from the environment once; an
//! unusable key leaves the function uncached (never storing in the clear)
//! and no message shows the key. One test: it sets process-wide variables.

use std::sync::atomic::{AtomicU32, Ordering::SeqCst};
use std::sync::{Arc, Mutex};

use cachekit::{cached, Encryption, ErrorKind};

static RUNS: AtomicU32 = AtomicU32::new(0);

#[cached(encrypted, namespace = "env", name = "sealed", ttl = 60)]
fn sealed(id: u64) -> u64 {
    RUNS.fetch_add(1, SeqCst);
    id
}

/// Every log line, to look for the key in.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("log buffer").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn a_bad_master_key_in_the_environment_disables_caching_and_is_never_shown() {
    let logs = Captured::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    // 31 secret bytes and a stray character: not hex.
    let secret = format!("{}zz", "5ec7e7".repeat(10));
    std::env::set_var("CACHEKIT_MASTER_KEY", &secret);
    std::env::set_var(
        "CACHEKIT_DEPLOYMENT_UUID",
        "00000000-0000-4000-8000-000000000001",
    );

    let err = Encryption::from_env().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Config);
    let err = cachekit::default_encryption().unwrap_err();
    assert!(err.to_string().contains("CACHEKIT_MASTER_KEY"), "{err}");

    assert_eq!((sealed(1), sealed(1)), (1, 1));
    assert_eq!(RUNS.load(SeqCst), 2, "uncached: never stored in the clear");
    assert!(sealed_cache().cache().is_none());

    // A usable key names its tenant; a short one is refused as well.
    std::env::set_var("CACHEKIT_MASTER_KEY", "ab".repeat(16));
    let short = Encryption::from_env()
        .expect("16 bytes are accepted")
        .expect("set");
    assert_eq!(short.tenant(), "00000000-0000-4000-8000-000000000001");
    std::env::set_var("CACHEKIT_MASTER_KEY", "ab".repeat(15));
    let too_short = Encryption::from_env().unwrap_err();
    std::env::remove_var("CACHEKIT_DEPLOYMENT_UUID");
    std::env::set_var("CACHEKIT_MASTER_KEY", "cd".repeat(32));
    let default = Encryption::from_env().expect("hex").expect("set");
    assert_eq!(default.tenant(), "default");

    let logs = String::from_utf8(logs.0.lock().expect("log buffer").clone()).expect("UTF-8");
    assert!(logs.contains("runs uncached"), "{logs}");
    for shown in [
        logs.as_str(),
        &err.to_string(),
        &too_short.to_string(),
        &format!("{default:?}"),
    ] {
        for secret_part in ["5ec7e7", "abababab", "cdcdcdcd"] {
            assert!(!shown.contains(secret_part), "{secret_part} in {shown}");
        }
    }
}
