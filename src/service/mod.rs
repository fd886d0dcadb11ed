//! The transform service: answers `/cdn-cgi/image/<options>/<source>` by fetching the original,
//! running the pipeline on the CPU pool and building a cacheable response; for `file://`
//! origins it also serves the directory as a plain website (the passthrough route). It is reached
//! by the edge over a Unix socket and can run alone (`--role transform`). It knows HTTP requests
//! and responses, not Pingora proxy phases or the edge cache.
//!
//! `transformer.rs` is the library entry point (fetch + pipeline on the CPU pool, no HTTP);
//! `http.rs` the HTTP replies on top of it (`TransformService`); `app.rs` serves those over
//! Pingora.

mod app;
mod http;
mod transformer;

pub use app::TransformApp;
pub use http::{
    etag_matches, Facing, Reply, TransformRequest, TransformService, NEGOTIATED_FORMAT_HEADER,
    PURGED_AT_HEADER, SLOW_CONNECTION_HEADER,
};
pub use transformer::{TransformJob, Transformed, Transformer};
