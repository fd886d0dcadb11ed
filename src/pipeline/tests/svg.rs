//! SVG originals end to end through the pipeline: exact sizes (from `width`/`height` and the
//! `viewBox`), known colours at known places, transparency kept or laid on a background,
//! shrink-on-load drawing smaller, nothing fetched, and hostile documents refused cleanly.

use super::{fixture, upright};
use crate::imaging::Raster;
use crate::pipeline::error::PipelineError;
use crate::pipeline::limits::Limits;
use crate::pipeline::process;
use crate::spec::{parse_options, Accepts, OutputFormat};

fn try_run(input: &[u8], options: &str) -> Result<crate::pipeline::Processed, PipelineError> {
    let spec = parse_options(options).unwrap();
    process(input, &spec, Accepts::default(), &Limits::default())
}

/// The pixel at (`x`, `y`) as RGBA.
fn rgba(img: &Raster, x: u32, y: u32) -> [u8; 4] {
    let c = usize::from(img.channels);
    let i = (y as usize * img.width as usize + x as usize) * c;
    let p = &img.data[i..i + c];
    [p[0], p[1], p[2], if c == 4 { p[3] } else { 255 }]
}

fn near(got: [u8; 4], want: [u8; 4], what: &str) {
    let d = got
        .iter()
        .zip(want)
        .map(|(a, b)| a.abs_diff(b))
        .max()
        .unwrap();
    assert!(d <= 6, "{what}: {got:?}, want {want:?}");
}

const RED: [u8; 4] = [0xd6, 0x28, 0x28, 255];
const BLUE: [u8; 4] = [0x1d, 0x4e, 0xd8, 255];
const TEAL: [u8; 4] = [0x2a, 0x9d, 0x8f, 255];

#[test]
fn a_logo_draws_at_the_asked_size_with_its_colours_and_its_transparency() {
    let logo = fixture("logo.svg");
    // No options: the document's own size, PNG (it has alpha).
    let out = try_run(&logo, "dpr=1").unwrap();
    assert_eq!(out.format, OutputFormat::Png);
    assert_eq!((out.width, out.height), (300, 150));
    for options in ["format=png", "width=200,format=png", "width=40,format=png"] {
        let out = try_run(&logo, options).unwrap();
        let img = upright(&out.bytes);
        let (w, h) = (img.width, img.height);
        assert_eq!(h * 2, w, "{options}: {w}x{h}");
        // Sampled at fractions of the picture, away from the shapes' edges.
        let at =
            |fx: f64, fy: f64| rgba(&img, (f64::from(w) * fx) as u32, (f64::from(h) * fy) as u32);
        near(at(0.25, 0.5), RED, options);
        near(at(0.75, 0.5), BLUE, options);
        near(at(0.98, 0.03), TEAL, options);
        // Between the disc and the edges: nothing drawn (the images pointing at a file and a
        // URL drew nothing either).
        assert_eq!(at(0.62, 0.03)[3], 0, "{options}: transparent corner");
        assert_eq!(
            at(0.75, 0.97)[3],
            0,
            "{options}: where the <image>s would be"
        );
    }
    // Under JPEG the transparent parts are laid on the background.
    let out = try_run(&logo, "width=200,format=jpeg,background=%2300ff00").unwrap();
    let img = upright(&out.bytes);
    near(
        rgba(&img, 104, 5),
        [0, 255, 0, 255],
        "background under the transparent part",
    );
    near(rgba(&img, 50, 50), RED, "jpeg red");
    // A cover crop of the right half is the disc.
    let out = try_run(
        &logo,
        "width=100,height=100,fit=cover,gravity=right,format=png",
    )
    .unwrap();
    let img = upright(&out.bytes);
    near(rgba(&img, 50, 50), BLUE, "cover crop");
}

#[test]
fn hostile_or_broken_documents_are_refused_cleanly() {
    let entities = br#"<?xml version="1.0"?><!DOCTYPE svg [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]><svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><text>&b;</text></svg>"#;
    assert!(matches!(
        try_run(entities, "width=5"),
        Err(PipelineError::Unsupported(_))
    ));
    // A size over the pixel limit is refused from the root tag, before drawing anything.
    let huge = br#"<svg xmlns="http://www.w3.org/2000/svg" width="100000" height="100000"><rect width="10" height="10"/></svg>"#;
    assert!(matches!(
        try_run(huge, "width=100"),
        Err(PipelineError::TooLarge(_))
    ));
    let cut = br#"<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><rect width="10""#;
    assert!(matches!(
        try_run(cut, "width=5"),
        Err(PipelineError::Undecodable(_))
    ));
    let not_svg_root = br#"<svg xmlns="http://example.com/not-svg" width="10" height="10"/>"#;
    assert!(try_run(not_svg_root, "width=5").is_err());
}
