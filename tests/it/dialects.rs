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

/// A gateway serving unsigned thumbor URLs under `/thumbor` for every host.
fn thumbor_gateway(origin: &TestOrigin) -> Imgate {
    let body = format!(
        "access_log: {{enabled: false}}\nsites:\n\
         \x20 - hosts: ['*']\n    origin: {o}\n    thumbor: {{prefix: /thumbor}}\n",
        o = origin.url()
    );
    Imgate::start_sites(PINGORA, &body, &[], &[])
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
    let r = gw.get("/imgproxy/insecure/wm:0.5/plain/photos/LadyBird.jpg");
    assert_eq!(r.status, 400);
    assert!(String::from_utf8_lossy(&r.body).contains("watermark"));
    assert!(
        metric(
            &gw.admin,
            "imgate_dialect_requests_total{dialect=\"imgproxy\"}"
        ) >= 11.0
    );
}

#[test]
fn crops_and_auto_resizing_from_imgproxy_node_and_libthumbor() {
    let origin = TestOrigin::start(fixtures());
    let gw = gateway(&origin);
    let flower = fixtures().join("photos/FreshFlower.jpg"); // 1600x1203
    let portrait = fixtures().join("orientation/Portrait_1.jpg"); // 1200x1800
                                                                  // (generateImageUrl request, size, the region of the picture turned `turns` times)
    let cases = [
        (
            json!({"url": "/photos/FreshFlower.jpg", "options": {"width": 200,
                   "crop": {"width": 800, "height": 600, "gravity": {"type": "nowe"}}}}),
            (200, 150),
            (&flower, 0, (0, 0, 800, 600)),
        ),
        (
            json!({"url": "/photos/FreshFlower.jpg", "options": {"width": 100,
                   "crop": {"width": 0.5, "height": 0.5, "gravity": {"type": "fp", "x": 0.9, "y": 0.1}}}}),
            (100, 75),
            (&flower, 0, (800, 0, 800, 602)),
        ),
        (
            // imgproxy reads the region in the turned picture (1203x1600).
            json!({"url": "/photos/FreshFlower.jpg", "options": {"rotate": 90,
                   "crop": {"width": 300, "height": 400, "gravity": {"type": "soea"}}}}),
            (300, 400),
            (&flower, 1, (903, 1200, 300, 400)),
        ),
        (
            json!({"url": "/photos/FreshFlower.jpg",
                   "options": {"resizing_type": "auto", "width": 300, "height": 200}}),
            (300, 200),
            (&flower, 0, (0, 68, 1600, 1067)),
        ),
        (
            // padding (CSS-style) frames the result in the background colour.
            json!({"url": "/photos/FreshFlower.jpg", "options": {"width": 200,
                   "padding": {"top": 10, "right": 20}, "background": {"r": 255, "g": 0, "b": 0}}}),
            (240, 170),
            (&flower, 0, (0, 0, 1600, 1203)),
        ),
        (
            // A portrait source in a landscape box: auto fits instead of filling.
            json!({"url": "/orientation/Portrait_1.jpg",
                   "options": {"resizing_type": "auto", "width": 300, "height": 200}}),
            (133, 200),
            (&portrait, 0, (0, 0, 1200, 1800)),
        ),
    ];
    let requests: Vec<Value> = cases
        .iter()
        .map(|(r, _, _)| {
            let mut r = r.clone();
            r["endpoint"] = json!("http://signed.test/imgproxy");
            r["key"] = json!(KEY);
            r["salt"] = json!(SALT);
            r
        })
        .collect();
    let urls = client("imgproxy-urls.mjs", &json!(requests));
    for ((_, size, (file, turns, region)), url) in cases.iter().zip(urls.as_array().unwrap()) {
        let url = url.as_str().unwrap();
        let r = gw.get_with(&path_of(url), &[("Host", "signed.test")]);
        assert_eq!(r.status, 200, "{url}: {}", String::from_utf8_lossy(&r.body));
        let mut img = decode(&r.body);
        assert_eq!(img.dimensions(), *size, "{url}");
        if url.contains("/pd:") {
            // The frame is red; inside it, the picture at 200x150.
            let corner = img.get_pixel(1, 1).0;
            assert!(
                corner[0] > 240 && corner[1] < 15 && corner[2] < 15,
                "{corner:?}"
            );
            img = image::imageops::crop_imm(&img, 20, 10, 200, 150).to_image();
        }
        let (w, h) = img.dimensions();
        let want = region_reference(file, *turns, *region, w, h);
        let look = ssim(&img, &want);
        assert!(look > 0.95, "{url}: SSIM {look}");
    }

    // thumbor's manual crop, then a mirrored resize (negative width).
    let gw = thumbor_gateway(&origin);
    let urls = thumbor_urls(
        "x",
        json!([
            {"unsafe": true, "crop": [[100, 50], [900, 650]], "width": 200, "height": 0,
             "image_url": "photos/FreshFlower.jpg"},
            {"unsafe": true, "crop": [[100, 50], [900, 650]], "width": -200, "height": 0,
             "image_url": "photos/FreshFlower.jpg"},
        ]),
    );
    assert!(urls[0].contains("/100x50:900x650/"), "{}", urls[0]);
    let want = region_reference(&flower, 0, (100, 50, 800, 600), 200, 150);
    let plain = decode(&gw.get(&urls[0]).body);
    assert_eq!(plain.dimensions(), (200, 150));
    assert!(ssim(&plain, &want) > 0.9);
    let mirrored = decode(&gw.get(&urls[1]).body);
    assert_eq!(mirrored.dimensions(), (200, 150));
    let look = ssim(&mirrored, &image::imageops::flip_horizontal(&want));
    assert!(look > 0.9, "mirrored after the crop: SSIM {look}");
    assert!(ssim(&mirrored, &want) < look, "the mirror is visible");
    // thumbor's trim (libthumbor's `trim=("top-left", 40)`) cuts the white frame away.
    let urls = thumbor_urls(
        "x",
        json!([{"unsafe": true, "trim": ["top-left", 40], "image_url": "framed.jpg"}]),
    );
    assert!(urls[0].contains("/trim:top-left:40/"), "{}", urls[0]);
    let r = gw.get(&urls[0]);
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let trimmed = decode(&r.body);
    let (w, h) = trimmed.dimensions();
    assert!(
        (400..=403).contains(&w) && (301..=304).contains(&h),
        "{w}x{h}"
    );
    let want = region_reference(&flower, 0, (0, 0, 1600, 1203), w, h);
    let look = ssim(&trimmed, &want);
    assert!(look > 0.9, "the picture without its frame: SSIM {look}");
    // thumbor's brightness() and contrast() filters change the pixels as imgate's options do.
    let urls = thumbor_urls(
        "x",
        json!([
            {"unsafe": true, "width": 200, "height": 0, "image_url": "photos/FreshFlower.jpg"},
            {"unsafe": true, "width": 200, "height": 0, "image_url": "photos/FreshFlower.jpg",
             "filters": ["brightness(60)"]},
            {"unsafe": true, "width": 200, "height": 0, "image_url": "photos/FreshFlower.jpg",
             "filters": ["contrast(-60)"]},
        ]),
    );
    let luma = |img: &image::RgbaImage| -> Vec<f64> {
        img.pixels()
            .map(|p| 0.2126 * f64::from(p[0]) + 0.7152 * f64::from(p[1]) + 0.0722 * f64::from(p[2]))
            .collect()
    };
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let spread = |v: &[f64]| {
        let m = mean(v);
        v.iter().map(|x| (x - m).abs()).sum::<f64>() / v.len() as f64
    };
    let [plain, bright, flat] = [0, 1, 2].map(|i| luma(&decode(&gw.get(&urls[i]).body)));
    assert!(mean(&bright) > mean(&plain) + 15.0, "brightness(60)");
    assert!(spread(&flat) < spread(&plain) * 0.6, "contrast(-60)");
    let r = gw.get("/cdn-cgi/image/width=200,brightness=1.6/photos/FreshFlower.jpg");
    assert_eq!(r.status, 200);
    let same = ssim(&decode(&r.body), &decode(&gw.get(&urls[1]).body));
    assert!(
        same > 0.99,
        "the same transform in both dialects: SSIM {same}"
    );
    // A crop that leaves nothing of this picture is a 400 naming it.
    let r = gw.get("/thumbor/unsafe/2000x0:2100x100/photos/FreshFlower.jpg");
    assert_eq!(r.status, 400, "{}", String::from_utf8_lossy(&r.body));
    assert!(String::from_utf8_lossy(&r.body).contains("crop region"));
}

