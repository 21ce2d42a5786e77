use cachekit::cached;

#[cached]
fn show(value: impl std::fmt::Display) -> String {
    value.to_string()
}

// Fine: the argument is not part of the key.
#[cached(skip(value))]
fn show_skipped(id: u64, value: impl std::fmt::Display + Send) -> String {
    format!("{id}{value}")
}

fn main() {}
