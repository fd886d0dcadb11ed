//! The pixel buffer every pipeline step works on: 8-bit sRGB, 3 or 4 interleaved channels,
//! alpha straight (not premultiplied) between steps.

use super::error::PipelineError;

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
pub(super) fn alloc_pixels(len: usize) -> Result<Vec<u8>, PipelineError> {
    let mut v = Vec::new();
    v.try_reserve_exact(len)
        .map_err(|_| PipelineError::TooLarge(format!("cannot allocate {len} bytes for pixels")))?;
    v.resize(len, 0);
    Ok(v)
}
