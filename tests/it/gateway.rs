//! End-to-end tests of the real `imgate` binary in front of a real origin serving real images.

use crate::support::*;
use std::sync::Arc;

fn origin() -> TestOrigin {
    TestOrigin::start(fixtures())
}

fn dims(r: &Response) -> (u32, u32) {
    let img = decode(&r.body);
    (img.width(), img.height())
}

/// FreshFlower.jpg is 1600x1203.
const FLOWER: &str = "photos/FreshFlower.jpg";

#[test]
fn every_fit_gives_exact_dimensions_and_looks_right() {
    let o = origin();
    let gw = Imgate::start(&o.url(), "");
    let cases: &[(&str, (u32, u32))] = &[
        ("width=300", (300, 226)),
        ("height=301", (400, 301)),
        ("width=150,dpr=2", (300, 226)),
        ("width=400,height=400,fit=scale-down", (400, 301)),
        ("width=3000,fit=scale-down", (1600, 1203)),
        ("width=2000,height=2000,fit=contain", (2000, 1504)),
        ("width=300,height=300,fit=cover", (300, 300)),
        ("width=300,height=100,fit=cover,gravity=top", (300, 100)),
        ("width=200,height=300,fit=cover,gravity=0.2x0.8", (200, 300)),
        ("width=300,height=300,fit=crop", (300, 300)),
        ("width=2000,height=100,fit=crop", (1600, 100)),
        ("width=300,height=300,fit=pad,background=red", (300, 300)),
        ("width=300,rotate=90", (300, 399)),
        ("width=300,flip=hv", (300, 226)),
        ("width=300,blur=20", (300, 226)),
        ("width=300,sharpen=3", (300, 226)),
        ("width=300,grayscale", (300, 226)),
        ("width=300,quality=40", (300, 226)),
        ("width=300,metadata=keep,anim=false", (300, 226)),
    ];
    for (options, expected) in cases {
        let r = gw.get(&format!("/cdn-cgi/image/{options},format=jpeg/{FLOWER}"));
        assert_eq!(
            r.status,
            200,
            "{options}: {}",
            String::from_utf8_lossy(&r.body)
        );
        assert_eq!(sniff(&r.body), "jpeg", "{options}");
        assert_eq!(dims(&r), *expected, "{options}");
    }
    // Look: a plain downscale matches a reference downscale; a flipped one must not.
    let src = fixtures().join(FLOWER);
    let reference = reference(&src, 300, 226);
    let plain = decode(
        &gw.get(&format!("/cdn-cgi/image/width=300,format=png/{FLOWER}"))
            .body,
    );
    let s = ssim(&reference, &plain);
    assert!(s > 0.9, "plain downscale SSIM {s}");
    let flipped = decode(
        &gw.get(&format!(
            "/cdn-cgi/image/width=300,flip=hv,format=png/{FLOWER}"
        ))
        .body,
    );
    let s = ssim(&reference, &flipped);
    assert!(
        s < 0.6,
        "flipped image should not look like the original, SSIM {s}"
    );
    let gray = decode(
        &gw.get(&format!(
            "/cdn-cgi/image/width=300,grayscale,format=png/{FLOWER}"
        ))
        .body,
    );
    assert!(
        gray.pixels().all(|p| p[0] == p[1] && p[1] == p[2]),
        "grayscale output has colour"
    );
}

#[test]
fn output_formats_and_auto_negotiation() {
    let o = origin();
    let gw = Imgate::start(&o.url(), "");
    for (format, magic) in [
        ("jpeg", "jpeg"),
        ("png", "png"),
        ("webp", "webp"),
        ("avif", "avif"),
    ] {
        let r = gw.get(&format!(
            "/cdn-cgi/image/width=120,format={format}/{FLOWER}"
        ));
        assert_eq!(r.status, 200, "{format}");
        assert_eq!(sniff(&r.body), magic);
        assert_eq!(
            r.header("content-type"),
            Some(format!("image/{format}").as_str())
        );
        assert_eq!(r.header("vary"), None, "fixed format must not vary");
    }
    // Original format kept when none is asked for.
    let r = gw.get("/cdn-cgi/image/width=100/storm-lossy.webp");
    assert_eq!(sniff(&r.body), "webp");
    // AVIF originals (libvips/libheif's, 2560x1600): kept as AVIF, or made into a JPEG that
    // looks like the photo the AVIF was made from.
    let r = gw.get("/cdn-cgi/image/width=100/yellowflower.avif");
    assert_eq!((r.status, sniff(&r.body)), (200, "avif"));
    let r = gw.get("/cdn-cgi/image/width=320,format=jpeg/yellowflower.avif");
    assert_eq!((r.status, sniff(&r.body)), (200, "jpeg"));
    assert_eq!(dims(&r), (320, 200));
    let want = reference(&fixtures().join("photos/YellowFlower.jpg"), 320, 200);
    let look = ssim(&decode(&r.body), &want);
    assert!(look > 0.9, "AVIF source to JPEG: SSIM {look:.4}");

    let url = format!("/cdn-cgi/image/width=140,format=auto/{FLOWER}");
    let chrome = "image/avif,image/webp,image/apng,image/svg+xml,image/*,*/*;q=0.8";
    let cases = [
        (chrome, "avif"),
        ("image/webp,*/*", "webp"),
        ("image/*,*/*;q=0.8", "jpeg"),
        ("", "jpeg"),
    ];
    for (accept, want) in cases {
        let r = gw.get_with(&url, &[("Accept", accept)]);
        assert_eq!(r.status, 200);
        assert_eq!(sniff(&r.body), want, "Accept: {accept}");
        assert_eq!(r.header("vary"), Some("Accept"));
    }
    // A different Accept spelling that negotiates the same format is a hit on the same entry.
    let r = gw.get_with(&url, &[("Accept", "image/avif,*/*")]);
    assert_eq!(sniff(&r.body), "avif");
    assert_eq!(r.header("cache-status"), Some("imgate; hit"));
}

