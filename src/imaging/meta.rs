//! What the steps need to know about a source beyond its pixels (orientation, ICC profile, the
//! Adobe marker, EXIF kept for `metadata=keep`...), read by each codec's header walk, and the
//! bound on ICC profiles.

use super::error::ImageError;

/// What the pixel steps need to know about a source beyond its pixels.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct SourceMeta {
    /// EXIF Orientation 1..=8; 0 when absent (treated as 1).
    pub orientation: u8,
    /// Embedded ICC profile, reassembled.
    pub icc: Option<Vec<u8>>,
    /// JPEG APP14 "Adobe" marker present: CMYK samples are stored inverted.
    pub adobe: bool,
    /// ANMF chunks in a WebP (0 for a still image).
    pub anim_frames: u32,
    /// The ICC profile was already applied (CMYK is converted while decoding).
    pub icc_applied: bool,
    /// The raw TIFF structure of the first EXIF block (without the `Exif\0\0` prefix), kept
    /// only for `metadata=copyright|keep`; `None` when absent or over `MAX_EXIF_BYTES`.
    pub exif: Option<Vec<u8>>,
    /// JPEG: bytes of the full-image coefficient buffer its decoder keeps whatever the scale
    /// (`Footprint::coefficient_bytes`); 0 for a single-scan sequential JPEG.
    pub coefficient_bytes: u64,
}

/// Largest ICC profile we accept (print profiles with large CLUTs reach 2-3 MB). Over it the
/// source is `TooLarge`: a PNG's `iCCP` is compressed, so without this bound a few kilobytes
/// would inflate to as much as the decoder's whole allocation budget, before a pixel.
pub(crate) const MAX_ICC_BYTES: usize = 8 << 20;

/// `TooLarge` when a profile is over [`MAX_ICC_BYTES`].
pub(crate) fn check_icc(icc: Option<&[u8]>) -> Result<(), ImageError> {
    match icc {
        Some(p) if p.len() > MAX_ICC_BYTES => Err(ImageError::TooLarge(format!(
            "ICC profile of {} bytes, limit {MAX_ICC_BYTES}",
            p.len()
        ))),
        _ => Ok(()),
    }
}
