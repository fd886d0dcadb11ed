//! Step `encode`: the finished raster to the chosen format's bytes, at the encoder setting the
//! request's `quality` maps to (`format::encoder_quality`). The encoders are the codecs'.

use crate::imaging::{avif, jpeg, png, webp, Effort, ImageError, Raster};
use crate::pipeline::context::Ctx;
use crate::pipeline::error::PipelineError;
use crate::pipeline::format::encoder_quality;
use crate::spec::{OutputFormat, TransformSpec};

/// Pipeline step: encode `ctx.raster` into `ctx.output`.
pub(in crate::pipeline) fn step(ctx: &mut Ctx<'_>) -> Result<(), PipelineError> {
    let format = match ctx.format {
        Some(f) => f,
        None => {
            super::choose_format::step(ctx)?;
            ctx.format.unwrap_or(OutputFormat::Jpeg)
        }
    };
    let quality = encoder_quality(format, ctx.spec.quality);
    let effort = effort(ctx.spec);
    ctx.output = encode(&ctx.raster, format, quality, ctx.spec.grayscale, effort)?;
    Ok(())
}

/// How hard the encoders work for this request: `compression=fast` asks for less.
pub(in crate::pipeline) fn effort(spec: &TransformSpec) -> Effort {
    if spec.compression_fast {
        Effort::Fast
    } else {
        Effort::Normal
    }
}

/// Encode `img` as `format` at the encoder's own `quality` setting and `effort`; `grayscale`
/// makes a JPEG single-channel.
fn encode(
    img: &Raster,
    format: OutputFormat,
    quality: u8,
    grayscale: bool,
    effort: Effort,
) -> Result<Vec<u8>, ImageError> {
    if img.width == 0 || img.height == 0 {
        return Err(ImageError::Encode(format!(
            "empty {}x{} image",
            img.width, img.height
        )));
    }
    match format {
        OutputFormat::Jpeg => jpeg::encode(img, quality, grayscale, effort),
        OutputFormat::Png => png::encode(img),
        OutputFormat::Webp => webp::encode(img, quality, effort),
        OutputFormat::Avif => avif::encode(img, quality, effort),
    }
}
