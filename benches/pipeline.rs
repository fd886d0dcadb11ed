//! Criterion benches of the whole image pipeline (`imgate::pipeline::process`: sniff, decode,
//! orient, resize, encode) on one real photo, one bench per output format plus a no-resize and a
//! large-resize case. It owns nothing but these measurements; HTTP, caches and origins are
//! left out on purpose so a regression here is the pipeline's and nobody else's.
//!
//! Sample sizes are small so the whole file runs in a couple of minutes on a 2-core machine;
//! compare runs with `cargo bench --bench pipeline -- --save-baseline NAME` / `--baseline NAME`.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use imgate::pipeline::{process, process_shared, Limits, Overlay, Placement};
use imgate::spec::{parse_options, Accepts, Gravity, TransformSpec, WatermarkPosition};
use std::hint::black_box;
use std::time::Duration;

// The server binary runs on mimalloc; the benches use it too so allocation-heavy steps cost
// what they cost in production.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// 1600x1203 progressive JPEG, the size of a typical phone photo after a CMS has had its way.
const PHOTO: &str = "tests/fixtures/photos/FreshFlower.jpg";

/// (bench name, options). Names stay stable so saved baselines keep matching.
const CASES: &[(&str, &str)] = &[
    ("w300_jpeg", "width=300,quality=80,format=jpeg"),
    ("w300_webp", "width=300,quality=80,format=webp"),
    ("w300_avif", "width=300,quality=80,format=avif"),
    ("w300_png", "width=300,quality=80,format=png"),
    // No width: the cost is decode + re-encode at full size, i.e. the codecs alone.
    ("full_jpeg_no_resize", "format=jpeg"),
    // A large target keeps the resize filter busy over many output pixels.
    ("w1200_jpeg", "width=1200,quality=80,format=jpeg"),
    // `compression=fast`: the same outputs at the encoders' cheaper settings.
    (
        "w300_jpeg_fast",
        "width=300,quality=80,format=jpeg,compression=fast",
    ),
    (
        "w300_webp_fast",
        "width=300,quality=80,format=webp,compression=fast",
    ),
    (
        "w300_avif_fast",
        "width=300,quality=80,format=avif,compression=fast",
    ),
    // A cover crop placed at the centre, and the same placed by `gravity=auto`: the difference
    // is what the attention step costs (BENCHMARKS.md, "gravity=auto").
    (
        "cover300_center",
        "width=300,height=300,fit=cover,quality=80,format=jpeg",
    ),
    (
        "cover300_auto",
        "width=300,height=300,fit=cover,gravity=auto,quality=80,format=jpeg",
    ),
];

fn read_photo() -> Vec<u8> {
    let path = format!("{}/{PHOTO}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("cannot read {path}: {e}"))
}

fn pipeline(c: &mut Criterion) {
    let bytes = read_photo();
    let limits = Limits::default();
    let accepts = Accepts {
        avif: true,
        webp: true,
    };
    let mut group = c.benchmark_group("pipeline/FreshFlower_1600x1203");
    group.sample_size(10);
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(5));
    for &(name, options) in CASES {
        let spec = parse_options(options).unwrap_or_else(|e| panic!("{options}: {e}"));
        // Fail loudly before timing: a case that errors would otherwise bench the error path.
        let out = process(&bytes, &spec, accepts, &limits)
            .unwrap_or_else(|e| panic!("{options}: pipeline failed: {e}"));
        eprintln!(
            "{name}: {} -> {}x{} {} ({} bytes)",
            options,
            out.width,
            out.height,
            out.format.name(),
            out.bytes.len()
        );
        group.bench_with_input(BenchmarkId::from_parameter(name), &spec, |b, spec| {
            b.iter(|| process(black_box(&bytes), black_box(spec), accepts, &limits).unwrap())
        });
    }
    group.finish();
}

/// The cover crop at the centre and by `gravity=auto` from the same photo as a PNG, which has
/// no shrink-on-load: the attention step reads every one of the 1.9 M pixels, its worst case.
fn attention_without_shrink(c: &mut Criterion) {
    let limits = Limits::default();
    let accepts = Accepts::default();
    let to_png = parse_options("format=png").unwrap();
    let png = process(&read_photo(), &to_png, accepts, &limits)
        .expect("the photo re-encodes as PNG")
        .bytes;
    let mut group = c.benchmark_group("pipeline/FreshFlower_1600x1203_png");
    group.sample_size(10);
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(5));
    for &(name, options) in &CASES[CASES.len() - 2..] {
        let spec = parse_options(options).unwrap_or_else(|e| panic!("{options}: {e}"));
        process(&png, &spec, accepts, &limits).unwrap_or_else(|e| panic!("{options}: {e}"));
        group.bench_with_input(BenchmarkId::from_parameter(name), &spec, |b, spec| {
            b.iter(|| process(black_box(&png), black_box(spec), accepts, &limits).unwrap())
        });
    }
    group.finish();
}

/// What the inputs and overlays of issue 18 cost on top of the plain JPEG thumbnail, one
/// process: the same photo as a HEIC (libheif, no shrink-on-load), and the JPEG with a
/// watermark (decoded, scaled and laid per job). BENCHMARKS.md, "HEIC and watermarks".
fn heic_and_watermark(c: &mut Criterion) {
    let limits = Limits::default();
    let accepts = Accepts::default();
    let fixture = |name: &str| {
        let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read(&path).unwrap_or_else(|e| panic!("cannot read {path}: {e}"))
    };
    let (jpeg, heic, mark) = (
        read_photo(),
        fixture("heic/flower.heic"),
        fixture("watermark.png"),
    );
    let plain = parse_options("width=300,quality=80,format=jpeg").unwrap();
    let marked = parse_options("width=300,quality=80,format=jpeg,watermark=m").unwrap();
    let overlay = Overlay {
        image: &mark,
        placement: Placement {
            position: WatermarkPosition::At(Gravity::BottomRight),
            offset: (10, 10),
            opacity: 0.8,
            scale: Some(0.25),
        },
    };
    let mut group = c.benchmark_group("pipeline/FreshFlower_w300_jpeg");
    group.sample_size(10);
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(5));
    let cases: [(&str, &[u8], &TransformSpec, Option<&Overlay<'_>>); 3] = [
        ("from_jpeg", &jpeg, &plain, None),
        ("from_heic", &heic, &plain, None),
        ("from_jpeg_watermarked", &jpeg, &marked, Some(&overlay)),
    ];
    for (name, input, spec, overlay) in cases {
        let run = || process_shared(input, spec, accepts, &limits, None, overlay);
        run().unwrap_or_else(|e| panic!("{name}: {e}"));
        group.bench_function(name, |b| b.iter(|| black_box(run().unwrap())));
    }
    group.finish();
}

criterion_group!(
    benches,
    pipeline,
    attention_without_shrink,
    heic_and_watermark
);
criterion_main!(benches);
