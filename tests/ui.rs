//! Compile-time behaviour of `#[cached]`: what must build (`ui/pass`, which
//! also run) and what must fail, with the exact messages (`ui/fail/*.stderr`).
//!
//! Regenerate the snapshots with `TRYBUILD=overwrite cargo test --test ui`
//! and read every changed `.stderr` before committing it.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.pass("tests/ui/pass/*.rs");
    t.compile_fail("tests/ui/fail/*.rs");
}
