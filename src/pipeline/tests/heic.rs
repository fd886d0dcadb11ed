//! HEIC input tests. Every file was written by a real HEVC encoder (libheif's `heif-enc` with
//! x265) from a corpus picture, and each decode is compared with that picture: by size
//! exactly, by look (SSIM) and by colour. `portrait-irot.heic` also carries the rotation an
//! iPhone writes (`add_irot.py` in the fixtures; see their README).

use super::avif::{assert_like, render};
use super::{decode_steps, fixture, mean_saturation};
use crate::imaging::{jpeg, sniff, ImageError, SourceFormat};
use crate::pipeline::error::PipelineError;
use crate::pipeline::limits::Limits;
use crate::pipeline::{probe, process, Media};
use crate::spec::{parse_options, Accepts};

#[test]
fn a_heic_photo_decodes_like_the_photo_it_was_made_from() {
    let heic = fixture("heic/flower.heic");
    assert_eq!(sniff(&heic).unwrap(), SourceFormat::Heic);
    let p = probe(&heic, &Limits::default()).unwrap();
    assert_eq!(
        (p.format, p.width, p.height, p.frames),
        (SourceFormat::Heic, 1600, 1203, 1)
    );
    let jpeg = fixture("photos/FreshFlower.jpg");
    for width in [None, Some(400)] {
        let (got, want) = (render(&heic, width), render(&jpeg, width));
        assert_like(&got, &want, 0.9, 3.0, &format!("flower.heic at {width:?}"));
    }
    assert_eq!(
        (
            render(&heic, Some(400)).width,
            render(&heic, Some(400)).height
        ),
        (400, 301)
    );
}

#[test]
fn the_containers_rotation_is_applied_and_exif_orientation_never_again() {
    // irot (270 degrees anticlockwise) and EXIF Orientation 6, as an iPhone writes them: shown
    // upright, like the JPEG it came from once its EXIF turn is applied.
    let turned = fixture("heic/portrait-irot.heic");
    let jpeg = fixture("orientation/Portrait_6.jpg");
    let p = probe(&turned, &Limits::default()).unwrap();
    assert_eq!((p.width, p.height), (1200, 1800));
    let got = render(&turned, Some(300));
    assert_eq!((got.width, got.height), (300, 450));
    assert_like(&got, &render(&jpeg, Some(300)), 0.85, 3.0, "irot + EXIF 6");

    // The same pixels with EXIF 6 and no irot: HEIF readers ignore EXIF Orientation, so the
    // picture stays as stored (the JPEG's pixels before its turn).
    let exif_only = fixture("heic/portrait-exif6.heic");
    let got = render(&exif_only, None);
    let (stored, meta) = decode_steps(&jpeg, &["orient"]);
    assert_eq!(meta.orientation, 6);
    assert_eq!((got.width, got.height), (1800, 1200));
    assert_like(&got, &stored, 0.85, 3.0, "EXIF 6 alone");

    // A kept EXIF block says Orientation 1 over the upright pixels, not 6.
    let spec = parse_options("metadata=keep,format=jpeg").unwrap();
    let out = process(&turned, &spec, Accepts::default(), &Limits::default()).unwrap();
    let kept = jpeg::read_meta(&out.bytes);
    assert!(kept.exif.is_some(), "EXIF block kept");
    assert!(matches!(kept.orientation, 0 | 1), "{}", kept.orientation);
}

#[test]
fn a_display_p3_heic_is_converted_to_srgb_by_its_profile() {
    let heic = fixture("heic/twowings-p3.heic");
    let jpeg = fixture("twowings-p3.jpg");
    assert_like(
        &render(&heic, Some(600)),
        &render(&jpeg, Some(600)),
        0.85,
        3.0,
        "twowings-p3.heic",
    );
    // Without the colour step the P3 numbers read as sRGB look washed out.
    let (converted, _) = decode_steps(&heic, &[]);
    let (naive, meta) = decode_steps(&heic, &["colour"]);
    assert!(meta.icc.as_ref().is_some_and(|p| p.len() > 128));
    let (s_conv, s_naive) = (mean_saturation(&converted), mean_saturation(&naive));
    assert!(s_conv > s_naive * 1.05, "{s_conv:.3} vs {s_naive:.3}");
}

#[test]
fn alpha_is_kept() {
    let heic = fixture("heic/alpha.heic");
    let png = fixture("pngsuite/basn6a08.png");
    let (got, want) = (render(&heic, None), render(&png, None));
    assert_eq!((got.width, got.height, got.channels), (32, 32, 4));
    assert_eq!(want.channels, 4);
    let diffs: Vec<u8> = got
        .data
        .chunks_exact(4)
        .zip(want.data.chunks_exact(4))
        .map(|(g, w)| g[3].abs_diff(w[3]))
        .collect();
    let mean = diffs.iter().map(|&d| f64::from(d)).sum::<f64>() / diffs.len() as f64;
    let worst = diffs.iter().copied().max().unwrap_or(0);
    assert!(
        mean <= 3.0 && worst <= 24,
        "alpha: mean {mean:.2}, worst {worst}"
    );
    // The alpha spans the whole range, so a dropped channel would fail the check above.
    assert!(want.data.chunks_exact(4).any(|p| p[3] < 32));
}

