//! Step 7, encode: choose the output format and encode the finished raster. Owns the format
//! decision and the encoder settings (quality defaults, speed). Must not change pixels: by
//! the time we get here the raster is final (flattened if the format has no alpha).
//!
//! Metadata: the encoders write nothing besides pixels, so EXIF, XMP and ICC are stripped (the
//! pixels are sRGB, which every decoder assumes without a profile). `metadata=copyright` and
//! `metadata=keep` are applied afterwards by the `metadata` step (`keep_metadata.rs`).

use super::pipeline::Ctx;
use super::raster::Raster;
use super::sniff::SourceFormat;
use super::PipelineError;
use crate::spec::{Accepts, FormatRequest, OutputFormat, TransformSpec};
use image::ImageEncoder;
use libwebp_sys as webp;
use std::ffi::{c_int, c_void};

/// Default JPEG quality (on the option's scale, see [`encoder_quality`]): the usual web sweet spot.
const JPEG_QUALITY: u8 = 85;
/// Default WebP quality on the option's scale: libwebp quality 82, about JPEG 85 in perceived
/// quality at a smaller size.
const WEBP_QUALITY: u8 = 70;
/// Default AVIF quality (libaom level 24, see `avif::cq_level`); visually about JPEG 85.
const AVIF_QUALITY: u8 = 60;

/// The encoder setting for a `quality` option (1-100, or the format's default when absent).
///
/// The option's scale is calibrated to libvips', so a URL moved from a libvips-based server
/// (imgproxy, thumbor with pyvips...) keeps its look. Measured with
/// `scripts/quality_vs_libvips.py` on the 12 corpus photos at 300 px, luma SSIM against a
/// Lanczos reference: libvips JPEG q80 = 116,685 B at 0.9791, libjpeg-turbo q82 here = 116,171 B
/// at 0.9794; libvips WebP q80 = 151,896 B at 0.9759, libwebp q88 here = 104,822 B at 0.9829
/// (smaller *and* better looking; q80 here was 0.9735). So JPEG moves 10% and WebP 40% of the way
/// towards 100. AVIF needs no move here: `avif::cq_level` is itself calibrated to libvips'
/// AVIF (BT.601 4:2:0 through libaom, like libvips' libheif).
pub(super) fn encoder_quality(format: OutputFormat, quality: Option<u8>) -> u8 {
    let (default, toward_100) = match format {
        OutputFormat::Jpeg => (JPEG_QUALITY, 0.1),
        OutputFormat::Webp => (WEBP_QUALITY, 0.4),
        OutputFormat::Avif => (AVIF_QUALITY, 0.0),
        OutputFormat::Png => (100, 0.0),
    };
    let q = f32::from(quality.unwrap_or(default).clamp(1, 100));
    (q + (100.0 - q) * toward_100).round() as u8
}
/// How many times what `fit` needs the decoder's shrink-on-load must leave when the output
/// will be AVIF. Shrinking on load to just the output size costs some sharpness against a
/// full-size resize; lossy JPEG and WebP hide it, AVIF at the same quality shows it (luma SSIM
/// of the 12 corpus photos at 300 px, libaom at libvips' look: 0.9773 at 1x, 0.9793 at 1.5x,
/// 0.9795 at 2x, libvips 0.9798, BENCHMARKS.md). Decoding and resizing up to four times the
/// pixels is small next to an AVIF encode of 50-100 ms, but not next to a JPEG or WebP miss of
/// 10-20 ms, so those keep 1x.
const AVIF_DECODE_HEADROOM: f64 = 2.0;

/// The headroom shrink-on-load leaves for this request: [`AVIF_DECODE_HEADROOM`] when the
/// output is sure to be AVIF (decided before the decode, so it cannot depend on alpha),
/// otherwise 1.
pub(super) fn decode_headroom(request: FormatRequest, accepts: Accepts) -> f64 {
    match request {
        FormatRequest::Fixed(OutputFormat::Avif) => AVIF_DECODE_HEADROOM,
        FormatRequest::Auto if accepts.avif => AVIF_DECODE_HEADROOM,
        _ => 1.0,
    }
}

/// WebP's format limit.
pub(super) const WEBP_MAX_DIMENSION: u32 = 16383;

/// Pipeline step: decide the output format (needed before `flatten`).
pub(super) fn choose_step(ctx: &mut Ctx<'_>) -> Result<(), PipelineError> {
    let source = ctx.probe()?.format;
    ctx.format = Some(choose_format(
        ctx.spec.format,
        ctx.accepts,
        source,
        ctx.raster.has_alpha(),
    ));
    Ok(())
}

/// Pipeline step: encode `ctx.raster` into `ctx.output`.
pub(super) fn step(ctx: &mut Ctx<'_>) -> Result<(), PipelineError> {
    let format = match ctx.format {
        Some(f) => f,
        None => {
            choose_step(ctx)?;
            ctx.format.unwrap_or(OutputFormat::Jpeg)
        }
    };
    ctx.output = encode(&ctx.raster, format, ctx.spec)?;
    Ok(())
}

