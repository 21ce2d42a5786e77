//! Methods: `&self`, smart-pointer receivers, generic impls, associated
//! functions that mention `Self`, and keys that read `self`.
use std::marker::PhantomData;
use std::sync::Arc;

use cachekit::cached;

struct Tenant {
    name: String,
}

impl Tenant {
    #[cached]
    fn greet(&self, who: &str) -> String {
        format!("{} greets {who}", self.name)
    }

    #[cached(key = (&self.name, id))]
    async fn scoped(&self, id: u64) -> String {
        format!("{}/{id}", self.name)
    }

    #[cached]
    async fn shared(self: Arc<Self>, id: u64) -> u64 {
        id + self.name.len() as u64
    }

    #[cached]
    fn build(name: String) -> Option<Self> {
        Some(Tenant { name })
    }
}

impl Clone for Tenant {
    fn clone(&self) -> Self {
        Tenant {
            name: self.name.clone(),
        }
    }
}

impl serde::Serialize for Tenant {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.name.serialize(s)
    }
}

impl<'de> serde::Deserialize<'de> for Tenant {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(|name| Tenant { name })
    }
}

struct Repo<T> {
    kind: PhantomData<T>,
}

impl<T: Send + Sync + 'static> Repo<T> {
    #[cached]
    fn count(&self, table: &str) -> usize {
        table.len()
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let a = Tenant { name: "a".into() };
    let b = Tenant { name: "b".into() };
    assert_eq!(a.greet("x"), "a greets x");
    // `self` is not part of the key: b gets a's entry.
    assert_eq!(b.greet("x"), "a greets x");
    assert!(Tenant::greet_cache()
        .keys()
        .unwrap()
        .operation()
        .ends_with("tenant.greet"));

    assert_eq!(a.scoped(1).await, "a/1");
    assert_eq!(b.scoped(1).await, "b/1");
    assert_eq!(Tenant::scoped_cache().stats().computes, 2);
    assert!(Tenant::scoped_invalidate(&a, 1).await.unwrap());

    assert_eq!(Arc::new(a.clone()).shared(1).await, 2);
    assert_eq!(
        Tenant::build("c".into()).map(|t| t.name),
        Some("c".to_owned())
    );

    let r: Repo<u8> = Repo { kind: PhantomData };
    let s: Repo<String> = Repo { kind: PhantomData };
    assert_eq!(r.count("users"), 5);
    assert_eq!(s.count("users"), 5);
    assert_eq!(Repo::<u8>::count_cache().stats().hits, 1);
    assert_eq!(Repo::<u8>::count_clear().unwrap(), 1);
}
