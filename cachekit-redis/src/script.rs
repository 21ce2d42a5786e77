//! Lua scripts, sent by hash (EVALSHA) and by source only when the server
//! does not know them yet.

use cachekit_core::Result;
use redis::{FromRedisValue, ServerErrorKind};

use crate::errors::{self, Op};
use crate::pool::{Pool, Retry};

/// A script that ends by storing a value the way every cachekit write
/// does: `store(key, value, px)`, with `px` the PX milliseconds, `''` (no
/// expiry) or `'0'` (expired at once: the key is deleted); returns 1.
macro_rules! storing_script {
    ($body:literal) => {
        concat!(
            r"
local function store(key, value, px)
  if px == '0' then
    redis.call('DEL', key)
  elseif px == '' then
    redis.call('SET', key, value)
  else
    redis.call('SET', key, value, 'PX', px)
  end
  return 1
end
",
            $body
        )
    };
}
pub(crate) use storing_script;

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
            set_if_absent: Script::new(crate::backend::SET_IF_ABSENT),
            compare_and_set: Script::new(crate::cas::COMPARE_AND_SET),
            release_lock: Script::new(crate::lock::RELEASE_LOCK),
            extend_lock: Script::new(crate::lock::EXTEND_LOCK),
            get_with_ttl: Script::new(crate::topology::GET_WITH_TTL),
            set_unless_deleted: Script::new(crate::deletions::SET_UNLESS_DELETED),
            delete_and_mark: Script::new(crate::deletions::DELETE_AND_MARK),
        }
    }
}
