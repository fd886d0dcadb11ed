//! Regions (`trim`, `crop`, imgproxy's `crop`, thumbor's `AxB:CxD`) on real photos: the output
//! is exactly the named pixels of the upright original, whatever the EXIF orientation, the
//! later `rotate` or the decoder's shrink-on-load; compared by size exactly and by look.

use super::{fixture, picture_distance, run, upright, SAME_PICTURE};
use crate::imaging::orientation::{self, Orientation};
use crate::imaging::Raster;
use crate::pipeline::error::PipelineError;
use crate::pipeline::geometry;
use crate::pipeline::limits::Limits;
use crate::pipeline::process;
use crate::spec::{parse_options, Accepts, TransformSpec};

/// The `width` x `height` block of `img` at (`left`, `top`).
fn cut(img: &Raster, left: u32, top: u32, width: u32, height: u32) -> Raster {
    let c = usize::from(img.channels);
    let mut data = Vec::with_capacity(width as usize * height as usize * c);
    for y in top..top + height {
        let at = (y as usize * img.width as usize + left as usize) * c;
        data.extend_from_slice(&img.data[at..at + width as usize * c]);
    }
    Raster::new(width, height, img.channels, data)
}

/// Runs `options` (lossless PNG out) and decodes the result.
fn output(input: &[u8], options: &str) -> Raster {
    let spec = parse_options(&format!("{options},format=png")).unwrap();
    let out = run(input, &spec);
    let img = upright(&out.bytes);
    assert_eq!((img.width, img.height), (out.width, out.height));
    img
}

#[test]
fn regions_are_exactly_the_pixels_they_name() {
    let input = fixture("photos/FreshFlower.jpg"); // 1600x1203
    let full = upright(&input);
    for (options, (l, t, w, h)) in [
        ("trim=100;200;300;400", (400, 100, 1000, 803)),
        ("trim.left=1500,trim.top=3", (1500, 3, 100, 1200)),
        (
            "trim.left=10,trim.top=20,trim.width=300,trim.height=5000",
            (10, 20, 300, 1183),
        ),
        ("crop=400x300", (600, 452, 400, 300)),
        ("crop=0.25x0,crop.gravity=right", (1200, 0, 400, 1203)),
        ("crop=200x200,gravity=bottom-left", (0, 1003, 200, 200)),
        ("crop=200x200,crop.gravity=0.1x0.1", (60, 20, 200, 200)),
    ] {
        let got = output(&input, options);
        assert_eq!((got.width, got.height), (w, h), "{options}");
        let want = cut(&full, l, t, w, h);
        let d = picture_distance(&got, &want);
        assert!(d < 0.5, "{options}: distance {d}");
    }
}

#[test]
fn a_cropped_thumbnail_is_the_region_resized_even_when_shrunk_on_load() {
    // 2560x1600; a 1/8 DCT decode would be 320x200, but the region needs more.
    let input = fixture("photos/LadyBird.jpg");
    let full = upright(&input);
    let region = cut(&full, 1000, 400, 800, 600);
    for options in [
        "trim.left=1000,trim.top=400,trim.width=800,trim.height=600,width=200",
        "trim=400;760;600;1000,width=200",
    ] {
        let got = output(&input, options);
        let spec = parse_options("width=200").unwrap();
        let want = geometry::fit(region.clone(), &spec, &Limits::default()).unwrap();
        assert_eq!((got.width, got.height), (200, 150), "{options}");
        let d = picture_distance(&got, &want);
        assert!(d < 2.0, "{options}: distance {d}");
    }
    // A fill on top of a crop covers the region, not the photo.
    let got = output(&input, "crop=0.5x0.5,width=100,height=100,fit=cover");
    let want = geometry::fit(
        cut(&full, 640, 400, 1280, 800),
        &parse_options("width=100,height=100,fit=cover").unwrap(),
        &Limits::default(),
    )
    .unwrap();
    assert!(picture_distance(&got, &want) < 2.0);
}

#[test]
fn regions_are_read_on_the_upright_picture_before_rotate_and_flip() {
    // The same photo stored with EXIF orientations 1, 3, 6 and 8 gives the same crop.
    let dir = "orientation/Landscape_";
    let reference = output(&fixture(&format!("{dir}1.jpg")), "trim=100;900;500;50");
    assert_eq!((reference.width, reference.height), (850, 600));
    for n in [3, 6, 8] {
        let got = output(&fixture(&format!("{dir}{n}.jpg")), "trim=100;900;500;50");
        let d = picture_distance(&got, &reference);
        assert!(d < SAME_PICTURE, "orientation {n}: distance {d}");
    }
    // rotate and flip turn the region after it is cut.
    let input = fixture("photos/FreshFlower.jpg");
    let region = cut(&upright(&input), 0, 0, 500, 300);
    let turned = Orientation {
        turns: 1,
        flip_h: true,
        flip_v: false,
    };
    let want = orientation::apply(region, turned);
    let got = output(
        &input,
        "crop=500x300,crop.gravity=top-left,rotate=90,flip=h",
    );
    assert_eq!((got.width, got.height), (300, 500));
    assert!(picture_distance(&got, &want) < 0.5);
}

#[test]
fn a_region_that_leaves_nothing_is_refused_as_bad_options() {
    let input = fixture("photos/GreenMeadow.jpg"); // 1280x1024
    for options in [
        "trim=600;0;600;0",
        "trim.left=1280",
        "trim.top=5000,width=10",
    ] {
        let spec: TransformSpec = parse_options(options).unwrap();
        let r = process(&input, &spec, Accepts::default(), &Limits::default());
        assert!(
            matches!(r, Err(PipelineError::BadOptions(ref m)) if m.contains("1280x1024")),
            "{options}: {r:?}"
        );
    }
}
