//! Encoder settings a request chooses: `compression=fast` (cheaper encoders, and under
//! `format=auto` the quickest format the client takes) and `format=baseline-jpeg` (imgate's
//! JPEG, which is sequential). Compared by look, and by the container's own markers.

use super::{fixture, picture_distance, upright, SAME_PICTURE};
use crate::pipeline::limits::Limits;
use crate::pipeline::{process, Media, Processed};
use crate::spec::{parse_options, Accepts, OutputFormat};

fn with(input: &[u8], options: &str, accepts: Accepts) -> Processed {
    let spec = parse_options(options).unwrap();
    process(input, &spec, accepts, &Limits::default()).unwrap_or_else(|e| panic!("{options}: {e}"))
}

const ALL: Accepts = Accepts {
    avif: true,
    webp: true,
};

#[test]
fn compression_fast_makes_the_same_picture_with_less_effort() {
    let photo = fixture("photos/FreshFlower.jpg");
    for format in ["jpeg", "webp", "avif"] {
        let normal = with(&photo, &format!("width=300,format={format}"), ALL);
        let fast = with(
            &photo,
            &format!("width=300,format={format},compression=fast"),
            ALL,
        );
        assert_eq!(fast.format, normal.format, "{format}");
        assert_eq!((fast.width, fast.height), (normal.width, normal.height));
        let d = picture_distance(&upright(&fast.bytes), &upright(&normal.bytes));
        assert!(d < SAME_PICTURE, "{format}: distance {d}");
        assert_ne!(
            fast.bytes.len(),
            normal.bytes.len(),
            "{format}: the same encoding"
        );
    }
    // JPEG's fast setting keeps the standard Huffman tables: never smaller than optimised ones.
    let normal = with(&photo, "width=300,format=jpeg", ALL);
    let fast = with(&photo, "width=300,format=jpeg,compression=fast", ALL);
    assert!(fast.bytes.len() > normal.bytes.len());
}

#[test]
fn format_auto_under_compression_fast_takes_the_quickest_format() {
    let photo = fixture("photos/FreshFlower.jpg");
    let out = with(&photo, "width=200,format=auto", ALL);
    assert_eq!(out.format, OutputFormat::Avif);
    let out = with(&photo, "width=200,format=auto,compression=fast", ALL);
    assert_eq!(out.format, OutputFormat::Jpeg);
    let alpha = fixture("pngsuite/basn6a08.png");
    let out = with(&alpha, "format=auto,compression=fast", ALL);
    assert_eq!(out.format, OutputFormat::Webp);
    let out = with(&alpha, "format=auto,compression=fast", Accepts::default());
    assert_eq!(out.format, OutputFormat::Png);
}

/// The start-of-frame marker types (0xC0 baseline, 0xC2 progressive...) in a JPEG's headers.
fn frame_markers(jpeg: &[u8]) -> Vec<u8> {
    let mut found = Vec::new();
    let mut at = 2;
    while at + 4 <= jpeg.len() && jpeg[at] == 0xFF {
        let marker = jpeg[at + 1];
        if marker == 0xDA {
            break; // start of scan: the headers are over
        }
        if (0xC0..=0xCF).contains(&marker) && ![0xC4, 0xC8, 0xCC].contains(&marker) {
            found.push(marker);
        }
        at += 2 + usize::from(u16::from_be_bytes([jpeg[at + 2], jpeg[at + 3]]));
    }
    found
}

#[test]
fn jpeg_and_baseline_jpeg_are_sequential() {
    let photo = fixture("photos/FreshFlower.jpg");
    assert_eq!(
        frame_markers(&photo),
        [0xC2],
        "the fixture itself is progressive"
    );
    for options in ["width=300,format=baseline-jpeg", "width=300,format=jpeg"] {
        let out = with(&photo, options, ALL);
        assert_eq!(out.format, Media::Image(OutputFormat::Jpeg));
        assert_eq!(frame_markers(&out.bytes), [0xC0], "{options}");
    }
}
