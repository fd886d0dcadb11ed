//! Other products' URLs through a running imgate, built by the clients their users run
//! (installed from the registries into `tests/clients/` by `./dev test`): each URL is fetched
//! and its status, format and pixel dimensions checked against what that product documents.

use crate::support::*;
use serde_json::{json, Value};
use std::path::Path;
use std::process::Command;

// Hex, as imgproxy's IMGPROXY_KEY / IMGPROXY_SALT.
const KEY: &str = "943b421c9eb07c830af81030552c86009268de4e532ba2ee2eab8247c6da0881";
const SALT: &str = "520f986b998545b4785e0defbc4f3c1203f22de2374a3d53cb7a7fe9fea309c5";

/// Runs `tests/clients/<script>` with `arg`; its stdout as JSON.
fn client(script: &str, arg: &Value) -> Value {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients");
    assert!(
        dir.join("node_modules").exists(),
        "client libraries missing: (cd tests/clients && npm ci) (./dev test does)"
    );
    let out = Command::new("node")
        .arg(dir.join(script))
        .arg(arg.to_string())
        .output()
        .expect("node runs");
    assert!(
        out.status.success(),
        "{script}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("the client script prints JSON")
}

/// The path and query of an absolute URL.
fn path_of(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    rest.find('/').map_or("/".into(), |i| rest[i..].to_string())
}

fn gateway(origin: &TestOrigin) -> Imgate {
    let body = format!(
        "access_log: {{enabled: false}}\nsites:\n\
         \x20 - hosts: ['signed.test']\n    origin: {o}\n    imgproxy: {{prefix: /imgproxy}}\n\
         \x20   signing: {{keys: [{{key: {KEY}, salt: {SALT}}}], required: true}}\n\
         \x20 - hosts: ['*']\n    origin: {o}\n    imgproxy: {{prefix: /imgproxy}}\n",
        o = origin.url()
    );
    Imgate::start_sites(PINGORA, &body, &[], &[])
}

#[test]
fn imgproxy_node_urls_signed_and_unsigned() {
    let origin = TestOrigin::start(fixtures());
    let gw = gateway(&origin);
    let flower = format!("{}/photos/FreshFlower.jpg", origin.url());
    // (request as generateImageUrl takes it, expected format and size)
    let cases = [
        (
            json!({"url": flower, "options": {"resizing_type": "fit", "width": 300, "height": 200}}),
            "jpeg",
            (266, 200),
        ),
        (
            json!({"url": {"value": "/photos/LadyBird.jpg", "displayAs": "plain"},
                   "options": {"resize": {"resizing_type": "fill", "width": 100, "height": 100},
                               "format": "webp"}}),
            "webp",
            (100, 100),
        ),
        (
            json!({"url": "local:///photos/GreenMeadow.jpg",
                   "options": {"size": {"width": 50}, "format": "png"}}),
            "png",
            (50, 40),
        ),
        (
            json!({"url": "/photos/LadyBird.jpg",
                   "options": {"resizing_type": "force", "width": 120, "height": 40}}),
            "jpeg",
            (120, 40),
        ),
        (
            json!({"url": flower, "options": {"resizing_type": "fit", "width": 400, "height": 400,
                   "extend": {"extend": true}, "background": {"r": 0, "g": 0, "b": 255}}}),
            "jpeg",
            (400, 400),
        ),
    ];
    for (host, endpoint, signed) in [
        ("unsigned.test", "http://unsigned.test/imgproxy", false),
        ("signed.test", "http://signed.test/imgproxy", true),
    ] {
        let requests: Vec<Value> = cases
            .iter()
            .map(|(r, _, _)| {
                let mut r = r.clone();
                r["endpoint"] = json!(endpoint);
                if signed {
                    r["key"] = json!(KEY);
                    r["salt"] = json!(SALT);
                }
                r
            })
            .collect();
        let urls = client("imgproxy-urls.mjs", &json!(requests));
        for ((_, format, size), url) in cases.iter().zip(urls.as_array().unwrap()) {
            let url = url.as_str().unwrap();
            assert_eq!(url.contains("/insecure/"), !signed, "{url}");
            let r = gw.get_with(&path_of(url), &[("Host", host)]);
            assert_eq!(r.status, 200, "{url}: {}", String::from_utf8_lossy(&r.body));
            assert_eq!(sniff(&r.body), *format, "{url}");
            let img = decode(&r.body);
            assert_eq!((img.width(), img.height()), *size, "{url}");
        }
    }
    // Unsigned URLs on the signing site, and a tampered signature, are refused.
    let unsigned = client(
        "imgproxy-urls.mjs",
        &json!([{"endpoint": "http://x/imgproxy", "url": "/photos/LadyBird.jpg",
                 "options": {"width": 64}}]),
    );
    let path = path_of(unsigned[0].as_str().unwrap());
    assert_eq!(gw.get_with(&path, &[("Host", "signed.test")]).status, 403);
    assert_eq!(gw.get_with(&path, &[("Host", "unsigned.test")]).status, 200);
    let signed = client(
        "imgproxy-urls.mjs",
        &json!([{"endpoint": "http://x/imgproxy", "url": "/photos/LadyBird.jpg",
                 "options": {"width": 64}, "key": KEY, "salt": SALT}]),
    );
    let path = path_of(signed[0].as_str().unwrap());
    assert_eq!(gw.get_with(&path, &[("Host", "signed.test")]).status, 200);
    assert_eq!(
        gw.get_with(&path.replace("w:64", "w:65"), &[("Host", "signed.test")])
            .status,
        403
    );
    // The same transform asked as imgproxy and as imgate's own URL is one cache entry.
    let r = gw.get("/cdn-cgi/image/width=64/photos/LadyBird.jpg");
    assert_eq!(
        r.header("cache-status"),
        Some("imgate; hit"),
        "one entry for both dialects"
    );
    // An option imgate does not implement is named in a 400.
    let r = gw.get("/imgproxy/insecure/c:100:100/plain/photos/LadyBird.jpg");
    assert_eq!(r.status, 400);
    assert!(String::from_utf8_lossy(&r.body).contains("crop"));
    assert!(
        metric(
            &gw.admin,
            "imgate_dialect_requests_total{dialect=\"imgproxy\"}"
        ) >= 11.0
    );
}
