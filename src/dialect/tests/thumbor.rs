//! thumbor's URL form: URLs as libthumbor 2.0.2's `CryptoURL` writes them, options and filters
//! mapped to the canonical spec, `unsafe` rules, refusals naming what is not supported.

use super::*;
use crate::route::Source;
use crate::spec::{
    self, parse_options, Crop, Fit, Flip, FormatRequest, Gravity, OutputFormat, Rgba,
};

const KEY: &str = "my-security-key";

fn policy(allow_unsafe: bool) -> UrlPolicy {
    UrlPolicy {
        thumbor: Some(ThumborConfig {
            prefix: "/thumbor".into(),
            security_key: Some(KEY.as_bytes().to_vec()),
            allow_unsafe,
        }),
        ..UrlPolicy::default()
    }
}

#[test]
fn urls_written_by_libthumbor() {
    // CryptoURL(key="my-security-key").generate(width=300, height=200, smart=True,
    // image_url="photos/a.jpg")
    let url = "/thumbor/226jMLKGwbTPZW3-dWEwNno-bc0=/300x200/smart/photos/a.jpg";
    let r = resolved(&policy(false), url);
    assert_eq!(r.dialect, Dialect::Thumbor);
    assert_eq!((r.spec.width, r.spec.height), (Some(300), Some(200)));
    assert_eq!((r.spec.fit, r.spec.gravity), (Fit::Cover, Gravity::Auto));
    assert_eq!(r.source, Source::Path("/photos/a.jpg".into()));
    assert_eq!(
        thumbor_signature(KEY.as_bytes(), "300x200/smart/photos/a.jpg"),
        "226jMLKGwbTPZW3-dWEwNno-bc0="
    );
    // generate(width=300, height=0, fit_in=True, filters=["quality(80)", "format(webp)",
    // "fill(red)"], image_url="http://127.0.0.1:8/photos/a.jpg")
    let url = "/thumbor/32jzcSvvt1ZcrN3Er8e-kFjFvIo=/fit-in/300x0/filters:quality(80):format(webp):fill(red)/http://127.0.0.1:8/photos/a.jpg";
    let r = resolved(&policy(false), url);
    let s = &r.spec;
    assert_eq!((s.width, s.height, s.fit), (Some(300), None, Fit::Pad));
    assert_eq!(s.quality, Some(80));
    assert_eq!(s.format, FormatRequest::Fixed(OutputFormat::Webp));
    assert_eq!(s.background, Some(Rgba([255, 0, 0, 255])));
    assert_eq!(r.source.key(), "http://127.0.0.1:8/photos/a.jpg");
    // generate(width=-100, height=50, halign="left", valign="top", image_url="a.jpg",
    // unsafe=True)
    let r = resolved(&policy(true), "/thumbor/unsafe/-100x50/left/top/a.jpg");
    assert_eq!(r.spec.flip, Flip::Horizontal);
    // thumbor crops before mirroring, imgate after: the anchor is mirrored with the picture.
    assert_eq!(r.spec.gravity, Gravity::TopRight);
    // Tampered, unsafe where not allowed, or a site requiring signatures.
    let r = refused(&policy(false), &url.replace("300x0", "301x0"));
    assert_eq!((r.status, r.reason), (403, RefusalReason::BadSignature));
    let r = refused(&policy(false), "/thumbor/unsafe/-100x50/a.jpg");
    assert_eq!((r.status, r.reason), (403, RefusalReason::MissingSignature));
    let strict = UrlPolicy {
        signing: Some(Signing {
            keys: vec![key("k", "s")],
            required: true,
        }),
        ..policy(true)
    };
    assert_eq!(refused(&strict, "/thumbor/unsafe/10x10/a.jpg").status, 403);
}

#[test]
fn modes_filters_and_sources() {
    let spec = |path: &str| resolved(&policy(true), &format!("/thumbor/unsafe/{path}")).spec;
    assert_eq!(spec("fit-in/10x10/a.jpg").fit, Fit::ScaleDown);
    assert_eq!(
        spec("fit-in/10x10/filters:upscale()/a.jpg").fit,
        Fit::Contain
    );
    assert_eq!(spec("10x10/filters:no_upscale()/a.jpg").fit, Fit::Crop);
    assert_eq!(spec("10x-10/a.jpg").flip, Flip::Vertical);
    assert_eq!(spec("x20/a.jpg").height, Some(20));
    assert_eq!(spec("origx20/a.jpg").width, None);
    assert_eq!(spec("10x10/right/a.jpg").gravity, Gravity::Right);
    assert_eq!(spec("10x10/bottom/a.jpg").gravity, Gravity::Bottom);
    let s = spec("filters:grayscale():blur(5):rotate(90):sharpen(2,1,true):strip_exif():strip_icc():background_color(00ff00)/a.jpg");
    assert!(s.grayscale);
    assert_eq!(
        (s.blur_deci, s.rotate, s.sharpen_deci),
        (Some(50), Some(270), Some(20))
    );
    assert_eq!(s.background, Some(Rgba([0, 255, 0, 255])));
    assert_eq!(
        spec("filters:fill(transparent)/a.jpg").background,
        Some(Rgba([0, 0, 0, 0]))
    );
    // No resize at all.
    assert_eq!(spec("a.jpg"), crate::spec::TransformSpec::default());
    // An encoded absolute image URL, and a path with a space.
    let r = resolved(
        &policy(true),
        "/thumbor/unsafe/10x10/https%3A%2F%2Fimg.example.com%2Fa.jpg%3Fv%3D1",
    );
    assert_eq!(r.source.key(), "https://img.example.com/a.jpg?v=1");
    let r = resolved(&policy(true), "/thumbor/unsafe/photos/my%20cat.jpg");
    assert_eq!(r.source, Source::Path("/photos/my%20cat.jpg".into()));
}