/// Width and height of what differs from `background` in `img` (rows and columns with a few
/// clearly different pixels, so JPEG ringing does not count).
fn extent_apart_from(img: &image::RgbaImage, background: [u8; 3]) -> (u32, u32) {
    let differs = |x: u32, y: u32| {
        let p = img.get_pixel(x, y).0;
        (0..3)
            .map(|k| (i32::from(p[k]) - i32::from(background[k])).abs())
            .sum::<i32>()
            > 60
    };
    let (w, h) = img.dimensions();
    let cols: Vec<u32> = (0..w)
        .filter(|&x| (0..h).filter(|&y| differs(x, y)).count() >= 3)
        .collect();
    let rows: Vec<u32> = (0..h)
        .filter(|&y| (0..w).filter(|&x| differs(x, y)).count() >= 3)
        .collect();
    match (cols.first(), cols.last(), rows.first(), rows.last()) {
        (Some(l), Some(r), Some(t), Some(b)) => (r - l + 1, b - t + 1),
        _ => (0, 0),
    }
}

#[test]
fn smart_crops_find_the_subject_in_every_dialect() {
    // offcentre.jpg: a 240x180 photo at (900, 40) of a 1200x500 blue (#1e5ac8) canvas. A 200x200
    // cover crop takes a 500x500 window; at the centre (350-850) it misses the photo.
    let origin = TestOrigin::start(fixtures());
    let gw = gateway(&origin);
    let blue = [0x1e, 0x5a, 0xc8];
    let whole = (96.0, 72.0); // the photo at 200/500
    let holds_the_photo = |img: &image::RgbaImage, what: &str| {
        assert_eq!(img.dimensions(), (200, 200), "{what}");
        let (w, h) = extent_apart_from(img, blue);
        assert!(
            (f64::from(w) - whole.0).abs() <= 3.0 && (f64::from(h) - whole.1).abs() <= 3.0,
            "{what}: {w}x{h} of the photo in the crop, {whole:?} when whole"
        );
    };
    let host = [("Host", "signed.test")];
    let centred = decode(
        &gw.get("/cdn-cgi/image/width=200,height=200,fit=cover/offcentre.jpg")
            .body,
    );
    assert_eq!(
        extent_apart_from(&centred, blue),
        (0, 0),
        "the centre misses the photo"
    );
    let r = gw.get("/cdn-cgi/image/width=200,height=200,fit=cover,gravity=auto/offcentre.jpg");
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let cloudflare = decode(&r.body);
    holds_the_photo(&cloudflare, "gravity=auto");

    // imgproxy's smart gravity, signed by imgproxy-node.
    let request = json!([{"url": "/offcentre.jpg", "endpoint": "http://signed.test/imgproxy",
        "key": KEY, "salt": SALT,
        "options": {"resizing_type": "fill", "width": 200, "height": 200, "gravity": {"type": "sm"}}}]);
    let urls = client("imgproxy-urls.mjs", &request);
    let url = urls[0].as_str().unwrap();
    assert!(url.contains("g:sm"), "{url}");
    let r = gw.get_with(&path_of(url), &host);
    assert_eq!(r.status, 200, "{url}: {}", String::from_utf8_lossy(&r.body));
    let imgproxy = decode(&r.body);
    holds_the_photo(&imgproxy, url);
    let same = ssim(&imgproxy, &cloudflare);
    assert!(same > 0.99, "imgproxy g:sm and gravity=auto: SSIM {same}");

    // thumbor's smart crop, from libthumbor.
    let gw = thumbor_gateway(&origin);
    let urls = thumbor_urls(
        "x",
        json!([{"unsafe": true, "width": 200, "height": 200, "smart": true,
                "image_url": "offcentre.jpg"}]),
    );
    assert!(urls[0].contains("/smart/"), "{}", urls[0]);
    let r = gw.get(&urls[0]);
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let thumbor = decode(&r.body);
    holds_the_photo(&thumbor, &urls[0]);
    let same = ssim(&thumbor, &cloudflare);
    assert!(same > 0.99, "thumbor smart and gravity=auto: SSIM {same}");
}

