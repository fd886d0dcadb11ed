//! Snapshot tests of whole pages (`tests/fixtures/html/<name>.html` rewritten must equal
//! `<name>.expected.html`; `UPDATE_SNAPSHOTS=1` rewrites the snapshots after a deliberate
//! change), chunking invariance, malformed input, charsets and content codings.

use super::*;
use std::cell::RefCell;
use std::io::Write;
use std::path::PathBuf;
use std::rc::Rc;

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
        time_rewrite(&sample::page(1 << 20, image_every));
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
