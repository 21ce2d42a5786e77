use cachekit::cached;

struct Pool;

#[cached(skip(pol))]
fn load(pool: &Pool, id: u64) -> u64 {
    let _ = pool;
    id
}

#[cached(skip(self, id, id))]
fn twice(id: u64) -> u64 {
    id
}

fn main() {}
