//! The encoders: a finished raster to JPEG (libjpeg-turbo), PNG, WebP (libwebp) or AVIF
//! (`avif.rs`) bytes, at a given encoder setting. Owns the encoder calls and their settings
//! (speed, chroma); the format and quality policy is `format.rs`'s. Must not change pixels: by
//! the time we get here the raster is final (flattened if the format has no alpha).
//!
//! Metadata: the encoders write nothing besides pixels, so EXIF, XMP and ICC are stripped (the
//! pixels are sRGB, which every decoder assumes without a profile). `metadata=copyright` and
//! `metadata=keep` are applied afterwards by the `metadata` step (`keep_metadata.rs`).

use super::error::PipelineError;
use super::raster::Raster;
use crate::spec::OutputFormat;
use image::ImageEncoder;
use libwebp_sys as webp;
use std::ffi::{c_int, c_void};

/// WebP's format limit.
pub(super) const WEBP_MAX_DIMENSION: u32 = 16383;

/// Encode `img` as `format` at the encoder's own `quality` setting (see
/// `format::encoder_quality`); `grayscale` makes a JPEG single-channel.
pub(super) fn encode(
    img: &Raster,
    format: OutputFormat,
    quality: u8,
    grayscale: bool,
) -> Result<Vec<u8>, PipelineError> {
    if img.width == 0 || img.height == 0 {
        return Err(PipelineError::Encode(format!(
            "empty {}x{} image",
            img.width, img.height
        )));
    }
    match format {
        OutputFormat::Jpeg => encode_jpeg(img, quality, grayscale),
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
