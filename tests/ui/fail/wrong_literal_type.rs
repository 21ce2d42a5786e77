use cachekit::cached;

// Every problem is reported in one compile.
#[cached(namespace = 5, name = users, l1 = "no", version = "2", ttl = 1.5, cache_none = 1)]
fn answer() -> Option<u64> {
    Some(42)
}

#[cached(returns = either, crate = "cachekit", skip = db)]
fn other(db: u8) -> u8 {
    db
}

fn main() {}
