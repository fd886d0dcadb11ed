//! Animated output: an animated GIF or WebP source served as an animated WebP. Owns the
//! decision (`wanted`), decoding every frame, putting each frame through the same per-frame
//! work as the still path (colour, orientation, rotate/flip, fit, effects), the work budget,
//! and libwebp's animation encoder. Must not change what the still steps do, must not encode
//! any other animated format (no animated AVIF/PNG), and must never keep full-size source
//! frames around: each frame is shrunk to its output size as soon as it is decoded.
//!
//! Budget (both counted in pixel-frames, frames x pixels per frame):
//! - source side, `MAX_SOURCE_PIXEL_FRAMES`, from the probe before anything is decoded;
//! - output side, `MAX_OUTPUT_PIXEL_FRAMES`, once the first frame shows the output size.
//!
//! Over either budget the request falls back to the first frame as a still image (what every
//! animated source got before this module existed) instead of failing: a CDN should answer
//! with a picture, and the fallback costs one frame. `max_animation_frames` stays a hard
//! `TooLarge`, enforced by the probe and again while decoding.

use super::decode::drop_opaque_alpha;
use super::pipeline::Ctx;
use super::raster::Raster;
use super::sniff::{Probe, SourceFormat};
use super::{color, effects, encode, geometry, orient, PipelineError};
use crate::spec::{Accepts, FormatRequest, OutputFormat};
use image::{AnimationDecoder, ImageDecoder};
use libwebp_sys as webp;
use std::ffi::{c_int, CStr};
use std::io::Cursor;

/// Decoding work we accept for one animation: 200 M pixel-frames is e.g. 500 frames of
/// 640x625, about 1-2 s of GIF decoding on one core.
pub(super) const MAX_SOURCE_PIXEL_FRAMES: u64 = 200_000_000;

/// Output work (resize + WebP encode) and memory (output frames are held until the encoder
/// runs, 4 bytes a pixel at most, so 400 MB worst case) we accept for one animation.
pub(super) const MAX_OUTPUT_PIXEL_FRAMES: u64 = 100_000_000;

/// Browsers show GIF frames of 10 ms or less for 100 ms, a GIF-specific habit a WebP viewer
/// need not copy, so the GIF's effective timing is written out explicitly.
const GIF_MIN_DELAY_MS: u32 = 10;
const GIF_SHORT_DELAY_MS: u32 = 100;

/// One output frame and how long it is shown.
pub(super) struct Frame {
    pub raster: Raster,
    pub duration_ms: u32,
}

/// The frames `decode_step` leaves for `encode_step`, already at their output size.
pub(super) struct Animation {
    pub frames: Vec<Frame>,
    /// As the `image` decoder reports it (a GIF's NETSCAPE count passes through unchanged,
    /// a GIF without one loops); 0 = forever, as in WebP's ANIM chunk.
    pub loop_count: u16,
}

/// True when this request takes the animated path: an animated GIF/WebP source, `anim` on,
/// an output that will be WebP, and a source within the decoding budget.
pub(super) fn wanted(ctx: &Ctx<'_>) -> Result<bool, PipelineError> {
    wanted_within(ctx, MAX_SOURCE_PIXEL_FRAMES)
}

/// `wanted` with the source budget as a parameter, so tests can exercise the fallback.
pub(super) fn wanted_within(ctx: &Ctx<'_>, budget: u64) -> Result<bool, PipelineError> {
    let probe = ctx.probe()?;
    if probe.frames <= 1
        || !ctx.spec.anim
        || !matches!(probe.format, SourceFormat::Gif | SourceFormat::Webp)
        || !animates_as_webp(ctx.spec.format, ctx.accepts, probe.format)
    {
        return Ok(false);
    }
    let work = u64::from(probe.frames) * u64::from(probe.width) * u64::from(probe.height);
    if work > budget {
        log::debug!("animation of {work} pixel-frames over budget {budget}: first frame only");
        return Ok(false);
    }
    Ok(true)
}

/// The output format for an animated source is WebP whenever the client may get WebP: asked
/// for it, negotiated it (preferred over AVIF here, as we do not encode animated AVIF), or
/// left `format` out on a WebP source. Every other request keeps the still path's choice; a
/// client that accepts AVIF but not WebP gets a still AVIF rather than a format it refused.
pub(super) fn animates_as_webp(
    request: FormatRequest,
    accepts: Accepts,
    source: SourceFormat,
) -> bool {
    match request {
        FormatRequest::Fixed(f) => f == OutputFormat::Webp,
        FormatRequest::Auto => accepts.webp,
        FormatRequest::Original => source == SourceFormat::Webp,
    }
}

/// Animated step 1: decode every frame and take each straight to its output size. Its
/// timing includes the per-frame resize and effects, which cannot be separated from decoding
/// without holding full-size frames.
pub(super) fn decode_step(ctx: &mut Ctx<'_>) -> Result<(), PipelineError> {
    decode_within(ctx, MAX_OUTPUT_PIXEL_FRAMES)
}

