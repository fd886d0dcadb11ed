//! `gravity=auto` through the whole pipeline: a real photo placed off-centre on a plain,
//! saturated background is inside the crop for several boxes and positions (through JPEG's
//! shrink-on-load and EXIF-free `rotate`), a photo's crop is the same when asked again, and
//! an animation's frames share one window.

use super::{fixture, picture_distance, run, upright};
use crate::imaging::{jpeg, Effort, Raster};
use crate::pipeline::geometry;
use crate::pipeline::limits::Limits;
use crate::spec::parse_options;

/// A saturated blue: raw colourfulness would rank it above the photo, which it must not.
const BACKGROUND: [u8; 3] = [30, 90, 200];

/// The photo fixture shrunk to `w` x `h`.
fn subject(w: u32, h: u32) -> Raster {
    let photo = upright(&fixture("photos/FreshFlower.jpg"));
    let spec = parse_options(&format!("width={w},height={h},fit=squeeze")).unwrap();
    geometry::fit(photo, &spec, &Limits::default()).unwrap()
}

/// A `w` x `h` JPEG of [`BACKGROUND`] with `sub` pasted at `(x, y)`.
fn scene(w: u32, h: u32, sub: &Raster, (x, y): (u32, u32)) -> Vec<u8> {
    let mut data: Vec<u8> = BACKGROUND.repeat((w * h) as usize);
    let c = usize::from(sub.channels);
    for row in 0..sub.height {
        for col in 0..sub.width {
            let s = (row as usize * sub.width as usize + col as usize) * c;
            let d = (((y + row) * w + x + col) * 3) as usize;
            data[d..d + 3].copy_from_slice(&sub.data[s..s + 3]);
        }
    }
    jpeg::encode(&Raster::new(w, h, 3, data), 92, false, Effort::Normal).unwrap()
}

/// Width and height of the box around what is not background in `img` (rows and columns with
/// a few clearly different pixels, so JPEG ringing does not count).
fn subject_extent(img: &Raster) -> (u32, u32) {
    let c = usize::from(img.channels);
    let differs = |x: u32, y: u32| {
        let i = (y as usize * img.width as usize + x as usize) * c;
        let d: i32 = (0..3)
            .map(|k| (i32::from(img.data[i + k]) - i32::from(BACKGROUND[k])).abs())
            .sum();
        d > 60
    };
    let cols: Vec<u32> = (0..img.width)
        .filter(|&x| (0..img.height).filter(|&y| differs(x, y)).count() >= 3)
        .collect();
    let rows: Vec<u32> = (0..img.height)
        .filter(|&y| (0..img.width).filter(|&x| differs(x, y)).count() >= 3)
        .collect();
    match (cols.first(), cols.last(), rows.first(), rows.last()) {
        (Some(l), Some(r), Some(t), Some(b)) => (r - l + 1, b - t + 1),
        _ => (0, 0),
    }
}

/// The subject, `size` in the scene, is whole in `img` at `scale` (within the resize's blur).
fn assert_whole(img: &Raster, size: (f64, f64), scale: f64, what: &str) {
    let got = subject_extent(img);
    let want = (size.0 * scale, size.1 * scale);
    assert!(
        (f64::from(got.0) - want.0).abs() <= 3.0 && (f64::from(got.1) - want.1).abs() <= 3.0,
        "{what}: subject {got:?} in the output, {want:?} when whole"
    );
}

fn output(input: &[u8], options: &str) -> Raster {
    let spec = parse_options(&format!("{options},format=png")).unwrap();
    let out = run(input, &spec);
    let img = upright(&out.bytes);
    assert_eq!(
        (img.width, img.height),
        (out.width, out.height),
        "{options}"
    );
    img
}

#[test]
fn an_off_centre_subject_is_inside_the_crop_for_every_box_and_place() {
    let sub = subject(240, 180);
    // (scene size, where the subject is): wide scenes crop across, tall ones down.
    for ((w, h), at) in [
        ((1600, 600), (20, 300)),
        ((1600, 600), (1300, 40)),
        ((1600, 600), (1000, 400)),
        ((500, 1400), (200, 30)),
        ((500, 1400), (10, 1200)),
    ] {
        let input = scene(w, h, &sub, at);
        for (bw, bh) in [(300, 300), (200, 120), (90, 160)] {
            let options = format!("width={bw},height={bh},fit=cover,gravity=auto");
            let img = output(&input, &options);
            assert_eq!((img.width, img.height), (bw, bh), "{options}");
            // The window is the largest box of the output's shape: its scale gives the size
            // the whole subject has in the output.
            let scale = (f64::from(bw) / f64::from(w)).max(f64::from(bh) / f64::from(h));
            let want = (240.0 * scale, 180.0 * scale);
            let what = format!("{w}x{h} scene, subject at {at:?}, {options}");
            assert_whole(&img, (240.0, 180.0), scale, &what);
            // The centre would have cut it off (or missed it) in every one of these scenes
            // but the one with the subject near the middle.
            let centred = output(&input, &format!("width={bw},height={bh},fit=cover"));
            if at != (1000, 400) {
                let c = subject_extent(&centred);
                assert!(
                    (f64::from(c.0) - want.0).abs() > 3.0 || (f64::from(c.1) - want.1).abs() > 3.0,
                    "{options}: the centre already held the subject; the case tests nothing"
                );
            }
        }
    }
}

