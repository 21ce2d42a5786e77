//! Turning the server's push messages into calls on [`Invalidations`].

use std::sync::Arc;

use cachekit_core::Invalidations;
use redis::aio::{AsyncPushSender, SendError};
use redis::{PushInfo, PushKind, Value};
use tokio::sync::Notify;

/// The pub/sub channel on which a prefix clear is announced, with the
/// cleared prefix (key prefix included) as the message.
pub(crate) const CLEAR_CHANNEL: &str = "__cachekit__:clear";

/// What one listening connection does with its pushes. Runs in redis-rs's
/// connection driver: it never blocks.
pub(crate) struct Feed {
    pub(crate) channel: Arc<Invalidations>,
    /// The backend's key prefix, stripped from the keys the server names.
    pub(crate) key_prefix: String,
    /// Woken when the connection closes.
    pub(crate) closed: Arc<Notify>,
}

impl AsyncPushSender for Feed {
    fn send(&self, info: PushInfo) -> Result<(), SendError> {
        match info.kind {
            PushKind::Invalidate => match info.data.first() {
                Some(Value::Array(keys)) => {
                    for key in keys {
                        if let Some(key) = self.ours(key) {
                            self.channel.key(key);
                        }
                    }
                }
                // FLUSHDB / FLUSHALL: a null list of keys.
                _ => self.channel.all(),
            },
            PushKind::Message => {
                if let [channel, Value::BulkString(prefix)] = info.data.as_slice() {
                    if bytes_of(channel) == Some(CLEAR_CHANNEL.as_bytes()) {
                        if let Some(prefix) = self.strip(prefix) {
                            self.channel.prefix(prefix);
                        }
                    }
                }
            }
            PushKind::Disconnection => self.closed.notify_one(),
            _ => {}
        }
        Ok(())
    }
}

impl Feed {
    /// The cache key of a key the server names, if it is one of ours.
    fn ours<'v>(&self, key: &'v Value) -> Option<&'v str> {
        self.strip(bytes_of(key)?)
    }

    fn strip<'v>(&self, key: &'v [u8]) -> Option<&'v str> {
        let key = key.strip_prefix(self.key_prefix.as_bytes())?;
        std::str::from_utf8(key).ok()
    }
}

fn bytes_of(value: &Value) -> Option<&[u8]> {
    match value {
        Value::BulkString(bytes) => Some(bytes),
        Value::SimpleString(text) => Some(text.as_bytes()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(prefix: &str) -> (Feed, Arc<Invalidations>) {
        let channel = Arc::new(Invalidations::new("test"));
        let feed = Feed {
            channel: channel.clone(),
            key_prefix: prefix.to_owned(),
            closed: Arc::new(Notify::new()),
        };
        (feed, channel)
    }

    fn push(kind: PushKind, data: Vec<Value>) -> PushInfo {
        PushInfo { kind, data }
    }

    #[test]
    fn keys_under_the_prefix_are_reported_without_it() {
        let (feed, channel) = feed("app:");
        let keys = Value::Array(vec![
            Value::BulkString(b"app:ns:op:1".to_vec()),
            Value::BulkString(b"other:ns:op:1".to_vec()),
            Value::BulkString(vec![b'a', b'p', b'p', b':', 0xff]),
            Value::Int(3),
        ]);
        feed.send(push(PushKind::Invalidate, vec![keys])).unwrap();
        assert_eq!(channel.stats().keys, 1, "only app:ns:op:1 is ours");
    }

    #[test]
    fn a_flush_flushes_and_a_clear_message_clears_a_prefix() {
        let (feed, channel) = feed("");
        feed.send(push(PushKind::Invalidate, vec![Value::Nil]))
            .unwrap();
        assert_eq!(channel.stats().flushes, 1);
        let message = vec![
            Value::BulkString(CLEAR_CHANNEL.as_bytes().to_vec()),
            Value::BulkString(b"ns:".to_vec()),
        ];
        feed.send(push(PushKind::Message, message)).unwrap();
        let other = vec![
            Value::BulkString(b"news".to_vec()),
            Value::BulkString(b"ns:".to_vec()),
        ];
        feed.send(push(PushKind::Message, other)).unwrap();
        assert_eq!(channel.stats().prefixes, 1);
    }
}