/// The `{src, srcSet}` next/image's `getImageProps` writes for each of `images` under the
/// `images` config `config`; every URL in them, paths only.
fn nextjs_urls(config: Value, images: Value) -> Vec<String> {
    let out = client(
        "nextjs-urls.mjs",
        &json!({"config": config, "images": images}),
    );
    let mut urls = Vec::new();
    for img in out.as_array().unwrap() {
        urls.push(img["src"].as_str().unwrap().to_string());
        if let Some(set) = img["srcSet"].as_str() {
            for candidate in set.split(", ") {
                urls.push(candidate.split(' ').next().unwrap().to_string());
            }
        }
    }
    urls.into_iter().map(|u| path_of(&u)).collect()
}

/// `(w, q)` of a `/_next/image` URL.
fn width_and_quality(url: &str) -> (u32, u32) {
    let query = url.split_once('?').unwrap().1;
    let get = |k: &str| {
        query
            .split('&')
            .find_map(|p| p.strip_prefix(&format!("{k}=")))
            .unwrap()
            .parse()
            .unwrap()
    };
    (get("w"), get("q"))
}

#[test]
fn nextjs_get_image_props_urls_with_default_and_custom_settings() {
    let origin = TestOrigin::start(fixtures());
    let body = format!(
        "access_log: {{enabled: false}}\nsites:\n\
         \x20 - hosts: ['custom.test']\n    origin: {o}\n\
         \x20   nextjs: {{enabled: true, device_sizes: [300, 600], image_sizes: [50], \
         qualities: [60, 90], formats: [image/avif, image/webp]}}\n\
         \x20 - hosts: ['*']\n    origin: {o}\n    nextjs: {{enabled: true}}\n",
        o = origin.url()
    );
    let gw = Imgate::start_sites(PINGORA, &body, &[], &[]);
    const FLOWER: (u32, u32) = (1600, 1203);
    let height =
        |w: u32| ((FLOWER.1 as f64) * (w.min(FLOWER.0) as f64) / FLOWER.0 as f64).round() as u32;
    let browser = [(
        "Accept",
        "image/avif,image/webp,image/apng,image/*,*/*;q=0.8",
    )];

    // Next.js 16's defaults: WebP only, quality 75, device and image sizes.
    let own_origin = format!("{}/photos/FreshFlower.jpg", origin.url());
    let urls = nextjs_urls(
        json!({"remotePatterns": [{"protocol": "http", "hostname": "127.0.0.1"}]}),
        json!([
            {"src": "/photos/FreshFlower.jpg", "width": 300, "height": 226},
            {"src": own_origin, "fill": true, "sizes": "100vw"},
        ]),
    );
    assert!(urls.len() >= 10, "{urls:?}");
    for url in &urls {
        let (w, q) = width_and_quality(url);
        assert_eq!(q, 75);
        let r = gw.get_with(url, &browser);
        assert_eq!(r.status, 200, "{url}: {}", String::from_utf8_lossy(&r.body));
        assert_eq!(
            sniff(&r.body),
            "webp",
            "{url}: AVIF is not in the default formats"
        );
        assert_eq!(
            r.header("vary").map(|v| v.contains("Accept")),
            Some(true),
            "{url}"
        );
        let img = decode(&r.body);
        assert_eq!(
            (img.width(), img.height()),
            (w.min(FLOWER.0), height(w)),
            "{url}"
        );
    }
    // A client without WebP gets the original's format.
    let r = gw.get_with(&urls[0], &[("Accept", "image/png,*/*")]);
    assert_eq!(sniff(&r.body), "jpeg");
    // The same transform as imgate's own URL, same negotiated format: one entry.
    let (w, _) = width_and_quality(&urls[0]);
    let r = gw.get_with(
        &format!("/cdn-cgi/image/width={w},quality=75,format=auto/photos/FreshFlower.jpg"),
        &[("Accept", "image/webp")],
    );
    assert_eq!(r.header("cache-status"), Some("imgate; hit"));

    // Custom sizes, qualities and AVIF.
    let host = [
        ("Host", "custom.test"),
        ("Accept", "image/avif,image/webp,*/*"),
    ];
    let urls = nextjs_urls(
        json!({"deviceSizes": [300, 600], "imageSizes": [50], "qualities": [60, 90],
               "formats": ["image/avif", "image/webp"]}),
        json!([{"src": "/photos/FreshFlower.jpg", "width": 50, "height": 38, "quality": 90}]),
    );
    for url in &urls {
        let (w, q) = width_and_quality(url);
        assert_eq!(q, 90);
        let r = gw.get_with(url, &host);
        assert_eq!(r.status, 200, "{url}");
        assert_eq!(sniff(&r.body), "avif");
        assert_eq!(size_of(&r.body), (w, height(w)));
    }

    // Next.js' validation: each refusal is a 400 and fetches nothing.
    let before = origin.hits("/photos/LadyBird.jpg");
    for url in [
        "/_next/image?url=%2Fphotos%2FLadyBird.jpg&w=100&q=75",
        "/_next/image?url=%2Fphotos%2FLadyBird.jpg&w=640&q=80",
        "/_next/image?url=%2Fphotos%2FLadyBird.jpg&w=640",
        "/_next/image?url=%2Fphotos%2FLadyBird.jpg&q=75",
        "/_next/image?w=640&q=75",
        "/_next/image?url=%2Fphotos%2FLadyBird.jpg&url=%2Fa.jpg&w=640&q=75",
        "/_next/image?url=%2F%2Fevil.example%2Fa.jpg&w=640&q=75",
        "/_next/image?url=%2F_next%2Fimage%3Furl%3D%2Fa.jpg&w=640&q=75",
        "/_next/image?url=ftp%3A%2F%2Fa%2Fb.jpg&w=640&q=75",
        "/_next/image?url=%2Fphotos%2FLadyBird.jpg&w=-1&q=75",
    ] {
        let r = gw.get(url);
        assert_eq!(r.status, 400, "{url}: {}", String::from_utf8_lossy(&r.body));
    }
    assert_eq!(origin.hits("/photos/LadyBird.jpg"), before);
    // Widths over the original are not enlarged; other hosts are refused.
    let r = gw.get_with(
        "/_next/image?url=%2Fphotos%2FLadyBird.jpg&w=3840&q=75",
        &browser,
    );
    assert_eq!(decode(&r.body).width(), 2560);
    let r = gw.get("/_next/image?url=https%3A%2F%2Fother.example%2Fa.jpg&w=640&q=75");
    assert_eq!(r.status, 403);
    assert!(
        metric(
            &gw.admin,
            "imgate_dialect_requests_total{dialect=\"nextjs\"}"
        ) >= 12.0
    );
}

