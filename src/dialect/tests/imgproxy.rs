//! imgproxy's URL form: URLs as `@imgproxy/imgproxy-node` 1.1.0 writes them, options mapped to
//! the canonical spec, signatures, sources, and refusals that name the option.

use super::*;
use crate::route::Source;
use crate::spec::{
    parse_options, Crop, Extent, Fit, FormatRequest, Gravity, Metadata, OutputFormat, Rgba,
};

fn policy() -> UrlPolicy {
    let mut presets = Presets::default();
    presets
        .0
        .insert("small".into(), "width=64,quality=50".into());
    UrlPolicy {
        imgproxy_prefix: Some("/imgproxy".into()),
        presets,
        ..UrlPolicy::default()
    }
}

#[test]
fn urls_written_by_imgproxy_node() {
    // generateImageUrl({url: "http://example.com/photos/a.jpg", options: {resizing_type: "fit",
    // width: 300, height: 200, gravity: {type: "no"}, enlarge: 1, format: "webp"}})
    let r = resolved(
        &policy(),
        "/imgproxy/insecure/el:t/f:webp/g:no/h:200/rt:fit/w:300/aHR0cDovL2V4YW1wbGUuY29tL3Bob3Rvcy9hLmpwZw",
    );
    assert_eq!(r.dialect, Dialect::Imgproxy);
    assert_eq!(
        r.spec,
        parse_options("width=300,height=200,fit=contain,gravity=top,format=webp").unwrap()
    );
    assert_eq!(
        r.source,
        Source::Url {
            https: false,
            host: "example.com".into(),
            port: None,
            path: "/photos/a.jpg".into()
        }
    );
    // The same with a plain relative source, every option imgate maps.
    let r = resolved(
        &policy(),
        "/imgproxy/insecure/ar:t/bg:255:0:0/bl:2/cb:x1/dpr:2/ex:t:ce/q:80/rs:fit:100:100/rot:90/sh:1/sm:f/plain//photos/a.jpg",
    );
    assert_eq!(r.source, Source::Path("/photos/a.jpg".into()));
    let s = &r.spec;
    assert_eq!(
        (s.width, s.height, s.dpr_centi),
        (Some(100), Some(100), 200)
    );
    assert_eq!(s.fit, Fit::Pad, "fit with extend pads");
    assert_eq!(s.background, Some(Rgba([255, 0, 0, 255])));
    assert_eq!(s.blur_deci, Some(40), "sigma 2 is radius 4");
    assert_eq!(s.sharpen_deci, Some(20));
    assert_eq!((s.quality, s.rotate), (Some(80), Some(90)));
    assert_eq!(s.metadata, Metadata::Keep);
    assert_eq!(s.cachebuster.as_deref(), Some("x1"));
    // Signed with key "key" and salt "salt", source `local:///photos/a.jpg`.
    let p = UrlPolicy {
        signing: Some(Signing {
            keys: vec![key("key", "salt")],
            required: true,
        }),
        ..policy()
    };
    let url =
        "/imgproxy/Z5Vp2c4_5YaabdzWJO3LZUAoDprtzfgj4SMbHB37Kk0/s:50/bG9jYWw6Ly8vcGhvdG9zL2EuanBn";
    let r = resolved(&p, url);
    assert_eq!(r.spec.width, Some(50));
    assert_eq!(r.source, Source::Path("/photos/a.jpg".into()));
    let r = refused(&p, &url.replace("s:50", "s:51"));
    assert_eq!((r.status, r.reason), (403, RefusalReason::BadSignature));
    let r = refused(&p, "/imgproxy/insecure/s:50/bG9jYWw6Ly8vcGhvdG9zL2EuanBn");
    assert_eq!((r.status, r.reason), (403, RefusalReason::MissingSignature));
}

