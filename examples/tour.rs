//! A tour of cachekit: cache a slow function and watch which tier answers.
//!
//! ```text
//! cargo run --example tour
//! ```
//!
//! Without configuration it runs on the embedded default (an in-process L1).
//! With `CACHEKIT_REDIS_URL` or `REDIS_URL` set, Redis becomes the shared L2.

use std::time::{Duration, Instant};

use cachekit::{KeyBuilder, TieredCache, TieredStats};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Forecast {
    city: String,
    celsius: f64,
    summary: String,
}

/// Stands in for a slow remote call.
async fn fetch_forecast(city: &str) -> Forecast {
    tokio::time::sleep(Duration::from_millis(300)).await;
    Forecast {
        city: city.to_string(),
        celsius: 11.5 + city.len() as f64,
        summary: "light rain".into(),
    }
}

/// Names the tier that served a call by comparing counters around it.
fn served_by(before: &TieredStats, after: &TieredStats) -> &'static str {
    if after.computes > before.computes {
        "computed"
    } else if after.l1.hits > before.l1.hits {
        "L1 (memory)"
    } else if after.l2.hits > before.l2.hits {
        "L2"
    } else {
        "shared flight"
    }
}

async fn cached_forecast(
    cache: &TieredCache,
    keys: &KeyBuilder,
    city: &str,
) -> cachekit::Result<()> {
    let key = keys.key(&(city,))?;
    let before = cache.stats();
    let started = Instant::now();
    let forecast = cache
        .get_or_compute(&key, Some(Duration::from_secs(300)), || {
            fetch_forecast(city)
        })
        .await;
    let elapsed = started.elapsed();
    println!(
        "{:<8} {:>5.1} °C  served by {:<12} in {:>10.3?}",
        forecast.city,
        forecast.celsius,
        served_by(&before, &cache.stats()),
        elapsed
    );
    Ok(())
}

#[tokio::main]
async fn main() -> cachekit::Result<()> {
    let cache = TieredCache::builder().build()?;
    println!("cachekit tour: L1 only (set CACHEKIT_REDIS_URL to add Redis as L2)\n");

    let keys = KeyBuilder::new("tour", "forecast")?;
    println!("cache key for (\"paris\",): {}\n", keys.key(&("paris",))?);

    cached_forecast(&cache, &keys, "paris").await?;
    cached_forecast(&cache, &keys, "paris").await?;
    cached_forecast(&cache, &keys, "berlin").await?;
    // Another process (or a restart) has no L1: simulate it by dropping ours.
    cache.invalidate_local(&keys.key(&("paris",))?);
    cached_forecast(&cache, &keys, "paris").await?;
    cached_forecast(&cache, &keys, "berlin").await?;

    let s = cache.stats();
    println!(
        "\nstats: L1 hits {} misses {} | L2 hits {} misses {} errors {} | computes {}",
        s.l1.hits, s.l1.misses, s.l2.hits, s.l2.misses, s.l2.errors, s.computes
    );
    Ok(())
}
