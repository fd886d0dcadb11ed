//! AVIF input for the sniff and decode steps: the container is read by `heif`, each AV1
//! picture is decoded by libaom through `csrc/aom_decode.c`, and the planes (8 to 12 bits,
//! 4:2:0/4:2:2/4:4:4 or monochrome, any CICP matrix, full or limited range) become 8-bit RGB
//! here. Alpha items, grids of tiles, the clean aperture, `irot`/`imir` (as an EXIF
//! orientation for the orient step) and the colour description (as an ICC profile for the
//! colour step) are honoured. AV1 has no scaled decode, so shrink-on-load happens in the
//! conversion to RGB: a thumbnail's conversion and resize run at the reduced size.

use super::heif::{Coded, Heif, ItemProps, Nclx};
use crate::imaging::color;
use crate::imaging::error::ImageError;
use crate::imaging::exif;
use crate::imaging::meta::SourceMeta;
use crate::imaging::raster::{alloc_pixels, unpremultiply, Raster};
use std::ffi::{c_char, c_int, c_uint, c_void};
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};

/// `IMGATE_AOM_TOO_LARGE` in csrc/imgate_aom.h.
const AOM_TOO_LARGE: c_int = -2;

#[repr(C)]
struct AomFrame {
    planes: [*const u8; 3],
    strides: [c_int; 3],
    width: c_uint,
    height: c_uint,
    bit_depth: c_int,
    wide: c_int,
    monochrome: c_int,
    x_shift: c_int,
    y_shift: c_int,
    matrix: c_int,
    primaries: c_int,
    transfer: c_int,
    full_range: c_int,
}

type FrameSink = unsafe extern "C" fn(*mut c_void, *const AomFrame) -> c_int;

extern "C" {
    // csrc/imgate_aom.h
    fn imgate_aom_decode(
        data: *const u8,
        len: usize,
        max_pixels: u64,
        reuse: c_int,
        keep_max_pixels: u64,
        sink: FrameSink,
        sink_ctx: *mut c_void,
        err: *mut c_char,
        err_len: usize,
    ) -> c_int;
    fn imgate_aom_drop_kept();
    #[cfg(test)]
    fn imgate_aom_kept_live() -> c_int;
}

/// The largest picture (in pixels) whose decoder a thread keeps for the next one: about 4K UHD.
/// A kept decoder holds context buffers and a frame sized by its largest picture so far.
const KEEP_MAX_PIXELS: u64 = 8_400_000;

/// Frees the calling thread's kept AV1 decoder, if it has one (`release_thread_memory`).
pub(crate) fn drop_kept_decoder() {
    // SAFETY: touches only this thread's own decoder, which no decode is using now (decodes
    // run to completion on the thread that started them).
    unsafe { imgate_aom_drop_kept() }
}

/// Whether every frame of the AV1 stream `data` must be a shown key frame: its first OBU that
/// is neither a temporal delimiter, padding nor metadata is a sequence header, and every
/// sequence header in it has `reduced_still_picture_header` set. Such a stream reads nothing
/// an earlier picture left in a decoder, so a kept decoder may decode it. AVIF items written
/// by libaom (libavif, libheif, libvips, imgate) are like this; others get a fresh decoder.
fn self_contained(data: &[u8]) -> bool {
    let mut rest = data;
    let mut seen_header = false;
    while let Some((&first, tail)) = rest.split_first() {
        let obu_type = (first >> 3) & 0xf;
        let (extension, has_size) = (first & 0x4 != 0, first & 0x2 != 0);
        let mut body = tail;
        if extension {
            let Some((_, t)) = body.split_first() else {
                return false;
            };
            body = t;
        }
        let payload = if has_size {
            let Some((size, used)) = leb128(body) else {
                return false;
            };
            let Some(p) = body.get(used..).and_then(|b| b.get(..size)) else {
                return false;
            };
            rest = &body[used + size..];
            p
        } else {
            rest = &[];
            body
        };
        match obu_type {
            // Sequence header: seq_profile (3 bits), still_picture, reduced_still_picture_header.
            1 => {
                if payload.first().is_none_or(|b| b & 0x08 == 0) {
                    return false;
                }
                seen_header = true;
            }
            2 | 5 | 15 => {}
            _ if !seen_header => return false,
            _ => {}
        }
    }
    seen_header
}

/// An unsigned LEB128 value (at most 8 bytes, as AV1 allows) and the bytes it took.
fn leb128(data: &[u8]) -> Option<(usize, usize)> {
    let mut value = 0u64;
    for (i, &b) in data.iter().take(8).enumerate() {
        value |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Some((usize::try_from(value).ok()?, i + 1));
        }
    }
    None
}

/// A decoded AV1 picture, borrowed from the decoder for the length of one callback.
pub(crate) struct Frame<'a> {
    pub width: u32,
    pub height: u32,
    pub bit_depth: u32,
    pub monochrome: bool,
    pub x_shift: u32,
    pub y_shift: u32,
    /// CICP code points from the sequence header.
    pub matrix: u16,
    pub primaries: u16,
    pub transfer: u16,
    pub full_range: bool,
    wide: bool,
    planes: [&'a [u8]; 3],
    strides: [usize; 3],
}

