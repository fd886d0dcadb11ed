//! The pipeline runner: one context, one ordered list of small steps (imgproxy style). Owns
//! the step order and the timings; each step lives in its own file and only reads and
//! updates the context. No step knows about HTTP, threads or caches: the caller runs
//! `process` on the rayon pool and catches panics.

use super::keep_metadata;
use super::metadata::SourceMeta;
use super::raster::Raster;
use super::sniff::Probe;
use super::{anim, color, decode, effects, encode, flatten, geometry, orient, sniff};
use super::{Limits, PipelineError, Processed, StepTimings};
use crate::spec::{Accepts, OutputFormat, TransformSpec};
use std::borrow::Cow;
use std::sync::Arc;
use std::time::Instant;

/// Which `StepTimings` bucket a step's wall time goes to (`Server-Timing` names).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Phase {
    Decode,
    Resize,
    Encode,
}

/// One step: reads what earlier steps left in the context and adds its own result.
pub(super) type Step = fn(&mut Ctx<'_>) -> Result<(), PipelineError>;

/// The whole pipeline, in order. Reading this list is reading the algorithm.
pub(super) const STEPS: &[(&str, Phase, Step)] = &[
    ("probe", Phase::Decode, sniff::step),
    ("decode", Phase::Decode, decode::step),
    ("orient", Phase::Decode, orient::step),
    ("colour", Phase::Decode, color::step),
    // Rotate first: `width`/`height` name the axes after `rotate`, as Cloudflare defines them.
    ("rotate_flip", Phase::Resize, rotate_flip_step),
    ("fit", Phase::Resize, fit_step),
    ("effects", Phase::Resize, effects_step),
    ("choose_format", Phase::Resize, encode::choose_step),
    ("flatten", Phase::Resize, flatten::step),
    ("encode", Phase::Encode, encode::step),
    // After encode: EXIF is spliced into the finished file (a no-op for metadata=none).
    ("metadata", Phase::Encode, keep_metadata::step),
];

/// What replaces everything after `probe` when `anim::wanted` says the output is an animated
/// WebP: every frame goes through the per-frame steps above, then one animation encoder.
pub(super) const ANIM_STEPS: &[(&str, Phase, Step)] = &[
    ("decode_frames", Phase::Decode, anim::decode_step),
    ("encode_frames", Phase::Encode, anim::encode_step),
    // Inserts EXIF into the VP8X container like it does for still WebP.
    ("metadata", Phase::Encode, keep_metadata::step),
];

/// Everything the steps share.
pub(super) struct Ctx<'a> {
    pub input: &'a [u8],
    pub spec: &'a TransformSpec,
    pub accepts: Accepts,
    pub limits: &'a Limits,
    /// Set by `probe`.
    pub probe: Option<Probe>,
    pub meta: SourceMeta,
    /// Empty (0x0) until `decode`, and while `shared` holds the decode instead.
    pub raster: Raster,
    /// The decode phase's result when it is shared with other jobs (`process_shared`):
    /// read-only. `fit` resizes from it in place; any step that needs pixels of its own gets
    /// a copy from `take_raster`. Empty from `fit` on.
    pub shared: Option<Arc<Decoded>>,
    /// Set by `choose_format`.
    pub format: Option<OutputFormat>,
    /// Set by `encode`.
    pub output: Vec<u8>,
    /// Set by `decode_frames` on the animated path (`ANIM_STEPS`), taken by `encode_frames`.
    pub animation: Option<anim::Animation>,
}

impl<'a> Ctx<'a> {
    pub(super) fn new(
        input: &'a [u8],
        spec: &'a TransformSpec,
        accepts: Accepts,
        limits: &'a Limits,
    ) -> Self {
        Ctx {
            input,
            spec,
            accepts,
            limits,
            probe: None,
            meta: SourceMeta::default(),
            raster: empty_raster(),
            shared: None,
            format: None,
            output: Vec::new(),
            animation: None,
        }
    }

