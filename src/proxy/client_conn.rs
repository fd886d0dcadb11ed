//! The edge's client connections before Pingora's phases: each HTTP/1 request head is read here
//! under a deadline and a byte budget ([`ClientLimits`]), and a kept-alive connection waits for
//! its next request only so long; the whole head is then handed to Pingora's proxy as the
//! session's first bytes. It must not parse the head (Pingora does) nor touch bodies or answers.
//!
//! Why a wrapper: Pingora 0.9 applies its timeouts per read (`read_timeout`, and 60 s for the
//! first head), so a client sending a byte a minute keeps a head open forever; after the first
//! request an HTTP/1.1 connection waits for the next one with no timeout at all; and a head may
//! grow to 1 MiB (`MAX_HEADER_SIZE`) per connection. None of that is configurable through
//! `HttpServerOptions`, and `early_request_filter` runs only once a head is whole. So this
//! [`ServerApp`] runs the HTTP/1 keep-alive loop Pingora's own runs, reading each head first,
//! and feeds it to the session with `set_pipelined_prefix`, Pingora's way of starting a session
//! with bytes already read (its parser takes a whole head from it without reading again).

use crate::config::ClientLimits;
use crate::metrics::CLIENT_CONNECTIONS_CLOSED;
use async_trait::async_trait;
use bytes::{BufMut, BytesMut};
use pingora::apps::{HttpPersistentSettings, HttpServerApp, ServerApp};
use pingora::protocols::http::ServerSession;
use pingora::protocols::{Stream, ALPN};
use pingora::server::ShutdownWatch;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::{timeout, timeout_at, Instant};

/// First allocation for a head; it doubles as needed, up to twice the budget at worst.
const INITIAL_HEAD_BUFFER: usize = 4096;
/// After a refusal, what is still coming is read and dropped for this long (at most
/// [`LINGER_BYTES`]) so the answer is not lost to a reset (nginx's lingering close).
const LINGER_TIME: Duration = Duration::from_secs(2);
const LINGER_BYTES: usize = 4 << 20;
/// Writing a refusal may take this long; a client that does not read it is dropped.
const REFUSAL_WRITE_TIMEOUT: Duration = Duration::from_secs(5);

/// A Pingora HTTP app (the edge proxy) behind head deadlines and budgets.
pub struct ClientConnections<A> {
    app: Arc<A>,
    limits: ClientLimits,
}

impl<A> ClientConnections<A> {
    pub fn new(app: A, limits: ClientLimits) -> ClientConnections<A> {
        ClientConnections {
            app: Arc::new(app),
            limits,
        }
    }
}

/// How reading one request head ended.
#[derive(Debug, PartialEq, Eq)]
enum Head {
    /// A whole head (and maybe the start of a body) was read.
    Whole(BytesMut),
    /// The client closed, or an idle connection's time ran out: close without a word.
    Closed,
    /// Part of a head came, not all of it in time: 408.
    TimedOut,
    /// The head outgrew its budget: 431.
    TooLarge,
}

/// Has the head ended? It ends at the first empty line (CRLF CRLF, or a bare LF, which Pingora's
/// parser accepts too), not counting empty lines before the request line (RFC 9112 §2.2).
/// `scanned` is how far earlier calls looked, so a trickled head is scanned once in all.
fn head_ends(buf: &[u8], scanned: &mut usize) -> bool {
    let Some(start) = buf.iter().position(|b| *b != b'\r' && *b != b'\n') else {
        return false;
    };
    let from = (*scanned).saturating_sub(2).max(start);
    *scanned = buf.len();
    let rest = &buf[from..];
    rest.windows(2).any(|w| w == b"\n\n") || rest.windows(3).any(|w| w == b"\n\r\n")
}

/// Read one request head. `idle_first`: a kept-alive connection, which first waits for the
/// request's first byte within `keepalive_timeout` (or until shutdown begins); the head's own
/// deadline runs from that byte, or else from now (the connection just opened).
async fn read_head(
    stream: &mut Stream,
    limits: &ClientLimits,
    idle_first: bool,
    shutdown: &ShutdownWatch,
) -> Head {
    let budget = limits.max_header_bytes;
    let mut buf = BytesMut::with_capacity(INITIAL_HEAD_BUFFER.min(budget + 1));
    if idle_first {
        let mut shutdown = shutdown.clone();
        if *shutdown.borrow_and_update() {
            return Head::Closed;
        }
        let mut room = (&mut buf).limit(budget + 1);
        let first = tokio::select! {
            read = timeout(limits.keepalive_timeout, stream.read_buf(&mut room)) => read,
            _ = shutdown.changed() => return Head::Closed,
        };
        match first {
            Err(_) => {
                CLIENT_CONNECTIONS_CLOSED
                    .with_label_values(&["keepalive_timeout"])
                    .inc();
                return Head::Closed;
            }
            Ok(Ok(0)) | Ok(Err(_)) => return Head::Closed,
            Ok(Ok(_)) => {}
        }
    }
    let deadline = Instant::now() + limits.header_timeout;
    let mut scanned = 0;
    loop {
        if head_ends(&buf, &mut scanned) {
            return Head::Whole(buf);
        }
        if buf.len() > budget {
            return Head::TooLarge;
        }
        let room = budget + 1 - buf.len();
        match timeout_at(deadline, stream.read_buf(&mut (&mut buf).limit(room))).await {
            Err(_) if buf.is_empty() => return Head::Closed,
            Err(_) => return Head::TimedOut,
            Ok(Ok(0)) | Ok(Err(_)) => return Head::Closed,
            Ok(Ok(_)) => {}
        }
    }
}

