//! Capturing what `tracing` logs, as text, for tests of what an operator
//! sees in the log.

use std::io;
use std::sync::{Arc, Mutex, PoisonError};

/// The text a capturing subscriber wrote so far; clones share it.
#[derive(Clone, Default)]
pub struct Logs(Arc<Mutex<Vec<u8>>>);

impl Logs {
    /// Captures WARN and above on this thread until the guard is dropped
    /// (a current-thread Tokio test runs everything on it).
    pub fn start() -> (Self, tracing::subscriber::DefaultGuard) {
        let (subscriber, logs) = capture_at(tracing::Level::WARN);
        (logs, tracing::subscriber::set_default(subscriber))
    }

    /// Everything captured so far.
    pub fn text(&self) -> String {
        let bytes = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        String::from_utf8_lossy(&bytes).into_owned()
    }

    /// The captured lines so far.
    pub fn lines(&self) -> Vec<String> {
        self.text().lines().map(str::to_owned).collect()
    }
}

impl io::Write for Logs {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut bytes = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        bytes.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A subscriber writing every event at DEBUG and above into the returned
/// [`Logs`], without colours; install it globally or per thread.
pub fn capture() -> (impl tracing::Subscriber + Send + Sync, Logs) {
    capture_at(tracing::Level::DEBUG)
}

fn capture_at(level: tracing::Level) -> (impl tracing::Subscriber + Send + Sync, Logs) {
    let logs = Logs::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_ansi(false)
        .with_max_level(level)
        .with_writer(move || writer.clone())
        .finish();
    (subscriber, logs)
}
