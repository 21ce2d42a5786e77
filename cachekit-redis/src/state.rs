//! What every part of a [`RedisBackend`](crate::RedisBackend) shares: its
//! pool, its scripts, its settings and its invalidation listener's
//! targets. In a module of its own so that the parts (commands, health,
//! locks, topology checks, the listener) depend on it and not on each
//! other.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use cachekit_core::Invalidations;

use crate::pool::{Pool, Targets};
use crate::script::Scripts;

pub(crate) struct Inner {
    pub(crate) pool: Pool,
    pub(crate) key_prefix: String,
    pub(crate) lock_wait: Duration,
    /// The config's `Display`, which holds no password.
    pub(crate) shown: String,
    pub(crate) scripts: Scripts,
    /// Where the invalidation listener connects, and its channel once a
    /// cache asked for it.
    pub(crate) tracking: Targets,
    pub(crate) invalidations: OnceLock<Arc<Invalidations>>,
    pub(crate) connect_timeout: Duration,
    pub(crate) response_timeout: Duration,
    /// Off only in benches (see `BenchSwitches::no_deletion_marks`).
    pub(crate) deletion_marks: bool,
}
