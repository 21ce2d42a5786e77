use cachekit::cached;

#[cached(ttl = 60, name = "a", ttl = 30)]
fn answer() -> u64 {
    42
}

fn main() {}
