use cachekit::cached;

#[cached(tll = 60)]
fn answer() -> u64 {
    42
}

#[cached(expiry = 60)]
fn other() -> u64 {
    7
}

fn main() {}
