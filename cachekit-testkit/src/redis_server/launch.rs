//! Spawning `redis-server` and deciding when it is up.

use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use super::resp::{Connection, Reply};

/// Redis's own log, inside the server's temp dir.
pub(crate) const LOG_FILE: &str = "redis.log";
/// stdout and stderr: fatal config errors are printed there before the log
/// file is opened.
const CONSOLE_FILE: &str = "redis.console";

const STARTUP_TIMEOUT: Duration = Duration::from_secs(10);
const POLL_INTERVAL: Duration = Duration::from_millis(10);
const READY_LINE: &str = "Ready to accept connections";
/// A sentinel logs no ready line; it logs its id once its listener is bound.
const SENTINEL_READY_LINE: &str = "Sentinel ID is";

/// Why a launch did not produce a running server.
#[derive(Debug)]
pub(crate) enum LaunchError {
    /// Another process holds the port; trying later or elsewhere may work.
    PortTaken,
    /// Anything else; the message is complete, log included.
    Failed(String),
}

/// The server's log file followed by anything it printed to stdout/stderr.
pub(crate) fn read_log(dir: &Path) -> String {
    let log = fs::read(dir.join(LOG_FILE)).unwrap_or_default();
    let console = fs::read(dir.join(CONSOLE_FILE)).unwrap_or_default();
    let mut out = String::from_utf8_lossy(&log).into_owned();
    if !console.is_empty() {
        out.push_str("\n--- redis-server stdout/stderr ---\n");
        out.push_str(&String::from_utf8_lossy(&console));
    }
    out
}

fn file_len(path: &Path) -> u64 {
    fs::metadata(path).map_or(0, |m| m.len())
}

/// What the log and console gained since the given offsets.
fn read_since(dir: &Path, log_from: u64, console_from: u64) -> String {
    let tail = |name: &str, from: u64| {
        let bytes = fs::read(dir.join(name)).unwrap_or_default();
        let from = usize::try_from(from).unwrap_or(usize::MAX).min(bytes.len());
        String::from_utf8_lossy(&bytes[from..]).into_owned()
    };
    tail(LOG_FILE, log_from) + &tail(CONSOLE_FILE, console_from)
}

fn failure(dir: &Path, problem: &str) -> LaunchError {
    LaunchError::Failed(format!(
        "redis-server {problem}; its log ({}):\n{}",
        dir.join(LOG_FILE).display(),
        read_log(dir)
    ))
}

fn console(dir: &Path) -> io::Result<(File, File)> {
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join(CONSOLE_FILE))?;
    let clone = file.try_clone()?;
    Ok((file, clone))
}

/// Whether a plain server answers PING (a NOAUTH error proves it is up
/// just as well). A TLS server is not probed: this module cannot speak TLS,
/// and a bare TCP connect would only litter its log with handshake errors;
/// the ready line, logged after the listener is bound, suffices there.
fn answers(addr: SocketAddr, tls: bool) -> bool {
    if tls {
        return true;
    }
    match Connection::open(addr, Duration::from_secs(1)).and_then(|mut c| c.call(&["PING"])) {
        Ok(Reply::Simple(pong)) => pong == "PONG",
        Ok(Reply::Error(err)) => err.starts_with("NOAUTH"),
        _ => false,
    }
}

fn kill(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// Spawns `redis-server` with `args` and waits until it answers on `addr`.
///
/// # Panics
///
/// When `redis-server` is not installed.
pub(crate) fn launch(
    args: &[OsString],
    dir: &Path,
    addr: SocketAddr,
    tls: bool,
) -> Result<Child, LaunchError> {
    let log_from = file_len(&dir.join(LOG_FILE));
    let console_from = file_len(&dir.join(CONSOLE_FILE));
    let (stdout, stderr) = console(dir)
        .map_err(|err| failure(dir, &format!("could not get a console file: {err}")))?;
    let spawned = Command::new("redis-server")
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr)
        .spawn();
    let mut child = match spawned {
        Ok(child) => child,
        Err(err) if err.kind() == io::ErrorKind::NotFound => panic!(
            "redis-server is not installed or not on PATH; the cachekit tests need a real \
             server (install it with `sudo apt-get install -y redis-server`)"
        ),
        Err(err) => return Err(failure(dir, &format!("could not be spawned: {err}"))),
    };
    let deadline = Instant::now() + STARTUP_TIMEOUT;
    loop {
        let output = read_since(dir, log_from, console_from);
        match child.try_wait() {
            Ok(Some(status)) => {
                return Err(if output.contains("Address already in use") {
                    LaunchError::PortTaken
                } else {
                    failure(dir, &format!("exited during startup ({status})"))
                });
            }
            Ok(None) => {}
            Err(err) => {
                kill(&mut child);
                return Err(failure(dir, &format!("could not be watched: {err}")));
            }
        }
        // The log line comes first: it proves that *this* process bound the
        // port, not some other server that took it in the meantime.
        let ready = output.contains(READY_LINE) || output.contains(SENTINEL_READY_LINE);
        if ready && answers(addr, tls) {
            return Ok(child);
        }
        if Instant::now() >= deadline {
            kill(&mut child);
            return Err(failure(
                dir,
                &format!("did not answer on {addr} within {STARTUP_TIMEOUT:?}"),
            ));
        }
        thread::sleep(POLL_INTERVAL);
    }
}
