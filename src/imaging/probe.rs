//! The probe: name the container and read its header through the codec that owns it. Must not
//! decode pixels or allocate in proportion to the claimed image size: everything here is
//! bounded by the input length, so a hostile header costs nothing before an error.

use super::error::ImageError;
use super::format::{sniff, Probe, SourceFormat};
use super::meta::{check_icc, SourceMeta};
use super::{avif, gif, heic, jpeg, png, svg, via_image, webp};

/// Sniff and read the header: format, stored size, frames (a GIF's counted up to one past
/// `max_frames`), and the metadata (EXIF orientation, ICC, Adobe marker) of containers we walk
/// ourselves (JPEG, WebP, AVIF) or libheif walks (HEIC). Refuses a zero size and an ICC profile over the limit; the
/// caller checks the size and frame count against its own limits.
pub(crate) fn probe(input: &[u8], max_frames: u32) -> Result<(Probe, SourceMeta), ImageError> {
    let format = sniff(input)?;
    let mut meta = SourceMeta::default();
    let (width, height, frames) = match format {
        SourceFormat::Jpeg => {
            meta = jpeg::read_meta(input);
            let (w, h) = jpeg::size(input)?;
            (w, h, 1)
        }
        SourceFormat::Png => png::header(input)?,
        SourceFormat::Gif => gif::header(input, max_frames)?,
        SourceFormat::Webp => {
            meta = webp::read_meta(input);
            let (w, h) = webp::size(input)?;
            (w, h, meta.anim_frames.max(1))
        }
        SourceFormat::Bmp => via_image::size(input, image::ImageFormat::Bmp)?,
        SourceFormat::Tiff => via_image::size(input, image::ImageFormat::Tiff)?,
        SourceFormat::Svg => {
            let (w, h) = svg::size(input)?;
            (w, h, 1)
        }
        SourceFormat::Avif => {
            let (w, h, avif_meta) = avif::probe(input)?;
            meta = avif_meta;
            (w, h, 1)
        }
        SourceFormat::Heic => {
            let (w, h, heic_meta) = heic::probe(input)?;
            meta = heic_meta;
            (w, h, 1)
        }
    };
    check_icc(meta.icc.as_deref())?;
    if width == 0 || height == 0 {
        return Err(ImageError::Undecodable(format!(
            "{format:?} header says {width}x{height}"
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