#[test]
fn json_names_heic_and_limits_refuse_before_decoding() {
    let heic = fixture("heic/flower.heic");
    let spec = parse_options("width=400,format=json").unwrap();
    let out = process(&heic, &spec, Accepts::default(), &Limits::default()).unwrap();
    assert_eq!(out.format, Media::Json);
    let json: serde_json::Value = serde_json::from_slice(&out.bytes).unwrap();
    assert_eq!(json["original"]["format"], "image/heic");
    assert_eq!(
        (json["width"].as_u64(), json["height"].as_u64()),
        (Some(400), Some(301))
    );

    let limits = Limits {
        max_source_pixels: 1_000_000,
        ..Limits::default()
    };
    let err = process(
        &heic,
        &parse_options("width=100").unwrap(),
        Accepts::default(),
        &limits,
    )
    .unwrap_err();
    assert!(matches!(err, PipelineError::TooLarge(_)), "{err:?}");
}

#[test]
fn broken_heic_files_are_refused_cleanly() {
    let heic = fixture("heic/flower.heic");
    let spec = parse_options("width=100").unwrap();
    for cut in [24, 200, heic.len() / 3, heic.len() - 10] {
        let err = process(&heic[..cut], &spec, Accepts::default(), &Limits::default()).unwrap_err();
        assert!(
            matches!(
                err,
                PipelineError::Undecodable(_) | PipelineError::Unsupported(_)
            ),
            "{cut} bytes: {err:?}"
        );
    }
}

/// `file` with every `avif` brand in its `ftyp` box replaced by `mif1`: HEIF's generic image
/// brand, so the file no longer says it is AVIF.
fn without_avif_brands(file: &[u8]) -> Vec<u8> {
    let mut out = file.to_vec();
    let end = u32::from_be_bytes(file[..4].try_into().unwrap()) as usize;
    assert_eq!(&file[4..8], b"ftyp");
    for at in (8..end).step_by(4).filter(|&at| at != 12) {
        if &out[at..at + 4] == b"avif" {
            out[at..at + 4].copy_from_slice(b"mif1");
        }
    }
    out
}

#[test]
fn av1_pictures_under_other_brands_are_read_by_our_decoder_and_never_by_libheif() {
    let avif = fixture("yellowflower.avif");
    let rebranded = without_avif_brands(&avif);
    assert!(crate::imaging::heic::is_heic(&rebranded));
    assert!(!crate::imaging::avif::is_avif(&rebranded));
    assert_eq!(sniff(&rebranded).unwrap(), SourceFormat::Avif);
    let (got, want) = (render(&rebranded, Some(400)), render(&avif, Some(400)));
    assert_eq!((got.width, got.height), (400, 250));
    assert_like(&got, &want, 0.99, 0.5, "AV1 under mif1 against the AVIF");
    // libheif, asked directly, decodes HEVC only: the AV1 picture is refused as unsupported.
    let refused = crate::imaging::heic::decode(&rebranded, u64::MAX, &mut Default::default());
    assert!(
        matches!(refused, Err(ImageError::Unsupported(_))),
        "libheif decoded AV1: {:?}",
        refused.map(|r| (r.width, r.height))
    );
    // A real HEIC still decodes through libheif.
    let heic = fixture("heic/flower.heic");
    let raster = crate::imaging::heic::decode(&heic, u64::MAX, &mut Default::default()).unwrap();
    assert_eq!((raster.width, raster.height), (1600, 1203));
}

/// Fuzz finding 8: a `mif1` file whose AV1 item dav1d cannot take reached libheif's dav1d
/// plugin, which leaked the data it had failed to send (40 bytes a request). Our decoder reads
/// it now, and libheif refuses it.
#[test]
fn r_fuzz_av1_item_of_a_mif1_file_never_reaches_libheifs_av1_decoder() {
    let input = include_bytes!(
        "../../../fuzz/corpus/pipeline/leak-2347b0f7dabe33898b62b57311578c541738da17"
    );
    let (_, _, image) = crate::fuzzing::pipeline_parts(input).unwrap();
    assert!(crate::imaging::heic::is_heic(image) && !crate::imaging::avif::is_avif(image));
    assert_eq!(sniff(image).unwrap(), SourceFormat::Avif);
    crate::fuzzing::run("pipeline", input);
    let refused = crate::imaging::heic::decode(image, u64::MAX, &mut Default::default());
    assert!(
        matches!(refused, Err(ImageError::Unsupported(_))),
        "{:?}",
        refused.map(|r| (r.width, r.height))
    );
}
