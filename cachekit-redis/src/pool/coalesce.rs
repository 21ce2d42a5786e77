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
//! tasks and never for a network round trip. Reads pass straight through.
//!
//! A caller that sends one command at a time gains nothing from the yield
//! and pays a second poll of the driver per command. So a yield that
//! gathered no other command makes the next [`LONE_SKIP`] batches go out at
//! their first flush; the batch after them yields again, to notice when
//! concurrent commands come back. Under concurrency nearly every yield
//! gathers something and every batch yields.

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Buffered bytes past which a write sends the batch first; a write at
/// least this large goes to the socket unbuffered.
const BATCH_LIMIT: usize = 64 * 1024;

/// Batches sent without a yield after a yield that gathered nothing.
const LONE_SKIP: u8 = 7;

/// A stream whose writes are coalesced until the second flush of a batch.
pub(crate) struct Coalesce<S> {
    inner: S,
    buf: Vec<u8>,
    /// How much of `buf` the socket has taken.
    sent: usize,
    /// Where the flush of the buffered batch is.
    flush: Flush,
    /// Batches still to be sent without a yield.
    skip: u8,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Flush {
    /// Not flushed yet.
    Fresh,
    /// Yielded once, with this much buffered.
    Yielded(usize),
    /// Being written to the socket.
    Sending,
}

impl<S> Coalesce<S> {
    pub(crate) fn new(inner: S) -> Self {
        Self {
            inner,
            buf: Vec::new(),
            sent: 0,
            flush: Flush::Fresh,
            skip: 0,
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
            match this.flush {
                Flush::Fresh if this.skip > 0 => {
                    this.skip -= 1;
                    this.flush = Flush::Sending;
                }
                Flush::Fresh => {
                    // Rescheduled behind the tasks that are runnable now:
                    // what they send joins this batch.
                    this.flush = Flush::Yielded(this.buf.len());
                    cx.waker().wake_by_ref();
                    return Poll::Pending;
                }
                Flush::Yielded(len) => {
                    if len == this.buf.len() {
                        // Nobody else had a command: a lone caller.
                        this.skip = LONE_SKIP;
                    }
                    this.flush = Flush::Sending;
                }
                Flush::Sending => {}
            }
            ready!(this.send_buffered(cx))?;
        }
        this.flush = Flush::Fresh;
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
        // A batch still yields afterwards, and so does the next one when
        // the yield gathered another command.
        for batch in [&b"x"[..], b"y"] {
            assert!(Pin::new(&mut stream).poll_write(&mut cx, batch).is_ready());
            assert!(Pin::new(&mut stream).poll_flush(&mut cx).is_pending());
            assert!(Pin::new(&mut stream).poll_write(&mut cx, b"+").is_ready());
            assert!(Pin::new(&mut stream).poll_flush(&mut cx).is_ready());
        }
        assert_eq!(
            *writes.lock().unwrap(),
            vec![b"x+".to_vec(), b"y+".to_vec()]
        );
    }

    /// Flushes one batch of `data`: whether its first flush yielded.
    fn flush_one(stream: &mut Coalesce<Recorder>, data: &[u8]) -> bool {
        let mut cx = noop_cx();
        assert!(Pin::new(&mut *stream).poll_write(&mut cx, data).is_ready());
        let yielded = Pin::new(&mut *stream).poll_flush(&mut cx).is_pending();
        if yielded {
            assert!(Pin::new(&mut *stream).poll_flush(&mut cx).is_ready());
        }
        yielded
    }

    #[test]
    fn a_lone_caller_yields_once_per_eight_commands() {
        let (socket, writes) = recorder();
        let mut stream = Coalesce::new(socket);
        let yields: Vec<bool> = (0..17).map(|_| flush_one(&mut stream, b"c")).collect();
        let mut expected = vec![false; 17];
        for at in [0, 8, 16] {
            expected[at] = true;
        }
        assert_eq!(yields, expected, "a yield that gathered nothing skips 7");
        assert_eq!(writes.lock().unwrap().len(), 17, "every batch was sent");
        // A yield that gathers another command brings yielding back at once.
        let mut cx = noop_cx();
        for _ in 0..LONE_SKIP {
            assert!(!flush_one(&mut stream, b"c"));
        }
        assert!(Pin::new(&mut stream).poll_write(&mut cx, b"a").is_ready());
        assert!(Pin::new(&mut stream).poll_flush(&mut cx).is_pending());
        assert!(Pin::new(&mut stream).poll_write(&mut cx, b"b").is_ready());
        assert!(Pin::new(&mut stream).poll_flush(&mut cx).is_ready());
        assert!(flush_one(&mut stream, b"c"), "the next batch yields again");
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
