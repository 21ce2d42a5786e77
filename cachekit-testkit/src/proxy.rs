//! A TCP proxy on loopback that can stall or cut the traffic it carries.

use std::fmt;
use std::future::pending;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{oneshot, watch};

/// What a [`LoopbackProxy`] does with traffic.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyMode {
    /// Forwards bytes both ways.
    Pass,
    /// Holds bytes: nothing is forwarded and nothing is closed until the
    /// mode returns to [`Pass`](Self::Pass), as with a hung server or a
    /// black-holed route. New connections are accepted and held too.
    Stall,
    /// Closes every current connection and closes new ones as soon as they
    /// are accepted, as with a crashed server behind a live port.
    Drop,
}

/// Shared between the controller and every connection task.
#[derive(Debug, Clone, Copy)]
struct Control {
    mode: ProxyMode,
    /// Bumped on every switch to `Drop`, so a connection notices a drop even
    /// if the mode went back to `Pass` before its task looked.
    drop_epoch: u64,
}

/// A TCP proxy from `127.0.0.1:<free port>` to a target address, with a
/// switch to stall or drop the traffic.
///
/// It runs on its own thread and Tokio runtime, so it keeps working while
/// the test's runtime is busy or blocked, and works from sync tests too.
/// Dropping it closes the listener and every connection.
///
/// ```no_run
/// use cachekit_testkit::{LoopbackProxy, ProxyMode, RedisServer};
///
/// let server = RedisServer::start();
/// let proxy = LoopbackProxy::start(server.addr());
/// let url = server.url_with_port(proxy.port());
/// // ... connect a client to `url`, then:
/// proxy.set_mode(ProxyMode::Stall);
/// // ... the client's next request hangs until
/// proxy.set_mode(ProxyMode::Pass);
/// ```
pub struct LoopbackProxy {
    addr: SocketAddr,
    target: SocketAddr,
    control: watch::Sender<Control>,
    connections: Arc<AtomicUsize>,
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<thread::JoinHandle<()>>,
}

/// Counts a connection from acceptance until its task ends.
struct Counted(Arc<AtomicUsize>);

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

const DROP_WAIT: Duration = Duration::from_secs(5);
const BUFFER_SIZE: usize = 16 * 1024;

impl LoopbackProxy {
    /// Starts forwarding connections to `target`, in [`ProxyMode::Pass`].
    ///
    /// # Panics
    ///
    /// When no loopback port or thread can be had.
    pub fn start(target: SocketAddr) -> Self {
        let fail = |what: &str, err: io::Error| -> ! {
            panic!("LoopbackProxy to {target}: could not {what}: {err}")
        };
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap_or_else(|err| fail("build a runtime", err));
        let listener = std::net::TcpListener::bind(("127.0.0.1", 0))
            .and_then(|l| l.set_nonblocking(true).map(|()| l))
            .unwrap_or_else(|err| fail("bind 127.0.0.1:0", err));
        let addr = listener
            .local_addr()
            .unwrap_or_else(|err| fail("read the bound address", err));
        let listener = {
            let _guard = runtime.enter();
            TcpListener::from_std(listener).unwrap_or_else(|err| fail("register the listener", err))
        };
        let (control, control_rx) = watch::channel(Control {
            mode: ProxyMode::Pass,
            drop_epoch: 0,
        });
        let connections = Arc::new(AtomicUsize::new(0));
        let (shutdown, shutdown_rx) = oneshot::channel();
        let counter = Arc::clone(&connections);
        let thread = thread::Builder::new()
            .name(format!("cachekit-proxy-{}", addr.port()))
            .spawn(move || {
                runtime.block_on(async move {
                    tokio::select! {
                        () = accept_loop(listener, target, control_rx, counter) => {}
                        _ = shutdown_rx => {}
                    }
                });
                // Dropping the runtime cancels every connection task, which
                // closes their sockets.
                drop(runtime);
            })
            .unwrap_or_else(|err| fail("spawn its thread", err));
        Self {
            addr,
            target,
            control,
            connections,
            shutdown: Some(shutdown),
            thread: Some(thread),
        }
    }

    /// The address clients connect to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The port clients connect to.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// The current mode.
    pub fn mode(&self) -> ProxyMode {
        self.control.borrow().mode
    }

