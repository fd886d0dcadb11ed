//! The formats decoded through the `image` crate: PNG, GIF (still), BMP and TIFF, with its
//! limits set from the probed size so it never allocates more than the picture needs; BMP and
//! TIFF headers read through it too.

use super::error::ImageError;
use super::exif;
use super::format::{Probe, SourceFormat};
use super::meta::{check_icc, SourceMeta};
use super::raster::Raster;
use image::{DynamicImage, ImageDecoder};
use std::io::Cursor;

/// BMP and TIFF headers through the `image` crate, which reads only the header here.
pub(crate) fn size(
    input: &[u8],
    format: image::ImageFormat,
) -> Result<(u32, u32, u32), ImageError> {
    let reader = image::ImageReader::with_format(Cursor::new(input), format);
    let (w, h) = reader
        .into_dimensions()
        .map_err(|e| ImageError::Undecodable(format!("{format:?} header: {e}")))?;
    Ok((w, h, 1))
}

fn image_err(e: image::ImageError) -> ImageError {
    match e {
        image::ImageError::Limits(e) => ImageError::TooLarge(e.to_string()),
        image::ImageError::Unsupported(e) => ImageError::Unsupported(e.to_string()),
        e => ImageError::Undecodable(e.to_string()),
    }
}

/// PNG, GIF, BMP and TIFF through the `image` crate, with limits set from the probed size so
/// the decoder refuses to allocate more than that picture needs (at 16 bits, RGBA).
pub(crate) fn decode(
    input: &[u8],
    probe: &Probe,
    meta: &mut SourceMeta,
    max_pixels: u64,
) -> Result<Raster, ImageError> {
    let format = match probe.format {
        SourceFormat::Png => image::ImageFormat::Png,
        SourceFormat::Gif => image::ImageFormat::Gif,
        SourceFormat::Bmp => image::ImageFormat::Bmp,
        SourceFormat::Tiff => image::ImageFormat::Tiff,
        other => {
            return Err(ImageError::Unsupported(format!(
                "{other:?} via image crate"
            )))
        }
    };
    let mut reader = image::ImageReader::with_format(Cursor::new(input), format);
    let mut image_limits = image::Limits::default();
    image_limits.max_image_width = Some(probe.width);
    image_limits.max_image_height = Some(probe.height);
    let budget = max_pixels.min(u64::from(probe.width) * u64::from(probe.height));
    image_limits.max_alloc = Some(budget.saturating_mul(8).saturating_add(16 << 20));
    reader.limits(image_limits);
    let mut decoder = reader.into_decoder().map_err(image_err)?;
    meta.icc = decoder
        .icc_profile()
        .ok()
        .flatten()
        .filter(|p| !p.is_empty());
    check_icc(meta.icc.as_deref())?;
    if let Ok(Some(exif)) = decoder.exif_metadata() {
        meta.orientation = exif::orientation(&exif).unwrap_or(0);
    }
    if probe.format == SourceFormat::Tiff {
        // A TIFF file is its own EXIF structure: Orientation sits in its IFD0.
        meta.orientation = exif::orientation(input).unwrap_or(meta.orientation);
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
