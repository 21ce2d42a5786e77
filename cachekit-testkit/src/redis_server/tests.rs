use super::*;

#[test]
fn a_stopped_server_keeps_its_port_until_dropped() {
    let first = RedisServer::start();
    let port = first.port();
    first.stop();
    assert!(leased().contains(&port), "port {port} released by stop");
    // Servers started while it is down never take its port.
    let others: Vec<RedisServer> = (0..5).map(|_| RedisServer::start()).collect();
    assert!(others.iter().all(|other| other.port() != port));
    first.restart();
    assert_eq!(first.command(&["PING"]), "PONG");
    drop(first);
    assert!(
        !leased().contains(&port),
        "port {port} still held after drop"
    );
    assert!(others.iter().all(|other| leased().contains(&other.port())));
}
