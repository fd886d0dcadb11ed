//! WebP: the header's size (`WebPGetFeatures`) and metadata (our own RIFF walk: ICC, EXIF,
//! frame count), decoding through libwebp with its integer shrink-on-load (an animation's
//! first frame through its animation decoder), lossy encoding of still and animated pictures,
//! and the `EXIF` chunk written into an encoded file.

use super::animation::Frame;
use super::effort::Effort;
use super::error::ImageError;
use super::exif;
use super::format::{too_large, Probe};
use super::meta::SourceMeta;
use super::raster::{alloc_pixels, Raster};
use super::read::truncated;
use super::riff;
use libwebp_sys as webp;
use std::ffi::{c_int, c_void, CStr};

/// `WebPGetFeatures` parses only the RIFF/VP8X/VP8/VP8L headers.
pub(crate) fn size(input: &[u8]) -> Result<(u32, u32), ImageError> {
    let mut features = libwebp_sys::WebPBitstreamFeatures {
        width: 0,
        height: 0,
        has_alpha: 0,
        has_animation: 0,
        format: 0,
        pad: [0; 5],
    };
    // SAFETY: the pointer/length pair describes `input`; `features` is a plain out-struct.
    let status =
        unsafe { libwebp_sys::WebPGetFeatures(input.as_ptr(), input.len(), &mut features) };
    if status != libwebp_sys::VP8StatusCode::VP8_STATUS_OK {
        return Err(ImageError::Undecodable(format!("WebP header: {status:?}")));
    }
    let w = u32::try_from(features.width).map_err(|_| truncated("WebP"))?;
    let h = u32::try_from(features.height).map_err(|_| truncated("WebP"))?;
    Ok((w, h))
}

/// Walk RIFF chunks after the "WEBP" tag: ICCP, EXIF and the ANMF frame count. The last
/// `ICCP` and the last `EXIF` win; a chunk cut short reads as empty.
pub(crate) fn read_meta(input: &[u8]) -> SourceMeta {
    let mut meta = SourceMeta::default();
    for chunk in riff::chunks(input) {
        let data = chunk.data.unwrap_or(&[]);
        match &chunk.fourcc {
            b"ICCP" if !data.is_empty() => meta.icc = Some(data.to_vec()),
            b"EXIF" => {
                // Some writers keep the JPEG-style "Exif\0\0" prefix inside the chunk.
                let tiff = data.strip_prefix(b"Exif\0\0").unwrap_or(data);
                meta.orientation = exif::orientation(tiff).unwrap_or(0);
                meta.exif = exif::copy_bounded(tiff);
            }
            b"ANMF" => meta.anim_frames = meta.anim_frames.saturating_add(1),
            _ => {}
        }
    }
    meta
}

fn webp_err(what: &str, status: webp::VP8StatusCode) -> ImageError {
    ImageError::Undecodable(format!("WebP {what}: {status:?}"))
}

