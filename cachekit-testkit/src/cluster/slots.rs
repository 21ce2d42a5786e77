//! Key slots and the cluster's own account of who serves them.

use std::net::SocketAddr;

use crate::topology::{probe, text};
use crate::RedisServer;

/// Slots in a Redis Cluster.
pub(crate) const SLOTS: u16 = 16384;

/// The slot of `key`: CRC16/XMODEM of the key, or of its hash tag (the text
/// between the first `{` and the next `}`, when not empty), modulo 16384.
pub(crate) fn key_slot(key: &str) -> u16 {
    let bytes = key.as_bytes();
    let hashed = match bytes.iter().position(|&b| b == b'{') {
        Some(open) => match bytes[open + 1..].iter().position(|&b| b == b'}') {
            Some(len) if len > 0 => &bytes[open + 1..open + 1 + len],
            _ => bytes,
        },
        None => bytes,
    };
    crc16::State::<crc16::XMODEM>::calculate(hashed) % SLOTS
}

/// One line of `CLUSTER NODES`.
#[derive(Debug, Clone)]
pub(crate) struct NodeEntry {
    pub(crate) id: String,
    pub(crate) addr: Option<SocketAddr>,
    pub(crate) flags: Vec<String>,
    pub(crate) connected: bool,
    /// Inclusive slot ranges served (importing/migrating marks left out).
    pub(crate) slots: Vec<(u16, u16)>,
}

impl NodeEntry {
    pub(crate) fn has_flag(&self, flag: &str) -> bool {
        self.flags.iter().any(|f| f == flag)
    }

    /// A primary that is not marked failed.
    pub(crate) fn is_serving_primary(&self) -> bool {
        self.has_flag("master") && !self.has_flag("fail") && !self.has_flag("fail?")
    }

    pub(crate) fn owns(&self, slot: u16) -> bool {
        self.slots.iter().any(|&(lo, hi)| (lo..=hi).contains(&slot))
    }

    fn parse(line: &str) -> Option<Self> {
        let words: Vec<&str> = line.split_whitespace().collect();
        if words.len() < 8 {
            return None;
        }
        // ip:port@cport[,hostname]
        let addr = words[1].split(['@', ',']).next()?.parse().ok();
        let slots = words[8..]
            .iter()
            .filter(|w| !w.starts_with('['))
            .filter_map(|w| match w.split_once('-') {
                Some((lo, hi)) => Some((lo.parse().ok()?, hi.parse().ok()?)),
                None => w.parse().ok().map(|s| (s, s)),
            })
            .collect();
        Some(Self {
            id: words[0].to_owned(),
            addr,
            flags: words[2].split(',').map(str::to_owned).collect(),
            connected: words[7] == "connected",
            slots,
        })
    }
}

/// `CLUSTER NODES` as `node` sees the cluster.
pub(crate) fn cluster_nodes(node: &RedisServer) -> Result<Vec<NodeEntry>, String> {
    let reply = probe(node, &["CLUSTER", "NODES"])?;
    let listing =
        text(&reply).ok_or_else(|| format!("{} gave an odd CLUSTER NODES reply", node.addr()))?;
    listing
        .lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| {
            NodeEntry::parse(line)
                .ok_or_else(|| format!("{} listed an unreadable node: {line:?}", node.addr()))
        })
        .collect()
}

/// A `CLUSTER NODES` listing's readable lines.
pub(crate) fn parse_listing(listing: &str) -> Vec<NodeEntry> {
    listing.lines().filter_map(NodeEntry::parse).collect()
}

/// The serving primary of `slot` in a node's view.
pub(crate) fn owner(view: &[NodeEntry], slot: u16) -> Option<&NodeEntry> {
    view.iter().find(|e| e.is_serving_primary() && e.owns(slot))
}

/// `count` keys (`key:N`) whose slot is `slot`.
pub(crate) fn keys_in_slot(slot: u16, count: usize) -> Vec<String> {
    (0u64..)
        .map(|i| format!("key:{i}"))
        .filter(|key| key_slot(key) == slot)
        .take(count)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_slots_match_the_cluster_spec() {
        // Values from the Redis Cluster specification and CLUSTER KEYSLOT.
        assert_eq!(key_slot("123456789"), 12739);
        assert_eq!(key_slot("foo"), 12182);
        assert_eq!(key_slot("{user1000}.following"), key_slot("user1000"));
        assert_eq!(key_slot("foo{}{bar}"), key_slot("foo{}{bar}"));
        assert_ne!(key_slot("foo{}{bar}"), key_slot("bar"));
        assert_eq!(key_slot("foo{{bar}}zap"), key_slot("{bar"));
        assert_eq!(key_slot("foo{bar}{zap}"), key_slot("bar"));
    }

    #[test]
    fn parses_cluster_nodes_lines() {
        let line =
            "07c3 127.0.0.1:30004@40004 myself,master - 0 0 1 connected 0-5460 7000 [5461->-e7d1]";
        let entry = NodeEntry::parse(line).unwrap_or_else(|| panic!("unparsed"));
        assert_eq!(entry.addr, "127.0.0.1:30004".parse().ok());
        assert!(entry.is_serving_primary());
        assert_eq!(entry.slots, vec![(0, 5460), (7000, 7000)]);
        assert!(entry.owns(7000) && !entry.owns(5461));
        let replica = "e7d1 127.0.0.1:30005@40005,host slave 07c3 0 0 1 connected";
        let entry = NodeEntry::parse(replica).unwrap_or_else(|| panic!("unparsed"));
        assert!(entry.has_flag("slave") && entry.slots.is_empty());
        assert!(!entry.is_serving_primary());
    }
}
