use cachekit::cached;

#[derive(Clone)]
struct Report;

#[cached]
fn report(id: u64) -> Report {
    let _ = id;
    Report
}

fn main() {}