/// Still WebP through libwebp, shrunk on load by the integer factor `shrink` (1 = full size);
/// the geometry step then does the exact, higher-quality resize. An animated WebP gives its
/// first frame, full size.
pub(crate) fn decode(input: &[u8], probe: &Probe, shrink: u32) -> Result<Raster, ImageError> {
    let mut config = webp::WebPDecoderConfig::new()
        .map_err(|()| ImageError::Undecodable("WebP: decoder init failed".into()))?;
    // SAFETY: `input` is a valid slice; `config.input` is an out-struct owned by `config`.
    let status = unsafe { webp::WebPGetFeatures(input.as_ptr(), input.len(), &mut config.input) };
    if status != webp::VP8StatusCode::VP8_STATUS_OK {
        return Err(webp_err("header", status));
    }
    if config.input.has_animation != 0 {
        return decode_first_frame(input, probe);
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
fn decode_first_frame(input: &[u8], probe: &Probe) -> Result<Raster, ImageError> {
    let fail = |what: &str| ImageError::Undecodable(format!("animated WebP: {what}"));
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

/// WebP's format limit.
pub(crate) const WEBP_MAX_DIMENSION: u32 = 16383;

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
    // SAFETY: `custom_ptr` is the `Vec` set by `encode`, alive and exclusively ours for
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
struct PictureGuard(webp::WebPPicture);

impl Drop for PictureGuard {
    fn drop(&mut self) {
        // SAFETY: the picture was initialised by WebPPictureInit; freeing is idempotent.
        unsafe { webp::WebPPictureFree(&mut self.0) }
    }
}

/// The lossy WebP settings shared by still and animated output: `quality`, method 4 (libwebp's
/// default speed/size balance).
pub(crate) fn webp_config(quality: u8, effort: Effort) -> Result<webp::WebPConfig, ImageError> {
    let fail = |what: &str| ImageError::Encode(format!("WebP: {what}"));
    let mut config = webp::WebPConfig::new_with_preset(
        webp::WebPPreset::WEBP_PRESET_DEFAULT,
        f32::from(quality),
    )
    .map_err(|()| fail("config init"))?;
    config.method = match effort {
        Effort::Normal => 4,
        Effort::Fast => 1,
    };
    // SAFETY: `config` is an initialised config struct.
    if unsafe { webp::WebPValidateConfig(&config) } == 0 {
        return Err(fail("invalid config"));
    }
    Ok(config)
}

/// Copy `img`'s pixels into a libwebp picture whose width and height are already set to the
/// raster's; shared by still and animated WebP.
pub(crate) fn import_picture(pic: &mut webp::WebPPicture, img: &Raster) -> Result<(), ImageError> {
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
        return Err(ImageError::Encode("WebP: import failed".into()));
    }
    Ok(())
}

/// Lossy WebP (see [`webp_config`]), alpha kept when present.
pub(crate) fn encode(img: &Raster, quality: u8, effort: Effort) -> Result<Vec<u8>, ImageError> {
    let fail = |what: &str| ImageError::Encode(format!("WebP: {what}"));
    if img.width > WEBP_MAX_DIMENSION || img.height > WEBP_MAX_DIMENSION {
        return Err(fail("larger than 16383 pixels"));
    }
    let config = webp_config(quality, effort)?;
    let mut pic = PictureGuard(webp::WebPPicture::new().map_err(|()| fail("picture init"))?);
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

/// Deletes a libwebp animation encoder on every return path.
struct AnimEncoder(*mut webp::WebPAnimEncoder);

impl Drop for AnimEncoder {
    fn drop(&mut self) {
        // SAFETY: the pointer came from WebPAnimEncoderNewInternal (non-null, checked) and is
        // deleted exactly once, here.
        unsafe { webp::WebPAnimEncoderDelete(self.0) }
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
fn encoder_error(enc: &AnimEncoder, what: &str) -> ImageError {
    // SAFETY: `enc.0` is a live encoder; the returned string (owned by it) is copied at once.
    let msg = unsafe {
        let p = webp::WebPAnimEncoderGetError(enc.0);
        if p.is_null() {
            String::new()
        } else {
            CStr::from_ptr(p).to_string_lossy().into_owned()
        }
    };
    ImageError::Encode(format!("animated WebP {what}: {msg}"))
}

/// Lossy animated WebP through `WebPAnimEncoder`, which finds each frame's changed rectangle
/// and picks key frames itself. Frames must all have the same size (they do: one geometry).
pub(crate) fn encode_animation(
    frames: &[Frame],
    loop_count: u16,
    quality: u8,
    effort: Effort,
) -> Result<Vec<u8>, ImageError> {
    let fail = |what: &str| ImageError::Encode(format!("animated WebP: {what}"));
    let first = frames.first().ok_or_else(|| fail("no frames"))?;
    let (w, h) = (first.raster.width, first.raster.height);
    if w == 0 || h == 0 || w > WEBP_MAX_DIMENSION || h > WEBP_MAX_DIMENSION {
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
    let config = webp_config(quality, effort)?;
    let mut timestamp: u64 = 0;
    let ms = |t: u64| c_int::try_from(t).unwrap_or(c_int::MAX);
    for frame in frames {
        let img = &frame.raster;
        if (img.width, img.height) != (w, h) {
            return Err(fail("frames differ in size"));
        }
        let mut pic = PictureGuard(webp::WebPPicture::new().map_err(|()| fail("picture init"))?);
        // The animation encoder works on ARGB; importing straight to it avoids a YUV trip.
        pic.0.use_argb = 1;
        pic.0.width = w as c_int;
        pic.0.height = h as c_int;
        import_picture(&mut pic.0, img)?;
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

/// VP8X flag bits (WebP container spec).
const VP8X_ALPHA: u8 = 0x10;

const VP8X_EXIF: u8 = 0x08;

/// WebP: simple `VP8 `/`VP8L` files become extended (`VP8X` first, EXIF flag set, canvas
/// size read from the bitstream); an existing `VP8X` just gets the flag. The `EXIF` chunk
/// (raw TIFF, no `Exif\0\0` prefix) goes after the image data and before any `XMP `, the
/// order the container spec asks for; the RIFF size is recomputed.
pub(crate) fn write_exif(webp: &[u8], tiff: &[u8]) -> Result<Vec<u8>, String> {
    if webp.get(0..4) != Some(&b"RIFF"[..]) || webp.get(8..12) != Some(&b"WEBP"[..]) {
        return Err("not a RIFF WebP".into());
    }
    let chunks = riff::tiled(webp).ok_or("malformed RIFF chunks")?;
    let first = chunks.first().ok_or("no chunks")?;
    if chunks.iter().any(|c| c.fourcc == *b"EXIF") {
        return Ok(webp.to_vec());
    }
    let chunk_len = u32::try_from(tiff.len()).map_err(|_| "EXIF too large")?;
    let mut exif_chunk = Vec::with_capacity(tiff.len() + 9);
    exif_chunk.extend_from_slice(b"EXIF");
    exif_chunk.extend_from_slice(&chunk_len.to_le_bytes());
    exif_chunk.extend_from_slice(tiff);
    if tiff.len() % 2 == 1 {
        exif_chunk.push(0);
    }
    let insert_at = chunks
        .iter()
        .find(|c| c.fourcc == *b"XMP ")
        .map_or(webp.len(), |c| c.at);
    let mut out = Vec::with_capacity(webp.len() + exif_chunk.len() + 18);
    out.extend_from_slice(&webp[..12]);
    match &first.fourcc {
        b"VP8X" => {
            out.extend_from_slice(&webp[12..insert_at]);
            // Flags byte right after the VP8X chunk header; present since the chunk parsed.
            let flags = out.get_mut(20).ok_or("short VP8X")?;
            *flags |= VP8X_EXIF;
        }
        b"VP8 " | b"VP8L" => {
            let data = first.data.ok_or("short chunk")?;
            let (w, h, alpha) = if first.fourcc == *b"VP8 " {
                vp8_size(data)
            } else {
                vp8l_size(data)
            }
            .ok_or("unreadable bitstream header")?;
            out.extend_from_slice(b"VP8X");
            out.extend_from_slice(&10u32.to_le_bytes());
            out.push(VP8X_EXIF | if alpha { VP8X_ALPHA } else { 0 });
            out.extend_from_slice(&[0, 0, 0]);
            out.extend_from_slice(&(w - 1).to_le_bytes()[..3]);
            out.extend_from_slice(&(h - 1).to_le_bytes()[..3]);
            out.extend_from_slice(&webp[12..insert_at]);
        }
        other => return Err(format!("unexpected first chunk {other:?}")),
    }
    out.extend_from_slice(&exif_chunk);
    out.extend_from_slice(&webp[insert_at..]);
    let riff = u32::try_from(out.len() - 8).map_err(|_| "file too large for RIFF")?;
    out[4..8].copy_from_slice(&riff.to_le_bytes());
    Ok(out)
}

/// Lossy VP8 key frame: 3-byte frame tag, start code 9d 01 2a, then 14-bit width and height.
fn vp8_size(data: &[u8]) -> Option<(u32, u32, bool)> {
    if data.get(3..6)? != [0x9D, 0x01, 0x2A] {
        return None;
    }
    let w = u32::from(u16::from_le_bytes([*data.get(6)?, *data.get(7)?]) & 0x3FFF);
    let h = u32::from(u16::from_le_bytes([*data.get(8)?, *data.get(9)?]) & 0x3FFF);
    (w > 0 && h > 0).then_some((w, h, false))
}

/// Lossless VP8L: signature 0x2f, then width-1 and height-1 (14 bits each) and the alpha bit.
fn vp8l_size(data: &[u8]) -> Option<(u32, u32, bool)> {
    if *data.first()? != 0x2F {
        return None;
    }
    let b = data.get(1..5)?;
    let bits = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
    Some((
        (bits & 0x3FFF) + 1,
        ((bits >> 14) & 0x3FFF) + 1,
        (bits >> 28) & 1 == 1,
    ))
}
