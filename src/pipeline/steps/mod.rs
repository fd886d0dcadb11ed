//! The pipeline's steps, one small file each, and the order they run in (`STEPS`, and
//! `ANIM_STEPS` for animated output). A step reads what earlier steps left in the context
//! (`context::Ctx`) and adds its own result; the work itself (codecs, kernels, policy) lives
//! beside this folder and is only called from here.

pub(super) mod animated;
mod attention;
mod border;
mod choose_format;
mod colour;
pub(super) mod decode;
mod describe;
mod effects;
mod encode;
pub(super) mod fit;
pub(super) mod flatten;
mod metadata;
mod orient;
pub(super) mod probe;
mod rotate_flip;
mod trim_border;
mod watermark;

use super::context::Ctx;
use super::error::PipelineError;

/// Which `StepTimings` bucket a step's wall time goes to (`Server-Timing` names).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(in crate::pipeline) enum Phase {
    Decode,
    Resize,
    Encode,
}

/// One step: reads what earlier steps left in the context and adds its own result.
pub(in crate::pipeline) type Step = fn(&mut Ctx<'_>) -> Result<(), PipelineError>;

/// The whole pipeline, in order. Reading this list is reading the algorithm.
pub(in crate::pipeline) const STEPS: &[(&str, Phase, Step)] = &[
    ("probe", Phase::Decode, probe::step),
    ("decode", Phase::Decode, decode::step),
    ("orient", Phase::Decode, orient::step),
    ("colour", Phase::Decode, colour::step),
    // On the upright picture, before anything turns it: `trim=border` finds what to keep.
    ("trim_border", Phase::Resize, trim_border::step),
    // Rotate first: `width`/`height` name the axes after `rotate`, as Cloudflare defines them.
    ("rotate_flip", Phase::Resize, rotate_flip::step),
    // `gravity=auto`: where the crop window goes, found on the picture as `fit` will see it.
    ("attention", Phase::Resize, attention::step),
    ("fit", Phase::Resize, fit::step),
    ("effects", Phase::Resize, effects::step),
    // On the picture as it will be seen, inside any border.
    ("watermark", Phase::Resize, watermark::step),
    // After effects, so nothing blurs the frame; before flatten, which lays the background
    // under a translucent one.
    ("border", Phase::Resize, border::step),
    ("choose_format", Phase::Resize, choose_format::step),
    ("flatten", Phase::Resize, flatten::step),
    ("encode", Phase::Encode, encode::step),
    // After encode: EXIF is spliced into the finished file (a no-op for metadata=none).
    ("metadata", Phase::Encode, metadata::step),
];

/// What replaces everything after `probe` for `format=json`: no pixels unless `trim=border`
/// must find its border in them, no encoder.
pub(in crate::pipeline) const DESCRIBE_STEPS: &[(&str, Phase, Step)] = &[
    ("measure", Phase::Decode, describe::measure),
    ("describe", Phase::Encode, describe::step),
];

/// What replaces everything after `probe` when `animated::wanted` says the output is an animated
/// WebP: every frame goes through the per-frame steps above, then one animation encoder.
pub(in crate::pipeline) const ANIM_STEPS: &[(&str, Phase, Step)] = &[
    ("decode_frames", Phase::Decode, animated::decode_step),
    ("encode_frames", Phase::Encode, animated::encode_step),
    // Inserts EXIF into the VP8X container like it does for still WebP.
    ("metadata", Phase::Encode, metadata::step),
];
