//! Argument and signature shapes the attribute accepts.
#![deny(unused_mut, unused_variables, unfulfilled_lint_expectations)]

use cachekit::cached;
use serde::Serialize;

#[derive(Serialize)]
struct Filter {
    tag: String,
}

#[cached]
fn by_ref(name: &str, filter: &Filter, maybe: Option<&u64>, list: &[u8]) -> String {
    format!("{name}{}{:?}{}", filter.tag, maybe, list.len())
}

#[cached]
fn owned(mut name: String, tags: Vec<String>) -> String {
    name.push_str(&tags.concat());
    name
}

#[cached(key = (std::any::type_name::<T>(), id))]
fn typed<T: Serialize + Default + Send + Sync + 'static>(id: u64) -> String {
    format!("{}{id}", std::any::type_name::<T>())
}

#[cached(key = id)]
fn shown<const N: usize>(id: u64, extra: impl std::fmt::Debug + Send) -> String {
    format!("{id}{N}{extra:?}")
}

#[cached]
fn r#type(r#in: u64) -> u64 {
    r#in
}

#[cached]
#[expect(clippy::too_many_arguments)]
fn many(a: u8, b: u8, c: u8, d: u8, e: u8, f: u8, g: u8, h: u8) -> u32 {
    [a, b, c, d, e, f, g, h].iter().map(|&x| u32::from(x)).sum()
}

#[cfg(any())]
#[cached]
fn never_compiled(x: NoSuchType) -> u8 {
    0
}

mod nested {
    /// Companions get the function's visibility.
    #[cachekit::cached]
    pub fn visible(x: u8) -> u8 {
        x
    }
}

#[cached]
#[expect(unused_variables)]
fn nothing() {
    let unused = 0;
}

fn main() {
    let f = Filter { tag: "t".into() };
    assert_eq!(by_ref("n", &f, Some(&1), &[1, 2]), "ntSome(1)2");
    assert_eq!(owned("a".into(), vec!["b".into()]), "ab");
    assert_eq!(typed::<u8>(1), "u81");
    assert_eq!(typed::<u16>(1), "u161");
    assert_eq!(shown::<3>(1, "x"), "13\"x\"");
    assert_eq!(r#type(5), 5);
    assert_eq!(type_uncached(6), 6);
    assert_eq!(many(1, 1, 1, 1, 1, 1, 1, 1), 8);
    assert_eq!(nested::visible(1), 1);
    assert_eq!(nested::visible_cache().stats().computes, 1);
    nothing();
    nothing();
    assert_eq!(nothing_cache().stats().hits, 1);
}
