//! Fetching originals: from an HTTP(S) origin over Pingora's pooled connector, or from a local
//! directory. The fetcher sees paths and bytes only, never transform options; it enforces the
//! download semaphore, the byte limit (while streaming) and the timeouts.

mod address;
mod dir;
mod error;
mod fetched;
mod fetcher;
mod held;
mod http;
pub mod resolve;

pub use self::address::{Access, Reach};
pub use self::error::OriginError;
pub use self::fetched::{forbids_storing, freshness, Askers, Fetched};
pub use self::fetcher::{OriginFetcher, REUSE_WINDOW};
pub use self::http::peer_for as http_peer;
