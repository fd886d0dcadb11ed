//! Step `metadata` (after `encode`): honour `metadata=copyright|keep` by writing the source's
//! EXIF, cut down and patched for the output, into the encoded file. The TIFF work and the
//! container surgery are `keep_metadata`'s. Never fails a request: a malformed source block or
//! an output that cannot be patched means the image goes out without metadata. AVIF output is
//! always stripped (see `keep_metadata`).

use crate::pipeline::context::Ctx;
use crate::pipeline::error::PipelineError;
use crate::pipeline::keep_metadata::{
    copyright_exif, inject_jpeg, inject_png, inject_webp, keep_exif,
};
use crate::pipeline::metadata;
use crate::pipeline::sniff::SourceFormat;
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
            png_exif = metadata::png_exif(ctx.input);
            match png_exif.as_deref() {
                Some(tiff) => tiff,
                None => return Ok(()),
            }
        }
        None => return Ok(()),
    };
    let exif = match mode {
        Metadata::None => return Ok(()),
        Metadata::Copyright => copyright_exif(source),
        Metadata::Keep => keep_exif(source, ctx.raster.width, ctx.raster.height),
    };
    let Some(exif) = exif else {
        log::debug!("metadata: source EXIF is malformed or has nothing to keep");
        return Ok(());
    };
    let injected = match format {
        OutputFormat::Jpeg => inject_jpeg(&ctx.output, &exif),
        OutputFormat::Webp => inject_webp(&ctx.output, &exif),
        OutputFormat::Png => inject_png(&ctx.output, &exif),
        OutputFormat::Avif => Err("AVIF output carries no metadata".into()),
    };
    match injected {
        Ok(out) => ctx.output = out,
        Err(why) => log::info!("metadata: EXIF not written to {format:?} output: {why}"),
    }
    Ok(())
}
