//! Snapshot tests of whole pages (`tests/fixtures/html/<name>.html` rewritten must equal
//! `<name>.expected.html`; `UPDATE_SNAPSHOTS=1` rewrites the snapshots after a deliberate
//! change), chunking invariance, malformed input, charsets and content codings.

use super::*;
use std::cell::RefCell;
use std::io::Write;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Arc;

// The generated page the Criterion bench and the integration tests measure too.
#[path = "../../tests/it/support/sample_page.rs"]
mod sample_page;

/// name, page path, Content-Type of each snapshot page.
const PAGES: &[(&str, &str, &str)] = &[
    ("images", "/blog/post.html", "text/html; charset=utf-8"),
    ("malformed", "/m/index.html", "text/html"),
    ("latin1", "/fr/page.html", "text/html; charset=ISO-8859-1"),
    ("gallery", "/html/gallery.html", "text/html; charset=utf-8"),
];

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("tests/fixtures/html/{name}"))
}

fn options() -> Arc<RewriteOptions> {
    Arc::new(RewriteOptions {
        own_hosts: vec!["www.example.com".into()],
        allowed_source_hosts: vec!["img.example.net".into()],
        ..RewriteOptions::default()
    })
}

/// Rewrite `input` fed in chunks of the given sizes (cycled), through the whole body path.
fn rewrite_in(input: &[u8], path: &str, ctype: &str, sizes: &[usize]) -> Vec<u8> {
    let mut body = HtmlBody::start(options(), path, ctype, None, u64::MAX).expect("HTML");
    let mut out = Vec::new();
    let mut rest = input;
    for size in sizes.iter().cycle() {
        let (chunk, tail) = rest.split_at((*size).clamp(1, rest.len().max(1)).min(rest.len()));
        rest = tail;
        out.extend(body.feed(chunk, rest.is_empty()).unwrap());
        if rest.is_empty() {
            break;
        }
    }
    out
}

fn rewrite_whole(name: &str) -> (Vec<u8>, Vec<u8>) {
    let (_, path, ctype) = PAGES.iter().find(|p| p.0 == name).unwrap();
    let input = std::fs::read(fixture(&format!("{name}.html"))).unwrap();
    let out = rewrite_in(&input, path, ctype, &[input.len()]);
    (input, out)
}

#[test]
fn pages_match_their_snapshots() {
    for (name, _, _) in PAGES {
        let (_, out) = rewrite_whole(name);
        let snapshot = fixture(&format!("{name}.expected.html"));
        if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
            std::fs::write(&snapshot, &out).unwrap();
        }
        let expected = std::fs::read(&snapshot).expect("snapshot exists (UPDATE_SNAPSHOTS=1)");
        assert!(
            out == expected,
            "{name}: output differs from {}:\n{}",
            snapshot.display(),
            String::from_utf8_lossy(&out)
        );
    }
}

#[test]
fn any_chunking_gives_the_one_chunk_output() {
    // xorshift: reproducible "random" chunkings without a dependency.
    let mut seed = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for (name, path, ctype) in PAGES {
        let (input, whole) = rewrite_whole(name);
        assert_eq!(
            rewrite_in(&input, path, ctype, &[1]),
            whole,
            "{name}: 1-byte chunks"
        );
        for round in 0..40 {
            let sizes: Vec<usize> = (0..16).map(|_| 1 + (next() % 97) as usize).collect();
            let out = rewrite_in(&input, path, ctype, &sizes);
            assert_eq!(out, whole, "{name}: chunking {round} {sizes:?}");
        }
    }
}

