//! Free loopback ports, leased so that the servers of one test binary never
//! share one.

use std::collections::BTreeSet;
use std::net::TcpListener;
use std::sync::{Mutex, MutexGuard, PoisonError};

use super::HOST;

/// A cluster node also listens on its port + 10000 (the cluster bus).
pub(crate) const BUS_OFFSET: u16 = 10000;

/// Ports of this process's servers, running or not. A killed server is
/// restarted on its old port, so while it is down no other server of the
/// process (the tests of one binary run in parallel) may take that port:
/// the first server's clients, reconnecting, would reach the second, and
/// the first could not come back.
static LEASED: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());

pub(crate) fn leased() -> MutexGuard<'static, BTreeSet<u16>> {
    LEASED.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Ports that no other server of this process holds, until dropped: the
/// server's port, then its cluster bus port if it has one.
pub(crate) struct PortLease(Vec<u16>);

impl PortLease {
    /// The server's own port.
    pub(crate) fn port(&self) -> u16 {
        self.0[0]
    }

    /// Leases all of `ports`, or none when one of them is already leased.
    fn take(ports: &[u16]) -> Option<Self> {
        let mut held = leased();
        if ports.iter().any(|port| held.contains(port)) {
            return None;
        }
        held.extend(ports);
        Some(Self(ports.to_vec()))
    }
}

impl Drop for PortLease {
    fn drop(&mut self) {
        let mut held = leased();
        for port in &self.0 {
            held.remove(port);
        }
    }
}

fn probe(port: u16) -> Option<u16> {
    let listener = TcpListener::bind((HOST, port)).ok()?;
    listener.local_addr().ok().map(|addr| addr.port())
}

/// A port free on the host and not held by another of our servers.
pub(crate) fn free_port() -> PortLease {
    for _ in 0..100 {
        let Some(port) = probe(0) else {
            panic!("could not find a free port on {HOST}")
        };
        if let Some(lease) = PortLease::take(&[port]) {
            return lease;
        }
    }
    panic!("the system kept offering ports this process's redis-servers hold")
}

/// A port whose cluster bus port (port + 10000) is free too, both outside
/// the kernel's ephemeral range (32768 and up on Linux) so that no
/// client's outgoing connection takes either between our probe and the
/// server's bind: ports in 10000..22768, bus ports in 20000..32768.
pub(crate) fn free_port_with_bus() -> PortLease {
    const FIRST: u16 = 10_000;
    const SPAN: u16 = 12_768;
    let seed = std::hash::BuildHasher::hash_one(
        &std::collections::hash_map::RandomState::new(),
        std::process::id(),
    );
    let start = u16::try_from(seed % u64::from(SPAN)).unwrap_or(0);
    for step in 0..SPAN {
        let port = FIRST + (start + step) % SPAN;
        let bus = port + BUS_OFFSET;
        if probe(port).is_none() || probe(bus).is_none() {
            continue;
        }
        if let Some(lease) = PortLease::take(&[port, bus]) {
            return lease;
        }
    }
    panic!("no free pair of ports PORT and PORT+10000 on {HOST} in 10000..32768")
}
