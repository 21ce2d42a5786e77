//! Write coalescing: the commands of concurrent tasks leave in one write.
//!
//! redis-rs's connection driver flushes as soon as its queue is empty. On
//! tokio that is after every command: a task that sends a command wakes the
//! driver into the worker's next slot, so the driver runs before the next
//! task can queue anything, and each command costs one `write(2)` and one
//! TCP segment, which the server then reads on its own. With `TCP_NODELAY`
//! this halves throughput under concurrency; Nagle's algorithm merges the
//! segments in the kernel, but only by holding each write until the
//! previous one is acknowledged, a full round trip on a real network.
//!
//! [`Coalesce`] sits between the driver and the socket. Writes go into a
//! buffer; the first flush of a batch puts the driver at the back of the
//! worker's queue (it wakes itself and yields once), so the tasks already
//! runnable queue their commands first, and the second flush sends them all
//! in one write. A command is held for at most one pass over the runnable
//! tasks and never for a network round trip; a lone command waits for no
//! other. Reads pass straight through.

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Buffered bytes past which a write sends the batch first; a write at
/// least this large goes to the socket unbuffered.
const BATCH_LIMIT: usize = 64 * 1024;

/// A stream whose writes are coalesced until the second flush of a batch.
pub(crate) struct Coalesce<S> {
    inner: S,
    buf: Vec<u8>,
    /// How much of `buf` the socket has taken.
    sent: usize,
    /// Whether this batch's flush already yielded once.
    yielded: bool,
}

impl<S> Coalesce<S> {
    pub(crate) fn new(inner: S) -> Self {
        Self {
            inner,
            buf: Vec::new(),
            sent: 0,
            yielded: false,
        }
    }
}