/// The text content and the sequence of element names of a page, as lol_html parses it.
fn structure(html: &[u8]) -> (String, Vec<String>) {
    let text = Rc::new(RefCell::new(String::new()));
    let names = Rc::new(RefCell::new(Vec::new()));
    let (t, n) = (text.clone(), names.clone());
    let settings = lol_html::Settings::new()
        .append_element_content_handler(lol_html::element!("*", move |el| {
            n.borrow_mut().push(el.tag_name());
            Ok(())
        }))
        .append_document_content_handler(lol_html::doc_text!(move |chunk| {
            t.borrow_mut().push_str(chunk.as_str());
            Ok(())
        }));
    let mut parser = lol_html::HtmlRewriter::new(settings, |_: &[u8]| {});
    parser.write(html).unwrap();
    parser.end().unwrap();
    let text = text.borrow().clone();
    let names = names.borrow().clone();
    (text, names)
}

#[test]
fn malformed_pages_keep_every_element_and_all_text() {
    for (name, _, _) in PAGES {
        let (input, out) = rewrite_whole(name);
        let (text_in, names_in) = structure(&input);
        let (text_out, names_out) = structure(&out);
        assert_eq!(text_out, text_in, "{name}: text content changed");
        assert_eq!(names_out, names_in, "{name}: element structure changed");
    }
    // The unterminated tag at the very end of the malformed page is still emitted as it came.
    let (input, out) = rewrite_whole("malformed");
    assert!(out.ends_with(b"<img src=\"h.jpg\n"));
    assert!(input.ends_with(b"<img src=\"h.jpg\n"));
}

#[test]
fn charset_from_content_type_keeps_every_byte() {
    let (input, out) = rewrite_whole("latin1");
    let rewritten = String::from_utf8_lossy(&out).into_owned();
    assert!(rewritten.contains("width=240,format=auto/photos/caf\u{FFFD}.jpg"));
    // Everything but the rewritten attributes is byte-for-byte the input: strip the added
    // text and compare.
    let expected_start = input.windows(4).position(|w| w == b"<img").unwrap();
    assert_eq!(out[..expected_start], input[..expected_start]);
    assert!(
        out.windows(6).any(|w| w == b"caf\xe9.j"),
        "Latin-1 byte lost"
    );
    assert!(out.windows(10).any(|w| w == b"caf\xe9 cr\xe8me"));
    // The same page with no charset in the header is read through its bytes just the same.
    let no_header = rewrite_in(&input, "/fr/page.html", "text/html", &[3]);
    assert_eq!(no_header, out);
    // UTF-16 is not ASCII-compatible: no rewriter, the page passes untouched.
    assert!(HtmlBody::start(options(), "/", "text/html; charset=utf-16", None, 1).is_none());
}

#[test]
fn gzip_deflate_and_brotli_bodies_decode_before_rewriting() {
    let (input, whole) = rewrite_whole("images");
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&input).unwrap();
    let mut zl = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    zl.write_all(&input).unwrap();
    let mut br = Vec::new();
    {
        let mut w = brotli::CompressorWriter::new(&mut br, 4096, 5, 22);
        w.write_all(&input).unwrap();
    }
    let ctype = "text/html; charset=utf-8";
    for (coding, bytes) in [
        ("gzip", gz.finish().unwrap()),
        ("deflate", zl.finish().unwrap()),
        ("br", br),
    ] {
        let mut body =
            HtmlBody::start(options(), "/blog/post.html", ctype, Some(coding), 1 << 20).unwrap();
        let mut out = Vec::new();
        let chunks: Vec<&[u8]> = bytes.chunks(7).collect();
        for (i, c) in chunks.iter().enumerate() {
            out.extend(body.feed(c, i + 1 == chunks.len()).unwrap());
        }
        assert_eq!(out, whole, "{coding}");
        // A truncated stream is an error, never a silently short page.
        let mut body = HtmlBody::start(options(), "/", ctype, Some(coding), 1 << 20).unwrap();
        let cut = body.feed(&bytes[..bytes.len() / 2], true);
        assert!(cut.is_err(), "{coding}: truncated body accepted");
    }
    // Past the decoded-size limit: an error.
    let mut body = HtmlBody::start(options(), "/", ctype, None, 100).unwrap();
    assert!(matches!(
        body.feed(&input, true),
        Err(RewriteError::TooLarge(100))
    ));
    // What cannot be handled passes untouched.
    assert!(HtmlBody::start(options(), "/", ctype, Some("zstd"), 1).is_none());
    assert!(HtmlBody::start(options(), "/", "image/png", None, 1).is_none());
    assert!(HtmlBody::start(options(), "/", "text/html;charset=\"utf-8\"", None, 1).is_some());
}

