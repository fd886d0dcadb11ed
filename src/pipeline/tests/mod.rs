//! Pipeline tests on real files: copies of `../shared/corpus` images in `tests/fixtures/`
//! (including the full EXIF orientation set), so they pass from a fresh clone. Most use specs
//! without width/height or decode-level functions; geometry has its own unit tests.

mod anim;
mod attention;
mod avif;
mod bombs;
mod crop;
mod describe;
mod encode;
mod heic;
mod metadata;
mod svg;

use crate::imaging::meta::SourceMeta;
use crate::imaging::orientation::{self, Orientation};
use crate::imaging::raster::drop_opaque_alpha;
use crate::imaging::{color, exif, jpeg, sniff, webp, Raster, SourceFormat};
use crate::pipeline::context::Ctx;
use crate::pipeline::error::PipelineError;
use crate::pipeline::format::choose_format;
use crate::pipeline::limits::Limits;
use crate::pipeline::steps::decode::{integer_shrink, jpeg_plan, min_stored_size, plan, MinSize};
use crate::pipeline::steps::flatten;
use crate::pipeline::steps::probe::{self, probe_with_meta};
use crate::pipeline::steps::{Phase, STEPS};
use crate::pipeline::{decode_upright, process, Media};
use crate::spec::{Accepts, FormatRequest, OutputFormat, Rgba, TransformSpec};
use std::path::{Path, PathBuf};

fn fixture_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn fixture(name: &str) -> Vec<u8> {
    let path = fixture_path(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn spec() -> TransformSpec {
    TransformSpec::default()
}

fn fixed(format: OutputFormat) -> TransformSpec {
    TransformSpec {
        format: FormatRequest::Fixed(format),
        ..TransformSpec::default()
    }
}

fn run(input: &[u8], spec: &TransformSpec) -> super::Processed {
    process(input, spec, Accepts::default(), &Limits::default()).expect("process")
}

fn upright(input: &[u8]) -> Raster {
    decode_upright(input, &spec(), &Limits::default()).expect("decode")
}

/// Size as an independent decoder (the `image` crate) reads it.
fn reference_size(input: &[u8]) -> (u32, u32) {
    image::ImageReader::new(std::io::Cursor::new(input))
        .with_guessed_format()
        .unwrap()
        .into_dimensions()
        .unwrap()
}

/// Probe + decode with chosen steps skipped: the stored-frame raster and its metadata.
fn decode_steps(input: &[u8], skip: &[&str]) -> (Raster, SourceMeta) {
    let (s, l) = (spec(), Limits::default());
    let mut ctx = Ctx::new(input, &s, Accepts::default(), &l);
    for (name, phase, step) in STEPS {
        if *phase == Phase::Decode && !skip.contains(name) {
            step(&mut ctx).unwrap();
        }
    }
    (ctx.take_raster(), ctx.meta.clone())
}

/// Mean luma over a `n` x `n` grid of boxes: a tiny grayscale thumbnail.
fn thumb(img: &Raster, n: usize) -> Vec<f64> {
    let (w, h, ch) = (
        img.width as usize,
        img.height as usize,
        usize::from(img.channels),
    );
    let mut sums = vec![(0f64, 0u32); n * n];
    for y in 0..h {
        for x in 0..w {
            let p = &img.data[(y * w + x) * ch..];
            let luma = 0.299 * f64::from(p[0]) + 0.587 * f64::from(p[1]) + 0.114 * f64::from(p[2]);
            let cell = &mut sums[(y * n / h) * n + x * n / w];
            cell.0 += luma;
            cell.1 += 1;
        }
    }
    sums.iter()
        .map(|(s, c)| s / f64::from((*c).max(1)))
        .collect()
}

fn mean_abs_diff(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).sum::<f64>() / a.len() as f64
}

/// Same size and the same picture (mean abs luma difference on a 24x24 thumbnail).
const SAME_PICTURE: f64 = 6.0;

fn picture_distance(a: &Raster, b: &Raster) -> f64 {
    assert_eq!((a.width, a.height), (b.width, b.height), "sizes differ");
    mean_abs_diff(&thumb(a, 24), &thumb(b, 24))
}

fn mean_saturation(img: &Raster) -> f64 {
    let ch = usize::from(img.channels);
    let n = img.data.len() / ch;
    img.data
        .chunks_exact(ch)
        .map(|p| {
            let max = p[..3].iter().copied().max().unwrap_or(0);
            let min = p[..3].iter().copied().min().unwrap_or(0);
            if max == 0 {
                0.0
            } else {
                f64::from(max - min) / f64::from(max)
            }
        })
        .sum::<f64>()
        / n as f64
}

fn pixel(img: &Raster, x: u32, y: u32) -> &[u8] {
    let ch = usize::from(img.channels);
    let at = (y as usize * img.width as usize + x as usize) * ch;
    &img.data[at..at + ch]
}

// ---------------------------------------------------------------- structure

#[test]
fn steps_are_listed_in_pipeline_order() {
    let names: Vec<&str> = STEPS.iter().map(|s| s.0).collect();
    assert_eq!(
        names,
        [
            "probe",
            "decode",
            "orient",
            "colour",
            "trim_border",
            "rotate_flip",
            "attention",
            "fit",
            "effects",
            "watermark",
            "border",
            "choose_format",
            "flatten",
            "encode",
            "metadata"
        ]
    );
}

// ---------------------------------------------------------------- sniff + probe

#[test]
fn sniff_names_each_format_by_magic() {
    let cases = [
        ("orientation/Landscape_1.jpg", SourceFormat::Jpeg),
        ("dune-gray.jpg", SourceFormat::Jpeg),
        ("pngsuite/basn6a08.png", SourceFormat::Png),
        ("animated.gif", SourceFormat::Gif),
        ("storm-lossy.webp", SourceFormat::Webp),
        ("animated.webp", SourceFormat::Webp),
    ];
    for (name, format) in cases {
        assert_eq!(sniff(&fixture(name)).unwrap(), format, "{name}");
    }
    assert_eq!(sniff(b"II*\0\x08\0\0\0").unwrap(), SourceFormat::Tiff);
    assert_eq!(sniff(b"MM\0*\0\0\0\x08").unwrap(), SourceFormat::Tiff);
    let svg = b"<?xml version=\"1.0\"?><svg xmlns=\"http://www.w3.org/2000/svg\"/>";
    assert_eq!(sniff(svg).unwrap(), SourceFormat::Svg);
}

#[test]
fn sniff_refuses_what_we_cannot_decode() {
    let xml = b"<?xml version=\"1.0\"?><html><svg/></html>".to_vec();
    let mp4 = b"\0\0\0\x18ftypisom\0\0\0\0isommp41".to_vec();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("MP4 video", mp4),
        ("XML that is not SVG", xml),
        ("text", b"hello, I am not an image".to_vec()),
        ("empty", Vec::new()),
        ("BM text", b"BMW is a car brand, not a bitmap".to_vec()),
        ("random", random_bytes(4096, 7)),
    ];
    for (what, input) in cases {
        let err = process(&input, &spec(), Accepts::default(), &Limits::default()).unwrap_err();
        assert!(
            matches!(err, PipelineError::Unsupported(_)),
            "{what}: {err:?}"
        );
    }
}

