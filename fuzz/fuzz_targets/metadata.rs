//! EXIF and container metadata: JPEG segments, WebP chunks, PNG `eXIf`, the orientation
//! reader and the `metadata=keep|copyright` writers.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| imgate::fuzzing::run("metadata", data));