#[test]
fn fingerprint_follows_the_options() {
    let a = HtmlRewrite::new(RewriteOptions::default());
    let b = HtmlRewrite::new(RewriteOptions::default());
    let c = HtmlRewrite::new(RewriteOptions {
        eager_images: 3,
        ..RewriteOptions::default()
    });
    assert_eq!(a.fingerprint, b.fingerprint);
    assert_ne!(a.fingerprint, c.fingerprint);
    assert_eq!(a.fingerprint.len(), 16);
    fn send_sync<T: Send + Sync>() {}
    send_sync::<HtmlBody>();
}

/// Dev-profile timing (lol_html, encoding_rs and flate2 are built with opt-level 3 there; the
/// glue with opt-level 1). `benches/rewrite.rs` is the release-profile measurement.
#[test]
#[ignore = "timing: cargo test --lib rewrite_throughput -- --ignored --nocapture"]
fn rewrite_throughput_of_a_1mib_page() {
    for image_every in [1, 20] {
        time_rewrite(&sample_page::page(1 << 20, image_every));
    }
}

fn time_rewrite(page: &[u8]) {
    let ctype = "text/html; charset=utf-8";
    let mut times = Vec::new();
    for _ in 0..30 {
        let start = std::time::Instant::now();
        let out = rewrite_in(page, "/blog/index.html", ctype, &[16 * 1024]);
        times.push(start.elapsed());
        assert!(out.len() > page.len());
    }
    // The floor: lol_html parsing the same page with no handler.
    let mut floor = Vec::new();
    for _ in 0..30 {
        let start = std::time::Instant::now();
        let mut parser = lol_html::HtmlRewriter::new(lol_html::Settings::new(), |_: &[u8]| {});
        for chunk in page.chunks(16 * 1024) {
            parser.write(chunk).unwrap();
        }
        parser.end().unwrap();
        floor.push(start.elapsed());
    }
    // Matching only: the same selectors, handlers that read one attribute and change nothing.
    let mut matching = Vec::new();
    for _ in 0..30 {
        let start = std::time::Instant::now();
        let settings = lol_html::Settings::new()
            .append_element_content_handler(lol_html::element!("img", |el| {
                let _ = el.get_attribute("src");
                Ok(())
            }))
            .append_element_content_handler(lol_html::element!("picture > source", |el| {
                let _ = el.get_attribute("srcset");
                Ok(())
            }));
        let mut parser = lol_html::HtmlRewriter::new(settings, |_: &[u8]| {});
        for chunk in page.chunks(16 * 1024) {
            parser.write(chunk).unwrap();
        }
        parser.end().unwrap();
        matching.push(start.elapsed());
    }
    let images = page.windows(4).filter(|w| w == b"<img").count();
    println!("{images} <img> in the page");
    for (what, mut t) in [
        ("rewrite", times),
        ("lol_html floor", floor),
        ("matching only", matching),
    ] {
        t.sort();
        let median = t[t.len() / 2];
        println!(
            "{what}: 1 MiB page in 16 KiB chunks: median {:.2} ms, best {:.2} ms, {:.0} MB/s",
            median.as_secs_f64() * 1e3,
            t[0].as_secs_f64() * 1e3,
            page.len() as f64 / median.as_secs_f64() / 1e6
        );
    }
}