fn random_bytes(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

#[test]
fn probe_reads_size_and_frames_from_headers() {
    let l = Limits::default();
    for name in [
        "orientation/Landscape_1.jpg",
        "orientation/Landscape_6.jpg",
        "twowings-p3.jpg",
        "dune-gray.jpg",
        "ladybird-cmyk.jpg",
        "storm-lossy.webp",
        "animated.gif",
        "animated.webp",
        "pngsuite/basn6a16.png",
    ] {
        let input = fixture(name);
        let p = super::probe(&input, &l).unwrap();
        assert_eq!((p.width, p.height), reference_size(&input), "{name}");
        let frames = if name.starts_with("animated") { 3 } else { 1 };
        assert_eq!(p.frames, frames, "{name}");
    }
}

#[test]
fn pixel_limit_is_enforced_from_the_header_before_decoding() {
    let tiny = Limits {
        max_source_pixels: 100,
        ..Limits::default()
    };
    for name in [
        "orientation/Landscape_1.jpg",
        "ladybird-cmyk.jpg",
        "pngsuite/basn6a08.png",
        "animated.gif",
        "storm-lossy.webp",
        "animated.webp",
    ] {
        let err = process(&fixture(name), &spec(), Accepts::default(), &tiny).unwrap_err();
        assert!(matches!(err, PipelineError::TooLarge(_)), "{name}: {err:?}");
    }
    // A JPEG whose header is intact but whose body is garbage: the limit answers first,
    // which proves it runs before any pixel is decoded.
    let mut broken = fixture("orientation/Landscape_1.jpg");
    let sos = broken.windows(2).position(|w| w == [0xFF, 0xDA]).unwrap();
    broken.truncate(sos + 40);
    broken.extend(std::iter::repeat_n(0x55, 1000));
    let err = process(&broken, &spec(), Accepts::default(), &tiny).unwrap_err();
    assert!(matches!(err, PipelineError::TooLarge(_)), "{err:?}");
    let err = process(&broken, &spec(), Accepts::default(), &Limits::default()).unwrap_err();
    assert!(matches!(err, PipelineError::Undecodable(_)), "{err:?}");
}

#[test]
fn frame_limit_is_enforced_for_gif_and_webp() {
    let two = Limits {
        max_animation_frames: 2,
        ..Limits::default()
    };
    let three = Limits {
        max_animation_frames: 3,
        ..Limits::default()
    };
    for name in ["animated.gif", "animated.webp"] {
        let input = fixture(name);
        let err = super::probe(&input, &two).unwrap_err();
        assert!(matches!(err, PipelineError::TooLarge(_)), "{name}: {err:?}");
        assert!(super::probe(&input, &three).is_ok(), "{name}");
    }
}

// ---------------------------------------------------------------- decode

#[test]
fn output_keeps_source_size_without_a_box() {
    for name in [
        "orientation/Landscape_1.jpg",
        "twowings-p3.jpg",
        "dune-gray.jpg",
        "ladybird-cmyk.jpg",
        "storm-lossy.webp",
        "animated.gif",
        "animated.webp",
        "pngsuite/basn6a08.png",
        "pngsuite/basn2c16.png",
    ] {
        let input = fixture(name);
        let out = run(&input, &spec());
        assert_eq!((out.width, out.height), reference_size(&input), "{name}");
        let back = upright(&out.bytes);
        assert_eq!(
            (back.width, back.height),
            (out.width, out.height),
            "{name} re-decoded"
        );
    }
}

#[test]
fn pixel_layouts_become_8_bit_rgb_or_rgba() {
    // (file, channels): alpha only where the source has it.
    let cases = [
        ("pngsuite/basn0g08.png", 3), // gray
        ("pngsuite/basn2c16.png", 3), // 16-bit RGB
        ("pngsuite/basn3p08.png", 3), // palette
        ("pngsuite/basn4a08.png", 4), // gray + alpha
        ("pngsuite/basn6a08.png", 4), // RGBA
        ("pngsuite/basn6a16.png", 4), // 16-bit RGBA
        ("pngsuite/basi6a08.png", 4), // interlaced RGBA
        ("pngsuite/tbbn3p08.png", 4), // palette + tRNS
        ("dune-gray.jpg", 3),
        ("storm-lossy.webp", 3),
    ];
    for (name, channels) in cases {
        let img = upright(&fixture(name));
        assert_eq!(img.channels, channels, "{name}");
        assert_eq!(
            img.data.len(),
            (img.width * img.height * u32::from(channels)) as usize
        );
    }
    let gray = upright(&fixture("dune-gray.jpg"));
    assert!(gray
        .data
        .chunks_exact(3)
        .all(|p| p[0].abs_diff(p[1]) <= 1 && p[1].abs_diff(p[2]) <= 1));
}

#[test]
fn sixteen_bit_png_keeps_its_high_bytes() {
    // basn2c16 stores R = G ramps and B = 0xFFFF - ramp; 8-bit must keep the ramp's top byte.
    let img = upright(&fixture("pngsuite/basn2c16.png"));
    let raw = image::load_from_memory(&fixture("pngsuite/basn2c16.png"))
        .unwrap()
        .into_rgb16();
    for (ours, theirs) in img.data.iter().zip(raw.as_raw()) {
        assert!(ours.abs_diff((theirs >> 8) as u8) <= 1);
    }
}

#[test]
fn animations_decode_their_first_frame() {
    for name in ["animated.gif", "animated.webp"] {
        let input = fixture(name);
        let img = upright(&input);
        assert_eq!((img.width, img.height), reference_size(&input), "{name}");
        let first = image::load_from_memory(&input).unwrap().into_rgb8();
        let first = Raster::new(first.width(), first.height(), 3, first.into_raw());
        let rgb = flatten::flatten(img, [255; 3]);
        assert!(
            picture_distance(&rgb, &first) < 2.0,
            "{name} is not frame 1"
        );
    }
}

#[test]
fn jpeg_shrink_on_load_picks_the_smallest_sufficient_dct_scale() {
    let pick = |w, h, mw, mh| {
        let s = jpeg::scale(w, h, mw, mh);
        (s.num(), s.denom())
    };
    assert_eq!(pick(2000, 1000, 250, 125), (1, 8));
    assert_eq!(pick(2000, 1000, 251, 125), (1, 4));
    assert_eq!(pick(2000, 1000, 700, 10), (3, 8));
    assert_eq!(pick(2000, 1000, 1000, 500), (1, 2));
    assert_eq!(pick(2000, 1000, 1001, 500), (5, 8));
    assert_eq!(pick(2000, 1000, 2000, 1000), (1, 1));
    assert_eq!(pick(2000, 1000, 4000, 1000), (1, 1));
}

#[test]
fn min_size_is_asked_upright_and_swapped_back_for_orientations_5_to_8() {
    let upright_min: MinSize<'_> = &|w, h| (w / 2, h / 4);
    // Stored 400x300: upright it is 300x400 for 5-8, so the min is 150x100 upright.
    for o in 5..=8 {
        assert_eq!(
            min_stored_size(400, 300, o, upright_min),
            (100, 150),
            "orientation {o}"
        );
    }
    for o in 0..=4 {
        assert_eq!(
            min_stored_size(400, 300, o, upright_min),
            (200, 75),
            "orientation {o}"
        );
    }
}

#[test]
fn jpeg_and_webp_shrink_on_load_cover_the_minimum() {
    // Landscape_6 is stored portrait with orientation 6: ask for a quarter of the upright
    // width and a third of the upright height and check both stored axes still cover it.
    let input = fixture("orientation/Landscape_6.jpg");
    let (probe, mut meta) = probe_with_meta(&input, &Limits::default()).unwrap();
    assert_eq!(meta.orientation, 6);
    let (uw, uh) = (probe.height, probe.width);
    let min: MinSize<'_> = &|w, h| (w / 4, h / 3);
    let scale = jpeg_plan(&probe, &meta, min);
    let img = jpeg::decode(&input, &probe, &mut meta, scale).unwrap();
    // Stored width must cover upright height / 3, stored height upright width / 4.
    assert!(
        img.width >= uh / 3 && img.height >= uw / 4,
        "{}x{}",
        img.width,
        img.height
    );
    assert!(
        img.width < probe.width / 2,
        "no DCT scaling happened: {}",
        img.width
    );
    let up = orientation::apply(img, Orientation::from_exif(6));
    assert!(up.width >= uw / 4 && up.height >= uh / 3);

    let input = fixture("storm-lossy.webp");
    let (probe, meta) = probe_with_meta(&input, &Limits::default()).unwrap();
    let min: MinSize<'_> = &|w, h| (w / 5, h / 5);
    let img = webp::decode(&input, &probe, integer_shrink(&probe, &meta, min)).unwrap();
    assert_eq!(
        (img.width, img.height),
        (probe.width.div_ceil(5), probe.height.div_ceil(5))
    );
    let full = upright(&input);
    let small_again = Raster::new(img.width, img.height, 3, img.data.clone());
    assert!(mean_abs_diff(&thumb(&small_again, 16), &thumb(&full, 16)) < 3.0);
}

#[test]
fn opaque_alpha_is_dropped_real_alpha_kept() {
    let opaque = Raster::new(2, 1, 4, vec![1, 2, 3, 255, 4, 5, 6, 255]);
    assert_eq!(
        drop_opaque_alpha(opaque),
        Raster::new(2, 1, 3, vec![1, 2, 3, 4, 5, 6])
    );
    let clear = Raster::new(2, 1, 4, vec![1, 2, 3, 255, 4, 5, 6, 0]);
    assert_eq!(drop_opaque_alpha(clear.clone()), clear);
}

#[test]
fn bmp_and_tiff_sources_decode_and_fall_back_to_png_or_jpeg() {
    use image::ImageEncoder;
    let (w, h) = (5u32, 4u32);
    let rgba: Vec<u8> = (0..w * h)
        .flat_map(|i| [i as u8 * 10, 90, 200, if i == 0 { 0 } else { 255 }])
        .collect();
    let rgb: Vec<u8> = rgba
        .chunks_exact(4)
        .flat_map(|p| [p[0], p[1], p[2]])
        .collect();
    let mut bmp = Vec::new();
    image::codecs::bmp::BmpEncoder::new(&mut bmp)
        .write_image(&rgba, w, h, image::ExtendedColorType::Rgba8)
        .unwrap();
    let mut tiff = std::io::Cursor::new(Vec::new());
    image::codecs::tiff::TiffEncoder::new(&mut tiff)
        .write_image(&rgb, w, h, image::ExtendedColorType::Rgb8)
        .unwrap();
    let tiff = tiff.into_inner();
    assert_eq!(sniff(&bmp).unwrap(), SourceFormat::Bmp);
    assert_eq!(sniff(&tiff).unwrap(), SourceFormat::Tiff);

    let out = run(&bmp, &spec());
    assert_eq!(
        (out.format, out.width, out.height),
        (Media::Image(OutputFormat::Png), w, h)
    );
    let back = upright(&out.bytes);
    assert_eq!(back.channels, 4);
    assert_eq!(back.data, rgba);

    let out = run(&tiff, &spec());
    assert_eq!(
        (out.format, out.width, out.height),
        (Media::Image(OutputFormat::Jpeg), w, h)
    );
    assert_eq!(upright(&tiff).data, rgb);
}

#[test]
fn shrink_on_load_feeds_fit_the_right_upright_size() {
    // Needs the real geometry step: a 300 px wide box from 1800x1200 sources, stored upright
    // and stored rotated (orientation 6), must both come out 300x200 and alike.
    let box_300 = TransformSpec {
        width: Some(300),
        ..spec()
    };
    let a = run(&fixture("orientation/Landscape_1.jpg"), &box_300);
    let b = run(&fixture("orientation/Landscape_6.jpg"), &box_300);
    assert_eq!((a.width, a.height), (300, 200));
    assert_eq!((b.width, b.height), (300, 200));
    let d = picture_distance(&upright(&a.bytes), &upright(&b.bytes));
    assert!(d < SAME_PICTURE, "distance {d:.1}");
    let w = run(
        &fixture("storm-lossy.webp"),
        &TransformSpec {
            width: Some(192),
            ..spec()
        },
    );
    assert_eq!(
        (w.format, w.width, w.height),
        (Media::Image(OutputFormat::Webp), 192, 128)
    );
}

// ---------------------------------------------------------------- broken input

#[test]
fn broken_pngsuite_files_are_refused_cleanly() {
    let dir = fixture_path("pngsuite");
    let mut seen = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        if !name.starts_with('x') || !name.ends_with(".png") {
            continue;
        }
        seen += 1;
        let input = std::fs::read(&path).unwrap();
        for format in [OutputFormat::Png, OutputFormat::Jpeg] {
            match process(
                &input,
                &fixed(format),
                Accepts::default(),
                &Limits::default(),
            ) {
                Err(PipelineError::Unsupported(_) | PipelineError::Undecodable(_)) => {}
                other => panic!(
                    "{name}: expected a refusal, got {:?}",
                    other.map(|p| p.format)
                ),
            }
        }
    }
    assert!(seen >= 14, "only {seen} x*.png fixtures");
}