/// The URLs libthumbor's `CryptoURL(key).generate(**request)` writes, one per request.
fn thumbor_urls(key: &str, requests: Value) -> Vec<String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients");
    let python = dir.join(".venv/bin/python");
    assert!(
        python.exists(),
        "libthumbor missing: python3 -m venv tests/clients/.venv && \
         tests/clients/.venv/bin/pip install -r tests/clients/requirements.txt (./dev test does)"
    );
    let out = Command::new(python)
        .arg(dir.join("thumbor-urls.py"))
        .arg(json!({"key": key, "requests": requests}).to_string())
        .output()
        .expect("python runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let urls: Vec<String> = serde_json::from_slice(&out.stdout).expect("JSON");
    // `unsafe/...` comes without its leading slash.
    urls.into_iter()
        .map(|u| format!("/thumbor/{}", u.trim_start_matches('/')))
        .collect()
}

#[test]
fn libthumbor_crypto_urls_signed_and_unsafe() {
    let origin = TestOrigin::start(fixtures());
    let body = format!(
        "access_log: {{enabled: false}}\nsites:\n\
         \x20 - hosts: ['signed.test']\n    origin: {o}\n\
         \x20   thumbor: {{prefix: /thumbor, security_key: 'my-security-key'}}\n\
         \x20 - hosts: ['*']\n    origin: {o}\n    thumbor: {{prefix: /thumbor}}\n",
        o = origin.url()
    );
    let gw = Imgate::start_sites(PINGORA, &body, &[], &[]);
    let flower = format!("{}/photos/FreshFlower.jpg", origin.url());
    // (CryptoURL.generate arguments, expected format and size); FreshFlower is 1600x1203.
    let cases = [
        (
            json!({"width": 300, "height": 200, "smart": true, "image_url": "photos/FreshFlower.jpg"}),
            "jpeg",
            (300, 200),
        ),
        (
            json!({"width": 300, "height": 300, "fit_in": true,
                   "filters": ["format(webp)", "quality(80)"], "image_url": flower}),
            "webp",
            (300, 226),
        ),
        (
            json!({"width": 200, "height": 200, "fit_in": true,
                   "filters": ["fill(ff0000)", "format(png)"], "image_url": "photos/FreshFlower.jpg"}),
            "png",
            (200, 200),
        ),
        (
            json!({"width": -120, "height": 0, "image_url": "photos/GreenMeadow.jpg",
                   "filters": ["grayscale()", "rotate(90)"]}),
            "jpeg",
            (96, 120),
        ),
    ];
    for (host, key, unsafe_) in [
        ("signed.test", "my-security-key", false),
        ("open.test", "ignored", true),
    ] {
        let requests: Vec<Value> = cases
            .iter()
            .map(|(r, _, _)| {
                let mut r = r.clone();
                if unsafe_ {
                    r["unsafe"] = json!(true);
                }
                r
            })
            .collect();
        let urls = thumbor_urls(key, json!(requests));
        for ((_, format, size), url) in cases.iter().zip(&urls) {
            assert_eq!(url.contains("/unsafe/"), unsafe_, "{url}");
            let r = gw.get_with(url, &[("Host", host)]);
            assert_eq!(r.status, 200, "{url}: {}", String::from_utf8_lossy(&r.body));
            assert_eq!(sniff(&r.body), *format, "{url}");
            assert_eq!(size_of(&r.body), *size, "{url}");
        }
    }
    // The padded one is red above and below the picture (1600x1203 in 200x200: 200x150).
    let mut padded = cases[2].0.clone();
    padded["unsafe"] = json!(true);
    let urls = thumbor_urls("x", json!([padded]));
    let img = decode(&gw.get_with(&urls[0], &[("Host", "open.test")]).body);
    assert_eq!(
        img.get_pixel(100, 2).0,
        [255, 0, 0, 255],
        "fill colour above the picture"
    );
    // unsafe on the signing site, a wrong key, and a tampered URL are refused.
    let unsafe_url = thumbor_urls(
        "x",
        json!([{"width": 50, "height": 50, "image_url": "photos/LadyBird.jpg", "unsafe": true}]),
    );
    assert_eq!(
        gw.get_with(&unsafe_url[0], &[("Host", "signed.test")])
            .status,
        403
    );
    let wrong = thumbor_urls(
        "other-key",
        json!([{"width": 50, "height": 50, "image_url": "photos/LadyBird.jpg"}]),
    );
    assert_eq!(
        gw.get_with(&wrong[0], &[("Host", "signed.test")]).status,
        403
    );
    let good = thumbor_urls(
        "my-security-key",
        json!([{"width": 50, "height": 50, "image_url": "photos/LadyBird.jpg"}]),
    );
    assert_eq!(
        gw.get_with(&good[0], &[("Host", "signed.test")]).status,
        200
    );
    assert_eq!(
        gw.get_with(
            &good[0].replace("50x50", "51x50"),
            &[("Host", "signed.test")]
        )
        .status,
        403
    );
    // A filter imgate does not implement is named.
    let r = gw.get("/thumbor/unsafe/filters:watermark(a.png,0,0,0)/photos/LadyBird.jpg");
    assert_eq!(r.status, 400);
    assert!(String::from_utf8_lossy(&r.body).contains("watermark"));
    assert!(
        metric(
            &gw.admin,
            "imgate_dialect_requests_total{dialect=\"thumbor\"}"
        ) >= 10.0
    );
}

