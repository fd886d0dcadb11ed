//! Format sniffing and header probing of every source format.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| imgate::fuzzing::run("sniff", data));
