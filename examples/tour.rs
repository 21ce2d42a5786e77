//! A tour of cachekit: cache a slow function and watch which tier answers.
//!
//! ```text
//! cargo run --example tour
//! ```
//!
//! Without configuration it runs on the embedded default: an in-process L1
//! in front of the file backend (in `CACHEKIT_FILE_DIR`, else the platform
//! cache directory), so a second run finds the first run's values on disk.
//! With `CACHEKIT_REDIS_URL` or `REDIS_URL` set (or a cluster's
//! `CACHEKIT_REDIS_CLUSTER_NODES`, or the sentinels' `REDIS_SENTINEL_HOST`),
//! Redis is the shared L2.

use std::time::{Duration, Instant};

use cachekit::{
    FileBackend, FileConfig, KeyBuilder, RedisBackend, RedisConfig, TieredCache, TieredStats,
};
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

/// Redis when the environment names one, else the file backend.
async fn build_cache() -> cachekit::Result<(TieredCache, String)> {
    let builder = TieredCache::builder();
    if RedisConfig::env_source().is_some() {
        let config = RedisConfig::from_env()?;
        let shown = config.redacted_url();
        match RedisBackend::new(config).await {
            Ok(redis) => return Ok((builder.l2(redis).build()?, format!("L1 + Redis at {shown}"))),
            Err(err) => println!("Redis unavailable ({err});\nfalling back to the file backend\n"),
        }
    }
    let config = FileConfig::builder().build()?;
    let dir = config.dir().display().to_string();
    let file = tokio::task::spawn_blocking(move || FileBackend::open(config))
        .await
        .map_err(|e| cachekit::Error::new(cachekit::ErrorKind::Io, e.to_string()))??;
    Ok((builder.l2(file).build()?, format!("L1 + files in {dir}")))
}

#[tokio::main]
async fn main() -> cachekit::Result<()> {
    let (cache, tiers) = build_cache().await?;
    println!("cachekit tour: {tiers}\n");

    let keys = KeyBuilder::new("tour", "forecast")?;
    println!("cache key for (\"paris\",): {}\n", keys.key(&("paris",))?);

    cached_forecast(&cache, &keys, "paris").await?;
    cached_forecast(&cache, &keys, "paris").await?;
    cached_forecast(&cache, &keys, "berlin").await?;
    // Another process (or the next run) has no L1: simulate it by dropping ours.
    cache.invalidate_local(&keys.key(&("paris",))?);
    cached_forecast(&cache, &keys, "paris").await?;
    cached_forecast(&cache, &keys, "berlin").await?;

    let s = cache.stats();
    println!(
        "\nstats: L1 hits {} misses {} | L2 hits {} misses {} errors {} | computes {}",
        s.l1.hits, s.l1.misses, s.l2.hits, s.l2.misses, s.l2.errors, s.computes
    );
    println!("run it again: the first calls are now L2 hits.");
    Ok(())
}
