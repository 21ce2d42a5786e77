use cachekit::cached;

#[cached]
fn push(items: &mut Vec<u64>, item: u64) -> usize {
    items.push(item);
    items.len()
}

#[cached]
fn maybe(item: Option<&mut u64>) -> u64 {
    item.map_or(0, |i| *i)
}

fn main() {}
