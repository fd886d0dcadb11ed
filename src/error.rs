//! Errors that reach a client. Every error carries an HTTP status, a short public message
//! (what the client sees: no paths, no internals) and an internal cause (what the log sees).
//! Lower layers return their own typed errors (`SpecError`, `PipelineError`, `OriginError`);
//! this module is where they meet their status, once.

use crate::dialect::Refusal;
use crate::origin::OriginError;
use crate::pipeline::PipelineError;
use crate::spec::SpecError;
use std::fmt;

/// Where the failure came from, as in Pingora's error sources: it decides whom to blame in logs
/// and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Blame {
    /// The request or the source image the client pointed at.
    Downstream,
    /// The origin server.
    Upstream,
    /// Us.
    Internal,
}

/// An error with its HTTP status, public message and internal cause.
#[derive(Debug)]
pub struct ImgateError {
    pub status: u16,
    pub public: String,
    pub cause: String,
    pub blame: Blame,
    /// Seconds for `Retry-After` (overload answers).
    pub retry_after: Option<u32>,
}

impl ImgateError {
    pub fn new(
        status: u16,
        public: impl Into<String>,
        cause: impl Into<String>,
        blame: Blame,
    ) -> Self {
        ImgateError {
            status,
            public: public.into(),
            cause: cause.into(),
            blame,
            retry_after: None,
        }
    }

    pub fn bad_request(public: impl Into<String>) -> Self {
        let public = public.into();
        ImgateError::new(400, public.clone(), public, Blame::Downstream)
    }

    pub fn overloaded(retry_after: u32) -> Self {
        ImgateError {
            retry_after: Some(retry_after),
            ..ImgateError::new(
                503,
                "server busy, retry later",
                "processing queue full",
                Blame::Internal,
            )
        }
    }
}

/// An original that could not be had, as the client sees it: the origin's own 4xx passed on,
/// its failures 502/504, our limits 413/403/503.
impl From<OriginError> for ImgateError {
    fn from(e: OriginError) -> ImgateError {
        let cause = e.to_string();
        match e {
            OriginError::NotFound => {
                ImgateError::new(404, "source image not found", cause, Blame::Upstream)
            }
            OriginError::Status(s) if (400..500).contains(&s) => {
                ImgateError::new(s, "origin refused the source image", cause, Blame::Upstream)
            }
            OriginError::Status(_) => ImgateError::new(502, "origin error", cause, Blame::Upstream),
            OriginError::TooLarge { .. } => {
                ImgateError::new(413, "source image too large", cause, Blame::Downstream)
            }
            OriginError::Unreachable(_) => {
                ImgateError::new(502, "origin unreachable", cause, Blame::Upstream)
            }
            OriginError::Timeout(_) => {
                ImgateError::new(504, "origin timed out", cause, Blame::Upstream)
            }
            OriginError::BadPath(_) => {
                ImgateError::new(400, "bad source path", cause, Blame::Downstream)
            }
            OriginError::Unresolvable(_) => {
                ImgateError::new(502, "origin unreachable", cause, Blame::Upstream)
            }
            OriginError::Busy => ImgateError {
                cause,
                ..ImgateError::overloaded(1)
            },
            // The same answer whatever the address and its ports: nothing was connected to.
            OriginError::AddressRefused(_) => {
                ImgateError::new(403, "source address not allowed", cause, Blame::Downstream)
            }
        }
    }
}

impl fmt::Display for ImgateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}: {}", self.status, self.public, self.cause)
    }
}

impl std::error::Error for ImgateError {}

impl From<Refusal> for ImgateError {
    fn from(r: Refusal) -> Self {
        ImgateError::new(r.status, r.message.clone(), r.message, Blame::Downstream)
    }
}

impl From<SpecError> for ImgateError {
    fn from(e: SpecError) -> Self {
        ImgateError::bad_request(e.0)
    }
}

impl From<PipelineError> for ImgateError {
    fn from(e: PipelineError) -> Self {
        let cause = e.to_string();
        match e {
            PipelineError::TooLarge(_) => {
                ImgateError::new(413, "image too large", cause, Blame::Downstream)
            }
            PipelineError::Unsupported(_) => {
                ImgateError::new(415, "unsupported image format", cause, Blame::Downstream)
            }
            PipelineError::Undecodable(_) => {
                ImgateError::new(422, "image could not be decoded", cause, Blame::Downstream)
            }
            PipelineError::BadOptions(ref m) => ImgateError::new(
                400,
                format!("invalid options for this image: {m}"),
                cause,
                Blame::Downstream,
            ),
            PipelineError::Encode(_) => {
                ImgateError::new(500, "encoding failed", cause, Blame::Internal)
            }
        }
    }
}
