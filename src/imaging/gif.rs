//! GIF: the header (logical screen size, frames counted without decoding) and the frame-delay
//! rule browsers apply. Decoding is the `image` crate's (`via_image`, `animation`).

use super::error::ImageError;
use super::format::SourceFormat;
use super::read::{read_u16_le, truncated};

/// Logical screen size, and the number of image descriptors counted by skipping data
/// sub-blocks (no LZW decoding). Counting stops once the limit is exceeded.
pub(crate) fn header(input: &[u8], max_frames: u32) -> Result<(u32, u32, u32), ImageError> {
    let w = read_u16_le(input, 6).ok_or_else(|| truncated("GIF"))?;
    let h = read_u16_le(input, 8).ok_or_else(|| truncated("GIF"))?;
    let packed = *input.get(10).ok_or_else(|| truncated("GIF"))?;
    let mut pos = 13usize;
    if packed & 0x80 != 0 {
        pos += 3 << ((packed & 7) + 1);
    }
    let mut frames = 0u32;
    while let Some(&block) = input.get(pos) {
        match block {
            0x2C => {
                frames += 1;
                if frames > max_frames {
                    break;
                }
                let Some(&local) = input.get(pos + 9) else {
                    break;
                };
                pos += 10;
                if local & 0x80 != 0 {
                    pos += 3 << ((local & 7) + 1);
                }
                pos = skip_sub_blocks(input, pos + 1);
            }
            0x21 => pos = skip_sub_blocks(input, pos + 2),
            _ => break, // 0x3B trailer, or garbage: the decoder judges the rest
        }
    }
    Ok((u32::from(w), u32::from(h), frames.max(1)))
}

/// Skip a chain of GIF data sub-blocks (length byte + data, ended by a zero length).
fn skip_sub_blocks(input: &[u8], mut pos: usize) -> usize {
    while let Some(&n) = input.get(pos) {
        pos += 1 + usize::from(n);
        if n == 0 {
            break;
        }
    }
    pos
}

/// Browsers show GIF frames of 10 ms or less for 100 ms, a GIF-specific habit a WebP viewer
/// need not copy, so the GIF's effective timing is written out explicitly.
const GIF_MIN_DELAY_MS: u32 = 10;

const GIF_SHORT_DELAY_MS: u32 = 100;

/// A frame's delay in whole milliseconds, with GIF's short-delay rule applied.
pub(crate) fn delay_ms(frame: &image::Frame, source: SourceFormat) -> u32 {
    let (num, den) = frame.delay().numer_denom_ms();
    let ms = num / den.max(1);
    if source == SourceFormat::Gif && ms <= GIF_MIN_DELAY_MS {
        GIF_SHORT_DELAY_MS
    } else {
        ms
    }
}
