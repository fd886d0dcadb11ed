//! Transform options and routes: a request path and an `Accept` value (the input up to the
//! first newline is the path, the rest `Accept`), routed as the edge routes them.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let (path, accept) = text.split_once('\n').unwrap_or((&text, ""));
    imgate::fuzzing::edge_route(path, accept);
});
