//! Where the invalidation listener connects: the data nodes of the
//! deployment, with clients that speak RESP3 (push messages) whatever the
//! pool speaks. The pool's manager builds them, since it knows the
//! topology; the listener (`crate::tracking`) resolves them.

use std::sync::Arc;

use cachekit_core::Result;
use redis::{ConnectionAddr, ProtocolVersion};

use super::{Clients, Endpoint, Sentinels};
use crate::errors::Target;

/// Where the data nodes are, as the listener needs them: clients speak
/// RESP3 (push messages) whatever the pool speaks.
#[derive(Clone)]
pub(crate) enum Targets {
    /// The one server the URL names.
    Single(Box<Endpoint>),
    /// The primary the sentinels name at the time.
    Sentinel(Arc<Sentinels>, Clients),
    /// Every primary of a cluster.
    Cluster(Clients, Arc<Target>),
}

impl Targets {
    pub(crate) fn single(
        clients: &Clients,
        addr: ConnectionAddr,
        target: Arc<Target>,
    ) -> Result<Self> {
        Ok(Self::Single(Box::new(
            resp3(clients).endpoint(addr, target)?,
        )))
    }

    pub(crate) fn sentinel(sentinels: Arc<Sentinels>, clients: &Clients) -> Self {
        Self::Sentinel(sentinels, resp3(clients))
    }

    pub(crate) fn cluster(clients: &Clients, target: Arc<Target>) -> Self {
        Self::Cluster(resp3(clients), target)
    }
}

fn resp3(clients: &Clients) -> Clients {
    Clients {
        protocol: ProtocolVersion::RESP3,
        ..clients.clone()
    }
}
