//! The animation codecs: frames of an animated GIF or WebP decoded through the `image` crate
//! (with its allocation limits set from the probed canvas), GIF's frame-delay rule, and
//! libwebp's animation encoder. Knows frames and bytes; which requests animate, the work
//! budget and the per-frame steps are `steps/animated.rs`'s.

use super::context::Frame;
use super::encode;
use super::error::PipelineError;
use super::sniff::{Probe, SourceFormat};
use image::{AnimationDecoder, ImageDecoder};
use libwebp_sys as webp;
use std::ffi::{c_int, CStr};
use std::io::Cursor;

/// Browsers show GIF frames of 10 ms or less for 100 ms, a GIF-specific habit a WebP viewer
/// need not copy, so the GIF's effective timing is written out explicitly.
const GIF_MIN_DELAY_MS: u32 = 10;
const GIF_SHORT_DELAY_MS: u32 = 100;

/// The frames of an animated GIF or WebP, decoded lazily at full canvas size, with the loop
/// count (0 = forever) and the ICC profile the GIF carries (a WebP's comes from our own walker,
/// `metadata::webp`: image-webp allocates an `ICCP` chunk by the size its header claims before
/// reading it, and a 373-byte file asked for 1.5 GB).
pub(super) fn frames<'a>(
    input: &'a [u8],
    probe: &Probe,
    max_source_pixels: u64,
) -> Result<(image::Frames<'a>, u16, Option<Vec<u8>>), PipelineError> {
    Ok(match probe.format {
        SourceFormat::Gif => {
            let mut d =
                image::codecs::gif::GifDecoder::new(Cursor::new(input)).map_err(image_err)?;
            // The GIF reader has already read its ICC extension's sub-blocks: bounded by the
            // input.
            let icc = d.icc_profile().ok().flatten().filter(|p| !p.is_empty());
            super::metadata::check_icc(icc.as_deref())?;
            let (frames, loop_count) = open(d, probe, max_source_pixels)?;
            (frames, loop_count, icc)
        }
        SourceFormat::Webp => {
            let mut d =
                image::codecs::webp::WebPDecoder::new(Cursor::new(input)).map_err(image_err)?;
            // Browsers and libwebp start from a transparent canvas and ignore the ANIM chunk's
            // background colour; so does the still path (libwebp's first frame).
            d.set_background_color(image::Rgba([0, 0, 0, 0]))
                .map_err(image_err)?;
            // `ANMF` chunks without the `VP8X` animation flag: image-webp's frame reader
            // asserts the flag (a panic), so such a file is refused here.
            if !d.has_animation() {
                return Err(PipelineError::Undecodable(
                    "WebP animation frames without the animation flag".into(),
                ));
            }
            let (frames, loop_count) = open(d, probe, max_source_pixels)?;
            (frames, loop_count, None)
        }
        other => {
            return Err(PipelineError::Unsupported(format!(
                "animated {other:?} output"
            )))
        }
    })
}

/// Limits for the `image` decoders (canvas size, allocations a few canvases deep), then the
/// lazy frame iterator and the loop count.
fn open<'a, D: ImageDecoder + AnimationDecoder<'a>>(
    mut d: D,
    probe: &Probe,
    max_source_pixels: u64,
) -> Result<(image::Frames<'a>, u16), PipelineError> {
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(probe.width);
    limits.max_image_height = Some(probe.height);
    let canvas = max_source_pixels.min(u64::from(probe.width) * u64::from(probe.height));
    limits.max_alloc = Some(canvas.saturating_mul(16).saturating_add(16 << 20));
    d.set_limits(limits).map_err(image_err)?;
    let loop_count = match d.loop_count() {
        image::metadata::LoopCount::Infinite => 0,
        image::metadata::LoopCount::Finite(n) => u16::try_from(n.get()).unwrap_or(u16::MAX),
    };
    Ok((d.into_frames(), loop_count))
}

/// A frame's delay in whole milliseconds, with GIF's short-delay rule applied.
pub(super) fn delay_ms(frame: &image::Frame, source: SourceFormat) -> u32 {
    let (num, den) = frame.delay().numer_denom_ms();
    let ms = num / den.max(1);
    if source == SourceFormat::Gif && ms <= GIF_MIN_DELAY_MS {
        GIF_SHORT_DELAY_MS
    } else {
        ms
    }
}

/// Deletes a libwebp animation encoder on every return path.
struct AnimEncoder(*mut webp::WebPAnimEncoder);

impl Drop for AnimEncoder {
    fn drop(&mut self) {
        // SAFETY: the pointer came from WebPAnimEncoderNewInternal (non-null, checked) and is
        // deleted exactly once, here.
        unsafe { webp::WebPAnimEncoderDelete(self.0) }
    }
}

/// Frees a picture's libwebp-owned ARGB buffer on every return path.
struct Picture(webp::WebPPicture);

impl Drop for Picture {
    fn drop(&mut self) {
        // SAFETY: the picture was initialised by WebPPictureInit; freeing is idempotent.
        unsafe { webp::WebPPictureFree(&mut self.0) }
    }
}

/// Frees the assembled bitstream (libwebp-allocated) on every return path.
struct Assembled(webp::WebPData);