/// Answer a head we will not pass on, then close: the answer, our FIN, and a bounded drain of
/// what the client is still sending so that closing does not reset the answer away.
async fn refuse(stream: &mut Stream, status_line: &str) {
    let answer = format!(
        "HTTP/1.1 {status_line}\r\ncontent-length: 0\r\ncache-control: no-store\r\nconnection: close\r\n\r\n"
    );
    let sent = timeout(REFUSAL_WRITE_TIMEOUT, async {
        stream.write_all(answer.as_bytes()).await?;
        stream.flush().await?;
        AsyncWriteExt::shutdown(stream).await
    })
    .await;
    if !matches!(sent, Ok(Ok(()))) {
        return;
    }
    let until = Instant::now() + LINGER_TIME;
    let mut buf = BytesMut::with_capacity(16 << 10);
    let mut drained = 0;
    while drained < LINGER_BYTES {
        buf.clear();
        match timeout_at(until, stream.read_buf(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => drained += n,
            _ => break,
        }
    }
}

#[async_trait]
impl<A> ServerApp for ClientConnections<A>
where
    A: HttpServerApp + Send + Sync + 'static,
{
    async fn process_new(
        self: &Arc<Self>,
        mut stream: Stream,
        shutdown: &ShutdownWatch,
    ) -> Option<Stream> {
        let options = self.app.server_options();
        if matches!(
            stream.selected_alpn_proto(),
            Some(ALPN::H2) | Some(ALPN::Custom(_))
        ) || options.is_some_and(|o| o.h2c || o.force_custom)
        {
            // Not HTTP/1 (or maybe not): Pingora's own handling, h2's flow control and idle
            // timeout included.
            return ServerApp::process_new(&self.app, stream, shutdown).await;
        }
        let request_limit = options.and_then(|o| o.keepalive_request_limit);
        let mut settings: Option<HttpPersistentSettings> = None;
        let mut kept_alive = false;
        loop {
            let head = match read_head(&mut stream, &self.limits, kept_alive, shutdown).await {
                Head::Whole(head) => head,
                Head::Closed => return None,
                Head::TimedOut => {
                    CLIENT_CONNECTIONS_CLOSED
                        .with_label_values(&["header_timeout"])
                        .inc();
                    refuse(&mut stream, "408 Request Timeout").await;
                    return None;
                }
                Head::TooLarge => {
                    CLIENT_CONNECTIONS_CLOSED
                        .with_label_values(&["header_too_large"])
                        .inc();
                    refuse(&mut stream, "431 Request Header Fields Too Large").await;
                    return None;
                }
            };
            let mut session = ServerSession::new_http1(stream);
            match settings.take() {
                Some(settings) => settings.apply_to_session(&mut session),
                None if kept_alive => {}
                None => {
                    // What Pingora's loop does for a new connection.
                    if *shutdown.borrow() {
                        session.set_keepalive(None);
                    } else {
                        session.set_keepalive(Some(self.limits.keepalive_timeout.as_secs()));
                    }
                    session.set_keepalive_reuses_remaining(request_limit);
                }
            }
            // The trap: with pipelining on, the previous request's overread would already be
            // the session's prefix, and ours would replace it. The edge never turns it on.
            if session.pipelining_enabled() {
                log::error!("HTTP/1.1 pipelining is on: closing a connection it would garble");
                return None;
            }
            session.set_pipelined_prefix(head);
            let reused = self.app.process_new_http(session, shutdown).await?;
            (stream, settings) = reused.consume();
            kept_alive = true;
        }
    }

    async fn cleanup(&self) {
        self.app.http_cleanup().await;
    }
}

#[cfg(test)]
mod tests {
    use super::head_ends;

    fn ends(s: &str) -> bool {
        head_ends(s.as_bytes(), &mut 0)
    }

    #[test]
    fn a_head_ends_at_the_first_empty_line() {
        assert!(ends("GET / HTTP/1.1\r\nHost: a\r\n\r\n"));
        assert!(ends("GET / HTTP/1.1\nHost: a\n\n"));
        assert!(ends("GET / HTTP/1.1\r\nHost: a\r\n\n"));
        assert!(ends("GET / HTTP/1.1\r\n\r\nbody"));
        assert!(!ends("GET / HTTP/1.1\r\nHost: a\r\n"));
        assert!(!ends(""));
        // Empty lines before the request line are not its end.
        assert!(!ends("\r\n\r\n"));
        assert!(!ends("\r\n\r\nGET / HTTP/1.1\r\n"));
        assert!(ends("\r\nGET / HTTP/1.1\r\n\r\n"));
    }

    #[test]
    fn a_trickled_head_is_found_across_reads() {
        let full = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n";
        let mut scanned = 0;
        for n in 1..full.len() {
            assert!(!head_ends(&full[..n], &mut scanned), "ended early at {n}");
        }
        assert!(head_ends(full, &mut scanned));
    }
}
