//! A small HTTP service with a cached endpoint and Prometheus metrics.
//!
//! ```sh
//! cargo run --example metrics            # listens on 127.0.0.1:3000
//! curl 127.0.0.1:3000/users/42           # a miss: runs the query
//! curl 127.0.0.1:3000/users/42           # a hit
//! curl 127.0.0.1:3000/metrics            # cachekit_* and redis_cache_* series
//! ```
//!
//! The exporter is installed first, before any cache exists: caches
//! register their metrics with the recorder installed when they are built.
//! With `CACHEKIT_REDIS_URL` set, the function's L2 is that Redis.

use std::net::SocketAddr;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::routing::get;
use axum::{Json, Router};
use cachekit::cached;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
struct User {
    id: u64,
    name: String,
}

/// The slow call being cached: a database query, say.
#[cached(namespace = "users", name = "get_user", ttl = 60)]
async fn get_user(id: u64) -> User {
    tokio::time::sleep(Duration::from_millis(20)).await;
    User {
        id,
        name: format!("user {id}"),
    }
}

async fn user(Path(id): Path<u64>) -> Json<User> {
    Json(get_user(id).await)
}

async fn render(State(prometheus): State<PrometheusHandle>) -> String {
    // Hits are published once a second; this makes them exact to the call.
    cachekit::publish_metrics();
    prometheus.render()
}

/// The service: `/users/{id}` and `/metrics`.
fn app(prometheus: PrometheusHandle) -> Router {
    Router::new()
        .route("/users/{id}", get(user))
        .route("/metrics", get(render))
        .with_state(prometheus)
}

/// Installs the Prometheus recorder (once per process) and serves on
/// `listener` until the task is dropped.
pub async fn serve(listener: tokio::net::TcpListener) -> std::io::Result<()> {
    let prometheus = PrometheusBuilder::new()
        .install_recorder()
        .map_err(std::io::Error::other)?;
    axum::serve(listener, app(prometheus)).await
}

#[allow(dead_code, reason = "the test runs `serve` on a port of its own")]
#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr: SocketAddr = std::env::var("METRICS_EXAMPLE_ADDR")
        .ok()
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 3000)));
    let listener = tokio::net::TcpListener::bind(addr).await?;
    println!("listening on http://{addr}: try /users/42 and /metrics");
    serve(listener).await
}
