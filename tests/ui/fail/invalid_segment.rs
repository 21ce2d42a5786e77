use cachekit::cached;

#[cached(namespace = "Users", name = "get:user")]
fn get_user(id: u64) -> u64 {
    id
}

fn main() {}
