//! HTML rewriting end to end: the real `imgate` binary in front of the real test origin, and a
//! real headless Chromium (driven by `tests/browser/load-page.mjs` over the DevTools protocol)
//! loading `tests/fixtures/html/gallery.html` through it.
//!
//! The browser is required: without `/usr/bin/chromium` or `tests/browser/node_modules` the
//! browser tests fail, saying how to install them (`./dev test` does). `IMGATE_SKIP_BROWSER=1`
//! skips them with a printed reason, for machines that cannot run a browser.

use crate::support::*;
use serde_json::Value;
use std::path::Path;
use std::process::Command;

const PAGE: &str = "/html/gallery.html";

fn rewriting_gateway(origin: &TestOrigin) -> Imgate {
    Imgate::start_full(
        &origin.url(),
        PINGORA,
        "",
        &[],
        &[("IMGATE_HTML_REWRITE", "on")],
    )
}

/// Whether to run the browser; panics when it is missing and skipping was not asked for.
fn browser_ready() -> bool {
    if std::env::var("IMGATE_SKIP_BROWSER").as_deref() == Ok("1") {
        eprintln!("IMGATE_SKIP_BROWSER=1: browser test skipped");
        return false;
    }
    let browser = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
    assert!(
        Path::new("/usr/bin/chromium").exists(),
        "Chromium is missing: apt-get install -y chromium (./dev test does), or set IMGATE_SKIP_BROWSER=1"
    );
    assert!(
        browser.join("node_modules/playwright-core").exists(),
        "browser driver missing: (cd tests/browser && npm ci) (./dev test does), or set IMGATE_SKIP_BROWSER=1"
    );
    true
}