    /// The probe result; an error (not a panic) if a step runs before `probe`.
    pub(super) fn probe(&self) -> Result<Probe, PipelineError> {
        self.probe
            .ok_or_else(|| PipelineError::Undecodable("internal: step ran before probe".into()))
    }

    /// Move the raster out for a step that consumes it, leaving an empty one behind. A
    /// shared decode is copied out here, by the first step that must own its pixels.
    pub(super) fn take_raster(&mut self) -> Raster {
        match self.shared.take() {
            Some(shared) => shared.raster.clone(),
            None => std::mem::replace(&mut self.raster, empty_raster()),
        }
    }
}

fn empty_raster() -> Raster {
    Raster {
        width: 0,
        height: 0,
        channels: 3,
        data: Vec::new(),
    }
}

/// A zeroed pixel buffer, or `TooLarge` when the allocator refuses: a failed allocation must
/// cost one request, never abort the process.
pub(super) fn alloc_pixels(len: usize) -> Result<Vec<u8>, PipelineError> {
    let mut v = Vec::new();
    v.try_reserve_exact(len)
        .map_err(|_| PipelineError::TooLarge(format!("cannot allocate {len} bytes for pixels")))?;
    v.resize(len, 0);
    Ok(v)
}

/// Sizes come from the original's upright size (after EXIF orientation and `rotate`), never
/// from the shrink-on-load raster, so the output does not depend on the decoder's scale.
fn fit_step(ctx: &mut Ctx<'_>) -> Result<(), PipelineError> {
    let probe = ctx.probe()?;
    let original = upright_size(&probe, ctx.meta.orientation, ctx.spec);
    let shared = ctx.shared.take();
    let img = match &shared {
        Some(decoded) => Cow::Borrowed(&decoded.raster),
        None => Cow::Owned(ctx.take_raster()),
    };
    ctx.raster = geometry::fit_from(img, original, ctx.spec, ctx.limits)?;
    Ok(())
}

/// The original's size after EXIF `orientation` and the spec's `rotate`: what `fit` sizes.
pub(super) fn upright_size(probe: &Probe, orientation: u8, spec: &TransformSpec) -> (u32, u32) {
    let mut size = (probe.width, probe.height);
    if (5..=8).contains(&orientation) {
        size = (size.1, size.0);
    }
    if matches!(spec.rotate, Some(90) | Some(270)) {
        size = (size.1, size.0);
    }
    size
}

fn rotate_flip_step(ctx: &mut Ctx<'_>) -> Result<(), PipelineError> {
    if !geometry::rotates_or_flips(ctx.spec) {
        return Ok(()); // nothing to do: leave a shared decode shared
    }
    let img = ctx.take_raster();
    ctx.raster = geometry::rotate_flip(img, ctx.spec);
    Ok(())
}

fn effects_step(ctx: &mut Ctx<'_>) -> Result<(), PipelineError> {
    let img = ctx.take_raster();
    ctx.raster = effects::apply(img, ctx.spec);
    Ok(())
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
    process_shared(input, spec, accepts, limits, None)
}

/// The decode phase's result (upright sRGB raster and the source's metadata), as shared
/// between variants of one original.
#[derive(Debug, Clone)]
pub struct Decoded {
    meta: SourceMeta,
    raster: Raster,
}

impl Decoded {
    /// Bytes of pixels held.
    pub fn weight(&self) -> usize {
        self.raster.data.len()
    }
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

/// [`process`], sharing the decode phase of still images through `share` when given.
pub fn process_shared(
    input: &[u8],
    spec: &TransformSpec,
    accepts: Accepts,
    limits: &Limits,
    share: Option<&dyn DecodeShare>,
) -> Result<Processed, PipelineError> {
    let mut ctx = Ctx::new(input, spec, accepts, limits);
    // `probe` (always first in STEPS) runs on every path; what it finds picks the rest.
    let (head, still) = STEPS.split_at(1);
    let mut timings = run(&mut ctx, head)?;
    let more = if anim::wanted(&ctx)? {
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
        format,
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
    sniff::probe_with_meta(input, limits).map(|(p, _)| p)
}
