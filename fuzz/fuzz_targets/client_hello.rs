//! The TLS listener's ClientHello reader (server name, ALPN, versions) on raw connection bytes.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| imgate::fuzzing::run("client_hello", data));
