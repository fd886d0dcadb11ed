//! Answers the edge writes itself, without going upstream, and reading a header as text.

use bytes::Bytes;
use pingora_error::Result;
use pingora_http::ResponseHeader;
use pingora_proxy::Session;

/// Answer from the edge without going upstream: short text, never cached.
pub async fn respond(session: &mut Session, status: u16, message: &str) -> Result<bool> {
    text(session, status, format!("{message}\n")).await
}

/// Answer with `body` exactly as given (`text/plain`, never cached): an ACME key
/// authorization, which must arrive without a trailing newline.
pub async fn text(session: &mut Session, status: u16, body: String) -> Result<bool> {
    let body = Bytes::from(body);
    let mut resp = ResponseHeader::build(status, Some(4))?;
    resp.insert_header("content-type", "text/plain; charset=utf-8")?;
    resp.insert_header("content-length", body.len().to_string())?;
    resp.insert_header("cache-control", "no-store")?;
    session.write_response_header(Box::new(resp), false).await?;
    session.write_response_body(Some(body), true).await?;
    Ok(true)
}

/// The first `name` field of a request or response header, when it is text.
pub fn header_str<'a>(headers: &'a http::HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// Send the client elsewhere: `status` (a 3xx) with `Location`, never cached.
pub async fn redirect(session: &mut Session, status: u16, location: &str) -> Result<bool> {
    let mut resp = ResponseHeader::build(status, Some(4))?;
    resp.insert_header("location", location)?;
    resp.insert_header("content-length", "0")?;
    resp.insert_header("cache-control", "no-store")?;
    session.write_response_header(Box::new(resp), true).await?;
    Ok(true)
}
