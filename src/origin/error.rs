//! Why an original could not be had; the crate's `error.rs` gives each kind its status.

use std::time::Duration;

/// Why an original could not be had. The service maps each to a status.
#[derive(Debug, Clone, thiserror::Error)]
pub enum OriginError {
    #[error("origin has no such object")]
    NotFound,
    /// Any other non-2xx answer; passed through as a 502 unless it is a client error.
    #[error("origin answered {0}")]
    Status(u16),
    #[error("original exceeds {limit} bytes")]
    TooLarge { limit: u64 },
    #[error("origin unreachable: {0}")]
    Unreachable(String),
    #[error("origin timed out after {0:?}")]
    Timeout(Duration),
    /// The path escapes the origin (`..`) or is otherwise unusable.
    #[error("bad source path: {0}")]
    BadPath(String),
    /// The origin's or source's host name did not resolve (or not in time).
    #[error("origin name did not resolve: {0}")]
    Unresolvable(String),
    /// The source's address is outside what its [`Reach`] allows; nothing was connected to.
    #[error("source address refused: {0}")]
    AddressRefused(String),
    /// No room in the source budget in time (or too many downloads waiting for it): the
    /// originals being worked on fill it. Answered 503 with `Retry-After`.
    #[error("too many originals held in memory; try again")]
    Busy,
}
