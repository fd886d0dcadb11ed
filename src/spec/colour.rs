//! CSS colour values for `background`: names, `#rgb`/`#rgba`/`#rrggbb`/`#rrggbbaa` and
//! `rgb()`/`rgba()`.

use super::types::Rgba;
use super::values::{decimal_in, int_in};

/// The CSS named colours people actually put in URLs.
const NAMED_COLOURS: &[(&str, [u8; 4])] = &[
    ("black", [0x00, 0x00, 0x00, 0xff]),
    ("white", [0xff, 0xff, 0xff, 0xff]),
    ("red", [0xff, 0x00, 0x00, 0xff]),
    ("green", [0x00, 0x80, 0x00, 0xff]),
    ("blue", [0x00, 0x00, 0xff, 0xff]),
    ("yellow", [0xff, 0xff, 0x00, 0xff]),
    ("cyan", [0x00, 0xff, 0xff, 0xff]),
    ("aqua", [0x00, 0xff, 0xff, 0xff]),
    ("magenta", [0xff, 0x00, 0xff, 0xff]),
    ("fuchsia", [0xff, 0x00, 0xff, 0xff]),
    ("gray", [0x80, 0x80, 0x80, 0xff]),
    ("grey", [0x80, 0x80, 0x80, 0xff]),
    ("silver", [0xc0, 0xc0, 0xc0, 0xff]),
    ("maroon", [0x80, 0x00, 0x00, 0xff]),
    ("olive", [0x80, 0x80, 0x00, 0xff]),
    ("lime", [0x00, 0xff, 0x00, 0xff]),
    ("teal", [0x00, 0x80, 0x80, 0xff]),
    ("navy", [0x00, 0x00, 0x80, 0xff]),
    ("purple", [0x80, 0x00, 0x80, 0xff]),
    ("orange", [0xff, 0xa5, 0x00, 0xff]),
    ("transparent", [0x00, 0x00, 0x00, 0x00]),
];

/// CSS colours are case-insensitive. `%23` is taken as `#` because `#` cannot appear raw in
/// a URL path and callers may hand us the segment still encoded.
pub(super) fn parse_colour(value: &str) -> Option<Rgba> {
    if let Some(hex) = value
        .strip_prefix('#')
        .or_else(|| value.strip_prefix("%23"))
    {
        return parse_hex_colour(hex);
    }
    if let Some((func, rest)) = value.split_once('(') {
        let args = rest.strip_suffix(')')?;
        if !(func.trim().eq_ignore_ascii_case("rgb") || func.trim().eq_ignore_ascii_case("rgba")) {
            return None;
        }
        return parse_rgb_args(args);
    }
    NAMED_COLOURS
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(value))
        .map(|&(_, rgba)| Rgba(rgba))
}

fn parse_hex_colour(hex: &str) -> Option<Rgba> {
    if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let nibbles: Vec<u8> = hex
        .bytes()
        .map(|b| (b as char).to_digit(16).map_or(0, |d| d as u8))
        .collect();
    let mut out = [0u8, 0, 0, 0xff];
    match nibbles.len() {
        3 | 4 => {
            for (o, n) in out.iter_mut().zip(&nibbles) {
                *o = n * 0x11;
            }
        }
        6 | 8 => {
            for (o, pair) in out.iter_mut().zip(nibbles.chunks(2)) {
                *o = pair[0] * 16 + pair[1];
            }
        }
        _ => return None,
    }
    Some(Rgba(out))
}

/// The inside of `rgb(...)`/`rgba(...)`: three 0..=255 integers and an optional 0..=1 alpha.
/// As in CSS Colors 4, both names take either form.
fn parse_rgb_args(args: &str) -> Option<Rgba> {
    let parts: Vec<&str> = args.split(',').map(str::trim).collect();
    if parts.len() != 3 && parts.len() != 4 {
        return None;
    }
    let mut out = [0u8, 0, 0, 0xff];
    for (o, p) in out.iter_mut().zip(&parts[..3]) {
        *o = int_in(p, 0, 255)? as u8;
    }
    if let Some(a) = parts.get(3) {
        let millionths = decimal_in(a, 0, 1, 6)?;
        out[3] = ((millionths * 255 + 500_000) / 1_000_000) as u8;
    }
    Some(Rgba(out))
}
