//! The whole pipeline on a small image: byte 0 is the length N of the option string that
//! follows, byte N+1 the client's `Accept` (bit 0 AVIF, bit 1 WebP), the rest the image.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| imgate::fuzzing::run("pipeline", data));