#[test]
fn purging_a_source_or_a_url_in_any_dialect_reaches_every_dialect() {
    const TOKEN: &str = "purge-token-0123456789";
    let origin = TestOrigin::start(fixtures());
    let body = format!(
        "access_log: {{enabled: false}}\nadmin: {{token: {TOKEN}}}\nsites:\n\
         \x20 - hosts: ['*']\n    origin: {}\n    imgproxy: {{}}\n    thumbor: {{}}\n\
         \x20   nextjs: {{enabled: true}}\n",
        origin.url()
    );
    let gw = Imgate::start_sites(PINGORA, &body, &[], &[]);
    let urls = [
        "/cdn-cgi/image/width=64/photos/LadyBird.jpg",
        "/imgproxy/insecure/w:96/plain/photos/LadyBird.jpg",
        "/thumbor/unsafe/fit-in/128x0/photos/LadyBird.jpg",
        "/_next/image?url=%2Fphotos%2FLadyBird.jpg&w=256&q=75",
    ];
    let webp = [("Accept", "image/webp")];
    let status = |url: &str| {
        let r = gw.get_with(url, &webp);
        assert_eq!(r.status, 200, "{url}");
        r.header("cache-status").unwrap_or("").to_string()
    };
    let purge = |body: Value| {
        let auth = format!("Bearer {TOKEN}");
        let r = send_body(
            &gw.admin,
            "POST",
            "/purge",
            &[("Authorization", &auth)],
            body.to_string().as_bytes(),
        )
        .unwrap();
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    };
    for url in urls {
        status(url);
        assert_eq!(status(url), "imgate; hit", "{url}");
    }
    purge(json!({"sources": ["/photos/LadyBird.jpg"]}));
    for url in urls {
        assert_eq!(
            status(url),
            "imgate; fwd=miss",
            "{url} after the source purge"
        );
    }
    // A URL in another dialect names the same entry as imgate's own URL for it.
    purge(json!({"urls": ["/imgproxy/insecure/w:64/plain/photos/LadyBird.jpg"]}));
    assert_eq!(
        status(urls[0]),
        "imgate; fwd=miss",
        "purged through its imgproxy URL"
    );
    assert_eq!(status(urls[1]), "imgate; hit", "the other variants stay");
}

