//! `POST /purge` JSON bodies, resolved into cache keys and matchers.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| imgate::fuzzing::run("purge", data));
