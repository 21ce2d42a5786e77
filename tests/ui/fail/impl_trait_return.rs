use cachekit::cached;

#[cached]
fn numbers() -> impl Iterator<Item = u64> {
    0..3
}

fn main() {}
