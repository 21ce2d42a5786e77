use cachekit::cached;

#[cached(ttl = 0)]
fn zero() -> u64 {
    0
}

#[cached(ttl = -5)]
fn negative() -> u64 {
    0
}

#[cached(l1_ttl = 0)]
fn l1_zero() -> u64 {
    0
}

#[cached(version = 0)]
fn version_zero() -> u64 {
    0
}

fn main() {}
