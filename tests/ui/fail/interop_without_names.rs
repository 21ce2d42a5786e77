use cachekit::cached;

#[cached(interop, ttl = 60)]
fn unnamed(id: u64) -> u64 {
    id
}

#[cached(interop, namespace = "users")]
fn half_named(id: u64) -> u64 {
    id
}

#[cached(interop, namespace = "users", name = "Get_User")]
fn badly_named(id: u64) -> u64 {
    id
}

fn main() {}
