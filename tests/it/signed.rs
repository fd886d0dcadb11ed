//! Signed URLs, presets and allowed values end to end, with the real binary and origin: the
//! README's openssl recipe signs URLs the edge accepts, rotated keys, refusals that fetch
//! nothing, and a rewritten page whose every URL is signed and allowed.

use crate::support::*;
use std::process::Command;

const FLOWER: &str = "/photos/FreshFlower.jpg";
// Keys and salts in hex, as operators write them.
const NEW_KEY: &str = "6e65772d6b65792d666f722d696d67617465";
const NEW_SALT: &str = "6e65772d73616c74";
const OLD_KEY: &str = "6f6c642d6b6579";
const OLD_SALT: &str = "6f6c642d73616c74";
const NEVER_KEY: &str = "6e657665722d6c6973746564";

/// The signature of `path` by the README's shell recipe (openssl and coreutils), so the
/// documented recipe is what is tested.
fn openssl_signature(key: &str, salt: &str, path: &str) -> String {
    let out = Command::new("sh")
        .arg("-c")
        .arg(
            "(printf %s \"$SALT\" | tr a-f A-F | basenc --base16 -d; printf %s \"$URL_PATH\") \
             | openssl dgst -sha256 -mac HMAC -macopt \"hexkey:$KEY\" -binary \
             | basenc --base64url | tr -d '='",
        )
        .env("KEY", key)
        .env("SALT", salt)
        .env("URL_PATH", path)
        .output()
        .expect("sh runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// `path` with its signature added as the last option.
fn signed(key: &str, salt: &str, options: &str, source: &str) -> String {
    let sig = openssl_signature(key, salt, &format!("/cdn-cgi/image/{options}{source}"));
    format!("/cdn-cgi/image/{options},sig={sig}{source}")
}

fn width_of(r: &Response) -> u32 {
    decode(&r.body).width()
}

#[test]
fn signed_urls_from_the_openssl_recipe_rotated_keys_and_refusals_that_fetch_nothing() {
    let origin = TestOrigin::start(fixtures());
    let keys = format!("{NEW_KEY},{OLD_KEY}");
    let salts = format!("{NEW_SALT},{OLD_SALT}");
    let env = [
        ("IMGATE_SIGNING_KEY", keys.as_str()),
        ("IMGATE_SIGNING_SALT", salts.as_str()),
    ];
    let gw = Imgate::start_full(
        &origin.url(),
        PINGORA,
        "access_log: {enabled: false}\n",
        &[],
        &env,
    );
    // The new key and the old one both sign for the same entry: the signature is not keyed.
    let r = gw.get(&signed(NEW_KEY, NEW_SALT, "width=64", FLOWER));
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(width_of(&r), 64);
    let r = gw.get(&signed(OLD_KEY, OLD_SALT, "width=64", FLOWER));
    assert_eq!(r.status, 200);
    assert_eq!(r.header("cache-status"), Some("imgate; hit"));
    // The signature may stand anywhere among the options.
    let sig = openssl_signature(
        NEW_KEY,
        NEW_SALT,
        &format!("/cdn-cgi/image/width=32,format=png{FLOWER}"),
    );
    let r = gw.get(&format!(
        "/cdn-cgi/image/sig={sig},width=32,format=png{FLOWER}"
    ));
    assert_eq!((r.status, sniff(&r.body)), (200, "png"));
    let downloads = origin.hits(FLOWER);

    // Refused: unsigned, a key never listed, a signed URL with its width changed, another
    // source under a valid signature, a signature with the salt left out.
    let other_width = signed(NEW_KEY, NEW_SALT, "width=64", FLOWER).replace("width=64", "width=65");
    let other_source =
        signed(NEW_KEY, NEW_SALT, "width=64", FLOWER).replace(FLOWER, "/photos/LadyBird.jpg");
    let refused = [
        (
            format!("/cdn-cgi/image/width=64{FLOWER}"),
            "missing_signature",
        ),
        (
            signed(NEVER_KEY, NEW_SALT, "width=64", FLOWER),
            "bad_signature",
        ),
        (other_width, "bad_signature"),
        (other_source, "bad_signature"),
        (signed(NEW_KEY, "", "width=64", FLOWER), "bad_signature"),
    ];
    let before = |reason: &str| {
        metric(
            &gw.admin,
            &format!("imgate_url_refusals_total{{reason=\"{reason}\"}}"),
        )
    };
    let (missing0, bad0) = (before("missing_signature"), before("bad_signature"));
    for (url, _) in &refused {
        let r = gw.get(url);
        assert_eq!(r.status, 403, "{url}");
        assert!(r.body.len() < 100, "a short public message");
    }
    assert_eq!(before("missing_signature") - missing0, 1.0);
    assert_eq!(before("bad_signature") - bad0, 4.0);
    assert_eq!(
        origin.hits("/photos/LadyBird.jpg"),
        0,
        "nothing fetched for a refusal"
    );
    assert_eq!(
        origin.hits(FLOWER),
        downloads,
        "nothing fetched for a refusal"
    );
    assert!(
        metric(
            &gw.admin,
            "imgate_dialect_requests_total{dialect=\"cloudflare\"}"
        ) >= 3.0
    );
    // Passthrough paths need no signature.
    assert_eq!(gw.get(FLOWER).status, 200);
    drop(gw);

    // The old key removed from the list: its URLs are refused, the new key's still work.
    let gw = Imgate::start_full(
        &origin.url(),
        PINGORA,
        "access_log: {enabled: false}\n",
        &[],
        &[
            ("IMGATE_SIGNING_KEY", NEW_KEY),
            ("IMGATE_SIGNING_SALT", NEW_SALT),
        ],
    );
    assert_eq!(
        gw.get(&signed(OLD_KEY, OLD_SALT, "width=64", FLOWER))
            .status,
        403
    );
    assert_eq!(
        gw.get(&signed(NEW_KEY, NEW_SALT, "width=64", FLOWER))
            .status,
        200
    );
}

#[test]
fn presets_presets_only_and_allowed_values() {
    let origin = TestOrigin::start(fixtures());
    let body = format!(
        "access_log: {{enabled: false}}\nsites:\n\
         - hosts: ['presets-only.test']\n    origin: {o}\n\
         \x20   presets: {{thumb: 'width=48,height=48,fit=cover', png: 'format=png'}}\n\
         \x20   presets_only: true\n\
         - hosts: ['*']\n    origin: {o}\n\
         \x20   presets: {{thumb: 'width=48,height=48,fit=cover'}}\n\
         \x20   allowed_widths: [48, 64, 128]\n    allowed_qualities: [60, 80]\n",
        o = origin.url()
    )
    .replace("\n- ", "\n  - ");
    let gw = Imgate::start_sites(PINGORA, &body, &[], &[]);
    let r = gw.get(&format!("/cdn-cgi/image/preset=thumb{FLOWER}"));
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let img = decode(&r.body);
    assert_eq!((img.width(), img.height()), (48, 48));
    // The same transform written out is the same cache entry.
    let r = gw.get(&format!(
        "/cdn-cgi/image/fit=cover,height=48,width=48{FLOWER}"
    ));
    assert_eq!(r.header("cache-status"), Some("imgate; hit"));
    // Own options override the preset's.
    let r = gw.get(&format!("/cdn-cgi/image/preset=thumb,width=64{FLOWER}"));
    assert_eq!(r.status, 200);
    assert_eq!(
        (decode(&r.body).width(), decode(&r.body).height()),
        (64, 48)
    );
    // Widths and qualities outside the lists.
    for url in [
        format!("/cdn-cgi/image/width=100{FLOWER}"),
        format!("/cdn-cgi/image/width=64,quality=70{FLOWER}"),
        format!("/cdn-cgi/image/preset=nope{FLOWER}"),
    ] {
        let r = gw.get(&url);
        assert_eq!(r.status, 400, "{url}");
    }
    let r = gw.get(&format!("/cdn-cgi/image/width=100{FLOWER}"));
    assert!(String::from_utf8_lossy(&r.body).contains("48, 64, 128"));
    assert_eq!(
        gw.get(&format!("/cdn-cgi/image/width=128,quality=80{FLOWER}"))
            .status,
        200
    );

    // The presets-only site.
    let host = [("Host", "presets-only.test")];
    let r = gw.get_with(
        &format!("/cdn-cgi/image/preset=thumb,preset=png{FLOWER}"),
        &host,
    );
    assert_eq!((r.status, sniff(&r.body)), (200, "png"));
    for url in [
        format!("/cdn-cgi/image/preset=thumb,quality=60{FLOWER}"),
        format!("/cdn-cgi/image/width=48{FLOWER}"),
    ] {
        let r = gw.get_with(&url, &host);
        assert_eq!(r.status, 400, "{url}");
        assert!(String::from_utf8_lossy(&r.body).contains("only presets"));
    }
    assert!(
        metric(
            &gw.admin,
            "imgate_url_refusals_total{reason=\"not_allowed\"}"
        ) >= 4.0
    );
}

/// Every `/cdn-cgi/image/...` URL in `page` (in `src` and `srcset`).
fn image_urls(page: &str) -> Vec<String> {
    let mut urls = Vec::new();
    let mut rest = page;
    while let Some(i) = rest.find("/cdn-cgi/image/") {
        let tail = &rest[i..];
        let end = tail.find(['"', '\'', ' ']).unwrap_or(tail.len());
        urls.push(tail[..end].trim_end_matches(',').replace("&amp;", "&"));
        rest = &tail[end..];
    }
    urls
}

#[test]
fn a_page_rewritten_on_a_signing_site_has_every_url_signed_and_allowed() {
    let origin = TestOrigin::start(fixtures());
    let body = format!(
        "access_log: {{enabled: false}}\nsites:\n  - hosts: ['*']\n    origin: {}\n\
         \x20   signing: {{keys: [{{key: '{NEW_KEY}', salt: '{NEW_SALT}'}}], required: true}}\n\
         \x20   allowed_widths: [200, 500, 1000, 2000]\n\
         \x20   html_rewrite: {{enabled: true}}\n",
        origin.url()
    );
    let gw = Imgate::start_sites(PINGORA, &body, &[], &[]);
    let page = gw.get("/html/gallery.html");
    assert_eq!(page.status, 200);
    let text = String::from_utf8(decode_content(&page)).unwrap();
    let urls = image_urls(&text);
    assert!(urls.len() >= 5, "{urls:?}");
    for url in &urls {
        assert!(url.contains(",sig="), "unsigned: {url}");
        if let Some(w) = url.split(['/', ',']).find_map(|o| o.strip_prefix("width=")) {
            assert!(["200", "500", "1000", "2000"].contains(&w), "{url}");
        }
        let r = gw.get_with(url, &[("Accept", "image/avif,image/webp")]);
        assert_eq!(r.status, 200, "{url}: {}", String::from_utf8_lossy(&r.body));
    }
}

#[test]
fn the_transform_role_facing_clients_checks_signatures_itself() {
    let origin = TestOrigin::start(fixtures());
    let gw = Imgate::start_full(
        &origin.url(),
        PINGORA,
        "access_log: {enabled: false}\n",
        &["--role", "transform"],
        &[
            ("IMGATE_SIGNING_KEY", NEW_KEY),
            ("IMGATE_SIGNING_SALT", NEW_SALT),
        ],
    );
    let r = gw.get(&format!("/cdn-cgi/image/width=64{FLOWER}"));
    assert_eq!(r.status, 403);
    let r = gw.get(&signed(NEW_KEY, NEW_SALT, "width=64", FLOWER));
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(width_of(&r), 64);
    assert_eq!(
        metric(
            &gw.admin,
            "imgate_url_refusals_total{reason=\"missing_signature\"}"
        ),
        1.0
    );
}
