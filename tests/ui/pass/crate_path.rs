//! `crate = path`: the generated code reaches cachekit through a re-export.
mod platform {
    pub use ::cachekit as cache;
}

use platform::cache::cached;

#[cached(crate = crate::platform::cache)]
fn answer() -> u64 {
    42
}

fn main() {
    assert_eq!(answer(), 42);
    assert_eq!(answer_cache().stats().computes, 1);
}
