//! This process's own writes, as the invalidation channel reports them
//! back: a cache that just wrote a key and put the value in L1 should not
//! drop it when the server announces that write.
//!
//! Before a write goes to L2 the cache expects its echo; the first
//! announcement of the key that finds one expected consumes it and leaves
//! L1 alone. That is safe whatever the order: the channel delivers
//! announcements in the order the server applied the writes, so an
//! announcement that consumes the expectation is of our write or of one
//! applied before it (our value is the newer), and any later write's
//! announcement finds none left. An expectation whose write failed is
//! withdrawn; one whose echo never comes expires after [`EXPECT_FOR`]
//! (a late echo then drops the entry: a lookup in L2, never a stale value).
//! Echoes are expected only while the channel is live, and a flush (the
//! channel broke or came back) forgets them all: echoes of writes made
//! before a reconnection never come.

use std::time::Duration;

use moka::ops::compute::Op;

/// How long an expected echo is waited for.
const EXPECT_FOR: Duration = Duration::from_secs(1);

pub(crate) struct Echoes(moka::sync::Cache<String, u32>);

impl Default for Echoes {
    fn default() -> Self {
        Self(
            moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(EXPECT_FOR)
                .build(),
        )
    }
}

impl Echoes {
    /// A write of `key` is about to be sent.
    pub(crate) fn expect(&self, key: &str) {
        self.0.entry_by_ref(key).and_compute_with(|found| {
            Op::Put(found.map_or(1, |n| n.into_value().saturating_add(1)))
        });
    }

    /// The channel broke or came back: echoes of earlier writes will not
    /// come, and an expectation left over would swallow a later change.
    pub(crate) fn clear(&self) {
        self.0.invalidate_all();
    }

    /// The write of `key` failed: its echo may never come.
    pub(crate) fn withdraw(&self, key: &str) {
        self.consume(key);
    }

    /// An announcement of `key` arrived; whether it was an expected echo.
    pub(crate) fn consume(&self, key: &str) -> bool {
        let mut consumed = false;
        self.0
            .entry_by_ref(key)
            .and_compute_with(|found| match found {
                Some(n) => {
                    consumed = true;
                    match n.into_value() {
                        0 | 1 => Op::Remove,
                        left => Op::Put(left - 1),
                    }
                }
                None => Op::Nop,
            });
        consumed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_expected_echo_is_consumed_once() {
        let echoes = Echoes::default();
        assert!(!echoes.consume("k"));
        echoes.expect("k");
        echoes.expect("k");
        assert!(echoes.consume("k"));
        assert!(echoes.consume("k"));
        assert!(!echoes.consume("k"), "two writes, two echoes");
        echoes.expect("k");
        echoes.withdraw("k");
        assert!(!echoes.consume("k"), "withdrawn");
    }
}