#[test]
fn manual_crop_is_a_region_of_the_upright_original() {
    let spec = |path: &str| resolved(&policy(true), &format!("/thumbor/unsafe/{path}")).spec;
    let s = spec("10x20:110x70/50x0/a.jpg");
    assert_eq!(
        s.crop,
        Some(Crop::Rect {
            left: 10,
            top: 20,
            width: Some(100),
            height: Some(50)
        })
    );
    assert_eq!(s.width, Some(50));
    assert_eq!(
        spec("10x20:110x70/a.jpg"),
        parse_options("trim.left=10,trim.top=20,trim.width=100,trim.height=50").unwrap()
    );
    // 0x0:0x0 is no crop; a rotate() does not move the region (thumbor crops first).
    assert_eq!(spec("0x0:0x0/50x0/a.jpg"), spec("50x0/a.jpg"));
    assert_eq!(spec("10x20:110x70/filters:rotate(90)/a.jpg").crop, s.crop);
}

#[test]
fn brightness_and_contrast_are_percentage_changes() {
    let spec = |path: &str| resolved(&policy(true), &format!("/thumbor/unsafe/{path}")).spec;
    let s = spec("filters:brightness(40):contrast(-25)/a.jpg");
    assert_eq!(
        (s.brightness_centi, s.contrast_centi),
        (Some(140), Some(75))
    );
    assert_eq!(s, parse_options("brightness=1.4,contrast=0.75").unwrap());
    assert_eq!(
        spec("filters:brightness(-100)/a.jpg").brightness_centi,
        Some(1)
    );
    assert_eq!(spec("filters:contrast(0)/a.jpg"), spec("a.jpg"));
    assert_eq!(
        refused(
            &policy(true),
            "/thumbor/unsafe/filters:brightness(101)/a.jpg"
        )
        .status,
        400
    );
}

#[test]
fn trim_cuts_the_border_of_a_corner_colour() {
    let spec = |path: &str| resolved(&policy(true), &format!("/thumbor/unsafe/{path}")).spec;
    let border = |colour, tolerance| {
        Some(spec::BorderTrim {
            colour,
            tolerance,
            keep: 0,
        })
    };
    use spec::BorderColour::{BottomRight, TopLeft};
    assert_eq!(spec("trim/a.jpg").trim_border, border(TopLeft, 0));
    assert_eq!(spec("trim:top-left/a.jpg").trim_border, border(TopLeft, 0));
    assert_eq!(
        spec("trim:bottom-right:30/a.jpg").trim_border,
        border(BottomRight, 30)
    );
    assert_eq!(
        spec("trim::15/a.jpg").trim_border,
        border(TopLeft, 15),
        "as libthumbor writes it"
    );
    assert_eq!(spec("trim:15/a.jpg").trim_border, border(TopLeft, 15));
    // With a manual crop and a size after it.
    let s = spec("trim/10x20:110x70/50x0/a.jpg");
    assert!(s.trim_border.is_some() && s.crop.is_some());
    assert_eq!(
        s,
        parse_options(
            "trim=border,trim.border.tolerance=0,trim.left=10,trim.top=20,trim.width=100,\
             trim.height=50,width=50,fit=cover,gravity=center"
        )
        .unwrap()
    );
}

