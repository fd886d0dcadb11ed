//! The still decoders: source bytes to an 8-bit sRGB-layout `Raster`, shrunk on load where the
//! codec can (JPEG DCT scaling, libwebp's scaler) by the factor the `decode` step planned, so a
//! thumbnail never pays for a full-size decode. Owns the codec calls and the pixel layout
//! (gray/palette/16-bit -> 8-bit RGB(A)). Must not decide colour (except CMYK, which has no RGB
//! form until converted), orientation or final size, and allocates only after `sniff` has checked
//! the size against the limits.
//!
//! Animated GIF/WebP (and APNG): only the first frame is decoded, because we output still
//! images; the frame count was still checked against `max_animation_frames` by the probe.

use super::color;
use super::error::PipelineError;
use super::limits::Limits;
use super::metadata::SourceMeta;
use super::orient;
use super::raster::alloc_pixels;
use super::raster::Raster;
use super::sniff::{Probe, SourceFormat};
use image::{DynamicImage, ImageDecoder};
use libwebp_sys as webp;
use std::io::Cursor;
use turbojpeg::{Colorspace, Decompressor, Image, PixelFormat, ScalingFactor};

/// Progressive JPEGs with absurd scan counts are a known CPU-exhaustion trick; real encoders
/// write about ten scans.
const MAX_JPEG_SCANS: u32 = 500;

/// Smallest DCT scale n/8 whose output still covers `min_w` x `min_h`.
pub(super) fn jpeg_scale(width: u32, height: u32, min_w: u32, min_h: u32) -> ScalingFactor {
    (1..=8)
        .map(|num| ScalingFactor::new(num, 8))
        .find(|s| {
            s.scale(width as usize) >= min_w as usize && s.scale(height as usize) >= min_h as usize
        })
        .unwrap_or(ScalingFactor::ONE)
}

fn jpeg_err(e: turbojpeg::Error) -> PipelineError {
    PipelineError::Undecodable(format!("JPEG: {e}"))
}

/// libjpeg-turbo reports recoverable problems ("warnings") as errors after finishing the
/// decode, and the API does not say which kind it was. We let through, by message, the
/// encoder quirks that leave every pixel decoded and that browsers show fine: junk between
/// segments and odd scan parameters. Truncation and corrupt entropy data stay errors.
const TOLERATED_JPEG_WARNINGS: &[&str] = &[
    "extraneous bytes before marker",
    "Invalid SOS parameters for sequential JPEG",
];

fn tolerable(e: &turbojpeg::Error) -> bool {
    matches!(e, turbojpeg::Error::TurboJpegError(msg)
        if TOLERATED_JPEG_WARNINGS.iter().any(|w| msg.contains(w)))
}

/// JPEG through libjpeg-turbo at DCT `scale` (n/8): RGB for YCbCr/RGB/gray sources, CMYK (converted
/// right away by `color::cmyk_to_rgb`) for CMYK/YCCK.
pub(super) fn decode_jpeg(
    input: &[u8],
    probe: &Probe,
    meta: &mut SourceMeta,
    scale: ScalingFactor,
) -> Result<Raster, PipelineError> {
    let mut d = Decompressor::new().map_err(jpeg_err)?;
    let header = d.read_header(input).map_err(jpeg_err)?;
    // A lossless JPEG has no DCT to scale by.
    let scale = if header.is_lossless {
        ScalingFactor::ONE
    } else {
        scale
    };
    d.set_scaling_factor(scale).map_err(jpeg_err)?;
    d.set_scan_limit(MAX_JPEG_SCANS).map_err(jpeg_err)?;
    let out = header.scaled(scale);
    let cmyk = matches!(header.colorspace, Colorspace::CMYK | Colorspace::YCCK);
    let format = if cmyk {
        PixelFormat::CMYK
    } else {
        PixelFormat::RGB
    };
    let pitch = out
        .width
        .checked_mul(format.size())
        .ok_or_else(|| too_large(probe))?;
    let mut pixels = alloc_pixels(
        pitch
            .checked_mul(out.height)
            .ok_or_else(|| too_large(probe))?,
    )?;
    let image = Image {
        pixels: &mut pixels[..],
        width: out.width,
        pitch,
        height: out.height,
        format,
    };
    match d.decompress(input, image) {
        Ok(()) => {}
        Err(e) if tolerable(&e) => log::debug!("JPEG decoded with warning: {e}"),
        Err(e) => return Err(jpeg_err(e)),
    }
    let (w, h) = (out.width as u32, out.height as u32);
    if cmyk {
        let (rgb, used_icc) = color::cmyk_to_rgb(&pixels, meta.icc.as_deref(), meta.adobe)?;
        // A profile that could not convert CMYK is of no use on the RGB result either.
        meta.icc_applied = true;
        if !used_icc && meta.icc.is_some() {
            log::debug!("CMYK JPEG converted without its ICC profile");
        }
        return Ok(Raster::new(w, h, 3, rgb));
    }
    Ok(Raster::new(w, h, 3, pixels))
}