/// `total` bytes of zeros through a compressing `writer`, 1 MiB at a time: a decompression
/// bomb made without ever holding it decoded.
fn zeros_through<W: Write>(mut writer: W, total: usize) -> W {
    let block = vec![0u8; 1 << 20];
    for _ in 0..total >> 20 {
        writer.write_all(&block).unwrap();
    }
    writer
}

/// gzip, deflate (zlib) and brotli bombs decoding to `total` bytes.
fn bombs(total: usize) -> [(&'static str, Vec<u8>); 3] {
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    let zl = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
    let br = brotli::CompressorWriter::new(Vec::new(), 4096, 9, 22);
    [
        ("gzip", zeros_through(gz, total).finish().unwrap()),
        ("deflate", zeros_through(zl, total).finish().unwrap()),
        ("br", zeros_through(br, total).into_inner()),
    ]
}

/// A sink that records the largest piece it is handed and refuses past `limit`.
struct Meter {
    total: u64,
    largest: usize,
    limit: u64,
}

impl Write for Meter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.largest = self.largest.max(buf.len());
        self.total += buf.len() as u64;
        if self.total > self.limit {
            return Err(std::io::Error::other("over the limit"));
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

const BOMB: usize = 1 << 30;

#[test]
fn content_decoders_hand_out_bounded_windows_of_a_1gib_bomb_and_stop_at_the_limit() {
    let limit = 8u64 << 20;
    for (coding, bomb) in bombs(BOMB) {
        assert!(
            bomb.len() < 2 << 20,
            "{coding}: bomb is {} bytes",
            bomb.len()
        );
        let meter = Meter {
            total: 0,
            largest: 0,
            limit,
        };
        let mut decoder = body::ContentDecoder::for_coding(Some(coding), meter).unwrap();
        let mut fed = 0;
        let mut stopped = false;
        for chunk in bomb.chunks(16 * 1024) {
            fed += chunk.len();
            if decoder.write(chunk).is_err() {
                stopped = true;
                break;
            }
        }
        assert!(stopped, "{coding}: the limit did not stop the decoder");
        let meter = decoder.sink();
        assert!(
            meter.largest <= body::WINDOW,
            "{coding}: a decoded piece of {} bytes",
            meter.largest
        );
        assert!(meter.total <= limit + body::WINDOW as u64, "{coding}");
        assert!(fed <= bomb.len());
    }
}

#[test]
fn html_bombs_stop_at_the_page_limit_with_an_error() {
    let limit = 8u64 << 20;
    let ctype = "text/html; charset=utf-8";
    for (coding, bomb) in bombs(256 << 20) {
        let chunks: Vec<&[u8]> = bomb.chunks(16 * 1024).collect();
        let ((result, out, mut body), peak) = crate::test_alloc::peak_during(|| {
            let mut body = HtmlBody::start(options(), "/", ctype, Some(coding), limit).unwrap();
            let mut out = 0usize;
            for (i, c) in chunks.iter().enumerate() {
                match body.feed(c, i + 1 == chunks.len()) {
                    Ok(bytes) => out += bytes.len(),
                    Err(e) => return (Err(e), out, body),
                }
            }
            (Ok(()), out, body)
        });
        assert!(
            matches!(result, Err(RewriteError::TooLarge(l)) if l == limit),
            "{coding}: {result:?}"
        );
        assert!(out as u64 <= limit, "{coding}: {out} bytes out");
        // Memory: the page limit (one feed's rewritten output may reach it) and the decoders'
        // windows, never the 256 MiB the bomb expands to.
        assert!(peak < 40 << 20, "{coding}: {} MiB held at once", peak >> 20);
        // Done after an error: nothing more is decoded.
        assert!(body.feed(b"", true).is_err(), "{coding}");
    }
}

/// `(tag, attribute, raw value)` of every `img`/`source` attribute, as lol_html reads the page
/// (raw: character references not decoded).
fn raw_attributes(html: &[u8]) -> Vec<(String, String, String)> {
    let found = Rc::new(RefCell::new(Vec::new()));
    let f = found.clone();
    let settings = lol_html::Settings::new().append_element_content_handler(lol_html::element!(
        "img, source",
        move |el| {
            for a in el.attributes() {
                f.borrow_mut().push((el.tag_name(), a.name(), a.value()));
            }
            Ok(())
        }
    ));
    let mut parser = lol_html::HtmlRewriter::new(settings, |_: &[u8]| {});
    parser.write(html).unwrap();
    parser.end().unwrap();
    let found = found.borrow().clone();
    found
}

#[test]
fn character_references_in_image_urls_are_decoded_and_written_escaped() {
    // WordPress writes `&#038;` in every query string; `&#x2f;` and friends turn up too.
    let page = br#"<img src="/a.jpg?w=1&#038;h=2" width="100">
<img srcset="/b.jpg?x=1&#x26;y=2 1x, &#x2f;c.jpg?m=1&amp;n=2 2x" width="50">
<picture><source srcset="/d.jpg?p=1&amp;q=2 640w, /e.jpg?r=1&#38;s=2 1280w"><img src="&#x2F;f.jpg"></picture>
<img src="/g.jpg?c=&copy;">"#;
    let ctype = "text/html; charset=utf-8";
    let out = rewrite_in(page, "/blog/post.html", ctype, &[page.len()]);
    let attrs = raw_attributes(&out);
    let raw = |tag: &str, name: &str, nth: usize| {
        attrs
            .iter()
            .filter(|(t, n, _)| t == tag && n == name)
            .nth(nth)
            .map(|(_, _, v)| v.clone())
            .unwrap_or_default()
    };
    let img = "/cdn-cgi/image/";
    // Exactly as written into the page: `&` escaped, nothing else.
    assert_eq!(
        raw("img", "src", 0),
        format!("{img}width=100,format=auto/a.jpg?w=1&amp;h=2")
    );
    assert_eq!(
        raw("img", "srcset", 0),
        format!(
            "{img}width=100,format=auto/a.jpg?w=1&amp;h=2 1x, \
             {img}width=100,dpr=2,format=auto/a.jpg?w=1&amp;h=2 2x"
        )
    );
    assert_eq!(
        raw("img", "srcset", 1),
        format!(
            "{img}width=50,format=auto/b.jpg?x=1&amp;y=2 1x, \
             {img}width=50,dpr=2,format=auto/c.jpg?m=1&amp;n=2 2x"
        )
    );
    assert_eq!(
        raw("source", "srcset", 0),
        format!(
            "{img}width=640,format=auto/d.jpg?p=1&amp;q=2 640w, \
             {img}width=1280,format=auto/e.jpg?r=1&amp;s=2 1280w"
        )
    );
    // (The second `<img>` has no `src`.)
    assert_eq!(raw("img", "src", 1), format!("{img}format=auto/f.jpg"));
    // A named reference we cannot decode: the tag is left exactly as written.
    assert_eq!(raw("img", "src", 2), "/g.jpg?c=&copy;");
    assert!(String::from_utf8_lossy(&out).contains(r#"<img src="/g.jpg?c=&copy;">"#));
    // What a browser reads back from every rewritten value is the intended URL text: decoded
    // once, each `/cdn-cgi/image/` URL names the source with its real query, and no `&` is
    // left bare in the written text.
    for (tag, name, value) in &attrs {
        if !value.contains(img) {
            continue;
        }
        let read = entities::decode_attribute(value).unwrap();
        assert!(
            !read.contains("&amp;") && !read.contains("&#"),
            "{tag} {name}: {read}"
        );
        let bare = value
            .match_indices('&')
            .any(|(i, _)| !value[i..].starts_with("&amp;"));
        assert!(!bare, "{tag} {name}: bare & in {value}");
    }
}
