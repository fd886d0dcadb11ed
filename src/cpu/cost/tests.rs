use super::*;
use crate::pipeline::{footprint, Limits};
use crate::spec::{parse_options, Accepts};

const MIB: u64 = 1 << 20;

/// A PNG that is only its signature and IHDR: enough for the probe, which never reads pixels.
fn png_header(width: u32, height: u32, depth: u8, color: u8) -> Vec<u8> {
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    png.extend_from_slice(&13u32.to_be_bytes());
    png.extend_from_slice(b"IHDR");
    png.extend_from_slice(&width.to_be_bytes());
    png.extend_from_slice(&height.to_be_bytes());
    png.extend_from_slice(&[depth, color, 0, 0, 0]);
    png.extend_from_slice(&[0; 4]); // CRC: not checked by the probe
    png
}

fn photo(name: &str) -> Vec<u8> {
    let path = format!(
        "{}/tests/fixtures/photos/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(path).unwrap()
}

fn cost_of(input: &[u8], options: &str) -> (Footprint, u64) {
    let spec = parse_options(options).unwrap();
    let fp = footprint(input, &spec, Accepts::default(), &Limits::default()).unwrap();
    (fp, estimate(&fp, input.len()))
}

#[test]
fn a_16_bit_png_costs_its_full_decode_at_both_depths_whatever_the_output() {
    // The 381 KB 7000x7000 16-bit PNG: about 800 MB per request was measured.
    let (fp, cost) = cost_of(&png_header(7000, 7000, 16, 2), "width=300,format=jpeg");
    assert_eq!(fp.decoded, (7000, 7000));
    assert_eq!(fp.native_bytes_per_pixel, 6);
    let pixels = 7000 * 7000;
    assert!(cost >= pixels * (6 + 3), "{cost}");
    assert!(cost < 1024 * MIB, "{cost}");
    // 8 bits a sample halves the codec's own layout; the small output changes nothing.
    let (_, eight) = cost_of(&png_header(7000, 7000, 8, 2), "width=300,format=jpeg");
    assert!(eight < cost && eight >= pixels * 6, "{eight}");
}

#[test]
fn shrink_on_load_makes_a_jpeg_thumbnail_cheap_and_its_full_size_not() {
    let flower = photo("YellowFlower.jpg"); // sequential (baseline)
    let (fp, thumb) = cost_of(&flower, "width=100,format=jpeg");
    assert_eq!(fp.coefficient_bytes, 0);
    assert!(
        fp.decoded.0 < fp.probe.width / 4,
        "shrink-on-load: {:?}",
        fp.decoded
    );
    assert!(thumb < JOB_OVERHEAD + MIB + flower.len() as u64, "{thumb}");
    let meadow = photo("GreenMeadow.jpg"); // 1280x1024
    let (fp, full) = cost_of(&meadow, "format=jpeg");
    assert_eq!((fp.decoded, fp.canvas), ((1280, 1024), (1280, 1024)));
    assert!(full >= 1280 * 1024 * 3 * 2, "{full}");
}

#[test]
fn dpr_and_pad_count_in_the_output_and_avif_costs_most() {
    let meadow = photo("GreenMeadow.jpg");
    let (fp, avif) = cost_of(&meadow, "width=2048,height=2048,dpr=4,fit=pad,format=avif");
    assert_eq!(fp.canvas, (8192, 8192));
    assert_eq!(fp.output_pixels(), 8192 * 8192);
    assert!(
        avif >= 8192 * 8192 * (3 + AVIF_ENCODER_BYTES_PER_PIXEL),
        "{avif}"
    );
    let (_, jpeg) = cost_of(&meadow, "width=2048,height=2048,dpr=4,fit=pad,format=jpeg");
    assert!(jpeg < avif / 2, "{jpeg} vs {avif}");
    // The request is refused by the output limit before any of that is spent.
    let err = check_output_pixels(&fp, crate::config::DEFAULT_MAX_OUTPUT_PIXELS).unwrap_err();
    assert_eq!(err.status, 413);
    assert!(err.public.contains("8192x8192"), "{}", err.public);
    let (small, _) = cost_of(&meadow, "width=2048,format=avif");
    assert!(check_output_pixels(&small, crate::config::DEFAULT_MAX_OUTPUT_PIXELS).is_ok());
}

#[test]
fn format_auto_costs_the_dearest_encoder_the_client_may_get() {
    let meadow = photo("GreenMeadow.jpg");
    let spec = parse_options("width=1280,format=auto").unwrap();
    let limits = Limits::default();
    let cost = |avif, webp| {
        estimate(
            &footprint(&meadow, &spec, Accepts { avif, webp }, &limits).unwrap(),
            meadow.len(),
        )
    };
    // Here the resize phase outweighs JPEG's and WebP's encoders, not libaom's.
    assert!(cost(true, true) > cost(false, true));
    assert!(cost(false, true) >= cost(false, false));
}

#[test]
fn orientation_read_while_decoding_takes_the_larger_layout() {
    // A PNG may carry EXIF orientation 5-8, known only after decoding: a 1000x100 box on a
    // 100x1000 source is sized for both ways round.
    let (fp, _) = cost_of(
        &png_header(100, 1000, 8, 6),
        "width=1000,height=100,fit=pad",
    );
    assert_eq!(fp.canvas, (1000, 100));
    assert!(fp.alpha);
}

#[test]
fn a_progressive_jpeg_costs_its_whole_coefficient_buffer_at_any_scale() {
    // Measured on the perf build, one request per fresh process: a 300 px thumbnail of the
    // 5640x3172 progressive Elephants JPEG (4:2:2) peaked 88 MiB over idle, its 15.6 MiB
    // input plus about 72 MB; the same photo re-encoded sequential, 14 MiB with a 6.7 MiB
    // input. libjpeg keeps every coefficient of a progressive image until its last scan.
    let meadow = photo("GreenMeadow.jpg"); // 1280x1024 progressive, 4:2:0
    let (fp, thumb) = cost_of(&meadow, "width=100,format=jpeg");
    assert_eq!(fp.decoded, (160, 128), "1/8 scale");
    // Luma 160x128 blocks, each chroma plane 80x64, 128 bytes a block.
    let coefficients = (160 * 128 + 2 * 80 * 64) * 128;
    assert_eq!(fp.coefficient_bytes, coefficients);
    assert!(thumb >= coefficients + meadow.len() as u64, "{thumb}");
}
