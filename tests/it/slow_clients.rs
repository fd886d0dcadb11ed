//! Clients that connect and then dawdle: silent or half-sent requests on the admin listener,
//! trickled, idle and oversized request heads on the edge. Raw TCP against the real binary; every
//! flood is bounded in count and time.

use crate::support::*;
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// Short edge limits so the tests wait seconds, not minutes.
const CLIENTS: &str =
    "clients:\n  header_timeout_seconds: 2\n  keepalive_timeout_seconds: 2\n  max_header_size: 32KiB\n";

fn start() -> (TestOrigin, Imgate) {
    let o = TestOrigin::start(fixtures());
    let gw = Imgate::start(&o.url(), CLIENTS);
    (o, gw)
}

/// Read until the server closes (or `limit` passes): what it sent and when it closed, if it did.
fn read_until_closed(s: &mut TcpStream, limit: Duration) -> (Vec<u8>, Option<Duration>) {
    let started = Instant::now();
    let mut got = Vec::new();
    let mut buf = [0u8; 16 << 10];
    loop {
        let left = limit.saturating_sub(started.elapsed());
        if left.is_zero() {
            return (got, None);
        }
        s.set_read_timeout(Some(left)).unwrap();
        match s.read(&mut buf) {
            Ok(0) => return (got, Some(started.elapsed())),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return (got, None)
            }
            // A reset is a close too.
            Err(_) => return (got, Some(started.elapsed())),
        }
    }
}

/// One whole response with a Content-Length from a kept-alive connection: its status.
fn read_one_response(s: &mut TcpStream) -> u16 {
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut raw = Vec::new();
    let mut byte = [0u8; 1];
    while !raw.ends_with(b"\r\n\r\n") {
        assert_eq!(s.read(&mut byte).unwrap(), 1, "connection closed mid-head");
        raw.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&raw).to_ascii_lowercase();
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .expect("a content-length")
        .trim()
        .parse()
        .unwrap();
    let mut body = vec![0u8; length];
    s.read_exact(&mut body).unwrap();
    head.split_whitespace().nth(1).unwrap().parse().unwrap()
}

fn status_of(raw: &[u8]) -> Option<u16> {
    let text = String::from_utf8_lossy(raw);
    text.strip_prefix("HTTP/1.1 ")?.get(..3)?.parse().ok()
}

#[test]
fn r_admin_starved_livez_answers_at_once_under_silent_and_half_sent_connections() {
    let (_o, gw) = start();
    // 25 that send nothing, 20 that send half a request head.
    let mut flood: Vec<TcpStream> = (0..25)
        .map(|_| TcpStream::connect(&gw.admin).unwrap())
        .collect();
    for _ in 0..20 {
        let mut s = TcpStream::connect(&gw.admin).unwrap();
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: admin\r\nX-Half: ")
            .unwrap();
        flood.push(s);
    }
    let flooded = Instant::now();
    // The old loop served 16 connections at once and waited for a slot before accepting.
    let mut worst = Duration::ZERO;
    for _ in 0..5 {
        let t = Instant::now();
        let r = get(&gw.admin, "/livez", &[]).unwrap();
        let took = t.elapsed();
        assert_eq!(r.status, 200);
        assert_eq!(r.body, b"ok\n");
        worst = worst.max(took);
    }
    eprintln!("/livez under 45 half-open connections: worst of 5 took {worst:?}");
    assert!(worst < Duration::from_secs(1), "/livez took {worst:?}");
    assert_eq!(get(&gw.admin, "/readyz", &[]).unwrap().status, 200);

    // The server closes every one of them after its 5 s header timeout.
    for (i, s) in flood.iter_mut().enumerate() {
        let left = Duration::from_secs(9).saturating_sub(flooded.elapsed());
        let (_, closed) = read_until_closed(s, left);
        assert!(closed.is_some(), "connection {i} still open after 9 s");
    }
    let all_closed = flooded.elapsed();
    assert!(
        all_closed >= Duration::from_secs(4),
        "closed after {all_closed:?}, before the header timeout"
    );
}

#[test]
fn r_slow_head_a_trickled_request_head_is_cut_off_at_the_header_timeout() {
    let (_o, gw) = start();
    let mut s = TcpStream::connect(&gw.addr).unwrap();
    s.write_all(b"GET /photos/FreshFlower.jpg HTTP/1.1\r\nHost: a\r\nX-Slow: ")
        .unwrap();
    let mut writer = s.try_clone().unwrap();
    // One byte a second: each read is quick, the head never ends.
    let trickle = std::thread::spawn(move || {
        for _ in 0..10 {
            if writer.write_all(b"a").is_err() {
                return;
            }
            std::thread::sleep(Duration::from_secs(1));
        }
    });
    let (got, closed) = read_until_closed(&mut s, Duration::from_secs(8));
    let closed = closed.expect("a trickling head is closed within 8 s (header timeout 2 s)");
    assert!(
        closed >= Duration::from_millis(1500) && closed < Duration::from_secs(5),
        "closed after {closed:?}"
    );
    assert_eq!(
        status_of(&got),
        Some(408),
        "{}",
        String::from_utf8_lossy(&got)
    );
    trickle.join().unwrap();
}