#[test]
fn a_photo_crops_the_same_way_every_time_and_at_every_size() {
    let input = fixture("photos/FreshFlower.jpg"); // 1600x1203
    let first = output(&input, "width=200,height=400,fit=cover,gravity=auto");
    for _ in 0..3 {
        let again = output(&input, "width=200,height=400,fit=cover,gravity=auto");
        assert_eq!((again.width, again.height), (200, 400));
        let d = picture_distance(&first, &again);
        assert!(d < 0.01, "a repeated request differs: distance {d}");
    }
    // A larger box of the same shape (decoded at another scale) picks the same window.
    let large = output(&input, "width=400,height=800,fit=cover,gravity=auto");
    let spec = parse_options("width=200,height=400,fit=squeeze").unwrap();
    let shrunk = geometry::fit(large, &spec, &Limits::default()).unwrap();
    let d = picture_distance(&first, &shrunk);
    assert!(
        d < 6.0,
        "the window moved with the output size: distance {d}"
    );
}

#[test]
fn auto_gravity_crops_inside_a_region_and_after_rotate() {
    let sub = subject(240, 180);
    let input = scene(1600, 600, &sub, (1300, 40));
    // Turned a quarter clockwise, the scene is 600x1600 with the subject near the bottom; the
    // crop still finds it.
    let img = output(
        &input,
        "rotate=90,width=300,height=300,fit=cover,gravity=auto",
    );
    assert_whole(&img, (180.0, 240.0), 300.0 / 600.0, "turned");
    // Inside a `trim` region (x 700-1600, whose centre would cut the subject in two) the
    // window moves within the region to the subject.
    let img = output(
        &input,
        "trim.left=700,trim.top=0,width=200,height=200,fit=cover,gravity=auto",
    );
    assert_whole(&img, (240.0, 180.0), 200.0 / 600.0, "in a region");
    let centred = output(
        &input,
        "trim.left=700,trim.top=0,width=200,height=200,fit=cover",
    );
    assert!(
        subject_extent(&centred).0 < 70,
        "the region's centre holds the subject"
    );
}

#[test]
fn an_animation_keeps_the_window_its_first_frame_chose() {
    use image::codecs::gif::GifEncoder;
    use image::{AnimationDecoder, Delay, Frame, RgbaImage};
    // Two 600x200 frames: a busy square at the left end in the first, at the right in the
    // second. One window for all frames means the first frame's.
    let frame = |x0: u32| {
        let img = RgbaImage::from_fn(600, 200, |x, y| {
            let busy = (x0..x0 + 120).contains(&x) && (50..150).contains(&y);
            image::Rgba(match (busy, (x / 6 + y / 6) % 2 == 0) {
                (false, _) => [128, 128, 128, 255],
                (true, true) => [240, 220, 20, 255],
                (true, false) => [10, 30, 120, 255],
            })
        });
        Frame::from_parts(img, 0, 0, Delay::from_numer_denom_ms(100, 1))
    };
    let mut gif = Vec::new();
    {
        let mut enc = GifEncoder::new(&mut gif);
        enc.encode_frames([frame(10), frame(470)]).unwrap();
    }
    let spec = parse_options("width=100,height=100,fit=cover,gravity=auto,format=webp").unwrap();
    let out = run(&gif, &spec);
    let decoder = image::codecs::webp::WebPDecoder::new(std::io::Cursor::new(&out.bytes)).unwrap();
    let frames: Vec<RgbaImage> = decoder
        .into_frames()
        .map(|f| f.unwrap().into_buffer())
        .collect();
    assert_eq!(frames.len(), 2);
    let busy = |img: &RgbaImage| {
        img.pixels()
            .filter(|p| (i32::from(p[0]) - 128).abs() + (i32::from(p[2]) - 128).abs() > 80)
            .count()
    };
    // The square is 120x100 of a 200x200 window, scaled by a half: 60x50 pixels, of which
    // the resize blends some of the checks into greys.
    assert!(busy(&frames[0]) > 1500, "first frame: {}", busy(&frames[0]));
    assert!(busy(&frames[1]) < 100, "second frame: {}", busy(&frames[1]));
}
