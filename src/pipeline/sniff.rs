//! Sniff and probe: name the container by its magic bytes and read its size and frame
//! count from the header. Owns format detection and the source-size limits. Must not decode
//! pixels or allocate in proportion to the claimed image size: everything here is bounded by
//! the input length, so a hostile header costs nothing before `TooLarge` is returned.

use super::error::PipelineError;
use super::limits::Limits;
use super::metadata::{self, SourceMeta};
use super::{avif_decode, heif};
use std::io::Cursor;

/// A source container we can decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SourceFormat {
    Jpeg,
    Png,
    Gif,
    Webp,
    Bmp,
    Tiff,
    Avif,
}

/// What the header says, before any pixel is decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Probe {
    pub format: SourceFormat,
    /// Stored (not EXIF-rotated) size in pixels.
    pub width: u32,
    pub height: u32,
    /// Frames in an animation; 1 for a still image.
    pub frames: u32,
}

/// Sniff, read the header and enforce `limits`; also returns the metadata (EXIF orientation,
/// ICC, Adobe marker) of containers we walk ourselves (JPEG, WebP, AVIF).
pub(super) fn probe_with_meta(
    input: &[u8],
    limits: &Limits,
) -> Result<(Probe, SourceMeta), PipelineError> {
    let format = sniff(input)?;
    let mut meta = SourceMeta::default();
    let (width, height, frames) = match format {
        SourceFormat::Jpeg => {
            meta = metadata::jpeg(input);
            let (w, h) = jpeg_size(input)?;
            (w, h, 1)
        }
        SourceFormat::Png => png_header(input)?,
        SourceFormat::Gif => gif_header(input, limits)?,
        SourceFormat::Webp => {
            meta = metadata::webp(input);
            let (w, h) = webp_size(input)?;
            (w, h, meta.anim_frames.max(1))
        }
        SourceFormat::Bmp => image_crate_size(input, image::ImageFormat::Bmp)?,
        SourceFormat::Tiff => image_crate_size(input, image::ImageFormat::Tiff)?,
        SourceFormat::Avif => {
            let (w, h, avif_meta) = avif_decode::probe(input)?;
            meta = avif_meta;
            (w, h, 1)
        }
    };
    metadata::check_icc(meta.icc.as_deref())?;
    if width == 0 || height == 0 {
        return Err(PipelineError::Undecodable(format!(
            "{format:?} header says {width}x{height}"
        )));
    }
    let pixels = u64::from(width) * u64::from(height);
    if pixels > limits.max_source_pixels {
        return Err(PipelineError::TooLarge(format!(
            "source is {width}x{height} = {pixels} pixels, limit {}",
            limits.max_source_pixels
        )));
    }
    if frames > limits.max_animation_frames {
        return Err(PipelineError::TooLarge(format!(
            "animation has more than {} frames",
            limits.max_animation_frames
        )));
    }
    Ok((
        Probe {
            format,
            width,
            height,
            frames,
        },
        meta,
    ))
}

/// Name the container from its first bytes. Anything we do not decode is `Unsupported`,
/// including HEIC and other HEIF brands that are not AVIF, which we recognise but have no
/// decoder for.
pub fn sniff(input: &[u8]) -> Result<SourceFormat, PipelineError> {
    let head = |n: usize| input.get(..n).unwrap_or(&[]);
    if head(3) == [0xFF, 0xD8, 0xFF] {
        return Ok(SourceFormat::Jpeg);
    }
    if head(8) == b"\x89PNG\r\n\x1a\n" {
        return Ok(SourceFormat::Png);
    }
    if head(6) == b"GIF87a" || head(6) == b"GIF89a" {
        return Ok(SourceFormat::Gif);
    }
    if head(4) == b"RIFF" && input.get(8..12) == Some(&b"WEBP"[..]) {
        return Ok(SourceFormat::Webp);
    }
    if head(4) == b"II*\0" || head(4) == b"MM\0*" {
        return Ok(SourceFormat::Tiff);
    }
    // "BM" alone is too weak (any text may start so): also require a known DIB header size.
    if head(2) == b"BM"
        && matches!(
            read_u32_le(input, 14),
            Some(12 | 40 | 52 | 56 | 64 | 108 | 124)
        )
    {
        return Ok(SourceFormat::Bmp);
    }
    if heif::is_avif(input) {
        return Ok(SourceFormat::Avif);
    }
    if input.get(4..8) == Some(&b"ftyp"[..]) {
        let brand = input
            .get(8..12)
            .map(String::from_utf8_lossy)
            .unwrap_or_default();
        return Err(PipelineError::Unsupported(format!(
            "ISO-BMFF image (brand {brand:?}: HEIF but not AVIF), no decoder"
        )));
    }
    Err(PipelineError::Unsupported(describe_unknown(input)))
}

