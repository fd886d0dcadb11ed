//! AVIF: the HEIF container (`heif.rs`: items, properties, alpha, grids, EXIF; never pixels),
//! AV1 decoding through libaom with YUV to RGB (`decode.rs`; each thread keeps its decoder for
//! self-contained still streams) and encoding, RGB to YUV through libaom into a container
//! written by `avif-serialize` (`encode.rs`). libaom's structs sit behind the C shim in
//! `csrc/`.

pub(crate) mod decode;
pub(crate) mod encode;
pub(crate) mod heif;

pub(crate) use decode::{decode, drop_kept_decoder, probe};
pub(crate) use encode::encode;
pub(crate) use heif::{holds_av1, is_avif};
