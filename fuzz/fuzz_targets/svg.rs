//! SVG originals: the root-tag scanner, then usvg's parse and resvg's drawing at a small size.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| imgate::fuzzing::run("svg", data));