#[test]
fn heic_originals_become_what_the_browser_takes() {
    // iPhone-style HEICs made by heif-enc (x265): a photo, and a portrait whose container
    // turns it upright (`irot`) beside an EXIF Orientation 6 that must not turn it again.
    let o = origin();
    let gw = Imgate::start(&o.url(), "");
    let want = reference(&fixtures().join("photos/FreshFlower.jpg"), 320, 241);
    let url = "/cdn-cgi/image/width=320,format=auto/heic/flower.heic";
    for (accept, format) in [
        ("image/avif,image/webp,image/*,*/*;q=0.8", "avif"),
        ("image/webp,*/*", "webp"),
        ("image/*", "jpeg"),
    ] {
        let r = gw.get_with(url, &[("Accept", accept)]);
        assert_eq!(
            (r.status, sniff(&r.body)),
            (200, format),
            "Accept: {accept}"
        );
        assert_eq!(size_of(&r.body), (320, 241), "Accept: {accept}");
        if format != "avif" {
            let look = ssim(&decode(&r.body), &want);
            assert!(look > 0.9, "HEIC to {format}: SSIM {look:.4}");
        }
    }
    // No format asked: never HEIC (no browser but Safari shows it), a JPEG.
    let r = gw.get("/cdn-cgi/image/width=300/heic/portrait-irot.heic");
    assert_eq!((r.status, sniff(&r.body)), (200, "jpeg"));
    assert_eq!(dims(&r), (300, 450));
    let upright = reference(&fixtures().join("orientation/Portrait_1.jpg"), 300, 450);
    let look = ssim(&decode(&r.body), &upright);
    assert!(look > 0.8, "portrait-irot.heic upright: SSIM {look:.4}");
    let r = gw.get("/cdn-cgi/image/format=json/heic/portrait-irot.heic");
    let json: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(json["original"]["format"], "image/heic");
    assert_eq!(
        (json["width"].as_u64(), json["height"].as_u64()),
        (Some(1200), Some(1800))
    );
}

#[test]
fn alpha_kept_in_png_and_webp_flattened_on_jpeg() {
    let o = origin();
    let gw = Imgate::start(&o.url(), "");
    let src = image::open(fixtures().join("pngsuite/basn6a08.png"))
        .unwrap()
        .to_rgba8();
    let (x, y, _) = src
        .enumerate_pixels()
        .find(|(_, _, p)| p[3] == 0)
        .map(|(x, y, p)| (x, y, *p))
        .expect("fixture has transparent pixels");
    for format in ["png", "webp"] {
        let out = decode(
            &gw.get(&format!(
                "/cdn-cgi/image/format={format}/pngsuite/basn6a08.png"
            ))
            .body,
        );
        assert_eq!(out.dimensions(), src.dimensions());
        assert!(
            out.get_pixel(x, y)[3] < 16,
            "{format} lost alpha at {x},{y}"
        );
    }
    let out = decode(
        &gw.get("/cdn-cgi/image/format=jpeg,background=red/pngsuite/basn6a08.png")
            .body,
    );
    let p = out.get_pixel(x, y);
    assert!(
        p[0] > 200 && p[1] < 60 && p[2] < 60,
        "transparent pixel not flattened on red: {p:?}"
    );
    // format=auto for a client without AVIF/WebP gives PNG when the image has alpha.
    let r = gw.get("/cdn-cgi/image/format=auto/pngsuite/basn6a08.png");
    assert_eq!(sniff(&r.body), "png");
}

#[test]
fn orientation_is_applied_end_to_end() {
    let o = origin();
    let gw = Imgate::start(&o.url(), "");
    let upright = decode(
        &gw.get("/cdn-cgi/image/width=200,format=png/orientation/Landscape_1.jpg")
            .body,
    );
    let rotated = decode(
        &gw.get("/cdn-cgi/image/width=200,format=png/orientation/Landscape_6.jpg")
            .body,
    );
    assert_eq!(upright.dimensions(), rotated.dimensions());
    let s = ssim(&upright, &rotated);
    assert!(s > 0.8, "EXIF orientation 6 not applied, SSIM {s}");
}

