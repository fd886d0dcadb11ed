//! Step `metadata` (after `encode`): honour `metadata=copyright|keep` by writing the source's
//! EXIF, cut down and patched for the output, into the encoded file. The TIFF work is
//! `imaging::exif`'s, the container surgery each codec's `write_exif`. Never fails a request: a malformed source block or
//! an output that cannot be patched means the image goes out without metadata. AVIF output is
//! always stripped (see `imaging::avif`).

use crate::imaging::{exif, jpeg, png, webp, SourceFormat};
use crate::pipeline::context::Ctx;
use crate::pipeline::error::PipelineError;
use crate::spec::{Metadata, OutputFormat};

/// Pipeline step (after `encode`): a no-op for `metadata=none`, the default.
pub(in crate::pipeline) fn step(ctx: &mut Ctx<'_>) -> Result<(), PipelineError> {
    let mode = ctx.spec.metadata;
    if mode == Metadata::None || ctx.output.is_empty() {
        return Ok(());
    }
    let Some(format) = ctx.format else {
        return Ok(());
    };
    // PNG sources are not walked at probe time; read their `eXIf` only now that it is needed.
    let png_exif;
    let source = match ctx.meta.exif.as_deref() {
        Some(tiff) => tiff,
        None if ctx.probe.map(|p| p.format) == Some(SourceFormat::Png) => {
            png_exif = png::read_exif(ctx.input);
            match png_exif.as_deref() {
                Some(tiff) => tiff,
                None => return Ok(()),
            }
        }
        None => return Ok(()),
    };
    let block = match mode {
        Metadata::None => return Ok(()),
        Metadata::Copyright => exif::copyright_only(source),
        Metadata::Keep => exif::patch_for_upright(source, ctx.raster.width, ctx.raster.height),
    };
    let Some(block) = block else {
        log::debug!("metadata: source EXIF is malformed or has nothing to keep");
        return Ok(());
    };
    let injected = match format {
        OutputFormat::Jpeg => jpeg::write_exif(&ctx.output, &block),
        OutputFormat::Webp => webp::write_exif(&ctx.output, &block),
        OutputFormat::Png => png::write_exif(&ctx.output, &block),
        OutputFormat::Avif => Err("AVIF output carries no metadata".into()),
    };
    match injected {
        Ok(out) => ctx.output = out,
        Err(why) => log::info!("metadata: EXIF not written to {format:?} output: {why}"),
    }
    Ok(())
}
