//! Step `decode`: source bytes to the raster the later steps work on, shrunk on load as far as
//! this request allows. Owns the plan (which DCT scale or integer shrink still covers what `fit`
//! needs, times the output format's headroom); the decoders are the codecs'. The plan is also the key under which decodes are shared between jobs.

use crate::imaging::meta::SourceMeta;
use crate::imaging::orientation::Orientation;
use crate::imaging::raster::drop_opaque_alpha;
use crate::imaging::{avif, heic, jpeg, svg, via_image, webp, Probe, SourceFormat};
use crate::pipeline::context::Ctx;
use crate::pipeline::error::PipelineError;
use crate::pipeline::format::decode_headroom;
use crate::pipeline::geometry::min_decode_size;
use turbojpeg::ScalingFactor;

/// Upright source size -> smallest acceptable decoded size (normally
/// `min_upright_size` for the request; tests pass their own).
pub(in crate::pipeline) type MinSize<'a> = &'a dyn Fn(u32, u32) -> (u32, u32);

/// The smallest upright size shrink-on-load may deliver for this request: what `fit` needs,
/// times the output format's headroom (`decode_headroom`), never more than the source; the
/// whole source for `trim=border`, whose region is only known from the pixels.
pub(in crate::pipeline) fn min_upright_size<'a>(
    ctx: &Ctx<'a>,
) -> impl Fn(u32, u32) -> (u32, u32) + 'a {
    let spec = ctx.spec;
    let headroom = decode_headroom(spec.format, ctx.accepts, spec.compression_fast);
    move |w, h| {
        if spec.trim_border.is_some() {
            return (w, h);
        }
        let (mw, mh) = min_decode_size(w, h, spec);
        let grow = |min: u32, src: u32| ((f64::from(min) * headroom).ceil() as u32).min(src);
        (grow(mw, w), grow(mh, h))
    }
}

/// Pipeline step: decode `ctx.input` as probed into `ctx.raster`.
pub(in crate::pipeline) fn step(ctx: &mut Ctx<'_>) -> Result<(), PipelineError> {
    let probe = ctx.probe()?;
    let min_upright = min_upright_size(ctx);
    let raster = match probe.format {
        SourceFormat::Jpeg => {
            let scale = jpeg_plan(&probe, &ctx.meta, &min_upright);
            jpeg::decode(ctx.input, &probe, &mut ctx.meta, scale)?
        }
        SourceFormat::Webp => {
            let shrink = integer_shrink(&probe, &ctx.meta, &min_upright);
            webp::decode(ctx.input, &probe, shrink)?
        }
        SourceFormat::Png | SourceFormat::Gif | SourceFormat::Bmp | SourceFormat::Tiff => {
            via_image::decode(
                ctx.input,
                &probe,
                &mut ctx.meta,
                ctx.limits.max_source_pixels,
            )?
        }
        SourceFormat::Svg => {
            // Drawn straight at 1/n of its size: no pixels are wasted on a larger raster.
            let shrink = integer_shrink(&probe, &ctx.meta, &min_upright);
            let (w, h) = (probe.width.div_ceil(shrink), probe.height.div_ceil(shrink));
            svg::decode(ctx.input, w, h)?
        }
        // libheif decodes whole: HEVC has no reduced-resolution decode.
        SourceFormat::Heic => heic::decode(ctx.input, ctx.limits.max_source_pixels, &mut ctx.meta)?,
        SourceFormat::Avif => {
            let shrink = integer_shrink(&probe, &ctx.meta, &min_upright);
            avif::decode(
                ctx.input,
                ctx.limits.max_source_pixels,
                &mut ctx.meta,
                shrink,
            )?
        }
    };
    ctx.raster = drop_opaque_alpha(raster);
    Ok(())
}

/// The smallest size, in the *stored* frame, that the decoder may shrink to. The geometry
/// step thinks in the upright frame, so for EXIF orientations 5-8 (which swap the axes) the
/// size is asked for upright and swapped back.
pub(in crate::pipeline) fn min_stored_size(
    width: u32,
    height: u32,
    orientation: u8,
    min_upright: MinSize<'_>,
) -> (u32, u32) {
    let swap = Orientation::from_exif(orientation).swaps_axes();
    let (uw, uh) = if swap {
        (height, width)
    } else {
        (width, height)
    };
    let (mw, mh) = min_upright(uw, uh);
    if swap {
        (mh, mw)
    } else {
        (mw, mh)
    }
}

/// The DCT scale a JPEG is decoded at for this request.
pub(in crate::pipeline) fn jpeg_plan(
    probe: &Probe,
    meta: &SourceMeta,
    min_upright: MinSize<'_>,
) -> ScalingFactor {
    let (mw, mh) = min_stored_size(probe.width, probe.height, meta.orientation, min_upright);
    jpeg::scale(probe.width, probe.height, mw, mh)
}

/// The integer factor a still WebP or an AVIF is shrunk by while decoding, for this request.
pub(in crate::pipeline) fn integer_shrink(
    probe: &Probe,
    meta: &SourceMeta,
    min_upright: MinSize<'_>,
) -> u32 {
    let (w, h) = (probe.width, probe.height);
    let (mw, mh) = min_stored_size(w, h, meta.orientation, min_upright);
    (w / mw.max(1)).min(h / mh.max(1)).max(1)
}

/// What, besides the source bytes, decides the decode step's output for this request: the
/// shrink-on-load factor (JPEG n/8, WebP and AVIF 1/n; other formats always decode whole). Two
/// requests with equal inputs and equal plans get identical decodes, so they may share one.
pub(in crate::pipeline) fn plan(ctx: &Ctx<'_>) -> Result<u32, PipelineError> {
    let probe = ctx.probe()?;
    let min_upright = min_upright_size(ctx);
    Ok(match probe.format {
        // n/8, as n (`ScalingFactor` reduces 2/8 to 1/4, so its numerator alone is ambiguous).
        SourceFormat::Jpeg => {
            let scale = jpeg_plan(&probe, &ctx.meta, &min_upright);
            (scale.num() * 8 / scale.denom()) as u32
        }
        SourceFormat::Webp | SourceFormat::Avif | SourceFormat::Svg => {
            integer_shrink(&probe, &ctx.meta, &min_upright)
        }
        _ => 0,
    })
}
