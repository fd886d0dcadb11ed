//! Step `flatten`: lay a translucent raster over `spec.background`, as Cloudflare does (the
//! colour shows through transparent pixels, in padding or not); and when the chosen output
//! format cannot carry alpha (JPEG), onto that colour or white. Owns only that compositing; it
//! runs after the format is chosen and never touches an opaque raster.

use crate::imaging::Raster;
use crate::pipeline::context::Ctx;
use crate::pipeline::error::PipelineError;
use crate::spec::{OutputFormat, Rgba};

/// Pipeline step: composite a raster with alpha onto the background when there is one, or
/// when the output is JPEG.
pub(in crate::pipeline) fn step(ctx: &mut Ctx<'_>) -> Result<(), PipelineError> {
    if !ctx.raster.has_alpha() {
        return Ok(());
    }
    let img = ctx.take_raster();
    ctx.raster = if ctx.format == Some(OutputFormat::Jpeg) {
        flatten(img, background_rgb(ctx.spec.background))
    } else {
        on_background(img, ctx.spec.background)
    };
    Ok(())
}

/// `img` laid over `bg`, for an output that keeps alpha: an opaque colour gives an opaque RGB
/// raster, a translucent one a raster as translucent as the two together; no colour or no
/// alpha, `img` unchanged. The animated path calls it for each frame.
pub(in crate::pipeline) fn on_background(img: Raster, bg: Option<Rgba>) -> Raster {
    match bg {
        _ if !img.has_alpha() => img,
        Some(Rgba([r, g, b, 255])) => flatten(img, [r, g, b]),
        Some(bg) => over(img, bg),
        None => img,
    }
}

/// An RGBA raster laid over a translucent colour (Porter-Duff "over", straight alpha): what
/// is left transparent is the colour, what is opaque stays as it was.
pub(in crate::pipeline) fn over(mut img: Raster, Rgba(bg): Rgba) -> Raster {
    let under = f32::from(bg[3]) / 255.0;
    for px in img.data.chunks_exact_mut(4) {
        let a = f32::from(px[3]) / 255.0;
        let below = under * (1.0 - a);
        let out = a + below;
        if out <= 0.0 {
            px.copy_from_slice(&[0, 0, 0, 0]);
            continue;
        }
        for c in 0..3 {
            let v = (f32::from(px[c]) * a + f32::from(bg[c]) * below) / out;
            px[c] = v.round().clamp(0.0, 255.0) as u8;
        }
        px[3] = (out * 255.0).round() as u8;
    }
    img
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
