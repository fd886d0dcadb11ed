//! The container formats we read, named by their magic bytes (`sniff`), and what a header says
//! before any pixel is decoded (`Probe`).

use super::error::ImageError;
use super::read::read_u32_le;

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
    /// Rasterised by resvg (`imaging::svg`).
    Svg,
    /// HEIF that is not AVIF (HEIC from phones), decoded by libheif (`imaging::heic`).
    Heic,
}

impl SourceFormat {
    /// The media type a file of this format is served as.
    pub fn mime(self) -> &'static str {
        match self {
            SourceFormat::Jpeg => "image/jpeg",
            SourceFormat::Png => "image/png",
            SourceFormat::Gif => "image/gif",
            SourceFormat::Webp => "image/webp",
            SourceFormat::Bmp => "image/bmp",
            SourceFormat::Tiff => "image/tiff",
            SourceFormat::Avif => "image/avif",
            SourceFormat::Svg => "image/svg+xml",
            SourceFormat::Heic => "image/heic",
        }
    }
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

/// Name the container from its first bytes. Anything we do not decode is `Unsupported`,
/// including ISO-BMFF files of no image brand we know (MP4 video, say).
pub fn sniff(input: &[u8]) -> Result<SourceFormat, ImageError> {
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
    if super::avif::is_avif(input) {
        return Ok(SourceFormat::Avif);
    }
    if super::heic::is_heic(input) {
        // A HEIF file may hold AV1 pictures without AVIF's brands: our own AV1 decoder reads
        // them, and libheif only ever decodes HEVC (`imaging::heic`).
        if super::avif::holds_av1(input) {
            return Ok(SourceFormat::Avif);
        }
        return Ok(SourceFormat::Heic);
    }
    if super::svg::is_svg(input) {
        return Ok(SourceFormat::Svg);
    }
    if input.get(4..8) == Some(&b"ftyp"[..]) {
        let brand = input
            .get(8..12)
            .map(String::from_utf8_lossy)
            .unwrap_or_default();
        return Err(ImageError::Unsupported(format!(
            "ISO-BMFF file of brand {brand:?}: neither AVIF nor HEIF"
        )));
    }
    Err(ImageError::Unsupported(describe_unknown(input)))
}

/// A short, log-safe description of bytes we do not recognise.
fn describe_unknown(input: &[u8]) -> String {
    let text = String::from_utf8_lossy(input.get(..256).unwrap_or(input)).to_ascii_lowercase();
    if text.contains("<?xml") || text.contains("<svg") {
        "XML whose root element is not <svg>".to_string()
    } else if input.is_empty() {
        "empty body".to_string()
    } else {
        let n = input.len().min(8);
        format!("unknown signature {:02x?}", &input[..n])
    }
}

/// `TooLarge` for a picture whose pixels do not fit in memory.
pub(crate) fn too_large(probe: &Probe) -> ImageError {
    ImageError::TooLarge(format!(
        "{}x{} does not fit in memory",
        probe.width, probe.height
    ))
}