#[test]
fn r_idle_keepalive_an_idle_kept_alive_connection_is_closed_after_keepalive_timeout() {
    let (_o, gw) = start();
    let mut s = TcpStream::connect(&gw.addr).unwrap();
    let request = b"GET /photos/FreshFlower.jpg HTTP/1.1\r\nHost: a\r\n\r\n";
    s.write_all(request).unwrap();
    assert_eq!(read_one_response(&mut s), 200);
    // Kept alive: a second request on it is served.
    s.write_all(request).unwrap();
    assert_eq!(read_one_response(&mut s), 200);
    let (got, closed) = read_until_closed(&mut s, Duration::from_secs(8));
    let closed = closed.expect("an idle keep-alive connection is closed within 8 s");
    assert!(got.is_empty(), "idle close says nothing");
    assert!(
        closed >= Duration::from_millis(1500) && closed < Duration::from_secs(5),
        "closed after {closed:?} (keepalive_timeout 2 s)"
    );
}

/// A head with a `size`-byte field gets 431 and the connection closes.
fn assert_big_head_refused(addr: &str, size: usize) {
    let mut s = TcpStream::connect(addr).unwrap();
    let mut writer = s.try_clone().unwrap();
    let sender = std::thread::spawn(move || {
        let mut head = b"GET /photos/FreshFlower.jpg HTTP/1.1\r\nHost: a\r\nX-Big: ".to_vec();
        head.resize(head.len() + size, b'a');
        head.extend_from_slice(b"\r\n\r\n");
        // The server stops reading at some point: errors are expected.
        let _ = writer.write_all(&head);
    });
    let (got, closed) = read_until_closed(&mut s, Duration::from_secs(10));
    assert!(closed.is_some(), "{size}-byte head: connection left open");
    assert_eq!(
        status_of(&got),
        Some(431),
        "{size}-byte head: {}",
        String::from_utf8_lossy(&got)
    );
    sender.join().unwrap();
}

#[test]
fn r_big_head_a_head_over_its_budget_gets_431_and_the_connection_closes() {
    let (_o, gw) = start();
    // 64 KiB is under Pingora's own limit (1 MiB, 400) but over the 32 KiB budget; 1 MiB over
    // both.
    for size in [64 << 10, 1 << 20] {
        assert_big_head_refused(&gw.addr, size);
    }
    // A head under the budget is served as before.
    let mut s = TcpStream::connect(&gw.addr).unwrap();
    let pad = "a".repeat(16 << 10);
    write!(
        s,
        "GET /photos/FreshFlower.jpg HTTP/1.1\r\nHost: a\r\nX-Pad: {pad}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let (got, _) = read_until_closed(&mut s, Duration::from_secs(30));
    assert_eq!(status_of(&got), Some(200));
}

#[test]
fn r_head_memory_unfinished_heads_do_not_grow_memory() {
    let (_o, gw) = start();
    assert_eq!(gw.get("/photos/FreshFlower.jpg").status, 200);
    let before = proc_status_kib(gw.pid(), "VmRSS");
    // 100 connections each sending 256 KiB of a head that never ends (25 MiB in all). Pingora
    // alone buffers every byte of it (up to 1 MiB a connection); with a 32 KiB budget each is
    // answered 431 and closed after at most 32 KiB read (its buffer may double to 64 KiB).
    let mut conns = Vec::new();
    for _ in 0..100 {
        let mut s = TcpStream::connect(&gw.addr).unwrap();
        s.set_write_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut head = b"GET / HTTP/1.1\r\nHost: a\r\nX-Pad: ".to_vec();
        head.resize(256 << 10, b'a');
        let _ = s.write_all(&head);
        conns.push(s);
    }
    std::thread::sleep(Duration::from_millis(500));
    let after = proc_status_kib(gw.pid(), "VmRSS");
    let rise_kb = after.saturating_sub(before);
    eprintln!("RSS {before} kB -> {after} kB (+{rise_kb} kB) with 100 x 256 KiB unfinished heads");
    // Bound: a connection holds at most a 64 KiB head buffer (32 KiB doubled), a 16 KiB drain
    // buffer and its 64 KiB response write buffer (`response_write_buffer`): 14 MiB if all 100
    // held their worst at once, plus allocator slack. Measured: +12.5 MiB here, +47 MiB with
    // Pingora alone buffering the heads (which also keeps them).
    assert!(rise_kb < 24 << 10, "RSS rose by {rise_kb} kB");
    for (i, s) in conns.iter_mut().enumerate() {
        let (got, closed) = read_until_closed(s, Duration::from_secs(10));
        assert!(closed.is_some(), "connection {i} left open");
        assert_eq!(status_of(&got), Some(431), "connection {i}");
    }
}

#[test]
fn r_transform_role_a_service_facing_clients_alone_has_the_same_head_limits() {
    let o = TestOrigin::start(fixtures());
    let gw = Imgate::start_with_args(&o.url(), CLIENTS, &["--role", "transform"]);
    assert_big_head_refused(&gw.addr, 64 << 10);
    // A trickled head is cut off at the header timeout there too.
    let mut s = TcpStream::connect(&gw.addr).unwrap();
    s.write_all(b"GET /photos/FreshFlower.jpg HTTP/1.1\r\nHost: a\r\nX-Slow: a")
        .unwrap();
    let (got, closed) = read_until_closed(&mut s, Duration::from_secs(8));
    assert!(closed.is_some(), "an unfinished head stayed open past 8 s");
    assert_eq!(
        status_of(&got),
        Some(408),
        "{}",
        String::from_utf8_lossy(&got)
    );
}
