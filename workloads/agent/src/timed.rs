//! A stream wrapper that notes when the first byte arrived and what the first bytes were.

use std::pin::Pin;
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Instant;

/// How many leading bytes of the peer's answer are kept (enough to recognise a TLS record).
pub const HEAD_BYTES: usize = 16;

/// What a [`Timed`] stream observed; cheap to clone and read after the stream was handed away.
#[derive(Debug, Clone, Default)]
pub struct FirstByte {
    at: Arc<OnceLock<Instant>>,
    head: Arc<Mutex<Vec<u8>>>,
}

impl FirstByte {
    /// When the first byte was read, if one was.
    pub fn at(&self) -> Option<Instant> {
        self.at.get().copied()
    }

    /// Notes that the first byte arrived now, unless one arrived before (for datagrams read directly).
    pub fn mark(&self) {
        let _ = self.at.set(Instant::now());
    }

    /// The first bytes read (at most [`HEAD_BYTES`]).
    pub fn head(&self) -> Vec<u8> {
        self.head.lock().map(|h| h.clone()).unwrap_or_default()
    }

    /// Whether the peer's first bytes look like a TLS record (handshake or alert, TLS 1.0-1.3 framing):
    /// the sign of a TLS port answering plain text.
    pub fn looks_like_tls(&self) -> bool {
        let h = self.head();
        h.len() >= 3 && (h[0] == 0x15 || h[0] == 0x16) && h[1] == 0x03 && h[2] <= 0x04
    }
}

/// A stream that records, in a [`FirstByte`], when its first read returned data.
pub struct Timed<S> {
    inner: S,
    seen: FirstByte,
}

impl<S> Timed<S> {
    /// Wraps `inner`; returns the stream and a handle on what it will observe.
    pub fn new(inner: S) -> (Self, FirstByte) {
        let seen = FirstByte::default();
        (
            Timed {
                inner,
                seen: seen.clone(),
            },
            seen,
        )
    }

    /// The wrapped stream.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Timed<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let res = Pin::new(&mut self.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = res {
            let new = &buf.filled()[before..];
            if !new.is_empty() {
                let _ = self.seen.at.set(Instant::now());
                if let Ok(mut head) = self.seen.head.lock() {
                    let room = HEAD_BYTES.saturating_sub(head.len());
                    head.extend_from_slice(&new[..room.min(new.len())]);
                }
            }
        }
        res
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Timed<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
