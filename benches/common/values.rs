//! The values every library caches, and the key distribution of the mixed
//! workload. Everything random is seeded, so two runs do the same work.

use serde::{Deserialize, Serialize};

/// About 200 bytes as MessagePack: a typical row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Small {
    pub id: u64,
    pub name: String,
    pub email: String,
    pub roles: Vec<String>,
    pub bio: String,
}

/// 16 KiB of text that LZ4 cannot shrink much (seeded random letters), so
/// no library wins by compressing a repeated byte.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Large {
    pub id: u64,
    pub body: String,
}

pub const LARGE_BODY: usize = 16 * 1024;

pub fn small(id: u64) -> Small {
    Small {
        id,
        name: "Alice Example".into(),
        email: "alice@example.com".into(),
        roles: vec!["admin".into(), "editor".into(), "billing".into()],
        bio: "Writes caches for a living; reads benchmarks for fun. ".repeat(2),
    }
}

pub fn large(id: u64) -> Large {
    let mut rng = fastrand::Rng::with_seed(0x5eed_0000 ^ id);
    Large {
        id,
        body: (0..LARGE_BODY).map(|_| rng.alphanumeric()).collect(),
    }
}

/// Zipf(s) over `0..n` by inverse CDF: a binary search per draw, cheap next
/// to a Redis round trip.
pub struct Zipf {
    cdf: Vec<f64>,
}

impl Zipf {
    pub fn new(n: usize, s: f64) -> Self {
        let mut cdf = Vec::with_capacity(n);
        let mut total = 0.0;
        for rank in 1..=n {
            total += 1.0 / (rank as f64).powf(s);
            cdf.push(total);
        }
        for c in &mut cdf {
            *c /= total;
        }
        Self { cdf }
    }

    pub fn sample(&self, rng: &mut fastrand::Rng) -> u64 {
        let u = rng.f64();
        let i = self.cdf.partition_point(|&c| c < u);
        i.min(self.cdf.len() - 1) as u64
    }
}
