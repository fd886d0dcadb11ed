//! Watermarks: an overlay picture (a site's configured one, as encoded bytes) decoded once per
//! job, scaled against the output (`scale`, and never larger than the picture it marks),
//! made translucent (`opacity`) and laid over the output at a position with offsets from the
//! edges, or repeated over all of it (`tile`). Compositing is "over" in sRGB values, the way
//! imgproxy and thumbor lay theirs; a transparent output stays transparent where the overlay
//! is. The steps decode the overlay (as they decode a source) and call `prepare` and `apply`;
//! what to lay comes from the caller (`Overlay`).

use super::error::PipelineError;
use super::geometry;
use super::limits::Limits;
use crate::imaging::Raster;
use crate::spec::{Fit, Gravity, TransformSpec, Watermark, WatermarkPosition};

/// The largest overlay, in pixels (4096x4096): watermarks are marks, not photos. A larger one
/// is refused before it is decoded.
pub const MAX_OVERLAY_PIXELS: u64 = 1 << 24;

/// Bytes a job holds for its overlay at most: the decoded RGBA picture and one scaled copy.
pub fn overlay_cost(width: u32, height: u32) -> u64 {
    u64::from(width) * u64::from(height) * 4 * 2
}

/// What to lay over the output: the overlay's encoded bytes (any format imgate reads) and how.
#[derive(Debug, Clone, Copy)]
pub struct Overlay<'a> {
    pub image: &'a [u8],
    pub placement: Placement,
}

/// How an overlay is laid: a validated, configured placement with a URL's adjustments applied.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Placement {
    pub position: WatermarkPosition,
    /// Pixels (at the output's size) between the overlay and the edges it is placed against;
    /// for `tile`, between tiles.
    pub offset: (u32, u32),
    /// 0.0 (invisible) ..= 1.0 (as the overlay's own alpha says).
    pub opacity: f32,
    /// The overlay's width as a fraction of the output's (above 0, up to 1); `None`: its own
    /// size. Either way it is shrunk to fit inside the output (less the offsets).
    pub scale: Option<f32>,
}

impl Placement {
    /// This placement with what a URL's `watermark.*` options change: opacity multiplies the
    /// configured one (as imgproxy's does); the others replace theirs.
    pub fn adjusted(self, url: &Watermark) -> Placement {
        Placement {
            position: url.position.unwrap_or(self.position),
            offset: url
                .offset
                .map_or(self.offset, |(x, y)| (u32::from(x), u32::from(y))),
            opacity: url
                .opacity_centi
                .map_or(self.opacity, |o| self.opacity * f32::from(o) / 100.0),
            scale: url.scale_centi.map(|s| f32::from(s) / 100.0).or(self.scale),
        }
    }
}

/// An overlay decoded (upright, sRGB, RGBA) and ready to be laid on any number of pictures
/// of one job (every frame of an animation).
pub(in crate::pipeline) struct Prepared {
    raster: Raster,
    placement: Placement,
}

/// The decoded overlay (upright, sRGB), ready to lay with `placement`.
pub(in crate::pipeline) fn prepare(img: Raster, placement: Placement) -> Prepared {
    Prepared {
        raster: to_rgba(img),
        placement,
    }
}

/// `img` with the overlay laid on it.
pub(in crate::pipeline) fn apply(
    mut img: Raster,
    overlay: &Prepared,
    limits: &Limits,
) -> Result<Raster, PipelineError> {
    let p = overlay.placement;
    let opacity = (p.opacity.clamp(0.0, 1.0) * 255.0).round() as u32;
    if opacity == 0 || img.width == 0 || img.height == 0 {
        return Ok(img);
    }
    let tile = p.position == WatermarkPosition::Tile;
    let (w, h) = (img.width, img.height);
    let (ox, oy) = (p.offset.0.min(w), p.offset.1.min(h));
    let room = if tile {
        (w, h)
    } else {
        (
            w.saturating_sub(2 * ox).max(1),
            h.saturating_sub(2 * oy).max(1),
        )
    };
    let (mark_w, mark_h) = size_within(&overlay.raster, p.scale, w, room);
    let scaled;
    let mark = if (mark_w, mark_h) == (overlay.raster.width, overlay.raster.height) {
        &overlay.raster
    } else {
        let spec = TransformSpec {
            width: Some(mark_w),
            height: Some(mark_h),
            fit: Fit::Squeeze,
            ..TransformSpec::default()
        };
        scaled = to_rgba(geometry::fit(overlay.raster.clone(), &spec, limits)?);
        &scaled
    };
    match p.position {
        WatermarkPosition::Tile => {
            let (step_x, step_y) = (mark.width + ox, mark.height + oy);
            for y in (0..h).step_by(step_y.max(1) as usize) {
                for x in (0..w).step_by(step_x.max(1) as usize) {
                    lay(&mut img, mark, x, y, opacity);
                }
            }
        }
        WatermarkPosition::At(gravity) => {
            let (fx, fy) = anchor(gravity);
            let at = |fraction: f64, offset: u32, size: u32, mark: u32| -> u32 {
                let free = f64::from(size) - f64::from(mark) - 2.0 * f64::from(offset);
                (f64::from(offset) + fraction * free.max(0.0)).round() as u32
            };
            let x = at(fx, ox, w, mark.width);
            let y = at(fy, oy, h, mark.height);
            lay(&mut img, mark, x, y, opacity);
        }
    }
    Ok(img)
}

