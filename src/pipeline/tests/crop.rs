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

/// `photo` at width 400 (400x301 for FreshFlower) framed in white on a 500x400 canvas, as
/// `format` (a real output of this pipeline, so the border is what a site would serve): 50 px
/// left and right, 49 or 50 above and below.
fn padded(photo: &[u8], format: &str) -> Vec<u8> {
    let spec = parse_options(&format!(
        "width=400,height=400,fit=pad,background=white,format={format}"
    ))
    .unwrap();
    let framed = run(photo, &spec).bytes;
    let spec = parse_options(&format!(
        "width=500,height=400,fit=pad,background=white,format={format}"
    ))
    .unwrap();
    run(&framed, &spec).bytes
}

#[test]
fn trim_border_cuts_a_white_frame_back_to_the_picture() {
    let photo = fixture("photos/FreshFlower.jpg"); // 1600x1203: 400x301 at width 400
    let picture = output(&photo, "width=400");
    assert_eq!((picture.width, picture.height), (400, 301));
    // Lossless: exactly the picture, at any tolerance that keeps the photo's own whites in.
    let png = padded(&photo, "png");
    let got = output(&png, "trim=border,trim.border.tolerance=0");
    assert_eq!((got.width, got.height), (400, 301));
    assert!(picture_distance(&got, &picture) < 1.0);
    // JPEG ringing around the frame's edge: the default tolerance cuts to within a few pixels
    // (tolerance 10 leaves 14 columns of ringing here, 60 none).
    let jpeg = padded(&photo, "jpeg");
    let got = output(&jpeg, "trim=border");
    assert!(
        (400..=404).contains(&got.width) && (301..=305).contains(&got.height),
        "{}x{}",
        got.width,
        got.height
    );
    // keep leaves that much frame; a colour given explicitly works like the corner's.
    let got = output(
        &png,
        "trim=border,trim.border.keep=10,trim.border.color=#ffffff",
    );
    assert_eq!((got.width, got.height), (420, 321));
    // Then the rest of the spec applies to what is left: a thumbnail of the picture alone.
    let got = output(&png, "trim=border,trim.border.tolerance=0,width=200");
    assert_eq!((got.width, got.height), (200, 151));
    let spec = parse_options("width=200").unwrap();
    let want = geometry::fit(picture.clone(), &spec, &Limits::default()).unwrap();
    assert!(picture_distance(&got, &want) < 2.0);
    // A crop applies inside what the trim kept, in the original's pixels: with the frame 50 px
    // left and 49 or 50 above, this is the picture's top-left 100 x 100 or 101.
    let got = output(
        &png,
        "trim=border,trim.border.tolerance=0,trim.left=0,trim.top=0,trim.width=150,\
         trim.height=150",
    );
    assert_eq!(got.width, 100);
    assert!((100..=101).contains(&got.height), "{}", got.height);
    assert!(picture_distance(&got, &cut(&picture, 0, 0, 100, got.height)) < 1.0);
    // A crop wholly in the frame leaves nothing: 400.
    let spec =
        parse_options("trim=border,trim.left=0,trim.top=0,trim.width=40,trim.height=40").unwrap();
    let r = process(&png, &spec, Accepts::default(), &Limits::default());
    assert!(matches!(r, Err(PipelineError::BadOptions(_))), "{r:?}");
}

#[test]
fn trim_border_keeps_a_picture_without_a_frame_whole() {
    let photo = fixture("photos/GreenMeadow.jpg"); // 1280x1024, no border
    let got = output(&photo, "trim=border,width=320");
    assert_eq!((got.width, got.height), (320, 256));
    let want = output(&photo, "width=320");
    assert!(picture_distance(&got, &want) < 1.0);
}

/// Fuzz finding 13: the footprint (what admission and `limits.max_output_pixels` go by) is
/// read from the header, but what `trim=border` keeps is known only from the pixels, and a
/// trim that changes the aspect ratio makes a one-sided resize taller or wider than the whole
/// picture would. The footprint now takes the largest output any trim can lead to: never
/// smaller than what the pipeline makes, and no side past the output limit.
#[test]
fn r_fuzz_the_footprint_bounds_what_a_border_trim_leads_to() {
    use crate::pipeline::footprint;
    use image::ImageEncoder;
    // A dark column 20 px wide, top to bottom, in the middle of a white 400x300 frame: the
    // trim keeps 20x300, taller than the whole by far.
    let (w, h) = (400u32, 300u32);
    let rgb: Vec<u8> = (0..w * h)
        .flat_map(|i| {
            let x = i % w;
            if (190..210).contains(&x) {
                [20, 40, 90]
            } else {
                [255, 255, 255]
            }
        })
        .collect();
    let mut png = Vec::new();
    image::codecs::png::PngEncoder::new(&mut png)
        .write_image(&rgb, w, h, image::ExtendedColorType::Rgb8)
        .unwrap();
    let limits = Limits::default();
    for (options, made) in [
        // Scale-down (the default) never enlarges the 20-px-wide column: 10 wide, 150 tall.
        ("trim=border,width=10", (10, 150)),
        // Enlarging to 100 wide: 1,500 tall, where the whole picture would be 75.
        ("trim=border,width=100,fit=contain", (100, 1500)),
        ("trim=border,height=600,fit=contain", (40, 600)),
        ("trim=border,width=60,height=60,fit=contain", (4, 60)),
        ("trim=border,width=60,height=60,fit=pad", (60, 60)),
        (
            "trim=border,width=10,dpr=2,border=color:white;width:3",
            (32, 312),
        ),
        ("trim=border,height=30,rotate=90,fit=contain", (450, 30)),
        ("trim=border,crop=300x300,width=10", (10, 150)),
        ("trim=border", (20, 300)),
    ] {
        let spec = parse_options(&format!("{options},format=png")).unwrap();
        let out = run(&png, &spec);
        assert_eq!((out.width, out.height), made, "{options}");
        let print = footprint::footprint(&png, &spec, Accepts::default(), &limits).unwrap();
        assert!(
            u64::from(out.width) * u64::from(out.height) <= print.output_pixels(),
            "{options}: made {made:?}, footprint {:?}",
            print.canvas
        );
        assert!(
            print.canvas.0 >= out.width && print.canvas.1 >= out.height,
            "{options}"
        );
        let max = limits.max_output_dimension;
        assert!(print.canvas.0 <= max && print.canvas.1 <= max, "{options}");
        // Without the trim the footprint is the whole picture's output, as before (for a PNG
        // upright or turned by an EXIF orientation it learns only while decoding).
        let whole = options.replacen("trim=border", "metadata=none", 1);
        let spec = parse_options(&format!("{whole},format=png")).unwrap();
        let out = run(&png, &spec);
        let print = footprint::footprint(&png, &spec, Accepts::default(), &limits).unwrap();
        let turned = [
            geometry::output_sizes(w, h, &spec).1,
            geometry::output_sizes(h, w, &spec).1,
        ];
        assert!(turned.contains(&print.canvas), "{whole}");
        assert!(turned.contains(&(out.width, out.height)), "{whole}");
        assert!(u64::from(out.width) * u64::from(out.height) <= print.output_pixels());
    }
    // A trim that would run past the output limit is refused by the pipeline as before (a
    // one-pixel line enlarged 8,192 times); its footprint stops at the limit.
    let spec = parse_options("trim=border,width=2000,fit=contain,format=png").unwrap();
    let print = footprint::footprint(&png, &spec, Accepts::default(), &limits).unwrap();
    assert_eq!(print.canvas, (2000, limits.max_output_dimension));
}
