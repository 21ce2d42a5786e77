//! The commands every operation is built from: keys with the backend's
//! prefix, single GET and SET, pipelined SETs, and the SCAN/UNLINK loop of
//! prefix deletes (on every primary of a cluster).

use std::time::Duration;

use bytes::Bytes;
use cachekit_core::Result;

use super::SCAN_COUNT;
use crate::errors::{self, Op};
use crate::pool::{Request, Retry};
use crate::state::Inner;
use crate::wire::{escape_glob, px};

impl Inner {
    /// SCANs for the keys starting with the key prefix plus `prefix`
    /// (glob characters escaped) and UNLINKs them; returns how many went.
    /// In a cluster every primary is scanned.
    pub(crate) async fn unlink_matching(&self, prefix: &str) -> Result<u64> {
        let full = format!("{}{prefix}", self.key_prefix);
        let pattern = format!("{}*", escape_glob(&full));
        if !self.pool.is_cluster() {
            return self.unlink_scanned(None, &pattern, prefix).await;
        }
        let mut removed: u64 = 0;
        for (host, port) in crate::topology::primaries(self).await? {
            let n = self
                .unlink_scanned(Some((&host, port)), &pattern, prefix)
                .await?;
            removed = removed.saturating_add(n);
        }
        Ok(removed)
    }

    /// The SCAN/UNLINK loop on one server (`node` in a cluster).
    async fn unlink_scanned(
        &self,
        node: Option<(&str, u16)>,
        pattern: &str,
        prefix: &str,
    ) -> Result<u64> {
        let scan_op = Op::new("SCAN", Some(prefix));
        let unlink_op = Op::new("UNLINK (prefix)", Some(prefix));
        let mut cursor: u64 = 0;
        let mut removed: u64 = 0;
        loop {
            let mut scan = redis::cmd("SCAN");
            scan.arg(cursor)
                .arg("MATCH")
                .arg(pattern)
                .arg("COUNT")
                .arg(SCAN_COUNT);
            let request = match node {
                Some((host, port)) => Request::At(&scan, host, port),
                None => Request::Cmd(&scan),
            };
            let (next, keys): (u64, Vec<Vec<u8>>) = self.pool.query(request, scan_op).await?;
            for batch in keys.chunks(SCAN_COUNT) {
                let mut unlink = redis::cmd("UNLINK");
                unlink.arg(batch);
                let n: u64 = self.pool.query(&unlink, unlink_op).await?;
                removed = removed.saturating_add(n);
            }
            if next == 0 {
                return Ok(removed);
            }
            cursor = next;
        }
    }

    /// Tells every process's L1 that the keys under `prefix` are gone
    /// (their listeners also hear of each key removed, but not of L1
    /// entries whose L2 write had failed). Best effort: a refusal (an ACL
    /// without PUBLISH) is logged at debug level.
    pub(crate) async fn announce_clear(&self, prefix: &str) {
        let mut publish = redis::cmd("PUBLISH");
        publish
            .arg(crate::tracking::CLEAR_CHANNEL)
            .arg(format!("{}{prefix}", self.key_prefix));
        if let Err(err) = self
            .pool
            .query::<i64>(&publish, Op::new("PUBLISH", None))
            .await
        {
            tracing::debug!(target: "cachekit", error = %err, "could not announce a prefix clear");
        }
    }

    /// `GET key`; a key of another type is a miss.
    pub(crate) async fn get_one(&self, key: &str) -> Result<Option<Bytes>> {
        let op = Op::new("GET", Some(key));
        let cmd = self.command("GET", key, 0, 0);
        match self
            .pool
            .run::<Option<Bytes>>(&cmd, op, Retry::Idempotent)
            .await?
        {
            Ok(value) => Ok(value),
            Err(err) if errors::is_wrong_type(&err) => Ok(None),
            Err(err) => Err(errors::command_error(err, self.pool.target(), op)),
        }
    }

    /// `SET key value [PX ttl]` for a TTL that is not zero.
    pub(crate) async fn set_one(
        &self,
        key: &str,
        value: &[u8],
        ttl: Option<Duration>,
    ) -> Result<()> {
        // "PX" and up to 20 digits.
        let mut cmd = self.command("SET", key, 3, value.len() + 22);
        cmd.arg(value);
        if let Some(ttl) = ttl {
            cmd.arg("PX").arg(px(ttl));
        }
        // SET replaces a key of any type, so WRONGTYPE cannot happen here.
        self.pool.query::<()>(&cmd, Op::new("SET", Some(key))).await
    }

    /// One pipeline of `SET key value [PX ttl]`, one per entry.
    pub(crate) async fn set_pipelined<'a>(
        &self,
        entries: impl Iterator<Item = &'a (&'a str, Bytes)>,
        ttl: Option<Duration>,
    ) -> Result<()> {
        let mut pipe = redis::pipe();
        for (key, value) in entries {
            pipe.cmd("SET").arg(self.prefixed(key)).arg(value.as_ref());
            if let Some(ttl) = ttl {
                pipe.arg("PX").arg(px(ttl));
            }
            pipe.ignore();
        }
        self.pool
            .query::<()>(&pipe, Op::new("SET (pipelined)", None))
            .await
    }

    /// `key` with the prefix, as one command argument written in place.
    pub(crate) fn prefixed<'a>(&'a self, key: &'a str) -> Prefixed<'a> {
        Prefixed {
            prefix: &self.key_prefix,
            key,
        }
    }

    /// Command `name` on the prefixed `key`, with room for `more` further
    /// arguments of `bytes` bytes in all: building it allocates once, where
    /// growing from empty reallocated (and copied a large value) several
    /// times.
    pub(crate) fn command(&self, name: &str, key: &str, more: usize, bytes: usize) -> redis::Cmd {
        let size = name.len() + self.key_prefix.len() + key.len() + bytes;
        let mut cmd = redis::Cmd::with_capacity(2 + more, size);
        cmd.arg(name).arg(self.prefixed(key));
        cmd
    }
}

/// A key with the backend's prefix, written as one argument without
/// building the joined string first.
#[derive(Clone, Copy)]
pub(crate) struct Prefixed<'a> {
    prefix: &'a str,
    key: &'a str,
}

impl redis::ToRedisArgs for Prefixed<'_> {
    fn write_redis_args<W: ?Sized + redis::RedisWrite>(&self, out: &mut W) {
        use std::io::Write as _;
        let mut arg = out.writer_for_next_arg();
        // Writing to a command's buffer cannot fail.
        let _ = arg.write_all(self.prefix.as_bytes());
        let _ = arg.write_all(self.key.as_bytes());
    }
}
