//! Tests for animated output (`anim.rs`) on the 3-frame fixtures `animated.gif` and
//! `animated.webp` (320x200, 500 ms a frame, looping forever). Outputs are checked at the
//! container level (VP8X flag, ANMF chunks) and by decoding them back with the `image`
//! crate, which is independent of the libwebp encoder under test.

use crate::imaging::SourceFormat;
use crate::pipeline::context::Ctx;
use crate::pipeline::error::PipelineError;
use crate::pipeline::format::animates_as_webp;
use crate::pipeline::limits::Limits;
use crate::pipeline::process;
use crate::pipeline::run::{Media, Processed};
use crate::pipeline::steps::animated;
use crate::spec::{parse_options, Accepts, OutputFormat};
use image::AnimationDecoder;
use std::io::Cursor;
use std::path::Path;

const SOURCES: [&str; 2] = ["animated.gif", "animated.webp"];
/// 320x200 at width 100: 200 * 100 / 320 = 62.5, rounded half up.
const THUMB: (u32, u32) = (100, 63);

fn fixture(name: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn try_run(
    name: &str,
    options: &str,
    accepts: Accepts,
    limits: &Limits,
) -> Result<Processed, PipelineError> {
    let spec = parse_options(options).unwrap_or_else(|e| panic!("{options}: {e}"));
    process(&fixture(name), &spec, accepts, limits)
}

fn run(name: &str, options: &str, accepts: Accepts) -> Processed {
    try_run(name, options, accepts, &Limits::default())
        .unwrap_or_else(|e| panic!("{name} {options}: {e}"))
}

/// Top-level RIFF chunks of a WebP file: (fourcc, payload).
fn chunks(webp: &[u8]) -> Vec<([u8; 4], &[u8])> {
    assert_eq!(&webp[..4], b"RIFF", "not RIFF");
    assert_eq!(&webp[8..12], b"WEBP", "not WEBP");
    let mut out = Vec::new();
    let mut pos = 12;
    while pos + 8 <= webp.len() {
        let fourcc: [u8; 4] = webp[pos..pos + 4].try_into().unwrap();
        let size = u32::from_le_bytes(webp[pos + 4..pos + 8].try_into().unwrap()) as usize;
        let end = (pos + 8 + size).min(webp.len());
        out.push((fourcc, &webp[pos + 8..end]));
        pos = pos + 8 + size + (size & 1);
    }
    out
}

fn count(webp: &[u8], fourcc: &[u8; 4]) -> usize {
    chunks(webp).iter().filter(|c| &c.0 == fourcc).count()
}

/// Decoded frames (RGBA, full canvas) and their delays in ms.
fn frames(webp: &[u8]) -> Vec<(image::RgbaImage, u32)> {
    let d = image::codecs::webp::WebPDecoder::new(Cursor::new(webp)).unwrap();
    d.into_frames()
        .map(|f| {
            let f = f.unwrap();
            let (n, d) = f.delay().numer_denom_ms();
            (f.into_buffer(), n / d)
        })
        .collect()
}

/// An animated WebP with `n` frames, each exactly `size`.
fn assert_animated(out: &Processed, n: usize, size: (u32, u32), what: &str) {
    assert_eq!(out.format, OutputFormat::Webp, "{what}");
    assert_eq!((out.width, out.height), size, "{what}");
    let c = chunks(&out.bytes);
    assert_eq!(&c[0].0, b"VP8X", "{what}: first chunk");
    assert_ne!(c[0].1[0] & 0x02, 0, "{what}: VP8X animation flag");
    assert_eq!(count(&out.bytes, b"ANMF"), n, "{what}: ANMF chunks");
    let decoded = frames(&out.bytes);
    assert_eq!(decoded.len(), n, "{what}: decoded frames");
    for (img, _) in &decoded {
        assert_eq!(img.dimensions(), size, "{what}: frame size");
    }
}

fn assert_still_webp(out: &Processed, size: (u32, u32), what: &str) {
    assert_eq!(out.format, OutputFormat::Webp, "{what}");
    assert_eq!((out.width, out.height), size, "{what}");
    assert_eq!(count(&out.bytes, b"ANMF"), 0, "{what}: ANMF chunks");
    assert_eq!(count(&out.bytes, b"ANIM"), 0, "{what}: ANIM chunk");
}

/// Mean absolute difference per RGB channel, alpha ignored.
fn rgb_distance(a: &image::RgbImage, b: &image::RgbImage) -> f64 {
    assert_eq!(a.dimensions(), b.dimensions());
    let sum: u64 = a
        .as_raw()
        .iter()
        .zip(b.as_raw())
        .map(|(x, y)| u64::from(x.abs_diff(*y)))
        .sum();
    sum as f64 / a.as_raw().len() as f64
}

fn rgb(img: &image::RgbaImage) -> image::RgbImage {
    image::DynamicImage::ImageRgba8(img.clone()).into_rgb8()
}

#[test]
fn webp_output_of_an_animated_source_is_animated() {
    for name in SOURCES {
        let out = run(name, "width=100,format=webp", Accepts::default());
        assert_animated(&out, 3, THUMB, name);
        // The still path sizes the same request identically.
        let still = run(name, "width=100,format=webp,anim=false", Accepts::default());
        assert_eq!((still.width, still.height), THUMB, "{name} still");
    }
}

#[test]
fn anim_false_gives_a_still_webp() {
    for name in SOURCES {
        let out = run(name, "width=100,format=webp,anim=false", Accepts::default());
        assert_still_webp(&out, THUMB, name);
    }
}

#[test]
fn every_frame_is_padded_onto_the_background_once() {
    for name in SOURCES {
        let out = run(
            name,
            "width=100,height=100,fit=pad,background=rgba(0,0,255,0.5),format=webp",
            Accepts::default(),
        );
        assert_animated(&out, 3, (100, 100), name);
        for (img, _) in frames(&out.bytes) {
            let corner = img.get_pixel(50, 1).0;
            let near = |a: u8, b: u8| a.abs_diff(b) <= 8;
            assert!(
                near(corner[0], 0) && near(corner[2], 255) && near(corner[3], 128),
                "{name}: padding {corner:?}"
            );
        }
    }
}

#[test]
fn trim_border_trims_the_first_frame_into_a_still() {
    for name in SOURCES {
        let out = run(
            name,
            "trim=border,format=webp,width=100",
            Accepts::default(),
        );
        assert_eq!(out.width, 100, "{name}");
        assert_eq!(count(&out.bytes, b"ANMF"), 0, "{name}: one picture");
    }
}

#[test]
fn jpeg_and_png_outputs_stay_still() {
    for name in SOURCES {
        let out = run(name, "width=100,format=jpeg", Accepts::default());
        assert_eq!(out.format, OutputFormat::Jpeg, "{name}");
        assert_eq!(&out.bytes[..3], [0xFF, 0xD8, 0xFF], "{name}");
        assert_eq!((out.width, out.height), THUMB, "{name}");
        let out = run(name, "width=100,format=png", Accepts::default());
        assert_eq!(out.format, OutputFormat::Png, "{name}");
        assert_eq!(&out.bytes[..4], b"\x89PNG", "{name}");
        assert_eq!(count_png_frames(&out.bytes), 0, "{name}: no APNG");
    }
}

/// `acTL` chunks (APNG) in a PNG: we never write one.
fn count_png_frames(png: &[u8]) -> usize {
    png.windows(4).filter(|w| w == b"acTL").count()
}

#[test]
fn auto_format_animates_as_webp_even_for_avif_clients() {
    let both = Accepts {
        avif: true,
        webp: true,
    };
    for name in SOURCES {
        let out = run(name, "width=100,format=auto", both);
        assert_animated(&out, 3, THUMB, &format!("{name} avif+webp"));
        let webp_only = Accepts {
            avif: false,
            webp: true,
        };
        let out = run(name, "width=100,format=auto", webp_only);
        assert_animated(&out, 3, THUMB, &format!("{name} webp"));
        // A client without WebP keeps today's still fallback.
        let out = run(name, "width=100,format=auto", Accepts::default());
        assert!(
            matches!(
                out.format,
                Media::Image(OutputFormat::Jpeg | OutputFormat::Png)
            ),
            "{name}: {:?}",
            out.format
        );
    }
}

#[test]
fn avif_only_clients_get_a_still_avif() {
    let avif_only = Accepts {
        avif: true,
        webp: false,
    };
    let out = run("animated.gif", "width=100,format=auto", avif_only);
    assert_eq!(out.format, OutputFormat::Avif);
    assert_eq!((out.width, out.height), THUMB);
}

#[test]
fn without_format_an_animated_webp_stays_animated_and_a_gif_stays_still() {
    let out = run("animated.webp", "width=100", Accepts::default());
    assert_animated(&out, 3, THUMB, "animated.webp");
    let out = run("animated.gif", "width=100", Accepts::default());
    assert!(matches!(
        out.format,
        Media::Image(OutputFormat::Jpeg | OutputFormat::Png)
    ));
}

#[test]
fn frames_differ_and_keep_their_timing_and_loop() {
    for name in SOURCES {
        let out = run(name, "width=100,format=webp", Accepts::default());
        let decoded = frames(&out.bytes);
        for pair in decoded.windows(2) {
            let d = rgb_distance(&rgb(&pair[0].0), &rgb(&pair[1].0));
            assert!(d > 5.0, "{name}: consecutive frames nearly equal ({d:.2})");
        }
        let delays: Vec<u32> = decoded.iter().map(|f| f.1).collect();
        assert_eq!(delays, [500, 500, 500], "{name}");
        let anim = chunks(&out.bytes)
            .into_iter()
            .find(|c| &c.0 == b"ANIM")
            .expect("ANIM chunk");
        let loops = u16::from_le_bytes([anim.1[4], anim.1[5]]);
        assert_eq!(loops, 0, "{name}: loops forever like its source");
    }
}

#[test]
fn every_frame_gets_the_geometry_and_effects() {
    let options = "width=100,rotate=90,flip=h,grayscale,format=webp";
    for name in SOURCES {
        let out = run(name, options, Accepts::default());
        // Rotated: width=100 names the axis after rotating 320x200 to 200x320.
        assert_animated(&out, 3, (100, 160), name);
        for (img, _) in frames(&out.bytes) {
            let gray = img.pixels().all(|p| {
                let [r, g, b, _] = p.0;
                r.abs_diff(g) <= 6 && g.abs_diff(b) <= 6
            });
            assert!(gray, "{name}: a frame is not grayscale");
        }
        // The first animated frame is the still path's picture for the same options.
        let still = run(name, &format!("{options},anim=false"), Accepts::default());
        let still = image::load_from_memory(&still.bytes).unwrap().into_rgb8();
        let first = rgb(&frames(&out.bytes)[0].0);
        let d = rgb_distance(&first, &still);
        assert!(
            d < 4.0,
            "{name}: first frame differs from the still ({d:.2})"
        );
    }
}

#[test]
fn quality_reaches_the_animation_encoder() {
    let low = run(
        "animated.gif",
        "width=200,format=webp,quality=10",
        Accepts::default(),
    );
    let high = run(
        "animated.gif",
        "width=200,format=webp,quality=95",
        Accepts::default(),
    );
    assert_animated(&low, 3, (200, 125), "q10");
    assert!(
        low.bytes.len() < high.bytes.len(),
        "q10 {} B vs q95 {} B",
        low.bytes.len(),
        high.bytes.len()
    );
}

#[test]
fn too_many_frames_is_too_large() {
    let two = Limits {
        max_animation_frames: 2,
        ..Limits::default()
    };
    for name in SOURCES {
        let err = try_run(name, "width=100,format=webp", Accepts::default(), &two).unwrap_err();
        assert!(matches!(err, PipelineError::TooLarge(_)), "{name}: {err:?}");
    }
}

/// A context probed for `options` on `name`, as `process` leaves it before choosing a path.
fn probed<'a>(
    input: &'a [u8],
    spec: &'a crate::spec::TransformSpec,
    limits: &'a Limits,
) -> Ctx<'a> {
    let mut ctx = Ctx::new(input, spec, Accepts::default(), limits);
    crate::pipeline::steps::probe::step(&mut ctx).unwrap();
    ctx
}

