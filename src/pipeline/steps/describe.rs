//! Steps `measure` and `describe`, for `format=json`: what the output would be, without
//! making it. `measure` decodes only when `trim=border` must find its border in the pixels
//! (running the still path's own decode steps); `describe` writes the original's format, size
//! and file size and the finished picture's size (`geometry::final_size`, the same sizes and
//! the same errors as the real thing) as JSON, in the shape of Cloudflare's `format=json`.

use super::{colour, decode, orient, trim_border};
use crate::pipeline::context::Ctx;
use crate::pipeline::error::PipelineError;
use crate::pipeline::geometry;

/// Decode, orient, convert and find the border, only for `trim=border`.
pub(super) fn measure(ctx: &mut Ctx<'_>) -> Result<(), PipelineError> {
    if ctx.spec.trim_border.is_none() {
        return Ok(());
    }
    for step in [decode::step, orient::step, colour::step, trim_border::step] {
        step(ctx)?;
    }
    Ok(())
}

pub(super) fn step(ctx: &mut Ctx<'_>) -> Result<(), PipelineError> {
    let probe = ctx.probe()?;
    let upright = super::fit::upright_size(&probe, ctx.meta.orientation, ctx.spec);
    let (width, height) = geometry::final_size(upright, ctx.spec, ctx.trimmed, ctx.limits)?;
    // The original as it displays: EXIF orientation applied, `rotate` not.
    let turned = geometry::spec_orientation(ctx.spec).swaps_axes();
    let (ow, oh) = if turned {
        (upright.1, upright.0)
    } else {
        upright
    };
    let description = serde_json::json!({
        "width": width,
        "height": height,
        "original": {
            "format": probe.format.mime(),
            "width": ow,
            "height": oh,
            "file_size": ctx.input.len(),
        },
    });
    ctx.output = description.to_string().into_bytes();
    ctx.described = Some((width, height));
    Ok(())
}