/// The overlay's size on a `out_w` wide output: `scale` of it (else its own), keeping its
/// aspect ratio, shrunk to fit `room`; at least 1x1.
fn size_within(mark: &Raster, scale: Option<f32>, out_w: u32, room: (u32, u32)) -> (u32, u32) {
    let (mw, mh) = (f64::from(mark.width.max(1)), f64::from(mark.height.max(1)));
    let mut k = scale.map_or(1.0, |s| f64::from(out_w) * f64::from(s) / mw);
    k = k.min(f64::from(room.0) / mw).min(f64::from(room.1) / mh);
    let side = |v: f64| ((v * k).round() as u32).max(1);
    (side(mw), side(mh))
}

/// Where along each axis a position puts the overlay, 0 (left, top) to 1 (right, bottom);
/// `Auto` (which the URL syntax refuses for watermarks) is the centre.
fn anchor(g: Gravity) -> (f64, f64) {
    let (x, y) = g.point().unwrap_or((500, 500));
    (f64::from(x) / 1000.0, f64::from(y) / 1000.0)
}

/// RGB gets an opaque alpha channel.
fn to_rgba(img: Raster) -> Raster {
    if img.channels == 4 {
        return img;
    }
    let data = img
        .data
        .chunks_exact(3)
        .flat_map(|p| [p[0], p[1], p[2], 255])
        .collect();
    Raster::new(img.width, img.height, 4, data)
}