#[test]
fn over_the_source_budget_takes_the_still_path() {
    let spec = parse_options("width=100,format=webp").unwrap();
    let limits = Limits::default();
    for name in SOURCES {
        let input = fixture(name);
        let ctx = probed(&input, &spec, &limits);
        // 3 frames of 320x200 = 192 000 pixel-frames.
        assert!(animated::wanted_within(&ctx, 192_000).unwrap(), "{name}");
        assert!(!animated::wanted_within(&ctx, 191_999).unwrap(), "{name}");
        assert!(animated::wanted(&ctx).unwrap(), "{name}");
    }
}

#[test]
fn over_the_output_budget_encodes_the_first_frame_still() {
    let spec = parse_options("width=100,format=webp").unwrap();
    let limits = Limits::default();
    for name in SOURCES {
        let input = fixture(name);
        let mut ctx = probed(&input, &spec, &limits);
        // 3 frames of 100x63 = 18 900 pixel-frames: one short keeps only the first frame.
        animated::decode_within(&mut ctx, 18_899).unwrap();
        assert_eq!(ctx.animation.as_ref().unwrap().frames.len(), 1, "{name}");
        animated::encode_step(&mut ctx).unwrap();
        assert_eq!(ctx.format, Some(OutputFormat::Webp), "{name}");
        assert_eq!(count(&ctx.output, b"ANMF"), 0, "{name}: still");
        assert_eq!((ctx.raster.width, ctx.raster.height), THUMB, "{name}");

        let mut ctx = probed(&input, &spec, &limits);
        animated::decode_within(&mut ctx, 18_900).unwrap();
        assert_eq!(ctx.animation.as_ref().unwrap().frames.len(), 3, "{name}");
    }
}