/// `Fixed` wins; `Auto` picks the best the client accepts (AVIF, WebP) and otherwise PNG for
/// alpha, JPEG for the rest; `Original` keeps JPEG/PNG/WebP/AVIF and turns GIF/BMP/TIFF (which we
/// do not encode) into PNG with alpha, JPEG without.
pub(super) fn choose_format(
    request: FormatRequest,
    accepts: Accepts,
    source: SourceFormat,
    alpha: bool,
) -> OutputFormat {
    let fallback = if alpha {
        OutputFormat::Png
    } else {
        OutputFormat::Jpeg
    };
    match request {
        FormatRequest::Fixed(f) => f,
        FormatRequest::Auto if accepts.avif => OutputFormat::Avif,
        FormatRequest::Auto if accepts.webp => OutputFormat::Webp,
        FormatRequest::Auto => fallback,
        FormatRequest::Original => match source {
            SourceFormat::Jpeg => OutputFormat::Jpeg,
            SourceFormat::Png => OutputFormat::Png,
            SourceFormat::Webp => OutputFormat::Webp,
            SourceFormat::Avif => OutputFormat::Avif,
            SourceFormat::Gif | SourceFormat::Bmp | SourceFormat::Tiff => fallback,
        },
    }
}

/// Encode `img` as `format` with the spec's quality (or the format's default).
pub(super) fn encode(
    img: &Raster,
    format: OutputFormat,
    spec: &TransformSpec,
) -> Result<Vec<u8>, PipelineError> {
    if img.width == 0 || img.height == 0 {
        return Err(PipelineError::Encode(format!(
            "empty {}x{} image",
            img.width, img.height
        )));
    }
    let quality = encoder_quality(format, spec.quality);
    match format {
        OutputFormat::Jpeg => encode_jpeg(img, quality, spec.grayscale),
        OutputFormat::Png => encode_png(img),
        OutputFormat::Webp => encode_webp(img, quality),
        OutputFormat::Avif => super::avif::encode(img, quality),
    }
}

fn jpeg_err(e: turbojpeg::Error) -> PipelineError {
    PipelineError::Encode(format!("JPEG: {e}"))
}

/// libjpeg-turbo, optimised Huffman tables (a few % smaller for little CPU), 4:2:0. A
/// grayscale request is written as a one-channel JPEG, a third smaller than gray in YCbCr.
fn encode_jpeg(img: &Raster, quality: u8, grayscale: bool) -> Result<Vec<u8>, PipelineError> {
    let mut c = turbojpeg::Compressor::new().map_err(jpeg_err)?;
    c.set_quality(i32::from(quality)).map_err(jpeg_err)?;
    let subsamp = if grayscale {
        turbojpeg::Subsamp::Gray
    } else {
        turbojpeg::Subsamp::Sub2x2
    };
    c.set_subsamp(subsamp).map_err(jpeg_err)?;
    c.set_optimize(true).map_err(jpeg_err)?;
    // Flatten runs before us, so alpha should be gone; RGBX ignores it if not.
    let format = if img.has_alpha() {
        turbojpeg::PixelFormat::RGBX
    } else {
        turbojpeg::PixelFormat::RGB
    };
    let width = img.width as usize;
    let image = turbojpeg::Image {
        pixels: &img.data[..],
        width,
        pitch: width * usize::from(img.channels),
        height: img.height as usize,
        format,
    };
    // turbojpeg sizes its own buffer from the image; the copy out is the compressed size.
    c.compress_to_vec(image).map_err(jpeg_err)
}

/// The `image` crate's PNG encoder at its fast (fdeflate) level: PNG output is for alpha and
/// graphics, where encode time matters more than the last few percent of size.
fn encode_png(img: &Raster) -> Result<Vec<u8>, PipelineError> {
    let raw = img.data.len();
    let mut out = Vec::with_capacity(raw / 2 + 1024);
    let color = if img.has_alpha() {
        image::ExtendedColorType::Rgba8
    } else {
        image::ExtendedColorType::Rgb8
    };
    image::codecs::png::PngEncoder::new_with_quality(
        &mut out,
        image::codecs::png::CompressionType::Fast,
        image::codecs::png::FilterType::Adaptive,
    )
    .write_image(&img.data, img.width, img.height, color)
    .map_err(|e| PipelineError::Encode(format!("PNG: {e}")))?;
    Ok(out)
}