#[test]
fn resizing_types_enlarge_and_extend_choose_the_fit() {
    let fit = |opts: &str| {
        resolved(&policy(), &format!("/imgproxy/_/{opts}/plain/a.jpg"))
            .spec
            .fit
    };
    assert_eq!(
        fit("w:10"),
        Fit::ScaleDown,
        "imgproxy's default is fit, not enlarging"
    );
    assert_eq!(fit("rs:fit:10:10:1"), Fit::Contain);
    assert_eq!(fit("rs:fit:10:10:0:1"), Fit::Pad);
    assert_eq!(fit("rt:fill/s:10:10"), Fit::Crop);
    assert_eq!(fit("rt:fill-down/s:10:10"), Fit::Crop);
    assert_eq!(fit("rt:fill/s:10:10/el:1"), Fit::Cover);
    assert_eq!(fit("rt:force/s:10:10"), Fit::Squeeze);
    // Later options win; empty arguments keep what was set.
    let r = resolved(&policy(), "/imgproxy/_/w:10/rs:fill::20/plain/a.jpg");
    assert_eq!((r.spec.width, r.spec.height), (Some(10), Some(20)));
    let r = resolved(&policy(), "/imgproxy/_/w:10/w:0/plain/a.jpg");
    assert_eq!(r.spec.width, None, "0 is auto");
}

#[test]
fn auto_fills_when_orientations_agree_and_fits_when_not() {
    let spec = |opts: &str| resolved(&policy(), &format!("/imgproxy/_/{opts}/plain/a.jpg")).spec;
    let s = spec("rt:auto/s:300:200");
    assert_eq!((s.fit, s.fit_across), (Fit::Crop, Some(Fit::ScaleDown)));
    let s = spec("rt:auto/s:300:200/el:1");
    assert_eq!((s.fit, s.fit_across), (Fit::Cover, Some(Fit::Contain)));
    let s = spec("rt:auto/s:300:200/ex:1");
    assert_eq!((s.fit, s.fit_across), (Fit::Crop, Some(Fit::Pad)));
    assert_eq!(
        s,
        parse_options("width=300,height=200,fit=crop,fit.across=pad").unwrap()
    );
}

#[test]
fn padding_is_a_border_of_the_background() {
    let spec = |opts: &str| resolved(&policy(), &format!("/imgproxy/_/{opts}/plain/a.jpg")).spec;
    let sides = |opts: &str| spec(opts).border.map(|b| (b.colour, b.sides()));
    assert_eq!(sides("pd:10"), Some((None, [10, 10, 10, 10])));
    assert_eq!(sides("pd:10:20"), Some((None, [10, 20, 10, 20])));
    assert_eq!(sides("padding:10:20:30"), Some((None, [10, 20, 30, 20])));
    assert_eq!(sides("pd:::30:40"), Some((None, [0, 0, 30, 40])));
    assert_eq!(sides("pd:0"), None);
    assert_eq!(
        spec("pd:5:6/bg:ff0000/w:50"),
        parse_options("border=top:5;right:6;bottom:5;left:6,background=#ff0000,width=50").unwrap()
    );
    assert_eq!(
        refused(&policy(), "/imgproxy/_/pd:1001/plain/a.jpg").status,
        400
    );
}