impl Frame<'_> {
    /// Plane `p`'s row `y` as samples widened to `u16`, into `out`.
    fn row(&self, p: usize, y: u32, out: &mut Vec<u16>) {
        let cols = self.plane_size(p).0 as usize;
        let start = y as usize * self.strides[p];
        out.clear();
        if self.wide {
            let bytes = &self.planes[p][start..start + cols * 2];
            out.extend(
                bytes
                    .chunks_exact(2)
                    .map(|b| u16::from_ne_bytes([b[0], b[1]])),
            );
        } else {
            out.extend(
                self.planes[p][start..start + cols]
                    .iter()
                    .map(|&v| u16::from(v)),
            );
        }
    }

    /// Columns and rows of plane `p`.
    pub fn plane_size(&self, p: usize) -> (u32, u32) {
        if p == 0 {
            (self.width, self.height)
        } else {
            (
                (self.width + (1 << self.x_shift) - 1) >> self.x_shift,
                (self.height + (1 << self.y_shift) - 1) >> self.y_shift,
            )
        }
    }

    /// Plane `p` as 8-bit samples, exactly as stored (tests compare planes with what the
    /// encoder was given).
    #[cfg(test)]
    pub fn plane8(&self, p: usize) -> Vec<u8> {
        let (w, h) = self.plane_size(p);
        let mut row = Vec::new();
        let mut out = Vec::with_capacity((w * h) as usize);
        for y in 0..h {
            self.row(p, y, &mut row);
            let shift = self.bit_depth - 8;
            out.extend(row.iter().map(|&v| (v >> shift) as u8));
        }
        out
    }
}

/// What `decode_frame`'s callback and the C sink share.
struct SinkState<F, R> {
    f: Option<F>,
    result: Option<Result<R, ImageError>>,
    panic: Option<Box<dyn std::any::Any + Send>>,
}

