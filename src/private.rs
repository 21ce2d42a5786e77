//! What `#[cached]` expands to. Not a stable API: only the attribute's
//! generated code calls into this module (as `cachekit::__private`, or the
//! path given with `crate = ...`).
//!
//! Each cached function owns one `CachedFn`, built on its first call
//! from a `Setup` and kept in a `static OnceLock`. The cache it uses may
//! be shared with other functions (the process-wide default is), so the
//! handle keeps its own counters: `FnStats` are this function's alone,
//! while `TieredCache::stats` covers every function of that cache.

use std::fmt::Display;
use std::sync::Arc;

pub use std::sync::OnceLock;
pub use std::time::Duration;

use cachekit_core::{Backend, ErrorKind};
pub use cachekit_core::{Cacheable, Error, KeyBuilder, Policy, Result, TieredCache};

#[path = "private/calls.rs"]
mod calls;
#[path = "private/handle.rs"]
mod handle;
#[path = "private/probe.rs"]
mod probe;

/// The injectable clock, for tests that advance time instead of sleeping.
pub use cachekit_core::clock;
pub use cachekit_core::keys::ArgBytes;
/// The remembered-entry shortcut, for the benches that rebuild it by hand.
pub use cachekit_core::remembered;
pub use calls::{option, option_blocking, result, result_blocking, settle, value, value_blocking};
pub use handle::{CachedFn, Call, FnStats};
pub use probe::*;

const LOG: &str = "cachekit";

/// How the operation segment of the keys is chosen.
#[derive(Debug, Clone, Copy)]
pub enum Operation {
    /// `name = "..."`, checked at compile time.
    Named(&'static str),
    /// A free function: its module path and name.
    Free {
        /// `module_path!()` where the function is defined.
        module: &'static str,
        /// The function's name.
        name: &'static str,
    },
    /// A method: its module path, `Self`'s type name and its name.
    Method {
        /// `module_path!()` where the `impl` is.
        module: &'static str,
        /// `std::any::type_name::<Self>()`.
        owner: &'static str,
        /// The method's name.
        name: &'static str,
    },
}

/// A cached function's options, as the attribute gave them.
#[derive(Debug)]
pub struct Setup {
    /// The namespace segment, checked at compile time.
    pub namespace: &'static str,
    /// How to name the operation segment.
    pub operation: Operation,
    /// `version = N`: the operation segment gets a `.vN` suffix.
    pub version: Option<u32>,
    /// `ttl`; `None` uses the cache's default TTL.
    pub ttl: Option<Duration>,
    /// `max_stale`: serve-stale window; `None` uses the cache's default.
    pub max_stale: Option<Duration>,
    /// `compute_timeout`: with serve-stale, how long a recomputation may
    /// take before the stale value is returned.
    pub compute_timeout: Option<Duration>,
    /// The tier options (`l1`, `l1_ttl`).
    pub tiers: Tiers,
    /// `interop`: values in the family's interop/v1 format.
    pub interop: bool,
    /// `encrypted`: values encrypted with [`default_encryption`](crate::default_encryption()).
    pub encrypted: bool,
}

/// The function's own tier options, applied to whatever cache it gets.
#[derive(Debug, Clone, Copy)]
pub struct Tiers {
    /// `l1 = false` turns the in-process tier off for this function.
    pub l1: bool,
    /// `l1_ttl`: how long an entry may live in this function's L1.
    pub l1_ttl: Option<Duration>,
}

impl Tiers {
    fn is_default(&self) -> bool {
        self.l1 && self.l1_ttl.is_none()
    }
}

/// Marker types that keep the [`IntoCache`] impls apart.
pub mod marker {
    use std::marker::PhantomData;

