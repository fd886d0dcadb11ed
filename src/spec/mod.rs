//! Transform options: the `<options>` segment of `/cdn-cgi/image/<options>/<source>` parsed into
//! one canonical [`TransformSpec`]. Owns parsing, validation and the canonical string form used
//! in cache keys. Of HTTP it knows only how to read an `Accept` value into [`Accepts`]; it
//! knows nothing of how images are processed.
//!
//! Fractional values are quantised and stored as integers so a spec is `Eq + Hash` and two URLs
//! that mean the same thing produce the same canonical form (and so one cache entry).
//!
//! `types.rs` holds the spec and its option types, `parse.rs` the options syntax (keys,
//! aliases, values, errors), `canonical.rs` the one string form a spec is keyed by, `colour.rs`
//! CSS colour values, `gravity.rs` how a gravity turns and mirrors with the picture,
//! `values.rs` the integers and decimals they are all written in and `accept.rs` the `Accept`
//! negotiation.

mod accept;
mod canonical;
mod colour;
mod gravity;
mod hints;
mod parse;
#[cfg(test)]
mod tests;
mod types;
mod values;

pub use accept::Accepts;
pub use hints::{ConnectionHints, CONNECTION_HINTS};
pub use parse::{
    apply_options, normalise, parse_options, parse_options_with, split_options, split_top_level,
    Parsed, SpecError, MAX_CROP_PIXELS,
};
pub use types::{
    Border, BorderColour, BorderTrim, Crop, Extent, Fit, Flip, FormatRequest, Gravity, Metadata,
    OutputFormat, Rgba, TransformSpec, Watermark, WatermarkPosition,
};