/// A gateway with two watermarks, the same picture from a file and from the origin, the
/// origin one imgproxy's `wm` and thumbor's `watermark()` overlay.
fn watermark_gateway(origin: &TestOrigin) -> Imgate {
    let file = fixtures().join("watermark.png");
    let body = format!(
        "access_log: {{enabled: false}}\nsites:\n\
         \x20 - hosts: ['*']\n    origin: {o}\n\
         \x20   imgproxy: {{prefix: /imgproxy, watermark: from-origin}}\n\
         \x20   thumbor: {{prefix: /thumbor}}\n\
         \x20   watermarks:\n\
         \x20     from-file: {{file: {f}, position: bottom-right, offset: 10}}\n\
         \x20     from-origin: {{source: /watermark.png, position: bottom-right, offset: 10}}\n\
         \x20     tiles: {{file: {f}, position: tile, offset: 16, opacity: 0.5, scale: 0.1}}\n",
        o = origin.url(),
        f = file.display()
    );
    Imgate::start_sites(PINGORA, &body, &[], &[])
}

/// Where `watermark.png` (64x32 magenta, a 16x16 hole at (24, 8)) lands on a 400x301
/// picture at the bottom-right corner, 10 pixels in: (326, 259).
const MARK_AT: (u32, u32) = (326, 259);