    /// A ready [`TieredCache`](super::TieredCache).
    #[derive(Debug)]
    pub struct Tiered;
    /// Any [`Backend`](super::Backend), which gets an L1 in front.
    #[derive(Debug)]
    pub struct AnyBackend;
    /// A `Result` of one of the others.
    #[derive(Debug)]
    pub struct Fallible<M>(PhantomData<M>);
}

/// What `backend = ...` accepts: a [`TieredCache`], any [`Backend`]
/// (including `Arc<dyn Backend>`), or a `Result` of either.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be used as the backend of a #[cached] function",
    label = "not a cache or backend",
    note = "`backend = ...` takes a `TieredCache`, any `Backend` (such as `RedisBackend` or \
            `MemoryBackend`), an `Arc<dyn Backend>`, or a `Result` of one of these"
)]
pub trait IntoCache<M> {
    /// The cache for a function with these tier options; `None` means the
    /// function has no tier left and runs uncached.
    ///
    /// # Errors
    /// When the backend expression failed or the cache cannot be built.
    fn into_cache(self, tiers: &Tiers) -> Result<Option<TieredCache>>;
}

impl IntoCache<marker::Tiered> for TieredCache {
    fn into_cache(self, tiers: &Tiers) -> Result<Option<TieredCache>> {
        with_tiers(&self, tiers)
    }
}

impl<B: Backend + 'static> IntoCache<marker::AnyBackend> for B {
    fn into_cache(self, tiers: &Tiers) -> Result<Option<TieredCache>> {
        build(Some(Arc::new(self)), tiers)
    }
}

impl<M, X: IntoCache<M>, E: Display> IntoCache<marker::Fallible<M>> for Result<X, E> {
    fn into_cache(self, tiers: &Tiers) -> Result<Option<TieredCache>> {
        match self {
            Ok(backend) => backend.into_cache(tiers),
            Err(err) => Err(Error::new(
                ErrorKind::Config,
                format!("the `backend = ...` expression failed: {err}"),
            )),
        }
    }
}

/// Calls [`IntoCache::into_cache`]; generated code names no trait.
///
/// # Errors
/// As [`IntoCache::into_cache`].
pub fn into_cache<M, B: IntoCache<M>>(backend: B, tiers: &Tiers) -> Result<Option<TieredCache>> {
    backend.into_cache(tiers)
}

/// `cache` as it is when the options are the default; otherwise a cache of
/// this function's own with the requested L1 in front of `cache`'s L2.
pub(crate) fn with_tiers(cache: &TieredCache, tiers: &Tiers) -> Result<Option<TieredCache>> {
    if tiers.is_default() {
        return Ok(Some(cache.clone()));
    }
    if !tiers.l1 && cache.l2().is_none() {
        return Ok(None);
    }
    // Same L2, guards and policy as the given cache; only the L1 differs
    // (shared with the given cache when only its age cap changes).
    let l1 = if tiers.l1 { cache.l1().cloned() } else { None };
    let cap = tiers
        .l1_ttl
        .unwrap_or(cachekit_core::tiered::DEFAULT_L1_MAX_TTL);
    cache.with_l1(l1, cap).map(Some)
}

pub(crate) fn build(l2: Option<Arc<dyn Backend>>, tiers: &Tiers) -> Result<Option<TieredCache>> {
    let mut builder = TieredCache::builder();
    if !tiers.l1 {
        if l2.is_none() {
            return Ok(None);
        }
        builder = builder.without_l1();
    }
    if let Some(l1_ttl) = tiers.l1_ttl {
        builder = builder.l1_max_ttl(l1_ttl);
    }
    if let Some(l2) = l2 {
        builder = builder.l2_arc(l2);
    }
    builder.build().map(Some)
}

/// The operation segment: `name = "..."`, or derived from where the
/// function is (see the attribute's docs for the rule), plus `.vN`.
pub(crate) fn operation_segment(operation: Operation, version: Option<u32>) -> String {
    let mut segment = match operation {
        Operation::Named(name) => name.to_owned(),
        Operation::Free { module, name } => derived(module, None, name),
        Operation::Method {
            module,
            owner,
            name,
        } => derived(module, Some(owner), name),
    };
    if let Some(v) = version {
        segment.push_str(&format!(".v{v}"));
    }
    if segment.len() > MAX_SEGMENT {
        shorten(&mut segment);
    }
    segment
}

const MAX_SEGMENT: usize = 64;

