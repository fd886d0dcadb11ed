//! What one job will handle, read from the header before any pixel is decoded: the size the
//! decode step delivers (after shrink-on-load), the sizes `fit` makes, the sample layout of the
//! source and the encoders that may run. Facts only, no bytes or policy: the service turns
//! them into a memory cost (`cpu::cost`) and decides what to admit. Must stay as cheap as
//! the probe (no pixel decoding, nothing allocated in proportion to the claimed size) and must
//! use the very plans the steps use, so an estimate cannot drift from what runs.

use super::context::Ctx;
use super::error::PipelineError;
use super::format::choose_format;
use super::geometry;
use super::limits::Limits;
use super::steps::fit::upright_size;
use super::steps::{animated, decode, probe};
use crate::imaging::{Probe, SourceFormat};
use crate::spec::{Accepts, FormatRequest, OutputFormat, TransformSpec};

/// What a job will handle; sizes are width x height in pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Footprint {
    pub probe: Probe,
    /// Size of the raster the decode step delivers (after shrink-on-load).
    pub decoded: (u32, u32),
    /// Bytes per pixel of the codec's own output before it becomes 8-bit RGB(A): 16-bit
    /// PNG/TIFF decode at 2 bytes a sample first (`decode_with_image`), CMYK JPEG at 4.
    pub native_bytes_per_pixel: u32,
    /// The source may carry alpha (4 channels from decode to encode).
    pub alpha: bool,
    /// Size `fit` resizes to, and the canvas it returns (larger only for `fit=pad`); for
    /// sources whose EXIF orientation is read only while decoding (PNG, TIFF...), the larger
    /// of the two possible orientations; with `trim=border`, the largest any trim can lead to.
    pub scaled: (u32, u32),
    pub canvas: (u32, u32),
    /// Takes the animated path: every frame goes to the output size and is kept until encoded.
    pub animated: bool,
    /// Encoders that may run (the choice under `format=auto`/`original` can depend on alpha).
    pub formats: [Option<OutputFormat>; 2],
    /// Bytes the decoder keeps for the whole image whatever the scale it decodes to: a
    /// progressive (or multi-scan) JPEG holds every DCT coefficient of every component until
    /// its last scan, 2 bytes per coefficient, 64 per 8x8 block (libjpeg's full-image
    /// coefficient buffer): about 4 bytes per source pixel at 4:2:2, so a thumbnail of a
    /// 17.9 MP progressive photo holds 72 MB, not the 1 MB of its 1/8-scale raster.
    pub coefficient_bytes: u64,
}

impl Footprint {
    /// Output pixels (the canvas).
    pub fn output_pixels(&self) -> u64 {
        u64::from(self.canvas.0) * u64::from(self.canvas.1)
    }
}

/// The footprint of `spec` on `input`, or the probe's error (unsupported, corrupt header,
/// over `limits`). Costs a header parse.
pub fn footprint(
    input: &[u8],
    spec: &TransformSpec,
    accepts: Accepts,
    limits: &Limits,
) -> Result<Footprint, PipelineError> {
    let mut ctx = Ctx::new(input, spec, accepts, limits);
    probe::step(&mut ctx)?;
    let probe = ctx.probe()?;
    if spec.format == FormatRequest::Json {
        return Ok(described(&ctx, probe, input));
    }
    let animated = animated::wanted(&ctx)?;
    let (w, h) = (probe.width, probe.height);
    let decoded = match probe.format {
        SourceFormat::Jpeg => {
            let n = decode::plan(&ctx)?.max(1); // n/8
            let scale = |v: u32| ((u64::from(v) * u64::from(n)).div_ceil(8)) as u32;
            (scale(w), scale(h))
        }
        SourceFormat::Webp | SourceFormat::Avif | SourceFormat::Svg => {
            let s = decode::plan(&ctx)?.max(1);
            (w.div_ceil(s), h.div_ceil(s))
        }
        _ => (w, h),
    };
    let (native_bytes_per_pixel, alpha) = sample_layout(input, probe.format);
    // Orientation 5-8 swaps the axes; formats whose EXIF is read while decoding may have it.
    let orientation_known = matches!(
        probe.format,
        SourceFormat::Jpeg | SourceFormat::Webp | SourceFormat::Avif | SourceFormat::Heic
    );
    let mut orientations = vec![ctx.meta.orientation];
    if !orientation_known {
        orientations.push(6);
    }
    let (mut scaled, mut canvas) = ((0, 0), (0, 0));
    for orientation in orientations {
        let (uw, uh) = upright_size(&probe, orientation, spec);
        let (s, c) = if spec.trim_border.is_some() {
            // What the trim keeps is known only from the pixels: the largest it can lead to.
            geometry::output_sizes_trimmed(uw, uh, spec, limits.max_output_dimension)
        } else {
            geometry::output_sizes(uw, uh, spec)
        };
        if pixels(c) + pixels(s) > pixels(canvas) + pixels(scaled) {
            (scaled, canvas) = (s, c);
        }
    }
    Ok(Footprint {
        probe,
        decoded,
        native_bytes_per_pixel,
        alpha,
        scaled,
        canvas,
        animated,
        formats: formats(spec, accepts, probe.format, animated),
        // Read by the probe's own walk of the JPEG headers (`imaging::jpeg::read_meta`).
        coefficient_bytes: ctx.meta.coefficient_bytes,
    })
}

