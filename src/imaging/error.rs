//! Why bytes could not become pixels or pixels bytes: one kind per HTTP status, which the
//! pipeline's error carries on unchanged (`pipeline::PipelineError: From<ImageError>`).

/// Why an image could not be read or written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImageError {
    /// Larger than a limit the caller set, or than memory allows. -> 413
    #[error("image too large: {0}")]
    TooLarge(String),
    /// Not an image format we decode (SVG, HEIC, text...). -> 415
    #[error("unsupported image format: {0}")]
    Unsupported(String),
    /// Looks like a supported format but is corrupt or truncated. -> 422
    #[error("image could not be decoded: {0}")]
    Undecodable(String),
    /// An encoder failed. -> 500
    #[error("encoding failed: {0}")]
    Encode(String),
}
