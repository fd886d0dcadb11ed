//! Step `flatten`: when the chosen output format cannot carry alpha (JPEG), composite the
//! raster onto `spec.background` (white by default). Owns only that compositing; it runs
//! after the format is chosen and never touches an image whose output keeps alpha.

use crate::imaging::Raster;
use crate::pipeline::context::Ctx;
use crate::pipeline::error::PipelineError;
use crate::spec::{OutputFormat, Rgba};

/// Pipeline step: flatten when the output is JPEG and the raster has alpha.
pub(in crate::pipeline) fn step(ctx: &mut Ctx<'_>) -> Result<(), PipelineError> {
    if ctx.format == Some(OutputFormat::Jpeg) && ctx.raster.has_alpha() {
        let img = ctx.take_raster();
        ctx.raster = flatten(img, background_rgb(ctx.spec.background));
    }
    Ok(())
}

/// The opaque colour to composite onto. A translucent `background` is itself laid over
/// white first, since the result has nothing behind it to show through.
pub(in crate::pipeline) fn background_rgb(bg: Option<Rgba>) -> [u8; 3] {
    let Some(Rgba([r, g, b, a])) = bg else {
        return [255; 3];
    };
    let over_white = |c: u8| blend(c, 255, a);
    [over_white(r), over_white(g), over_white(b)]
}

/// `fg` over `bg` with straight alpha `a`, rounded.
fn blend(fg: u8, bg: u8, a: u8) -> u8 {
    let (fg, bg, a) = (u32::from(fg), u32::from(bg), u32::from(a));
    ((fg * a + bg * (255 - a) + 127) / 255) as u8
}

/// Composite an RGBA raster onto `bg`, giving RGB; an RGB raster is returned as is. Works in
/// place (RGB output is shorter than RGBA input), so no second buffer is allocated.
pub(in crate::pipeline) fn flatten(img: Raster, bg: [u8; 3]) -> Raster {
    if !img.has_alpha() {
        return img;
    }
    let Raster {
        width,
        height,
        mut data,
        ..
    } = img;
    let pixels = data.len() / 4;
    for i in 0..pixels {
        let a = data[i * 4 + 3];
        for (c, &b) in bg.iter().enumerate() {
            data[i * 3 + c] = blend(data[i * 4 + c], b, a);
        }
    }
    data.truncate(pixels * 3);
    Raster::new(width, height, 3, data)
}
