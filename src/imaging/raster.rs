//! The pixel buffer every pipeline step works on: 8-bit sRGB, 3 or 4 interleaved channels,
//! alpha straight (not premultiplied) between steps.

use super::error::ImageError;

/// Decoded pixels in sRGB. `channels` is 3 (RGB) or 4 (RGBA, straight alpha).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Raster {
    pub width: u32,
    pub height: u32,
    pub channels: u8,
    pub data: Vec<u8>,
}

impl Raster {
    pub fn new(width: u32, height: u32, channels: u8, data: Vec<u8>) -> Raster {
        debug_assert!(channels == 3 || channels == 4);
        debug_assert_eq!(
            data.len(),
            width as usize * height as usize * channels as usize
        );
        Raster {
            width,
            height,
            channels,
            data,
        }
    }

    pub fn has_alpha(&self) -> bool {
        self.channels == 4
    }
}

/// A zeroed pixel buffer, or `TooLarge` when the allocator refuses: a failed allocation must
/// cost one request, never abort the process.
pub(crate) fn alloc_pixels(len: usize) -> Result<Vec<u8>, ImageError> {
    let mut v = reserve_pixels(len)?;
    v.resize(len, 0);
    Ok(v)
}

/// An empty buffer with room for `len` bytes of pixels, for a reader that appends them; the
/// same refusal as [`alloc_pixels`].
pub(crate) fn reserve_pixels(len: usize) -> Result<Vec<u8>, ImageError> {
    let mut v = Vec::new();
    v.try_reserve_exact(len)
        .map_err(|_| ImageError::TooLarge(format!("cannot allocate {len} bytes for pixels")))?;
    Ok(v)
}

/// Premultiplied RGBA to straight: each colour divided by its alpha (fully transparent
/// pixels become black).
pub(crate) fn unpremultiply(rgba: &mut [u8]) {
    for px in rgba.chunks_exact_mut(4) {
        let a = u32::from(px[3]);
        if a == 255 {
            continue;
        }
        for c in &mut px[..3] {
            *c = (u32::from(*c) * 255 + a / 2)
                .checked_div(a)
                .map_or(0, |v| v.min(255) as u8);
        }
    }
}

/// An alpha channel that is 255 everywhere carries nothing: drop it (compacting in place) so
/// later steps and encoders treat the image as opaque.
pub(crate) fn drop_opaque_alpha(img: Raster) -> Raster {
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
