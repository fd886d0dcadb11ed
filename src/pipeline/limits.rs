//! The hard limits the pipeline enforces from the header, before it spends memory or CPU.

/// Hard limits the pipeline enforces before spending memory or CPU.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Largest source in pixels (width x height), read from the header before decoding.
    pub max_source_pixels: u64,
    /// Largest output width or height in pixels.
    pub max_output_dimension: u32,
    /// Largest number of frames in an animated source.
    pub max_animation_frames: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_source_pixels: 50_000_000,
            max_output_dimension: 8192,
            max_animation_frames: 500,
        }
    }
}