impl<S: AsyncWrite + Unpin> Coalesce<S> {
    /// Writes the buffered bytes to the socket.
    fn send_buffered(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.sent < self.buf.len() {
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, &self.buf[self.sent..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.sent += n;
        }
        self.buf.clear();
        self.sent = 0;
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Coalesce<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Coalesce<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if !this.buf.is_empty() && this.buf.len() + data.len() > BATCH_LIMIT {
            ready!(this.send_buffered(cx))?;
        }
        if this.buf.is_empty() && data.len() >= BATCH_LIMIT {
            // A large value: copying it would only cost.
            return Pin::new(&mut this.inner).poll_write(cx, data);
        }
        this.buf.extend_from_slice(data);
        Poll::Ready(Ok(data.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.sent < this.buf.len() {
            if !this.yielded {
                // Rescheduled behind the tasks that are runnable now: what
                // they send joins this batch.
                this.yielded = true;
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            ready!(this.send_buffered(cx))?;
        }
        this.yielded = false;
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.send_buffered(cx))?;
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use tokio::io::AsyncWriteExt;

    use super::*;

    /// A socket that records each write it takes, taking at most `chunk`
    /// bytes per write and refusing (Pending) every other call if `stall`.
    #[derive(Default)]
    struct Recorder {
        writes: Arc<Mutex<Vec<Vec<u8>>>>,
        chunk: Option<usize>,
        stall: bool,
        stalled: bool,
        flushes: usize,
    }

    impl AsyncRead for Recorder {
        fn poll_read(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
            _: &mut ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    impl AsyncWrite for Recorder {
        fn poll_write(
            self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            data: &[u8],
        ) -> Poll<io::Result<usize>> {
            let this = self.get_mut();
            if this.stall && !this.stalled {
                this.stalled = true;
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            this.stalled = false;
            let n = this.chunk.map_or(data.len(), |c| c.min(data.len()));
            this.writes.lock().unwrap().push(data[..n].to_vec());
            Poll::Ready(Ok(n))
        }

        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            self.get_mut().flushes += 1;
            Poll::Ready(Ok(()))
        }

        fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    fn recorder() -> (Recorder, Arc<Mutex<Vec<Vec<u8>>>>) {
        let recorder = Recorder::default();
        let writes = recorder.writes.clone();
        (recorder, writes)
    }

    fn noop_cx() -> Context<'static> {
        Context::from_waker(std::task::Waker::noop())
    }

    #[test]
    fn writes_wait_for_the_second_flush_and_leave_in_one_write() {
        let (socket, writes) = recorder();
        let mut stream = Coalesce::new(socket);
        let mut cx = noop_cx();
        for command in [
            &b"*2\r\n$3\r\nGET\r\n$1\r\na\r\n"[..],
            b"*1\r\n$4\r\nPING\r\n",
        ] {
            let n = Pin::new(&mut stream).poll_write(&mut cx, command);
            assert!(matches!(n, Poll::Ready(Ok(len)) if len == command.len()));
        }
        assert!(
            writes.lock().unwrap().is_empty(),
            "nothing sent before a flush"
        );
        assert!(Pin::new(&mut stream).poll_flush(&mut cx).is_pending());
        assert!(writes.lock().unwrap().is_empty(), "the first flush yields");
        let more = b"*1\r\n$4\r\nPING\r\n";
        assert!(Pin::new(&mut stream).poll_write(&mut cx, more).is_ready());
        assert!(matches!(
            Pin::new(&mut stream).poll_flush(&mut cx),
            Poll::Ready(Ok(()))
        ));
        let writes = writes.lock().unwrap();
        assert_eq!(writes.len(), 1, "one write for the batch");
        assert_eq!(
            writes[0],
            b"*2\r\n$3\r\nGET\r\n$1\r\na\r\n*1\r\n$4\r\nPING\r\n*1\r\n$4\r\nPING\r\n"
        );
        assert_eq!(stream.inner.flushes, 1);
    }

    #[test]
    fn a_flush_with_nothing_buffered_does_not_yield() {
        let (socket, writes) = recorder();
        let mut stream = Coalesce::new(socket);
        let mut cx = noop_cx();
        assert!(matches!(
            Pin::new(&mut stream).poll_flush(&mut cx),
            Poll::Ready(Ok(()))
        ));
        assert!(writes.lock().unwrap().is_empty());
        // The next batch yields again.
        assert!(Pin::new(&mut stream).poll_write(&mut cx, b"x").is_ready());
        assert!(Pin::new(&mut stream).poll_flush(&mut cx).is_pending());
        assert!(Pin::new(&mut stream).poll_flush(&mut cx).is_ready());
        assert!(Pin::new(&mut stream).poll_write(&mut cx, b"y").is_ready());
        assert!(Pin::new(&mut stream).poll_flush(&mut cx).is_pending());
        assert!(Pin::new(&mut stream).poll_flush(&mut cx).is_ready());
        assert_eq!(*writes.lock().unwrap(), vec![b"x".to_vec(), b"y".to_vec()]);
    }

    #[test]
    fn a_large_write_goes_straight_to_the_socket_after_the_batch() {
        let (socket, writes) = recorder();
        let mut stream = Coalesce::new(socket);
        let mut cx = noop_cx();
        assert!(Pin::new(&mut stream)
            .poll_write(&mut cx, b"small")
            .is_ready());
        let large = vec![7u8; BATCH_LIMIT];
        let n = Pin::new(&mut stream).poll_write(&mut cx, &large);
        assert!(matches!(n, Poll::Ready(Ok(len)) if len == BATCH_LIMIT));
        let writes = writes.lock().unwrap();
        assert_eq!(writes.len(), 2, "the batch, then the value unbuffered");
        assert_eq!(writes[0], b"small");
        assert_eq!(writes[1].len(), BATCH_LIMIT);
        assert!(stream.buf.is_empty());
    }

    #[tokio::test]
    async fn partial_and_refused_writes_lose_nothing() {
        let (mut socket, writes) = recorder();
        socket.chunk = Some(5);
        socket.stall = true;
        let mut stream = Coalesce::new(socket);
        let mut expected = Vec::new();
        for i in 0..100u32 {
            let command = format!("*2\r\n$4\r\nECHO\r\n${}\r\n{i}\r\n", i.to_string().len());
            stream.write_all(command.as_bytes()).await.unwrap();
            expected.extend_from_slice(command.as_bytes());
            if i % 7 == 0 {
                stream.flush().await.unwrap();
            }
        }
        stream.shutdown().await.unwrap();
        let sent: Vec<u8> = writes.lock().unwrap().concat();
        assert_eq!(sent, expected);
    }

    #[tokio::test]
    async fn large_and_small_writes_cross_a_pipe_in_order() {
        let (client, mut server) = tokio::io::duplex(64);
        let mut stream = Coalesce::new(client);
        let big = vec![b'v'; BATCH_LIMIT * 2 + 3];
        let echo = tokio::spawn(async move {
            let mut got = Vec::new();
            tokio::io::AsyncReadExt::read_to_end(&mut server, &mut got)
                .await
                .unwrap();
            got
        });
        stream.write_all(b"head").await.unwrap();
        stream.write_all(&big).await.unwrap();
        stream.write_all(b"tail").await.unwrap();
        stream.flush().await.unwrap();
        stream.shutdown().await.unwrap();
        drop(stream);
        let got = echo.await.unwrap();
        assert_eq!(got.len(), 4 + big.len() + 4);
        assert_eq!(&got[..4], b"head");
        assert_eq!(&got[got.len() - 4..], b"tail");
    }
}