/// A short, log-safe description of bytes we do not recognise.
fn describe_unknown(input: &[u8]) -> String {
    let text = String::from_utf8_lossy(input.get(..256).unwrap_or(input)).to_ascii_lowercase();
    if text.contains("<svg") || text.contains("<?xml") {
        "SVG/XML".to_string()
    } else if input.is_empty() {
        "empty body".to_string()
    } else {
        let n = input.len().min(8);
        format!("unknown signature {:02x?}", &input[..n])
    }
}

fn read_u32_le(b: &[u8], at: usize) -> Option<u32> {
    let s = b.get(at..at.checked_add(4)?)?;
    Some(u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
}

fn read_u32_be(b: &[u8], at: usize) -> Option<u32> {
    let s = b.get(at..at.checked_add(4)?)?;
    Some(u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
}

fn read_u16_le(b: &[u8], at: usize) -> Option<u16> {
    let s = b.get(at..at.checked_add(2)?)?;
    Some(u16::from_le_bytes([s[0], s[1]]))
}

fn truncated(what: &str) -> PipelineError {
    PipelineError::Undecodable(format!("{what}: truncated or corrupt header"))
}

/// libjpeg-turbo reads SOF without touching entropy-coded data.
fn jpeg_size(input: &[u8]) -> Result<(u32, u32), PipelineError> {
    let header = turbojpeg::read_header(input)
        .map_err(|e| PipelineError::Undecodable(format!("JPEG header: {e}")))?;
    let w = u32::try_from(header.width).map_err(|_| truncated("JPEG"))?;
    let h = u32::try_from(header.height).map_err(|_| truncated("JPEG"))?;
    Ok((w, h))
}

/// IHDR must be the first chunk; an APNG's `acTL` (frame count) must come before IDAT.
fn png_header(input: &[u8]) -> Result<(u32, u32, u32), PipelineError> {
    if read_u32_be(input, 8) != Some(13) || input.get(12..16) != Some(&b"IHDR"[..]) {
        return Err(truncated("PNG"));
    }
    let w = read_u32_be(input, 16).ok_or_else(|| truncated("PNG"))?;
    let h = read_u32_be(input, 20).ok_or_else(|| truncated("PNG"))?;
    let mut frames = 1;
    let mut pos: usize = 8;
    // Bounded walk: each chunk advances at least 12 bytes and stops at the end of input.
    while let (Some(len), Some(kind)) = (read_u32_be(input, pos), input.get(pos + 4..pos + 8)) {
        if kind == b"IDAT" {
            break;
        }
        if kind == b"acTL" {
            frames = read_u32_be(input, pos + 8).unwrap_or(1).max(1);
            break;
        }
        if kind == b"iCCP" {
            let end = (pos + 8).saturating_add(len as usize).min(input.len());
            iccp_within_limit(input.get(pos + 8..end).unwrap_or(&[]))?;
        }
        match pos
            .checked_add(12)
            .and_then(|p| p.checked_add(len as usize))
        {
            Some(next) if next <= input.len() => pos = next,
            _ => break,
        }
    }
    Ok((w, h, frames))
}

/// An `iCCP` chunk's profile must inflate to at most `MAX_ICC_BYTES`: inflated here into a
/// small scratch window and counted, so a compressed profile that expands to gigabytes costs
/// at most that much CPU and no memory. A corrupt stream is left to the decoder (which ignores
/// a bad `iCCP`, as browsers do).
fn iccp_within_limit(data: &[u8]) -> Result<(), PipelineError> {
    // Keyword (1-79 bytes), NUL, compression method, then the zlib stream.
    let Some(nul) = data.iter().take(80).position(|&b| b == 0) else {
        return Ok(());
    };
    let mut stream = data.get(nul + 2..).unwrap_or(&[]);
    let mut inflate = flate2::Decompress::new(true);
    let mut window = [0u8; 16 * 1024];
    loop {
        let before = (inflate.total_in(), inflate.total_out());
        let status = inflate.decompress(stream, &mut window, flate2::FlushDecompress::Finish);
        if inflate.total_out() > metadata::MAX_ICC_BYTES as u64 {
            return Err(PipelineError::TooLarge(format!(
                "PNG iCCP inflates past {} bytes",
                metadata::MAX_ICC_BYTES
            )));
        }
        let used = (inflate.total_in() - before.0) as usize;
        stream = stream.get(used..).unwrap_or(&[]);
        let stalled = (inflate.total_in(), inflate.total_out()) == before;
        match status {
            Ok(flate2::Status::StreamEnd) | Err(_) => return Ok(()),
            Ok(_) if stalled => return Ok(()),
            Ok(_) => {}
        }
    }
}

/// Logical screen size, and the number of image descriptors counted by skipping data
/// sub-blocks (no LZW decoding). Counting stops once the limit is exceeded.
fn gif_header(input: &[u8], limits: &Limits) -> Result<(u32, u32, u32), PipelineError> {
    let w = read_u16_le(input, 6).ok_or_else(|| truncated("GIF"))?;
    let h = read_u16_le(input, 8).ok_or_else(|| truncated("GIF"))?;
    let packed = *input.get(10).ok_or_else(|| truncated("GIF"))?;
    let mut pos = 13usize;
    if packed & 0x80 != 0 {
        pos += 3 << ((packed & 7) + 1);
    }
    let mut frames = 0u32;
    while let Some(&block) = input.get(pos) {
        match block {
            0x2C => {
                frames += 1;
                if frames > limits.max_animation_frames {
                    break;
                }
                let Some(&local) = input.get(pos + 9) else {
                    break;
                };
                pos += 10;
                if local & 0x80 != 0 {
                    pos += 3 << ((local & 7) + 1);
                }
                pos = skip_sub_blocks(input, pos + 1);
            }
            0x21 => pos = skip_sub_blocks(input, pos + 2),
            _ => break, // 0x3B trailer, or garbage: the decoder judges the rest
        }
    }
    Ok((u32::from(w), u32::from(h), frames.max(1)))
}

/// Skip a chain of GIF data sub-blocks (length byte + data, ended by a zero length).
fn skip_sub_blocks(input: &[u8], mut pos: usize) -> usize {
    while let Some(&n) = input.get(pos) {
        pos += 1 + usize::from(n);
        if n == 0 {
            break;
        }
    }
    pos
}

/// `WebPGetFeatures` parses only the RIFF/VP8X/VP8/VP8L headers.
fn webp_size(input: &[u8]) -> Result<(u32, u32), PipelineError> {
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
        return Err(PipelineError::Undecodable(format!(
            "WebP header: {status:?}"
        )));
    }
    let w = u32::try_from(features.width).map_err(|_| truncated("WebP"))?;
    let h = u32::try_from(features.height).map_err(|_| truncated("WebP"))?;
    Ok((w, h))
}

/// BMP and TIFF headers through the `image` crate, which reads only the header here.
fn image_crate_size(
    input: &[u8],
    format: image::ImageFormat,
) -> Result<(u32, u32, u32), PipelineError> {
    let reader = image::ImageReader::with_format(Cursor::new(input), format);
    let (w, h) = reader
        .into_dimensions()
        .map_err(|e| PipelineError::Undecodable(format!("{format:?} header: {e}")))?;
    Ok((w, h, 1))
}
