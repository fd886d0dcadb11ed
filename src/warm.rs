//! Cache warming: `POST /warm` fetches URLs through the edge's own listener over loopback, so
//! warmed entries get exactly the keys, headers and variance real traffic would. A few at a
//! time, each bounded in time; knows HTTP/1.1 just enough to read a status and a header.

use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;

/// Most URLs one call may name.
pub const MAX_URLS: usize = 100;
/// Requests in flight at once: warming must not crowd out real traffic.
const CONCURRENCY: usize = 4;
const TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WarmRequest {
    pub urls: Vec<String>,
    /// `Accept` sent with every request (selects the `format=auto` variant to warm).
    #[serde(default)]
    pub accept: Option<String>,
}

/// What happened to one URL.
#[derive(Debug, Serialize)]
pub struct WarmResult {
    pub url: String,
    /// HTTP status from the edge; absent when the request failed.
    pub status: Option<u16>,
    /// The edge's `Cache-Status` answer (`imgate; fwd=miss` the first time).
    pub cache_status: Option<String>,
    pub bytes: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Where warming connects: the edge listener, with an unspecified address (`0.0.0.0`) replaced
/// by loopback.
pub fn loopback(listen: &str) -> String {
    match listen.parse::<SocketAddr>() {
        Ok(mut a) if a.ip().is_unspecified() => {
            let lo: std::net::IpAddr = if a.is_ipv4() {
                std::net::Ipv4Addr::LOCALHOST.into()
            } else {
                std::net::Ipv6Addr::LOCALHOST.into()
            };
            a.set_ip(lo);
            a.to_string()
        }
        _ => listen.to_string(),
    }
}

impl WarmRequest {
    /// Validate the request; a public message for the 400 otherwise.
    pub fn check(&self) -> Result<(), String> {
        if self.urls.is_empty() || self.urls.len() > MAX_URLS {
            return Err(format!("name 1 to {MAX_URLS} urls"));
        }
        if let Some(bad) = self.urls.iter().find(|u| split_url(u, "").is_none()) {
            return Err(format!(
                "'{bad}' is neither a path starting with '/' nor an http(s):// URL"
            ));
        }
        if self
            .accept
            .as_deref()
            .is_some_and(|a| a.bytes().any(|b| b.is_ascii_control()))
        {
            return Err("bad accept value".into());
        }
        Ok(())
    }

    /// Fetch every URL through `edge`; paths without a host are sent with `default_host`.
    pub async fn run(self, edge: String, default_host: String) -> Vec<WarmResult> {
        let slots = Arc::new(Semaphore::new(CONCURRENCY));
        let accept = Arc::new(self.accept);
        let tasks: Vec<_> = self
            .urls
            .into_iter()
            .map(|url| {
                let (slots, accept, edge) = (slots.clone(), accept.clone(), edge.clone());
                let (host, path) = split_url(&url, &default_host).unwrap_or_default();
                tokio::spawn(async move {
                    let _slot = slots.acquire().await;
                    let fetched = tokio::time::timeout(
                        TIMEOUT,
                        fetch(&edge, &host, &path, accept.as_deref()),
                    )
                    .await
                    .unwrap_or_else(|_| Err("timed out".into()));
                    log::info!("warm {url}: {fetched:?}");
                    match fetched {
                        Ok((status, cache_status, bytes)) => WarmResult {
                            url,
                            status: Some(status),
                            cache_status,
                            bytes,
                            error: None,
                        },
                        Err(e) => WarmResult {
                            url,
                            status: None,
                            cache_status: None,
                            bytes: 0,
                            error: Some(e),
                        },
                    }
                })
            })
            .collect();
        let mut out = Vec::with_capacity(tasks.len());
        for t in tasks {
            if let Ok(r) = t.await {
                out.push(r);
            }
        }
        out
    }
}

/// `(host, path)` of a URL or site path; `None` for anything else.
fn split_url(url: &str, default_host: &str) -> Option<(String, String)> {
    if url.bytes().any(|b| b.is_ascii_control() || b == b' ') {
        return None;
    }
    for scheme in ["http://", "https://"] {
        if let Some(rest) = url.strip_prefix(scheme) {
            let (host, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
            let path = if path.is_empty() { "/" } else { path };
            return (!host.is_empty()).then(|| (host.to_string(), path.to_string()));
        }
    }
    url.starts_with('/')
        .then(|| (default_host.to_string(), url.to_string()))
}

/// One GET with `Connection: close`: status, `Cache-Status`, body bytes.
async fn fetch(
    edge: &str,
    host: &str,
    path: &str,
    accept: Option<&str>,
) -> Result<(u16, Option<String>, usize), String> {
    let mut conn = TcpStream::connect(edge)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let mut req = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n");
    if let Some(a) = accept {
        req.push_str(&format!("Accept: {a}\r\n"));
    }
    req.push_str("\r\n");
    conn.write_all(req.as_bytes())
        .await
        .map_err(|e| format!("write: {e}"))?;
    let mut raw = Vec::new();
    conn.read_to_end(&mut raw)
        .await
        .map_err(|e| format!("read: {e}"))?;
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or("no response header")?;
    let head = String::from_utf8_lossy(&raw[..end]);
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .ok_or("bad status line")?;
    let cache_status = lines
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("cache-status"))
        .map(|(_, v)| v.trim().to_string());
    Ok((status, cache_status, raw.len() - end - 4))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_split_and_loopback() {
        assert_eq!(
            split_url("http://img.example.com/a.jpg", "d"),
            Some(("img.example.com".into(), "/a.jpg".into()))
        );
        assert_eq!(
            split_url("/a.jpg", "d"),
            Some(("d".into(), "/a.jpg".into()))
        );
        assert_eq!(split_url("a.jpg", "d"), None);
        assert_eq!(split_url("/a b", "d"), None);
        assert_eq!(loopback("0.0.0.0:8080"), "127.0.0.1:8080");
        assert_eq!(loopback("[::]:80"), "[::1]:80");
        assert_eq!(loopback("10.1.2.3:80"), "10.1.2.3:80");
    }
}