#[test]
fn truncated_and_random_inputs_are_refused_cleanly() {
    let jpeg = fixture("orientation/Landscape_1.jpg");
    let png = fixture("pngsuite/basn6a16.png");
    let webp = fixture("storm-lossy.webp");
    let gif = fixture("animated.gif");
    let mut cases: Vec<(String, Vec<u8>)> = vec![
        ("jpeg half".into(), jpeg[..jpeg.len() / 2].to_vec()),
        ("jpeg header only".into(), jpeg[..600].to_vec()),
        ("png half".into(), png[..png.len() / 2].to_vec()),
        ("png signature only".into(), png[..8].to_vec()),
        ("webp half".into(), webp[..webp.len() / 2].to_vec()),
        ("gif 100 bytes".into(), gif[..100].to_vec()),
    ];
    for n in [1usize, 3, 17, 64, 1000, 100_000] {
        cases.push((format!("random {n}"), random_bytes(n, n as u64)));
    }
    for (what, input) in cases {
        match process(&input, &spec(), Accepts::default(), &Limits::default()) {
            Err(PipelineError::Unsupported(_) | PipelineError::Undecodable(_)) => {}
            other => panic!(
                "{what}: expected a refusal, got {:?}",
                other.map(|p| p.format)
            ),
        }
    }
    // Valid magic followed by noise reaches each header parser and decoder: any answer
    // (noise may claim a huge size: TooLarge) but never a panic.
    for n in [1usize, 3, 17, 64, 1000, 100_000] {
        for magic in [
            &jpeg[..3],
            &png[..8],
            b"GIF89a".as_slice(),
            b"RIFF\0\0\0\0WEBPVP8 ",
        ] {
            let mut v = magic.to_vec();
            v.extend(random_bytes(n, n as u64 + 1));
            let _ = process(&v, &spec(), Accepts::default(), &Limits::default());
        }
    }
}