#[test]
fn cache_hit_conditional_304_and_one_origin_request_for_concurrent_misses() {
    let o = origin();
    let gw = Arc::new(Imgate::start(&o.url(), ""));
    let url = "/cdn-cgi/image/width=200/photos/GreenMeadow.jpg";
    let first = gw.get(url);
    assert_eq!(first.status, 200);
    assert_eq!(first.header("cache-status"), Some("imgate; fwd=miss"));
    let timing = first
        .header("server-timing")
        .expect("Server-Timing on a miss");
    for step in ["fetch", "decode", "resize", "encode"] {
        assert!(timing.contains(step), "{timing}");
    }
    assert!(first
        .header("cache-control")
        .unwrap()
        .contains("max-age=3600"));
    assert!(first.header("last-modified").is_some());
    let second = gw.get(url);
    assert_eq!(second.header("cache-status"), Some("imgate; hit"));
    assert_eq!(second.body, first.body);
    assert_eq!(o.hits("/photos/GreenMeadow.jpg"), 1);
    // Equivalent spelling of the same options shares the entry.
    let alias = gw.get("/cdn-cgi/image/w=200,dpr=1/photos/GreenMeadow.jpg");
    assert_eq!(alias.header("cache-status"), Some("imgate; hit"));

    let etag = first.header("etag").expect("ETag").to_string();
    assert!(etag.starts_with('"'), "strong ETag expected: {etag}");
    let r = gw.get_with(url, &[("If-None-Match", &etag)]);
    assert_eq!(r.status, 304);
    assert!(r.body.is_empty());

    // 20 concurrent requests for one new variant: one origin request (the cache lock). The
    // original goes by another path here, so no download of it is still in use from above.
    let url = "/cdn-cgi/image/width=321,quality=61/slow/0/photos/GreenMeadow.jpg";
    let source = "/slow/0/photos/GreenMeadow.jpg";
    let before = o.hits(source);
    let handles: Vec<_> = (0..20)
        .map(|_| {
            let gw = gw.clone();
            std::thread::spawn(move || gw.get(url))
        })
        .collect();
    let bodies: Vec<Response> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert!(bodies
        .iter()
        .all(|r| r.status == 200 && r.body == bodies[0].body));
    assert_eq!(
        o.hits(source) - before,
        1,
        "concurrent misses must collapse into one fetch"
    );
}

#[test]
fn passthrough_returns_origin_bytes_unchanged() {
    let o = origin();
    let gw = Imgate::start(&o.url(), "");
    let r = gw.get("/photos/FreshFlower.jpg");
    assert_eq!(r.status, 200);
    assert_eq!(r.body, std::fs::read(fixtures().join(FLOWER)).unwrap());
    assert_eq!(r.header("content-type"), Some("image/jpeg"));
    let r = gw.get("/no/such/file.jpg");
    assert_eq!(r.status, 404);
}

#[test]
fn errors_map_to_statuses_and_the_server_keeps_serving() {
    let o = origin();
    let closed = free_port();
    let mut gw = Imgate::start(
        &o.url(),
        "performance_overrides: {origin_timeout_seconds: 1}\nlimits: {max_source_bytes: 150KB, max_source_pixels: 3000000}",
    );
    let cases: Vec<(String, u16, &str)> = vec![
        (format!("/cdn-cgi/image/foo=1/{FLOWER}"), 400, "foo"),
        (format!("/cdn-cgi/image/width=abc/{FLOWER}"), 400, "width"),
        (format!("/cdn-cgi/image/width=0/{FLOWER}"), 400, "width"),
        (
            format!("/cdn-cgi/image/quality=101/{FLOWER}"),
            400,
            "quality",
        ),
        (format!("/cdn-cgi/image/fit=stretch/{FLOWER}"), 400, "fit"),
        ("/cdn-cgi/image/width=100/".to_string(), 400, ""),
        (
            "/cdn-cgi/image/width=100/photos/missing.jpg".to_string(),
            404,
            "",
        ),
        (
            "/cdn-cgi/image/width=100/status/403/x.jpg".to_string(),
            403,
            "",
        ),
        (
            "/cdn-cgi/image/width=100/status/500/x.jpg".to_string(),
            502,
            "",
        ),
        (
            "/cdn-cgi/image/width=100/photos/GreenMeadow.jpg".to_string(),
            413,
            "",
        ),
        (
            "/cdn-cgi/image/width=100/chunked/photos/GreenMeadow.jpg".to_string(),
            413,
            "",
        ),
        ("/cdn-cgi/image/width=100/notes.txt".to_string(), 415, ""),
        (
            "/cdn-cgi/image/width=100/truncated.jpg".to_string(),
            422,
            "",
        ),
        // Not the site's origin: a foreign http:// source, refused before any connection
        // (tests/it/hostile_origin.rs has the address checks).
        (
            format!("/cdn-cgi/image/width=100/http://127.0.0.1:{closed}/x.jpg"),
            403,
            "not allowed",
        ),
        (
            format!(
                "/cdn-cgi/image/width=100/http://{}/slow/3000/{FLOWER}",
                o.addr
            ),
            504,
            "",
        ),
        (
            format!("/cdn-cgi/image/width=100/https://evil.example/{FLOWER}"),
            403,
            "",
        ),
    ];
    for (url, status, names) in &cases {
        let r = gw.get(url);
        let body = String::from_utf8_lossy(&r.body);
        assert_eq!(r.status, *status, "{url}: {body}");
        assert!(
            body.contains(names),
            "{url}: message should name '{names}': {body}"
        );
        assert!(
            !body.contains("/work/") && !body.contains("src/"),
            "{url}: internals leaked: {body}"
        );
    }
    // Every deliberately corrupt PngSuite file gets a clean 4xx.
    for entry in std::fs::read_dir(fixtures().join("pngsuite")).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        if name.starts_with('x') && name.ends_with(".png") {
            let r = gw.get(&format!("/cdn-cgi/image/width=16/pngsuite/{name}"));
            assert!((400..500).contains(&r.status), "{name}: {}", r.status);
        }
    }
    assert!(gw.alive(), "imgate crashed on bad input");
    let r = gw.get(&format!("/cdn-cgi/image/width=100/{FLOWER}"));
    assert_eq!(r.status, 200);
    assert_eq!(dims(&r), (100, 75));
}

