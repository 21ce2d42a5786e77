//! Deletion marks: how a computation started before a key was deleted
//! (invalidated) or its prefix cleared, in any process, is kept from
//! storing its result over the deletion.
//!
//! Each delete also increments a counter in Redis, and a computation reads
//! the counter before it starts (`Backend::deletion_mark`); its
//! result is stored by a script that checks the counter first, so the
//! check and the write are atomic on the server. Counters are shared by
//! keys of one cluster hash slot (at most 16,384 small keys): a delete of another key of the same slot during a
//! computation costs that computation its store, never correctness; a
//! counter expires a day after its slot's last delete. The
//! counter key carries a hash tag that puts it in the key's slot, so the
//! script works on a cluster too. Prefix clears also increment one
//! counter per backend, checked on standalone and Sentinel deployments; a
//! cluster cannot check it in the same script (another slot) and relies on
//! the clear's announcement to each process instead.

use std::sync::OnceLock;

use bytes::Bytes;
use cachekit_core::Result;
use redis::Value;

use crate::errors::Op;
use crate::state::Inner;

/// Cluster hash slots.
const SLOTS: usize = 16_384;

/// Where cachekit keeps its counters, under the backend's key prefix.
pub(crate) const MARKS: &str = "__cachekit__:";

impl Inner {
    /// The counter of `key`'s slot (the Redis key, prefix included).
    fn slot_counter(&self, key: &str) -> String {
        let tag = &tags()[usize::from(slot(self.redis_key(key).as_bytes()))];
        format!("{}{MARKS}deleted:{{{tag}}}", self.key_prefix)
    }

    /// The counter of prefix clears, where a script can check it with the
    /// key (not on a cluster).
    fn clears_counter(&self) -> Option<String> {
        (!self.pool.is_cluster()).then(|| format!("{}{MARKS}cleared", self.key_prefix))
    }

    fn redis_key(&self, key: &str) -> String {
        format!("{}{key}", self.key_prefix)
    }

    /// The counters of `key`, as `<slot counter> <clears counter>`.
    pub(crate) async fn deletion_mark(&self, key: &str) -> Result<Bytes> {
        let mut read = redis::cmd("MGET");
        read.arg(self.slot_counter(key));
        if let Some(clears) = self.clears_counter() {
            read.arg(clears);
        }
        let values: Vec<Value> = self.pool.query(&read, Op::new("MGET", Some(key))).await?;
        let mut mark = Vec::new();
        for (i, value) in values.iter().enumerate() {
            if i > 0 {
                mark.push(b' ');
            }
            match value {
                Value::BulkString(count) => mark.extend_from_slice(count),
                _ => mark.push(b'0'),
            }
        }
        Ok(Bytes::from(mark))
    }

    /// Stores `value` unless a counter moved past `mark`.
    pub(crate) async fn set_unless_deleted(
        &self,
        key: &str,
        value: Bytes,
        px: String,
        mark: &[u8],
    ) -> Result<bool> {
        let mut counts = mark.split(|b| *b == b' ');
        let slot_seen = counts.next().unwrap_or(b"0").to_vec();
        let clears_seen = counts.next().unwrap_or(b"0").to_vec();
        let clears = self.clears_counter();
        let numkeys = if clears.is_some() { 3 } else { 2 };
        let redis_key = self.redis_key(key);
        let counter = self.slot_counter(key);
        let stored: i64 = self
            .scripts
            .set_unless_deleted
            .run(&self.pool, Op::new("EVALSHA", Some(key)), numkeys, |cmd| {
                cmd.arg(&redis_key).arg(&counter);
                if let Some(clears) = &clears {
                    cmd.arg(clears);
                }
                cmd.arg(value.as_ref())
                    .arg(&px)
                    .arg(&slot_seen)
                    .arg(&clears_seen);
            })
            .await?;
        Ok(stored == 1)
    }

    /// Removes `key` and counts the deletion; whether it existed.
    pub(crate) async fn delete_and_mark(&self, key: &str) -> Result<bool> {
        let redis_key = self.redis_key(key);
        let counter = self.slot_counter(key);
        let removed: i64 = self
            .scripts
            .delete_and_mark
            .run(&self.pool, Op::new("UNLINK", Some(key)), 2, |cmd| {
                cmd.arg(&redis_key).arg(&counter);
            })
            .await?;
        Ok(removed > 0)
    }

    /// Counts a prefix clear (not on a cluster, see the module docs).
    pub(crate) async fn mark_clear(&self) -> Result<()> {
        if let Some(clears) = self.clears_counter() {
            let mut incr = redis::cmd("INCR");
            incr.arg(clears);
            self.pool.query::<i64>(&incr, Op::new("INCR", None)).await?;
        }
        Ok(())
    }
}

/// The cluster hash slot of a Redis key (CRC16 of its hash tag, if any).
pub(crate) fn slot(key: &[u8]) -> u16 {
    let hashed = match key.iter().position(|b| *b == b'{') {
        Some(open) => match key[open + 1..].iter().position(|b| *b == b'}') {
            Some(len) if len > 0 => &key[open + 1..open + 1 + len],
            _ => key,
        },
        None => key,
    };
    crc16::State::<crc16::XMODEM>::calculate(hashed) % SLOTS as u16
}

/// For each slot, a short hash tag that lands in it: the smallest decimal
/// number that does. Computed once (about 150,000 CRCs, a few ms).
fn tags() -> &'static [String] {
    static TAGS: OnceLock<Vec<String>> = OnceLock::new();
    TAGS.get_or_init(|| {
        let mut tags = vec![String::new(); SLOTS];
        let mut left = SLOTS;
        let mut n: u64 = 0;
        while left > 0 {
            let tag = n.to_string();
            let slot = usize::from(slot(tag.as_bytes()));
            if tags[slot].is_empty() {
                tags[slot] = tag;
                left -= 1;
            }
            n += 1;
        }
        tags
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_match_the_cluster_spec() {
        // From the Redis cluster specification and `CLUSTER KEYSLOT`.
        assert_eq!(slot(b"123456789"), 12_739);
        assert_eq!(slot(b"foo"), 12_182);
        assert_eq!(slot(b"{user1000}.following"), slot(b"user1000"));
        assert_eq!(slot(b"foo{}{bar}"), slot(b"foo{}{bar}"));
        assert_ne!(
            slot(b"foo{}{bar}"),
            slot(b"bar"),
            "an empty tag hashes the whole key"
        );
        assert_eq!(slot(b"foo{{bar}}zap"), slot(b"{bar"));
    }

    #[test]
    fn every_slot_has_a_tag_that_lands_in_it() {
        let tags = tags();
        assert_eq!(tags.len(), SLOTS);
        for (i, tag) in tags.iter().enumerate() {
            assert_eq!(usize::from(slot(tag.as_bytes())), i);
        }
    }
}
