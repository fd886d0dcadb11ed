//! AVIF input tests. Pictures come from three independent writers: libvips/libheif (the
//! corpus's `yellowflower.avif`), the `aomenc` command line (`tests/fixtures/av1/*.obu`:
//! 10-bit limited-range BT.709 and 8-bit monochrome streams, made from corpus photos, see the
//! fixtures README) and our own encoder; `imaging::avif::heif::testing` wraps streams in containers with the
//! properties no encoder here writes (turns, mirrors, clean apertures, grids, broken boxes).
//! Every decode is compared with the picture it was made from, by size exactly and by look.

use crate::imaging::avif::encode::testing::luma_ssim;
use crate::imaging::avif::encode::{encode, encode_streams};
use crate::imaging::avif::heif::testing::{alpha_aux, bx, file, grid_data, ispe, nclx, TestItem};
use crate::imaging::Effort;
use crate::imaging::{sniff, ImageError, Raster, SourceFormat};
use crate::pipeline::context::Ctx;
use crate::pipeline::error::PipelineError;
use crate::pipeline::limits::Limits;
use crate::pipeline::{decode_upright, process};
use crate::spec::{Accepts, FormatRequest, OutputFormat, TransformSpec};
use std::path::Path;

fn fixture(name: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// `width` wide (or the source size), lossless PNG, decoded back to a raster.
pub(super) fn render(input: &[u8], width: Option<u32>) -> Raster {
    let spec = TransformSpec {
        width,
        format: FormatRequest::Fixed(OutputFormat::Png),
        ..TransformSpec::default()
    };
    let out = process(input, &spec, Accepts::default(), &Limits::default()).expect("process");
    decode_upright(&out.bytes, &TransformSpec::default(), &Limits::default()).expect("png")
}

/// Why `input` is refused under `limits`.
fn refusal(input: &[u8], limits: &Limits) -> PipelineError {
    process(input, &TransformSpec::default(), Accepts::default(), limits).unwrap_err()
}

/// Mean of each colour channel.
pub(super) fn mean_rgb(img: &Raster) -> [f64; 3] {
    let ch = usize::from(img.channels);
    let n = (img.data.len() / ch) as f64;
    let mut sum = [0f64; 3];
    for px in img.data.chunks_exact(ch) {
        for c in 0..3 {
            sum[c] += f64::from(px[c]);
        }
    }
    sum.map(|s| s / n)
}

/// Same size, similar look (luma SSIM) and the same colours on average (a swapped or
/// mis-scaled chroma or luma range moves a channel mean by far more than `max_mean_diff`).
pub(super) fn assert_like(
    got: &Raster,
    want: &Raster,
    min_ssim: f64,
    max_mean_diff: f64,
    what: &str,
) {
    assert_eq!(
        (got.width, got.height),
        (want.width, want.height),
        "{what}: size"
    );
    let ssim = luma_ssim(got, want);
    let (g, w) = (mean_rgb(got), mean_rgb(want));
    let worst = (0..3).map(|c| (g[c] - w[c]).abs()).fold(0.0, f64::max);
    eprintln!("{what}: SSIM {ssim:.4}, worst channel mean difference {worst:.2}");
    assert!(
        ssim >= min_ssim && worst <= max_mean_diff,
        "{what}: SSIM {ssim:.4} (>= {min_ssim}), channel means {g:.1?} against {w:.1?}"
    );
}

#[test]
fn sniff_tells_avif_from_heic_and_other_iso_bmff() {
    let avif = fixture("yellowflower.avif");
    assert_eq!(sniff(&avif).unwrap(), SourceFormat::Avif);
    let heic = b"\0\0\0\x18ftypheic\0\0\0\0mif1heic";
    assert_eq!(sniff(heic).unwrap(), SourceFormat::Heic);
    let mp4 = b"\0\0\0\x18ftypisom\0\0\0\0isommp41";
    assert!(matches!(sniff(mp4), Err(ImageError::Unsupported(_))));
    let probe = crate::pipeline::probe(&avif, &Limits::default()).unwrap();
    assert_eq!((probe.width, probe.height, probe.frames), (2560, 1600, 1));
}

#[test]
fn thumbnails_of_avif_are_converted_at_a_reduced_size() {
    let avif = fixture("yellowflower.avif");
    let (spec, limits) = (
        TransformSpec {
            width: Some(300),
            ..TransformSpec::default()
        },
        Limits::default(),
    );
    let mut ctx = Ctx::new(&avif, &spec, Accepts::default(), &limits);
    crate::pipeline::steps::probe::step(&mut ctx).unwrap();
    let shrink = crate::pipeline::steps::decode::plan(&ctx).unwrap();
    assert!(shrink >= 4, "2560 px to 300 px shrinks by {shrink} only");
    crate::pipeline::steps::decode::step(&mut ctx).unwrap();
    let raster = ctx.take_raster();
    assert_eq!(
        (raster.width, raster.height),
        (2560u32.div_ceil(shrink), 1600u32.div_ceil(shrink))
    );
    assert!(raster.width >= 300);
}

#[test]
fn libvips_avif_looks_like_the_photo_it_was_made_from() {
    let got = render(&fixture("yellowflower.avif"), Some(400));
    let want = render(&fixture("photos/YellowFlower.jpg"), Some(400));
    assert_like(&got, &want, 0.97, 2.0, "yellowflower.avif");
}

/// `stream` (an AV1 still) in a container with `props` besides its size.
fn wrap(stream: &[u8], (w, h): (u32, u32), mut props: Vec<Vec<u8>>) -> Vec<u8> {
    props.insert(0, ispe(w, h));
    file(&[TestItem::av1(1, stream, props)], &[], 1)
}

#[test]
fn hdr_pictures_are_mapped_into_sdr_range() {
    // Gray bands at PQ (SMPTE ST 2084) signal levels 0, 130, 148, 192 and 255 of 255: 0,
    // about 102, about 203 (HDR reference white, ITU-R BT.2408), about 1000 and 10,000 cd/m².
    let levels = [0u8, 130, 148, 192, 255];
    let (w, band) = (64u32, 16u32);
    let mut data = Vec::new();
    for &l in &levels {
        data.extend(std::iter::repeat_n(l, (w * band * 3) as usize));
    }
    let src = Raster::new(w, band * levels.len() as u32, 3, data);
    let stream = encode_streams(&src, 95).unwrap().color;
    let shown = |transfer: u16| {
        let avif = wrap(
            &stream,
            (src.width, src.height),
            vec![nclx(9, transfer, 6, true)],
        );
        let got = render(&avif, None);
        // The middle pixel of each band.
        (0..levels.len() as u32)
            .map(|i| got.data[(((i * band + band / 2) * w + w / 2) * 3) as usize])
            .collect::<Vec<u8>>()
    };
    let pq = shown(16);
    // Black stays black; 102 cd/m² is half of reference white in linear light (sRGB 188);
    // reference white is near white (0.93 linear, sRGB 247); brighter is rolled off, not
    // clipped early, and never darker.
    assert!(pq[0] <= 3, "PQ black: {pq:?}");
    assert!((180..=196).contains(&pq[1]), "PQ 102 cd/m²: {pq:?}");
    assert!((240..=252).contains(&pq[2]), "PQ reference white: {pq:?}");
    assert!(
        pq[3] > pq[2] && pq[4] >= pq[3] && pq[4] >= 253,
        "PQ highlights: {pq:?}"
    );
    // HLG: signal 0.75 is reference white on the 1000 cd/m² reference display.
    let hlg = shown(18);
    assert!(hlg[0] <= 3, "HLG black: {hlg:?}");
    assert!(
        hlg.windows(2).all(|p| p[1] >= p[0]),
        "HLG not monotonic: {hlg:?}"
    );
    assert!((240..=252).contains(&hlg[3]), "HLG 0.75 (192/255): {hlg:?}");
}

#[test]
fn ten_bit_limited_range_bt709_stream_decodes_to_its_source() {
    // aomenc, 10-bit 4:2:0, BT.709 matrix and limited range signalled in the stream only.
    let avif = wrap(&fixture("av1/meadow-10bit.obu"), (320, 256), vec![]);
    let want = render(&fixture("photos/GreenMeadow.jpg"), Some(320));
    assert_like(&render(&avif, None), &want, 0.97, 2.0, "10-bit stream");
    // A colour box, when there is one, wins over the stream: read as full range, the same
    // samples lose contrast and no longer match.
    let full = wrap(
        &fixture("av1/meadow-10bit.obu"),
        (320, 256),
        vec![nclx(1, 13, 1, true)],
    );
    let got = render(&full, None);
    let (g, w) = (mean_rgb(&got), mean_rgb(&want));
    assert!(
        (0..3).any(|c| (g[c] - w[c]).abs() > 5.0),
        "the colour box was ignored: {g:?} against {w:?}"
    );
}

#[test]
fn monochrome_stream_decodes_to_gray() {
    let avif = wrap(&fixture("av1/dune-mono.obu"), (240, 150), vec![]);
    let got = render(&avif, None);
    assert!(got
        .data
        .chunks_exact(3)
        .all(|p| p[0] == p[1] && p[1] == p[2]));
    let want = render(&fixture("dune-gray.jpg"), Some(240));
    assert_like(&got, &want, 0.94, 2.0, "monochrome stream");
}

/// A picture with nothing symmetric about it, and an alpha ramp when `alpha`.
fn asymmetric(w: u32, h: u32, alpha: bool) -> Raster {
    // Wide enough that a w x h window fits whatever the photo's shape.
    let photo = render(&fixture("photos/LadyBird.jpg"), Some(w * 2));
    let mut window = Vec::with_capacity((w * h * 3) as usize);
    for y in 0..h {
        window.extend_from_slice(&photo.data[(y * photo.width) as usize * 3..][..w as usize * 3]);
    }
    let mut img = Raster::new(w, h, 3, window);
    if alpha {
        let mut data = Vec::with_capacity((w * h * 4) as usize);
        for (i, px) in img.data.chunks_exact(3).enumerate() {
            data.extend_from_slice(px);
            let (x, y) = (i as u32 % w, i as u32 / w);
            data.push((40 + (x * 150 / w) + (y * 60 / h)) as u8);
        }
        img = Raster::new(w, h, 4, data);
    }
    img
}

/// What a HEIF reader shows for `img` with `irot` quarter turns anticlockwise, then `imir`
/// (0: left-right, 1: top-bottom), computed pixel by pixel from those definitions.
fn turned(img: &Raster, quarter_turns: u8, mirror: Option<u8>) -> Raster {
    let ch = usize::from(img.channels);
    let mut cur = img.clone();
    for _ in 0..quarter_turns {
        // Anticlockwise: new (x, y) shows old (w - 1 - y, x).
        let (w, h) = (cur.width as usize, cur.height as usize);
        let mut data = vec![0; cur.data.len()];
        for y in 0..w {
            for x in 0..h {
                let src = (x * w + (w - 1 - y)) * ch;
                data[(y * h + x) * ch..][..ch].copy_from_slice(&cur.data[src..src + ch]);
            }
        }
        cur = Raster::new(h as u32, w as u32, cur.channels, data);
    }
    if let Some(axis) = mirror {
        let (w, h) = (cur.width as usize, cur.height as usize);
        let mut data = vec![0; cur.data.len()];
        for y in 0..h {
            for x in 0..w {
                let (sx, sy) = if axis == 0 {
                    (w - 1 - x, y)
                } else {
                    (x, h - 1 - y)
                };
                data[(y * w + x) * ch..][..ch]
                    .copy_from_slice(&cur.data[(sy * w + sx) * ch..][..ch]);
            }
        }
        cur = Raster::new(w as u32, h as u32, cur.channels, data);
    }
    cur
}

fn alpha_mean_diff(a: &Raster, b: &Raster) -> f64 {
    let alpha = |r: &Raster| {
        r.data
            .chunks_exact(4)
            .map(|p| f64::from(p[3]))
            .collect::<Vec<_>>()
    };
    let (x, y) = (alpha(a), alpha(b));
    x.iter().zip(&y).map(|(p, q)| (p - q).abs()).sum::<f64>() / x.len() as f64
}

#[test]
fn our_own_avif_output_reads_back_with_its_alpha() {
    for quality in [60, 95] {
        // 95 keeps full-resolution chroma (4:4:4), 60 is 4:2:0.
        let src = asymmetric(96, 64, true);
        let avif = encode(&src, quality, Effort::Normal).unwrap();
        let got = decode_upright(&avif, &TransformSpec::default(), &Limits::default()).unwrap();
        assert_eq!(got.channels, 4, "q{quality}: alpha lost");
        assert_like(&got, &src, 0.96, 2.0, &format!("q{quality}"));
        assert!(
            alpha_mean_diff(&got, &src) < 3.0,
            "q{quality}: alpha differs"
        );
    }
}

/// Transparent pixels' colour must not reach the opaque ones when a thumbnail is made.
#[test]
fn colour_under_transparency_stays_out_of_thumbnails() {
    // Opaque blue left of x = 124, fully transparent red from there: the edge lies inside
    // output column 15 (source columns 120..128) of a width of 32.
    let (w, h) = (256u32, 128u32);
    let mut data = Vec::with_capacity((w * h * 4) as usize);
    for _ in 0..h {
        for x in 0..w {
            data.extend_from_slice(if x < 124 {
                &[0, 0, 255, 255]
            } else {
                &[255, 0, 0, 0]
            });
        }
    }
    let avif = encode(&Raster::new(w, h, 4, data), 95, Effort::Normal).unwrap();
    let got = render(&avif, Some(w / 8));
    assert_eq!((got.width, got.height, got.channels), (32, 16, 4));
    for y in 2..14 {
        let px = &got.data[((y * 32 + 15) * 4) as usize..][..4];
        assert!(px[3] > 64, "row {y}: {px:?} lost the opaque half");
        assert!(
            px[0] < 60,
            "row {y}: {px:?} took red from the transparent side"
        );
    }
}

#[test]
fn turns_mirrors_and_clean_aperture_are_applied() {
    let src = asymmetric(96, 64, true);
    let streams = encode_streams(&src, 95).unwrap();
    let alpha = streams.alpha.as_ref().unwrap();
    // What our encoder writes: BT.601, full range.
    let colour = nclx(1, 13, 6, true);
    for turns in 0..4u8 {
        for mirror in [None, Some(0u8), Some(1u8)] {
            let mut props = vec![ispe(96, 64), colour.clone(), bx(b"irot", &[turns])];
            if let Some(axis) = mirror {
                props.push(bx(b"imir", &[axis]));
            }
            let items = [
                TestItem::av1(1, &streams.color, props),
                TestItem::av1(2, alpha, vec![ispe(96, 64), alpha_aux()]),
            ];
            let avif = file(&items, &[(*b"auxl", 2, vec![1])], 1);
            let got = decode_upright(&avif, &TransformSpec::default(), &Limits::default()).unwrap();
            let want = turned(&src, turns, mirror);
            let what = format!("irot {turns}, imir {mirror:?}");
            assert_like(&got, &want, 0.98, 2.0, &what);
            assert!(alpha_mean_diff(&got, &want) < 3.0, "{what}: alpha");
        }
    }
    // A centred 60x40 clean aperture, 4 px right of centre, then a quarter turn.
    let clap: Vec<u8> = [60u32, 1, 40, 1, 4, 1, 0, 1]
        .iter()
        .flat_map(|v| v.to_be_bytes())
        .collect();
    let props = vec![ispe(96, 64), colour, bx(b"clap", &clap), bx(b"irot", &[1])];
    let avif = file(&[TestItem::av1(1, &streams.color, props)], &[], 1);
    let probe = crate::pipeline::probe(&avif, &Limits::default()).unwrap();
    assert_eq!((probe.width, probe.height), (60, 40));
    let got = decode_upright(&avif, &TransformSpec::default(), &Limits::default()).unwrap();
    let mut window = Vec::new();
    for y in 12..52 {
        window.extend_from_slice(&src.data[(y * 96 + 22) * 4..][..60 * 4]);
    }
    let cropped = Raster::new(60, 40, 4, window);
    let want = turned(&Raster::new(60, 40, 3, rgb_of(&cropped)), 1, None);
    assert_like(&got, &want, 0.98, 2.0, "clap + irot");
}

fn rgb_of(img: &Raster) -> Vec<u8> {
    img.data
        .chunks_exact(4)
        .flat_map(|p| [p[0], p[1], p[2]])
        .collect()
}

#[test]
fn grid_tiles_are_put_together_and_cropped() {
    // Four 48x32 tiles of one picture, shown as 90x60 (the right and bottom tiles cropped).
    let src = asymmetric(96, 64, false);
    let colour = nclx(1, 13, 6, true);
    let mut items = vec![TestItem {
        id: 1,
        kind: *b"grid",
        data: grid_data(2, 2, 90, 60),
        in_idat: true,
        props: vec![ispe(90, 60), colour.clone()],
        ..TestItem::default()
    }];
    for (i, (x0, y0)) in [(0, 0), (48, 0), (0, 32), (48, 32)].into_iter().enumerate() {
        let mut tile = Vec::new();
        for y in y0..y0 + 32 {
            tile.extend_from_slice(&src.data[(y * 96 + x0) * 3..][..48 * 3]);
        }
        let stream = encode_streams(&Raster::new(48, 32, 3, tile), 95)
            .unwrap()
            .color;
        items.push(TestItem::av1(2 + i as u16, &stream, vec![ispe(48, 32)]));
    }
    let avif = file(&items, &[(*b"dimg", 1, vec![2, 3, 4, 5])], 1);
    let got = decode_upright(&avif, &TransformSpec::default(), &Limits::default()).unwrap();
    let mut want = Vec::new();
    for y in 0..60 {
        want.extend_from_slice(&src.data[y * 96 * 3..][..90 * 3]);
    }
    assert_like(&got, &Raster::new(90, 60, 3, want), 0.98, 2.0, "2x2 grid");
    // Tiles that do not cover the canvas are refused.
    items[0].data = grid_data(2, 2, 120, 60);
    items[0].props[0] = ispe(120, 60);
    let avif = file(&items, &[(*b"dimg", 1, vec![2, 3, 4, 5])], 1);
    let err = refusal(&avif, &Limits::default());
    assert!(matches!(err, PipelineError::Undecodable(_)), "{err:?}");
}

#[test]
fn sizes_are_checked_before_decoding_and_against_the_stream() {
    let stream = fixture("av1/meadow-10bit.obu");
    let small = Limits {
        max_source_pixels: 320 * 255,
        ..Limits::default()
    };
    // The container's size is over the limit: refused by the probe.
    let avif = wrap(&stream, (320, 256), vec![]);
    let err = refusal(&avif, &small);
    assert!(matches!(err, PipelineError::TooLarge(_)), "{err:?}");
    // The container lies (says 16x16): the stream's own header is checked before decoding.
    let liar = wrap(&stream, (16, 16), vec![]);
    let err = refusal(&liar, &small);
    assert!(matches!(err, PipelineError::TooLarge(_)), "{err:?}");
    // Under the limit, the mismatch itself is refused.
    let err = refusal(&liar, &Limits::default());
    assert!(matches!(err, PipelineError::Undecodable(_)), "{err:?}");
}

#[test]
fn truncated_and_corrupt_avif_is_refused_cleanly() {
    let good = fixture("yellowflower.avif");
    let spec = TransformSpec {
        width: Some(64),
        ..TransformSpec::default()
    };
    let mut refused = 0;
    for len in [0, 12, 40, 200, 400, good.len() / 2, good.len() - 1] {
        match process(&good[..len], &spec, Accepts::default(), &Limits::default()) {
            Err(PipelineError::Undecodable(_) | PipelineError::Unsupported(_)) => refused += 1,
            Err(e) => panic!("truncated to {len}: {e:?}"),
            // libaom may conceal a short tail; a picture of the right size is then fine.
            Ok(out) => assert_eq!(out.width, 64, "truncated to {len}"),
        }
    }
    assert!(refused >= 5, "only {refused} truncations refused");
    // Flipped bytes in the coded data: a clean error or a picture, never a crash.
    let mut x = 0x2545_F491_4F6C_DD1Du64;
    for _ in 0..20 {
        let mut bad = good.clone();
        for _ in 0..8 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let at = 400 + (x as usize % (good.len() - 400));
            bad[at] ^= (x >> 32) as u8 | 1;
        }
        match process(&bad, &spec, Accepts::default(), &Limits::default()) {
            Ok(out) => assert_eq!(out.width, 64),
            Err(PipelineError::Undecodable(_)) => {}
            Err(e) => panic!("corrupt coded data: {e:?}"),
        }
    }
}

