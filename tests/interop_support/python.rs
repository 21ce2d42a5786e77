//! cachekit-py as a second process on the test's `redis-server`: the
//! scripts in `tests/interop_py/`, run by the Python of `.venv-interop`
//! (which `scripts/install-deps.sh` makes, with `cachekit==0.24.*` from
//! PyPI) or by `$CACHEKIT_TEST_PYTHON`.
//!
//! Without that Python the interop tests fail, saying what is missing: a
//! skipped test would pass in CI without checking anything.
//!
//! Included by each test file with `#[path]`; not every file uses every
//! helper.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use cachekit_testkit::RedisServer;
use serde_json::{json, Value};

/// Names a Python to use instead of the one in `.venv-interop`.
pub const PYTHON_ENV: &str = "CACHEKIT_TEST_PYTHON";

/// The cachekit-py line these tests are written against.
pub const PY_CACHEKIT: &str = "0.24.";

/// The longest a script may take; they take about a second.
const SCRIPT_PATIENCE: Duration = Duration::from_secs(60);

/// What a Python body returns when it runs (`calls.py`'s `MARKER`): a read
/// that finds the value in Redis never sees it.
pub const PY_BODY_RAN: &str = "python body ran";

fn workspace() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The interpreter, checked once: it exists and imports cachekit 0.24.
///
/// # Panics
///
/// When it does not, with what is missing and how to install it.
pub fn python() -> &'static Path {
    static FOUND: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    match FOUND.get_or_init(find_python) {
        Ok(path) => path,
        Err(problem) => panic!("{problem}"),
    }
}

fn find_python() -> Result<PathBuf, String> {
    let fix = "run ./scripts/install-deps.sh, which makes .venv-interop with cachekit==0.24.* \
               from PyPI (or set CACHEKIT_TEST_PYTHON to a python that has it)";
    let (path, source) = match std::env::var_os(PYTHON_ENV) {
        Some(path) if !path.is_empty() => (PathBuf::from(path), PYTHON_ENV),
        _ => (workspace().join(".venv-interop/bin/python"), "the default"),
    };
    if !path.exists() {
        return Err(format!(
            "the interop tests need cachekit-py, and there is no Python at {} ({source}): {fix}",
            path.display()
        ));
    }
    let out = Command::new(&path)
        .args([
            "-c",
            "import importlib.metadata as m, cachekit; print(m.version('cachekit'))",
        ])
        .output()
        .map_err(|e| format!("cannot run {} ({source}): {e}; {fix}", path.display()))?;
    let version = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let why = stderr.lines().rfind(|l| !l.trim().is_empty()).unwrap_or("");
        return Err(format!(
            "{} ({source}) cannot import cachekit ({}): {fix}",
            path.display(),
            why.trim()
        ));
    }
    if !version.starts_with(PY_CACHEKIT) {
        return Err(format!(
            "{} ({source}) has cachekit {version}; these tests are written against \
             {PY_CACHEKIT}x: {fix}",
            path.display()
        ));
    }
    Ok(path)
}

/// Runs `tests/interop_py/<script>` with `args`, cachekit-py pointed at
/// `server`, and returns its standard output.
///
/// # Panics
///
/// When it fails or takes over a minute, with its standard error and the
/// server's log.
pub fn run_script(script: &str, args: &[&str], server: Option<&RedisServer>) -> String {
    let path = workspace().join("tests/interop_py").join(script);
    let mut command = Command::new(python());
    command
        .arg(&path)
        .args(args)
        // No __pycache__ in the source tree.
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // cachekit-py reads its settings from the environment (a master key
    // alone changes what it does): only what the test sets.
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("CACHEKIT_") || name == "REDIS_URL" {
            command.env_remove(name);
        }
    }
    if let Some(server) = server {
        command.env("CACHEKIT_REDIS_URL", server.url());
    }
    let log = || server.map(RedisServer::log).unwrap_or_default();
    let mut child = command
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", python().display()));
    let drain = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut text = Vec::new();
            let _ = pipe.read_to_end(&mut text);
            String::from_utf8_lossy(&text).into_owned()
        })
    };
    let stdout = drain(Box::new(child.stdout.take().expect("piped stdout")));
    let stderr = drain(Box::new(child.stderr.take().expect("piped stderr")));
    let deadline = Instant::now() + SCRIPT_PATIENCE;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(10)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "{script} took over {SCRIPT_PATIENCE:?}; stderr:\n{}\nserver log:\n{}",
                    stderr.join().unwrap_or_default(),
                    log()
                );
            }
            Err(e) => panic!("waiting for {script}: {e}"),
        }
    };
    let (stdout, stderr) = (
        stdout.join().unwrap_or_default(),
        stderr.join().unwrap_or_default(),
    );
    assert!(
        status.success(),
        "{script} {args:?} exited with {status}; stderr:\n{stderr}\nserver log:\n{}",
        log()
    );
    stdout
}