    /// Switches the mode; takes effect for bytes sent after it returns.
    ///
    /// Switching to [`ProxyMode::Drop`] returns once every current connection
    /// is closed (or after 5 seconds, should a task be stuck).
    pub fn set_mode(&self, mode: ProxyMode) {
        self.control.send_modify(|control| {
            control.mode = mode;
            if mode == ProxyMode::Drop {
                control.drop_epoch += 1;
            }
        });
        if mode == ProxyMode::Drop {
            let deadline = Instant::now() + DROP_WAIT;
            while self.connections() > 0 && Instant::now() < deadline {
                thread::sleep(Duration::from_millis(1));
            }
        }
    }

    /// How many client connections are open through the proxy right now.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

impl fmt::Debug for LoopbackProxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoopbackProxy")
            .field("addr", &self.addr)
            .field("target", &self.target)
            .field("mode", &self.mode())
            .field("connections", &self.connections())
            .finish()
    }
}

impl Drop for LoopbackProxy {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

async fn accept_loop(
    listener: TcpListener,
    target: SocketAddr,
    control: watch::Receiver<Control>,
    connections: Arc<AtomicUsize>,
) {
    loop {
        let Ok((client, _)) = listener.accept().await else {
            // Out of file descriptors and the like: back off, keep serving.
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        // Counted before the mode is read, so `set_mode(Drop)` either waits
        // for this connection or this connection sees `Drop`.
        connections.fetch_add(1, Ordering::SeqCst);
        let counted = Counted(Arc::clone(&connections));
        let at_accept = *control.borrow();
        if at_accept.mode == ProxyMode::Drop {
            continue;
        }
        tokio::spawn(serve(
            client,
            target,
            control.clone(),
            at_accept.drop_epoch,
            counted,
        ));
    }
}

/// Carries one connection until either side closes or a drop is ordered.
async fn serve(
    client: TcpStream,
    target: SocketAddr,
    control: watch::Receiver<Control>,
    epoch: u64,
    _counted: Counted,
) {
    let relay = async {
        let upstream = TcpStream::connect(target).await?;
        let _ = client.set_nodelay(true);
        let _ = upstream.set_nodelay(true);
        let (client_read, client_write) = client.into_split();
        let (upstream_read, upstream_write) = upstream.into_split();
        let up = pump(client_read, upstream_write, control.clone());
        let down = pump(upstream_read, client_write, control.clone());
        tokio::pin!(up, down);
        // A client that half-closes may still await its replies; a server
        // that closes is gone, as is the client after an error either way.
        tokio::select! {
            sent = &mut up => if sent.is_ok() { down.await?; },
            _ = &mut down => {}
        }
        io::Result::Ok(())
    };
    tokio::select! {
        _ = relay => {}
        () = dropped_since(control.clone(), epoch) => {}
    }
}

/// Resolves once a drop newer than `epoch` is ordered.
async fn dropped_since(mut control: watch::Receiver<Control>, epoch: u64) {
    loop {
        if control.borrow_and_update().drop_epoch != epoch {
            return;
        }
        changed(&mut control).await;
    }
}

/// Waits for the next change; the sender outlives every task, but if it
/// were gone nothing could change again, so wait forever.
async fn changed(control: &mut watch::Receiver<Control>) {
    if control.changed().await.is_err() {
        pending::<()>().await;
    }
}

async fn until_pass(control: &mut watch::Receiver<Control>) {
    while control.borrow_and_update().mode != ProxyMode::Pass {
        changed(control).await;
    }
}

/// Copies one direction, holding bytes whenever the mode is not `Pass`.
async fn pump(
    mut from: OwnedReadHalf,
    mut to: OwnedWriteHalf,
    mut control: watch::Receiver<Control>,
) -> io::Result<()> {
    let mut buf = vec![0; BUFFER_SIZE];
    loop {
        until_pass(&mut control).await;
        let n = tokio::select! {
            read = from.read(&mut buf) => read?,
            () = changed(&mut control) => continue,
        };
        // Checked again: bytes that arrive after a switch to Stall are held.
        until_pass(&mut control).await;
        if n == 0 {
            to.shutdown().await?;
            return Ok(());
        }
        to.write_all(&buf[..n]).await?;
    }
}
