//! The pipeline runner: one context through the ordered list of small steps (`steps::STEPS`,
//! imgproxy style), timing each, and the decode phase shared between jobs when the caller offers a
//! place to share it. Owns the entry points (`process`, `process_shared`, `decode_upright`,
//! `probe`) and the timings. No step knows about HTTP, threads or caches: the caller runs `process`
//! on the rayon pool and catches panics.

use super::context::{Ctx, Decoded};
use super::error::PipelineError;
use super::limits::Limits;
use super::steps::{animated, decode, Phase, Step, ANIM_STEPS, DESCRIBE_STEPS, STEPS};
use super::watermark::Overlay;
use crate::imaging::{Probe, Raster};
use crate::spec::{Accepts, FormatRequest, OutputFormat, TransformSpec};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Wall time of each step, reported in `Server-Timing`.
#[derive(Debug, Clone, Copy, Default)]
pub struct StepTimings {
    pub decode: Duration,
    pub resize: Duration,
    pub encode: Duration,
}

/// What the bytes of a [`Processed`] are: an encoded image, or for `format=json` a
/// description of the original and of the output's size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Media {
    Image(OutputFormat),
    Json,
}

impl Media {
    pub fn mime(self) -> &'static str {
        match self {
            Media::Image(f) => f.mime(),
            Media::Json => "application/json",
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Media::Image(f) => f.name(),
            Media::Json => "json",
        }
    }
}

impl PartialEq<OutputFormat> for Media {
    fn eq(&self, other: &OutputFormat) -> bool {
        *self == Media::Image(*other)
    }
}

/// An encoded result.
#[derive(Debug, Clone)]
pub struct Processed {
    pub bytes: Vec<u8>,
    pub format: Media,
    pub width: u32,
    pub height: u32,
    pub timings: StepTimings,
}

/// Run `steps` in order over `ctx`, adding each step's wall time to its phase.
fn run(ctx: &mut Ctx<'_>, steps: &[(&str, Phase, Step)]) -> Result<StepTimings, PipelineError> {
    let mut timings = StepTimings::default();
    for (name, phase, step) in steps {
        let start = Instant::now();
        step(ctx)?;
        let took = start.elapsed();
        log::trace!("pipeline step {name}: {took:?}");
        match phase {
            Phase::Decode => timings.decode += took,
            Phase::Resize => timings.resize += took,
            Phase::Encode => timings.encode += took,
        }
    }
    Ok(timings)
}

/// Source bytes + spec -> encoded image. See `STEPS` (and `ANIM_STEPS`) for what happens.
pub fn process(
    input: &[u8],
    spec: &TransformSpec,
    accepts: Accepts,
    limits: &Limits,
) -> Result<Processed, PipelineError> {
    process_shared(input, spec, accepts, limits, None, None)
}

/// Names one decode: this very input buffer (address and length: the caller keeps the buffer
/// alive while it keeps the key, so the address cannot be reused for other bytes meanwhile)
/// decoded with this shrink-on-load plan. Equal keys mean identical decodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DecodeKey {
    pub input_addr: usize,
    pub input_len: usize,
    pub plan: u32,
}

/// A place to share decodes between jobs (a burst of widths of one photo decodes it once per
/// shrink factor, not once per width). The pipeline only asks; the caller decides what is
/// kept and for how long.
pub trait DecodeShare: Sync {
    /// The decode for `key`: a kept one, or `decode()`'s result, which may then be kept.
    fn get_or_decode(
        &self,
        key: DecodeKey,
        decode: &mut dyn FnMut() -> Result<Decoded, PipelineError>,
    ) -> Result<Arc<Decoded>, PipelineError>;
}

/// [`process`], sharing the decode phase of still images through `share` when given, and
/// laying `overlay` on the result (`watermark=`; `None` for a spec without one).
pub fn process_shared(
    input: &[u8],
    spec: &TransformSpec,
    accepts: Accepts,
    limits: &Limits,
    share: Option<&dyn DecodeShare>,
    overlay: Option<&Overlay<'_>>,
) -> Result<Processed, PipelineError> {
    let mut ctx = Ctx::new(input, spec, accepts, limits);
    ctx.overlay = overlay;
    // `probe` (always first in STEPS) runs on every path; what it finds picks the rest.
    let (head, still) = STEPS.split_at(1);
    let mut timings = run(&mut ctx, head)?;
    if spec.format == FormatRequest::Json {
        let more = run(&mut ctx, DESCRIBE_STEPS)?;
        timings.decode += more.decode;
        timings.encode += more.encode;
        let (width, height) = ctx.described.unwrap_or_default();
        return Ok(Processed {
            bytes: ctx.output,
            format: Media::Json,
            width,
            height,
            timings,
        });
    }
    let more = if animated::wanted(&ctx)? {
        run(&mut ctx, ANIM_STEPS)?
    } else {
        let decode_len = still
            .iter()
            .position(|(_, phase, _)| *phase != Phase::Decode)
            .unwrap_or(still.len());
        let (decode_steps, rest) = still.split_at(decode_len);
        match share {
            None => run(&mut ctx, still)?,
            Some(share) => {
                let key = DecodeKey {
                    input_addr: input.as_ptr() as usize,
                    input_len: input.len(),
                    plan: decode::plan(&ctx)?,
                };
                let started = Instant::now();
                let decoded = share.get_or_decode(key, &mut || {
                    let mut own = Ctx::new(input, spec, accepts, limits);
                    own.probe = ctx.probe;
                    own.meta = ctx.meta.clone();
                    run(&mut own, decode_steps)?;
                    Ok(Decoded {
                        meta: own.meta,
                        raster: own.raster,
                    })
                })?;
                ctx.meta = decoded.meta.clone();
                ctx.shared = Some(decoded);
                let mut t = run(&mut ctx, rest)?;
                t.decode += started.elapsed();
                t
            }
        }
    };
    timings.decode += more.decode;
    timings.resize += more.resize;
    timings.encode += more.encode;
    let format = ctx.format.unwrap_or(OutputFormat::Jpeg);
    Ok(Processed {
        bytes: ctx.output,
        format: Media::Image(format),
        width: ctx.raster.width,
        height: ctx.raster.height,
        timings,
    })
}

/// Only the decode phase (probe, decode, orient, colour): the upright sRGB raster that the
/// resize steps would receive. For tests, benchmarks and tools; `spec` only steers
/// shrink-on-load.
pub fn decode_upright(
    input: &[u8],
    spec: &TransformSpec,
    limits: &Limits,
) -> Result<Raster, PipelineError> {
    let mut ctx = Ctx::new(input, spec, Accepts::default(), limits);
    let decode_steps: Vec<_> = STEPS
        .iter()
        .copied()
        .filter(|s| s.1 == Phase::Decode)
        .collect();
    run(&mut ctx, &decode_steps)?;
    Ok(ctx.raster)
}

/// Sniff and read the header only: format, stored size, frame count, with limits enforced.
pub fn probe(input: &[u8], limits: &Limits) -> Result<Probe, PipelineError> {
    super::steps::probe::probe_with_meta(input, limits).map(|(p, _)| p)
}