/// One call of a cachekit-py `@cache(interop=operation, namespace=...)`
/// function of `args` (tagged JSON, see `tests/interop_py/tagged.py`).
/// Its body returns `value`, or [`PY_BODY_RAN`] for a call expected to
/// read what Rust wrote.
#[derive(Debug, Clone)]
pub struct PyCall(Value);

impl PyCall {
    /// A call whose value should come from Redis.
    pub fn read(namespace: &str, operation: &str, args: Value) -> Self {
        Self(json!({"namespace": namespace, "operation": operation, "args": args}))
    }

    /// A call whose body runs and returns `value`, which cachekit-py stores.
    pub fn write(namespace: &str, operation: &str, args: Value, value: Value) -> Self {
        Self::read(namespace, operation, args).with("value", value)
    }

    /// The last `count` arguments are the Python function's parameter
    /// defaults, not passed: cachekit-py binds them into the key.
    pub fn defaults(self, count: usize) -> Self {
        self.with("defaults", json!(count))
    }

    /// With cachekit-py's encryption (`single_tenant_mode`; `tenant` is
    /// `"default"` or a canonical deployment UUID).
    pub fn encrypted(self, master_key_hex: &str, tenant: &str) -> Self {
        self.with(
            "encryption",
            json!({"master_key": master_key_hex, "tenant": tenant}),
        )
    }

    fn with(mut self, name: &str, value: Value) -> Self {
        self.0[name] = value;
        self
    }
}

/// What one [`PyCall`] saw.
#[derive(Debug, Clone, PartialEq)]
pub struct PyResult {
    /// Whether the Python body ran.
    pub ran: bool,
    /// What the call returned, as tagged JSON.
    pub value: Value,
}

/// Runs `calls` in order in one Python process (`calls.py`).
pub fn py_calls(server: &RedisServer, calls: &[PyCall]) -> Vec<PyResult> {
    let spec = json!({"calls": calls.iter().map(|c| &c.0).collect::<Vec<_>>()});
    parse_results(
        &run_script("calls.py", &[&spec.to_string()], Some(server)),
        calls,
    )
}

/// Runs `calls` in order in one Python process whose backend is
/// cachekit-py's file backend in `dir`.
pub fn py_file_calls(dir: &Path, calls: &[PyCall]) -> Vec<PyResult> {
    let spec = json!({
        "calls": calls.iter().map(|c| &c.0).collect::<Vec<_>>(),
        "file_dir": dir.to_str().expect("a UTF-8 directory"),
    });
    parse_results(&run_script("calls.py", &[&spec.to_string()], None), calls)
}

fn parse_results(out: &str, calls: &[PyCall]) -> Vec<PyResult> {
    let results: Vec<Value> = serde_json::from_str(out)
        .unwrap_or_else(|e| panic!("calls.py printed no JSON list ({e}): {out}"));
    assert_eq!(results.len(), calls.len(), "calls.py: {out}");
    results
        .into_iter()
        .map(|r| PyResult {
            ran: r["ran"].as_bool().expect("calls.py reports ran"),
            value: r["value"].clone(),
        })
        .collect()
}

/// Has cachekit-py write, in auto mode (no `interop=`), the entry of a
/// function of `args` returning `value` under namespace `namespace`, and
/// copies its bytes (a CK frame) to `key`. Returns the bytes.
pub fn py_plant_auto_entry(
    server: &RedisServer,
    namespace: &str,
    args: Value,
    value: Value,
    key: &str,
) -> Vec<u8> {
    let spec = json!({"calls": [{
        "auto": true, "namespace": namespace, "args": args, "value": value, "copy_to": key,
    }]});
    let out = run_script("calls.py", &[&spec.to_string()], Some(server));
    let results: Value = serde_json::from_str(&out)
        .unwrap_or_else(|e| panic!("calls.py printed no JSON ({e}): {out}"));
    let hex = results[0]["stored"]
        .as_str()
        .unwrap_or_else(|| panic!("calls.py reported no stored bytes: {out}"));
    cachekit_testkit::tagged::decode_hex(hex).expect("calls.py reports hex")
}

/// A cache over the Redis at `url` (set by the test before the first call
/// of a function whose `backend` this is), behind the default L1.
pub fn redis_at(url: &OnceLock<String>) -> cachekit::Result<cachekit::TieredCache> {
    let url = url.get().cloned().unwrap_or_default();
    let config = cachekit::RedisConfig::builder().url(url).build()?;
    let redis = cachekit::RedisBackend::connect_lazy(config)?;
    cachekit::TieredCache::builder().l2(redis).build()
}

/// The Rust bodies that ran, in order.
static RAN: std::sync::Mutex<Vec<&'static str>> = std::sync::Mutex::new(Vec::new());

/// Records that the Rust body `name` ran.
pub fn ran(name: &'static str) {
    RAN.lock().unwrap_or_else(|e| e.into_inner()).push(name);
}

/// The bodies that ran since the last call, in order.
pub fn take_ran() -> Vec<&'static str> {
    std::mem::take(&mut *RAN.lock().unwrap_or_else(|e| e.into_inner()))
}
