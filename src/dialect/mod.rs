//! URL dialects: a transform asked for in one of the URL forms people already have in their
//! pages (imgate's own Cloudflare-style `/cdn-cgi/image/...`, and more to come) is read into the
//! one canonical transform (`spec::TransformSpec` plus `route::Source`), so the same transform
//! asked in two dialects is one cache entry and one purge target.
//!
//! A site's rules for which URLs it serves live here too ([`UrlPolicy`]): signatures
//! (`signing.rs`), named presets and the widths and qualities it allows. Everything is checked
//! before anything is fetched or computed. Pure string work: no HTTP, no config files (config
//! builds the policy), no I/O.
//!
//! `types.rs` holds the shared types, `resolve.rs` the entry points, `policy.rs` the per-site
//! rules, `signing.rs` the signature schemes, `source.rs` source URLs; one file per dialect:
//! `cloudflare.rs` (`/cdn-cgi/image/`), `imgproxy.rs`, `thumbor.rs`, `nextjs.rs` (`/_next/image`).

mod cloudflare;
mod imgproxy;
mod nextjs;
mod policy;
mod resolve;
mod signing;
mod source;
#[cfg(test)]
mod tests;
mod thumbor;
mod types;

pub use cloudflare::{image_path, sign_cloudflare_path};
pub use policy::{snap_width, NextjsConfig, Presets, ThumborConfig, UrlPolicy};
pub use resolve::{canonical_path, read_canonical, read_unverified, resolve};
pub use signing::{sign_path, Signing, SigningKey};
pub use source::uri_safe;
pub use thumbor::thumbor_signature;
pub use types::{Dialect, Refusal, RefusalReason, Resolved};