#[test]
fn crop_is_a_region_read_in_the_turned_frame() {
    let spec = |opts: &str| resolved(&policy(), &format!("/imgproxy/_/{opts}/plain/a.jpg")).spec;
    // Pixels, fractions and 0 (the whole side); no gravity of its own follows `g`.
    assert_eq!(
        spec("c:300:0.5").crop,
        Some(Crop::Sized {
            width: Extent::Pixels(300),
            height: Extent::Milli(500),
            gravity: None
        })
    );
    assert_eq!(
        spec("crop:0:100:sowe/w:50"),
        parse_options("crop=0x100,crop.gravity=bottom-left,width=50").unwrap()
    );
    assert_eq!(spec("c:0:0/w:50"), parse_options("width=50").unwrap());
    // imgproxy reads the region after `rotate`; imgate before it: a 300x100 region at the
    // top of the turned picture is 100x300 on the left of the upright one (turned 90
    // clockwise, the left edge comes to the top).
    assert_eq!(
        spec("rot:90/c:300:100:no").crop,
        Some(Crop::Sized {
            width: Extent::Pixels(100),
            height: Extent::Pixels(300),
            gravity: Some(Gravity::Left)
        })
    );
    // Without its own gravity it follows the main one, carried through the turn too.
    assert_eq!(
        spec("rot:180/g:fp:0.2:0.1/c:10:10").crop,
        Some(Crop::Sized {
            width: Extent::Pixels(10),
            height: Extent::Pixels(10),
            gravity: Some(Gravity::Point {
                x_milli: 800,
                y_milli: 900
            })
        })
    );
}

#[test]
fn gravity_format_presets_and_sources() {
    let spec = |opts: &str| resolved(&policy(), &format!("/imgproxy/_/{opts}/plain/a.jpg")).spec;
    assert_eq!(spec("g:sowe").gravity, Gravity::BottomLeft);
    assert_eq!(spec("g:sm").gravity, Gravity::Auto);
    assert_eq!(
        spec("g:fp:0.25:0.75").gravity,
        Gravity::Point {
            x_milli: 250,
            y_milli: 750
        }
    );
    assert_eq!(spec("bg:00ff00").background, Some(Rgba([0, 255, 0, 255])));
    assert_eq!(spec("q:0").quality, None, "0 is the default");
    // A preset applies where it stands; later options override it.
    let s = spec("pr:small/q:90");
    assert_eq!((s.width, s.quality), (Some(64), Some(90)));
    let s = spec("q:90/pr:small");
    assert_eq!(s.quality, Some(50));
    // The extension after the source sets the format, for plain and base64 sources.
    let r = resolved(&policy(), "/imgproxy/_/w:5/plain/photos/a.jpg@png");
    assert_eq!(r.spec.format, FormatRequest::Fixed(OutputFormat::Png));
    assert_eq!(r.source, Source::Path("/photos/a.jpg".into()));
    let r = resolved(&policy(), "/imgproxy/_/w:5/L3Bob3Rvcy9hLmpwZw.webp");
    assert_eq!(r.spec.format, FormatRequest::Fixed(OutputFormat::Webp));
    assert_eq!(r.source, Source::Path("/photos/a.jpg".into()));
    // Base64 split by slashes, and an escaped plain URL with a query and a space.
    let r = resolved(
        &policy(),
        "/imgproxy/_/w:5/aHR0cHM6Ly9/pbWcuZXhhbXBsZS5jb20vYS5qcGc",
    );
    assert_eq!(r.source.key(), "https://img.example.com/a.jpg");
    let r = resolved(
        &policy(),
        "/imgproxy/_/w:5/plain/https%3A%2F%2Fimg.example.com%2Fmy%20cat.jpg%3Fv%3D2@avif",
    );
    assert_eq!(r.source.key(), "https://img.example.com/my%20cat.jpg?v=2");
    // The same transform in both dialects is one canonical path.
    let cf = resolved(
        &policy(),
        "/cdn-cgi/image/width=5,format=avif/https://img.example.com/my%20cat.jpg?v=2",
    );
    assert_eq!(
        canonical_path(&r.spec.canonical(), &r.source.key()),
        canonical_path(&cf.spec.canonical(), &cf.source.key())
    );
}