#[test]
fn admin_endpoints_and_metrics() {
    let o = origin();
    let gw = Imgate::start(&o.url(), "");
    assert_eq!(
        gw.get(&format!("/cdn-cgi/image/width=50/{FLOWER}")).status,
        200
    );
    assert_eq!(get(&gw.admin, "/livez", &[]).unwrap().status, 200);
    assert_eq!(get(&gw.admin, "/readyz", &[]).unwrap().status, 200);
    let m = get(&gw.admin, "/metrics", &[]).unwrap();
    assert_eq!(m.status, 200);
    let text = String::from_utf8(m.body).unwrap();
    assert!(
        text.contains("imgate_requests_total{cache=\"miss\",route=\"image\",status=\"200\"} 1"),
        "{text}"
    );
    assert!(text.contains("imgate_request_duration_seconds_bucket"));
    assert!(text.contains("imgate_transform_step_duration_seconds_count{step=\"decode\"} 1"));
    promtool_accepts(&text);
}

/// The exposition must pass Prometheus' own linter (`promtool check metrics`: naming rules,
/// base units, `_total` counters, HELP and TYPE lines). `./dev test` installs promtool.
fn promtool_accepts(text: &str) {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool not found: install Debian's `prometheus` package (./dev test does)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn stale_while_revalidate_and_stale_if_error_are_honoured() {
    let o = origin();
    let gw = Imgate::start(&o.url(), "");
    let swr = "/cc/max-age=1,stale-while-revalidate=600/photos/GreenMeadow.jpg";
    let sie = "/cc/max-age=1,stale-if-error=600/photos/FreshFlower.jpg";
    assert_eq!(gw.get(swr).header("cache-status"), Some("imgate; fwd=miss"));
    assert_eq!(gw.get(sie).header("cache-status"), Some("imgate; fwd=miss"));
    std::thread::sleep(std::time::Duration::from_millis(2100));
    // Stale but within stale-while-revalidate: answered from cache at once, refreshed behind.
    let r = gw.get(swr);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("cache-status"), Some("imgate; hit; fwd=stale"));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while o.hits(swr) < 2 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert_eq!(
        o.hits(swr),
        2,
        "background revalidation did not reach the origin"
    );
    // Origin down: stale-if-error serves the stored copy instead of an error.
    o.stop();
    let r = gw.get(sie);
    assert_eq!(r.status, 200, "stale-if-error not honoured");
    assert_eq!(r.body, std::fs::read(fixtures().join(FLOWER)).unwrap());
}

#[test]
fn head_requests_get_headers_only() {
    let o = origin();
    let gw = Imgate::start(&o.url(), "");
    let r = request(
        &gw.addr,
        "HEAD",
        &format!("/cdn-cgi/image/width=64,format=png/{FLOWER}"),
        &[],
    )
    .unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("image/png"));
    assert!(r.body.is_empty());
    let r = gw.get(&format!("/cdn-cgi/image/width=64,format=png/{FLOWER}"));
    assert_eq!(r.status, 200);
    assert_eq!(sniff(&r.body), "png");
}

#[test]
fn transform_role_runs_the_service_alone() {
    let o = origin();
    let gw = Imgate::start_with_args(&o.url(), "", &["--role", "transform"]);
    // No edge in front: the service negotiates from Accept itself and nothing is cached.
    let r = gw.get_with(
        &format!("/cdn-cgi/image/width=90,format=auto/{FLOWER}"),
        &[("Accept", "image/webp,*/*")],
    );
    assert_eq!(r.status, 200);
    assert_eq!(sniff(&r.body), "webp");
    assert_eq!(r.header("vary"), Some("Accept"));
    assert_eq!(r.header("cache-status"), None);
    assert_eq!(dims(&r), (90, 68));
    let r = gw.get(&format!("/cdn-cgi/image/width=90,format=auto/{FLOWER}"));
    assert_eq!(sniff(&r.body), "jpeg");
    // Two `Accept` lines are one list: WebP is accepted by the second.
    let r = gw.get_with(
        &format!("/cdn-cgi/image/width=91,format=auto/{FLOWER}"),
        &[("Accept", "image/jpeg"), ("Accept", "image/webp")],
    );
    assert_eq!(sniff(&r.body), "webp");
    assert_eq!(gw.get("/cdn-cgi/image/nope=1/x.jpg").status, 400);
}

