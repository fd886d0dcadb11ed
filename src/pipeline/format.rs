//! The output policy: which format a request gets (from `format`, the client's `Accept` and
//! the source), the encoder setting for a `quality` option, and how much shrink-on-load must
//! leave for the chosen encoder. Decisions only, no pixels and no codec calls.

use crate::imaging::SourceFormat;
use crate::spec::{Accepts, FormatRequest, OutputFormat};

/// Default JPEG quality (on the option's scale, see [`encoder_quality`]): the usual web sweet spot.
const JPEG_QUALITY: u8 = 85;
/// Default WebP quality on the option's scale: libwebp quality 82, about JPEG 85 in perceived
/// quality at a smaller size.
const WEBP_QUALITY: u8 = 70;
/// Default AVIF quality (libaom level 24, see `avif::cq_level`); visually about JPEG 85.
const AVIF_QUALITY: u8 = 60;

/// The encoder setting for a `quality` option (1-100, or the format's default when absent).
///
/// The option's scale is calibrated to libvips', so a URL moved from a libvips-based server
/// (imgproxy, thumbor with pyvips...) keeps its look. Measured with
/// `scripts/quality_vs_libvips.py` on the 12 corpus photos at 300 px, luma SSIM against a
/// Lanczos reference: libvips JPEG q80 = 116,685 B at 0.9791, libjpeg-turbo q82 here = 116,171 B
/// at 0.9794; libvips WebP q80 = 151,896 B at 0.9759, libwebp q88 here = 104,822 B at 0.9829
/// (smaller *and* better looking; q80 here was 0.9735). So JPEG moves 10% and WebP 40% of the way
/// towards 100. AVIF needs no move here: `avif::cq_level` is itself calibrated to libvips'
/// AVIF (BT.601 4:2:0 through libaom, like libvips' libheif).
pub(super) fn encoder_quality(format: OutputFormat, quality: Option<u8>) -> u8 {
    let (default, toward_100) = match format {
        OutputFormat::Jpeg => (JPEG_QUALITY, 0.1),
        OutputFormat::Webp => (WEBP_QUALITY, 0.4),
        OutputFormat::Avif => (AVIF_QUALITY, 0.0),
        OutputFormat::Png => (100, 0.0),
    };
    let q = f32::from(quality.unwrap_or(default).clamp(1, 100));
    (q + (100.0 - q) * toward_100).round() as u8
}

/// How many times what `fit` needs the decoder's shrink-on-load must leave when the output
/// will be AVIF. Shrinking on load to just the output size costs some sharpness against a
/// full-size resize; lossy JPEG and WebP hide it, AVIF at the same quality shows it (luma SSIM
/// of the 12 corpus photos at 300 px, libaom at libvips' look: 0.9773 at 1x, 0.9793 at 1.5x,
/// 0.9795 at 2x, libvips 0.9798, BENCHMARKS.md). Decoding and resizing up to four times the
/// pixels is small next to an AVIF encode of 50-100 ms, but not next to a JPEG or WebP miss of
/// 10-20 ms, so those keep 1x.
const AVIF_DECODE_HEADROOM: f64 = 2.0;

/// The headroom shrink-on-load leaves for this request: [`AVIF_DECODE_HEADROOM`] when the
/// output is sure to be AVIF (decided before the decode, so it cannot depend on alpha),
/// otherwise 1, and always 1 under `compression=fast`, which wants the cheapest miss.
pub(super) fn decode_headroom(request: FormatRequest, accepts: Accepts, fast: bool) -> f64 {
    if fast {
        return 1.0;
    }
    match request {
        FormatRequest::Fixed(OutputFormat::Avif) => AVIF_DECODE_HEADROOM,
        FormatRequest::Auto if accepts.avif => AVIF_DECODE_HEADROOM,
        _ => 1.0,
    }
}

/// `Fixed` wins; `Auto` picks the best the client accepts (AVIF, WebP) and otherwise PNG for
/// alpha, JPEG for the rest; `Original` keeps JPEG/PNG/WebP/AVIF and turns GIF/BMP/TIFF (which we
/// do not encode) into PNG with alpha, JPEG without.
///
/// Under `compression=fast` (`fast`), `Auto` takes the quickest format to encode that the
/// client accepts: JPEG without alpha, WebP (else PNG) with it; never AVIF, as Cloudflare does.
pub(super) fn choose_format(
    request: FormatRequest,
    accepts: Accepts,
    source: SourceFormat,
    alpha: bool,
    fast: bool,
) -> OutputFormat {
    let fallback = if alpha {
        OutputFormat::Png
    } else {
        OutputFormat::Jpeg
    };
    match request {
        FormatRequest::Fixed(f) => f,
        FormatRequest::Auto if fast && alpha && accepts.webp => OutputFormat::Webp,
        FormatRequest::Auto if fast => fallback,
        FormatRequest::Auto if accepts.avif => OutputFormat::Avif,
        FormatRequest::Auto if accepts.webp => OutputFormat::Webp,
        FormatRequest::Auto => fallback,
        // Never encoded (the describe steps run instead); the source's choice, like `Original`.
        FormatRequest::Original | FormatRequest::Json => match source {
            SourceFormat::Jpeg => OutputFormat::Jpeg,
            SourceFormat::Png => OutputFormat::Png,
            SourceFormat::Webp => OutputFormat::Webp,
            SourceFormat::Avif => OutputFormat::Avif,
            // No browser but Safari shows HEIC: it is never an output.
            SourceFormat::Gif
            | SourceFormat::Bmp
            | SourceFormat::Tiff
            | SourceFormat::Svg
            | SourceFormat::Heic => fallback,
        },
    }
}

/// The output format for an animated source is WebP whenever the client may get WebP: asked
/// for it, negotiated it (preferred over AVIF here, as we do not encode animated AVIF), or
/// left `format` out on a WebP source. Every other request keeps the still path's choice; a
/// client that accepts AVIF but not WebP gets a still AVIF rather than a format it refused.
pub(super) fn animates_as_webp(
    request: FormatRequest,
    accepts: Accepts,
    source: SourceFormat,
) -> bool {
    match request {
        FormatRequest::Fixed(f) => f == OutputFormat::Webp,
        FormatRequest::Auto => accepts.webp,
        FormatRequest::Original => source == SourceFormat::Webp,
        FormatRequest::Json => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quality_scale_is_calibrated_per_format() {
        assert_eq!(encoder_quality(OutputFormat::Jpeg, Some(80)), 82);
        assert_eq!(encoder_quality(OutputFormat::Webp, Some(80)), 88);
        assert_eq!(encoder_quality(OutputFormat::Avif, Some(80)), 80);
        for f in [OutputFormat::Jpeg, OutputFormat::Webp, OutputFormat::Avif] {
            assert_eq!(encoder_quality(f, Some(100)), 100);
            // Monotonic: a higher option never means a lower encoder setting.
            let qs: Vec<u8> = (1..=100).map(|q| encoder_quality(f, Some(q))).collect();
            assert!(qs.windows(2).all(|w| w[0] <= w[1]), "{f:?}");
        }
        // Defaults keep the encoder settings chosen before the calibration.
        assert_eq!(encoder_quality(OutputFormat::Webp, None), 82);
        assert_eq!(encoder_quality(OutputFormat::Avif, None), 60);
    }
}