#[test]
fn animated_format_choice() {
    use crate::spec::FormatRequest::{Auto, Fixed, Original};
    use SourceFormat::{Gif, Webp};
    let none = Accepts::default();
    let avif = Accepts {
        avif: true,
        webp: true,
    };
    assert!(animates_as_webp(Fixed(OutputFormat::Webp), none, Gif));
    assert!(!animates_as_webp(Fixed(OutputFormat::Avif), avif, Gif));
    assert!(!animates_as_webp(Fixed(OutputFormat::Jpeg), avif, Webp));
    assert!(animates_as_webp(Auto, avif, Gif));
    assert!(!animates_as_webp(Auto, none, Webp));
    assert!(animates_as_webp(Original, none, Webp));
    assert!(!animates_as_webp(Original, avif, Gif));
}

/// A `pipeline` fuzz input (options length, options, Accept bits, image) run as the fuzz
/// target runs it (its small limits), a panic caught.
fn run_fuzz_case(
    case: &[u8],
) -> std::thread::Result<Result<crate::pipeline::Processed, PipelineError>> {
    let n = usize::from(case[0]);
    let options = std::str::from_utf8(&case[1..1 + n]).unwrap();
    let image = &case[2 + n..];
    let limits = crate::fuzzing::small_limits();
    let spec = parse_options(options).unwrap();
    std::panic::catch_unwind(|| process(image, &spec, Accepts::default(), &limits))
}