impl Drop for Assembled {
    fn drop(&mut self) {
        // SAFETY: `bytes` is null or was allocated by WebPAnimEncoderAssemble.
        unsafe { webp::WebPDataClear(&mut self.0) }
    }
}

/// libwebp's last error message for `enc`, for the `Encode` error text.
fn encoder_error(enc: &AnimEncoder, what: &str) -> PipelineError {
    // SAFETY: `enc.0` is a live encoder; the returned string (owned by it) is copied at once.
    let msg = unsafe {
        let p = webp::WebPAnimEncoderGetError(enc.0);
        if p.is_null() {
            String::new()
        } else {
            CStr::from_ptr(p).to_string_lossy().into_owned()
        }
    };
    PipelineError::Encode(format!("animated WebP {what}: {msg}"))
}

/// Lossy animated WebP through `WebPAnimEncoder`, which finds each frame's changed rectangle
/// and picks key frames itself. Frames must all have the same size (they do: one geometry).
pub(super) fn encode_animation(
    frames: &[Frame],
    loop_count: u16,
    quality: u8,
) -> Result<Vec<u8>, PipelineError> {
    let fail = |what: &str| PipelineError::Encode(format!("animated WebP: {what}"));
    let first = frames.first().ok_or_else(|| fail("no frames"))?;
    let (w, h) = (first.raster.width, first.raster.height);
    if w == 0 || h == 0 || w > encode::WEBP_MAX_DIMENSION || h > encode::WEBP_MAX_DIMENSION {
        return Err(fail(&format!("cannot encode {w}x{h}")));
    }
    let abi = webp::WEBP_MUX_ABI_VERSION as c_int;
    let mut opts = std::mem::MaybeUninit::<webp::WebPAnimEncoderOptions>::uninit();
    // SAFETY: the init function fills every field of `opts` and reports success (a version
    // mismatch returns 0, in which case `opts` is never read).
    let mut opts = unsafe {
        if webp::WebPAnimEncoderOptionsInitInternal(opts.as_mut_ptr(), abi) == 0 {
            return Err(fail("options init"));
        }
        opts.assume_init()
    };
    opts.anim_params.loop_count = c_int::from(loop_count);
    // Lossy frames only: mixed mode would also try lossless for every frame (twice the CPU).
    opts.allow_mixed = 0;
    opts.minimize_size = 0;
    opts.verbose = 0;
    // SAFETY: `opts` is initialised; w and h are within WebP's limits (checked above).
    let enc = AnimEncoder(unsafe {
        webp::WebPAnimEncoderNewInternal(w as c_int, h as c_int, &opts, abi)
    });
    if enc.0.is_null() {
        return Err(fail("encoder init"));
    }
    // Same settings as still WebP.
    let config = super::encode::webp_config(quality)?;
    let mut timestamp: u64 = 0;
    let ms = |t: u64| c_int::try_from(t).unwrap_or(c_int::MAX);
    for frame in frames {
        let img = &frame.raster;
        if (img.width, img.height) != (w, h) {
            return Err(fail("frames differ in size"));
        }
        let mut pic = Picture(webp::WebPPicture::new().map_err(|()| fail("picture init"))?);
        // The animation encoder works on ARGB; importing straight to it avoids a YUV trip.
        pic.0.use_argb = 1;
        pic.0.width = w as c_int;
        pic.0.height = h as c_int;
        super::encode::import_picture(&mut pic.0, img)?;
        // SAFETY: encoder, picture and config are live and initialised; the encoder copies
        // what it needs from the picture before returning.
        if unsafe { webp::WebPAnimEncoderAdd(enc.0, &mut pic.0, ms(timestamp), &config) } == 0 {
            return Err(encoder_error(&enc, "add frame"));
        }
        timestamp += u64::from(frame.duration_ms);
    }
    // A null frame closes the animation and sets the last frame's duration.
    // SAFETY: a null picture and config are the documented way to flush the encoder.
    let flushed = unsafe {
        webp::WebPAnimEncoderAdd(enc.0, std::ptr::null_mut(), ms(timestamp), std::ptr::null())
    };
    if flushed == 0 {
        return Err(encoder_error(&enc, "flush"));
    }
    let mut data = Assembled(webp::WebPData::default());
    // SAFETY: `data.0` is an empty out-struct; on success libwebp fills it with a buffer that
    // `Assembled` frees.
    if unsafe { webp::WebPAnimEncoderAssemble(enc.0, &mut data.0) } == 0 {
        return Err(encoder_error(&enc, "assemble"));
    }
    let mut out = Vec::new();
    out.try_reserve_exact(data.0.size)
        .map_err(|_| fail("cannot allocate the output"))?;
    if !data.0.bytes.is_null() {
        // SAFETY: on success `bytes` points to `size` initialised bytes owned by `data`.
        out.extend_from_slice(unsafe { std::slice::from_raw_parts(data.0.bytes, data.0.size) });
    }
    Ok(out)
}

pub(super) fn image_err(e: image::ImageError) -> PipelineError {
    match e {
        image::ImageError::Limits(e) => PipelineError::TooLarge(e.to_string()),
        image::ImageError::Unsupported(e) => PipelineError::Unsupported(e.to_string()),
        e => PipelineError::Undecodable(format!("animation: {e}")),
    }
}