#[test]
fn full_size_colour_is_close_to_its_source() {
    // Encoded at q70 (4:2:0) and read back at full size: with chroma interpolated the RGB
    // error is 39.98 dB PSNR; taking each pixel's nearest chroma sample gave 38.31 dB.
    let src = render(&fixture("photos/YellowFlower.jpg"), Some(600));
    let avif = encode(&src, 70, Effort::Normal).unwrap();
    let got = decode_upright(&avif, &TransformSpec::default(), &Limits::default()).unwrap();
    assert_eq!(
        (got.width, got.height, got.channels),
        (src.width, src.height, 3)
    );
    let squared = got
        .data
        .iter()
        .zip(&src.data)
        .map(|(&a, &b)| (f64::from(a) - f64::from(b)).powi(2))
        .sum::<f64>()
        / src.data.len() as f64;
    let psnr = 10.0 * (255.0f64 * 255.0 / squared).log10();
    assert!(psnr > 39.3, "RGB PSNR {psnr:.2} dB");
}

/// An AVIF image sequence (brand `avis`) with no still picture: `frames` as samples of one
/// AV1 video track, all in one chunk of `mdat`, described by `moov` as ISO/IEC 14496-12 and
/// AV1-ISOBMFF lay it out (hdlr `pict`, an `av01` sample entry with `av1C` and `colr`,
/// `stsz`, `stco`).
fn sequence(frames: &[Vec<u8>], (w, h): (u32, u32)) -> Vec<u8> {
    use crate::imaging::avif::heif::testing::full;
    let ftyp = bx(b"ftyp", b"avis\0\0\0\0avismsf1iso8mif1miaf");
    let mdat = bx(b"mdat", &frames.concat());
    let first = (ftyp.len() + 8) as u32;
    let mut entry = vec![0u8; 78];
    entry[7] = 1; // data_reference_index
    entry[24..26].copy_from_slice(&(w as u16).to_be_bytes());
    entry[26..28].copy_from_slice(&(h as u16).to_be_bytes());
    entry[74..76].copy_from_slice(&24u16.to_be_bytes()); // depth
    entry.extend_from_slice(&bx(b"av1C", &[0x81, 0x00, 0x0C, 0x00]));
    entry.extend_from_slice(&nclx(1, 13, 6, true));
    let stsd = full(
        b"stsd",
        0,
        &[1u32.to_be_bytes().to_vec(), bx(b"av01", &entry)].concat(),
    );
    let mut sizes = [0u32.to_be_bytes(), (frames.len() as u32).to_be_bytes()].concat();
    for f in frames {
        sizes.extend_from_slice(&(f.len() as u32).to_be_bytes());
    }
    let stsz = full(b"stsz", 0, &sizes);
    let stco = full(
        b"stco",
        0,
        &[1u32.to_be_bytes(), first.to_be_bytes()].concat(),
    );
    let stsc = full(
        b"stsc",
        0,
        &[1u32, 1, frames.len() as u32, 1]
            .iter()
            .flat_map(|v| v.to_be_bytes())
            .collect::<Vec<u8>>(),
    );
    let stbl = bx(b"stbl", &[stsd, stsz, stsc, stco].concat());
    let minf = bx(b"minf", &stbl);
    let hdlr = full(b"hdlr", 0, b"\0\0\0\0pict\0\0\0\0\0\0\0\0\0\0\0\0\0");
    let mdia = bx(b"mdia", &[hdlr, minf].concat());
    // A track that is not video comes first, to be skipped.
    let meta_hdlr = full(b"hdlr", 0, b"\0\0\0\0meta\0\0\0\0\0\0\0\0\0\0\0\0\0");
    let other = bx(b"trak", &bx(b"mdia", &meta_hdlr));
    let moov = bx(b"moov", &[other, bx(b"trak", &mdia)].concat());
    [ftyp, mdat, moov].concat()
}

