//! Where the interest in a picture is, for `gravity=auto`: a coarse map of how much each part
//! of the picture draws the eye, and the crop window over that map which holds the most.
//!
//! The measure follows the idea of libvips' "attention" strategy, written here from scratch:
//! a cell scores for its edges (the Laplacian of its luma against its neighbours), for how far
//! its colour stands out from the picture's mean colour (so a saturated wall behind a subject
//! does not outrank the subject, as it would if raw saturation counted), and for skin tones,
//! scaled by how opaque it is. A plain background scores nothing, so a lone subject pulls the
//! window to itself; a picture with nothing in it, or the same everywhere, keeps the window
//! centred.
//!
//! It reads the area once (into cell means on a grid of at most [`GRID`] cells a side,
//! sampling large cells) and allocates only the map, so it stays cheap even on a raster that
//! was not shrunk on load.
//! It is plain arithmetic on a [`Raster`]: no spec, no sizes rules (those are `geometry`'s).

use crate::imaging::Raster;

/// The map's longer side, in cells.
const GRID: u32 = 128;

/// Luma steps a cell must differ from its neighbours by before it counts as an edge: below it
/// is compression noise and grain.
const EDGE_FLOOR: i32 = 6;

/// Distance from the mean colour (Euclidean in RGB, 0-441) below which a cell counts as
/// background.
const COLOUR_FLOOR: i32 = 24;

/// What a cell of skin tone adds, on the scale of the other two terms.
const SKIN: i32 = 96;

/// The centre, in `img`'s pixels, of the `window`-sized box inside `area` (left, top, width,
/// height, in `img`'s pixels) that holds the most interest. Ties go to the box nearest the
/// area's centre, so a featureless area keeps a centred crop and the answer never depends on
/// anything but the pixels.
pub(super) fn best_centre(img: &Raster, area: [f64; 4], window: (f64, f64)) -> (f64, f64) {
    let [left, top, width, height] = area;
    let x0 = left.floor().clamp(0.0, f64::from(img.width)) as u32;
    let y0 = top.floor().clamp(0.0, f64::from(img.height)) as u32;
    let x1 = (left + width).ceil().clamp(0.0, f64::from(img.width)) as u32;
    let y1 = (top + height).ceil().clamp(0.0, f64::from(img.height)) as u32;
    if x1 <= x0 || y1 <= y0 || !(window.0 > 0.0 && window.1 > 0.0) {
        return (left + width / 2.0, top + height / 2.0);
    }
    let map = Map::measure(img, (x0, y0, x1 - x0, y1 - y0));
    let cell = f64::from(map.cell);
    let span = |len: f64, cells: u32| ((len / cell).round() as u32).clamp(1, cells);
    let (wc, hc) = (span(window.0, map.cols), span(window.1, map.rows));
    let (cx, cy) = map.best_box(wc, hc);
    // From cells back to the window's exact size in pixels, on one axis: a box as central as
    // the cells allow is the exact centre, one at either end of the map goes right to that
    // end of the area, and any other keeps its cells' centre (inside the area).
    let pick = |start: u32, cells: u32, of: u32, origin: u32, (lo, len): (f64, f64), win: f64| {
        let (first, last) = (lo + win / 2.0, lo + len - win / 2.0);
        if win >= len || (2 * start + cells).abs_diff(of) <= 1 {
            lo + len / 2.0
        } else if start == 0 {
            first
        } else if start + cells == of {
            last
        } else {
            let c = f64::from(origin) + (f64::from(start) + f64::from(cells) / 2.0) * cell;
            c.clamp(first, last)
        }
    };
    (
        pick(cx, wc, map.cols, x0, (left, width), window.0),
        pick(cy, hc, map.rows, y0, (top, height), window.1),
    )
}

/// Interest per cell, as a summed-area table so any box's total is four lookups.
struct Map {
    cols: u32,
    rows: u32,
    /// Cell side in source pixels.
    cell: u32,
    /// `(cols + 1) * (rows + 1)` running sums; row 0 and column 0 are zero.
    sums: Vec<u64>,
}

impl Map {
    /// Score the `(x, y, w, h)` block of `img` (non-empty, inside it).
    fn measure(img: &Raster, (x0, y0, w, h): (u32, u32, u32, u32)) -> Map {
        let cell = w.max(h).div_ceil(GRID).max(1);
        let (cols, rows) = (w.div_ceil(cell), h.div_ceil(cell));
        let means = cell_means(img, (x0, y0, w, h), cell, cols, rows);
        let (c, r) = (cols as usize, rows as usize);
        let luma: Vec<i32> = means
            .iter()
            .map(|&[r, g, b, _]| (54 * r + 183 * g + 19 * b) >> 8)
            .collect();
        let mean = mean_colour(&means);
        let mut sums = vec![0u64; (c + 1) * (r + 1)];
        for y in 0..r {
            let mut row = 0u64;
            for x in 0..c {
                let i = y * c + x;
                let at = |xx: usize, yy: usize| luma[yy * c + xx];
                let around = at(x.saturating_sub(1), y)
                    + at((x + 1).min(c - 1), y)
                    + at(x, y.saturating_sub(1))
                    + at(x, (y + 1).min(r - 1));
                row += u64::from(score(means[i], mean, (4 * luma[i] - around).abs()));
                sums[(y + 1) * (c + 1) + x + 1] = sums[y * (c + 1) + x + 1] + row;
            }
        }
        Map {
            cols,
            rows,
            cell,
            sums,
        }
    }

