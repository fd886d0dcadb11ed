//! Why an image could not be processed: one kind per HTTP status (the mapping is the crate's
//! `error.rs`). Every step returns it, the codecs' `ImageError` becoming the kind of the same
//! name; none panics on bad input.

use crate::imaging::ImageError;

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

impl From<ImageError> for PipelineError {
    fn from(e: ImageError) -> Self {
        match e {
            ImageError::TooLarge(m) => PipelineError::TooLarge(m),
            ImageError::Unsupported(m) => PipelineError::Unsupported(m),
            ImageError::Undecodable(m) => PipelineError::Undecodable(m),
            ImageError::Encode(m) => PipelineError::Encode(m),
        }
    }
}
