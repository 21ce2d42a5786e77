//! The `#[cached]` attribute of [cachekit](https://docs.rs/cachekit).
//!
//! Use it as `cachekit::cached`; this crate is an implementation detail
//! and its generated code only reaches the runtime through cachekit.

mod args;
mod errors;
mod expand;
mod segment;
mod validate;

use proc_macro::TokenStream;

/// Caches a function's results, keyed by its arguments, in cachekit's
/// tiered cache (an in-process L1, and Redis or a file directory as L2).
///
/// ```
/// use cachekit::cached;
///
/// #[cached(namespace = "users", name = "get_user", ttl = 60)]
/// async fn get_user(id: u64) -> String {
///     format!("user {id}") // a database query, say
/// }
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// assert_eq!(get_user(42).await, "user 42"); // runs the body
/// assert_eq!(get_user(42).await, "user 42"); // answered by the cache
/// assert_eq!(get_user_cache().stats().computes, 1);
/// # }
/// ```
///
/// It works on `async fn` and plain `fn` (which may be called from inside
/// a Tokio runtime or from any other thread), on free functions and on
/// methods taking `&self`. Arguments may be owned values or references
/// (`&str`, `&T`, `Option<&T>`): anything `serde::Serialize`. The result
/// must be `Serialize + DeserializeOwned + Clone + Send + Sync + 'static`.
/// On a plain `fn`, the arguments and the error type must also be `Send`:
/// the blocking path may finish the computation on a cachekit thread.
///
/// # What is cached
///
/// | return type    | cached                                 |
/// |----------------|----------------------------------------|
/// | `T`            | every value                            |
/// | `Result<T, E>` | `Ok` values; an `Err` is returned as is |
/// | `Option<T>`    | `Some` values; `None` too with `cache_none` |
///
/// Any path ending in `Result<..>` counts as a `Result` (`io::Result<T>`,
/// `anyhow::Result<T>`), and `Option<T>` as an `Option`. When a type alias
/// hides them, say so with `returns = result` or `returns = option`; a type
/// that merely looks like one is cached whole with `returns = value`.
///
/// Concurrent calls with the same arguments run the body once; the others
/// wait for its result. A cache failure never fails a call: the body runs,
/// the failure is logged (target `cachekit`) and counted.
///
/// # Options
///
/// - `backend = expr`: the cache to use, evaluated once, on the first call.
///   A `TieredCache`, any `Backend` (which gets the default L1 in front of
///   it), an `Arc<dyn Backend>`, or a `Result` of one of these (an `Err` is
///   logged and the function caches in process memory only). It sees the
///   function's scope, not its arguments.
///   ```
///   # use cachekit::{cached, MemoryBackend, TieredCache};
///   fn shared_cache() -> cachekit::Result<TieredCache> {
///       TieredCache::builder().l2(MemoryBackend::builder().build()?).build()
///   }
///
///   #[cached(backend = shared_cache())]
///   fn price(sku: &str) -> u32 { sku.len() as u32 }
///   # assert_eq!(price("abc"), 3);
///   ```
///   Without it, the process-wide default is used: the cache given to
///   `cachekit::set_default_backend`, else Redis if `CACHEKIT_REDIS_URL` or
///   `REDIS_URL` is set, else an L1 only. It is resolved on the first
///   call of such a function, and shared by all of them.
/// - `ttl = 60` (seconds, at least 1) or `ttl = <Duration expression>`
///   (a `std::time::Duration`, evaluated once): how long entries live.
///   Without it, the cache's default TTL applies (none unless the
///   `TieredCache` sets one).
///   ```
///   # use cachekit::cached;
///   use std::time::Duration;
///
///   #[cached(ttl = Duration::from_millis(1500))]
///   fn quote(symbol: &str) -> f64 { 101.5 }
///   # assert_eq!(quote("X"), 101.5);
///   ```
/// - `l1_ttl = 10` or a `Duration`: how long an entry may live in this
///   process's L1 (bounds how stale it may be after another process
///   changes it). `l1 = false` keeps this function out of L1 entirely; it
///   then runs uncached when its backend has no L2. Either option gives the
///   function an L1 of its own, in front of its backend's L2.
///   ```
///   # use cachekit::cached;
///   #[cached(l1_ttl = 5, ttl = 300)]
///   fn feature_flags(team: &str) -> Vec<String> { vec![team.to_owned()] }
///   # assert_eq!(feature_flags("core"), ["core"]);
///   ```
/// - `max_stale = 3600` or a `Duration`: serve-stale. Entries are kept this
///   long past their `ttl`; when recomputing an expired entry fails (`Err`,
///   `None`) or, with `compute_timeout = 2` (or a `Duration`), takes longer
///   than that, the stale value is returned instead and the source is left
///   alone for a second. Every caller of a key must use the same window.
///   ```
///   # use cachekit::cached;
///   #[cached(ttl = 60, max_stale = 3600, compute_timeout = 2)]
///   fn rates(base: &str) -> Result<Vec<f64>, String> { Ok(vec![1.0]) }
///   # assert_eq!(rates("EUR"), Ok(vec![1.0]));
///   ```
///   For refresh-ahead, TTL jitter or a stampede lock, give the function a
///   `backend` configured with them ([`TieredCacheBuilder::policy`] and
///   [`TieredCacheBuilder::stampede_lock`]).
///
///   [`TieredCacheBuilder::policy`]: https://docs.rs/cachekit/latest/cachekit/struct.TieredCacheBuilder.html#method.policy
///   [`TieredCacheBuilder::stampede_lock`]: https://docs.rs/cachekit/latest/cachekit/struct.TieredCacheBuilder.html#method.stampede_lock
/// - `namespace = "users"`, `name = "get_user"`: the first two segments of
///   the key, each matching `^[a-z0-9][a-z0-9._-]{0,63}$` (checked at
///   compile time). Defaults below.
/// - `version = 2`: appends `.v2` to the operation segment, so that entries
///   written before the return type changed are never read as the new type.
///   ```
///   # use cachekit::cached;
///   #[cached(name = "profile", version = 2)]
///   fn profile(id: u64) -> (String, u32) { ("ada".into(), 36) }
///   # assert_eq!(profile_cache().keys().unwrap().operation(), "profile.v2");
///   ```
/// - `key = expr`: what the key is made of instead of the arguments. The
///   key is `namespace:operation:hash((expr,))`, so `key = id` gives the
///   same key as a function whose only argument is `id`. It is evaluated
///   before the body and must not move arguments the body needs: write
///   `key = (id, &name)`, not `key = (id, name)`. Required on generic
///   functions.
///   ```
///   # use cachekit::cached;
///   # struct Db;
///   #[cached(key = user_id, skip(db))]
///   fn avatar(db: &Db, user_id: u64, size: u32) -> String { format!("{user_id}") }
///   # assert_eq!(avatar(&Db, 7, 64), "7");
///   ```
/// - `skip(arg, ...)`: arguments left out of the key, such as a connection
///   pool. `self` is never part of the key.
///   ```
///   # use cachekit::cached;
///   # struct Pool;
///   #[cached(skip(pool))]
///   async fn orders(pool: &Pool, customer: u64) -> Vec<u64> { vec![customer] }
///   # #[tokio::main(flavor = "current_thread")] async fn main() {
///   # assert_eq!(orders(&Pool, 3).await, [3]);
///   # }
///   ```
/// - `cache_none`: cache `None` results too (negative caching).
///   ```
///   # use cachekit::cached;
///   #[cached(cache_none, ttl = 30)]
///   fn find_user(email: &str) -> Option<u64> { None }
///   # assert_eq!(find_user("x@example.com"), None);
///   # assert_eq!(find_user("x@example.com"), None);
///   # assert_eq!(find_user_cache().stats().hits, 1);
///   ```
/// - `interop`: store the cachekit family's interop/v1 value, one canonical
///   MessagePack document, so that cachekit-py's
///   `@cache(interop="get_user", namespace="users")` and cachekit-rs in
///   interop mode read and write the same entries (the key is the same
///   either way). Needs `namespace` and `name`, checked at compile time.
///   Structs are maps of their field names; see `cachekit::interop` for
///   datetimes and the README for the whole mapping. A stored value that
///   does not decode into the return type is a miss that is left in place.
///   ```
///   # use cachekit::cached;
///   #[cached(interop, namespace = "users", name = "get_user", ttl = 60)]
///   fn get_user(id: u64) -> (u64, String) { (id, "ada".into()) }
///   # assert_eq!(get_user(1).1, "ada");
///   ```
/// - `encrypted`: encrypt the values as the family does (AES-256-GCM under
///   a tenant key derived from the master key, bound to the entry's key),
///   with `cachekit::set_default_encryption`, else `CACHEKIT_MASTER_KEY`
///   (hex) and `CACHEKIT_DEPLOYMENT_UUID` (the tenant, `"default"` when
///   unset). Without a usable key the function runs uncached (an ERROR
///   says why): it never stores a value in the clear. A value that does
///   not verify is a miss, counted in `stats().l2.undecryptable`, never
///   returned and left in place. With or without `interop`.
/// - `returns = value | result | option`: how to treat the return type
///   when its name does not tell (see above).
///   ```
///   # use cachekit::cached;
///   type Lookup<T> = Result<T, String>;
///
///   #[cached(returns = result)]
///   fn lookup(id: u64) -> Lookup<u64> { Err("not yet".into()) }
///   # assert!(lookup(1).is_err());
///   # assert!(lookup(1).is_err());
///   # assert_eq!(lookup_cache().stats().computes, 2);
///   ```
/// - `crate = path`: where cachekit is, when it is re-exported under
///   another name (`crate = ::my_platform::cachekit`).
///
/// # Keys
///
/// `{namespace}:{operation}:{hash}`, where `hash` is the cachekit
/// interop/v1 hash (Blake2b-256 of the canonical MessagePack) of the tuple
/// of key arguments, in order: `get_user(42)` hashes `(42,)`, like every
/// cachekit implementation, so other languages can share the entries.
/// Each function remembers the keys of recently seen argument lists in a
/// 128-slot table per thread (lists of up to 256 canonical bytes; see
/// `docs/architecture.md`, "The remembered-entry shortcut"), so a repeated call costs one canonical
/// encoding and a table lookup instead of a Blake2b. Lists of plain
/// integers, `bool`s, `char`s and strings (`&str`, `String`) are encoded
/// without serde, to the same bytes. A slot also remembers
/// where its key's value sits in L1, so a repeated call that hits L1 reads
/// the value from there without looking the key up in moka; L1 marks an
/// entry when it is replaced, deleted, evicted or expires, and such an
/// entry is never served.
///
/// - The default namespace is the package name (`CARGO_PKG_NAME`),
///   lowercased.
/// - The default operation is the function's module path without the crate
///   name, then (for methods) the name of `Self` without its generic
///   arguments, then the function's name, joined with `.`: `app::users::get`
///   is `users.get`, `app::a::b::get` is `a.b.get`, a method `get` of
///   `app::repo::UserRepo<T>` is `repo.userrepo.get`, and `app::get` is
///   `get`. Each part is lowercased; characters outside `a-z 0-9 _ -` become
///   `_` and leading punctuation is dropped. Above 64 characters, the
///   segment becomes the first 12 hex characters of the full segment's
///   hash, a `.`, and the segment's last 51 characters. Same-named
///   functions in different modules (or types) therefore get different
///   keys; functions that differ only in letter case, or in characters
///   replaced by `_`, do not. Moving or renaming a function changes its
///   keys: give `name` to keys that must stay put or that other services
///   read.
///
/// # Companions
///
/// Beside `get_user`, with its visibility (as associated functions when it
/// is a method), the attribute generates:
///
/// | item | does |
/// |------|------|
/// | `get_user_cache() -> &'static CachedFn` | the handle: `stats()` (this function's hits, computes and uncached calls), `keys()`, `cache()`, `ttl()` |
/// | `get_user_invalidate(key args) -> cachekit::Result<bool>` | removes the entry of one call from every tier |
/// | `get_user_clear() -> cachekit::Result<u64>` | removes every entry of the function from every tier |
/// | `get_user_uncached(args)` | the body, without the cache |
/// | `get_user_refresh(args)` | runs the body and stores its result (`Ok`/`Some` only, as usual) |
///
/// They are `async` when the function is. `_invalidate` takes the
/// arguments the key is made of: those not skipped, without `self`; with
/// `key = ...`, `self` and the arguments not skipped (so skip what the key
/// expression does not read).
///
/// ```
/// # use cachekit::cached;
/// #[cached]
/// fn slow_square(x: u64) -> u64 { x * x }
///
/// # fn main() -> cachekit::Result<()> {
/// slow_square(3);
/// assert!(slow_square_invalidate(3)?);       // one entry removed
/// assert_eq!(slow_square_refresh(3), 9);     // recomputed and stored
/// assert_eq!(slow_square_clear()?, 1);
/// assert_eq!(slow_square_cache().stats().computes, 2);
/// # Ok(()) }
/// ```
///
/// # Methods
///
/// ```
/// # use cachekit::cached;
/// struct Users { prefix: String }
///
/// impl Users {
///     #[cached(name = "users.display")]
///     fn display(&self, id: u64) -> String { format!("{}{id}", self.prefix) }
/// }
/// # let users = Users { prefix: "#".into() };
/// # assert_eq!(users.display(1), "#1");
/// # assert_eq!(Users::display_cache().stats().computes, 1);
/// ```
///
/// `self` is not part of the key: two instances share entries unless a
/// `key` tells them apart (`key = (&self.tenant, id)`). Methods must take
/// `&self` (or a smart pointer such as `self: Arc<Self>`); the companions
/// are associated functions. A function inside an `impl` that neither
/// takes `self` nor mentions `Self` is taken for a free function (its
/// companions are then called without `Self::` and fail to compile):
/// mention `Self` in it or move it out of the `impl`. Trait impls cannot
/// gain the companion items: cache an inherent method and call it from the
/// trait impl.
///
/// # Compile-time errors
///
/// Each points at the offending token: unknown options (listing the valid
/// ones), duplicate options, ill-typed values, `ttl = 0` or negative,
/// invalid segments, `skip` naming no argument, `&mut` arguments,
/// `impl Trait` arguments in the key, arguments that are not `Serialize`,
/// generic functions without `key`, `self` by value or `&mut self`, and
/// `cache_none` on a function that does not return an `Option`.
#[proc_macro_attribute]
pub fn cached(attr: TokenStream, item: TokenStream) -> TokenStream {
    expand::cached(attr.into(), item.into()).into()
}
