//! Keeping the response's own `Date` on HTTP/1 connections. Pingora 0.9's HTTP/1 writer stamps
//! every response header with the current time (`HttpSession::prepare_response_header`, with no
//! switch outside its own tests), so every cache hit would claim to have just been generated,
//! against RFC 9110 §6.6.1 and RFC 9111 §4 (a cache sends the stored `Date` and adds `Age`).
//! This module wraps each accepted connection's stream: the proxy arms it with the `Date` the
//! response carries just before the header goes out, and the wrapper writes that value in place
//! of the stamped one as the header bytes pass. Both are IMF-fixdate, 29 bytes, so nothing
//! shifts. It must not touch anything but the value of the one `Date` line of the header block it
//! was armed for: when that block does not look exactly as expected, it writes the bytes as they
//! are (the stamped `Date` goes out, as before). HTTP/2 and subrequests are left alone.

use async_trait::async_trait;
use pingora::apps::ServerApp;
use pingora::protocols::raw_connect::ProxyDigest;
use pingora::protocols::tls::{SslDigest, TlsRef};
use pingora::protocols::{
    GetProxyDigest, GetSocketDigest, GetTimingDigest, Peek, Shutdown, SocketDigest, Ssl, Stream,
    TimingDigest, UniqueID, UniqueIDType, ALPN,
};
use pingora::server::ShutdownWatch;
use pingora_http::ResponseHeader;
use pingora_proxy::Session;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::sync::atomic::{AtomicU16, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Length of an IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`), the only form Pingora stamps and
/// the only one written back.
const DATE_LEN: usize = 29;

/// Arm the connection `session` answers on to send `resp`'s own `Date` instead of the time the
/// header is written. A `Date` that is not a valid HTTP-date is left to be replaced; an obsolete
/// format (RFC 850, asctime) goes out as the same instant in IMF-fixdate.
pub(super) fn keep(session: &Session, resp: &ResponseHeader) {
    let Some(date) = resp
        .headers
        .get(http::header::DATE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| httpdate::parse_http_date(v).ok())
    else {
        return;
    };
    let Some(stream) = session.downstream_session.stream() else {
        return;
    };
    if let Some(kept) = (**stream).as_any().downcast_ref::<KeptDateStream>() {
        kept.arm(resp.status.as_u16(), date);
    }
}

/// The edge's [`ServerApp`] with every accepted connection wrapped in a [`KeptDateStream`].
pub struct KeepDate<A>(pub Arc<A>);

#[async_trait]
impl<A: ServerApp + Send + Sync + 'static> ServerApp for KeepDate<A> {
    async fn process_new(
        self: &Arc<Self>,
        stream: Stream,
        shutdown: &ShutdownWatch,
    ) -> Option<Stream> {
        // A connection handed back for reuse is already wrapped.
        let stream: Stream = if (*stream).as_any().is::<KeptDateStream>() {
            stream
        } else {
            Box::new(KeptDateStream::new(stream))
        };
        self.0.process_new(stream, shutdown).await
    }

    async fn cleanup(&self) {
        self.0.cleanup().await
    }
}

/// A stream that writes an armed `Date` back into the next response header.
#[derive(Debug)]
pub struct KeptDateStream {
    inner: Stream,
    /// Seconds since the epoch of the `Date` to send; 0 when not armed. Set through `&self`
    /// (the proxy only reaches the stream by shared reference), read by the writer.
    armed_date: AtomicU64,
    /// The status code of the armed response: the header block must start with it.
    armed_status: AtomicU16,
    /// The write in progress of an armed header block.
    patch: Option<Patch>,
}

/// Where the `Date` value sits in the header block being written, and how much of the block has
/// been written so far (a header can go out in several writes).
#[derive(Debug)]
struct Patch {
    value: [u8; DATE_LEN],
    /// Offset of the value from the first byte of the header block; `None` until found.
    at: Option<usize>,
    written: usize,
}

impl Patch {
    /// `buf`, the header bytes that follow the `written` ones, with the part of the value that
    /// falls in them written over; `None` when none does (or the value is not located yet).
    fn apply(&self, buf: &[u8]) -> Option<Vec<u8>> {
        let at = self.at?;
        let from = at.saturating_sub(self.written).min(buf.len());
        let to = (at + DATE_LEN).saturating_sub(self.written).min(buf.len());
        if from >= to {
            return None;
        }
        let mut patched = buf.to_vec();
        let value_from = self.written + from - at;
        patched[from..to].copy_from_slice(&self.value[value_from..value_from + (to - from)]);
        Some(patched)
    }
}

impl KeptDateStream {
    pub fn new(inner: Stream) -> KeptDateStream {
        KeptDateStream {
            inner,
            armed_date: AtomicU64::new(0),
            armed_status: AtomicU16::new(0),
            patch: None,
        }
    }

    fn arm(&self, status: u16, date: SystemTime) {
        let secs = date
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        self.armed_status.store(status, Ordering::SeqCst);
        self.armed_date.store(secs.max(1), Ordering::SeqCst);
    }

    /// The patch for the write about to start, if armed.
    fn take_armed(&mut self) -> Option<Patch> {
        let secs = self.armed_date.swap(0, Ordering::SeqCst);
        if secs == 0 {
            return None;
        }
        let date = httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_secs(secs));
        let value = <[u8; DATE_LEN]>::try_from(date.as_bytes()).ok()?;
        Some(Patch {
            value,
            at: None,
            written: 0,
        })
    }
}

/// Offset of the `Date` value in `block`, a whole HTTP/1 response header block for `status`
/// (`HTTP/1.x SSS ...\r\n...\r\n\r\n`), when it holds exactly one `Date` line with a value of
/// [`DATE_LEN`] bytes. `None` for anything else, which is then written unchanged.
pub(crate) fn date_value_offset(block: &[u8], status: u16) -> Option<usize> {
    let status_line = format!("{status:03} ");
    if !(block.starts_with(b"HTTP/1.") && block.get(9..13) == Some(status_line.as_bytes())) {
        return None;
    }
    let end = block.windows(4).position(|w| w == b"\r\n\r\n")? + 2;
    let mut found = None;
    let mut line_start = block.iter().position(|&b| b == b'\n')? + 1;
    while line_start < end {
        let line_end = line_start
            + block[line_start..end]
                .windows(2)
                .position(|w| w == b"\r\n")?;
        let line = &block[line_start..line_end];
        if line.len() >= 5 && line[..5].eq_ignore_ascii_case(b"date:") {
            if found.is_some() {
                return None;
            }
            let value_start = 5 + line[5..].iter().take_while(|&&b| b == b' ').count();
            if line.len() - value_start != DATE_LEN {
                return None;
            }
            found = Some(line_start + value_start);
        }
        line_start = line_end + 2;
    }
    found
}

impl AsyncWrite for KeptDateStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if buf.is_empty() {
            return Pin::new(&mut this.inner).poll_write(cx, buf);
        }
        if this.patch.is_none() {
            this.patch = this.take_armed();
        }
        let Some(patch) = this.patch.as_mut() else {
            return Pin::new(&mut this.inner).poll_write(cx, buf);
        };
        if patch.at.is_none() {
            // The first write after arming starts the header block (Pingora writes it whole).
            let status = this.armed_status.load(Ordering::SeqCst);
            match date_value_offset(buf, status) {
                Some(at) => patch.at = Some(at),
                None => {
                    this.patch = None;
                    return Pin::new(&mut this.inner).poll_write(cx, buf);
                }
            }
        }
        let result = match patch.apply(buf) {
            Some(patched) => Pin::new(&mut this.inner).poll_write(cx, &patched),
            None => Pin::new(&mut this.inner).poll_write(cx, buf),
        };
        if let Poll::Ready(Ok(n)) = &result {
            patch.written += n;
            if patch.written >= patch.at.unwrap_or_default() + DATE_LEN {
                this.patch = None;
            }
        }
        result
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.patch.is_none() && this.armed_date.load(Ordering::SeqCst) == 0 {
            return Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        }
        // Armed: one slice at a time, through the patching path.
        let first = bufs
            .iter()
            .find(|b| !b.is_empty())
            .map_or(&[][..], |b| &**b);
        Pin::new(this).poll_write(cx, first)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

impl AsyncRead for KeptDateStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

#[async_trait]
impl Shutdown for KeptDateStream {
    async fn shutdown(&mut self) {
        self.inner.shutdown().await
    }
}

impl UniqueID for KeptDateStream {
    fn id(&self) -> UniqueIDType {
        self.inner.id()
    }
}

impl Ssl for KeptDateStream {
    fn get_ssl(&self) -> Option<&TlsRef> {
        self.inner.get_ssl()
    }
    fn get_ssl_digest(&self) -> Option<Arc<SslDigest>> {
        self.inner.get_ssl_digest()
    }
    fn selected_alpn_proto(&self) -> Option<ALPN> {
        self.inner.selected_alpn_proto()
    }
}

impl GetTimingDigest for KeptDateStream {
    fn get_timing_digest(&self) -> Vec<Option<TimingDigest>> {
        self.inner.get_timing_digest()
    }
    fn get_read_pending_time(&self) -> Duration {
        self.inner.get_read_pending_time()
    }
    fn get_write_pending_time(&self) -> Duration {
        self.inner.get_write_pending_time()
    }
}

impl GetProxyDigest for KeptDateStream {
    fn get_proxy_digest(&self) -> Option<Arc<ProxyDigest>> {
        self.inner.get_proxy_digest()
    }
    fn set_proxy_digest(&mut self, digest: ProxyDigest) {
        self.inner.set_proxy_digest(digest)
    }
}

impl GetSocketDigest for KeptDateStream {
    fn get_socket_digest(&self) -> Option<Arc<SocketDigest>> {
        self.inner.get_socket_digest()
    }
    fn set_socket_digest(&mut self, digest: SocketDigest) {
        self.inner.set_socket_digest(digest)
    }
}

#[async_trait]
impl Peek for KeptDateStream {
    async fn try_peek(&mut self, buf: &mut [u8]) -> io::Result<bool> {
        self.inner.try_peek(buf).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    const STAMPED: &str = "Sat, 05 Dec 2026 18:00:00 GMT";

    fn header(status: &str, date_lines: &[&str]) -> Vec<u8> {
        let mut h = format!("HTTP/1.1 {status}\r\nServer: x\r\n");
        for d in date_lines {
            h.push_str(&format!("{d}\r\n"));
        }
        h.push_str("Content-Length: 4\r\n\r\n");
        h.into_bytes()
    }

    #[test]
    fn finds_the_one_date_value_of_a_header_block() {
        let h = header("200 OK", &[&format!("date: {STAMPED}")]);
        let at = date_value_offset(&h, 200).unwrap();
        assert_eq!(&h[at..at + DATE_LEN], STAMPED.as_bytes());
        let h = header("200 OK", &[&format!("Date:{STAMPED}")]);
        assert!(date_value_offset(&h, 200).is_some());
        // Anything unexpected: no patch.
        assert_eq!(date_value_offset(&h, 404), None, "another status");
        let two = header(
            "200 OK",
            &[&format!("Date: {STAMPED}"), &format!("date: {STAMPED}")],
        );
        assert_eq!(date_value_offset(&two, 200), None, "two Date lines");
        let short = header("200 OK", &["Date: Sat, 5 Dec 2026 18:00:00 GMT"]);
        assert_eq!(date_value_offset(&short, 200), None, "not 29 bytes");
        assert_eq!(date_value_offset(&header("200 OK", &[]), 200), None);
        assert_eq!(date_value_offset(b"body bytes\r\n\r\n", 200), None);
        let cut = header("200 OK", &[&format!("Date: {STAMPED}")]);
        assert_eq!(date_value_offset(&cut[..20], 200), None, "no end of block");
    }

    /// A connected pair of real loopback sockets: the server side wrapped, the client side plain.
    async fn pair() -> (KeptDateStream, tokio::net::TcpStream) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = tokio::net::TcpStream::connect(listener.local_addr().unwrap());
        let (client, accepted) = tokio::join!(client, listener.accept());
        let server: Stream = Box::new(pingora::protocols::l4::stream::Stream::from(
            accepted.unwrap().0,
        ));
        (KeptDateStream::new(server), client.unwrap())
    }

    async fn send(
        server: &mut KeptDateStream,
        client: &mut tokio::net::TcpStream,
        chunks: &[&[u8]],
    ) -> Vec<u8> {
        let total: usize = chunks.iter().map(|c| c.len()).sum();
        for chunk in chunks {
            server.write_all(chunk).await.unwrap();
        }
        server.flush().await.unwrap();
        let mut got = vec![0; total];
        client.read_exact(&mut got).await.unwrap();
        got
    }

    #[test]
    fn a_header_written_in_several_parts_gets_the_whole_value() {
        let stamped = header("200 OK", &[&format!("date: {STAMPED}")]);
        let expected = header("200 OK", &["date: Sun, 06 Nov 1994 08:49:37 GMT"]);
        let at = date_value_offset(&stamped, 200);
        let value = *b"Sun, 06 Nov 1994 08:49:37 GMT";
        // Every way a short write can cut the block in two, and in bytes one by one.
        for cut in 1..stamped.len() {
            let mut patch = Patch {
                value,
                at,
                written: 0,
            };
            let mut out = Vec::new();
            for part in [&stamped[..cut], &stamped[cut..]] {
                out.extend(patch.apply(part).unwrap_or_else(|| part.to_vec()));
                patch.written += part.len();
            }
            assert_eq!(out, expected, "cut at {cut}");
        }
        let mut patch = Patch {
            value,
            at,
            written: 0,
        };
        let mut out = Vec::new();
        for byte in stamped.chunks(1) {
            out.extend(patch.apply(byte).unwrap_or_else(|| byte.to_vec()));
            patch.written += 1;
        }
        assert_eq!(out, expected);
    }

    #[tokio::test]
    async fn an_armed_stream_writes_the_kept_date_once() {
        let (mut server, mut client) = pair().await;
        let kept = httpdate::parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT").unwrap();
        let stamped = header("200 OK", &[&format!("date: {STAMPED}")]);
        let expected = header("200 OK", &["date: Sun, 06 Nov 1994 08:49:37 GMT"]);

        server.arm(200, kept);
        let got = send(&mut server, &mut client, &[&stamped, b"body"]).await;
        assert_eq!(got, [&expected[..], b"body"].concat());

        // Not armed, or armed for another status: the stamped Date goes out untouched, and the
        // arming does not linger for the next response.
        let got = send(&mut server, &mut client, &[&stamped]).await;
        assert_eq!(got, stamped);
        server.arm(304, kept);
        let got = send(&mut server, &mut client, &[&stamped, &stamped]).await;
        assert_eq!(got, [&stamped[..], &stamped].concat());
    }
}
