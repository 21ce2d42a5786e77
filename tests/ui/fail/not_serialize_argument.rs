use cachekit::cached;

struct Connection;

#[cached]
fn load(id: u64, conn: Connection) -> u64 {
    let _ = conn;
    id
}

fn main() {}
