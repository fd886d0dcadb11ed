//! The image layer: bytes and pixels, nothing about transforms. A raster type and its
//! allocation (`raster.rs`), colour management (`color.rs`), turning and mirroring
//! (`orientation.rs`), the format a file is in (`format.rs`, `probe.rs`), and one module per
//! codec, each offering what it has of probe, metadata read, decode, encode and metadata write:
//! `jpeg`, `webp`, `png`, `gif`, `avif` (with its HEIF container), `heic` (other HEIF
//! images, through libheif), and `via_image` for the
//! formats the `image` crate decodes, `svg` (rasterised by resvg); `animation` for animated GIF/WebP frames. EXIF is read
//! and written by `exif.rs` and WebP's RIFF chunks walked by `riff.rs`, for every codec;
//! `effort.rs` names how hard the encoders work.
//!
//! Limits arrive as plain numbers (`max_pixels`, `max_frames`) and errors leave as
//! [`ImageError`]; nothing here imports the pipeline, the spec or HTTP. It runs on the CPU pool.

pub(crate) mod animation;
pub(crate) mod avif;
pub(crate) mod color;
mod effort;
mod error;
pub(crate) mod exif;
mod format;
#[cfg(any(test, feature = "fuzzing"))]
pub(crate) mod fuzzing;
pub(crate) mod gif;
pub(crate) mod heic;
pub(crate) mod jpeg;
pub(crate) mod meta;
pub mod orientation;
pub(crate) mod png;
pub(crate) mod probe;
pub mod raster;
mod read;
pub(crate) mod riff;
pub(crate) mod svg;
pub(crate) mod via_image;
pub(crate) mod webp;

pub use effort::Effort;
pub use error::ImageError;
pub use format::{sniff, Probe, SourceFormat};
pub use raster::Raster;
/// SVG drawn out of process: what the binary turns on at start, and runs as when it is the
/// child (`imgate --svg-worker WIDTH HEIGHT`).
pub use svg::worker::{
    draw_in_child_processes as draw_svg_in_child_processes, serve as serve_svg_worker,
    WORKER_FLAG as SVG_WORKER_FLAG,
};

/// Frees what the calling thread keeps between pictures to make the next one cheaper (its AV1
/// decoder). The CPU pool calls it on every one of its threads when processing goes idle.
pub fn release_thread_memory() {
    avif::drop_kept_decoder();
}
