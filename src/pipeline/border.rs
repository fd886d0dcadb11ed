//! Finding a border of one colour (`trim=border`): the smallest rectangle of an upright raster
//! that holds every pixel unlike the border colour. Only reads pixels; the cut itself is the
//! fit plan's (`geometry`), like any other region.

use super::geometry::Rect;
use crate::imaging::Raster;
use crate::spec::{BorderColour, BorderTrim};

/// What `trim` keeps of `img`: the box around every pixel further than its tolerance from the
/// border colour, widened by `keep` on each side. `None` when nothing would be cut, or when
/// the picture is all border (kept whole, as thumbor and libvips do).
pub fn find(img: &Raster, trim: &BorderTrim) -> Option<Rect> {
    let (w, h) = (img.width, img.height);
    if w == 0 || h == 0 {
        return None;
    }
    let channels = usize::from(img.channels);
    let at = |x: u32, y: u32| -> [u8; 4] {
        let i = (y as usize * w as usize + x as usize) * channels;
        let p = &img.data[i..i + channels];
        [p[0], p[1], p[2], if channels == 4 { p[3] } else { 255 }]
    };
    let colour = match trim.colour {
        BorderColour::TopLeft => at(0, 0),
        BorderColour::BottomRight => at(w - 1, h - 1),
        BorderColour::Rgba(c) => c.0,
    };
    let limit = u32::from(trim.tolerance).pow(2);
    let unlike = |p: [u8; 4]| -> bool {
        if p[3] == 0 && colour[3] == 0 {
            return false; // transparent is transparent, whatever RGB it stores
        }
        let d2: u32 = p
            .iter()
            .zip(&colour)
            .map(|(&a, &b)| u32::from(a.abs_diff(b)).pow(2))
            .sum();
        d2 > limit
    };
    let row_unlike = |y: u32| (0..w).any(|x| unlike(at(x, y)));
    let top = (0..h).find(|&y| row_unlike(y))?;
    let bottom = (top..h).rev().find(|&y| row_unlike(y))?;
    let column_unlike = |x: u32| (top..=bottom).any(|y| unlike(at(x, y)));
    let left = (0..w).find(|&x| column_unlike(x))?;
    let right = (left..w).rev().find(|&x| column_unlike(x))?;
    let keep = trim.keep;
    let (left, top) = (left.saturating_sub(keep), top.saturating_sub(keep));
    let right = right.saturating_add(keep).min(w - 1);
    let bottom = bottom.saturating_add(keep).min(h - 1);
    let found = Rect {
        left,
        top,
        width: right - left + 1,
        height: bottom - top + 1,
    };
    (found.width < w || found.height < h).then_some(found)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::Rgba;

    /// A `w` x `h` picture of `border` with `inner` filling (`left`, `top`, `iw`, `ih`).
    fn framed(w: u32, h: u32, border: [u8; 4], inner: [u8; 4], r: Rect) -> Raster {
        let mut data = Vec::new();
        for y in 0..h {
            for x in 0..w {
                let inside =
                    x >= r.left && x < r.left + r.width && y >= r.top && y < r.top + r.height;
                data.extend_from_slice(if inside { &inner } else { &border });
            }
        }
        Raster::new(w, h, 4, data)
    }

    fn trim(colour: BorderColour, tolerance: u16, keep: u32) -> BorderTrim {
        BorderTrim {
            colour,
            tolerance,
            keep,
        }
    }

    const WHITE: [u8; 4] = [255, 255, 255, 255];
    const INNER: Rect = Rect {
        left: 7,
        top: 3,
        width: 20,
        height: 11,
    };

    #[test]
    fn the_box_holds_exactly_the_unlike_pixels() {
        let img = framed(40, 30, WHITE, [200, 10, 10, 255], INNER);
        assert_eq!(find(&img, &trim(BorderColour::TopLeft, 0, 0)), Some(INNER));
        assert_eq!(
            find(&img, &trim(BorderColour::BottomRight, 10, 0)),
            Some(INNER)
        );
        // keep widens, clipped at the picture's edge.
        let kept = find(&img, &trim(BorderColour::TopLeft, 0, 5)).unwrap();
        assert_eq!(
            (kept.left, kept.top, kept.width, kept.height),
            (2, 0, 30, 19)
        );
        // Nothing is cut from a picture without a border, or from one that is all border.
        let plain = framed(10, 10, WHITE, WHITE, INNER);
        assert_eq!(find(&plain, &trim(BorderColour::TopLeft, 0, 0)), None);
        let full = Rect {
            left: 0,
            top: 0,
            width: 40,
            height: 30,
        };
        let edge_to_edge = framed(40, 30, WHITE, [0, 0, 0, 255], full);
        assert_eq!(
            find(&edge_to_edge, &trim(BorderColour::TopLeft, 0, 0)),
            None
        );
    }

    #[test]
    fn tolerance_is_a_distance_and_transparent_matches_transparent() {
        // Inner pixels 8 away on each of three channels: sqrt(3 * 64) = 13.9.
        let img = framed(40, 30, WHITE, [247, 247, 247, 255], INNER);
        assert_eq!(find(&img, &trim(BorderColour::TopLeft, 13, 0)), Some(INNER));
        assert_eq!(find(&img, &trim(BorderColour::TopLeft, 14, 0)), None);
        // A given colour need not be the corner's.
        let red = BorderColour::Rgba(Rgba([255, 0, 0, 255]));
        assert_eq!(find(&img, &trim(red, 10, 0)), None, "no red border to cut");
        // Transparent pixels storing different colours are all border.
        let mut clear = framed(40, 30, [0, 0, 0, 0], [9, 9, 9, 255], INNER);
        clear.data[4..8].copy_from_slice(&[255, 255, 255, 0]);
        assert_eq!(
            find(&clear, &trim(BorderColour::BottomRight, 0, 0)),
            Some(INNER)
        );
    }
}
