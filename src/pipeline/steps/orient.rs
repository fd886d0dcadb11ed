//! Step `orient`: turn the decoded raster upright by the source's EXIF Orientation (read by
//! the probe or the decoder into `ctx.meta`). The transform is `imaging::orientation`'s; the user's
//! `rotate`/`flip` come later, in `rotate_flip`.

use crate::imaging::orientation::{apply, Orientation};
use crate::pipeline::context::Ctx;
use crate::pipeline::error::PipelineError;

/// Pipeline step: apply `ctx.meta.orientation` (values 2..=8; anything else is upright).
pub(in crate::pipeline) fn step(ctx: &mut Ctx<'_>) -> Result<(), PipelineError> {
    let orientation = Orientation::from_exif(ctx.meta.orientation);
    // Upright already: leave a shared decode shared (`take_raster` would copy it).
    if !orientation.is_identity() {
        let img = ctx.take_raster();
        ctx.raster = apply(img, orientation);
    }
    Ok(())
}
