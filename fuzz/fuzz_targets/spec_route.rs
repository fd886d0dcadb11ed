//! Transform options and routes: a request path and an `Accept` value (the input up to the
//! first newline is the path, the rest `Accept`), routed as the edge routes them.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| imgate::fuzzing::run("spec_route", data));
