//! The edge facing the internet, end to end with the real binary and real origins: every line
//! of a varied header in the variant key, client forwarding fields kept from the origin,
//! `Host` and `Content-Length` framing rules, and the access log (fields, escaping, rotation).

use crate::support::*;
use serde_json::Value;
use std::path::Path;
use std::time::{Duration, Instant};

const FLOWER: &str = "/photos/FreshFlower.jpg";

/// The access log's lines once there are at least `n` of them (the writer thread is
/// asynchronous to the response).
fn log_lines(path: &Path, n: usize) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let lines: Vec<String> = text.lines().map(str::to_string).collect();
        if lines.len() >= n {
            return lines;
        }
        assert!(
            Instant::now() < deadline,
            "{} has {} lines, wanted {n}:\n{text}",
            path.display(),
            lines.len()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn json_lines(path: &Path, n: usize) -> Vec<Value> {
    log_lines(path, n)
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

#[test]
fn r_vary_two_accept_encoding_lines_do_not_poison_a_one_line_client() {
    let origin = EchoOrigin::start();
    let gw = Imgate::start(&origin.url(), "access_log: {enabled: false}\n");
    let page = "/vary-ae/page";
    // The origin reads both lines and picks brotli.
    let two = [("Accept-Encoding", "gzip"), ("Accept-Encoding", "br")];
    let r = gw.get_with(page, &two);
    assert_eq!(r.header("x-chosen-encoding"), Some("br"));
    // A client that only takes gzip must not be served that variant.
    let r = gw.get_with(page, &[("Accept-Encoding", "gzip")]);
    assert_eq!(
        r.header("x-chosen-encoding"),
        Some("gzip"),
        "poisoned variant"
    );
    assert_eq!(r.header("cache-status"), Some("imgate; fwd=miss"));
    // Two lines mean what one line with both values means (RFC 9110 §5.3): the same variant.
    let r = gw.get_with(page, &[("Accept-Encoding", "gzip, br")]);
    assert_eq!(r.header("x-chosen-encoding"), Some("br"));
    assert_eq!(r.header("cache-status"), Some("imgate; hit"));
    assert_eq!(origin.requests().len(), 2);
}

#[test]
fn r_accept_split_over_two_lines_negotiates_on_both_for_images() {
    let o = TestOrigin::start(fixtures());
    let gw = Imgate::start(&o.url(), "access_log: {enabled: false}\n");
    let url = format!("/cdn-cgi/image/width=64,format=auto{FLOWER}");
    let r = gw.get_with(&url, &[("Accept", "image/webp"), ("Accept", "image/avif")]);
    assert_eq!(r.status, 200);
    assert_eq!(sniff(&r.body), "avif", "the second Accept line offers AVIF");
    assert_eq!(r.header("content-type"), Some("image/avif"));
    let r = gw.get_with(&url, &[("Accept", "image/webp")]);
    assert_eq!(sniff(&r.body), "webp", "a WebP-only client gets WebP");
    let r = gw.get_with(&url, &[("Accept", "image/webp, image/avif")]);
    assert_eq!(sniff(&r.body), "avif");
    assert_eq!(r.header("cache-status"), Some("imgate; hit"));
}

#[test]
fn client_forwarding_fields_never_reach_the_origin() {
    let origin = EchoOrigin::start();
    let gw = Imgate::start(&origin.url(), "access_log: {enabled: false}\n");
    let hostile = [
        ("X-Forwarded-Host", "evil.example"),
        ("X-Original-URL", "/admin"),
        ("X-Rewrite-URL", "/admin"),
        ("Forwarded", "for=6.6.6.6;host=evil.example;proto=https"),
        ("X-Forwarded-For", "6.6.6.6"),
        ("X-Forwarded-Proto", "https"),
        ("X-Real-IP", "6.6.6.6"),
        ("X-HTTP-Method-Override", "DELETE"),
    ];
    let r = gw.get_with("/echo/a", &hostile);
    assert_eq!(r.status, 200);
    for gone in [
        "x-original-url",
        "x-rewrite-url",
        "forwarded",
        "x-real-ip",
        "x-http-method-override",
    ] {
        assert_eq!(
            origin.last(gone),
            Vec::<String>::new(),
            "{gone} reached the origin"
        );
    }
    assert_eq!(origin.last("x-forwarded-host"), vec![gw.addr.clone()]);
    assert_eq!(
        origin.last("x-forwarded-for"),
        vec!["127.0.0.1".to_string()]
    );
    assert_eq!(origin.last("x-forwarded-proto"), vec!["http".to_string()]);

    // A page that builds links from X-Forwarded-Host cannot be poisoned through the cache.
    let r = gw.get_with("/reflect/page", &[("X-Forwarded-Host", "evil.example")]);
    let body = String::from_utf8_lossy(&r.body).to_string();
    assert!(!body.contains("evil"), "{body}");
    let r = gw.get("/reflect/page");
    assert_eq!(r.header("cache-status"), Some("imgate; hit"));
    let body = String::from_utf8_lossy(&r.body).to_string();
    assert!(body.contains(&format!("http://{}/next", gw.addr)), "{body}");
}

#[test]
fn a_trusted_proxy_s_forwarding_fields_are_kept_and_appended_to() {
    let origin = EchoOrigin::start();
    let gw = Imgate::start(
        &origin.url(),
        "access_log: {enabled: false}\ntrusted_proxies: [127.0.0.1/32]\n",
    );
    let r = gw.get_with(
        "/echo/b",
        &[
            ("X-Forwarded-For", "203.0.113.7"),
            ("X-Forwarded-For", "198.51.100.2"),
            ("X-Forwarded-Proto", "https"),
            ("X-Forwarded-Host", "img.example"),
            ("X-Original-URL", "/admin"),
        ],
    );
    assert_eq!(r.status, 200);
    assert_eq!(
        origin.last("x-forwarded-for"),
        vec!["203.0.113.7, 198.51.100.2, 127.0.0.1".to_string()]
    );
    assert_eq!(origin.last("x-forwarded-proto"), vec!["https".to_string()]);
    assert_eq!(
        origin.last("x-forwarded-host"),
        vec!["img.example".to_string()]
    );
    assert_eq!(origin.last("x-original-url"), Vec::<String>::new());
}

#[test]
fn http11_request_without_host_is_400() {
    let o = TestOrigin::start(fixtures());
    let gw = Imgate::start(&o.url(), "access_log: {enabled: false}\n");
    let r = raw_request(
        &gw.addr,
        format!("GET {FLOWER} HTTP/1.1\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .unwrap();
    assert_eq!(r.status, 400);
    assert_eq!(o.hits(FLOWER), 0);
    // HTTP/1.0 may leave Host out.
    let r = raw_request(
        &gw.addr,
        format!("GET {FLOWER} HTTP/1.0\r\n\r\n").as_bytes(),
    )
    .unwrap();
    assert_eq!(r.status, 200);
}

#[test]
fn repeated_content_length_goes_upstream_as_one_value() {
    let origin = EchoOrigin::start();
    let gw = Imgate::start(&origin.url(), "access_log: {enabled: false}\n");
    let host = &gw.addr;
    for framing in [
        "Content-Length: 3, 3\r\n",
        "Content-Length: 3\r\nContent-Length: 3\r\n",
    ] {
        let req = format!(
            "POST /echo/c HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n{framing}\r\nabc"
        );
        let r = raw_request(host, req.as_bytes()).unwrap();
        assert_eq!(r.status, 200, "{framing:?}");
        assert_eq!(
            origin.last("content-length"),
            vec!["3".to_string()],
            "{framing:?}"
        );
    }
    // Conflicting values: Pingora answers 400 before any phase; nothing goes upstream.
    let before = origin.requests().len();
    let req = format!(
        "POST /echo/d HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nContent-Length: 3, 4\r\n\r\nabcd"
    );
    assert_eq!(raw_request(host, req.as_bytes()).unwrap().status, 400);
    assert_eq!(origin.requests().len(), before);
}

#[test]
fn access_log_writes_one_json_line_per_request_and_reopens_on_sigusr1() {
    let o = TestOrigin::start(fixtures());
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.log");
    let gw = Imgate::start(
        &o.url(),
        &format!("access_log:\n  path: {}\n", log.display()),
    );
    let image = format!("/cdn-cgi/image/width=64,format=jpeg{FLOWER}?v=1");
    let miss = gw.get_with(
        &image,
        &[("User-Agent", "test-agent"), ("Referer", "http://r/")],
    );
    assert_eq!(miss.header("cache-status"), Some("imgate; fwd=miss"));
    let hit = gw.get(&image);
    assert_eq!(hit.header("cache-status"), Some("imgate; hit"));
    let page = gw.get(FLOWER);
    assert_eq!(page.status, 200);
    let bad = gw.get("/cdn-cgi/image/width=abc/photos/FreshFlower.jpg");
    assert_eq!(bad.status, 400);
    // Quotes, a backslash and a tab where a client controls them (Pingora itself refuses raw
    // quotes in the path with a 400 before any phase runs, so the path carries them encoded).
    let hostile = format!(
        "GET /a%22b%5Cc?q=%22x%22 HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nUser-Agent: ev\"il\\\tx}}\r\n\r\n",
        gw.addr
    )
    .into_bytes();
    let r = raw_request(&gw.addr, &hostile).unwrap();
    assert_eq!(r.status, 404);

    let lines = json_lines(&log, 5);
    assert_eq!(lines.len(), 5, "one line per request");
    let (l_miss, l_hit, l_page, l_bad, l_hostile) =
        (&lines[0], &lines[1], &lines[2], &lines[3], &lines[4]);
    for l in &lines {
        assert_eq!(l["client"], "127.0.0.1");
        assert_eq!(l["method"], "GET");
        assert_eq!(l["host"], gw.addr.as_str());
        assert!(l["duration_ms"].as_f64().unwrap() >= 0.0);
        assert!(l["time"].as_str().unwrap().ends_with('Z'), "{l}");
    }
    assert_eq!(l_miss["path"], image.as_str());
    assert_eq!(l_miss["status"], 200);
    assert_eq!(l_miss["route"], "image");
    assert_eq!(l_miss["cache"], "miss");
    assert_eq!(l_miss["bytes"], miss.body.len());
    assert_eq!(l_miss["user_agent"], "test-agent");
    assert_eq!(l_miss["referer"], "http://r/");
    assert!(l_miss["fetch_ms"].as_f64().unwrap() >= 0.0, "{l_miss}");
    assert!(l_miss["pipeline_ms"].as_f64().unwrap() > 0.0, "{l_miss}");
    assert_eq!(l_hit["cache"], "hit");
    assert_eq!(l_hit["route"], "image");
    assert_eq!(l_hit["bytes"], hit.body.len());
    assert!(l_hit.get("fetch_ms").is_none(), "{l_hit}");
    assert_eq!(l_page["route"], "passthrough");
    assert_eq!(l_page["cache"], "miss");
    assert_eq!(l_page["bytes"], page.body.len());
    assert_eq!(l_bad["status"], 400);
    assert_eq!(l_bad["route"], "error");
    assert_eq!(l_hostile["status"], 404);
    assert_eq!(l_hostile["user_agent"], "ev\"il\\\tx}");
    assert!(
        l_hostile["path"].as_str().unwrap().starts_with("/a"),
        "{l_hostile}"
    );

    // Rotation: move the file away, SIGUSR1, and the next line goes to a new file.
    let rotated = dir.path().join("access.log.1");
    std::fs::rename(&log, &rotated).unwrap();
    assert_eq!(unsafe { libc::kill(gw.pid() as i32, libc::SIGUSR1) }, 0);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(gw.get("/after-rotation").status, 404);
    let fresh = json_lines(&log, 1);
    assert_eq!(fresh[0]["path"], "/after-rotation");
    assert_eq!(
        log_lines(&rotated, 5).len(),
        5,
        "the rotated file got nothing more"
    );
    let mut gw = gw;
    assert!(gw.alive(), "SIGUSR1 must not end the process");
}

#[test]
fn access_log_combined_format() {
    let o = TestOrigin::start(fixtures());
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.log");
    let gw = Imgate::start(
        &o.url(),
        &format!(
            "access_log:\n  format: combined\n  path: {}\n",
            log.display()
        ),
    );
    let page = gw.get_with(FLOWER, &[("User-Agent", "say \"hi\"")]);
    let line = &log_lines(&log, 1)[0];
    let expected_tail = format!(
        "\"GET {FLOWER} HTTP/1.1\" 200 {} \"-\" \"say \\x22hi\\x22\"",
        page.body.len()
    );
    assert!(line.starts_with("127.0.0.1 - - ["), "{line}");
    assert!(line.ends_with(&expected_tail), "{line}");
}
