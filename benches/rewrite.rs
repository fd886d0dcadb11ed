//! HTML rewrite throughput: a generated 1 MiB page (text, links and one image per article in
//! the common shapes) through `HtmlBody` in 16 KiB chunks, identity and gzip-coded. The time per
//! iteration is the latency the rewrite adds to a 1 MiB page; Criterion's throughput line gives
//! MB/s of HTML.
//!
//!   cargo bench --bench rewrite

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use imgate::rewrite::{body::HtmlBody, RewriteOptions};
use std::io::Write;
use std::sync::Arc;

/// A page of about `bytes` bytes: a typical blog/news layout.
pub fn sample_page(bytes: usize) -> Vec<u8> {
    let mut page = String::from(
        "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>Bench</title>\
         <link rel=\"stylesheet\" href=\"/site.css\"></head><body><main>\n",
    );
    let mut i = 0;
    while page.len() < bytes {
        let img = match i % 4 {
            0 => format!("<img src=\"/photos/{i}.jpg\" alt=\"photo {i}\">"),
            1 => format!("<img src=\"../img/{i}.png\" width=\"400\" alt=\"figure\">"),
            2 => format!(
                "<img src=\"/a/{i}.jpg\" srcset=\"/a/{i}.jpg 480w, /a/{i}-l.jpg 1080w\" sizes=\"50vw\">"
            ),
            _ => format!(
                "<picture><source type=\"image/webp\" srcset=\"/p/{i}.webp 1x, /p/{i}@2x.webp 2x\">\
                 <img src=\"/p/{i}.jpg\"></picture>"
            ),
        };
        page.push_str(&format!(
            "<article class=\"post\" id=\"post-{i}\"><h2><a href=\"/posts/{i}\">Post number {i}</a></h2>\
             {img}<p>Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor \
             incididunt ut labore et dolore magna aliqua. Ut enim ad minim veniam, quis nostrud \
             exercitation ullamco laboris nisi ut aliquip ex ea commodo consequat. <em>Duis aute</em> \
             irure dolor in reprehenderit in voluptate velit esse cillum dolore eu fugiat nulla \
             pariatur.</p><p>Excepteur sint occaecat cupidatat non proident, sunt in culpa qui \
             officia deserunt mollit anim id est laborum.</p></article>\n"
        ));
        i += 1;
    }
    page.push_str("</main></body></html>\n");
    page.into_bytes()
}

fn rewrite(page: &[u8], coding: Option<&str>, options: &Arc<RewriteOptions>) -> usize {
    let mut body = HtmlBody::start(
        options.clone(),
        "/blog/index.html",
        "text/html; charset=utf-8",
        coding,
        u64::MAX,
    )
    .unwrap();
    let chunks: Vec<&[u8]> = page.chunks(16 * 1024).collect();
    let mut out = 0;
    for (i, c) in chunks.iter().enumerate() {
        out += body.feed(c, i + 1 == chunks.len()).unwrap().len();
    }
    out
}

fn bench(c: &mut Criterion) {
    let page = sample_page(1 << 20);
    let options = Arc::new(RewriteOptions::default());
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&page).unwrap();
    let gzipped = gz.finish().unwrap();

    let mut g = c.benchmark_group("rewrite_1MiB_page");
    g.throughput(Throughput::Bytes(page.len() as u64));
    g.sample_size(20);
    g.bench_function("identity", |b| b.iter(|| rewrite(&page, None, &options)));
    g.bench_function("gzip_origin", |b| {
        b.iter(|| rewrite(&gzipped, Some("gzip"), &options))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
