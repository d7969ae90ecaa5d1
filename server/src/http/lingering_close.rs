//! Lingering close for every accepted TCP connection.
//!
//! When the gateway closes a connection whose peer sent bytes it never read — the rest
//! of a WebSocket frame over `--max-frame-bytes`, a request body it refused — closing
//! the socket at once makes the kernel answer with a reset, and a reset discards
//! what the peer had not read yet: the `error` frame and close 1009, or the 413. So a
//! dropped connection is first half-closed (the peer sees everything written, then
//! end of stream), and its unread input is read and discarded until the peer closes
//! too, bounded in bytes and time, before the socket is closed (what Apache calls a
//! lingering close).
//!
//! This is also what lets the WebSocket read buffer be small (routes.rs): a frame
//! that does not fit in one read no longer risks a reset at close.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

/// Unread input discarded at most per closed connection.
const LINGER_BYTES: usize = 1 << 20;
/// How long a closed connection waits at most for its peer to close too.
const LINGER_TIME: Duration = Duration::from_secs(2);

/// A listener whose connections close with a lingering close.
#[derive(Debug)]
pub struct LingeringListener {
    inner: TcpListener,
}

impl LingeringListener {
    pub fn new(inner: TcpListener) -> LingeringListener {
        LingeringListener { inner }
    }
}

impl axum::serve::Listener for LingeringListener {
    type Io = LingeringStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        // axum's own accept loop: it logs and retries accept errors (EMFILE too).
        let (stream, peer) = axum::serve::Listener::accept(&mut self.inner).await;
        (
            LingeringStream {
                stream: Some(stream),
                held: None,
            },
            peer,
        )
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }
}

/// A TCP stream that lingers when dropped (see the module docs).
#[derive(Debug)]
pub struct LingeringStream {
    /// Always `Some` until dropped.
    stream: Option<TcpStream>,
    /// Dropped when the socket is closed, after the linger: a connection's place
    /// under the limits (`http::visitors`) is its file descriptor's.
    held: Option<Box<dyn std::any::Any + Send>>,
}

impl LingeringStream {
    /// The socket, for socket options.
    pub fn tcp(&self) -> Option<&TcpStream> {
        self.stream.as_ref()
    }

    /// Keep `guard` until the socket is closed, lingering included.
    pub fn hold_until_closed(&mut self, guard: impl std::any::Any + Send) {
        self.held = Some(Box::new(guard));
    }

    /// Close at once, without lingering: for a connection refused without an answer,
    /// whose descriptor must not outlive the refusal.
    pub fn close_now(mut self) {
        self.stream = None;
    }

    fn pinned(&mut self) -> io::Result<Pin<&mut TcpStream>> {
        match self.stream.as_mut() {
            Some(stream) => Ok(Pin::new(stream)),
            None => Err(io::ErrorKind::NotConnected.into()),
        }
    }
}

impl AsyncRead for LingeringStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut().pinned() {
            Ok(stream) => stream.poll_read(cx, buf),
            Err(e) => Poll::Ready(Err(e)),
        }
    }
}

impl AsyncWrite for LingeringStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut().pinned() {
            Ok(stream) => stream.poll_write(cx, buf),
            Err(e) => Poll::Ready(Err(e)),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut().pinned() {
            Ok(stream) => stream.poll_write_vectored(cx, bufs),
            Err(e) => Poll::Ready(Err(e)),
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.as_ref().is_some_and(|s| s.is_write_vectored())
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut().pinned() {
            Ok(stream) => stream.poll_flush(cx),
            Err(e) => Poll::Ready(Err(e)),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut().pinned() {
            Ok(stream) => stream.poll_shutdown(cx),
            Err(e) => Poll::Ready(Err(e)),
        }
    }
}

impl Drop for LingeringStream {
    fn drop(&mut self) {
        let held = self.held.take();
        let Some(stream) = self.stream.take() else {
            return;
        };
        // Outside a runtime (its shutdown) the socket just closes.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                linger(stream).await;
                drop(held);
            });
        }
    }
}

/// Half-close, then discard input until the peer closes, within the bounds.
async fn linger(mut stream: TcpStream) {
    if stream.shutdown().await.is_err() {
        return;
    }
    let _ = tokio::time::timeout(LINGER_TIME, async {
        let mut discarded = 0;
        let mut buf = [0u8; 4096];
        while discarded < LINGER_BYTES {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => discarded += n,
            }
        }
    })
    .await;
}
