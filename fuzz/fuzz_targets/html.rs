//! Origin HTML bodies through the rewriter. Byte 0 picks the content coding, byte 1 the
//! charset and byte 2 the chunk size the body is fed in; the rest is the body.
#![no_main]
use libfuzzer_sys::fuzz_target;

const CODINGS: [Option<&str>; 5] = [
    None,
    Some("gzip"),
    Some("deflate"),
    Some("br"),
    Some("identity"),
];
const TYPES: [&str; 6] = [
    "text/html",
    "text/html; charset=utf-8",
    "text/html; charset=windows-1252",
    "text/html; charset=shift_jis",
    "text/html; charset=utf-16",
    "text/html; charset=\"iso-8859-2\"",
];

fuzz_target!(|data: &[u8]| {
    let [coding, kind, chunk, body @ ..] = data else {
        return;
    };
    imgate::fuzzing::html_body(
        TYPES[usize::from(*kind) % TYPES.len()],
        CODINGS[usize::from(*coding) % CODINGS.len()],
        body,
        usize::from(*chunk) * 16 + 1,
    );
});