/// Checks `img` is `plain` with the mark laid at `MARK_AT`: magenta on the mark, the photo
/// through its hole and everywhere else.
fn assert_marked(img: &image::RgbaImage, plain: &image::RgbaImage, what: &str) {
    assert_eq!(img.dimensions(), (400, 301), "{what}");
    let (mx, my) = MARK_AT;
    let on_mark = |x: u32, y: u32| {
        (mx..mx + 64).contains(&x)
            && (my..my + 32).contains(&y)
            && !((mx + 24..mx + 40).contains(&x) && (my + 8..my + 24).contains(&y))
    };
    let (mut marked, mut photo_diff, mut photo_n) = (0u32, 0u64, 0u64);
    for (x, y, p) in img.enumerate_pixels() {
        if on_mark(x, y) {
            let q = p.0;
            let magenta = q[0] > 240 && q[1] < 16 && q[2] > 240;
            // The mark's own edge pixels may be resampled by the encoder; its body may not.
            if magenta {
                marked += 1;
            }
        } else {
            let q = plain.get_pixel(x, y).0;
            photo_diff += (0..3)
                .map(|c| u64::from(p.0[c].abs_diff(q[c])))
                .sum::<u64>();
            photo_n += 3;
        }
    }
    let on = 64 * 32 - 16 * 16;
    assert!(
        marked >= on * 98 / 100,
        "{what}: {marked} of {on} mark pixels magenta"
    );
    let mean = photo_diff as f64 / photo_n as f64;
    assert!(
        mean < 1.0,
        "{what}: the photo around the mark moved by {mean:.2} on average"
    );
    // The hole shows the photo, not magenta.
    let hole = img.get_pixel(mx + 32, my + 16).0;
    let want = plain.get_pixel(mx + 32, my + 16).0;
    assert!(
        (0..3).all(|c| hole[c].abs_diff(want[c]) <= 2),
        "{what}: hole {hole:?}, photo {want:?}"
    );
}

