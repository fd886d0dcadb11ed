//! Origin HTML bodies through the rewriter. Byte 0 picks the content coding, byte 1 the
//! charset and byte 2 the chunk size the body is fed in; the rest is the body.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| imgate::fuzzing::run("html", data));
