//! Step `watermark`: lay the job's overlay (`watermark=<name>`, resolved by the caller into
//! `ctx.overlay`) on the finished picture, after effects and inside any border. The overlay is
//! decoded by the decode phase of `STEPS`, like a source; the kernel is `pipeline::watermark`'s.

use super::{Phase, STEPS};
use crate::pipeline::context::Ctx;
use crate::pipeline::error::PipelineError;
use crate::pipeline::watermark::{self, Prepared};
use crate::spec::{Accepts, TransformSpec};

pub(super) fn step(ctx: &mut Ctx<'_>) -> Result<(), PipelineError> {
    let Some(prepared) = prepare(ctx)? else {
        return Ok(());
    };
    let img = ctx.take_raster();
    ctx.raster = watermark::apply(img, &prepared, ctx.limits)?;
    Ok(())
}

/// The job's overlay decoded (whole, upright, sRGB) under its limits; `None` without one.
/// The animated path prepares it once for all its frames.
pub(super) fn prepare(ctx: &Ctx<'_>) -> Result<Option<Prepared>, PipelineError> {
    let Some(overlay) = ctx.overlay else {
        return Ok(None);
    };
    let whole = TransformSpec::default();
    let mut own = Ctx::new(overlay.image, &whole, Accepts::default(), ctx.limits);
    for (_, phase, step) in STEPS {
        if *phase == Phase::Decode {
            step(&mut own).map_err(|e| PipelineError::Undecodable(format!("watermark: {e}")))?;
        }
    }
    Ok(Some(watermark::prepare(
        own.take_raster(),
        overlay.placement,
    )))
}
