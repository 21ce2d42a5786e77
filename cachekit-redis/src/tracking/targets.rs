//! Which servers a backend listens to for invalidations, and when that set
//! changes.

use std::sync::Arc;

use cachekit_core::Result;

use crate::errors::{Place, Target};
use crate::pool::{Endpoint, Targets};
use crate::state::Inner;

/// What tells the listener that the servers it listens to are no longer
/// the right ones.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Topology {
    Fixed,
    /// The sentinels' switch count when the primary was asked for.
    Switches(u64),
    /// The cluster's primaries, sorted.
    Primaries(Vec<(String, u16)>),
}

impl Targets {
    /// The servers to listen to now, and what would say they changed.
    pub(crate) async fn resolve(&self, backend: &Inner) -> Result<(Vec<Endpoint>, Topology)> {
        match self {
            Self::Single(endpoint) => Ok((vec![(**endpoint).clone()], Topology::Fixed)),
            Self::Sentinel(sentinels, clients) => {
                let seen = sentinels.switches();
                let (host, port) = sentinels.primary().await?;
                let target = node_target(sentinels.target(), &host, port);
                let endpoint = clients.endpoint(clients.tcp_addr(&host, port), target)?;
                Ok((vec![endpoint], Topology::Switches(seen)))
            }
            Self::Cluster(clients, target) => {
                let primaries = self.current(backend).await?;
                let Topology::Primaries(list) = &primaries else {
                    return Ok((Vec::new(), primaries));
                };
                let endpoints = list
                    .iter()
                    .map(|(host, port)| {
                        let node = node_target(target, host, *port);
                        clients.endpoint(clients.tcp_addr(host, *port), node)
                    })
                    .collect::<Result<Vec<_>>>()?;
                Ok((endpoints, primaries))
            }
        }
    }

    /// The topology now, to compare with the one listened to.
    pub(crate) async fn current(&self, backend: &Inner) -> Result<Topology> {
        match self {
            Self::Single(_) => Ok(Topology::Fixed),
            Self::Sentinel(sentinels, _) => Ok(Topology::Switches(sentinels.switches())),
            Self::Cluster(..) => {
                // Not while some slots lack a primary: the one promoted
                // for them would go unheard until the next comparison.
                let mut list = crate::topology::serving_primaries(backend).await?;
                list.sort();
                Ok(Topology::Primaries(list))
            }
        }
    }
}

/// How messages name one data node of a Sentinel or Cluster deployment.
fn node_target(deployment: &Target, host: &str, port: u16) -> Arc<Target> {
    Arc::new(Target {
        host: host.to_owned(),
        port,
        place: Place::Tcp,
        ..deployment.clone()
    })
}