#[test]
fn what_imgate_cannot_do_is_refused_naming_it() {
    for (path, named) in [
        ("meta/10x10/a.jpg", "meta"),
        ("trim:middle/10x10/a.jpg", "trim"),
        ("trim:top-left:443/10x10/a.jpg", "trim"),
        ("trim:top-left:5:5/10x10/a.jpg", "trim"),
        ("90x10:10x90/a.jpg", "crop"),
        ("10x10:10x90/a.jpg", "crop"),
        ("0x0:100001x5/a.jpg", "crop"),
        ("adaptive-fit-in/10x10/a.jpg", "adaptive-fit-in"),
        ("filters:watermark(b.png,0,0,0)/a.jpg", "watermark"),
        ("filters:format(gif)/a.jpg", "gif"),
        ("filters:rotate(45)/a.jpg", "rotate"),
        ("filters:quality(101)/a.jpg", "quality"),
        ("filters:fill(blur)/a.jpg", "fill"),
        ("filters:quality(80/a.jpg", "quality"),
        ("20000x10/a.jpg", "12000"),
    ] {
        let r = refused(&policy(true), &format!("/thumbor/unsafe/{path}"));
        assert_eq!(r.status, 400, "{path}");
        assert!(r.message.contains(named), "{path}: {}", r.message);
    }
    assert_eq!(refused(&policy(true), "/thumbor/unsafe").status, 400);
    assert_eq!(
        refused(&policy(true), "/thumbor/unsafe/10x10/s3%3A%2F%2Fb%2Fa.jpg").status,
        400
    );
    assert!(resolve(&policy(true), "/thumbors/unsafe/a.jpg").is_none());
    assert!(resolve(&UrlPolicy::default(), "/thumbor/unsafe/a.jpg").is_none());
}

#[test]
fn rotate_runs_last_as_in_thumbor() {
    let spec = |path: &str| resolved(&policy(true), &format!("/thumbor/unsafe/{path}")).spec;
    // 120 wide, then a quarter turn: the box is 120 high in imgate's order.
    let s = spec("120x0/filters:rotate(90)/a.jpg");
    assert_eq!((s.width, s.height, s.rotate), (None, Some(120), Some(270)));
    // A crop anchored left, turned counter-clockwise, is anchored at the bottom.
    let s = spec("100x50/left/filters:rotate(90)/a.jpg");
    assert_eq!(
        (s.width, s.height, s.gravity),
        (Some(50), Some(100), Gravity::Bottom)
    );
    // A horizontal mirror before a quarter turn is a vertical one after it.
    let s = spec("-100x50/left/filters:rotate(270)/a.jpg");
    assert_eq!(s.flip, Flip::Vertical);
    assert_eq!(
        s.gravity,
        Gravity::Bottom,
        "left mirrored is right, turned clockwise is bottom"
    );
    let s = spec("10x10/filters:rotate(180)/a.jpg");
    assert_eq!(
        (s.width, s.height, s.gravity),
        (Some(10), Some(10), Gravity::Center)
    );
}

#[test]
fn the_longer_prefix_wins_when_imgproxy_has_the_whole_host() {
    let p = UrlPolicy {
        imgproxy_prefix: Some("/".into()),
        ..policy(true)
    };
    assert_eq!(
        resolved(&p, "/thumbor/unsafe/10x10/a.jpg").dialect,
        Dialect::Thumbor
    );
    assert_eq!(
        resolved(&p, "/_/w:10/plain/a.jpg").dialect,
        Dialect::Imgproxy
    );
}

#[test]
fn watermark_filter_lays_a_configured_overlay_named_by_its_path() {
    use crate::spec::{Watermark, WatermarkPosition};
    let p = UrlPolicy {
        watermarks: Some(vec![
            ("logo".into(), Some("/brand/logo.png".into())),
            ("plain".into(), None),
        ]),
        ..policy(true)
    };
    let spec = |f: &str| resolved(&p, &format!("/thumbor/unsafe/300x0/filters:{f}/a.jpg")).spec;
    assert_eq!(
        spec("watermark(brand/logo.png,-10,20,30,25)").watermark,
        Some(Watermark {
            name: "logo".into(),
            opacity_centi: Some(70),
            position: Some(WatermarkPosition::At(Gravity::Point {
                x_milli: 1000,
                y_milli: 0
            })),
            offset: Some((10, 20)),
            scale_centi: Some(25),
        })
    );
    let tiles = spec("watermark(/brand/logo.png,repeat,repeat,0,none,none)")
        .watermark
        .unwrap();
    assert_eq!(
        (tiles.position, tiles.opacity_centi, tiles.scale_centi),
        (Some(WatermarkPosition::Tile), Some(100), None)
    );
    let centred = spec("watermark(plain,center,-5,0)").watermark.unwrap();
    assert_eq!(centred.name, "plain");
    assert_eq!(
        centred.position,
        Some(WatermarkPosition::At(Gravity::Point {
            x_milli: 500,
            y_milli: 1000
        }))
    );
    for (f, named) in [
        ("watermark(other.png,0,0,0)", "site's watermarks"),
        ("watermark(plain,repeat,0,0)", "both axes"),
        ("watermark(plain,10p,0,0)", "pixels"),
        ("watermark(plain,0,0,101)", "alpha"),
        ("watermark(plain,0,0,0,0)", "w_ratio"),
        ("watermark(plain,0,0,0,none,50)", "h_ratio"),
    ] {
        let r = refused(&p, &format!("/thumbor/unsafe/300x0/filters:{f}/a.jpg"));
        assert_eq!(r.status, 400, "{f}");
        assert!(r.message.contains(named), "{f}: {}", r.message);
    }
}
