//! The image pipeline: source bytes + a `TransformSpec` in, encoded bytes out. It is a list of
//! small steps run in order (see `pipeline.rs`); it never sees HTTP, caches or origins, and it
//! runs on the rayon pool, never on an async worker.

pub mod effects;
pub mod geometry;
pub mod raster;

mod anim;
mod avif;
mod avif_decode;
mod color;
mod decode;
mod encode;
mod flatten;
mod footprint;
// The unit tests replay the committed fuzz corpora through the same entry points.
#[cfg(any(test, feature = "fuzzing"))]
pub(crate) mod fuzzing;
mod heif;
mod keep_metadata;
mod metadata;
mod orient;
// The runner (the ordered steps) is `pipeline/pipeline.rs`: named after the module so the
// step list is found where the module's name says.
#[allow(clippy::module_inception)]
mod pipeline;
mod sniff;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_anim;
#[cfg(test)]
mod tests_avif;
#[cfg(test)]
mod tests_bombs;
#[cfg(test)]
mod tests_metadata;

pub use footprint::{footprint, Footprint};
pub use pipeline::{
    decode_upright, probe, process, process_shared, DecodeKey, DecodeShare, Decoded,
};
pub use raster::Raster;
pub use sniff::{sniff, Probe, SourceFormat};

use crate::spec::OutputFormat;
use std::time::Duration;

/// Frees what the calling thread keeps between pictures to make the next one cheaper (its AV1
/// decoder). The service calls it on every CPU-pool thread when processing goes idle.
pub fn release_thread_memory() {
    avif_decode::drop_kept_decoder();
}

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

/// Wall time of each step, reported in `Server-Timing`.
#[derive(Debug, Clone, Copy, Default)]
pub struct StepTimings {
    pub decode: Duration,
    pub resize: Duration,
    pub encode: Duration,
}

/// An encoded result.
#[derive(Debug, Clone)]
pub struct Processed {
    pub bytes: Vec<u8>,
    pub format: OutputFormat,
    pub width: u32,
    pub height: u32,
    pub timings: StepTimings,
}

/// Why an image could not be processed. Each kind maps to one HTTP status in the service.
#[derive(Debug, Clone, thiserror::Error)]
pub enum PipelineError {
    /// The source is larger than `max_source_pixels` or the output than `max_output_dimension`,
    /// or an animation has too many frames. -> 413
    #[error("image too large: {0}")]
    TooLarge(String),
    /// Not an image format we decode (SVG, HEIC, text...). -> 415
    #[error("unsupported image format: {0}")]
    Unsupported(String),
    /// Looks like a supported format but is corrupt or truncated. -> 422
    #[error("image could not be decoded: {0}")]
    Undecodable(String),
    /// The options cannot be applied to this image. -> 400
    #[error("invalid options for this image: {0}")]
    BadOptions(String),
    /// An encoder failed. -> 500
    #[error("encoding failed: {0}")]
    Encode(String),
}