fn too_large(probe: &Probe) -> PipelineError {
    PipelineError::TooLarge(format!(
        "{}x{} does not fit in memory",
        probe.width, probe.height
    ))
}

fn webp_err(what: &str, status: webp::VP8StatusCode) -> PipelineError {
    PipelineError::Undecodable(format!("WebP {what}: {status:?}"))
}

/// Still WebP through libwebp, shrunk on load by the integer factor `shrink` (1 = full size);
/// the geometry step then does the exact, higher-quality resize. An animated WebP gives its
/// first frame, full size.
pub(super) fn decode_webp(
    input: &[u8],
    probe: &Probe,
    shrink: u32,
) -> Result<Raster, PipelineError> {
    let mut config = webp::WebPDecoderConfig::new()
        .map_err(|()| PipelineError::Undecodable("WebP: decoder init failed".into()))?;
    // SAFETY: `input` is a valid slice; `config.input` is an out-struct owned by `config`.
    let status = unsafe { webp::WebPGetFeatures(input.as_ptr(), input.len(), &mut config.input) };
    if status != webp::VP8StatusCode::VP8_STATUS_OK {
        return Err(webp_err("header", status));
    }
    if config.input.has_animation != 0 {
        return decode_webp_first_frame(input, probe);
    }
    let (w, h) = (probe.width, probe.height);
    let shrink = shrink.max(1);
    let (ow, oh) = (w.div_ceil(shrink), h.div_ceil(shrink));
    if shrink >= 2 {
        config.options.use_scaling = 1;
        config.options.scaled_width = ow as i32;
        config.options.scaled_height = oh as i32;
    }
    let alpha = config.input.has_alpha != 0;
    let channels: u8 = if alpha { 4 } else { 3 };
    let stride = ow as usize * usize::from(channels);
    let len = stride
        .checked_mul(oh as usize)
        .ok_or_else(|| too_large(probe))?;
    let mut pixels = alloc_pixels(len)?;
    config.output.colorspace = if alpha {
        webp::WEBP_CSP_MODE::MODE_RGBA
    } else {
        webp::WEBP_CSP_MODE::MODE_RGB
    };
    config.output.is_external_memory = 1;
    config.output.u.RGBA = webp::WebPRGBABuffer {
        rgba: pixels.as_mut_ptr(),
        stride: stride as i32,
        size: len,
    };
    // SAFETY: the output buffer is `pixels`, exactly `stride * oh` bytes, alive for the call;
    // libwebp checks that the (scaled) picture fits it before writing.
    let status = unsafe { webp::WebPDecode(input.as_ptr(), input.len(), &mut config) };
    // SAFETY: frees only libwebp-owned memory; a no-op for our external buffer.
    unsafe { webp::WebPFreeDecBuffer(&mut config.output) };
    if status != webp::VP8StatusCode::VP8_STATUS_OK {
        return Err(webp_err("decode", status));
    }
    Ok(Raster::new(ow, oh, channels, pixels))
}

/// Deletes a libwebp animation decoder when dropped, on every return path.
struct AnimDecoder(*mut webp::WebPAnimDecoder);

impl Drop for AnimDecoder {
    fn drop(&mut self) {
        // SAFETY: the pointer came from WebPAnimDecoderNew and is deleted once.
        unsafe { webp::WebPAnimDecoderDelete(self.0) }
    }
}