#[test]
fn an_image_sequence_without_a_still_picture_shows_its_first_frame() {
    let photo = render(&fixture("photos/FreshFlower.jpg"), Some(160)); // 160x120
    let size = (photo.width, photo.height);
    // The second frame is the first turned upside down: a different picture.
    let mut flipped = photo.clone();
    flipped.data = photo
        .data
        .chunks_exact(usize::from(photo.channels) * photo.width as usize)
        .rev()
        .flatten()
        .copied()
        .collect();
    let frames = [
        encode_streams(&photo, 90).unwrap().color,
        encode_streams(&flipped, 90).unwrap().color,
    ];
    let avis = sequence(&frames, size);
    assert_eq!(sniff(&avis).unwrap(), SourceFormat::Avif);
    let got = render(&avis, None);
    assert_like(&got, &photo, 0.9, 4.0, "first frame");
    assert!(luma_ssim(&got, &flipped) < 0.7, "not the second frame");
    let thumb = render(&avis, Some(80));
    assert_eq!((thumb.width, thumb.height), (80, 60));
    // Without its frames (the `mdat` cut short), the sample table points past the file or at
    // the wrong bytes: corrupt, not a crash.
    let moov_at = avis.windows(4).position(|w| w == b"moov").unwrap() - 4;
    let mut broken = avis[..40].to_vec();
    broken.extend_from_slice(&avis[moov_at..]);
    assert!(matches!(
        refusal(&broken, &Limits::default()),
        PipelineError::Undecodable(_)
    ));
}
