//! A real `redis-server` process on a free loopback port, with fault injection.

mod builder;
mod launch;
mod ports;
pub(crate) mod resp;
mod tls;

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use tempfile::TempDir;

pub use builder::RedisServerBuilder;
use launch::LaunchError;
#[cfg(test)]
use ports::leased;
use ports::PortLease;
use resp::{Connection, Reply};
use tls::TlsFiles;

const HOST: &str = "127.0.0.1";
/// Fresh ports tried before giving up: another process can grab a port
/// between our probe and redis-server's bind.
const PORT_ATTEMPTS: usize = 5;
/// The Unix socket's name inside the server's temp dir.
const SOCKET_FILE: &str = "redis.sock";
/// How long `restart` keeps trying to get its old port back.
const RESTART_WINDOW: Duration = Duration::from_secs(3);
const COMMAND_TIMEOUT: Duration = Duration::from_secs(10);
const SIGNAL_WAIT: Duration = Duration::from_secs(5);

/// Everything except RFC 3986 unreserved characters.
const USERINFO: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// A `redis-server` child process on `127.0.0.1` and a free port, in its own
/// temporary directory, with persistence off.
///
/// Every method takes `&self`, so a server can sit in an `Arc` while a test
/// kills, pauses or restarts it underneath a client. Dropping it kills the
/// process (resuming it first if paused) and removes the directory.
///
/// Startup and the fault methods block the calling thread for as long as
/// they take (milliseconds); calling them from an async test is fine.
///
/// ```no_run
/// use cachekit_testkit::RedisServer;
///
/// let server = RedisServer::start();
/// assert_eq!(server.command(&["SET", "k", "v"]), "OK");
/// server.restart();
/// assert_eq!(server.command(&["GET", "k"]), "(nil)");
/// ```
pub struct RedisServer {
    config: RedisServerBuilder,
    port: u16,
    /// Held until the server is dropped, through kills and restarts.
    _lease: PortLease,
    tls: Option<TlsFiles>,
    socket: Option<PathBuf>,
    state: Mutex<State>,
    // Last, so the directory outlives the process during drop.
    dir: TempDir,
}

struct State {
    child: Option<Child>,
    pid: u32,
    paused: bool,
}

pub(crate) fn encode_userinfo(text: &str) -> String {
    utf8_percent_encode(text, USERINFO).to_string()
}

/// The process state letter from `/proc/PID/stat` (`T` when stopped), or
/// `None` where procfs is unavailable.
fn proc_state(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name in parentheses may itself contain spaces or ')'.
    let after_name = &stat[stat.rfind(')')? + 1..];
    after_name.trim_start().chars().next()
}

impl RedisServer {
    /// Starts a plain server with default settings.
    ///
    /// # Panics
    ///
    /// When `redis-server` is not installed or does not come up; the message
    /// includes the server's log.
    pub fn start() -> Self {
        Self::builder().start()
    }

    /// Options for a password, an ACL user, TLS or extra configuration.
    pub fn builder() -> RedisServerBuilder {
        RedisServerBuilder::default()
    }

    pub(crate) fn launch_new(config: RedisServerBuilder) -> Self {
        let dir = match tempfile::Builder::new().prefix("cachekit-redis-").tempdir() {
            Ok(dir) => dir,
            Err(err) => panic!("could not create a temp dir for redis-server: {err}"),
        };
        let tls = config.tls.then(|| tls::generate(dir.path()));
        let socket = config.unix_socket.then(|| dir.path().join(SOCKET_FILE));
        if let Some(contents) = &config.config_file {
            let path = dir.path().join(builder::CONFIG_FILE);
            if let Err(err) = std::fs::write(&path, contents) {
                panic!("could not write {}: {err}", path.display());
            }
        }
        for _ in 0..PORT_ATTEMPTS {
            let lease = if config.cluster_node_timeout.is_some() {
                ports::free_port_with_bus()
            } else {
                ports::free_port()
            };
            let port = lease.port();
            let args = config.server_args(port, dir.path(), tls.as_ref());
            let addr = SocketAddr::from(([127, 0, 0, 1], port));
            match launch::launch(&args, dir.path(), addr, tls.is_some()) {
                Ok(child) => {
                    let pid = child.id();
                    return Self {
                        config,
                        port,
                        _lease: lease,
                        tls,
                        socket,
                        state: Mutex::new(State {
                            child: Some(child),
                            pid,
                            paused: false,
                        }),
                        dir,
                    };
                }
                Err(LaunchError::PortTaken) => continue,
                Err(LaunchError::Failed(message)) => panic!("{message}"),
            }
        }
        panic!(
            "redis-server lost the race for a free port {PORT_ATTEMPTS} times in a row; its log:\n{}",
            launch::read_log(dir.path())
        )
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A panicking test must not stop Drop from killing the process.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn fail(&self, problem: impl fmt::Display) -> ! {
        panic!(
            "redis-server on port {}: {problem}; its log:\n{}",
            self.port,
            self.log()
        )
    }

    /// The port the server listens on (the TLS port for TLS servers).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Always `"127.0.0.1"`: servers never listen beyond loopback.
    pub fn host(&self) -> &'static str {
        HOST
    }