/// What Chromium saw loading `url`: `{images, responses, text}`.
fn load_in_browser(url: &str) -> Value {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser/load-page.mjs");
    let out = Command::new("node")
        .arg(script)
        .arg(url)
        .output()
        .expect("node runs");
    assert!(
        out.status.success(),
        "browser script failed for {url}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("browser script prints JSON")
}

/// Every image loaded, through `/cdn-cgi/image/` as AVIF or WebP (inline `data:` images aside).
fn assert_images_came_through_the_edge(seen: &Value) {
    let images = seen["images"].as_array().unwrap();
    assert!(images.len() >= 5, "{images:?}");
    for img in images {
        let src = img["currentSrc"].as_str().unwrap();
        assert!(
            img["naturalWidth"].as_u64().unwrap() > 0,
            "did not load: {img}"
        );
        if !src.starts_with("data:") {
            assert!(
                src.contains("/cdn-cgi/image/"),
                "not through the edge: {img}"
            );
        }
    }
    let fetched: Vec<&Value> = seen["responses"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| {
            r["resourceType"] == "image" && !r["url"].as_str().unwrap().starts_with("data:")
        })
        .collect();
    assert!(fetched.len() >= 4, "{fetched:?}");
    for r in fetched {
        let url = r["url"].as_str().unwrap();
        let ctype = r["contentType"].as_str().unwrap();
        assert_eq!(r["status"], 200, "{r}");
        assert!(
            url.contains("/cdn-cgi/image/"),
            "fetched around the edge: {url}"
        );
        assert!(
            ctype == "image/avif" || ctype == "image/webp",
            "{url}: got {ctype}"
        );
    }
}

#[test]
fn chromium_loads_every_image_through_the_edge_and_the_text_is_unchanged() {
    if !browser_ready() {
        return;
    }
    let origin = TestOrigin::start(fixtures());
    let gw = rewriting_gateway(&origin);
    let direct = load_in_browser(&format!("{}{PAGE}", origin.url()));
    let via_edge = load_in_browser(&format!("http://{}{PAGE}", gw.addr));
    assert_images_came_through_the_edge(&via_edge);
    assert_eq!(via_edge["text"], direct["text"], "page text changed");
    // Gzip from the origin: decoded, rewritten, and the browser still gets every image.
    let gzipped = load_in_browser(&format!("http://{}{PAGE}?encoding=gzip", gw.addr));
    assert_images_came_through_the_edge(&gzipped);
    assert_eq!(gzipped["text"], direct["text"], "gzip page text changed");
}

#[test]
fn compressed_origin_pages_are_stored_decoded_and_compressed_per_client() {
    let origin = TestOrigin::start(fixtures());
    let gw = rewriting_gateway(&origin);
    let expected = std::fs::read(fixtures().join("html/gallery.expected.html")).unwrap();
    for coding in ["gzip", "br"] {
        let url = format!("{PAGE}?encoding={coding}");
        let mut bodies = Vec::new();
        for (accept, want) in [
            ("gzip", Some("gzip")),
            ("br", None),
            ("", None),
            ("br, gzip;q=0.5", Some("gzip")),
            ("gzip;q=0, br", None),
        ] {
            let r = gw.get_with(&url, &[("Accept-Encoding", accept)]);
            assert_eq!(r.status, 200, "{url}");
            assert_eq!(
                r.header("content-encoding"),
                want,
                "{url} Accept-Encoding: {accept}"
            );
            assert_eq!(
                r.header("content-length"),
                None,
                "{url}: length of the origin's bytes"
            );
            assert!(
                r.header("etag").unwrap().starts_with("W/"),
                "{url}: strong ETag"
            );
            let vary = r.header("vary").unwrap_or("").to_ascii_lowercase();
            assert!(vary.contains("accept-encoding"), "{url}: Vary {vary}");
            bodies.push((
                r.header("cache-status").unwrap().to_string(),
                decode_content(&r),
            ));
        }
        // One stored entry (decoded, rewritten) serves every client.
        assert_eq!(bodies[0].0, "imgate; fwd=miss");
        assert!(
            bodies[1..].iter().all(|(s, _)| s == "imgate; hit"),
            "{coding}"
        );
        for (_, body) in &bodies {
            assert!(
                *body == expected,
                "{coding}: {}",
                String::from_utf8_lossy(body)
            );
        }
        assert_eq!(origin.hits(&url), 1);
    }
    // Not HTML: passes through untouched, even on a rewriting site.
    let r = gw.get("/photos/FreshFlower.jpg");
    assert_eq!(
        r.body,
        std::fs::read(fixtures().join("photos/FreshFlower.jpg")).unwrap()
    );
    assert_eq!(r.header("content-encoding"), None);
}

#[test]
fn pages_pass_unchanged_when_rewriting_is_off() {
    let origin = TestOrigin::start(fixtures());
    let gw = Imgate::start(&origin.url(), "");
    let r = gw.get_with(PAGE, &[("Accept-Encoding", "gzip")]);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-encoding"), None);
    assert_eq!(
        r.body,
        std::fs::read(fixtures().join("html/gallery.html")).unwrap()
    );
}

/// Latency the rewrite adds through the real server: a generated 1 MiB page, every request a
/// miss (`?v=`), rewriting off and on measured alternately in the same run.
#[test]
#[ignore = "timing: cargo test --test it html::rewrite_latency -- --ignored --nocapture"]
fn rewrite_latency_on_a_1mib_page_through_the_server() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("page.html"), sample_page::page(1 << 20, 20)).unwrap();
    let origin = TestOrigin::start(dir.path());
    let off = Imgate::start(&origin.url(), "");
    let on = rewriting_gateway(&origin);
    let (mut t_off, mut t_on) = (Vec::new(), Vec::new());
    for round in 0..40 {
        for (gw, times) in [(&off, &mut t_off), (&on, &mut t_on)] {
            let start = std::time::Instant::now();
            let r = gw.get(&format!("/page.html?v={round}"));
            times.push(start.elapsed().as_secs_f64() * 1e3);
            assert_eq!(r.status, 200);
        }
    }
    let median = |t: &mut Vec<f64>| {
        t.sort_by(f64::total_cmp);
        t[t.len() / 2]
    };
    let (off_ms, on_ms) = (median(&mut t_off), median(&mut t_on));
    println!(
        "1 MiB page, miss: rewrite off {off_ms:.2} ms, on {on_ms:.2} ms, added {:.2} ms (median of 40)",
        on_ms - off_ms
    );
}

#[test]
fn a_passed_through_svg_runs_no_script_in_the_browser() {
    if !browser_ready() {
        return;
    }
    // logo.svg's script renames the document; its <title> is "imgate test logo".
    let origin = TestOrigin::start(fixtures());
    let gw = Imgate::start(&origin.url(), "");
    // Straight from the origin, with no policy, Chromium runs it: the check can tell.
    let direct = load_in_browser(&format!("{}/logo.svg", origin.url()));
    assert_eq!(direct["title"], "scripts must never run", "{direct}");
    // Through imgate, the policy stops it.
    let through = load_in_browser(&format!("http://{}/logo.svg", gw.addr));
    assert_eq!(through["title"], "imgate test logo", "{through}");
    let response = through["responses"][0].clone();
    assert_eq!(response["status"], 200);
    assert_eq!(response["contentType"], "image/svg+xml");
}