    /// The interest of the `w` x `h` cells from column `x`, row `y`.
    fn total(&self, x: u32, y: u32, w: u32, h: u32) -> u64 {
        let stride = self.cols as usize + 1;
        let at = |x: u32, y: u32| self.sums[y as usize * stride + x as usize];
        at(x + w, y + h) + at(x, y) - at(x, y + h) - at(x + w, y)
    }

    /// The top-left cell of the `w` x `h` box with the most interest; the most central of
    /// equal ones.
    fn best_box(&self, w: u32, h: u32) -> (u32, u32) {
        let off_centre = |start: u32, len: u32, of: u32| {
            let d = i64::from(2 * start + len) - i64::from(of);
            d * d
        };
        let mut best = (0, 0);
        let mut key = (0u64, i64::MIN);
        for y in 0..=self.rows - h {
            for x in 0..=self.cols - w {
                let distance = off_centre(x, w, self.cols) + off_centre(y, h, self.rows);
                let k = (self.total(x, y, w, h), -distance);
                if k > key {
                    key = k;
                    best = (x, y);
                }
            }
        }
        best
    }
}

/// How much one cell draws the eye, from its mean colour (RGBA, 0-255), the picture's mean
/// colour and the magnitude of the cell's luma Laplacian.
fn score([r, g, b, a]: [i32; 4], mean: [i32; 3], laplacian: i32) -> u32 {
    let edges = (laplacian - EDGE_FLOOR).max(0) * 4;
    let [dr, dg, db] = [r - mean[0], g - mean[1], b - mean[2]];
    let distance = f64::from(dr * dr + dg * dg + db * db).sqrt() as i32;
    let colour = (distance - COLOUR_FLOOR).max(0) / 2;
    let skin = if is_skin(r, g, b) { SKIN } else { 0 };
    ((edges + colour + skin) * a / 255) as u32
}

/// The mean RGB of the cells, each weighted by its opacity (grey when nothing is opaque).
fn mean_colour(cells: &[[i32; 4]]) -> [i32; 3] {
    let mut sum = [0i64; 3];
    let mut weight = 0i64;
    for &[r, g, b, a] in cells {
        let a = i64::from(a);
        sum[0] += i64::from(r) * a;
        sum[1] += i64::from(g) * a;
        sum[2] += i64::from(b) * a;
        weight += a;
    }
    if weight == 0 {
        return [128; 3];
    }
    sum.map(|v| (v / weight) as i32)
}

/// A common explicit rule for skin under daylight: red leads, green next, blue least, with
/// enough light and enough spread between them.
fn is_skin(r: i32, g: i32, b: i32) -> bool {
    r > 95 && g > 40 && b > 20 && r > g && r > b && r - g > 15 && r.max(g).max(b) - g.min(b) > 15
}