/// First frame of an animated WebP, composited on its canvas (RGBA, straight alpha).
fn decode_webp_first_frame(input: &[u8], probe: &Probe) -> Result<Raster, PipelineError> {
    let fail = |what: &str| PipelineError::Undecodable(format!("animated WebP: {what}"));
    let data = webp::WebPData {
        bytes: input.as_ptr(),
        size: input.len(),
    };
    let mut opts = std::mem::MaybeUninit::<webp::WebPAnimDecoderOptions>::uninit();
    // SAFETY: the init function fills every field of `opts` and reports success.
    let mut opts = unsafe {
        if webp::WebPAnimDecoderOptionsInit(opts.as_mut_ptr()) == 0 {
            return Err(fail("options init"));
        }
        opts.assume_init()
    };
    opts.color_mode = webp::WEBP_CSP_MODE::MODE_RGBA;
    opts.use_threads = 0;
    // SAFETY: `data` points into `input`, which outlives the decoder.
    let dec = AnimDecoder(unsafe { webp::WebPAnimDecoderNew(&data, &opts) });
    if dec.0.is_null() {
        return Err(fail("demux failed"));
    }
    let mut info = webp::WebPAnimInfo::default();
    // SAFETY: `dec.0` is a live decoder, `info` an out-struct.
    if unsafe { webp::WebPAnimDecoderGetInfo(dec.0, &mut info) } == 0 {
        return Err(fail("no info"));
    }
    let (w, h) = (info.canvas_width, info.canvas_height);
    if u64::from(w) * u64::from(h) > u64::from(probe.width) * u64::from(probe.height) {
        return Err(fail("canvas larger than its header"));
    }
    let len = w as usize * h as usize * 4;
    let mut frame: *mut u8 = std::ptr::null_mut();
    let mut timestamp = 0;
    // SAFETY: on success `frame` points to a canvas of w*h*4 bytes owned by the decoder.
    if unsafe { webp::WebPAnimDecoderGetNext(dec.0, &mut frame, &mut timestamp) } == 0
        || frame.is_null()
    {
        return Err(fail("first frame does not decode"));
    }
    let mut pixels = alloc_pixels(len)?;
    // SAFETY: see above; the decoder (and so the canvas) lives until `dec` drops below.
    pixels.copy_from_slice(unsafe { std::slice::from_raw_parts(frame, len) });
    drop(dec);
    Ok(Raster::new(w, h, 4, pixels))
}

fn image_err(e: image::ImageError) -> PipelineError {
    match e {
        image::ImageError::Limits(e) => PipelineError::TooLarge(e.to_string()),
        image::ImageError::Unsupported(e) => PipelineError::Unsupported(e.to_string()),
        e => PipelineError::Undecodable(e.to_string()),
    }
}

/// PNG, GIF, BMP and TIFF through the `image` crate, with limits set from the probed size so
/// the decoder refuses to allocate more than that picture needs (at 16 bits, RGBA).
pub(super) fn decode_with_image(
    input: &[u8],
    probe: &Probe,
    meta: &mut SourceMeta,
    limits: &Limits,
) -> Result<Raster, PipelineError> {
    let format = match probe.format {
        SourceFormat::Png => image::ImageFormat::Png,
        SourceFormat::Gif => image::ImageFormat::Gif,
        SourceFormat::Bmp => image::ImageFormat::Bmp,
        SourceFormat::Tiff => image::ImageFormat::Tiff,
        other => {
            return Err(PipelineError::Unsupported(format!(
                "{other:?} via image crate"
            )))
        }
    };
    let mut reader = image::ImageReader::with_format(Cursor::new(input), format);
    let mut image_limits = image::Limits::default();
    image_limits.max_image_width = Some(probe.width);
    image_limits.max_image_height = Some(probe.height);
    let budget = limits
        .max_source_pixels
        .min(u64::from(probe.width) * u64::from(probe.height));
    image_limits.max_alloc = Some(budget.saturating_mul(8).saturating_add(16 << 20));
    reader.limits(image_limits);
    let mut decoder = reader.into_decoder().map_err(image_err)?;
    meta.icc = decoder
        .icc_profile()
        .ok()
        .flatten()
        .filter(|p| !p.is_empty());
    super::metadata::check_icc(meta.icc.as_deref())?;
    if let Ok(Some(exif)) = decoder.exif_metadata() {
        meta.orientation = orient::exif_orientation(&exif).unwrap_or(0);
    }
    if probe.format == SourceFormat::Tiff {
        // A TIFF file is its own EXIF structure: Orientation sits in its IFD0.
        meta.orientation = orient::exif_orientation(input).unwrap_or(meta.orientation);
    }
    let alpha = decoder.color_type().has_alpha();
    let img = DynamicImage::from_decoder(decoder).map_err(image_err)?;
    let (w, h) = (img.width(), img.height());
    Ok(if alpha {
        Raster::new(w, h, 4, img.into_rgba8().into_raw())
    } else {
        Raster::new(w, h, 3, img.into_rgb8().into_raw())
    })
}

/// An alpha channel that is 255 everywhere carries nothing: drop it (compacting in place) so
/// later steps and encoders treat the image as opaque.
pub(super) fn drop_opaque_alpha(img: Raster) -> Raster {
    if img.channels != 4 || img.data.chunks_exact(4).any(|p| p[3] != 255) {
        return img;
    }
    let Raster {
        width,
        height,
        mut data,
        ..
    } = img;
    let pixels = data.len() / 4;
    for i in 0..pixels {
        data.copy_within(i * 4..i * 4 + 3, i * 3);
    }
    data.truncate(pixels * 3);
    Raster::new(width, height, 3, data)
}
