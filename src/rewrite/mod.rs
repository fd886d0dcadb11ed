//! HTML rewriting at the edge: `<img>` and `<picture><source>` URLs on the site become
//! `/cdn-cgi/image/...` URLs with `format=auto`, a generated `srcset`/`sizes`, and optional
//! `loading="lazy"`/`decoding="async"`. Streams chunk by chunk (never the whole page) and knows
//! nothing of Pingora: the edge feeds [`HtmlBody`] the origin's body chunks and sends on what
//! comes out.
//!
//! - [`url`]: pure URL work (resolving a page's image URL to an edge source, `srcset` text).
//! - [`image`]: which attributes an `<img>`/`<source>` gets, from its current attributes.
//! - [`page`]: [`PageRewriter`], lol_html wired to the rules, with the page's charset.
//! - [`body`]: [`HtmlBody`], origin content-coding removed before the rewriter.
//! - [`entities`]: character references in attribute values, decoded and escaped again.
//! - [`options`]: [`RewriteOptions`], what a site's rewrite does; [`HtmlRewrite`], its fingerprint.

pub mod body;
pub mod entities;
pub mod image;
pub mod options;
pub mod page;
pub mod url;

pub use body::{HtmlBody, RewriteError};
pub use options::{HtmlRewrite, RewriteOptions};
pub use page::PageRewriter;

#[cfg(test)]
mod tests;