/// `crate::a::b` + `Owner<T>` + `name` -> `a.b.owner.name`.
fn derived(module: &str, owner: Option<&str>, name: &str) -> String {
    // The crate's own name is already the namespace.
    let mut parts: Vec<&str> = module.split("::").skip(1).collect();
    if let Some(owner) = owner {
        let without_generics = owner.split('<').next().unwrap_or(owner);
        let without_dyn = without_generics.trim_start_matches("dyn ");
        parts.push(without_dyn.rsplit("::").next().unwrap_or(without_dyn));
    }
    parts.push(name);
    let mut out = String::with_capacity(module.len() + name.len() + 8);
    for part in parts {
        if !out.is_empty() {
            out.push('.');
        }
        let part = part.strip_prefix("r#").unwrap_or(part);
        out.extend(part.chars().map(|c| match c.to_ascii_lowercase() {
            c @ ('a'..='z' | '0'..='9' | '_' | '-') => c,
            _ => '_',
        }));
    }
    out.trim_start_matches(|c: char| !c.is_ascii_alphanumeric())
        .to_owned()
}

/// Too long: keep the end (the most specific part) behind a hash of the
/// whole, so two long paths with the same ending stay apart.
fn shorten(segment: &mut String) {
    let hash = cachekit_core::keys::args_hash(&(segment.as_str(),)).unwrap_or_default();
    let head = hash.get(..12).unwrap_or_default();
    let room = MAX_SEGMENT - head.len() - 1;
    let tail_start = segment.len() - room;
    let tail = segment
        .get(tail_start..)
        .unwrap_or_default()
        .trim_start_matches(|c: char| !c.is_ascii_alphanumeric());
    *segment = format!("{head}.{tail}");
}

pub(crate) use cachekit_core::runtime::in_runtime;

#[cfg(test)]
mod tests {
    use super::*;

    fn op(operation: Operation, version: Option<u32>) -> String {
        operation_segment(operation, version)
    }

    #[test]
    fn derived_operations_follow_the_documented_rule() {
        let free = |module, name| Operation::Free { module, name };
        assert_eq!(op(free("a::b", "get_user"), None), "b.get_user");
        assert_eq!(op(free("a::b::c", "get_user"), None), "b.c.get_user");
        assert_eq!(op(free("a", "get_user"), None), "get_user");
        assert_eq!(
            op(free("a::_private", "r#type"), Some(2)),
            "private.type.v2"
        );
        let method = Operation::Method {
            module: "app::repo",
            owner: "app::repo::UserRepo<alloc::string::String>",
            name: "get",
        };
        assert_eq!(op(method, None), "repo.userrepo.get");
        assert_eq!(op(Operation::Named("get_user"), Some(3)), "get_user.v3");
    }

    /// Every call moves its `Probe` through a few frames: it must have no
    /// tag of its own (see `Probe::Key`): the size of the entry it borrows.
    #[test]
    fn a_probe_is_no_larger_than_the_entry_it_borrows() {
        use cachekit_core::remembered::{CallKey, Probe, RememberedEntry};
        use std::mem::size_of;
        assert_eq!(
            size_of::<Probe<'static>>(),
            size_of::<RememberedEntry<'static>>()
        );
        assert_eq!(size_of::<Option<CallKey>>(), size_of::<CallKey>());
    }

    #[test]
    fn long_operations_keep_their_end_and_stay_apart() {
        let long_a = "app::".to_owned() + &"very_long_module_name::".repeat(4) + "a";
        let long_b = "app::".to_owned() + &"very_long_module_nama::".repeat(4) + "a";
        let leak = |s: String| -> &'static str { Box::leak(s.into_boxed_str()) };
        let a = op(
            Operation::Free {
                module: leak(long_a),
                name: "get_user",
            },
            None,
        );
        let b = op(
            Operation::Free {
                module: leak(long_b),
                name: "get_user",
            },
            None,
        );
        assert!(a.len() <= 64 && b.len() <= 64, "{a} {b}");
        assert!(a.ends_with(".get_user"), "{a}");
        assert_ne!(a, b);
        assert!(
            cachekit_core::keys::validate_segment("operation", &a).is_ok(),
            "{a}"
        );
    }
}
