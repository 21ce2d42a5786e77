//! Child processes for the tests that need several processes: the test
//! binary re-runs itself (one ignored test, told what to do by an
//! environment variable) and talks to the parent over stdin/stdout, the
//! way `tests/faults_stampede.rs` and the `invalidation_*` tests do.
//!
//! Included by each test file with `#[path]`; not every file uses every
//! helper.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// How long a parent waits for a child's next line.
pub const CHILD_PATIENCE: Duration = Duration::from_secs(60);

/// Writes one line to the parent.
pub fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}").unwrap();
    out.flush().unwrap();
}

/// Reads one line from the parent (blocking; call it off the async
/// workers); empty when the parent went away.
pub fn hear() -> String {
    let mut line = String::new();
    if std::io::stdin().read_line(&mut line).is_err() {
        line.clear();
    }
    line.trim().to_owned()
}

/// A child process of this test binary; killed when dropped.
pub struct Child {
    process: std::process::Child,
    lines: mpsc::Receiver<String>,
}

impl Child {
    /// Runs the ignored test `entry` of this binary with `env_name=spec`
    /// and the extra environment `env`.
    pub fn spawn(entry: &str, env_name: &str, spec: &str, env: &[(&str, &str)]) -> Self {
        let mut command = Command::new(std::env::current_exe().unwrap());
        command
            .args([
                entry,
                "--exact",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(env_name, spec)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped());
        for (name, value) in env {
            command.env(name, value);
        }
        let mut process = command.spawn().unwrap();
        let stdout = process.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Self { process, lines }
    }

    /// The next line with `marker`, from the marker on; the test harness's
    /// own lines are skipped.
    pub fn expect(&self, marker: &str) -> String {
        let deadline = Instant::now() + CHILD_PATIENCE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                // The harness may have started the line ("test name ... ").
                Ok(line) => {
                    if let Some(at) = line.find(marker) {
                        return line[at..].to_owned();
                    }
                }
                Err(err) => panic!("child {}: no {marker} line: {err}", self.process.id()),
            }
        }
    }

    pub fn send(&mut self, line: &str) {
        let stdin = self.process.stdin.as_mut().unwrap();
        writeln!(stdin, "{line}").unwrap();
        stdin.flush().unwrap();
    }

    /// Waits for the child to exit and checks that it succeeded.
    pub fn finish(mut self) {
        let status = self.process.wait().unwrap();
        assert!(status.success(), "child exited with {status}");
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

/// `name=value` out of a line of `name=value` fields.
pub fn field<'a>(line: &'a str, name: &str) -> &'a str {
    line.split(' ')
        .find_map(|part| part.strip_prefix(name)?.strip_prefix('='))
        .unwrap_or_else(|| panic!("no {name} in {line:?}"))
}
