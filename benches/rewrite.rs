//! HTML rewrite throughput: a generated 1 MiB page with about 80 images
//! (`tests/it/support/sample_page.rs`, the page the tests measure too) through
//! `HtmlBody` in 16 KiB chunks, identity and gzip-coded. The time per iteration is the latency
//! the rewrite adds to a 1 MiB page; Criterion's throughput line gives MB/s of HTML.
//!
//!   cargo bench --bench rewrite

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use imgate::rewrite::{body::HtmlBody, RewriteOptions};
use std::io::Write;
use std::sync::Arc;

#[path = "../tests/it/support/sample_page.rs"]
mod sample_page;

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
    let page = sample_page::page(1 << 20, 20);
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
