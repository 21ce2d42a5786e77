use cachekit::cached;

#[cached(cache_none)]
fn answer() -> u64 {
    42
}

fn main() {}
