//! The image pipeline: source bytes + a `TransformSpec` in, encoded bytes out. It is a list of
//! small steps run in order (`steps/mod.rs` lists them; `run.rs` runs them); it never sees HTTP,
//! caches or origins, and it runs on the rayon pool, never on an async worker.

pub mod effects;
pub mod geometry;
pub mod raster;

mod anim;
mod avif;
mod avif_decode;
mod color;
mod context;
mod decode;
mod encode;
mod error;
mod footprint;
// The unit tests replay the committed fuzz corpora through the same entry points.
mod format;
#[cfg(any(test, feature = "fuzzing"))]
pub(crate) mod fuzzing;
mod heif;
mod keep_metadata;
mod limits;
mod metadata;
mod orient;
mod run;
mod sniff;
mod steps;
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

pub use context::Decoded;
pub use error::PipelineError;
pub use footprint::{footprint, Footprint};
pub use limits::Limits;
pub use raster::Raster;
pub use run::{
    decode_upright, probe, process, process_shared, DecodeKey, DecodeShare, Processed, StepTimings,
};
pub use sniff::{sniff, Probe, SourceFormat};

/// Frees what the calling thread keeps between pictures to make the next one cheaper (its AV1
/// decoder). The service calls it on every CPU-pool thread when processing goes idle.
pub fn release_thread_memory() {
    avif_decode::drop_kept_decoder();
}
