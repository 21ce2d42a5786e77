//! Options for a [`SentinelSet`], and starting one.

use std::fmt;
use std::fmt::Write as _;
use std::time::Duration;

use super::SentinelSet;
use crate::RedisServer;

/// Configures a [`SentinelSet`] before it starts.
///
/// ```no_run
/// use cachekit_testkit::SentinelSet;
///
/// let set = SentinelSet::builder()
///     .replicas(2)
///     .master_name("cache")
///     .requirepass("data-secret")
///     .sentinel_password("sentinel-secret")
///     .start();
/// assert!(set.url().starts_with("redis+sentinel://:data-secret@127.0.0.1:"));
/// assert!(set.url().ends_with("/cache"));
/// ```
#[derive(Clone)]
#[must_use]
pub struct SentinelSetBuilder {
    replicas: usize,
    sentinels: usize,
    master_name: String,
    requirepass: Option<String>,
    sentinel_password: Option<String>,
    down_after: Duration,
    failover_timeout: Duration,
}

impl Default for SentinelSetBuilder {
    fn default() -> Self {
        Self {
            replicas: 1,
            sentinels: 3,
            master_name: "mymaster".to_owned(),
            requirepass: None,
            sentinel_password: None,
            down_after: Duration::from_millis(1000),
            failover_timeout: Duration::from_millis(5000),
        }
    }
}

impl SentinelSetBuilder {
    /// How many replicas follow the primary (1 by default).
    pub fn replicas(mut self, n: usize) -> Self {
        self.replicas = n;
        self
    }

    /// How many sentinels watch (3 by default; the quorum is a majority).
    ///
    /// # Panics
    ///
    /// In [`start`](Self::start), when `n` is 0.
    pub fn sentinels(mut self, n: usize) -> Self {
        self.sentinels = n;
        self
    }

    /// The name the sentinels monitor the primary as (`mymaster` by default).
    pub fn master_name(mut self, name: impl Into<String>) -> Self {
        self.master_name = name.into();
        self
    }

    /// The data nodes' password: `requirepass` and `masterauth` on every
    /// data node, `sentinel auth-pass` on the sentinels; in
    /// [`SentinelSet::url`].
    pub fn requirepass(mut self, password: impl Into<String>) -> Self {
        self.requirepass = Some(password.into());
        self
    }

    /// The sentinels' own password (`requirepass` on each sentinel, and
    /// `sentinel sentinel-pass` so they reach each other). Not in
    /// [`SentinelSet::url`]: clients get it separately.
    pub fn sentinel_password(mut self, password: impl Into<String>) -> Self {
        self.sentinel_password = Some(password.into());
        self
    }

    /// `down-after-milliseconds` (1 s by default): how long the primary
    /// must be unreachable before a sentinel thinks it down.
    pub fn down_after(mut self, after: Duration) -> Self {
        self.down_after = after;
        self
    }

    /// `failover-timeout` (5 s by default); a failed election is retried
    /// after twice this.
    pub fn failover_timeout(mut self, timeout: Duration) -> Self {
        self.failover_timeout = timeout;
        self
    }

    /// Starts the data nodes, makes all but the first replicas of the
    /// first, starts the sentinels, and waits until a failover could start
    /// at once (see [`SentinelSet::wait_ready`]).
    ///
    /// # Panics
    ///
    /// When there are no sentinels, a process does not come up, or the set
    /// does not settle within 60 seconds; the message includes the logs.
    pub fn start(self) -> SentinelSet {
        assert!(
            self.sentinels > 0,
            "a sentinel set needs at least one sentinel"
        );
        let data_nodes: Vec<RedisServer> = (0..=self.replicas).map(|_| self.data_node()).collect();
        let primary_port = data_nodes[0].port().to_string();
        for replica in &data_nodes[1..] {
            let reply = replica.command(&["REPLICAOF", "127.0.0.1", &primary_port]);
            assert_eq!(
                reply,
                "OK",
                "REPLICAOF on {}: {}",
                replica.addr(),
                replica.log()
            );
        }
        let sentinels = (0..self.sentinels)
            .map(|_| self.sentinel(data_nodes[0].port()))
            .collect();
        let set = SentinelSet {
            master_name: self.master_name,
            password: self.requirepass,
            sentinels,
            data_nodes,
        };
        set.wait_ready();
        set
    }

    fn data_node(&self) -> RedisServer {
        // Diskless sync without its default 5 s delay: replicas sync at once.
        let mut node = RedisServer::builder().config("repl-diskless-sync-delay", "0");
        if let Some(password) = &self.requirepass {
            node = node
                .requirepass(password.clone())
                .config("masterauth", password.clone());
        }
        node.start()
    }

    /// The sentinel config file: directives that only a config file takes,
    /// and one the sentinel can rewrite as it learns the deployment.
    fn sentinel_config(&self, primary_port: u16) -> String {
        let name = &self.master_name;
        let quorum = self.sentinels / 2 + 1;
        let mut conf = String::new();
        let mut line = |text: String| {
            let _ = writeln!(conf, "{text}");
        };
        // Every address handed out is a loopback IP, never a host name.
        line("sentinel resolve-hostnames no".to_owned());
        line("sentinel announce-hostnames no".to_owned());
        line("sentinel announce-ip 127.0.0.1".to_owned());
        line(format!(
            "sentinel monitor {name} 127.0.0.1 {primary_port} {quorum}"
        ));
        line(format!(
            "sentinel down-after-milliseconds {name} {}",
            self.down_after.as_millis()
        ));
        line(format!(
            "sentinel failover-timeout {name} {}",
            self.failover_timeout.as_millis()
        ));
        line(format!("sentinel parallel-syncs {name} 1"));
        if let Some(password) = &self.requirepass {
            line(format!("sentinel auth-pass {name} {}", quote(password)));
        }
        if let Some(password) = &self.sentinel_password {
            line(format!("sentinel sentinel-pass {}", quote(password)));
        }
        conf
    }

    fn sentinel(&self, primary_port: u16) -> RedisServer {
        let mut sentinel = RedisServer::builder();
        sentinel.config_file = Some(self.sentinel_config(primary_port));
        sentinel.sentinel = true;
        if let Some(password) = &self.sentinel_password {
            sentinel = sentinel.requirepass(password.clone());
        }
        sentinel.start()
    }
}

/// A config-file argument in double quotes, as Redis's config parser reads it.
fn quote(value: &str) -> String {
    let mut out = String::from("\"");
    for c in value.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

impl fmt::Debug for SentinelSetBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SentinelSetBuilder")
            .field("replicas", &self.replicas)
            .field("sentinels", &self.sentinels)
            .field("master_name", &self.master_name)
            .field(
                "requirepass",
                &self.requirepass.as_ref().map(|_| "<redacted>"),
            )
            .field(
                "sentinel_password",
                &self.sentinel_password.as_ref().map(|_| "<redacted>"),
            )
            .field("down_after", &self.down_after)
            .field("failover_timeout", &self.failover_timeout)
            .finish()
    }
}