/// Lay `mark` (RGBA) over `img` with its top-left corner at (`x`, `y`), its alpha times
/// `opacity` (0..=255); the parts outside `img` are cut off.
fn lay(img: &mut Raster, mark: &Raster, x: u32, y: u32, opacity: u32) {
    let c = usize::from(img.channels);
    let (w, h) = (img.width, img.height);
    let cols = mark.width.min(w.saturating_sub(x)) as usize;
    let rows = mark.height.min(h.saturating_sub(y));
    for r in 0..rows {
        let dst_at = ((y + r) as usize * w as usize + x as usize) * c;
        let src_at = r as usize * mark.width as usize * 4;
        let dst = &mut img.data[dst_at..dst_at + cols * c];
        let src = &mark.data[src_at..src_at + cols * 4];
        for (d, s) in dst.chunks_exact_mut(c).zip(src.chunks_exact(4)) {
            let a = (u32::from(s[3]) * opacity + 127) / 255;
            if a == 0 {
                continue;
            }
            if c == 3 {
                for i in 0..3 {
                    d[i] = ((u32::from(s[i]) * a + u32::from(d[i]) * (255 - a) + 127) / 255) as u8;
                }
            } else {
                // "Over" with straight alpha: out_a = a + da (1 - a).
                let da = u32::from(d[3]);
                let below = da * (255 - a); // in 255ths squared
                let out_a = a * 255 + below;
                for i in 0..3 {
                    let v = u32::from(s[i]) * a * 255 + u32::from(d[i]) * below;
                    d[i] = ((v + out_a / 2) / out_a) as u8;
                }
                d[3] = ((out_a + 127) / 255) as u8;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn solid(w: u32, h: u32, px: &[u8]) -> Raster {
        Raster::new(w, h, px.len() as u8, px.repeat((w * h) as usize))
    }

    fn at(img: &Raster, x: u32, y: u32) -> &[u8] {
        let c = usize::from(img.channels);
        let i = (y as usize * img.width as usize + x as usize) * c;
        &img.data[i..i + c]
    }

    fn prepared(mark: Raster, placement: Placement) -> Prepared {
        Prepared {
            raster: to_rgba(mark),
            placement,
        }
    }

    const CORNER: Placement = Placement {
        position: WatermarkPosition::At(Gravity::BottomRight),
        offset: (10, 5),
        opacity: 1.0,
        scale: None,
    };

    #[test]
    fn an_opaque_mark_lands_at_its_corner_less_the_offsets() {
        let out = apply(
            solid(100, 80, &[0, 0, 0]),
            &prepared(solid(20, 10, &[255, 0, 0]), CORNER),
            &Limits::default(),
        )
        .unwrap();
        // Covers x 70..90, y 65..75.
        assert_eq!(at(&out, 70, 65), [255, 0, 0]);
        assert_eq!(at(&out, 89, 74), [255, 0, 0]);
        for (x, y) in [(69, 65), (90, 74), (70, 64), (89, 75), (0, 0), (99, 79)] {
            assert_eq!(at(&out, x, y), [0, 0, 0], "({x}, {y})");
        }
    }

    #[test]
    fn opacity_blends_and_transparent_outputs_stay_transparent_around_it() {
        let half = Placement {
            opacity: 0.5,
            position: WatermarkPosition::At(Gravity::Center),
            offset: (0, 0),
            ..CORNER
        };
        let out = apply(
            solid(40, 40, &[0, 0, 200]),
            &prepared(solid(10, 10, &[200, 0, 0]), half),
            &Limits::default(),
        )
        .unwrap();
        let mid = at(&out, 20, 20);
        assert!(
            mid[0].abs_diff(100) <= 1 && mid[2].abs_diff(100) <= 1,
            "{mid:?}"
        );
        assert_eq!(at(&out, 0, 0), [0, 0, 200]);

        let clear = apply(
            solid(40, 40, &[0, 0, 0, 0]),
            &prepared(solid(10, 10, &[200, 0, 0, 255]), half),
            &Limits::default(),
        )
        .unwrap();
        let mid = at(&clear, 20, 20);
        assert_eq!((mid[0], mid[3]), (200, 128), "{mid:?}");
        assert_eq!(at(&clear, 0, 0), [0, 0, 0, 0]);
    }

    #[test]
    fn scale_is_relative_to_the_output_and_a_mark_never_outgrows_it() {
        let wide = Placement {
            scale: Some(0.5),
            ..CORNER
        };
        let mark = solid(40, 20, &[255, 255, 255]);
        assert_eq!(size_within(&mark, Some(0.5), 200, (180, 90)), (100, 50));
        assert_eq!(size_within(&mark, None, 200, (30, 90)), (30, 15));
        let out = apply(
            solid(200, 100, &[0, 0, 0]),
            &prepared(mark, wide),
            &Limits::default(),
        )
        .unwrap();
        // 100x50 against the bottom-right corner, 10 and 5 in.
        assert_eq!(at(&out, 90, 45), [255, 255, 255]);
        assert_eq!(at(&out, 189, 94), [255, 255, 255]);
        assert_eq!(at(&out, 89, 45), [0, 0, 0]);
    }

    #[test]
    fn tiles_repeat_with_their_gaps() {
        let tiles = Placement {
            position: WatermarkPosition::Tile,
            offset: (6, 6),
            ..CORNER
        };
        let out = apply(
            solid(50, 50, &[0, 0, 0]),
            &prepared(solid(4, 4, &[255, 255, 255]), tiles),
            &Limits::default(),
        )
        .unwrap();
        // Tiles at 0, 10, 20, 30, 40 on each axis.
        for t in [0, 10, 20, 30, 40] {
            assert_eq!(at(&out, t, t)[0], 255, "tile at {t}");
            assert_eq!(at(&out, t + 5, t)[0], 0, "gap after {t}");
        }
        let marked = out.data.chunks_exact(3).filter(|p| p[0] == 255).count();
        assert_eq!(marked, 25 * 16);
    }

    #[test]
    fn adjustments_multiply_opacity_and_replace_the_rest() {
        let url = Watermark {
            name: "logo".into(),
            opacity_centi: Some(50),
            position: Some(WatermarkPosition::Tile),
            offset: None,
            scale_centi: Some(25),
        };
        let p = Placement {
            opacity: 0.8,
            ..CORNER
        }
        .adjusted(&url);
        assert!((p.opacity - 0.4).abs() < 1e-6);
        assert_eq!(p.position, WatermarkPosition::Tile);
        assert_eq!(p.offset, (10, 5));
        assert_eq!(p.scale, Some(0.25));
    }
}
