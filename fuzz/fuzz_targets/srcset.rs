//! `srcset` text and attribute character references, as the HTML rewriter reads and writes them.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| imgate::fuzzing::run("srcset", data));
