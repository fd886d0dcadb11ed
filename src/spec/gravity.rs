//! Where a gravity lands when the picture turns or mirrors: dialects whose transforms run in
//! another order than imgate's (thumbor rotates last, imgproxy crops in the turned frame)
//! carry a gravity through the turn with these.

use super::types::{Flip, Gravity};

impl Gravity {
    /// Where `self` lands when the picture turns clockwise `turns` quarter turns.
    pub fn turned(self, turns: u16) -> Gravity {
        let Some(mut p) = self.point() else {
            return self;
        };
        for _ in 0..turns % 4 {
            p = (1000 - p.1, p.0);
        }
        Gravity::at(p)
    }

    /// Where `self` lands when the picture is mirrored by `flip`.
    pub fn mirrored(self, flip: Flip) -> Gravity {
        let Some((x, y)) = self.point() else {
            return self;
        };
        let (h, v) = match flip {
            Flip::None => (false, false),
            Flip::Horizontal => (true, false),
            Flip::Vertical => (false, true),
            Flip::Both => (true, true),
        };
        Gravity::at((if h { 1000 - x } else { x }, if v { 1000 - y } else { y }))
    }

    /// As `(x, y)` in thousandths of the picture (0 = left/top); `None` for `Auto`, which
    /// turns with the picture by definition.
    pub fn point(self) -> Option<(i32, i32)> {
        Some(match self {
            Gravity::Auto => return None,
            Gravity::Center => (500, 500),
            Gravity::Top => (500, 0),
            Gravity::Bottom => (500, 1000),
            Gravity::Left => (0, 500),
            Gravity::Right => (1000, 500),
            Gravity::TopLeft => (0, 0),
            Gravity::TopRight => (1000, 0),
            Gravity::BottomLeft => (0, 1000),
            Gravity::BottomRight => (1000, 1000),
            Gravity::Point { x_milli, y_milli } => (i32::from(x_milli), i32::from(y_milli)),
        })
    }

    /// The gravity at `(x, y)`: a named one where there is one, else a focal point.
    fn at((x, y): (i32, i32)) -> Gravity {
        match (x, y) {
            (500, 500) => Gravity::Center,
            (500, 0) => Gravity::Top,
            (500, 1000) => Gravity::Bottom,
            (0, 500) => Gravity::Left,
            (1000, 500) => Gravity::Right,
            (0, 0) => Gravity::TopLeft,
            (1000, 0) => Gravity::TopRight,
            (0, 1000) => Gravity::BottomLeft,
            (1000, 1000) => Gravity::BottomRight,
            (x, y) => Gravity::Point {
                x_milli: x.clamp(0, 1000) as u16,
                y_milli: y.clamp(0, 1000) as u16,
            },
        }
    }
}
