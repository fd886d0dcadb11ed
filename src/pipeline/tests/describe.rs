//! `format=json`: the description names the original as it displays and the finished size the
//! same request would make (compared with the real output), reads only the header unless
//! `trim=border` needs the pixels, and refuses what the image request would refuse.

use super::{fixture, run};
use crate::pipeline::error::PipelineError;
use crate::pipeline::limits::Limits;
use crate::pipeline::{process, Media};
use crate::spec::{parse_options, Accepts};
use serde_json::Value;

fn describe(input: &[u8], options: &str) -> Result<Value, PipelineError> {
    let spec = parse_options(&format!("{options},format=json")).unwrap();
    let out = process(input, &spec, Accepts::default(), &Limits::default())?;
    assert_eq!(out.format, Media::Json);
    assert_eq!(out.format.mime(), "application/json");
    let v: Value = serde_json::from_slice(&out.bytes).expect("valid JSON");
    assert_eq!(
        (v["width"].as_u64(), v["height"].as_u64()),
        (Some(u64::from(out.width)), Some(u64::from(out.height)))
    );
    Ok(v)
}

/// The size the image request with `options` really makes.
fn made(input: &[u8], options: &str) -> (u64, u64) {
    let out = run(
        input,
        &parse_options(&format!("{options},format=png")).unwrap(),
    );
    (u64::from(out.width), u64::from(out.height))
}

#[test]
fn the_description_matches_what_the_image_request_makes() {
    let flower = fixture("photos/FreshFlower.jpg");
    for options in [
        "width=300",
        "width=200,height=200,fit=cover,gravity=auto",
        "width=500,height=100,fit=pad,dpr=2",
        "trim=10;20;30;40,width=301",
        "width=200,border=color:red;top:5;left:7",
        "rotate=90,height=100",
        "width=4000,fit=contain",
    ] {
        let v = describe(&flower, options).unwrap();
        let size = (v["width"].as_u64().unwrap(), v["height"].as_u64().unwrap());
        assert_eq!(size, made(&flower, options), "{options}");
        let o = &v["original"];
        assert_eq!(o["format"], "image/jpeg", "{options}");
        assert_eq!(
            (o["width"].as_u64(), o["height"].as_u64()),
            (Some(1600), Some(1203))
        );
        assert_eq!(o["file_size"].as_u64(), Some(flower.len() as u64));
    }
    // The original as it displays: an EXIF orientation that turns it swaps the sides.
    let turned = fixture("orientation/Landscape_6.jpg");
    let v = describe(&turned, "width=100").unwrap();
    let plain = describe(&fixture("orientation/Landscape_1.jpg"), "width=100").unwrap();
    assert_eq!(v["original"]["width"], plain["original"]["width"]);
    assert_eq!(v["original"]["height"], plain["original"]["height"]);
    assert_eq!(
        (v["width"].clone(), v["height"].clone()),
        (plain["width"].clone(), plain["height"].clone())
    );
    // A border trim is found in the pixels, as the image request finds it.
    let framed = fixture("framed.jpg");
    let v = describe(&framed, "trim=border").unwrap();
    assert_eq!(
        (v["width"].as_u64().unwrap(), v["height"].as_u64().unwrap()),
        made(&framed, "trim=border")
    );
    assert!(v["width"].as_u64().unwrap() < 500);
    // PNG and animated GIF originals are named by their own types.
    let v = describe(&fixture("animated.gif"), "width=100").unwrap();
    assert_eq!(v["original"]["format"], "image/gif");
    assert_eq!(
        (v["width"].as_u64(), v["height"].as_u64()),
        (Some(100), Some(63))
    );
}

#[test]
fn only_the_header_is_read_and_the_limits_still_apply() {
    // The first 30 KB of a photo: the image request fails on the cut pixels, the description
    // needs none of them.
    let cut = fixture("truncated.jpg");
    let spec = parse_options("width=100").unwrap();
    assert!(process(&cut, &spec, Accepts::default(), &Limits::default()).is_err());
    let v = describe(&cut, "width=100").unwrap();
    assert_eq!(
        (v["width"].as_u64(), v["height"].as_u64()),
        (Some(100), Some(75))
    );
    // What the image request refuses, the description refuses the same way.
    let flower = fixture("photos/FreshFlower.jpg");
    assert!(matches!(
        describe(&flower, "trim=1000;0;300;0"),
        Err(PipelineError::BadOptions(_))
    ));
    assert!(matches!(
        describe(&flower, "width=9000,height=9000,fit=pad,dpr=4"),
        Err(PipelineError::TooLarge(_))
    ));
}