/// Mean RGBA of each `cell` x `cell` block of the `(x0, y0, w, h)` part of `img`, row-major
/// (the last row and column of cells may be partial). Large cells are sampled on a grid of
/// every `cell / 4`-th row and column (16 to 49 samples a cell), which is plenty for a mean
/// and keeps the pass cheap on a raster that was not shrunk on load.
fn cell_means(
    img: &Raster,
    (x0, y0, w, h): (u32, u32, u32, u32),
    cell: u32,
    cols: u32,
    rows: u32,
) -> Vec<[i32; 4]> {
    let ch = img.channels as usize;
    let stride = img.width as usize * ch;
    let step = (cell / 4).max(1) as usize;
    let mut acc = vec![[0u64; 5]; (cols * rows) as usize];
    for y in (0..h).step_by(step) {
        let start = (y0 + y) as usize * stride + x0 as usize * ch;
        let line = &img.data[start..start + w as usize * ch];
        let out = &mut acc[(y / cell * cols) as usize..][..cols as usize];
        for (sum, block) in out.iter_mut().zip(line.chunks(cell as usize * ch)) {
            let mut s = [0u32; 5];
            for px in block.chunks_exact(ch).step_by(step) {
                s[0] += u32::from(px[0]);
                s[1] += u32::from(px[1]);
                s[2] += u32::from(px[2]);
                s[3] += if ch == 4 { u32::from(px[3]) } else { 255 };
                s[4] += 1;
            }
            for (t, v) in sum.iter_mut().zip(s) {
                *t += u64::from(v);
            }
        }
    }
    acc.iter()
        .map(|s| {
            let n = s[4].max(1);
            [s[0], s[1], s[2], s[3]].map(|v| (v / n) as i32)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `w` x `h` grey picture with a busy, colourful square of side `s` at `(x, y)`.
    fn subject_at(w: u32, h: u32, (x, y): (u32, u32), s: u32) -> Raster {
        let mut data = vec![128u8; (w * h * 3) as usize];
        for yy in y..(y + s).min(h) {
            for xx in x..(x + s).min(w) {
                let i = ((yy * w + xx) * 3) as usize;
                let on = (xx / 4 + yy / 4) % 2 == 0;
                data[i..i + 3].copy_from_slice(if on { &[230, 40, 30] } else { &[20, 60, 200] });
            }
        }
        Raster::new(w, h, 3, data)
    }

    fn inside(c: f64, win: f64, subject: (u32, u32)) -> bool {
        c - win / 2.0 <= f64::from(subject.0) && f64::from(subject.0 + subject.1) <= c + win / 2.0
    }

    #[test]
    fn a_lone_subject_pulls_the_window_to_itself_on_either_axis() {
        for x in [0, 40, 500, 740] {
            let img = subject_at(800, 300, (x, 100), 60);
            let (cx, cy) = best_centre(&img, [0.0, 0.0, 800.0, 300.0], (300.0, 300.0));
            assert!(inside(cx, 300.0, (x, 60)), "subject at x={x}, centre {cx}");
            assert_eq!(cy, 150.0, "the window spans the height");
        }
        for y in [0, 90, 700] {
            let img = subject_at(240, 800, (150, y), 80);
            let (cx, cy) = best_centre(&img, [0.0, 0.0, 240.0, 800.0], (240.0, 180.0));
            assert!(inside(cy, 180.0, (y, 80)), "subject at y={y}, centre {cy}");
            assert_eq!(cx, 120.0);
        }
    }

    #[test]
    fn the_window_stays_inside_the_area_it_may_move_in() {
        // The subject straddles the allowed area's left end: the window goes as far left as
        // it may, and no further.
        let img = subject_at(1000, 200, (280, 50), 60);
        let (cx, _) = best_centre(&img, [300.0, 0.0, 600.0, 200.0], (200.0, 200.0));
        assert_eq!(cx, 400.0);
        // On a raster with alpha, a fully transparent subject draws nothing.
        let src = subject_at(600, 200, (480, 40), 100);
        let mut rgba = Vec::with_capacity(600 * 200 * 4);
        for (i, px) in src.data.chunks_exact(3).enumerate() {
            let x = i as u32 % 600;
            rgba.extend_from_slice(px);
            rgba.push(if x >= 400 { 0 } else { 255 });
        }
        let img = Raster::new(600, 200, 4, rgba);
        let (cx, _) = best_centre(&img, [0.0, 0.0, 600.0, 200.0], (200.0, 200.0));
        assert_eq!(cx, 300.0, "nothing visible to prefer: centred");
    }

    #[test]
    fn a_featureless_picture_keeps_the_window_centred() {
        for (w, h) in [(640, 200), (199, 777), (3, 1)] {
            let img = Raster::new(w, h, 3, vec![200; (w * h * 3) as usize]);
            let area = [0.0, 0.0, f64::from(w), f64::from(h)];
            let win = (f64::from(w.min(h)), f64::from(w.min(h)));
            let (cx, cy) = best_centre(&img, area, win);
            assert!((cx - f64::from(w) / 2.0).abs() < 1e-9, "{w}x{h}: {cx}");
            assert!((cy - f64::from(h) / 2.0).abs() < 1e-9, "{w}x{h}: {cy}");
        }
    }

    #[test]
    fn skin_and_colour_count_without_edges() {
        // Two smooth blobs on grey, no texture: one skin-toned, one grey-blue; the window of one
        // blob's width goes to the skin.
        let (w, h) = (900, 100);
        let mut data = vec![120u8; w * h * 3];
        for y in 0..h {
            for x in 0..w {
                let i = (y * w + x) * 3;
                if (100..250).contains(&x) {
                    data[i..i + 3].copy_from_slice(&[124, 122, 126]);
                } else if (650..800).contains(&x) {
                    data[i..i + 3].copy_from_slice(&[224, 172, 140]);
                }
            }
        }
        let img = Raster::new(w as u32, h as u32, 3, data);
        let (cx, _) = best_centre(&img, [0.0, 0.0, 900.0, 100.0], (150.0, 100.0));
        assert!((650.0..=800.0).contains(&cx), "centre {cx}");
    }
}
