//! EXIF orientation: read the Orientation tag with a small bounds-checked TIFF reader and
//! turn the raster upright. Owns the EXIF parsing and the 8 orientation transforms; it does
//! not touch colour, size or the user's `rotate`/`flip` (that is `geometry::rotate_flip`).

use super::raster::Raster;

/// TIFF tag 0x0112, Orientation.
const TAG_ORIENTATION: u16 = 0x0112;
/// More IFD entries than this is not an EXIF block anyone wrote on purpose.
const MAX_IFD_ENTRIES: usize = 4096;

/// Orientation (1..=8) from a TIFF structure (the body of an EXIF block, or a TIFF file):
/// IFD0, tag 0x0112, type SHORT. `None` when absent, malformed or out of range.
pub(super) fn exif_orientation(tiff: &[u8]) -> Option<u8> {
    let little = match tiff.get(0..2)? {
        b"II" => true,
        b"MM" => false,
        _ => return None,
    };
    let u16_at = |at: usize| -> Option<u16> {
        let b = tiff.get(at..at.checked_add(2)?)?;
        Some(if little {
            u16::from_le_bytes([b[0], b[1]])
        } else {
            u16::from_be_bytes([b[0], b[1]])
        })
    };
    let u32_at = |at: usize| -> Option<u32> {
        let b = tiff.get(at..at.checked_add(4)?)?;
        let b = [b[0], b[1], b[2], b[3]];
        Some(if little {
            u32::from_le_bytes(b)
        } else {
            u32::from_be_bytes(b)
        })
    };
    if u16_at(2)? != 42 {
        return None;
    }
    let ifd = usize::try_from(u32_at(4)?).ok()?;
    let entries = usize::from(u16_at(ifd)?).min(MAX_IFD_ENTRIES);
    for i in 0..entries {
        let entry = ifd.checked_add(2 + i * 12)?;
        if u16_at(entry)? != TAG_ORIENTATION {
            continue;
        }
        // Type 3 (SHORT), count 1: the value sits left-aligned in the 4-byte value field.
        if u16_at(entry + 2)? != 3 {
            return None;
        }
        let value = u16_at(entry + 8)?;
        return (1..=8).contains(&value).then_some(value as u8);
    }
    None
}

/// Return `img` transformed so that a source stored with EXIF `orientation` is upright.
///
/// Every orientation is an affine map from output (x, y) to source (sx, sy) with
/// coefficients in {-1, 0, 1}; we walk the output in order and step through the source by
/// constant pixel strides, so one loop serves all eight cases.
pub(super) fn apply(img: Raster, orientation: u8) -> Raster {
    let (w, h) = (img.width as isize, img.height as isize);
    // sx = a*x + b*y + c ; sy = d*x + e*y + f ; `swap` when the output is h x w.
    let (a, b, c, d, e, f, swap) = match orientation {
        2 => (-1, 0, w - 1, 0, 1, 0, false),
        3 => (-1, 0, w - 1, 0, -1, h - 1, false),
        4 => (1, 0, 0, 0, -1, h - 1, false),
        5 => (0, 1, 0, 1, 0, 0, true),
        6 => (0, 1, 0, -1, 0, h - 1, true),
        7 => (0, -1, w - 1, -1, 0, h - 1, true),
        8 => (0, -1, w - 1, 1, 0, 0, true),
        _ => return img,
    };
    let (out_w, out_h) = if swap {
        (img.height, img.width)
    } else {
        (img.width, img.height)
    };
    let bpp = usize::from(img.channels);
    let step_x = d * w + a;
    let step_y = e * w + b;
    let origin = f * w + c;
    let mut out = vec![0u8; img.data.len()];
    if out_w == 0 || out_h == 0 {
        return Raster {
            width: out_w,
            height: out_h,
            channels: img.channels,
            data: out,
        };
    }
    for (y, row) in out.chunks_exact_mut(out_w as usize * bpp).enumerate() {
        let mut s = origin + y as isize * step_y;
        for px in row.chunks_exact_mut(bpp) {
            // In range by construction: (sx, sy) stays inside the source rectangle.
            let at = s as usize * bpp;
            px.copy_from_slice(&img.data[at..at + bpp]);
            s += step_x;
        }
    }
    Raster {
        width: out_w,
        height: out_h,
        channels: img.channels,
        data: out,
    }
}