/// libwebp writer callback: append to the `Vec<u8>` in `custom_ptr`. Returns 0 (abort) if the
/// vector cannot grow, rather than aborting the process on allocation failure.
unsafe extern "C" fn write_to_vec(
    data: *const u8,
    size: usize,
    pic: *const webp::WebPPicture,
) -> c_int {
    if size == 0 {
        return 1;
    }
    // SAFETY: `custom_ptr` is the `Vec` set by `encode_webp`, alive and exclusively ours for
    // the whole `WebPEncode` call; `data` holds `size` bytes per libwebp's contract.
    let (out, bytes) = unsafe {
        (
            &mut *((*pic).custom_ptr as *mut Vec<u8>),
            std::slice::from_raw_parts(data, size),
        )
    };
    if out.try_reserve(size).is_err() {
        return 0;
    }
    out.extend_from_slice(bytes);
    1
}

/// Frees a `WebPPicture`'s libwebp-owned planes on every return path.
struct Picture(webp::WebPPicture);

impl Drop for Picture {
    fn drop(&mut self) {
        // SAFETY: the picture was initialised by WebPPictureInit; freeing is idempotent.
        unsafe { webp::WebPPictureFree(&mut self.0) }
    }
}

/// The lossy WebP settings shared by still and animated output: `quality`, method 4 (libwebp's
/// default speed/size balance).
pub(super) fn webp_config(quality: u8) -> Result<webp::WebPConfig, PipelineError> {
    let fail = |what: &str| PipelineError::Encode(format!("WebP: {what}"));
    let mut config = webp::WebPConfig::new_with_preset(
        webp::WebPPreset::WEBP_PRESET_DEFAULT,
        f32::from(quality),
    )
    .map_err(|()| fail("config init"))?;
    config.method = 4;
    // SAFETY: `config` is an initialised config struct.
    if unsafe { webp::WebPValidateConfig(&config) } == 0 {
        return Err(fail("invalid config"));
    }
    Ok(config)
}

/// Copy `img`'s pixels into a libwebp picture whose width and height are already set to the
/// raster's; shared by still and animated WebP.
pub(super) fn import_picture(
    pic: &mut webp::WebPPicture,
    img: &Raster,
) -> Result<(), PipelineError> {
    let stride = (img.width * u32::from(img.channels)) as i32;
    // SAFETY: `img.data` holds height rows of `stride` bytes (Raster's invariant); libwebp
    // copies them into the picture's own buffer.
    let imported = unsafe {
        if img.has_alpha() {
            webp::WebPPictureImportRGBA(pic, img.data.as_ptr(), stride)
        } else {
            webp::WebPPictureImportRGB(pic, img.data.as_ptr(), stride)
        }
    };
    if imported == 0 {
        return Err(PipelineError::Encode("WebP: import failed".into()));
    }
    Ok(())
}

/// Lossy WebP (see [`webp_config`]), alpha kept when present.
fn encode_webp(img: &Raster, quality: u8) -> Result<Vec<u8>, PipelineError> {
    let fail = |what: &str| PipelineError::Encode(format!("WebP: {what}"));
    if img.width > WEBP_MAX_DIMENSION || img.height > WEBP_MAX_DIMENSION {
        return Err(fail("larger than 16383 pixels"));
    }
    let config = webp_config(quality)?;
    let mut pic = Picture(webp::WebPPicture::new().map_err(|()| fail("picture init"))?);
    pic.0.width = img.width as i32;
    pic.0.height = img.height as i32;
    import_picture(&mut pic.0, img)?;
    // Lossy WebP of a photo runs near 1-2 bits a pixel; start there to avoid regrowing.
    let mut out: Vec<u8> = Vec::with_capacity(img.data.len() / 12 + 1024);
    pic.0.writer = Some(write_to_vec);
    pic.0.custom_ptr = (&mut out as *mut Vec<u8>).cast::<c_void>();
    // SAFETY: config and picture are valid; the writer's `out` outlives the call.
    let ok = unsafe { webp::WebPEncode(&config, &mut pic.0) };
    pic.0.custom_ptr = std::ptr::null_mut();
    if ok == 0 {
        return Err(fail(&format!("{:?}", pic.0.error_code)));
    }
    Ok(out)
}

#[cfg(test)]
mod quality_tests {
    use super::*;

    #[test]
    fn quality_scale_is_calibrated_per_format() {
        assert_eq!(encoder_quality(OutputFormat::Jpeg, Some(80)), 82);
        assert_eq!(encoder_quality(OutputFormat::Webp, Some(80)), 88);
        assert_eq!(encoder_quality(OutputFormat::Avif, Some(80)), 80);
        for f in [OutputFormat::Jpeg, OutputFormat::Webp, OutputFormat::Avif] {
            assert_eq!(encoder_quality(f, Some(100)), 100);
            // Monotonic: a higher option never means a lower encoder setting.
            let qs: Vec<u8> = (1..=100).map(|q| encoder_quality(f, Some(q))).collect();
            assert!(qs.windows(2).all(|w| w[0] <= w[1]), "{f:?}");
        }
        // Defaults keep the encoder settings chosen before the calibration.
        assert_eq!(encoder_quality(OutputFormat::Webp, None), 82);
        assert_eq!(encoder_quality(OutputFormat::Avif, None), 60);
    }
}
