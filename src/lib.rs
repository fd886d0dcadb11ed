//! imgate: an image CDN edge on Pingora.
//!
//! The crate is split into rooms with one direction of flow (see ARCHITECTURE.md):
//! `proxy` (the only module that knows Pingora phases) -> `cache` (keys and bytes) ->
//! `service` (the transform service) -> `origin` (fetches originals) and `pipeline`
//! (pixels only, never HTTP).

pub mod access_log;
pub mod admin;
pub mod budget;
pub mod cache;
pub mod cluster;
pub mod config;
pub mod cpu;
pub mod dialect;
pub mod error;
pub mod forwarded;
pub mod imaging;
// The unit tests replay the committed fuzz corpora through the same entry points.
#[cfg(any(test, feature = "fuzzing"))]
#[doc(hidden)]
pub mod fuzzing;
pub mod metrics;
pub mod origin;
pub mod pipeline;
pub mod proxy;
pub mod purge;
pub mod readiness;
pub mod rewrite;
pub mod route;
pub mod secret;
pub mod server;
pub mod service;
pub mod signals;
pub mod spec;
pub mod tls;
pub mod warm;

#[cfg(test)]
mod test_alloc;