/// `format=json` makes no pixels and encodes nothing; it decodes (at full size) only when
/// `trim=border` must find its border.
fn described(ctx: &Ctx<'_>, probe: Probe, input: &[u8]) -> Footprint {
    let trims = ctx.spec.trim_border.is_some();
    let (native_bytes_per_pixel, alpha) = sample_layout(input, probe.format);
    Footprint {
        probe,
        decoded: if trims {
            (probe.width, probe.height)
        } else {
            (0, 0)
        },
        native_bytes_per_pixel,
        alpha,
        scaled: (0, 0),
        canvas: (0, 0),
        animated: false,
        formats: [None, None],
        coefficient_bytes: if trims { ctx.meta.coefficient_bytes } else { 0 },
    }
}

fn pixels((w, h): (u32, u32)) -> u64 {
    u64::from(w) * u64::from(h)
}

/// Bytes per pixel the codec decodes to first, and whether alpha is possible, from the
/// header. PNG's IHDR (bit depth at byte 24, colour type at 25) was checked by the probe;
/// unknown layouts take the widest (16-bit RGBA, 8 bytes).
fn sample_layout(input: &[u8], format: SourceFormat) -> (u32, bool) {
    match format {
        SourceFormat::Png => {
            let depth = u32::from(input.get(24).copied().unwrap_or(16));
            let bytes = if depth == 16 { 2 } else { 1 };
            match input.get(25).copied() {
                Some(0) => (bytes, false),     // gray
                Some(2) => (3 * bytes, false), // RGB
                Some(4) => (2 * bytes, true),  // gray + alpha
                Some(3) => (4, true),          // palette: RGBA when it has tRNS
                _ => (4 * bytes, true),        // RGBA, or unknown
            }
        }
        // libjpeg-turbo writes CMYK at 4 bytes; YCbCr and gray at 3.
        SourceFormat::Jpeg => (4, false),
        SourceFormat::Tiff => (8, true),
        SourceFormat::Gif
        | SourceFormat::Bmp
        | SourceFormat::Webp
        | SourceFormat::Avif
        | SourceFormat::Heic
        | SourceFormat::Svg => (4, true),
    }
}

/// The encoders that may run: `choose_format`'s answer with and without alpha.
fn formats(
    spec: &TransformSpec,
    accepts: Accepts,
    source: SourceFormat,
    animated: bool,
) -> [Option<OutputFormat>; 2] {
    if animated {
        return [Some(OutputFormat::Webp), None];
    }
    let (request, fast) = (spec.format, spec.compression_fast);
    let opaque = choose_format(request, accepts, source, false, fast);
    let alpha = choose_format(request, accepts, source, true, fast);
    [Some(opaque), (alpha != opaque).then_some(alpha)]
}