/// `decode_step` with the output budget as a parameter, so tests can exercise the fallback.
pub(super) fn decode_within(ctx: &mut Ctx<'_>, budget: u64) -> Result<(), PipelineError> {
    let probe = ctx.probe()?;
    let input = ctx.input;
    let (frames, loop_count, icc) = match probe.format {
        SourceFormat::Gif => {
            let mut d =
                image::codecs::gif::GifDecoder::new(Cursor::new(input)).map_err(image_err)?;
            // The GIF reader has already read its ICC extension's sub-blocks: bounded by the
            // input.
            let icc = d.icc_profile().ok().flatten().filter(|p| !p.is_empty());
            super::metadata::check_icc(icc.as_deref())?;
            let (frames, loop_count) = open(d, &probe, ctx.limits.max_source_pixels)?;
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
            // Not image-webp's ICC: it allocates an `ICCP` chunk by the size the chunk header
            // claims before reading it (a 373-byte file asked for 1.5 GB); the profile our
            // own bounded walker found (`metadata::webp`, in `ctx.meta`) is used instead.
            let (frames, loop_count) = open(d, &probe, ctx.limits.max_source_pixels)?;
            (frames, loop_count, None)
        }
        other => {
            return Err(PipelineError::Unsupported(format!(
                "animated {other:?} output"
            )))
        }
    };
    let icc = ctx.meta.icc.clone().or(icc);
    let canvas = u64::from(probe.width) * u64::from(probe.height);
    let mut out: Vec<Frame> = Vec::new();
    for (i, frame) in frames.enumerate() {
        let n = i as u64 + 1;
        if n > u64::from(ctx.limits.max_animation_frames) {
            return Err(PipelineError::TooLarge(format!(
                "animation has more than {} frames",
                ctx.limits.max_animation_frames
            )));
        }
        if n * canvas > MAX_SOURCE_PIXEL_FRAMES {
            return Err(PipelineError::TooLarge(
                "animation decodes to more frames than its header counted".into(),
            ));
        }
        let frame = match frame {
            Ok(f) => f,
            // Like a browser, play what decodes: a broken later frame ends the animation.
            Err(e) if !out.is_empty() => {
                log::debug!("animation cut at frame {n}: {e}");
                break;
            }
            Err(e) => return Err(image_err(e)),
        };
        let duration_ms = delay_ms(&frame, probe.format);
        let buffer = frame.into_buffer();
        if buffer.dimensions() != (probe.width, probe.height) {
            return Err(PipelineError::Undecodable(
                "animation frame differs from its canvas".into(),
            ));
        }
        let raster = Raster::new(probe.width, probe.height, 4, buffer.into_raw());
        let raster = per_frame(raster, ctx, icc.as_deref())?;
        let output_work =
            u64::from(raster.width) * u64::from(raster.height) * u64::from(probe.frames);
        out.push(Frame {
            raster,
            duration_ms,
        });
        if n == 1 && output_work > budget {
            log::debug!("animated output of {output_work} pixel-frames over {budget}: still");
            break;
        }
    }
    if out.is_empty() {
        return Err(PipelineError::Undecodable(
            "animation without frames".into(),
        ));
    }
    ctx.meta.icc_applied = true;
    ctx.animation = Some(Animation {
        frames: out,
        loop_count,
    });
    Ok(())
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

/// The still path's per-image steps, in the same order, for one full-canvas RGBA frame.
fn per_frame(mut img: Raster, ctx: &Ctx<'_>, icc: Option<&[u8]>) -> Result<Raster, PipelineError> {
    if let Some(icc) = icc {
        color::to_srgb(&mut img, icc);
    }
    if (2..=8).contains(&ctx.meta.orientation) {
        img = orient::apply(img, ctx.meta.orientation);
    }
    img = geometry::rotate_flip(img, ctx.spec);
    // Frames are decoded at full size, so the frame itself is the upright original `fit`
    // sizes from (no shrink-on-load here).
    img = geometry::fit(img, ctx.spec, ctx.limits)?;
    img = effects::apply(img, ctx.spec);
    // An opaque frame held as RGB costs a quarter less memory until it is encoded.
    Ok(drop_opaque_alpha(img))
}

/// A frame's delay in whole milliseconds, with GIF's short-delay rule applied.
fn delay_ms(frame: &image::Frame, source: SourceFormat) -> u32 {
    let (num, den) = frame.delay().numer_denom_ms();
    let ms = num / den.max(1);
    if source == SourceFormat::Gif && ms <= GIF_MIN_DELAY_MS {
        GIF_SHORT_DELAY_MS
    } else {
        ms
    }
}

/// Animated step 2: encode the frames as an animated WebP (one frame left by the budget
/// fallback: a still WebP). Leaves the first frame in `ctx.raster` for the reported size.
pub(super) fn encode_step(ctx: &mut Ctx<'_>) -> Result<(), PipelineError> {
    let anim = ctx
        .animation
        .take()
        .ok_or_else(|| PipelineError::Encode("internal: no frames decoded".into()))?;
    let quality = encode::encoder_quality(OutputFormat::Webp, ctx.spec.quality);
    ctx.output = if anim.frames.len() == 1 {
        encode::encode(&anim.frames[0].raster, OutputFormat::Webp, ctx.spec)?
    } else {
        encode_animation(&anim.frames, anim.loop_count, quality)?
    };
    ctx.format = Some(OutputFormat::Webp);
    ctx.raster = anim
        .frames
        .into_iter()
        .next()
        .map(|f| f.raster)
        .ok_or_else(|| PipelineError::Encode("animation without frames".into()))?;
    Ok(())
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

fn image_err(e: image::ImageError) -> PipelineError {
    match e {
        image::ImageError::Limits(e) => PipelineError::TooLarge(e.to_string()),
        image::ImageError::Unsupported(e) => PipelineError::Unsupported(e.to_string()),
        e => PipelineError::Undecodable(format!("animation: {e}")),
    }
}
