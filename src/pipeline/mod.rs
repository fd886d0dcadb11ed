//! The image pipeline: source bytes + a `TransformSpec` in, encoded bytes out. It is a list of
//! small steps run in order (`steps/mod.rs` lists them; `run.rs` runs them), calling the codecs
//! and kernels of the image layer (`crate::imaging`) and its own (`geometry`, `effects`,
//! `watermark`); it never sees HTTP, caches or origins (a watermark arrives as bytes), and it runs on the rayon pool, never on an async worker.

mod attention;
mod border;
mod context;
pub mod effects;
mod error;
mod footprint;
mod format;
pub mod geometry;
mod limits;
mod run;
mod steps;
#[cfg(test)]
mod tests;
mod watermark;

pub use crate::imaging::{release_thread_memory, sniff, Probe, Raster, SourceFormat};
pub use context::Decoded;
pub use error::PipelineError;
pub use footprint::{footprint, Footprint};
pub use limits::Limits;
pub use run::{
    decode_upright, probe, process, process_shared, DecodeKey, DecodeShare, Media, Processed,
    StepTimings,
};
pub use watermark::{overlay_cost, Overlay, Placement, MAX_OVERLAY_PIXELS};
