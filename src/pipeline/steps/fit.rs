//! Step `fit`: resize to the requested box (`fit`, `width`, `height`, `dpr`, `gravity`...),
//! from the shared decode in place when there is one. The sizes come from the original's
//! upright size, so the output never depends on how far the decoder shrank; the kernels are
//! `geometry`'s.

use crate::imaging::orientation::Orientation;
use crate::imaging::Probe;
use crate::pipeline::context::Ctx;
use crate::pipeline::error::PipelineError;
use crate::pipeline::geometry;
use crate::spec::TransformSpec;
use std::borrow::Cow;

/// Sizes come from the original's upright size (after EXIF orientation and `rotate`), never
/// from the shrink-on-load raster, so the output does not depend on the decoder's scale.
pub(super) fn step(ctx: &mut Ctx<'_>) -> Result<(), PipelineError> {
    let probe = ctx.probe()?;
    let original = upright_size(&probe, ctx.meta.orientation, ctx.spec);
    let shared = ctx.shared.take();
    let img = match &shared {
        Some(decoded) => Cow::Borrowed(&decoded.raster),
        None => Cow::Owned(ctx.take_raster()),
    };
    let gravity = ctx.focus.unwrap_or(ctx.spec.gravity);
    ctx.raster = geometry::fit_from(img, original, ctx.spec, ctx.trimmed, gravity, ctx.limits)?;
    Ok(())
}

/// The original's size after EXIF `orientation` and the spec's `rotate`: what `fit` sizes.
pub(in crate::pipeline) fn upright_size(
    probe: &Probe,
    orientation: u8,
    spec: &TransformSpec,
) -> (u32, u32) {
    let mut size = (probe.width, probe.height);
    if Orientation::from_exif(orientation).swaps_axes() {
        size = (size.1, size.0);
    }
    if geometry::spec_orientation(spec).swaps_axes() {
        size = (size.1, size.0);
    }
    size
}
