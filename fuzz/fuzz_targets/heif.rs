//! The HEIF/AVIF container reader and the AVIF probe.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| imgate::fuzzing::run("heif", data));
