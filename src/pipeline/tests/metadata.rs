//! Tests for `metadata=none|copyright|keep` (the `metadata` step, `imaging::exif` and the codecs' `write_exif`) on real
//! files from `tests/fixtures/`. No fixture carries Artist/Copyright, so the tests build a
//! small big-endian EXIF block by hand and splice it into a fixture as the source. They only
//! read fixtures and never write files.

use crate::imaging::{exif, jpeg, png, webp};
use crate::pipeline::limits::Limits;
use crate::pipeline::process;
use crate::pipeline::run::Processed;
use crate::spec::{parse_options, Accepts};
use std::path::Path;

const ARTIST: u16 = 0x013B;
const COPYRIGHT: u16 = 0x8298;
const ORIENTATION: u16 = 0x0112;
const MAKE: u16 = 0x010F;
const EXIF_IFD: u16 = 0x8769;
const COLOR_SPACE: u16 = 0xA001;
const PIXEL_X: u16 = 0xA002;
const PIXEL_Y: u16 = 0xA003;

fn fixture(name: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn run(input: &[u8], options: &str) -> Processed {
    let spec = parse_options(options).expect("options");
    process(input, &spec, Accepts::default(), &Limits::default()).expect("process")
}

/// (marker, payload) of every JPEG segment before SOS.
fn jpeg_segments(jpeg: &[u8]) -> Vec<(u8, Vec<u8>)> {
    assert_eq!(&jpeg[..2], &[0xFF, 0xD8]);
    let mut out = Vec::new();
    let mut pos = 2;
    while pos + 4 <= jpeg.len() && jpeg[pos] == 0xFF && jpeg[pos + 1] != 0xDA {
        let len = usize::from(u16::from_be_bytes([jpeg[pos + 2], jpeg[pos + 3]]));
        out.push((jpeg[pos + 1], jpeg[pos + 4..pos + 2 + len].to_vec()));
        pos += 2 + len;
    }
    out
}

fn app1_exif_count(jpeg: &[u8]) -> usize {
    jpeg_segments(jpeg)
        .iter()
        .filter(|(m, d)| *m == 0xE1 && d.starts_with(b"Exif\0\0"))
        .count()
}

/// (fourcc, payload) of every RIFF chunk; also checks the RIFF size.
fn webp_chunks(webp: &[u8]) -> Vec<([u8; 4], Vec<u8>)> {
    assert_eq!(&webp[..4], b"RIFF");
    let riff = u32::from_le_bytes(webp[4..8].try_into().unwrap()) as usize;
    assert_eq!(riff, webp.len() - 8, "RIFF size");
    let mut out = Vec::new();
    let mut pos = 12;
    while pos + 8 <= webp.len() {
        let size = u32::from_le_bytes(webp[pos + 4..pos + 8].try_into().unwrap()) as usize;
        let kind: [u8; 4] = webp[pos..pos + 4].try_into().unwrap();
        out.push((kind, webp[pos + 8..pos + 8 + size].to_vec()));
        pos += 8 + size + (size & 1);
    }
    assert_eq!(pos, webp.len(), "chunks tile the file");
    out
}

/// Size as the `image` crate decodes it: the output must stay a valid file.
fn decoded_size(bytes: &[u8]) -> (u32, u32) {
    let img = image::load_from_memory(bytes).expect("image crate decodes the output");
    (img.width(), img.height())
}

fn field(fields: &[(u16, u16, Vec<u8>)], tag: u16) -> Option<&(u16, u16, Vec<u8>)> {
    fields.iter().find(|f| f.0 == tag)
}

/// Bytes per value for the types the builder uses.
fn size_of(kind: u16) -> usize {
    match kind {
        3 => 2,
        4 => 4,
        5 => 8,
        _ => 1,
    }
}

/// A big-endian IFD at `at` with its out-of-line values after it; `values` are big-endian.
fn ifd_block(entries: &[(u16, u16, Vec<u8>)], at: usize, next: u32) -> Vec<u8> {
    let mut ifd = (entries.len() as u16).to_be_bytes().to_vec();
    let mut tail = Vec::new();
    let tail_at = at + 2 + 12 * entries.len() + 4;
    for (tag, kind, value) in entries {
        ifd.extend_from_slice(&tag.to_be_bytes());
        ifd.extend_from_slice(&kind.to_be_bytes());
        ifd.extend_from_slice(&((value.len() / size_of(*kind)) as u32).to_be_bytes());
        if value.len() <= 4 {
            let mut inline = value.clone();
            inline.resize(4, 0);
            ifd.extend_from_slice(&inline);
        } else {
            ifd.extend_from_slice(&((tail_at + tail.len()) as u32).to_be_bytes());
            tail.extend_from_slice(value);
            if tail.len() % 2 == 1 {
                tail.push(0);
            }
        }
    }
    ifd.extend_from_slice(&next.to_be_bytes());
    ifd.extend_from_slice(&tail);
    ifd
}

fn ascii(s: &str) -> Vec<u8> {
    let mut v = s.as_bytes().to_vec();
    v.push(0);
    v
}

/// A camera-like "MM" block: IFD0 (Make, Orientation 6, Artist, Copyright, Exif pointer),
/// an Exif IFD (ColorSpace uncalibrated, pixel size, a date) and an IFD1 thumbnail IFD.
fn camera_exif() -> Vec<u8> {
    let exif_entries = vec![
        (COLOR_SPACE, 3, 0xFFFFu16.to_be_bytes().to_vec()),
        (PIXEL_X, 4, 4000u32.to_be_bytes().to_vec()),
        (PIXEL_Y, 4, 3000u32.to_be_bytes().to_vec()),
        (0x9003, 2, ascii("2024:01:02 03:04:05")),
    ];
    let ifd0 = |exif_at: u32| {
        vec![
            (MAKE, 2, ascii("TestCam")),
            (ORIENTATION, 3, 6u16.to_be_bytes().to_vec()),
            (ARTIST, 2, ascii("Jane Doe")),
            (EXIF_IFD, 4, exif_at.to_be_bytes().to_vec()),
            (COPYRIGHT, 2, ascii("(c) 2024 Jane Doe")),
        ]
    };
    // Sizes do not depend on the pointer values, so lay out once to learn the offsets.
    let ifd0_len = ifd_block(&ifd0(0), 8, 0).len();
    let exif_at = 8 + ifd0_len;
    let exif = ifd_block(&exif_entries, exif_at, 0);
    let ifd1_at = exif_at + exif.len();
    let mut out = b"MM\0\x2a\0\0\0\x08".to_vec();
    out.extend(ifd_block(&ifd0(exif_at as u32), 8, ifd1_at as u32));
    out.extend(exif);
    out.extend(ifd_block(&[(0x0103, 3, vec![0, 6])], ifd1_at, 0));
    out
}

/// `jpeg` with an APP1 Exif segment holding `tiff` spliced in right after SOI.
fn with_exif(jpeg: &[u8], tiff: &[u8]) -> Vec<u8> {
    let mut out = jpeg[..2].to_vec();
    out.extend_from_slice(&[0xFF, 0xE1]);
    out.extend_from_slice(&((tiff.len() + 8) as u16).to_be_bytes());
    out.extend_from_slice(b"Exif\0\0");
    out.extend_from_slice(tiff);
    out.extend_from_slice(&jpeg[2..]);
    out
}

/// FreshFlower.jpg has no EXIF of its own: the camera block is its only one.
fn camera_jpeg() -> Vec<u8> {
    with_exif(&fixture("photos/FreshFlower.jpg"), &camera_exif())
}

#[test]
fn camera_exif_builder_is_what_the_reader_expects() {
    let tiff = camera_exif();
    assert_eq!(exif::orientation(&tiff), Some(6));
    let fields = exif::ifd0_fields(&tiff).expect("valid");
    assert_eq!(field(&fields, ARTIST).unwrap().2, ascii("Jane Doe"));
    assert_ne!(exif::next_ifd(&tiff), Some(0));
    let exif = exif::sub_ifd_fields(&tiff, EXIF_IFD).expect("exif ifd");
    assert_eq!(field(&exif, COLOR_SPACE).unwrap().2, vec![0xFF, 0xFF]);
}

#[test]
fn keep_jpeg_writes_exif_with_orientation_reset() {
    let out = run(
        &fixture("orientation/Landscape_6.jpg"),
        "width=200,format=jpeg,metadata=keep",
    );
    assert_eq!(app1_exif_count(&out.bytes), 1);
    let meta = jpeg::read_meta(&out.bytes);
    let tiff = meta.exif.expect("EXIF kept");
    assert_eq!(exif::orientation(&tiff), Some(1));
    let fields = exif::ifd0_fields(&tiff).expect("parses back");
    assert_eq!(field(&fields, ORIENTATION).unwrap().1, 3, "SHORT");
    // The rest of IFD0 is the source's (XResolution here).
    assert!(field(&fields, 0x011A).is_some());
    // Re-processing our own output must not rotate again; no ICC was copied.
    assert_eq!(meta.orientation, 1);
    assert_eq!(meta.icc, None);
    // Upright landscape, as the `image` crate sees it.
    assert_eq!((out.width, out.height), (200, 133));
    assert_eq!(decoded_size(&out.bytes), (200, 133));
}

#[test]
fn keep_patches_colour_space_pixel_size_and_drops_thumbnail_link() {
    let out = run(&camera_jpeg(), "width=200,format=jpeg,metadata=keep");
    assert_eq!(decoded_size(&out.bytes), (out.width, out.height));
    let tiff = jpeg::read_meta(&out.bytes).exif.expect("EXIF kept");
    assert_eq!(&tiff[..2], b"MM", "byte order kept");
    assert_eq!(exif::orientation(&tiff), Some(1));
    let fields = exif::ifd0_fields(&tiff).expect("parses back");
    assert_eq!(field(&fields, MAKE).unwrap().2, ascii("TestCam"));
    assert_eq!(
        field(&fields, COPYRIGHT).unwrap().2,
        ascii("(c) 2024 Jane Doe")
    );
    assert_eq!(exif::next_ifd(&tiff), Some(0), "IFD1 thumbnail unlinked");
    let exif = exif::sub_ifd_fields(&tiff, EXIF_IFD).expect("exif ifd");
    assert_eq!(field(&exif, COLOR_SPACE).unwrap().2, vec![0, 1], "sRGB");
    let long = |v: u32| v.to_be_bytes().to_vec();
    assert_eq!(field(&exif, PIXEL_X).unwrap().2, long(out.width));
    assert_eq!(field(&exif, PIXEL_Y).unwrap().2, long(out.height));
    assert_eq!(
        field(&exif, 0x9003).unwrap().2,
        ascii("2024:01:02 03:04:05")
    );
}

#[test]
fn keep_never_copies_the_icc_profile() {
    let src = fixture("twowings-p3.jpg");
    assert!(jpeg::read_meta(&src).icc.is_some(), "fixture has a profile");
    let out = run(&src, "width=200,format=jpeg,metadata=keep");
    let meta = jpeg::read_meta(&out.bytes);
    assert_eq!(meta.icc, None);
    assert!(jpeg_segments(&out.bytes).iter().all(|(m, _)| *m != 0xE2));
    let tiff = meta.exif.expect("EXIF kept");
    assert_eq!(exif::orientation(&tiff), Some(1));
}

#[test]
fn copyright_keeps_only_artist_and_copyright() {
    let out = run(&camera_jpeg(), "width=200,format=jpeg,metadata=copyright");
    assert_eq!(app1_exif_count(&out.bytes), 1);
    let tiff = jpeg::read_meta(&out.bytes).exif.expect("EXIF written");
    let fields = exif::ifd0_fields(&tiff).expect("parses back");
    assert_eq!(
        fields,
        vec![
            (ARTIST, 2, ascii("Jane Doe")),
            (COPYRIGHT, 2, ascii("(c) 2024 Jane Doe")),
        ]
    );
    assert_eq!(exif::orientation(&tiff), None);
    assert_eq!(exif::next_ifd(&tiff), Some(0));
    // The pixels were still turned upright by the source's orientation 6.
    let src = fixture("photos/FreshFlower.jpg");
    let (sw, sh) = decoded_size(&src);
    assert_eq!(out.width, 200);
    assert_eq!(out.height > out.width, sw > sh);
    assert_eq!(decoded_size(&out.bytes), (out.width, out.height));
}

#[test]
fn copyright_without_those_fields_writes_nothing() {
    let out = run(
        &fixture("orientation/Landscape_6.jpg"),
        "width=200,format=jpeg,metadata=copyright",
    );
    assert_eq!(app1_exif_count(&out.bytes), 0);
    assert_eq!(decoded_size(&out.bytes), (200, 133));
}

#[test]
fn none_strips_all_metadata() {
    for src in [camera_jpeg(), fixture("orientation/Landscape_6.jpg")] {
        for opts in [
            "width=200,format=jpeg",
            "width=200,format=jpeg,metadata=none",
        ] {
            let out = run(&src, opts);
            let segments = jpeg_segments(&out.bytes);
            assert!(segments.iter().all(|(m, _)| *m != 0xE1), "{opts}: no APP1");
            assert!(!out.bytes.windows(6).any(|w| w == b"Exif\0\0"));
            let webp = run(&src, &opts.replace("jpeg", "webp"));
            assert!(webp_chunks(&webp.bytes).iter().all(|c| &c.0 != b"EXIF"));
        }
    }
}

#[test]
fn webp_keep_becomes_vp8x_with_exif_chunk() {
    let out = run(
        &fixture("orientation/Landscape_6.jpg"),
        "width=200,format=webp,metadata=keep",
    );
    let chunks = webp_chunks(&out.bytes);
    assert_eq!(&chunks[0].0, b"VP8X");
    let vp8x = &chunks[0].1;
    assert_eq!(vp8x[0] & 0x08, 0x08, "EXIF flag");
    let canvas = |b: &[u8]| u32::from_le_bytes([b[0], b[1], b[2], 0]) + 1;
    assert_eq!((canvas(&vp8x[4..]), canvas(&vp8x[7..])), (200, 133));
    assert_eq!(&chunks.last().unwrap().0, b"EXIF");
    let tiff = webp::read_meta(&out.bytes).exif.expect("EXIF chunk");
    assert_eq!(exif::orientation(&tiff), Some(1));
    assert!(exif::ifd0_fields(&tiff).is_some());
    assert_eq!(decoded_size(&out.bytes), (200, 133));
}

#[test]
fn webp_copyright_from_a_jpeg_source() {
    let out = run(&camera_jpeg(), "width=120,format=webp,metadata=copyright");
    let tiff = webp::read_meta(&out.bytes).exif.expect("EXIF chunk");
    let tags: Vec<u16> = exif::ifd0_fields(&tiff)
        .unwrap()
        .iter()
        .map(|f| f.0)
        .collect();
    assert_eq!(tags, vec![ARTIST, COPYRIGHT]);
    assert_eq!(decoded_size(&out.bytes), (out.width, out.height));
}

#[test]
fn webp_already_extended_or_lossless_gets_flag_and_chunk() {
    let exif = exif::copyright_only(&camera_exif()).unwrap();
    // Lossy with alpha: libwebp already writes VP8X + ALPH.
    let alpha = run(&fixture("pngsuite/basn6a08.png"), "format=webp").bytes;
    // Lossless: a simple VP8L file from the `image` crate's encoder.
    let mut lossless = Vec::new();
    let rgba = image::RgbaImage::from_pixel(37, 21, image::Rgba([10, 200, 30, 128]));
    image::codecs::webp::WebPEncoder::new_lossless(&mut lossless)
        .encode(&rgba, 37, 21, image::ExtendedColorType::Rgba8)
        .unwrap();
    assert_eq!(&webp_chunks(&lossless)[0].0, b"VP8L");
    for (name, src, alpha_flag) in [
        ("alpha", alpha, true),
        ("lossless", lossless, true),
        ("animated", fixture("animated.webp"), false),
    ] {
        let before = decoded_size(&src);
        let out = webp::write_exif(&src, &exif).expect(name);
        let chunks = webp_chunks(&out);
        assert_eq!(&chunks[0].0, b"VP8X", "{name}");
        assert_eq!(chunks[0].1[0] & 0x08, 0x08, "{name}: EXIF flag");
        if alpha_flag {
            assert_eq!(chunks[0].1[0] & 0x10, 0x10, "{name}: alpha flag");
        }
        assert_eq!(chunks.iter().filter(|c| &c.0 == b"EXIF").count(), 1);
        assert_eq!(webp::read_meta(&out).exif, Some(exif.clone()), "{name}");
        assert_eq!(decoded_size(&out), before, "{name}");
        // Injecting twice does not add a second chunk.
        assert_eq!(webp::write_exif(&out, &exif).unwrap(), out);
    }
    assert!(webp::write_exif(b"RIFF\0\0\0\0WEBPjunk", &exif).is_err());
}

#[test]
fn png_exif_source_and_png_output() {
    let src = fixture("pngsuite/exif2c08.png");
    assert!(png::read_exif(&src).is_some(), "fixture has eXIf");
    let png = run(&src, "format=png,metadata=keep");
    let tiff = png::read_exif(&png.bytes).expect("eXIf written");
    assert_eq!(exif::orientation(&tiff), Some(1));
    // The png crate checks chunk CRCs.
    assert_eq!(decoded_size(&png.bytes), (png.width, png.height));
    let jpeg = run(&src, "format=jpeg,metadata=keep");
    assert_eq!(app1_exif_count(&jpeg.bytes), 1);
    let none = run(&src, "format=png");
    assert_eq!(png::read_exif(&none.bytes), None);
}

#[test]
fn avif_output_is_stripped() {
    let out = run(&camera_jpeg(), "width=32,format=avif,metadata=keep");
    assert!(!out
        .bytes
        .windows(4)
        .any(|w| w == b"Exif" || w == b"MM\0\x2a"));
}

#[test]
fn oversized_exif_is_dropped_for_jpeg_but_kept_for_webp() {
    let huge = ifd_block(&[(0x010E, 2, vec![b'x'; 70_000])], 8, 0);
    let mut tiff = b"MM\0\x2a\0\0\0\x08".to_vec();
    tiff.extend(huge);
    assert!(jpeg::write_exif(&[0xFF, 0xD8, 0xFF, 0xD9], &tiff).is_err());
    let fits = vec![0u8; jpeg::MAX_JPEG_EXIF];
    let ok = jpeg::write_exif(&[0xFF, 0xD8, 0xFF, 0xD9], &fits).unwrap();
    assert_eq!(&ok[2..6], &[0xFF, 0xE1, 0xFF, 0xFF]);
    // A WebP source may carry more than 64 KB of EXIF.
    let src = webp::write_exif(&fixture("storm-lossy.webp"), &tiff).unwrap();
    let jpeg = run(&src, "width=100,format=jpeg,metadata=keep");
    assert_eq!(app1_exif_count(&jpeg.bytes), 0);
    assert_eq!(decoded_size(&jpeg.bytes), (jpeg.width, jpeg.height));
    let webp = run(&src, "width=100,format=webp,metadata=keep");
    assert_eq!(
        webp::read_meta(&webp.bytes).exif.map(|e| e.len()),
        Some(tiff.len())
    );
}

#[test]
fn jpeg_exif_goes_after_jfif_app0() {
    let out = run(&camera_jpeg(), "width=50,format=jpeg,metadata=keep");
    let markers: Vec<u8> = jpeg_segments(&out.bytes).iter().map(|s| s.0).collect();
    let app1 = markers.iter().position(|m| *m == 0xE1).unwrap();
    match markers.iter().position(|m| *m == 0xE0) {
        Some(app0) => assert_eq!(app1, app0 + 1),
        None => assert_eq!(app1, 0),
    }
}

#[test]
fn malformed_source_exif_yields_no_metadata() {
    let good = camera_exif();
    // Every truncation: no panic; cuts inside IFD0 or the values it points to are refused.
    for cut in 0..good.len() {
        let t = &good[..cut];
        let kept = exif::patch_for_upright(t, 10, 10);
        let _ = exif::copyright_only(t);
        if let Some(k) = &kept {
            assert!(exif::ifd0_fields(k).is_some());
        }
        if cut < 40 {
            assert_eq!(kept, None, "cut {cut}");
            assert_eq!(exif::copyright_only(t), None, "cut {cut}");
        }
    }
    let patched = |at: usize, bytes: &[u8]| {
        let mut t = good.clone();
        t[at..at + bytes.len()].copy_from_slice(bytes);
        t
    };
    // IFD0 offset outside the block.
    let far = patched(4, &[0, 1, 0, 0]);
    assert_eq!(exif::patch_for_upright(&far, 10, 10), None);
    assert_eq!(exif::copyright_only(&far), None);
    // Artist's value offset (entry 2 of IFD0) pointing outside.
    let artist_value = 8 + 2 + 2 * 12 + 8;
    let bad_value = patched(artist_value, &[0xFF, 0xFF, 0xFF, 0xF0]);
    assert_eq!(exif::patch_for_upright(&bad_value, 10, 10), None);
    assert_eq!(exif::copyright_only(&bad_value), None);
    // Exif IFD pointer (entry 3) outside: keep refuses, copyright does not need it.
    let bad_exif = patched(8 + 2 + 3 * 12 + 8, &[0, 0, 0x40, 0]);
    assert_eq!(exif::patch_for_upright(&bad_exif, 10, 10), None);
    assert!(exif::copyright_only(&bad_exif).is_some());
    // Absurd entry count, bad magic, count overflow (u32::MAX of LONG).
    assert_eq!(
        exif::patch_for_upright(&patched(8, &[0xFF, 0xFF]), 10, 10),
        None
    );
    assert_eq!(exif::patch_for_upright(&patched(2, &[0, 43]), 10, 10), None);
    let overflow = patched(8 + 2 + 4, &[0xFF, 0xFF, 0xFF, 0xFF]);
    assert_eq!(exif::patch_for_upright(&overflow, 10, 10), None);
    // Random corruption (a fixed LCG): never a panic, and what comes out parses.
    let mut seed = 0x2545_F491_4F6C_DD1Du64;
    for _ in 0..3000 {
        let mut t = good.clone();
        for _ in 0..3 {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let at = (seed >> 33) as usize % t.len();
            t[at] = (seed >> 17) as u8;
        }
        for out in [
            exif::patch_for_upright(&t, 10, 10),
            exif::copyright_only(&t),
        ]
        .into_iter()
        .flatten()
        {
            assert!(exif::ifd0_fields(&out).is_some());
        }
    }
}

#[test]
fn malformed_source_exif_end_to_end() {
    let good = camera_exif();
    for tiff in [&good[..30], &good[..good.len() / 2]] {
        let src = with_exif(&fixture("photos/FreshFlower.jpg"), tiff);
        for opts in [
            "width=80,format=jpeg,metadata=keep",
            "width=80,format=jpeg,metadata=copyright",
        ] {
            let out = run(&src, opts);
            assert_eq!(app1_exif_count(&out.bytes), 0, "{opts}");
            assert_eq!(decoded_size(&out.bytes), (out.width, out.height));
        }
    }
}

#[test]
fn crc32_matches_png() {
    // Every PNG ends with IEND and this CRC.
    assert_eq!(png::crc32(b"IEND"), 0xAE42_6082);
}
