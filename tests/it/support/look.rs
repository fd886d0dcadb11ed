//! Judging output images: decoded to RGBA, format told from magic bytes, look compared by SSIM
//! against the original or a reference downscale (dimensions are always checked exactly by the
//! tests themselves).

use std::path::Path;

/// Decode an output image (JPEG, PNG, WebP, GIF) into RGBA8.
pub fn decode(bytes: &[u8]) -> image::RgbaImage {
    image::load_from_memory(bytes)
        .expect("output decodes")
        .to_rgba8()
}

/// Width and height of any output image: read from the `ispe` property of an AVIF (the test
/// decoder reads no AVIF; imgate writes one plain item, no grid or rotation), decoded otherwise.
pub fn size_of(bytes: &[u8]) -> (u32, u32) {
    if sniff(bytes) != "avif" {
        let img = decode(bytes);
        return (img.width(), img.height());
    }
    let at = bytes
        .windows(4)
        .position(|w| w == b"ispe")
        .expect("an AVIF has an ispe property");
    let word = |i: usize| u32::from_be_bytes(bytes[i..i + 4].try_into().unwrap());
    // Box type, then version and flags, then width and height.
    (word(at + 8), word(at + 12))
}

/// Format from magic bytes.
pub fn sniff(bytes: &[u8]) -> &'static str {
    if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        "jpeg"
    } else if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        "png"
    } else if bytes.len() > 12 && &bytes[0..4] == b"RIFF" && &bytes[8..12] == b"WEBP" {
        "webp"
    } else if bytes.len() > 12
        && &bytes[4..8] == b"ftyp"
        && (&bytes[8..12] == b"avif" || &bytes[8..12] == b"avis")
    {
        "avif"
    } else {
        "unknown"
    }
}

/// Mean SSIM of two images' luma over 8x8 windows; `b` is resized to `a`'s size first.
pub fn ssim(a: &image::RgbaImage, b: &image::RgbaImage) -> f64 {
    let b = if a.dimensions() != b.dimensions() {
        image::imageops::resize(
            b,
            a.width(),
            a.height(),
            image::imageops::FilterType::Triangle,
        )
    } else {
        b.clone()
    };
    let luma = |img: &image::RgbaImage| -> Vec<f64> {
        img.pixels()
            .map(|p| 0.2126 * p[0] as f64 + 0.7152 * p[1] as f64 + 0.0722 * p[2] as f64)
            .collect()
    };
    super::ssim::windowed_ssim(&luma(a), &luma(&b), a.width() as usize)
}

/// A reference downscale of a fixture with the `image` crate, for look comparisons.
pub fn reference(file: &Path, w: u32, h: u32) -> image::RgbaImage {
    let img = image::open(file).expect("fixture decodes").to_rgba8();
    image::imageops::resize(&img, w, h, image::imageops::FilterType::Lanczos3)
}

/// A reference for a region: `region` (left, top, width, height) of a fixture turned clockwise
/// `turns` quarter turns first, resized to `w` x `h` with the `image` crate.
pub fn region_reference(
    file: &Path,
    turns: u8,
    (left, top, width, height): (u32, u32, u32, u32),
    w: u32,
    h: u32,
) -> image::RgbaImage {
    let mut img = image::open(file).expect("fixture decodes").to_rgba8();
    for _ in 0..turns % 4 {
        img = image::imageops::rotate90(&img);
    }
    let region = image::imageops::crop_imm(&img, left, top, width, height).to_image();
    image::imageops::resize(&region, w, h, image::imageops::FilterType::Lanczos3)
}