    /// `127.0.0.1:PORT` as a socket address, e.g. for a [`LoopbackProxy`](crate::LoopbackProxy).
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// The URL a client uses: `redis://` or `rediss://`, with the configured
    /// credentials percent-encoded (`redis://:PW@...` for
    /// [`requirepass`](RedisServerBuilder::requirepass), `redis://USER:PW@...`
    /// for an [`acl_user`](RedisServerBuilder::acl_user), which wins when both are set).
    pub fn url(&self) -> String {
        self.url_with_port(self.port)
    }

    /// [`url`](Self::url) with another port, for reaching this server through
    /// a [`LoopbackProxy`](crate::LoopbackProxy).
    pub fn url_with_port(&self, port: u16) -> String {
        let auth = match (&self.config.acl_user, &self.config.requirepass) {
            (Some((user, password)), _) => {
                format!("{}:{}@", encode_userinfo(user), encode_userinfo(password))
            }
            (None, Some(password)) => format!(":{}@", encode_userinfo(password)),
            (None, None) => String::new(),
        };
        format!("{}://{auth}{HOST}:{port}", self.scheme())
    }

    /// The URL without credentials, e.g. to test that a client reports a
    /// missing password well.
    pub fn url_without_auth(&self) -> String {
        format!("{}://{HOST}:{}", self.scheme(), self.port)
    }

    /// [`url`](Self::url) selecting database `db`.
    pub fn url_with_db(&self, db: u32) -> String {
        format!("{}/{db}", self.url())
    }

    /// The Unix socket the server also listens on, when built with
    /// [`unix_socket`](RedisServerBuilder::unix_socket).
    pub fn socket_path(&self) -> Option<&Path> {
        self.socket.as_deref()
    }

    /// `unix:///PATH/redis.sock`, for a server built with
    /// [`unix_socket`](RedisServerBuilder::unix_socket); the configured
    /// credentials, if any, follow as `?user=NAME&pass=PASSWORD`
    /// (percent-encoded), the query parameters redis-rs reads.
    ///
    /// # Panics
    ///
    /// When the server has no Unix socket.
    pub fn unix_url(&self) -> String {
        let Some(path) = &self.socket else {
            panic!("unix_url() needs a server started with RedisServer::builder().unix_socket()")
        };
        let auth = match (&self.config.acl_user, &self.config.requirepass) {
            (Some((user, password)), _) => format!(
                "?user={}&pass={}",
                encode_userinfo(user),
                encode_userinfo(password)
            ),
            (None, Some(password)) => format!("?pass={}", encode_userinfo(password)),
            (None, None) => String::new(),
        };
        format!("unix://{}{auth}", path.display())
    }