/// Found by the `pipeline` fuzz target: a WebP with `ANMF` chunks but no animation flag in
/// `VP8X` took the animated path, and image-webp's frame reader panicked (`is_animated`).
#[test]
fn r_fuzz_webp_frames_without_animation_flag_are_an_error() {
    let result = run_fuzz_case(include_bytes!(
        "../../../fuzz/corpus/pipeline/crash-33250bd37861f38fe50081b79923bdaa57773397"
    ));
    assert!(
        matches!(result, Ok(Err(PipelineError::Undecodable(_)))),
        "{result:?}"
    );
}

/// Found by the `pipeline` fuzz target: an animated WebP whose `ICCP` chunk header claims
/// 1.5 GB in a 373-byte file. image-webp allocated the claimed size before reading the
/// chunk (libFuzzer's malloc limit stopped it); the profile now comes from our own bounded
/// walker, so the file costs what a small animation costs.
#[test]
fn r_fuzz_webp_animation_icc_chunk_claiming_more_than_the_file_allocates_nothing_for_it() {
    let case = include_bytes!(
        "../../../fuzz/corpus/pipeline/oom-0bc6f88d62ceaad7dff99c7a9376a332201ec17d"
    );
    let (_, peak) = crate::test_alloc::peak_during(|| run_fuzz_case(case));
    assert!(peak < 16 << 20, "took {peak} bytes at its peak");
}

#[test]
fn every_frame_of_an_animation_carries_the_watermark() {
    use crate::pipeline::{process_shared, Overlay, Placement};
    use crate::spec::{Gravity, WatermarkPosition};
    let gif = fixture("animated.gif");
    let mark = fixture("watermark.png"); // 64x32 magenta, a 16x16 hole at (24, 8)
    let spec = parse_options("width=200,format=webp,watermark=m").unwrap();
    let overlay = Overlay {
        image: &mark,
        placement: Placement {
            position: WatermarkPosition::At(Gravity::TopLeft),
            offset: (4, 6),
            opacity: 1.0,
            scale: None,
        },
    };
    let out = process_shared(
        &gif,
        &spec,
        Accepts::default(),
        &Limits::default(),
        None,
        Some(&overlay),
    )
    .unwrap();
    let plain = run("animated.gif", "width=200,format=webp", Accepts::default());
    let (marked, plain) = (frames(&out.bytes), frames(&plain.bytes));
    assert!(marked.len() > 1 && marked.len() == plain.len());
    let magenta = |p: &image::Rgba<u8>| p[0] > 200 && p[1] < 60 && p[2] > 200;
    for (i, ((m, _), (p, _))) in marked.iter().zip(&plain).enumerate() {
        // Inside the mark (away from its edges, which lossy WebP softens), and in its hole.
        assert!(
            magenta(m.get_pixel(4 + 10, 6 + 4)),
            "frame {i}: {:?}",
            m.get_pixel(14, 10)
        );
        assert!(magenta(m.get_pixel(4 + 55, 6 + 26)), "frame {i}");
        let (h, q) = (m.get_pixel(4 + 32, 6 + 16), p.get_pixel(4 + 32, 6 + 16));
        assert!(
            !magenta(h) || magenta(q),
            "frame {i}: the hole shows the frame"
        );
        // Far from the mark: the frame as it was.
        let (a, b) = (m.get_pixel(150, 100), p.get_pixel(150, 100));
        assert!(
            (0..3).all(|c| a[c].abs_diff(b[c]) <= 12),
            "frame {i}: {a:?} vs {b:?}"
        );
    }
}
