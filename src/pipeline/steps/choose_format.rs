//! Step `choose_format`: decide the output format before `flatten` (which needs to know
//! whether the output keeps alpha). The rules are `format::choose_format`'s.

use crate::pipeline::context::Ctx;
use crate::pipeline::error::PipelineError;
use crate::pipeline::format::choose_format;

/// Pipeline step: decide the output format (needed before `flatten`).
pub(in crate::pipeline) fn step(ctx: &mut Ctx<'_>) -> Result<(), PipelineError> {
    let source = ctx.probe()?.format;
    ctx.format = Some(choose_format(
        ctx.spec.format,
        ctx.accepts,
        source,
        ctx.raster.has_alpha(),
        ctx.spec.compression_fast,
    ));
    Ok(())
}