unsafe extern "C" fn frame_sink<F, R>(ctx: *mut c_void, frame: *const AomFrame) -> c_int
where
    F: FnOnce(&Frame<'_>) -> Result<R, ImageError>,
{
    // SAFETY: `ctx` is the `SinkState` in `decode_frame`, alive and exclusively ours for the
    // call; `frame` is libaom's picture, valid until this function returns.
    let (state, raw) = unsafe { (&mut *(ctx as *mut SinkState<F, R>), &*frame) };
    let Some(f) = state.f.take() else { return 1 };
    let planes_of = |p: usize| -> &[u8] {
        if raw.planes[p].is_null() || raw.strides[p] <= 0 {
            return &[];
        }
        let wide = if raw.wide != 0 { 2 } else { 1 };
        let (cols, rows) = if p == 0 {
            (raw.width as usize, raw.height as usize)
        } else {
            let (xs, ys) = (raw.x_shift as u32, raw.y_shift as u32);
            (
                ((raw.width + (1 << xs) - 1) >> xs) as usize,
                ((raw.height + (1 << ys) - 1) >> ys) as usize,
            )
        };
        let len = raw.strides[p] as usize * rows.saturating_sub(1) + cols * wide;
        // SAFETY: libaom's plane holds `rows` rows of `stride` bytes, the last at least
        // `cols` samples long.
        unsafe { std::slice::from_raw_parts(raw.planes[p], len) }
    };
    let mono = raw.monochrome != 0;
    let frame = Frame {
        width: raw.width,
        height: raw.height,
        bit_depth: raw.bit_depth.clamp(8, 16) as u32,
        monochrome: mono,
        x_shift: raw.x_shift.clamp(0, 1) as u32,
        y_shift: raw.y_shift.clamp(0, 1) as u32,
        matrix: raw.matrix as u16,
        primaries: raw.primaries as u16,
        transfer: raw.transfer as u16,
        full_range: raw.full_range != 0,
        wide: raw.wide != 0,
        planes: [
            planes_of(0),
            if mono { &[] } else { planes_of(1) },
            if mono { &[] } else { planes_of(2) },
        ],
        strides: raw.strides.map(|s| s.max(0) as usize),
    };
    // A panic must not unwind into C: keep it and re-raise it on the Rust side.
    match catch_unwind(AssertUnwindSafe(|| f(&frame))) {
        Ok(r) => {
            let failed = r.is_err();
            state.result = Some(r);
            c_int::from(failed)
        }
        Err(panic) => {
            state.panic = Some(panic);
            1
        }
    }
}

/// Decode one AV1 picture and hand it to `f` while the decoder still holds it.
pub(crate) fn decode_frame<F, R>(data: &[u8], max_pixels: u64, f: F) -> Result<R, ImageError>
where
    F: FnOnce(&Frame<'_>) -> Result<R, ImageError>,
{
    decode_frame_keeping(data, max_pixels, KEEP_MAX_PIXELS, f)
}

/// `decode_frame`, keeping the thread's decoder after pictures up to `keep_max_pixels`.
fn decode_frame_keeping<F, R>(
    data: &[u8],
    max_pixels: u64,
    keep_max_pixels: u64,
    f: F,
) -> Result<R, ImageError>
where
    F: FnOnce(&Frame<'_>) -> Result<R, ImageError>,
{
    let mut state = SinkState {
        f: Some(f),
        result: None,
        panic: None,
    };
    let mut err = [0 as c_char; 256];
    // SAFETY: `data` is a live slice; `frame_sink::<F, R>` gets our `state` as context and
    // the C side writes at most `err.len()` bytes, NUL-terminated, into `err`.
    let rc = unsafe {
        imgate_aom_decode(
            data.as_ptr(),
            data.len(),
            max_pixels,
            c_int::from(self_contained(data)),
            keep_max_pixels,
            frame_sink::<F, R>,
            (&mut state as *mut SinkState<F, R>).cast::<c_void>(),
            err.as_mut_ptr(),
            err.len(),
        )
    };
    if let Some(panic) = state.panic {
        resume_unwind(panic);
    }
    if let Some(result) = state.result {
        return result;
    }
    // SAFETY: the shim always leaves a NUL-terminated message when it fails.
    let msg = unsafe { std::ffi::CStr::from_ptr(err.as_ptr()) }.to_string_lossy();
    Err(if rc == AOM_TOO_LARGE {
        ImageError::TooLarge(msg.into_owned())
    } else {
        ImageError::Undecodable(format!("AV1: {msg}"))
    })
}

/// What the probe reads from an AVIF header: the shown size before turning, frames, metadata.
pub(crate) fn probe(input: &[u8]) -> Result<(u32, u32, SourceMeta), ImageError> {
    let heif = Heif::parse(input)?;
    let id = heif.primary();
    heif.coded(id)?;
    let props = heif.props(id)?;
    let (w, h) = props
        .size
        .ok_or_else(|| ImageError::Undecodable("AVIF: primary item has no size".into()))?;
    let (w, h) = props.crop.map_or((w, h), |c| (c.width, c.height));
    let meta = SourceMeta {
        orientation: props.exif_orientation(),
        exif: heif.exif_of(id).and_then(exif::copy_bounded),
        ..SourceMeta::default()
    };
    Ok((w, h, meta))
}

/// Decode the primary picture of an AVIF file (with its alpha) to a raster, and describe its
/// colours in `meta.icc` for the colour step.
pub(crate) fn decode(
    input: &[u8],
    max_pixels: u64,
    meta: &mut SourceMeta,
    shrink: u32,
) -> Result<Raster, ImageError> {
    let heif = Heif::parse(input)?;
    let id = heif.primary();
    let props = heif.props(id)?;
    // A clean aperture is in full-size pixels: crop first, shrink never. Nor with alpha: block
    // means of colour not weighted by alpha would bleed the colour of transparent pixels into
    // the edges of opaque ones (the resize step weights them).
    let shrink = if props.crop.is_some() || heif.alpha_of(id).is_some() {
        1
    } else {
        shrink.max(1)
    };
    let color = decode_item(&heif, id, &props, max_pixels, Planes::Color, shrink)?;
    let alpha = match heif.alpha_of(id) {
        Some(aux) => {
            let aux_props = heif.props(aux)?;
            let alpha = decode_item(&heif, aux, &aux_props, max_pixels, Planes::Alpha, shrink)?;
            if (alpha.width, alpha.height) != (color.width, color.height) {
                return Err(ImageError::Undecodable(format!(
                    "AVIF alpha is {}x{}, the picture {}x{}",
                    alpha.width, alpha.height, color.width, color.height
                )));
            }
            Some((alpha.pixels, heif.premultiplied(id, aux)))
        }
        None => None,
    };
    crate::imaging::meta::check_icc(props.icc.as_deref())?;
    meta.icc = props.icc.clone().or_else(|| {
        let (primaries, transfer) = props.nclx.map_or((color.primaries, color.transfer), |n| {
            (n.primaries, n.transfer)
        });
        color::icc_from_cicp(primaries, transfer)
    });
    let (w, h) = (color.width, color.height);
    let raster = match alpha {
        None => Raster::new(w, h, 3, color.pixels),
        Some((alpha, premultiplied)) => {
            let mut rgba = alloc_pixels(w as usize * h as usize * 4)?;
            for ((out, rgb), &a) in rgba
                .chunks_exact_mut(4)
                .zip(color.pixels.chunks_exact(3))
                .zip(&alpha)
            {
                out[..3].copy_from_slice(rgb);
                out[3] = a;
            }
            if premultiplied {
                unpremultiply(&mut rgba);
            }
            Raster::new(w, h, 4, rgba)
        }
    };
    Ok(match props.crop {
        Some(c) => crop(&raster, c.x, c.y, c.width, c.height)?,
        None => raster,
    })
}

/// Which planes an item is decoded for.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Planes {
    /// RGB, 3 bytes a pixel.
    Color,
    /// The luma plane only, 1 byte a pixel (an alpha item).
    Alpha,
}

impl Planes {
    fn channels(self) -> usize {
        match self {
            Planes::Color => 3,
            Planes::Alpha => 1,
        }
    }
}

/// An item decoded to 8-bit pixels, with the CICP colour code points its stream carried.
struct DecodedItem {
    width: u32,
    height: u32,
    pixels: Vec<u8>,
    primaries: u16,
    transfer: u16,
}

/// Decode item `id` (one AV1 picture, shrunk by `shrink`, or a grid of them at full size) to
/// `planes`.
fn decode_item(
    heif: &Heif<'_>,
    id: u32,
    props: &ItemProps,
    max_pixels: u64,
    planes: Planes,
    shrink: u32,
) -> Result<DecodedItem, ImageError> {
    match heif.coded(id)? {
        Coded::Av1 => decode_av1_item(heif, id, props, max_pixels, planes, shrink),
        Coded::Grid(grid) => {
            let (width, height) = (grid.width, grid.height);
            if u64::from(width) * u64::from(height) > max_pixels {
                return Err(ImageError::TooLarge(format!(
                    "AVIF grid of {width}x{height} is over the pixel limit"
                )));
            }
            let ch = planes.channels();
            let mut canvas = alloc_pixels(width as usize * height as usize * ch)?;
            let mut tile_size = None;
            let mut first = None;
            for (i, &tile) in grid.tiles.iter().enumerate() {
                let mut tile_props = heif.props(tile)?;
                tile_props.nclx = tile_props.nclx.or(props.nclx);
                let pic = decode_av1_item(heif, tile, &tile_props, max_pixels, planes, 1)?;
                let (tw, th) = *tile_size.get_or_insert((pic.width, pic.height));
                // Tiles are all one size, cover the canvas, and none lies wholly outside it.
                let fits = (pic.width, pic.height) == (tw, th)
                    && u64::from(tw) * u64::from(grid.columns) >= u64::from(width)
                    && u64::from(th) * u64::from(grid.rows) >= u64::from(height)
                    && u64::from(tw) * u64::from(grid.columns - 1) < u64::from(width)
                    && u64::from(th) * u64::from(grid.rows - 1) < u64::from(height);
                if !fits {
                    return Err(ImageError::Undecodable(format!(
                        "AVIF grid {width}x{height} of {}x{} tiles: tile {i} is {}x{}",
                        grid.columns, grid.rows, pic.width, pic.height
                    )));
                }
                let (col, row) = (i as u32 % grid.columns, i as u32 / grid.columns);
                let (x0, y0) = (col * tw, row * th);
                let cols = tw.min(width - x0) as usize;
                for y in 0..th.min(height - y0) as usize {
                    let src = &pic.pixels[y * tw as usize * ch..][..cols * ch];
                    let at = ((y0 as usize + y) * width as usize + x0 as usize) * ch;
                    canvas[at..at + cols * ch].copy_from_slice(src);
                }
                first.get_or_insert((pic.primaries, pic.transfer));
            }
            let (primaries, transfer) = first.unwrap_or((2, 2));
            Ok(DecodedItem {
                width,
                height,
                pixels: canvas,
                primaries,
                transfer,
            })
        }
    }
}

/// Decode one `av01` item, shrunk by `shrink`; its size must be what its `ispe` says.
fn decode_av1_item(
    heif: &Heif<'_>,
    id: u32,
    props: &ItemProps,
    max_pixels: u64,
    planes: Planes,
    shrink: u32,
) -> Result<DecodedItem, ImageError> {
    let data = heif.item_data(id)?;
    decode_frame(&data, max_pixels, |frame| {
        if frame.width == 0 || frame.height == 0 {
            return Err(ImageError::Undecodable("AV1 picture of no pixels".into()));
        }
        if let Some((w, h)) = props.size {
            if (w, h) != (frame.width, frame.height) {
                return Err(ImageError::Undecodable(format!(
                    "AVIF item says {w}x{h}, its AV1 picture is {}x{}",
                    frame.width, frame.height
                )));
            }
        }
        Ok(DecodedItem {
            width: frame.width.div_ceil(shrink),
            height: frame.height.div_ceil(shrink),
            pixels: convert(frame, props.nclx, planes, shrink)?,
            primaries: frame.primaries,
            transfer: frame.transfer,
        })
    })
}

/// Fraction bits of the conversion tables' fixed-point values.
const FIX: u32 = 14;

/// Each sample value's contribution to R, G and B, in 8-bit levels times 2^`FIX`: bit depth,
/// range and matrix folded into five tables, so a pixel costs five lookups and a few adds.
struct Tables {
    y: Vec<i32>,
    r_v: Vec<i32>,
    g_u: Vec<i32>,
    g_v: Vec<i32>,
    b_u: Vec<i32>,
    /// The identity matrix: the planes are G, B, R, each read like luma.
    identity: bool,
}

impl Tables {
    /// Tables for `bit_depth`-bit samples; `matrix` is a CICP code point (unspecified and
    /// unknown ones are read as BT.601, as libavif does).
    fn new(bit_depth: u32, full_range: bool, matrix: u16) -> Tables {
        let unit = f64::from(1u32 << (bit_depth - 8));
        let max = f64::from((1u32 << bit_depth) - 1);
        // Luma to 0..=1 and chroma to -0.5..=0.5.
        let (y_off, y_scale, c_scale) = if full_range {
            (0.0, 1.0 / max, 1.0 / max)
        } else {
            (16.0 * unit, 1.0 / (219.0 * unit), 1.0 / (224.0 * unit))
        };
        let c_mid = 128.0 * unit;
        let (kr, kb) = match matrix {
            1 => (0.2126, 0.0722),
            4 => (0.30, 0.11),
            7 => (0.212, 0.087),
            9 | 10 => (0.2627, 0.0593),
            _ => (0.299, 0.114),
        };
        let kg = 1.0 - kr - kb;
        let one = 255.0 * f64::from(1u32 << FIX);
        let table = |f: &dyn Fn(f64) -> f64| -> Vec<i32> {
            (0..1u32 << bit_depth)
                .map(|s| (f(f64::from(s)) * one).round() as i32)
                .collect()
        };
        let chroma = |s: f64| (s - c_mid) * c_scale;
        Tables {
            y: table(&|s| (s - y_off) * y_scale),
            r_v: table(&|s| 2.0 * (1.0 - kr) * chroma(s)),
            g_u: table(&|s| -2.0 * kb * (1.0 - kb) / kg * chroma(s)),
            g_v: table(&|s| -2.0 * kr * (1.0 - kr) / kg * chroma(s)),
            b_u: table(&|s| 2.0 * (1.0 - kb) * chroma(s)),
            identity: matrix == 0,
        }
    }

    fn level(v: i32) -> u8 {
        ((v + (1 << (FIX - 1))) >> FIX).clamp(0, 255) as u8
    }

    /// A sample's index, kept inside the tables whatever the decoder hands over.
    fn at(&self, s: u32) -> usize {
        (s as usize).min(self.y.len() - 1)
    }

    fn gray(&self, y: u32) -> u8 {
        Self::level(self.y[self.at(y)])
    }

    fn rgb(&self, y: u32, u: u32, v: u32) -> [u8; 3] {
        let (y, u, v) = (self.at(y), self.at(u), self.at(v));
        if self.identity {
            return [self.y[v], self.y[y], self.y[u]].map(Self::level);
        }
        let l = self.y[y];
        [
            l + self.r_v[v],
            l + self.g_u[u] + self.g_v[v],
            l + self.b_u[u],
        ]
        .map(Self::level)
    }
}

/// Full-resolution rows of subsampled chroma, for conversions at full size.
#[derive(Default)]
struct ChromaUpsampler {
    near: Vec<u16>,
    far: Vec<u16>,
    vert: Vec<u32>,
}

impl ChromaUpsampler {
    /// Chroma plane `p` at luma row `y`, `width` samples, into `out`. Each chroma sample is taken
    /// to sit at the centre of the luma samples it covers, and each subsampled direction is
    /// interpolated linearly between the two nearest (weights 3/4 and 1/4), as libavif does by
    /// default; the edges repeat the outermost sample.
    fn row(&mut self, frame: &Frame<'_>, p: usize, y: usize, width: usize, out: &mut Vec<u16>) {
        let (xs, ys) = (frame.x_shift, frame.y_shift);
        let (cols, rows) = frame.plane_size(p);
        let (last_col, last_row) = (cols as usize - 1, rows as usize - 1);
        let k = y >> ys;
        frame.row(p, k as u32, &mut self.near);
        self.vert.clear();
        if ys == 1 {
            let k2 = if y.is_multiple_of(2) {
                k.saturating_sub(1)
            } else {
                (k + 1).min(last_row)
            };
            frame.row(p, k2 as u32, &mut self.far);
            let mix = |(&a, &b): (&u16, &u16)| 3 * u32::from(a) + u32::from(b);
            self.vert.extend(self.near.iter().zip(&self.far).map(mix));
        } else {
            self.vert
                .extend(self.near.iter().map(|&a| 4 * u32::from(a)));
        }
        out.clear();
        let vert = &self.vert;
        if xs == 1 {
            out.extend((0..width).map(|x| {
                let j = (x >> 1).min(last_col);
                let j2 = if x.is_multiple_of(2) {
                    j.saturating_sub(1)
                } else {
                    (j + 1).min(last_col)
                };
                ((3 * vert[j] + vert[j2] + 8) >> 4) as u16
            }));
        } else {
            out.extend(vert[..width].iter().map(|&v| ((v + 2) >> 2) as u16));
        }
    }
}

/// Y'CbCr (or GBR for the identity matrix, or gray) to 8-bit RGB, or the luma plane alone to
/// 8-bit alpha, shrunk by `shrink`: each output pixel is the mean of a `shrink` x `shrink`
/// block of samples (each chroma sample weighted by the block pixels it covers), so a thumbnail pays for the
/// conversion and the resize at the reduced size. At full size, subsampled chroma is
/// interpolated (`ChromaUpsampler`). The colour box's description wins over the stream's, as
/// in libavif.
fn convert(
    frame: &Frame<'_>,
    nclx: Option<Nclx>,
    planes: Planes,
    shrink: u32,
) -> Result<Vec<u8>, ImageError> {
    let (matrix, full_range) = match (planes, nclx) {
        (Planes::Color, Some(n)) => (n.matrix, n.full_range),
        _ => (frame.matrix, frame.full_range),
    };
    let tables = Tables::new(frame.bit_depth, full_range, matrix);
    let s = shrink.max(1) as usize;
    let (w, h) = (frame.width as usize, frame.height as usize);
    let (ow, oh) = (w.div_ceil(s), h.div_ceil(s));
    let ch = planes.channels();
    let chroma = planes == Planes::Color && !frame.monochrome;
    let (xs, ys) = (frame.x_shift, frame.y_shift);
    let cw = frame.plane_size(1).0 as usize;
    let mut out = alloc_pixels(ow * oh * ch)?;
    let (mut row, mut urow, mut vrow) = (Vec::new(), Vec::new(), Vec::new());
    let mut upsampler = ChromaUpsampler::default();
    // Column sums over the block's rows (luma at output width, chroma at plane width, each
    // chroma row weighted by how many of the block's rows it covers).
    let (mut ysum, mut usum, mut vsum) = (vec![0u64; ow], vec![0u64; cw], vec![0u64; cw]);
    // How much of [a, b) the chroma sample `c` (covering 2^shift luma samples) overlaps.
    let overlap = |c: usize, shift: u32, a: usize, b: usize| -> u64 {
        let (lo, hi) = (c << shift, (c + 1) << shift);
        (hi.min(b).saturating_sub(lo.max(a))) as u64
    };
    for (oy, line) in out.chunks_exact_mut(ow * ch).enumerate() {
        let (y0, y1) = (oy * s, (oy * s + s).min(h));
        let (cy0, cy1) = (y0 >> ys, ((y1 - 1) >> ys) + 1);
        if s == 1 {
            frame.row(0, y0 as u32, &mut row);
            if chroma {
                upsampler.row(frame, 1, y0, w, &mut urow);
                upsampler.row(frame, 2, y0, w, &mut vrow);
            }
            for (x, px) in line.chunks_exact_mut(ch).enumerate() {
                let y = u32::from(row[x]);
                if !chroma {
                    px.fill(tables.gray(y));
                } else {
                    px.copy_from_slice(&tables.rgb(y, u32::from(urow[x]), u32::from(vrow[x])));
                }
            }
            continue;
        }
        ysum.fill(0);
        for y in y0..y1 {
            frame.row(0, y as u32, &mut row);
            for (acc, block) in ysum.iter_mut().zip(row.chunks(s)) {
                *acc += block.iter().map(|&v| u64::from(v)).sum::<u64>();
            }
        }
        if chroma {
            usum.fill(0);
            vsum.fill(0);
            for cy in cy0..cy1 {
                let wy = overlap(cy, ys, y0, y1);
                frame.row(1, cy as u32, &mut urow);
                frame.row(2, cy as u32, &mut vrow);
                for c in 0..cw {
                    usum[c] += wy * u64::from(urow[c]);
                    vsum[c] += wy * u64::from(vrow[c]);
                }
            }
        }
        for (ox, px) in line.chunks_exact_mut(ch).enumerate() {
            let (x0, x1) = (ox * s, (ox * s + s).min(w));
            let n = ((x1 - x0) * (y1 - y0)) as u64;
            let mean = |sum: u64| ((sum + n / 2) / n) as u32;
            let y = mean(ysum[ox]);
            if !chroma {
                px.fill(tables.gray(y));
                continue;
            }
            let (mut u, mut v) = (0u64, 0u64);
            for c in x0 >> xs..((x1 - 1) >> xs) + 1 {
                let wx = overlap(c, xs, x0, x1);
                u += wx * usum[c];
                v += wx * vsum[c];
            }
            px.copy_from_slice(&tables.rgb(y, mean(u), mean(v)));
        }
    }
    Ok(out)
}

/// The `width` x `height` window of `img` at (`x`, `y`).
fn crop(img: &Raster, x: u32, y: u32, width: u32, height: u32) -> Result<Raster, ImageError> {
    if u64::from(x) + u64::from(width) > u64::from(img.width)
        || u64::from(y) + u64::from(height) > u64::from(img.height)
    {
        return Err(ImageError::Undecodable(format!(
            "AVIF clean aperture {width}x{height}+{x}+{y} outside the {}x{} picture",
            img.width, img.height
        )));
    }
    let ch = usize::from(img.channels);
    let mut out = alloc_pixels(width as usize * height as usize * ch)?;
    for (row, line) in out.chunks_exact_mut(width as usize * ch).enumerate() {
        let at = ((y as usize + row) * img.width as usize + x as usize) * ch;
        line.copy_from_slice(&img.data[at..at + width as usize * ch]);
    }
    Ok(Raster::new(width, height, img.channels, out))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stream(name: &str) -> Vec<u8> {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/av1")
            .join(name);
        std::fs::read(path).unwrap()
    }

    /// The mean of each `s` x `s` block of `full` (`w` wide, `ch` channels), channel by channel.
    fn block_means(full: &[u8], w: usize, ch: usize, s: usize) -> Vec<f64> {
        let h = full.len() / (w * ch);
        let (ow, oh) = (w.div_ceil(s), h.div_ceil(s));
        let mut out = Vec::with_capacity(ow * oh * ch);
        for oy in 0..oh {
            for ox in 0..ow {
                for c in 0..ch {
                    let (mut sum, mut n) = (0.0, 0.0);
                    for y in oy * s..(oy * s + s).min(h) {
                        for x in ox * s..(ox * s + s).min(w) {
                            sum += f64::from(full[(y * w + x) * ch + c]);
                            n += 1.0;
                        }
                    }
                    out.push(sum / n);
                }
            }
        }
        out
    }

    #[test]
    fn shrunk_conversion_is_the_block_mean_of_the_full_one() {
        // 10-bit 4:2:0 colour, and 8-bit monochrome read as colour and as alpha. Averaging
        // Y'CbCr before converting differs from averaging RGB after only by rounding, and by
        // clipping where a block straddles an out-of-gamut edge. With chroma, also by how it is
        // filtered: at full size it is interpolated, a block mean takes each chroma sample by
        // the share of the block it covers, so the two part at sharp colour edges.
        let cases = [
            ("meadow-10bit.obu", Planes::Color, 3, (1.2, 20.0)),
            ("dune-mono.obu", Planes::Color, 3, (0.5, 4.0)),
            ("dune-mono.obu", Planes::Alpha, 1, (0.5, 4.0)),
        ];
        for (name, planes, ch, (max_mean, max_worst)) in cases {
            for s in [2usize, 3, 5] {
                let (full, small, w) = decode_frame(&stream(name), u64::MAX, |f| {
                    Ok((
                        convert(f, None, planes, 1)?,
                        convert(f, None, planes, s as u32)?,
                        f.width as usize,
                    ))
                })
                .unwrap();
                let want = block_means(&full, w, ch, s);
                assert_eq!(small.len(), want.len(), "{name} / {s}: size");
                let diffs: Vec<f64> = small
                    .iter()
                    .zip(&want)
                    .map(|(&a, b)| (f64::from(a) - b).abs())
                    .collect();
                let mean = diffs.iter().sum::<f64>() / diffs.len() as f64;
                let worst = diffs.iter().copied().fold(0.0, f64::max);
                assert!(
                    mean < max_mean && worst <= max_worst,
                    "{name} / {s}: mean difference {mean:.3}, worst {worst}"
                );
            }
        }
    }

    /// An AV1 stream from imgate's own encoder (libaom, so a reduced still picture header).
    fn encoded(w: u32, h: u32, quality: u8, seed: u32) -> Vec<u8> {
        let mut data = Vec::with_capacity((w * h * 3) as usize);
        for y in 0..h {
            for x in 0..w {
                let v = (x * 7 + y * 13 + seed * 31) ^ (x * y / 3 + seed);
                data.extend_from_slice(&[
                    (v % 251) as u8,
                    (x * 255 / w) as u8,
                    (y * 255 / h) as u8,
                ]);
            }
        }
        let img = Raster::new(w, h, 3, data);
        super::super::encode::encode_streams(&img, quality)
            .unwrap()
            .color
    }

    /// Where the sequence header OBU of `s` (after an optional temporal delimiter) starts, where
    /// its payload starts, and where it ends.
    fn sequence_header(s: &[u8]) -> (usize, usize, usize) {
        let start = if s.starts_with(&[0x12, 0x00]) { 2 } else { 0 };
        assert_eq!((s[start] >> 3) & 0xf, 1, "sequence header first");
        let (size, used) = leb128(&s[start + 1..]).unwrap();
        (start, start + 1 + used, start + 1 + used + size)
    }

    fn kept_live() -> bool {
        // SAFETY: reads this thread's flag.
        unsafe { imgate_aom_kept_live() != 0 }
    }

    /// The picture's RGB (or gray as RGB) at full size.
    fn pixels(data: &[u8], keep_max: u64) -> Result<(u32, u32, Vec<u8>), ImageError> {
        decode_frame_keeping(data, u64::MAX, keep_max, |f| {
            Ok((f.width, f.height, convert(f, None, Planes::Color, 1)?))
        })
    }

    #[test]
    fn a_kept_decoder_gives_what_a_fresh_one_gives() {
        // Sizes that grow and shrink in each direction, 4:2:0 and 4:4:4 (q95), 8 and 10 bits,
        // monochrome, and the first stream again at the end.
        let streams = [
            ("96x64 q60", encoded(96, 64, 60, 1)),
            ("64x96 q60", encoded(64, 96, 60, 2)),
            ("200x120 q95", encoded(200, 120, 95, 3)),
            ("48x40 q30", encoded(48, 40, 30, 4)),
            ("meadow 10-bit", stream("meadow-10bit.obu")),
            ("dune mono", stream("dune-mono.obu")),
            ("96x64 q60 again", encoded(96, 64, 60, 1)),
        ];
        let fresh: Vec<_> = streams
            .iter()
            .map(|(_, s)| {
                drop_kept_decoder();
                pixels(s, 0).unwrap()
            })
            .collect();
        assert!(!kept_live(), "a keep limit of 0 pixels keeps nothing");
        drop_kept_decoder();
        for ((name, s), want) in streams.iter().zip(&fresh) {
            let got = pixels(s, u64::MAX).unwrap();
            assert_eq!(
                (got.0, got.1),
                (want.0, want.1),
                "{name}: size after the pictures before it"
            );
            assert!(
                got.2 == want.2,
                "{name}: pixels differ after the pictures before it"
            );
            if self_contained(s) {
                assert!(kept_live(), "{name}: decoder not kept");
            }
        }
        assert!(
            self_contained(&streams[0].1),
            "imgate's own streams are reused"
        );
        // A failure, or a picture over the limit, gives the kept decoder up.
        pixels(&streams[0].1, u64::MAX).unwrap();
        // A sequence header and no frame after it.
        let s = &streams[2].1;
        let no_frame = &s[..sequence_header(s).2];
        assert!(self_contained(no_frame));
        assert!(pixels(no_frame, u64::MAX).is_err());
        assert!(!kept_live(), "kept after a failed decode");
        pixels(&streams[0].1, u64::MAX).unwrap();
        assert!(kept_live());
        pixels(&streams[0].1, 96 * 64 - 1).unwrap();
        assert!(!kept_live(), "kept a picture over the limit");
        pixels(&streams[0].1, u64::MAX).unwrap();
        drop_kept_decoder();
        assert!(!kept_live());
    }

    #[test]
    fn only_streams_of_shown_key_frames_are_self_contained() {
        let s = encoded(96, 64, 60, 1);
        assert!(self_contained(&s));
        // The sequence header's payload's first byte holds the flag.
        let (start, payload, end) = sequence_header(&s);
        let mut full_header = s.clone();
        full_header[payload] &= !0x08;
        assert!(
            !self_contained(&full_header),
            "reduced_still_picture_header off"
        );
        // With or without a temporal delimiter in front.
        assert!(self_contained(&s[start..]));
        // Frames before any sequence header, a truncated size, nothing at all: no.
        assert!(!self_contained(&s[end..]));
        assert!(!self_contained(&s[..(payload + end) / 2]));
        assert!(!self_contained(&[0x0a, 0x80]));
        assert!(!self_contained(&[]));
        // A second sequence header without the flag, later in the stream: no.
        let tail = [&s[..], &full_header[start..end]].concat();
        assert!(!self_contained(&tail));
    }

    #[test]
    fn subsampled_chroma_is_interpolated_at_full_size() {
        // 4x4 luma, 4:2:0 chroma of 2x2: [[0, 100], [200, 40]] in both chroma planes.
        let (luma, chroma) = ([0u8; 16], [0u8, 100, 200, 40]);
        let frame = Frame {
            width: 4,
            height: 4,
            bit_depth: 8,
            monochrome: false,
            x_shift: 1,
            y_shift: 1,
            matrix: 6,
            primaries: 1,
            transfer: 13,
            full_range: true,
            wide: false,
            planes: [&luma, &chroma, &chroma],
            strides: [4, 2, 2],
        };
        let mut up = ChromaUpsampler::default();
        let mut got = Vec::new();
        let rows: Vec<Vec<u16>> = (0..4)
            .map(|y| {
                up.row(&frame, 1, y, 4, &mut got);
                got.clone()
            })
            .collect();
        // Row 0 sits a quarter sample above chroma row 0 (the edge repeats it); columns mix
        // 3:1 with the nearer neighbour: 0, 0+(100-0)/4, 100-(100-0)/4, 100.
        assert_eq!(rows[0], [0, 25, 75, 100]);
        // Row 1: 3/4 of chroma row 0 and 1/4 of row 1 ([50, 85] vertically), then across.
        assert_eq!(rows[1], [50, 59, 76, 85]);
        // Row 2: 3/4 of chroma row 1 and 1/4 of row 0 ([150, 55]); row 3 below the last
        // chroma row repeats it.
        assert_eq!(rows[2], [150, 126, 79, 55]);
        assert_eq!(rows[3], [200, 160, 80, 40]);
    }

    #[test]
    fn tables_map_the_range_ends_and_the_matrices() {
        // Limited range: 16 is black and 235 white, at 8 and 10 bits.
        let t = Tables::new(8, false, 1);
        assert_eq!(
            (t.gray(16), t.gray(235), t.gray(0), t.gray(255)),
            (0, 255, 0, 255)
        );
        let t = Tables::new(10, false, 1);
        assert_eq!((t.gray(64), t.gray(940)), (0, 255));
        // Full-range BT.601 pure red: Y 76, Cb 85, Cr 255 (the JPEG/JFIF numbers).
        let t = Tables::new(8, true, 6);
        let [r, g, b] = t.rgb(76, 85, 255);
        assert!(r >= 253 && g <= 2 && b <= 2, "{r} {g} {b}");
        // BT.709 pure green: Y 182, Cb 30, Cr 12 (limited range: 173, 42, 26).
        let t = Tables::new(8, false, 1);
        let [r, g, b] = t.rgb(173, 42, 26);
        assert!(r <= 3 && g >= 252 && b <= 3, "{r} {g} {b}");
        // Identity: the planes are G, B, R.
        let t = Tables::new(8, true, 0);
        assert_eq!(t.rgb(10, 20, 30), [30, 10, 20]);
        // Samples past the bit depth are clamped, not out of bounds.
        assert_eq!(Tables::new(8, true, 1).gray(4000), 255);
    }

    /// Fuzz finding: a 594-byte high-bit-depth AVIF grid read as a leak of 279 KB of libaom
    /// motion-compensation buffers. They belong to the decoder this thread keeps (libaom holds
    /// them by pointers shifted one bit, invisible to LeakSanitizer); the fuzz harness now
    /// releases the thread's memory after each input, as the CPU pool does when it goes idle,
    /// so the check sees them freed.
    #[test]
    fn r_fuzz_grid_decoder_kept_by_an_input_is_released_after_it() {
        let input = include_bytes!(
            "../../../fuzz/corpus/pipeline/leak-0a8b70174327bb8d32eea74d9d3651ee147ab06f"
        );
        drop_kept_decoder();
        crate::fuzzing::run("pipeline", input);
        assert!(!kept_live(), "the harness left the decoder kept");
        // The input does keep one when the pipeline runs alone.
        let (options, _, image) = crate::fuzzing::pipeline_parts(input).unwrap();
        crate::fuzzing::transform(image, &options, crate::spec::Accepts::default());
        assert!(
            kept_live(),
            "the input keeps no decoder: the test tests nothing"
        );
        drop_kept_decoder();
    }
}
