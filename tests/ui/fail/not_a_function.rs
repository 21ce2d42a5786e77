use cachekit::cached;

#[cached]
struct Answer;

fn main() {}
