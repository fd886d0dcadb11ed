//! Turning and mirroring a raster: the one transform behind both EXIF orientation and the
//! user's `rotate`/`flip`. An orientation is a number of clockwise quarter turns followed by
//! mirrors; half turns and mirrors work in place, quarter turns in one tiled pass into a new
//! buffer.

use super::raster::Raster;

/// Clockwise quarter turns (0-3), then a horizontal and/or a vertical mirror.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Orientation {
    pub turns: u8,
    pub flip_h: bool,
    pub flip_v: bool,
}

impl Orientation {
    /// What makes a source stored with EXIF Orientation `o` upright; values outside 2..=8
    /// (absent, 1, out of range) change nothing.
    pub fn from_exif(o: u8) -> Orientation {
        let (turns, flip_h, flip_v) = match o {
            2 => (0, true, false),
            3 => (2, false, false),
            4 => (0, false, true),
            5 => (1, true, false),
            6 => (1, false, false),
            7 => (3, true, false),
            8 => (3, false, false),
            _ => (0, false, false),
        };
        Orientation {
            turns,
            flip_h,
            flip_v,
        }
    }

    /// Width and height trade places (a quarter turn either way).
    pub fn swaps_axes(&self) -> bool {
        self.turns % 2 == 1
    }

    /// Changes nothing.
    pub fn is_identity(&self) -> bool {
        self.turns.is_multiple_of(4) && !self.flip_h && !self.flip_v
    }
}

/// `img` turned and mirrored by `o`.
pub fn apply(img: Raster, o: Orientation) -> Raster {
    if o.is_identity() || img.width == 0 || img.height == 0 {
        return img;
    }
    // A half turn is a horizontal plus a vertical mirror; fold it into the flips so only
    // quarter turns need the transposing (allocating) path.
    let turns = o.turns % 4;
    let (flip_h, flip_v) = if turns == 2 {
        (!o.flip_h, !o.flip_v)
    } else {
        (o.flip_h, o.flip_v)
    };
    match (turns % 2 == 1, img.channels) {
        (false, _) => mirror_in_place(img, flip_h, flip_v),
        (true, 4) => transpose_turn::<4>(img, turns == 1, flip_h, flip_v),
        (true, _) => transpose_turn::<3>(img, turns == 1, flip_h, flip_v),
    }
}

/// Mirror horizontally and/or vertically without a second buffer.
fn mirror_in_place(mut img: Raster, flip_h: bool, flip_v: bool) -> Raster {
    let c = img.channels as usize;
    let stride = img.width as usize * c;
    let rows = img.height as usize;
    if flip_v {
        let (mut top, mut bottom) = (0, rows);
        while top + 1 < bottom {
            bottom -= 1;
            let (a, b) = img.data.split_at_mut(bottom * stride);
            a[top * stride..(top + 1) * stride].swap_with_slice(&mut b[..stride]);
            top += 1;
        }
    }
    if flip_h {
        for row in img.data.chunks_exact_mut(stride) {
            // Reversing the bytes reverses pixel order and each pixel's channels; reversing
            // every pixel again restores channel order.
            row.reverse();
            for px in row.chunks_exact_mut(c) {
                px.reverse();
            }
        }
    }
    img
}

/// Rotate a quarter turn (clockwise when `cw`), then mirror, in one pass into a new buffer.
/// Works in square tiles so both the reads and the writes stay within a few cache lines.
fn transpose_turn<const C: usize>(img: Raster, cw: bool, flip_h: bool, flip_v: bool) -> Raster {
    const TILE: usize = 32;
    let (sw, sh) = (img.width as usize, img.height as usize);
    let (dw, dh) = (sh, sw);
    let mut out = vec![0u8; sw * sh * C];
    let src = &img.data;
    // Output (ox, oy) reads source (sx, sy): clockwise is sx = oy, sy = sh-1-ox;
    // counter-clockwise is sx = sw-1-oy, sy = ox; mirrors first reflect (ox, oy).
    for ty in (0..dh).step_by(TILE) {
        for tx in (0..dw).step_by(TILE) {
            for oy in ty..(ty + TILE).min(dh) {
                let my = if flip_v { dh - 1 - oy } else { oy };
                for ox in tx..(tx + TILE).min(dw) {
                    let mx = if flip_h { dw - 1 - ox } else { ox };
                    let (sx, sy) = if cw {
                        (my, sh - 1 - mx)
                    } else {
                        (sw - 1 - my, mx)
                    };
                    let s = (sy * sw + sx) * C;
                    let d = (oy * dw + ox) * C;
                    out[d..d + C].copy_from_slice(&src[s..s + C]);
                }
            }
        }
    }
    Raster::new(dw as u32, dh as u32, C as u8, out)
}
