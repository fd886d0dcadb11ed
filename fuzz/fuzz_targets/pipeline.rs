//! The whole pipeline on a small image: byte 0 is the length N of the option string that
//! follows, byte N+1 the client's `Accept` (bit 0 AVIF, bit 1 WebP), the rest the image.
#![no_main]
use imgate::spec::Accepts;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&n, rest)) = data.split_first() else {
        return;
    };
    let Some((options, rest)) = rest.split_at_checked(usize::from(n)) else {
        return;
    };
    let Some((&accept, image)) = rest.split_first() else {
        return;
    };
    let accepts = Accepts {
        avif: accept & 1 == 1,
        webp: accept & 2 == 2,
    };
    imgate::fuzzing::transform(image, &String::from_utf8_lossy(options), accepts);
});