#[test]
fn readyz_turns_503_on_sigterm_and_the_process_exits() {
    let o = origin();
    let pingora = "pingora:\n  threads: 1\n  grace_period_seconds: 2\n  graceful_shutdown_timeout_seconds: 1\n";
    let mut gw = Imgate::start_custom(&o.url(), pingora, "", &[]);
    assert_eq!(get(&gw.admin, "/readyz", &[]).unwrap().status, 200);
    gw.terminate();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
    let mut seen = 0;
    while std::time::Instant::now() < deadline {
        if let Ok(r) = get(&gw.admin, "/readyz", &[]) {
            seen = r.status;
            if seen == 503 {
                break;
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert_eq!(seen, 503, "/readyz must answer 503 while draining");
    assert_eq!(get(&gw.admin, "/livez", &[]).unwrap().status, 200);
    let status = gw
        .wait_exit(std::time::Duration::from_secs(10))
        .expect("imgate exits after the grace period");
    assert!(status.success(), "{status:?}");
}

#[test]
fn animation_and_metadata_survive_the_gateway() {
    let o = origin();
    let gw = Imgate::start(&o.url(), "");
    let r = gw.get_with(
        "/cdn-cgi/image/width=100,format=auto/animated.gif",
        &[("Accept", "image/avif,image/webp,*/*")],
    );
    assert_eq!(r.status, 200);
    assert_eq!(sniff(&r.body), "webp");
    let frames = r.body.windows(4).filter(|w| w == b"ANMF").count();
    assert_eq!(
        frames, 3,
        "animated GIF should become a 3-frame animated WebP"
    );
    let r = gw.get("/cdn-cgi/image/width=100,anim=false,format=webp/animated.gif");
    assert_eq!(
        r.body.windows(4).filter(|w| w == b"ANMF").count(),
        0,
        "anim=false gives a still"
    );

    let has_exif = |b: &[u8]| b.windows(6).any(|w| w == b"Exif\0\0");
    let keep =
        gw.get("/cdn-cgi/image/width=120,format=jpeg,metadata=keep/orientation/Landscape_6.jpg");
    assert!(has_exif(&keep.body), "metadata=keep must carry EXIF");
    let none = gw.get("/cdn-cgi/image/width=120,format=jpeg/orientation/Landscape_6.jpg");
    assert!(!has_exif(&none.body), "metadata is stripped by default");
    assert_eq!(
        decode(&keep.body).dimensions(),
        decode(&none.body).dimensions()
    );
}

#[test]
fn missing_originals_are_cached_briefly_and_unsafe_methods_invalidate() {
    let o = origin();
    let gw = Imgate::start(&o.url(), "");
    // Negative caching: a 404, on the image route and on passthrough, is asked for once.
    for path in [
        "/cdn-cgi/image/width=100/photos/missing.jpg",
        "/photos/missing.jpg",
    ] {
        let first = gw.get(path);
        assert_eq!(first.status, 404, "{path}");
        let second = gw.get(path);
        assert_eq!(second.status, 404, "{path}");
        assert!(
            second.header("cache-status").unwrap().contains("hit"),
            "{path}: {:?}",
            second.header("cache-status")
        );
    }
    assert_eq!(
        o.hits("/photos/missing.jpg"),
        2,
        "one fetch per route, then hits"
    );

    // RFC 9111 §4.4: a successful POST to a stored URL makes the next GET go to the origin.
    let page = "/photos/LadyBird.jpg";
    assert_eq!(gw.get(page).status, 200);
    assert!(gw.get(page).header("cache-status").unwrap().contains("hit"));
    assert_eq!(o.hits(page), 1);
    let posted = request(&gw.addr, "POST", page, &[("content-length", "0")]).unwrap();
    assert_eq!(posted.status, 200);
    assert_eq!(o.hits(page), 2, "the POST itself goes to the origin");
    let after = gw.get(page);
    assert!(after.header("cache-status").unwrap().contains("miss"));
    assert_eq!(o.hits(page), 3);
}

#[test]
fn concurrent_variants_of_one_original_share_one_download() {
    // 12 different widths of one photo at once: one origin request, not 12, so a burst of
    // thumbnails of a large original holds it in memory once.
    let o = origin();
    let gw = Arc::new(Imgate::start(&o.url(), ""));
    // The origin gives the photo 1 s of freshness, which bounds how long a finished download
    // may serve later variants (at most 5 s, and only while some job still holds it).
    let path = "/slow/300/cc/max-age=1/photos/GreenMeadow.jpg";
    let threads: Vec<_> = (0..12)
        .map(|i| {
            let gw = gw.clone();
            std::thread::spawn(move || {
                let w = 100 + i * 10;
                let r = gw.get(&format!("/cdn-cgi/image/width={w},format=jpeg{path}"));
                assert_eq!(r.status, 200);
                assert_eq!(dims(&r).0, w);
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(o.hits(path), 1);
    // And the burst decodes the photo once per shrink-on-load factor, not once per width:
    // 100-160 px come from the 1/8 decode (160 px), 170-210 px from the 2/8 one.
    let decodes = |result| {
        metric(
            &gw.admin,
            &format!("imgate_shared_decode_lookups_total{{result=\"{result}\"}}"),
        )
    };
    let (misses, hits) = (decodes("miss"), decodes("hit"));
    // Every job but at most one asks the shared decodes: on a loaded machine the first job can
    // start on the pool before the others waiting on the same download have counted themselves
    // as its askers, and then decodes alone (`Fetched::askers`). Whatever the timing, every job that did not get a shared decode
    // made one, and there are at most 4 of them for 12 widths.
    assert!(
        misses + hits >= 11.0,
        "{misses} + {hits} lookups for 12 jobs"
    );
    let decoded = 12.0 - hits;
    assert!(decoded <= 4.0, "{decoded} decodes for 12 widths");
    // Once that freshness is over, the next miss fetches afresh.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    assert_eq!(
        gw.get(&format!("/cdn-cgi/image/width=99{path}")).status,
        200
    );
    assert_eq!(o.hits(path), 2);
}

#[test]
fn each_origin_host_keeps_its_own_connection_pool() {
    // With room for one idle connection per host, traffic to origin B must not evict origin
    // A's idle connection (one shared pool of one would): every fetch after the first reuses
    // its host's kept-alive connection.
    let (a, b) = (origin(), origin());
    let sites = format!(
        "performance_overrides: {{pool_size: 1}}\nsites:\n  - hosts: [a.test]\n    origin: {}\n  \
         - hosts: [b.test]\n    origin: {}\n",
        a.url(),
        b.url()
    );
    let gw = Imgate::start_sites(PINGORA, &sites, &[], &[]);
    for width in [100, 101, 102] {
        // A source of its own per width, so each one is a download (not a reuse of the last).
        let source = format!("/photos/GreenMeadow.jpg?v={width}");
        for (host, o) in [("a.test", &a), ("b.test", &b)] {
            let r = gw.get_with(
                &format!("/cdn-cgi/image/width={width},format=jpeg{source}"),
                &[("host", host)],
            );
            assert_eq!(r.status, 200, "{host} width {width}");
            assert_eq!(dims(&r).0, width);
            assert_eq!(o.hits(&source), 1);
        }
    }
    assert_eq!((a.connections(), b.connections()), (1, 1));
}

#[test]
fn transparent_huge_pages_are_off_in_every_preset() {
    // A huge page stays resident until all of its 2 MiB is free, which kept a third of a
    // burst's memory after it (BENCHMARKS.md): the process turns them off, whatever the
    // preset, and the kernel reports it.
    let o = origin();
    let thp = |gw: &Imgate| {
        let status = std::fs::read_to_string(format!("/proc/{}/status", gw.pid())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("THP_enabled:"))
            .map(|v| v.trim().to_string())
            .expect("kernel reports THP_enabled")
    };
    let lean = Imgate::start(&o.url(), "performance: memory_efficient");
    let r = lean.get("/cdn-cgi/image/width=120,format=jpeg/photos/GreenMeadow.jpg");
    assert_eq!((r.status, dims(&r).0), (200, 120));
    assert_eq!(thp(&lean), "0");
    let default = Imgate::start(&o.url(), "");
    let r = default.get("/cdn-cgi/image/width=120,format=jpeg/photos/GreenMeadow.jpg");
    assert_eq!((r.status, dims(&r).0), (200, 120));
    assert_eq!(thp(&default), "0");
}

#[test]
fn short_hits_send_what_the_full_hit_path_sends() {
    // Plain GETs and HEADs of a fresh variant in memory are answered before Pingora's cache
    // machinery runs. A request the short way cannot take (here an If-None-Match the entry
    // does not match) goes the full way to the same entry: both must send the same.
    let o = origin();
    let gw = Imgate::start(&o.url(), "");
    let short = || metric(&gw.admin, "imgate_short_hits_total");
    let full_way = [("If-None-Match", "\"not-this-entry\"")];
    let without = |r: &Response, names: &[&str]| {
        let mut h: Vec<(String, String)> = r
            .headers
            .iter()
            .filter(|(k, _)| !names.contains(&k.to_ascii_lowercase().as_str()))
            .map(|(k, v)| (k.to_ascii_lowercase(), v.clone()))
            .collect();
        h.sort();
        h
    };
    let fixed = format!("/cdn-cgi/image/width=150,format=jpeg/{FLOWER}");
    let auto = format!("/cdn-cgi/image/width=150,format=auto/{FLOWER}");
    for (url, accept, magic) in [
        (&fixed, "", "jpeg"),
        (&auto, "image/webp,*/*", "webp"),
        (&auto, "image/avif,image/webp,*/*", "avif"),
        (&auto, "image/png,*/*", "jpeg"),
    ] {
        let headers = [("Accept", accept)];
        let miss = gw.get_with(url, &headers);
        assert_eq!(miss.header("cache-status"), Some("imgate; fwd=miss"));
        let before = short();
        let hit = gw.get_with(url, &headers);
        assert_eq!(short() - before, 1.0, "{url} {accept}: not a short hit");
        assert_eq!(hit.status, 200);
        assert_eq!(sniff(&hit.body), magic, "{url} {accept}");
        assert_eq!(hit.body, miss.body);
        assert_eq!(hit.header("cache-status"), Some("imgate; hit"));
        assert!(hit.header("age").unwrap().parse::<u64>().is_ok());
        assert_eq!(hit.header("server-timing"), None);

        let mut with_accept = headers.to_vec();
        with_accept.extend(full_way);
        let before = short();
        let full = gw.get_with(url, &with_accept);
        assert_eq!(short(), before, "the full way was expected");
        assert_eq!(full.status, 200);
        assert_eq!(full.body, hit.body);
        // Age may tick between the two; everything else is the same.
        assert_eq!(
            without(&full, &["age"]),
            without(&hit, &["age"]),
            "{url} {accept}"
        );

        let head = request(&gw.addr, "HEAD", url, &headers).unwrap();
        assert_eq!(head.status, 200);
        assert!(head.body.is_empty());
        assert_eq!(
            head.header("content-length").unwrap(),
            hit.body.len().to_string()
        );
    }
    // What the short way leaves to the full one still works on the same entry.
    let hit = gw.get(&fixed);
    let etag = hit.header("etag").unwrap().to_string();
    assert_eq!(gw.get_with(&fixed, &[("If-None-Match", &etag)]).status, 304);
    let range = gw.get_with(&fixed, &[("Range", "bytes=0-99")]);
    assert_eq!(range.status, 206);
    assert_eq!(range.body, hit.body[..100]);
    // Purges after short hits: `purge_by_url_source_prefix_tag_and_everything_with_auth`.
}

#[test]
fn format_json_describes_the_variant_and_is_cached_like_one() {
    let o = origin();
    let gw = Imgate::start(&o.url(), "");
    let url = "/cdn-cgi/image/width=300,height=300,fit=cover,format=json/photos/FreshFlower.jpg";
    let first = gw.get(url);
    assert_eq!(
        first.status,
        200,
        "{}",
        String::from_utf8_lossy(&first.body)
    );
    assert_eq!(first.header("content-type"), Some("application/json"));
    assert_eq!(first.header("cache-status"), Some("imgate; fwd=miss"));
    let v: serde_json::Value = serde_json::from_slice(&first.body).expect("JSON");
    assert_eq!(v["width"], 300);
    assert_eq!(v["height"], 300);
    assert_eq!(v["original"]["format"], "image/jpeg");
    assert_eq!(v["original"]["width"], 1600);
    assert_eq!(v["original"]["height"], 1203);
    let size = std::fs::metadata(fixtures().join(FLOWER)).unwrap().len();
    assert_eq!(v["original"]["file_size"], size);
    let second = gw.get(url);
    assert_eq!(second.header("cache-status"), Some("imgate; hit"));
    assert_eq!(second.body, first.body);
    assert_eq!(o.hits("/photos/FreshFlower.jpg"), 1);
    // The image of the same options is a different entry, and has the size described.
    let image = gw.get("/cdn-cgi/image/width=300,height=300,fit=cover/photos/FreshFlower.jpg");
    assert_eq!(image.header("cache-status"), Some("imgate; fwd=miss"));
    assert_eq!(dims(&image), (300, 300));
    // What the image request refuses, the description refuses the same way.
    let r = gw.get("/cdn-cgi/image/trim=1000;0;700;0,format=json/photos/FreshFlower.jpg");
    assert_eq!(r.status, 400, "{}", String::from_utf8_lossy(&r.body));
    let r = gw.get("/cdn-cgi/image/format=json/notes.txt");
    assert_eq!(r.status, 415);
}

#[test]
fn onerror_redirect_sends_failed_transforms_to_the_original() {
    let o = origin();
    let gw = Imgate::start(&o.url(), "");
    // Without it, the errors as they are.
    assert_eq!(gw.get("/cdn-cgi/image/width=100/truncated.jpg").status, 422);
    for (source, why) in [
        ("/truncated.jpg", "corrupt"),
        ("/notes.txt", "not an image"),
    ] {
        let url = format!("/cdn-cgi/image/width=100,onerror=redirect{source}");
        let r = gw.get(&url);
        assert_eq!(r.status, 302, "{why}: {}", String::from_utf8_lossy(&r.body));
        assert_eq!(r.header("location"), Some(source), "{why}");
        // The original is there, through the passthrough, unchanged.
        let original = gw.get(source);
        assert_eq!(original.status, 200);
        let want = std::fs::read(fixtures().join(&source[1..])).unwrap();
        assert_eq!(original.body, want, "{why}");
    }
    // A working transform is not redirected, and a missing original stays a 404.
    let ok = gw.get("/cdn-cgi/image/width=100,onerror=redirect/photos/FreshFlower.jpg");
    assert_eq!(ok.status, 200);
    assert_eq!(dims(&ok), (100, 75));
    let missing = gw.get("/cdn-cgi/image/width=100,onerror=redirect/nothing-here.jpg");
    assert_eq!(missing.status, 404);
    // A source the site refuses (an absolute URL it does not allow) is never redirected to.
    let r = gw.get("/cdn-cgi/image/width=100,onerror=redirect/https://elsewhere.test/a.jpg");
    assert_eq!(r.status, 403, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.header("location"), None);
}

#[test]
fn svg_originals_are_drawn_and_served_as_is_only_under_a_policy() {
    let o = origin();
    let gw = Imgate::start(&o.url(), "");
    let r = gw.get("/cdn-cgi/image/width=200/logo.svg");
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.header("content-type"), Some("image/png"));
    let img = decode(&r.body);
    assert_eq!(img.dimensions(), (200, 100));
    let red = img.get_pixel(50, 50).0;
    assert!(red[0] > 200 && red[1] < 60 && red[3] == 255, "{red:?}");
    assert_eq!(
        img.get_pixel(124, 3).0[3],
        0,
        "transparent where nothing is drawn"
    );
    let r = gw.get("/cdn-cgi/image/width=120,format=webp/logo.svg");
    assert_eq!(r.status, 200);
    assert_eq!(decode(&r.body).dimensions(), (120, 60));
    // The document itself passes through unchanged, with a policy that stops its script.
    let r = gw.get("/logo.svg");
    assert_eq!(r.status, 200);
    assert_eq!(r.body, std::fs::read(fixtures().join("logo.svg")).unwrap());
    assert_eq!(r.header("content-type"), Some("image/svg+xml"));
    let csp = r.header("content-security-policy").expect("a CSP on SVG");
    assert!(
        csp.contains("default-src 'none'") && csp.contains("sandbox"),
        "{csp}"
    );
    assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
    // Other passthrough files do not get it.
    let r = gw.get("/photos/FreshFlower.jpg");
    assert_eq!(r.header("content-security-policy"), None);
}

#[test]
fn slow_connection_quality_follows_the_hints_and_keeps_one_entry_per_decision() {
    let o = origin();
    let gw = Imgate::start(&o.url(), "");
    let url = "/cdn-cgi/image/width=300,quality=90,scq=20,format=jpeg/photos/FreshFlower.jpg";
    let fast = gw.get(url);
    assert_eq!(fast.status, 200);
    assert_eq!(fast.header("cache-status"), Some("imgate; fwd=miss"));
    let vary = fast.header("vary").expect("Vary").to_string();
    for hint in ["Save-Data", "ECT", "RTT", "Downlink"] {
        assert!(vary.contains(hint), "{vary}");
    }
    assert!(fast.header("accept-ch").is_some_and(|v| v.contains("ECT")));
    // A fast client's hints, and a forged internal marker, share the fast entry.
    for hints in [
        vec![("ECT", "4g"), ("RTT", "50"), ("Downlink", "10")],
        vec![("Save-Data", "off")],
        vec![("x-imgate-connection", "slow")],
    ] {
        let r = gw.get_with(url, &hints);
        assert_eq!(r.header("cache-status"), Some("imgate; hit"), "{hints:?}");
        assert_eq!(r.body, fast.body, "{hints:?}");
    }
    // The first slow client makes the slow entry; the others share it.
    let slow = gw.get_with(url, &[("Save-Data", "on")]);
    assert_eq!(slow.header("cache-status"), Some("imgate; fwd=miss"));
    for hints in [[("ECT", "3g")], [("RTT", "400")], [("Downlink", "0.8")]] {
        let r = gw.get_with(url, &hints);
        assert_eq!(r.header("cache-status"), Some("imgate; hit"), "{hints:?}");
        assert_eq!(r.body, slow.body, "{hints:?}");
    }
    assert_eq!(o.hits("/photos/FreshFlower.jpg"), 2);
    // The slow one is the same picture at the lower quality: same size, far fewer bytes.
    let (a, b) = (decode(&fast.body), decode(&slow.body));
    assert_eq!(a.dimensions(), b.dimensions());
    assert!(
        slow.body.len() * 2 < fast.body.len(),
        "{} vs {}",
        slow.body.len(),
        fast.body.len()
    );
    let look = ssim(&a, &b);
    assert!(look > 0.8, "SSIM {look}");
    // Without scq the hints change nothing.
    let plain = "/cdn-cgi/image/width=300,quality=90,format=jpeg/photos/FreshFlower.jpg";
    let first = gw.get(plain);
    let saver = gw.get_with(plain, &[("Save-Data", "on")]);
    assert_eq!(saver.header("cache-status"), Some("imgate; hit"));
    assert_eq!(saver.body, first.body);
    assert_eq!(first.header("accept-ch"), None);
    // Pages ask browsers for the hints (unless their origin asks for its own).
    let page = gw.get("/html/images.html");
    assert_eq!(page.status, 200);
    let asked = page.header("accept-ch").expect("Accept-CH on a page");
    for hint in ["Save-Data", "ECT", "RTT", "Downlink"] {
        assert!(asked.contains(hint), "{asked}");
    }
}
