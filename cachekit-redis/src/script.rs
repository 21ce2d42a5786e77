//! Lua scripts (the files in `lua/`), sent by hash (EVALSHA) and by
//! source only when the server does not know them yet.

use cachekit_core::Result;
use redis::{FromRedisValue, ServerErrorKind};

use crate::errors::{self, Op};
use crate::pool::{Pool, Retry};

/// A script from `lua/`, and one that ends by storing a value: `store.lua`
/// (`store(key, value, px)`) prepended.
macro_rules! lua {
    ($name:literal) => {
        include_str!(concat!("lua/", $name, ".lua"))
    };
    (storing $name:literal) => {
        concat!(
            include_str!("lua/store.lua"),
            include_str!(concat!("lua/", $name, ".lua"))
        )
    };
}

/// A Lua script with its SHA1, computed once.
pub(crate) struct Script {
    source: &'static str,
    sha: String,
}

impl Script {
    pub(crate) fn new(source: &'static str) -> Self {
        Self {
            source,
            sha: redis::Script::new(source).get_hash().to_owned(),
        }
    }

    /// Runs the script with `numkeys` keys; `args` appends the keys and
    /// then the arguments.
    ///
    /// Never resent after a broken connection: a script may have run before
    /// the connection broke, and a second run would see its own write.
    pub(crate) async fn run<T: FromRedisValue + Send>(
        &self,
        pool: &Pool,
        op: Op<'_>,
        numkeys: usize,
        args: impl Fn(&mut redis::Cmd),
    ) -> Result<T> {
        let mut by_hash = redis::cmd("EVALSHA");
        by_hash.arg(&self.sha).arg(numkeys);
        args(&mut by_hash);
        let reply = match pool.run::<T>(&by_hash, op, Retry::Never).await? {
            Err(err) if err.kind() == redis::ErrorKind::Server(ServerErrorKind::NoScript) => {
                let mut by_source = redis::cmd("EVAL");
                by_source.arg(self.source).arg(numkeys);
                args(&mut by_source);
                pool.run::<T>(&by_source, op, Retry::Never).await?
            }
            reply => reply,
        };
        reply.map_err(|err| errors::command_error(err, pool.target(), op))
    }
}

/// Every script the backend runs, hashed once per backend.
pub(crate) struct Scripts {
    pub(crate) set_if_absent: Script,
    pub(crate) compare_and_set: Script,
    pub(crate) release_lock: Script,
    pub(crate) extend_lock: Script,
    pub(crate) get_with_ttl: Script,
    pub(crate) set_unless_deleted: Script,
    pub(crate) delete_and_mark: Script,
}

impl Scripts {
    pub(crate) fn new() -> Self {
        Self {
            set_if_absent: Script::new(lua!(storing "set_if_absent")),
            compare_and_set: Script::new(lua!(storing "compare_and_set")),
            release_lock: Script::new(lua!("release_lock")),
            extend_lock: Script::new(lua!("extend_lock")),
            get_with_ttl: Script::new(lua!("get_with_ttl")),
            set_unless_deleted: Script::new(lua!(storing "set_unless_deleted")),
            delete_and_mark: Script::new(lua!("delete_and_mark")),
        }
    }
}
