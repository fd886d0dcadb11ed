//! A job's memory cost in bytes, estimated from its footprint (`pipeline::footprint`: the
//! header's sizes, the shrink-on-load plan, the sizes `fit` makes) before anything is
//! decoded: the largest of what the decode, resize and encode phases hold at once, plus the
//! encoders' own working sets. It owns the constants measured for that and the output-pixel
//! limit; it must not run a codec or decide admission (`budget.rs`).
//!
//! The constants were measured on the real binary, one request per fresh process, peak RSS
//! (VmHWM) minus the idle process (`scripts/worst_case.sh calibrate`; figures in the report
//! of the change that added them and in BENCHMARKS.md). The estimate is meant to be an upper
//! bound within about 1.5x: too low lets a burst exceed the budget, too high only queues.

use crate::error::{Blame, ImgateError};
use crate::pipeline::Footprint;
use crate::spec::OutputFormat;

/// What every job holds besides pixels: codec contexts, row buffers, the output file.
const JOB_OVERHEAD: u64 = 2 << 20;

/// libaom's working set for an all-intra still picture, in bytes per output pixel on top
/// of the 8-bit planes we hand it (frame buffers with borders, per-block search state).
/// Measured: one 2000x2000 AVIF (speed 6) from a 16-bit 4000x4000 PNG peaked 577 MiB over
/// the idle process, about 150 MB of it the decode: about 100 bytes a pixel; the issue's
/// 8192x8192 took 4.7 GB in all, about 65.
const AVIF_ENCODER_BYTES_PER_PIXEL: u64 = 100;
/// libwebp: the ARGB picture, its YUVA copy and the encoder's per-macroblock state.
const WEBP_ENCODER_BYTES_PER_PIXEL: u64 = 10;
/// libjpeg-turbo: its output buffer is sized for the worst case (`tjBufSize`).
const JPEG_ENCODER_BYTES_PER_PIXEL: u64 = 4;
/// PNG (the `image` crate over zlib): the output, at most the raw size.
const PNG_ENCODER_BYTES_PER_PIXEL: u64 = 4;
/// libaom's decoder for AVIF sources: its frame buffers (up to 16-bit 4:4:4) per source pixel.
/// libheif's for HEIC is within it: the decoded YCbCr grid (up to 16-bit 4:2:0, 3 bytes) and
/// its RGB(A) conversion (4 bytes), alive while we copy the rows out.
const AVIF_DECODER_BYTES_PER_PIXEL: u64 = 8;

/// The cost estimate of one job, in bytes: its phases' peak plus its original's `input_len`
/// bytes, which the job holds while it runs (counted again by each job sharing a download:
/// an overestimate only).
pub fn estimate(fp: &Footprint, input_len: usize) -> u64 {
    let px = |(w, h): (u32, u32)| u64::from(w) * u64::from(h);
    let channels: u64 = if fp.alpha { 4 } else { 3 };
    let decoded = px(fp.decoded);
    let raster = decoded * channels;
    let native = decoded * u64::from(fp.native_bytes_per_pixel);
    // The codec's own layout and its 8-bit RGB(A) form are alive together while converting;
    // orientation and colour steps may copy the raster once.
    let mut decode_phase = (native + raster).max(2 * raster);
    if matches!(
        fp.probe.format,
        crate::pipeline::SourceFormat::Avif | crate::pipeline::SourceFormat::Heic
    ) {
        let source = u64::from(fp.probe.width) * u64::from(fp.probe.height);
        decode_phase += source * AVIF_DECODER_BYTES_PER_PIXEL;
    }
    let (sw, sh) = (u64::from(fp.scaled.0), u64::from(fp.scaled.1));
    let (dw, dh) = (u64::from(fp.decoded.0), u64::from(fp.decoded.1));
    let canvas = px(fp.canvas) * channels;
    // `fit`: the decode stays alive while the resizer's one-axis pass and the result exist;
    // alpha is premultiplied on a copy first; the pad canvas and effects make one more.
    let one_pass = (sw * dh).max(dw * sh) * channels;
    let premultiplied = if fp.alpha { raster } else { 0 };
    let resize_phase = raster + premultiplied + one_pass + px(fp.scaled) * channels + 2 * canvas;
    let encoder = fp
        .formats
        .iter()
        .flatten()
        .map(|f| encoder_bytes_per_pixel(*f))
        .max()
        .unwrap_or(JPEG_ENCODER_BYTES_PER_PIXEL);
    // libjpeg's coefficient buffer (progressive JPEG) and the encoder's working set are both
    // in C, from glibc, and never alive together: the decoder frees it before the encoder
    // starts, and glibc reuses (or, mapped, has returned) it. So the larger of the two.
    let mut encode_phase = canvas + (px(fp.canvas) * encoder).max(fp.coefficient_bytes);
    if fp.animated {
        // Every frame is kept at its output size until the animation encoder takes them all,
        // next to the decoder's full canvas.
        let frames = u64::from(fp.probe.frames.max(1));
        let source = u64::from(fp.probe.width) * u64::from(fp.probe.height) * 4;
        encode_phase += frames * px(fp.canvas) * 4 + 2 * source;
    }
    // Added, not the larger of the two: the codecs in C (libaom, libwebp, libjpeg-turbo)
    // allocate from glibc while our buffers, freed, stay with mimalloc for its purge delay,
    // so the encoder's memory does not reuse the decode's (measured: the sum, within 10%).
    decode_phase.max(resize_phase) + encode_phase + JOB_OVERHEAD + input_len as u64
}

fn encoder_bytes_per_pixel(format: OutputFormat) -> u64 {
    match format {
        OutputFormat::Avif => AVIF_ENCODER_BYTES_PER_PIXEL,
        OutputFormat::Webp => WEBP_ENCODER_BYTES_PER_PIXEL,
        OutputFormat::Jpeg => JPEG_ENCODER_BYTES_PER_PIXEL,
        OutputFormat::Png => PNG_ENCODER_BYTES_PER_PIXEL,
    }
}

/// Refuse an output over `max_output_pixels` (width x height after `dpr`, `fit` and the
/// original's size): 413, as for a source over its limits, since the request is well-formed
/// but asks for more than this server makes.
pub fn check_output_pixels(fp: &Footprint, max_output_pixels: u64) -> Result<(), ImgateError> {
    let (w, h) = fp.canvas;
    if fp.output_pixels() > max_output_pixels {
        return Err(ImgateError::new(
            413,
            format!("output too large: {w}x{h} is over {max_output_pixels} pixels"),
            format!("output {w}x{h} over limits.max_output_pixels {max_output_pixels}"),
            Blame::Downstream,
        ));
    }
    Ok(())
}

/// The answer for a job that costs more than the whole processing budget.
pub fn over_budget(cost: u64, budget: u64) -> ImgateError {
    ImgateError::new(
        413,
        "image too expensive to process: ask for a smaller output or a smaller original",
        format!(
            "estimated {} MiB over the processing budget of {} MiB",
            cost >> 20,
            budget >> 20
        ),
        Blame::Downstream,
    )
}

#[cfg(test)]
mod tests;