    fn scheme(&self) -> &'static str {
        if self.tls.is_some() {
            "rediss"
        } else {
            "redis"
        }
    }

    /// The server's log so far (across restarts), followed by anything it
    /// printed to stdout/stderr.
    pub fn log(&self) -> String {
        launch::read_log(self.dir.path())
    }

    /// The process id of the most recently started `redis-server` (which may
    /// have been stopped since).
    pub fn pid(&self) -> u32 {
        self.state().pid
    }

    /// Whether the process is alive (a paused process is alive).
    pub fn is_running(&self) -> bool {
        let mut state = self.state();
        let alive = match state.child.as_mut().map(Child::try_wait) {
            Some(Ok(None)) => true,
            Some(Ok(Some(_)) | Err(_)) | None => false,
        };
        if !alive {
            state.child = None;
            state.paused = false;
        }
        alive
    }

    fn signal(&self, pid: u32, signal: Signal) {
        let Ok(raw) = i32::try_from(pid) else {
            self.fail(format_args!("pid {pid} does not fit a pid_t"))
        };
        if let Err(err) = kill(Pid::from_raw(raw), signal) {
            self.fail(format_args!("could not send {signal} to pid {pid}: {err}"));
        }
    }

    /// Waits until procfs agrees the process is (or is no longer) stopped, so
    /// that a test's next request sees the effect of the signal.
    fn await_stopped(&self, pid: u32, stopped: bool) {
        let deadline = Instant::now() + SIGNAL_WAIT;
        loop {
            match proc_state(pid) {
                None => return,
                Some(s) if matches!(s, 'T' | 't') == stopped => return,
                Some(s) if Instant::now() >= deadline => self.fail(format_args!(
                    "process {pid} is in state {s:?} {SIGNAL_WAIT:?} after the signal"
                )),
                Some(_) => thread::sleep(Duration::from_millis(1)),
            }
        }
    }

    /// Whether the process is frozen by [`pause`](Self::pause).
    pub fn is_paused(&self) -> bool {
        let state = self.state();
        state.paused && state.child.is_some()
    }

    /// Freezes the process with SIGSTOP: connections stay open, nothing is
    /// answered until [`resume`](Self::resume). Returns once the process is stopped.
    ///
    /// # Panics
    ///
    /// When the server is not running.
    pub fn pause(&self) {
        let mut state = self.state();
        if state.child.is_none() {
            drop(state);
            self.fail("pause() needs a running server");
        }
        let pid = state.pid;
        self.signal(pid, Signal::SIGSTOP);
        state.paused = true;
        self.await_stopped(pid, true);
    }

    /// Continues a paused process with SIGCONT. A no-op when not paused.
    pub fn resume(&self) {
        let mut state = self.state();
        if !state.paused || state.child.is_none() {
            return;
        }
        let pid = state.pid;
        self.signal(pid, Signal::SIGCONT);
        state.paused = false;
        self.await_stopped(pid, false);
    }

    /// Runs `fut` while the server is paused: [`pause`](Self::pause)
    /// before, [`resume`](Self::resume) after. For a client's wait on a
    /// server that answers nothing.
    ///
    /// # Panics
    ///
    /// When the server is not running.
    pub async fn while_paused<F: std::future::Future>(&self, fut: F) -> F::Output {
        self.pause();
        let out = fut.await;
        self.resume();
        out
    }

    fn kill_locked(state: &mut State) {
        if let Some(mut child) = state.child.take() {
            if state.paused {
                // SIGKILL works on a stopped process anyway; continuing it
                // first just keeps the process table tidy on odd kernels.
                if let Ok(raw) = i32::try_from(state.pid) {
                    let _ = kill(Pid::from_raw(raw), Signal::SIGCONT);
                }
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        state.paused = false;
    }

    /// Kills the process with SIGKILL and waits for it to exit. Data is lost
    /// (persistence is off). A no-op when already stopped.
    pub fn stop(&self) {
        Self::kill_locked(&mut self.state());
    }

    /// Kills the process if running and starts a new one on the same port
    /// with the same configuration, then waits until it answers. The data
    /// set is empty afterwards.
    ///
    /// # Panics
    ///
    /// When the port stays taken by another process for 3 seconds or the
    /// server does not come up; the message includes the server's log.
    pub fn restart(&self) {
        let mut state = self.state();
        Self::kill_locked(&mut state);
        let args = self
            .config
            .server_args(self.port, self.dir.path(), self.tls.as_ref());
        let deadline = Instant::now() + RESTART_WINDOW;
        loop {
            match launch::launch(&args, self.dir.path(), self.addr(), self.tls.is_some()) {
                Ok(child) => {
                    state.pid = child.id();
                    state.child = Some(child);
                    return;
                }
                Err(LaunchError::PortTaken) if Instant::now() < deadline => {
                    thread::sleep(Duration::from_millis(50));
                }
                Err(LaunchError::PortTaken) => {
                    drop(state);
                    self.fail(format_args!(
                        "port stayed in use by another process for {RESTART_WINDOW:?} after the restart"
                    ));
                }
                Err(LaunchError::Failed(message)) => {
                    drop(state);
                    panic!("restart failed: {message}");
                }
            }
        }
    }

    /// Sends one command over plain TCP and renders the reply, logging in
    /// first when the server has a password or ACL user.
    ///
    /// The rendering follows `redis-cli`: `OK`, `(integer) 1`, `(nil)`,
    /// `(error) NOAUTH ...`, bulk strings as text (lossy UTF-8), array
    /// elements joined with newlines, `(empty array)`. An error reply is a
    /// normal return; if the login itself is refused (say a test changed
    /// the password), that refusal is returned instead.
    ///
    /// Not for TLS servers: this helper speaks plain TCP only.
    ///
    /// # Panics
    ///
    /// On a TLS server, or when the connection fails or times out (10 s);
    /// the message includes the server's log.
    pub fn command(&self, args: &[&str]) -> String {
        match self.try_command(args, COMMAND_TIMEOUT) {
            Ok(reply) => reply,
            Err(err) => self.fail(format_args!("command {:?} failed: {err}", args.first())),
        }
    }

    /// [`command`](Self::command) with a deadline for each step, returning
    /// I/O failures instead of panicking: useful to show that a paused
    /// server does not answer.
    ///
    /// # Errors
    ///
    /// [`io::ErrorKind::Unsupported`] on a TLS server; otherwise whatever
    /// connecting, writing or reading returned (`WouldBlock` or `TimedOut`
    /// when `timeout` passed without a reply).
    pub fn try_command(&self, args: &[&str], timeout: Duration) -> io::Result<String> {
        self.call(args, timeout).map(|reply| reply.render())
    }

    /// [`try_command`](Self::try_command) returning the decoded reply; a
    /// refused login is returned as the reply.
    pub(crate) fn call(&self, args: &[&str], timeout: Duration) -> io::Result<Reply> {
        if self.tls.is_some() {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "RedisServer::command speaks plain TCP and cannot reach a TLS server",
            ));
        }
        let mut conn = Connection::open(self.addr(), timeout)?;
        let login = match (&self.config.acl_user, &self.config.requirepass) {
            (Some((user, password)), _) => Some(conn.call(&["AUTH", user, password])?),
            (None, Some(password)) => Some(conn.call(&["AUTH", password])?),
            (None, None) => None,
        };
        if let Some(refusal) = login.filter(Reply::is_error) {
            return Ok(refusal);
        }
        conn.call(args)
    }

    /// How many keys database `db` holds besides cachekit's own counters
    /// (`__cachekit__:` keys, see the deletion marks of `cachekit-redis`):
    /// what a test that counts keys means.
    ///
    /// # Panics
    ///
    /// As [`command`](Self::command), or when the reply is not a number.
    pub fn data_keys(&self, db: u32) -> u64 {
        let db = db.to_string();
        let reply = self.command(&["EVAL", DATA_KEYS, "0", &db]);
        match reply.trim_start_matches("(integer) ").parse() {
            Ok(count) => count,
            Err(_) => self.fail(format_args!("counting keys answered {reply:?}")),
        }
    }

    /// Empties every database.
    ///
    /// # Panics
    ///
    /// As [`command`](Self::command), or when the server refuses.
    pub fn flushall(&self) {
        let reply = self.command(&["FLUSHALL"]);
        if reply != "OK" {
            self.fail(format_args!("FLUSHALL answered {reply:?}"));
        }
    }

    fn tls_files(&self, what: &str) -> &TlsFiles {
        match &self.tls {
            Some(files) => files,
            None => panic!("{what}() needs a server started with RedisServer::builder().tls()"),
        }
    }

    /// The CA certificate (PEM) that signed the server and client certificates.
    ///
    /// # Panics
    ///
    /// When the server was not built with [`tls`](RedisServerBuilder::tls).
    pub fn ca_cert_path(&self) -> &Path {
        &self.tls_files("ca_cert_path").ca_cert
    }

    /// A client certificate (PEM) signed by the server's CA.
    ///
    /// # Panics
    ///
    /// When the server was not built with [`tls`](RedisServerBuilder::tls).
    pub fn client_cert_path(&self) -> &Path {
        &self.tls_files("client_cert_path").client_cert
    }

    /// The private key (PEM, PKCS#8) of the client certificate.
    ///
    /// # Panics
    ///
    /// When the server was not built with [`tls`](RedisServerBuilder::tls).
    pub fn client_key_path(&self) -> &Path {
        &self.tls_files("client_key_path").client_key
    }

    /// A CA certificate (PEM) unrelated to the server, for "wrong CA" tests.
    ///
    /// # Panics
    ///
    /// When the server was not built with [`tls`](RedisServerBuilder::tls).
    pub fn other_ca_cert_path(&self) -> &Path {
        &self.tls_files("other_ca_cert_path").other_ca_cert
    }
}

impl fmt::Debug for RedisServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisServer")
            .field("port", &self.port)
            .field("tls", &self.tls.is_some())
            .field("socket", &self.socket)
            .field("config", &self.config)
            .field("dir", &self.dir.path())
            .finish_non_exhaustive()
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        Self::kill_locked(&mut self.state());
    }
}

#[cfg(test)]
mod tests;

/// Counts the keys of database `ARGV[1]` that are not cachekit's counters.
const DATA_KEYS: &str = "redis.call('SELECT', ARGV[1]) local n = 0 \
    for _, k in ipairs(redis.call('KEYS', '*')) do \
    if not string.find(k, '__cachekit__:', 1, true) then n = n + 1 end end return n";