#[test]
fn watermarks_from_a_file_and_the_origin_in_every_dialect() {
    let origin = TestOrigin::start(fixtures());
    let gw = watermark_gateway(&origin);
    let get = |path: &str| {
        let r = gw.get(path);
        assert_eq!(
            r.status,
            200,
            "{path}: {}",
            String::from_utf8_lossy(&r.body)
        );
        decode(&r.body)
    };
    let plain = get("/cdn-cgi/image/width=400,format=png/photos/FreshFlower.jpg");
    for name in ["from-file", "from-origin"] {
        let path =
            format!("/cdn-cgi/image/width=400,format=png,watermark={name}/photos/FreshFlower.jpg");
        assert_marked(&get(&path), &plain, &path);
    }

    // imgproxy-node's watermark option, on the site's imgproxy watermark.
    let request = json!([{"url": "/photos/FreshFlower.jpg", "endpoint": "http://x/imgproxy",
        "options": {"width": 400, "format": "png",
                    "watermark": {"opacity": 1, "position": "soea", "x_offset": 10, "y_offset": 10}}}]);
    let urls = client("imgproxy-urls.mjs", &request);
    let url = urls[0].as_str().unwrap();
    assert!(url.contains("wm:1:soea:10:10"), "{url}");
    assert_marked(&get(&path_of(url)), &plain, url);

    // libthumbor's filters: the overlay named by its origin path, 10 pixels from the right
    // and bottom (negative), opaque (alpha 0).
    let urls = thumbor_urls(
        "x",
        json!([{"unsafe": true, "width": 400, "height": 0, "image_url": "photos/FreshFlower.jpg",
                "filters": ["format(png)", "watermark(/watermark.png,-10,-10,0)"]}]),
    );
    assert!(urls[0].contains("watermark("), "{}", urls[0]);
    assert_marked(&get(&urls[0]), &plain, &urls[0]);

    // Half opacity from the URL: halfway between the photo and magenta on the mark.
    let half = get("/cdn-cgi/image/width=400,format=png,watermark=from-file,watermark.opacity=0.5/photos/FreshFlower.jpg");
    let (x, y) = (MARK_AT.0 + 4, MARK_AT.1 + 4);
    let (got, under) = (half.get_pixel(x, y).0, plain.get_pixel(x, y).0);
    for (c, full) in [(0, 255u8), (1, 0), (2, 255)] {
        let want = (u16::from(under[c]) + u16::from(full)) / 2;
        assert!(
            u16::from(got[c]).abs_diff(want) <= 2,
            "channel {c}: {} over {} at half opacity, want {want}",
            got[c],
            under[c]
        );
    }

    // Tiles: 10% of 400 = 40x20 marks every 56x36 pixels, at half opacity; the photo between.
    let tiled = get("/cdn-cgi/image/width=400,format=png,watermark=tiles/photos/FreshFlower.jpg");
    for (x, y) in [(2, 2), (58, 2), (2, 38), (338, 290)] {
        let (got, under) = (tiled.get_pixel(x, y).0, plain.get_pixel(x, y).0);
        let want = u16::from(under[1]) / 2; // green: the mark has none
        assert!(
            u16::from(got[1]).abs_diff(want) <= 3 && got[0] >= under[0],
            "tile at ({x}, {y}): {got:?} over {under:?}"
        );
    }
    let gap = tiled.get_pixel(48, 2).0;
    assert_eq!(&gap[..3], &plain.get_pixel(48, 2).0[..3], "between tiles");

    // Refusals: an unknown name, an adjustment without one, an overlay thumbor names that is
    // not configured; none is a crash.
    for (path, want) in [
        ("/cdn-cgi/image/width=400,watermark=nope/photos/FreshFlower.jpg", "no watermark named"),
        ("/cdn-cgi/image/width=400,watermark.opacity=0.5/photos/FreshFlower.jpg", "watermark"),
        (
            "/thumbor/unsafe/400x0/filters:watermark(http://evil.test/x.png,0,0,0)/photos/FreshFlower.jpg",
            "site's watermarks",
        ),
    ] {
        let r = gw.get(path);
        let body = String::from_utf8_lossy(&r.body);
        assert_eq!(r.status, 400, "{path}: {body}");
        assert!(body.contains(want), "{path}: {body}");
    }
}

#[test]
fn an_origin_watermark_that_is_missing_huge_or_broken_is_a_clean_502() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        fixtures().join("photos/FreshFlower.jpg"),
        dir.path().join("photo.jpg"),
    )
    .unwrap();
    // A PNG whose header claims 5000x5000 (25 MP, over the 16 MP a watermark may be) and
    // nothing after it; and one that is not an image at all.
    let mut huge = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec();
    huge.extend_from_slice(&5000u32.to_be_bytes());
    huge.extend_from_slice(&5000u32.to_be_bytes());
    huge.extend_from_slice(&[8, 6, 0, 0, 0, 0, 0, 0, 0]);
    std::fs::write(dir.path().join("huge.png"), huge).unwrap();
    std::fs::write(dir.path().join("text.png"), "not a picture").unwrap();
    let origin = TestOrigin::start(dir.path());
    let body = format!(
        "access_log: {{enabled: false}}\nsites:\n\
         \x20 - hosts: ['*']\n    origin: {o}\n    watermarks:\n\
         \x20     missing: {{source: /nothing-here.png}}\n\
         \x20     huge: {{source: /huge.png}}\n\
         \x20     text: {{source: /text.png}}\n",
        o = origin.url()
    );
    let gw = Imgate::start_sites(PINGORA, &body, &[], &[]);
    for name in ["missing", "huge", "text"] {
        let r = gw.get(&format!(
            "/cdn-cgi/image/width=100,watermark={name}/photo.jpg"
        ));
        assert_eq!(
            r.status,
            502,
            "{name}: {}",
            String::from_utf8_lossy(&r.body)
        );
        assert!(
            String::from_utf8_lossy(&r.body).contains("watermark"),
            "{name}"
        );
    }
    // The edge is still up, and the same picture without a watermark is fine.
    assert_eq!(gw.get("/cdn-cgi/image/width=100/photo.jpg").status, 200);
}