#[test]
fn what_imgate_cannot_do_is_refused_naming_it() {
    for (opts, named) in [
        ("c:-1:20", "c: width"),
        ("crop:10:200001", "crop: width"),
        ("c:10:10:no:3:0", "offsets"),
        ("rt:smart", "auto"),
        ("ar:f", "auto_rotate"),
        ("g:no:5:0", "offsets"),
        ("f:gif", "gif"),
        ("wm:0.5", "imgproxy.watermark"),
        ("dpr:5", "dpr"),
        ("w:abc", "w"),
        ("pr:nope", "nope"),
        ("bl:0.1", "blur"),
    ] {
        let r = refused(&policy(), &format!("/imgproxy/_/{opts}/plain/a.jpg"));
        assert_eq!(r.status, 400, "{opts}");
        assert!(r.message.contains(named), "{opts}: {}", r.message);
    }
    for url in [
        "/imgproxy/_",
        "/imgproxy/_/w:5",
        "/imgproxy/_/w:5/!!notbase64",
        "/imgproxy/_/w:5/plain/s3://bucket/a.jpg",
        "/imgproxy/_/w:5/plain/../etc/passwd",
    ] {
        assert_eq!(refused(&policy(), url).status, 400, "{url}");
    }
    // Not under the prefix, or no imgproxy on the site: not a transform.
    assert!(resolve(&policy(), "/imgproxyx/_/w:5/plain/a.jpg").is_none());
    assert!(resolve(&UrlPolicy::default(), "/imgproxy/_/w:5/plain/a.jpg").is_none());
    // presets_only: only pr:.
    let p = UrlPolicy {
        presets_only: true,
        ..policy()
    };
    resolved(&p, "/imgproxy/_/pr:small/plain/a.jpg");
    assert_eq!(
        refused(&p, "/imgproxy/_/pr:small/w:5/plain/a.jpg").reason,
        RefusalReason::NotAllowed
    );
    // A host of its own.
    let p = UrlPolicy {
        imgproxy_prefix: Some("/".into()),
        ..policy()
    };
    assert_eq!(resolved(&p, "/_/w:7/plain/a.jpg").spec.width, Some(7));
}

#[test]
fn wm_lays_the_sites_imgproxy_watermark_with_its_adjustments() {
    use crate::spec::{Watermark, WatermarkPosition};
    let p = UrlPolicy {
        watermarks: Some(vec![("brand".into(), None)]),
        imgproxy_watermark: Some("brand".into()),
        ..policy()
    };
    let spec = |opts: &str| resolved(&p, &format!("/imgproxy/_/w:300/{opts}/plain/a.jpg")).spec;
    assert_eq!(
        spec("wm:0.5:soea:10:20:0.25").watermark,
        Some(Watermark {
            name: "brand".into(),
            opacity_centi: Some(50),
            position: Some(WatermarkPosition::At(Gravity::BottomRight)),
            offset: Some((10, 20)),
            scale_centi: Some(25),
        })
    );
    assert_eq!(
        spec("watermark:1:re").watermark.unwrap().position,
        Some(WatermarkPosition::Tile)
    );
    let only_opacity = spec("wm:0.8").watermark.unwrap();
    assert_eq!(
        (
            only_opacity.opacity_centi,
            only_opacity.position,
            only_opacity.offset
        ),
        (Some(80), None, None)
    );
    // Opacity 0 is no watermark, as in imgproxy.
    assert_eq!(spec("wm:0").watermark, None);
    // The same spec as imgate's own options say.
    assert_eq!(
        spec("wm:0.5:nowe:3:4:0.5"),
        parse_options(
            "width=300,watermark=brand,watermark.opacity=0.5,watermark.position=top-left,\
             watermark.offset=3;4,watermark.scale=0.5"
        )
        .unwrap()
    );
    for (opts, named) in [
        ("wm:2", "opacity"),
        ("wm:0.5:sm", "sm"),
        ("wm:0.5:ch", "ch"),
        ("wm:0.5:ce:-1", "offsets"),
        ("wm:0.5:ce:0:0:2", "scale"),
    ] {
        let r = refused(&p, &format!("/imgproxy/_/{opts}/plain/a.jpg"));
        assert_eq!(r.status, 400, "{opts}");
        assert!(r.message.contains(named), "{opts}: {}", r.message);
    }
}
