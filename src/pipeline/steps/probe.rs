//! Step `probe`: name the container and read its header (size, frames, the metadata the
//! decoder needs up front) into the context, with the source-size limits enforced. The work is
//! `sniff::probe_with_meta`'s; this step only files its result.

use crate::pipeline::context::Ctx;
use crate::pipeline::error::PipelineError;
use crate::pipeline::sniff::probe_with_meta;

/// Pipeline step: fills `ctx.probe` and the container metadata the decoder needs up front.
pub(in crate::pipeline) fn step(ctx: &mut Ctx<'_>) -> Result<(), PipelineError> {
    let (probe, meta) = probe_with_meta(ctx.input, ctx.limits)?;
    ctx.probe = Some(probe);
    ctx.meta = meta;
    Ok(())
}