// ---------------------------------------------------------------- orientation

#[test]
fn exif_orientation_parser_is_bounds_checked() {
    let ifd = |le: bool, typ: u16, value: u16| -> Vec<u8> {
        let u16b = |v: u16| if le { v.to_le_bytes() } else { v.to_be_bytes() };
        let u32b = |v: u32| if le { v.to_le_bytes() } else { v.to_be_bytes() };
        let mut t = if le { b"II".to_vec() } else { b"MM".to_vec() };
        t.extend(u16b(42));
        t.extend(u32b(8));
        t.extend(u16b(2)); // two entries: an unrelated tag, then Orientation
        t.extend(u16b(0x010F));
        t.extend(u16b(2));
        t.extend(u32b(4));
        t.extend(u32b(0));
        t.extend(u16b(0x0112));
        t.extend(u16b(typ));
        t.extend(u32b(1));
        t.extend(u16b(value));
        t.extend([0, 0]);
        t.extend(u32b(0));
        t
    };
    for o in 1..=8 {
        assert_eq!(exif::orientation(&ifd(true, 3, o)), Some(o as u8));
        assert_eq!(exif::orientation(&ifd(false, 3, o)), Some(o as u8));
    }
    assert_eq!(exif::orientation(&ifd(true, 3, 9)), None);
    assert_eq!(exif::orientation(&ifd(true, 4, 6)), None);
    let good = ifd(true, 3, 6);
    for cut in 0..good.len() - 6 {
        assert_eq!(exif::orientation(&good[..cut]), None, "cut at {cut}");
    }
    let mut far = good.clone();
    far[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
    assert_eq!(exif::orientation(&far), None);
    let mut many = good;
    many[8..10].copy_from_slice(&u16::MAX.to_le_bytes());
    assert_eq!(exif::orientation(&many), Some(6));
}

/// A minimal little-endian EXIF TIFF block holding only Orientation.
fn exif_with_orientation(o: u16) -> Vec<u8> {
    let mut t = b"II*\0".to_vec();
    t.extend(8u32.to_le_bytes());
    t.extend(1u16.to_le_bytes());
    t.extend(0x0112u16.to_le_bytes());
    t.extend(3u16.to_le_bytes());
    t.extend(1u32.to_le_bytes());
    t.extend([o as u8, 0, 0, 0]);
    t.extend(0u32.to_le_bytes());
    t
}

#[test]
fn png_exif_orientation_and_icc_profile_are_applied() {
    use image::ImageEncoder;
    let pixels: Vec<u8> = (0..6u8)
        .flat_map(|v| [v * 40, 200 - v * 30, 50 + v * 20])
        .collect();
    let encode_png = |exif: Option<Vec<u8>>, icc: Option<Vec<u8>>| -> Vec<u8> {
        let mut out = Vec::new();
        let mut enc = image::codecs::png::PngEncoder::new(&mut out);
        if let Some(exif) = exif {
            enc.set_exif_metadata(exif).unwrap();
        }
        if let Some(icc) = icc {
            enc.set_icc_profile(icc).unwrap();
        }
        enc.write_image(&pixels, 3, 2, image::ExtendedColorType::Rgb8)
            .unwrap();
        out
    };
    let icc = jpeg::read_meta(&fixture("twowings-p3.jpg")).icc.unwrap();
    let plain = upright(&encode_png(None, None));
    let tagged = upright(&encode_png(
        Some(exif_with_orientation(6)),
        Some(icc.clone()),
    ));
    let mut expected = orientation::apply(plain, Orientation::from_exif(6));
    color::to_srgb(&mut expected, &icc);
    assert_eq!((tagged.width, tagged.height), (2, 3));
    assert_eq!(tagged, expected);
}

#[test]
fn orientation_transforms_match_their_definitions() {
    // 3x2 image, pixel value = index: 0 1 2 / 3 4 5.
    let src = Raster::new(3, 2, 3, (0..6u8).flat_map(|v| [v, v, v]).collect());
    let values = |r: &Raster| -> Vec<u8> { r.data.chunks_exact(3).map(|p| p[0]).collect() };
    let expect: [(u8, (u32, u32), [u8; 6]); 8] = [
        (1, (3, 2), [0, 1, 2, 3, 4, 5]),
        (2, (3, 2), [2, 1, 0, 5, 4, 3]), // mirror
        (3, (3, 2), [5, 4, 3, 2, 1, 0]), // 180
        (4, (3, 2), [3, 4, 5, 0, 1, 2]), // flip
        (5, (2, 3), [0, 3, 1, 4, 2, 5]), // transpose
        (6, (2, 3), [3, 0, 4, 1, 5, 2]), // 90 clockwise
        (7, (2, 3), [5, 2, 4, 1, 3, 0]), // transverse
        (8, (2, 3), [2, 5, 1, 4, 0, 3]), // 90 counter-clockwise
    ];
    for (o, size, pixels) in expect {
        let out = orientation::apply(src.clone(), Orientation::from_exif(o));
        assert_eq!((out.width, out.height), size, "orientation {o}");
        assert_eq!(values(&out), pixels, "orientation {o}");
    }
}

/// Every `<Prefix>_<n>.jpg` must decode to the same upright picture as `<Prefix>_1.jpg`, and
/// the comparison must be sharp enough to catch each wrong rotation.
fn check_orientation_set(dir: &Path, prefix: &str, numbers: &[u8]) {
    let read = |n: u8| std::fs::read(dir.join(format!("{prefix}_{n}.jpg"))).unwrap();
    let reference = upright(&read(1));
    for &n in numbers {
        let input = read(n);
        let img = upright(&input);
        let d = picture_distance(&img, &reference);
        assert!(d < SAME_PICTURE, "{prefix}_{n}: distance {d:.1}");
        // Every other orientation applied to the stored pixels must be told apart: either
        // the size is wrong or the picture is.
        let (stored, meta) = decode_steps(&input, &["orient"]);
        let right = if meta.orientation == 0 {
            1
        } else {
            meta.orientation
        };
        for wrong in (1..=8).filter(|&o| o != right) {
            let bad = orientation::apply(stored.clone(), Orientation::from_exif(wrong));
            if (bad.width, bad.height) == (reference.width, reference.height) {
                let d = picture_distance(&bad, &reference);
                assert!(
                    d > 2.0 * SAME_PICTURE,
                    "{prefix}_{n} with orientation {wrong}: {d:.1}"
                );
            }
        }
    }
}

#[test]
fn orientation_fixtures_come_out_upright() {
    let dir = fixture_path("orientation");
    check_orientation_set(&dir, "Landscape", &[1, 6]);
}

#[test]
fn whole_orientation_corpus_comes_out_upright() {
    let dir = fixture_path("orientation");
    assert!(dir.is_dir(), "fixtures missing at {}", dir.display());
    for prefix in ["Landscape", "Portrait"] {
        check_orientation_set(&dir, prefix, &[0, 1, 2, 3, 4, 5, 6, 7, 8]);
    }
}

// ---------------------------------------------------------------- colour

#[test]
fn display_p3_jpeg_is_converted_to_srgb() {
    let input = fixture("twowings-p3.jpg");
    let meta = jpeg::read_meta(&input);
    assert!(
        meta.icc.as_ref().is_some_and(|p| p.len() > 128),
        "P3 profile not found"
    );
    let converted = upright(&input);
    let (naive, _) = decode_steps(&input, &["colour"]);
    let (s_conv, s_naive) = (mean_saturation(&converted), mean_saturation(&naive));
    // P3 numbers read as sRGB look washed out; converted they must be more saturated.
    assert!(
        s_conv > s_naive * 1.05,
        "saturation converted {s_conv:.3} vs naive {s_naive:.3}"
    );
    // Same picture, only colours moved.
    assert!(picture_distance(&converted, &naive) < SAME_PICTURE);
}

#[test]
fn p3_profile_maps_a_pixel_like_the_p3_to_srgb_matrix() {
    // Display P3 (200, 100, 50) -> linear -> P3-to-sRGB matrix -> sRGB curve gives about
    // (215, 93, 31): more red, less green and blue, as a colour-managed viewer shows it.
    let icc = jpeg::read_meta(&fixture("twowings-p3.jpg")).icc.unwrap();
    let mut img = Raster::new(2, 1, 4, vec![200, 100, 50, 77, 128, 128, 128, 255]);
    color::to_srgb(&mut img, &icc);
    let close = |got: &[u8], want: [u8; 4]| got.iter().zip(want).all(|(&g, w)| g.abs_diff(w) <= 3);
    assert!(
        close(&img.data[..4], [215, 93, 31, 77]),
        "{:?}",
        &img.data[..4]
    );
    assert!(
        close(&img.data[4..], [128, 128, 128, 255]),
        "gray moved: {:?}",
        &img.data[4..]
    );
}

#[test]
fn gray_profile_maps_gray_levels_through_its_curve() {
    // A gamma-1.8 gray profile: level 128 is linear 0.288, which sRGB encodes as about 146.
    let white = lcms2::CIExyY {
        x: 0.3127,
        y: 0.3290,
        Y: 1.0,
    };
    let icc = lcms2::Profile::new_gray(&white, &lcms2::ToneCurve::new(1.8))
        .unwrap()
        .icc()
        .unwrap();
    let mut img = Raster::new(2, 1, 4, vec![128, 128, 128, 40, 255, 255, 255, 255]);
    color::to_srgb(&mut img, &icc);
    let px = &img.data[..4];
    assert!(
        px[0].abs_diff(146) <= 3 && px[0] == px[1] && px[1] == px[2],
        "{px:?}"
    );
    assert_eq!(px[3], 40, "alpha must not move");
    assert!(
        img.data[4..7].iter().all(|&v| v >= 253),
        "white moved: {:?}",
        &img.data[4..]
    );
}

#[test]
fn bad_or_srgb_profiles_are_ignored_without_error() {
    let img = Raster::new(2, 1, 3, vec![10, 200, 30, 250, 128, 0]);
    let mut bad = img.clone();
    color::to_srgb(&mut bad, b"definitely not an ICC profile");
    assert_eq!(bad, img);
    let srgb = lcms2::Profile::new_srgb().icc().unwrap();
    let mut same = img.clone();
    color::to_srgb(&mut same, &srgb);
    assert_eq!(same, img);
}

#[test]
fn cmyk_jpeg_decodes_to_plausible_rgb() {
    let input = fixture("ladybird-cmyk.jpg");
    let header = turbojpeg::read_header(&input).unwrap();
    assert!(matches!(
        header.colorspace,
        turbojpeg::Colorspace::CMYK | turbojpeg::Colorspace::YCCK
    ));
    let img = upright(&input);
    assert_eq!(img.channels, 3);
    // The CMYK file was made from the RGB LadyBird.jpg: it must look like it, not inverted.
    let rgb = upright(&fixture("photos/LadyBird.jpg"));
    let d = picture_distance(&img, &rgb);
    assert!(d < SAME_PICTURE, "CMYK vs RGB original: {d:.1}");
}

#[test]
fn naive_cmyk_formula_handles_both_conventions() {
    // Cyan ink 100%, no black: normal storage (255 = ink) and Adobe inverted (0 = ink).
    let (rgb, used) = color::cmyk_to_rgb(&[255, 0, 0, 0], None, false).unwrap();
    assert_eq!((rgb, used), (vec![0, 255, 255], false));
    let (rgb, _) = color::cmyk_to_rgb(&[0, 255, 255, 255], None, true).unwrap();
    assert_eq!(rgb, vec![0, 255, 255]);
    let (rgb, _) = color::cmyk_to_rgb(&[0, 0, 0, 255], None, false).unwrap();
    assert_eq!(rgb, vec![0, 0, 0]);
}

#[test]
fn jpeg_icc_chunks_are_reassembled_in_order() {
    let seg = |marker: u8, body: &[u8]| -> Vec<u8> {
        let mut s = vec![0xFF, marker];
        s.extend(((body.len() + 2) as u16).to_be_bytes());
        s.extend(body);
        s
    };
    let icc = |seq: u8, count: u8, data: &[u8]| -> Vec<u8> {
        let mut b = b"ICC_PROFILE\0".to_vec();
        b.extend([seq, count]);
        b.extend(data);
        seg(0xE2, &b)
    };
    let mut jpeg = vec![0xFF, 0xD8];
    jpeg.extend(icc(2, 2, b"world"));
    jpeg.extend(seg(0xEE, b"Adobe\0\x64\0\0\0\0\x02"));
    jpeg.extend(icc(1, 2, b"hello "));
    jpeg.extend([0xFF, 0xDA, 0, 2]);
    let meta = jpeg::read_meta(&jpeg);
    assert_eq!(meta.icc.as_deref(), Some(&b"hello world"[..]));
    assert!(meta.adobe);
    // A missing chunk drops the profile; truncation anywhere never panics.
    let mut partial = vec![0xFF, 0xD8];
    partial.extend(icc(2, 2, b"world"));
    assert_eq!(jpeg::read_meta(&partial).icc, None);
    for cut in 0..jpeg.len() {
        let _ = jpeg::read_meta(&jpeg[..cut]);
        let _ = webp::read_meta(&jpeg[..cut]);
    }
}

// ---------------------------------------------------------------- alpha, flatten, formats

#[test]
fn alpha_is_kept_in_png_and_webp_and_flattened_in_jpeg() {
    let input = fixture("pngsuite/basn6a08.png");
    let source = upright(&input);
    assert_eq!(source.channels, 4);
    // basn6a08's top-left corner is fully transparent.
    let (x, y) = (0, 0);
    assert_eq!(pixel(&source, x, y)[3], 0);

    for format in [OutputFormat::Png, OutputFormat::Webp] {
        let out = run(&input, &fixed(format));
        let back = upright(&out.bytes);
        assert_eq!(back.channels, 4, "{format:?} lost alpha");
        assert_eq!(pixel(&back, x, y)[3], 0, "{format:?} at ({x},{y})");
    }

    for (bg, expect) in [
        (None, [255u8, 255, 255]),
        (Some(Rgba([255, 0, 0, 255])), [255, 0, 0]),
    ] {
        let s = TransformSpec {
            background: bg,
            ..fixed(OutputFormat::Jpeg)
        };
        let out = run(&input, &s);
        let back = upright(&out.bytes);
        assert_eq!(back.channels, 3);
        let p = pixel(&back, x, y);
        let close = p
            .iter()
            .zip(expect)
            .all(|(&got, want)| got.abs_diff(want) <= 12);
        assert!(close, "JPEG on {bg:?} at ({x},{y}): {p:?}");
    }
}

#[test]
fn flatten_blends_straight_alpha_onto_the_background() {
    let img = Raster::new(3, 1, 4, vec![255, 0, 0, 255, 255, 0, 0, 0, 255, 0, 0, 128]);
    let out = flatten::flatten(img, [0, 0, 255]);
    assert_eq!(out.channels, 3);
    assert_eq!(out.data, vec![255, 0, 0, 0, 0, 255, 128, 0, 127]);
    assert_eq!(flatten::background_rgb(None), [255, 255, 255]);
    assert_eq!(
        flatten::background_rgb(Some(Rgba([0, 0, 0, 0]))),
        [255, 255, 255]
    );
    assert_eq!(
        flatten::background_rgb(Some(Rgba([0, 0, 0, 255]))),
        [0, 0, 0]
    );
}

fn assert_magic(bytes: &[u8], format: OutputFormat) {
    let ok = match format {
        OutputFormat::Jpeg => bytes.starts_with(&[0xFF, 0xD8, 0xFF]),
        OutputFormat::Png => bytes.starts_with(b"\x89PNG\r\n\x1a\n"),
        OutputFormat::Webp => bytes.starts_with(b"RIFF") && bytes.get(8..12) == Some(&b"WEBP"[..]),
        OutputFormat::Avif => bytes.get(4..12) == Some(&b"ftypavif"[..]),
    };
    assert!(
        ok,
        "{format:?} magic: {:02x?}",
        &bytes[..bytes.len().min(12)]
    );
}

#[test]
fn every_output_format_has_its_magic_bytes() {
    let inputs = ["storm-lossy.webp", "pngsuite/basn6a08.png"];
    for name in inputs {
        let input = fixture(name);
        for format in [
            OutputFormat::Jpeg,
            OutputFormat::Png,
            OutputFormat::Webp,
            OutputFormat::Avif,
        ] {
            let out = run(&input, &fixed(format));
            assert_eq!(out.format, format);
            assert_magic(&out.bytes, format);
            assert_eq!(
                (out.width, out.height),
                reference_size(&input),
                "{name} as {format:?}"
            );
        }
    }
}

#[test]
fn format_choice_follows_request_accept_and_alpha() {
    use FormatRequest::*;
    use OutputFormat::*;
    let none = Accepts::default();
    let webp = Accepts {
        avif: false,
        webp: true,
    };
    let all = Accepts {
        avif: true,
        webp: true,
    };
    let choose =
        |request, accepts, source, alpha| choose_format(request, accepts, source, alpha, false);
    let fast =
        |request, accepts, source, alpha| choose_format(request, accepts, source, alpha, true);
    // compression=fast: the quickest format the client takes, never AVIF; a fixed one stays.
    assert_eq!(fast(Auto, all, SourceFormat::Jpeg, false), Jpeg);
    assert_eq!(fast(Auto, all, SourceFormat::Png, true), Webp);
    assert_eq!(fast(Auto, none, SourceFormat::Png, true), Png);
    assert_eq!(fast(Fixed(Avif), all, SourceFormat::Jpeg, false), Avif);
    assert_eq!(fast(Original, all, SourceFormat::Webp, false), Webp);
    assert_eq!(choose(Fixed(Png), all, SourceFormat::Jpeg, false), Png);
    assert_eq!(choose(Auto, all, SourceFormat::Jpeg, false), Avif);
    assert_eq!(choose(Auto, webp, SourceFormat::Jpeg, true), Webp);
    assert_eq!(choose(Auto, none, SourceFormat::Webp, true), Png);
    assert_eq!(choose(Auto, none, SourceFormat::Png, false), Jpeg);
    assert_eq!(choose(Original, all, SourceFormat::Jpeg, false), Jpeg);
    assert_eq!(choose(Original, all, SourceFormat::Png, false), Png);
    assert_eq!(choose(Original, none, SourceFormat::Webp, true), Webp);
    assert_eq!(choose(Original, all, SourceFormat::Gif, true), Png);
    assert_eq!(choose(Original, all, SourceFormat::Gif, false), Jpeg);
    assert_eq!(choose(Original, all, SourceFormat::Bmp, false), Jpeg);
    assert_eq!(choose(Original, all, SourceFormat::Tiff, true), Png);

    // End to end: auto with an AVIF-capable client, and the original-format fallbacks.
    let small = fixture("pngsuite/basn2c16.png");
    let out = process(
        &small,
        &TransformSpec {
            format: Auto,
            ..spec()
        },
        all,
        &Limits::default(),
    )
    .unwrap();
    assert_magic(&out.bytes, Avif);
    let out = process(
        &small,
        &TransformSpec {
            format: Auto,
            ..spec()
        },
        webp,
        &Limits::default(),
    )
    .unwrap();
    assert_magic(&out.bytes, Webp);
    let jpeg = fixture("orientation/Landscape_1.jpg");
    let out = run(&fixture("animated.gif"), &spec());
    let Media::Image(format) = out.format else {
        panic!("an image, not {:?}", out.format)
    };
    assert_magic(&out.bytes, format);
    assert!(matches!(format, Jpeg | Png));
    assert_magic(&run(&jpeg, &spec()).bytes, Jpeg);
    assert_magic(&run(&fixture("storm-lossy.webp"), &spec()).bytes, Webp);
}

#[test]
fn output_carries_no_metadata() {
    // The P3 source has an ICC profile (APP2) and the orientation file EXIF (APP1).
    for name in ["twowings-p3.jpg", "orientation/Landscape_6.jpg"] {
        let out = run(&fixture(name), &spec());
        let meta = jpeg::read_meta(&out.bytes);
        assert_eq!(meta.icc, None, "{name}");
        assert_eq!(meta.orientation, 0, "{name}");
        assert!(!out.bytes.windows(6).any(|w| w == b"Exif\0\0"), "{name}");
    }
}

#[test]
fn timings_are_recorded_per_phase() {
    let out = run(&fixture("orientation/Landscape_1.jpg"), &spec());
    assert!(out.timings.decode > std::time::Duration::ZERO);
    assert!(out.timings.encode > std::time::Duration::ZERO);
}

/// A `DecodeShare` that keeps every decode and counts how many were made.
#[derive(Default)]
struct CountingShare {
    kept: std::sync::Mutex<
        std::collections::HashMap<super::DecodeKey, std::sync::Arc<super::Decoded>>,
    >,
    decodes: std::sync::atomic::AtomicUsize,
}

impl super::DecodeShare for CountingShare {
    fn get_or_decode(
        &self,
        key: super::DecodeKey,
        decode: &mut dyn FnMut() -> Result<super::Decoded, PipelineError>,
    ) -> Result<std::sync::Arc<super::Decoded>, PipelineError> {
        if let Some(d) = self.kept.lock().unwrap().get(&key) {
            return Ok(d.clone());
        }
        self.decodes
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let d = std::sync::Arc::new(decode()?);
        self.kept.lock().unwrap().insert(key, d.clone());
        Ok(d)
    }
}

#[test]
fn shared_decodes_give_the_same_images_and_decode_once_per_shrink_factor() {
    let share = CountingShare::default();
    let limits = Limits::default();
    let check_spec = |input: &[u8], spec: TransformSpec| {
        let alone = run(input, &spec);
        let shared = super::process_shared(
            input,
            &spec,
            Accepts::default(),
            &limits,
            Some(&share),
            None,
        )
        .expect("shared process");
        assert_eq!((shared.width, shared.height), (alone.width, alone.height));
        // Lossless output: the shared decode must give exactly the same pixels.
        let (a, b) = (
            image::load_from_memory(&alone.bytes).unwrap().to_rgba8(),
            image::load_from_memory(&shared.bytes).unwrap().to_rgba8(),
        );
        assert!(a == b, "shared decode changed the picture for {spec:?}");
    };
    let check = |input: &[u8], width: u32| {
        check_spec(
            input,
            TransformSpec {
                width: Some(width),
                ..fixed(OutputFormat::Png)
            },
        )
    };
    let decodes = || share.decodes.load(std::sync::atomic::Ordering::Relaxed);
    // GreenMeadow is 1280 wide: 100 and 150 both decode at 1/8 (160 px), 300 at 2/8.
    let meadow = fixture("photos/GreenMeadow.jpg");
    check(&meadow, 100);
    check(&meadow, 150);
    assert_eq!(decodes(), 1);
    check(&meadow, 300);
    assert_eq!(decodes(), 2);
    // EXIF orientation and colour travel with the shared decode.
    let rotated = fixture("orientation/Landscape_6.jpg");
    check(&rotated, 120);
    check(&rotated, 121);
    let p3 = fixture("twowings-p3.jpg");
    check(&p3, 200);
    // Every way a job can use the kept decode, each run twice on the same one, so a job that
    // changed the kept pixels would show in the next: resized in place (above), resized after
    // premultiplying translucent alpha, turned, flipped, cropped, blurred, and used as is.
    let rgba = fixture("pngsuite/basn6a08.png");
    let png = || fixed(OutputFormat::Png);
    let before = decodes();
    for _ in 0..2 {
        check(&rgba, 20);
        check_spec(&rgba, png());
        check_spec(
            &rgba,
            TransformSpec {
                width: Some(24),
                rotate: Some(90),
                flip: crate::spec::Flip::Horizontal,
                ..png()
            },
        );
        check_spec(
            &rgba,
            TransformSpec {
                width: Some(40),
                height: Some(16),
                fit: crate::spec::Fit::Crop, // 32x16 out of 32x32, no resampling
                ..png()
            },
        );
        check_spec(
            &meadow,
            TransformSpec {
                width: Some(160),
                blur_deci: Some(20),
                ..png()
            },
        );
    }
    assert!(decodes() <= before + 4, "the kept decodes were not used");
    // The same bytes in another buffer are another key: never confused, decoded again.
    let before = decodes();
    check(&meadow.clone(), 100);
    assert_eq!(decodes(), before + 1);
    // Errors come back unchanged.
    let truncated = fixture("truncated.jpg");
    let spec = fixed(OutputFormat::Jpeg);
    let alone = process(&truncated, &spec, Accepts::default(), &limits).unwrap_err();
    let shared = super::process_shared(
        &truncated,
        &spec,
        Accepts::default(),
        &limits,
        Some(&share),
        None,
    )
    .unwrap_err();
    assert_eq!(format!("{alone:?}"), format!("{shared:?}"));
}

#[test]
fn avif_output_of_photos_keeps_size_and_look() {
    use crate::imaging::avif::encode::testing::{
        decode_av1, find_box, ispe_sizes, luma_ssim, to_rgb,
    };
    for name in [
        "photos/LadyBird.jpg",
        "photos/FreshFlower.jpg",
        "twowings-p3.jpg",
    ] {
        let input = fixture(name);
        let spec = |format| TransformSpec {
            width: Some(300),
            ..fixed(format)
        };
        let avif = run(&input, &spec(OutputFormat::Avif));
        // PNG is lossless: the exact raster the AVIF encoder was given.
        let png = run(&input, &spec(OutputFormat::Png));
        assert_eq!((avif.width, avif.height), (png.width, png.height), "{name}");
        assert_eq!(
            ispe_sizes(&avif.bytes),
            vec![(avif.width, avif.height)],
            "{name}"
        );
        let planes = decode_av1(find_box(&avif.bytes, b"mdat").unwrap()).unwrap();
        let back = to_rgb(&planes);
        let want = image::load_from_memory(&png.bytes).unwrap().to_rgb8();
        let want = Raster::new(want.width(), want.height(), 3, want.into_raw());
        let ssim = luma_ssim(&want, &back);
        assert!(ssim > 0.95, "{name}: SSIM {ssim:.4}");
        // The colours survive too, not just luma.
        assert!(picture_distance(&want, &back) < 2.0, "{name}");
    }
}

#[test]
fn avif_output_leaves_shrink_on_load_headroom_and_other_formats_do_not() {
    // GreenMeadow is 1280 wide: 150 px fits 1/8 (160 px); twice that needs 2/8 (320 px).
    let meadow = fixture("photos/GreenMeadow.jpg");
    let limits = Limits::default();
    let plan = |format: FormatRequest, accepts: Accepts| {
        let spec = TransformSpec {
            width: Some(150),
            format,
            ..TransformSpec::default()
        };
        let mut ctx = Ctx::new(&meadow, &spec, accepts, &limits);
        probe::step(&mut ctx).unwrap();
        plan(&ctx).unwrap()
    };
    let avif_client = Accepts {
        avif: true,
        webp: true,
    };
    assert_eq!(
        plan(FormatRequest::Fixed(OutputFormat::Jpeg), avif_client),
        1
    );
    assert_eq!(
        plan(FormatRequest::Fixed(OutputFormat::Webp), avif_client),
        1
    );
    assert_eq!(plan(FormatRequest::Auto, Accepts::default()), 1);
    assert_eq!(
        plan(FormatRequest::Fixed(OutputFormat::Avif), Accepts::default()),
        2
    );
    assert_eq!(plan(FormatRequest::Auto, avif_client), 2);
    // Never more than the source: a thumbnail near full size decodes whole either way.
    let spec = TransformSpec {
        width: Some(1000),
        ..fixed(OutputFormat::Avif)
    };
    let mut ctx = Ctx::new(&meadow, &spec, Accepts::default(), &limits);
    probe::step(&mut ctx).unwrap();
    assert_eq!(super::steps::decode::plan(&ctx).unwrap(), 8);
    // And the output size is the one asked for.
    let out = run(
        &meadow,
        &TransformSpec {
            width: Some(150),
            ..fixed(OutputFormat::Avif)
        },
    );
    assert_eq!(out.width, 150);
}

// ---------------------------------------------------------------- tone adjustments

#[test]
fn tone_adjustments_on_a_photo() {
    let photo = fixture("photos/YellowFlower.jpg");
    let out = |options: &str| {
        let spec = crate::spec::parse_options(&format!("width=240,format=png,{options}")).unwrap();
        upright(&run(&photo, &spec).bytes)
    };
    let mean = |img: &Raster| thumb(img, 1)[0];
    let plain = out("quality=90");
    // Brighter, darker, lighter mid-tones: the mean luma moves the right way, the picture
    // stays the same picture.
    let (bright, dark, light) = (
        out("brightness=1.5"),
        out("brightness=0.6"),
        out("gamma=1.8"),
    );
    assert!(
        mean(&bright) > mean(&plain) + 15.0,
        "{} {}",
        mean(&bright),
        mean(&plain)
    );
    assert!(mean(&dark) < mean(&plain) - 15.0);
    assert!(mean(&light) > mean(&plain) + 15.0);
    // Saturation 0 is grey, close to `grayscale` (which weights encoded values); 2 is more
    // colourful; contrast 1.5 spreads the luma.
    let grey = out("saturation=0");
    assert!(grey
        .data
        .chunks_exact(3)
        .all(|p| p[0] == p[1] && p[1] == p[2]));
    assert!(picture_distance(&grey, &out("grayscale")) < 12.0);
    // (The flower is saturated already: 0.875 of full, 0.98 at twice, 0.37 at half.)
    assert!(mean_saturation(&out("saturation=2")) > mean_saturation(&plain) + 0.05);
    assert!(mean_saturation(&out("saturation=0.5")) < mean_saturation(&plain) * 0.6);
    let spread = |img: &Raster| {
        let t = thumb(img, 16);
        let m = t.iter().sum::<f64>() / t.len() as f64;
        t.iter().map(|v| (v - m).abs()).sum::<f64>() / t.len() as f64
    };
    // (Spread 65 plain, 77 at 1.5 where the highlights clip, 32 at 0.5.)
    assert!(spread(&out("contrast=1.5")) > spread(&plain) * 1.1);
    assert!(spread(&out("contrast=0.5")) < spread(&plain) * 0.6);
}

// ---------------------------------------------------------------- background under alpha

#[test]
fn background_shows_through_transparent_pixels_not_only_padding() {
    // basn6a08: 32x32 RGBA whose alpha runs from 0 to 255.
    let input = fixture("pngsuite/basn6a08.png");
    let source = upright(&input);
    assert_eq!(source.channels, 4);
    let out = |options: &str| {
        let spec = crate::spec::parse_options(options).unwrap();
        let img = upright(&run(&input, &spec).bytes);
        assert_eq!((img.width, img.height), (32, 32), "{options}");
        img
    };
    let px = |img: &Raster, i: usize| -> [u8; 4] {
        let c = usize::from(img.channels);
        let p = &img.data[i * c..i * c + c];
        [p[0], p[1], p[2], if c == 4 { p[3] } else { 255 }]
    };
    let clear = (0..32 * 32)
        .find(|&i| source.data[i * 4 + 3] == 0)
        .expect("a transparent pixel");
    let solid = (0..32 * 32)
        .find(|&i| source.data[i * 4 + 3] == 255)
        .expect("an opaque pixel");
    // An opaque colour: an opaque picture, the colour where it was clear.
    let red = out("background=red,format=png");
    assert_eq!(red.channels, 3, "nothing translucent is left");
    assert_eq!(px(&red, clear), [255, 0, 0, 255]);
    assert_eq!(px(&red, solid), px(&source, solid));
    // A translucent colour: the clear pixels take it, alpha and all; opaque ones stay.
    let blue = out("background=rgba(0,0,255,0.5),format=png");
    assert_eq!(px(&blue, clear), [0, 0, 255, 128]);
    assert_eq!(px(&blue, solid), px(&source, solid));
    // Half-transparent pixels are mixed: alpha grows, colour leans to the background.
    let half = (0..32 * 32)
        .find(|&i| (100..156).contains(&source.data[i * 4 + 3]))
        .expect("a half-transparent pixel");
    let mixed = px(&blue, half);
    assert!(mixed[3] > source.data[half * 4 + 3], "{mixed:?}");
    // No background: alpha is kept as it was.
    let plain = out("format=png");
    assert_eq!(px(&plain, clear)[3], 0);
}

#[test]
fn a_translucent_background_in_padding_is_laid_once() {
    let photo = fixture("photos/GreenMeadow.jpg"); // 1280x1024: 100x80 in a 100x100 box
    let spec = crate::spec::parse_options(
        "width=100,height=100,fit=pad,background=rgba(0,0,255,0.5),format=png",
    )
    .unwrap();
    let img = upright(&run(&photo, &spec).bytes);
    assert_eq!((img.width, img.height, img.channels), (100, 100, 4));
    assert_eq!(
        pixel(&img, 50, 2),
        [0, 0, 255, 128],
        "padding is the colour as given"
    );
    assert_eq!(pixel(&img, 50, 50)[3], 255, "the photo stays opaque");
}

// ---------------------------------------------------------------- border

#[test]
fn border_frames_the_finished_picture() {
    let photo = fixture("photos/GreenMeadow.jpg"); // 1280x1024: 100x80 at width 100
    let out = |options: &str| {
        let spec = crate::spec::parse_options(options).unwrap();
        let r = run(&photo, &spec);
        let img = upright(&r.bytes);
        assert_eq!((img.width, img.height), (r.width, r.height));
        img
    };
    let plain = out("width=100,format=png");
    let framed = out("width=100,format=png,border=color:red;width:5");
    assert_eq!((framed.width, framed.height), (110, 90));
    assert_eq!(pixel(&framed, 2, 45), [255, 0, 0]);
    assert_eq!(pixel(&framed, 107, 88), [255, 0, 0]);
    let inner = {
        let mut data = Vec::new();
        for y in 5..85 {
            data.extend_from_slice(&framed.data[(y * 110 + 5) * 3..(y * 110 + 105) * 3]);
        }
        Raster::new(100, 80, 3, data)
    };
    assert!(
        picture_distance(&inner, &plain) < 0.5,
        "the picture is untouched"
    );
    // Each side, times dpr; a blur does not reach the frame.
    let sides =
        out("width=100,dpr=2,format=png,blur=20,border=color:blue;top:1;right:2;bottom:3;left:4");
    assert_eq!((sides.width, sides.height), (200 + 12, 160 + 8));
    assert_eq!(pixel(&sides, 0, 0), [0, 0, 255]);
    assert_eq!(pixel(&sides, 211, 167), [0, 0, 255]);
    // No colour: the background's; none at all: clear in PNG, white under JPEG.
    assert_eq!(
        pixel(
            &out("width=100,format=png,background=lime,border=width:3"),
            1,
            1
        ),
        [0, 255, 0]
    );
    let clear = out("width=100,format=png,border=width:3");
    assert_eq!((clear.channels, pixel(&clear, 1, 1)[3]), (4, 0));
    let jpeg = out("width=100,format=jpeg,border=width:3");
    assert!(
        pixel(&jpeg, 1, 1).iter().all(|&v| v > 245),
        "{:?}",
        pixel(&jpeg, 1, 1)
    );
    // Over the output limit only with the frame (8100 + 200 > 8192): 413, found before the
    // resize allocates anything.
    let spec = crate::spec::parse_options("width=8100,fit=contain,border=width:100").unwrap();
    let r = process(&photo, &spec, Accepts::default(), &Limits::default());
    assert!(matches!(r, Err(PipelineError::TooLarge(_))), "{r:?}");
}
