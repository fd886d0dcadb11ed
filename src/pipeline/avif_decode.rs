//! AVIF input for the sniff and decode steps: the container is read by `heif`, each AV1
//! picture is decoded by libaom through `csrc/aom_decode.c`, and the planes (8 to 12 bits,
//! 4:2:0/4:2:2/4:4:4 or monochrome, any CICP matrix, full or limited range) become 8-bit RGB
//! here. Alpha items, grids of tiles, the clean aperture, `irot`/`imir` (as an EXIF
//! orientation for the orient step) and the colour description (as an ICC profile for the
//! colour step) are honoured. There is no shrink-on-load: AV1 has no scaled decode.

use super::color;
use super::heif::{Coded, Heif, ItemProps, Nclx};
use super::metadata::{self, SourceMeta};
use super::pipeline::alloc_pixels;
use super::raster::Raster;
use super::{Limits, PipelineError};
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
        sink: FrameSink,
        sink_ctx: *mut c_void,
        err: *mut c_char,
        err_len: usize,
    ) -> c_int;
}

/// A decoded AV1 picture, borrowed from the decoder for the length of one callback.
pub(super) struct Frame<'a> {
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
    result: Option<Result<R, PipelineError>>,
    panic: Option<Box<dyn std::any::Any + Send>>,
}

unsafe extern "C" fn frame_sink<F, R>(ctx: *mut c_void, frame: *const AomFrame) -> c_int
where
    F: FnOnce(&Frame<'_>) -> Result<R, PipelineError>,
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
pub(super) fn decode_frame<F, R>(data: &[u8], max_pixels: u64, f: F) -> Result<R, PipelineError>
where
    F: FnOnce(&Frame<'_>) -> Result<R, PipelineError>,
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
        PipelineError::TooLarge(msg.into_owned())
    } else {
        PipelineError::Undecodable(format!("AV1: {msg}"))
    })
}

/// What the probe reads from an AVIF header: the shown size before turning, frames, metadata.
pub(super) fn probe(input: &[u8]) -> Result<(u32, u32, SourceMeta), PipelineError> {
    let heif = Heif::parse(input)?;
    let id = heif.primary();
    heif.coded(id)?;
    let props = heif.props(id)?;
    let (w, h) = props
        .size
        .ok_or_else(|| PipelineError::Undecodable("AVIF: primary item has no size".into()))?;
    let (w, h) = props.crop.map_or((w, h), |c| (c.width, c.height));
    let meta = SourceMeta {
        orientation: props.exif_orientation(),
        exif: heif.exif_of(id).and_then(metadata::keep_exif),
        ..SourceMeta::default()
    };
    Ok((w, h, meta))
}

/// Decode the primary picture of an AVIF file (with its alpha) to a raster, and describe its
/// colours in `meta.icc` for the colour step.
pub(super) fn decode(
    input: &[u8],
    limits: &Limits,
    meta: &mut SourceMeta,
) -> Result<Raster, PipelineError> {
    let heif = Heif::parse(input)?;
    let id = heif.primary();
    let props = heif.props(id)?;
    let color = decode_item(&heif, id, &props, limits, Planes::Color)?;
    let alpha = match heif.alpha_of(id) {
        Some(aux) => {
            let aux_props = heif.props(aux)?;
            let alpha = decode_item(&heif, aux, &aux_props, limits, Planes::Alpha)?;
            if (alpha.width, alpha.height) != (color.width, color.height) {
                return Err(PipelineError::Undecodable(format!(
                    "AVIF alpha is {}x{}, the picture {}x{}",
                    alpha.width, alpha.height, color.width, color.height
                )));
            }
            Some((alpha.pixels, heif.premultiplied(id, aux)))
        }
        None => None,
    };
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
                if premultiplied && a < 255 {
                    for c in &mut out[..3] {
                        *c = if a == 0 {
                            0
                        } else {
                            ((u32::from(*c) * 255 + u32::from(a) / 2) / u32::from(a)).min(255) as u8
                        };
                    }
                }
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
struct Picture {
    width: u32,
    height: u32,
    pixels: Vec<u8>,
    primaries: u16,
    transfer: u16,
}

/// Decode item `id` (one AV1 picture or a grid of them) to `planes`.
fn decode_item(
    heif: &Heif<'_>,
    id: u32,
    props: &ItemProps,
    limits: &Limits,
    planes: Planes,
) -> Result<Picture, PipelineError> {
    match heif.coded(id)? {
        Coded::Av1 => decode_av1_item(heif, id, props, limits, planes),
        Coded::Grid(grid) => {
            let (width, height) = (grid.width, grid.height);
            if u64::from(width) * u64::from(height) > limits.max_source_pixels {
                return Err(PipelineError::TooLarge(format!(
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
                let pic = decode_av1_item(heif, tile, &tile_props, limits, planes)?;
                let (tw, th) = *tile_size.get_or_insert((pic.width, pic.height));
                // Tiles are all one size, cover the canvas, and none lies wholly outside it.
                let fits = (pic.width, pic.height) == (tw, th)
                    && u64::from(tw) * u64::from(grid.columns) >= u64::from(width)
                    && u64::from(th) * u64::from(grid.rows) >= u64::from(height)
                    && u64::from(tw) * u64::from(grid.columns - 1) < u64::from(width)
                    && u64::from(th) * u64::from(grid.rows - 1) < u64::from(height);
                if !fits {
                    return Err(PipelineError::Undecodable(format!(
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
            Ok(Picture {
                width,
                height,
                pixels: canvas,
                primaries,
                transfer,
            })
        }
    }
}

/// Decode one `av01` item; its size must be what its `ispe` says.
fn decode_av1_item(
    heif: &Heif<'_>,
    id: u32,
    props: &ItemProps,
    limits: &Limits,
    planes: Planes,
) -> Result<Picture, PipelineError> {
    let data = heif.item_data(id)?;
    decode_frame(&data, limits.max_source_pixels, |frame| {
        if frame.width == 0 || frame.height == 0 {
            return Err(PipelineError::Undecodable(
                "AV1 picture of no pixels".into(),
            ));
        }
        if let Some((w, h)) = props.size {
            if (w, h) != (frame.width, frame.height) {
                return Err(PipelineError::Undecodable(format!(
                    "AVIF item says {w}x{h}, its AV1 picture is {}x{}",
                    frame.width, frame.height
                )));
            }
        }
        let pixels = match planes {
            Planes::Color => to_rgb(frame, props.nclx)?,
            Planes::Alpha => to_gray(frame)?,
        };
        Ok(Picture {
            width: frame.width,
            height: frame.height,
            pixels,
            primaries: frame.primaries,
            transfer: frame.transfer,
        })
    })
}

/// How samples of one bit depth and range map to 0..=1 (luma) and -0.5..=0.5 (chroma).
struct Levels {
    y_off: f32,
    y_scale: f32,
    c_mid: f32,
    c_scale: f32,
}

impl Levels {
    fn new(bit_depth: u32, full_range: bool) -> Levels {
        let unit = (1u32 << (bit_depth - 8)) as f32;
        let max = ((1u32 << bit_depth) - 1) as f32;
        if full_range {
            Levels {
                y_off: 0.0,
                y_scale: 1.0 / max,
                c_mid: 128.0 * unit,
                c_scale: 1.0 / max,
            }
        } else {
            Levels {
                y_off: 16.0 * unit,
                y_scale: 1.0 / (219.0 * unit),
                c_mid: 128.0 * unit,
                c_scale: 1.0 / (224.0 * unit),
            }
        }
    }
}

fn to_u8(v: f32) -> u8 {
    (v * 255.0 + 0.5).clamp(0.0, 255.0) as u8
}

/// Y'CbCr (or GBR for the identity matrix) to 8-bit RGB. Chroma is taken from the sample
/// covering each pixel. The colour box's description wins over the stream's, as in libavif;
/// an unspecified matrix is read as BT.601.
fn to_rgb(frame: &Frame<'_>, nclx: Option<Nclx>) -> Result<Vec<u8>, PipelineError> {
    let (matrix, full_range) = nclx.map_or((frame.matrix, frame.full_range), |n| {
        (n.matrix, n.full_range)
    });
    let lv = Levels::new(frame.bit_depth, full_range);
    let (w, h) = (frame.width as usize, frame.height as usize);
    let mut out = alloc_pixels(w * h * 3)?;
    let (mut yr, mut ur, mut vr) = (Vec::new(), Vec::new(), Vec::new());
    // (Kr, Kb) of the matrix; `None` for identity (the planes are G, B, R).
    let k = match matrix {
        0 => None,
        1 => Some((0.2126f32, 0.0722f32)),
        4 => Some((0.30, 0.11)),
        7 => Some((0.212, 0.087)),
        9 | 10 => Some((0.2627, 0.0593)),
        _ => Some((0.299, 0.114)),
    };
    for (y, line) in out.chunks_exact_mut(w * 3).enumerate() {
        frame.row(0, y as u32, &mut yr);
        if frame.monochrome {
            for (px, &l) in line.chunks_exact_mut(3).zip(&yr) {
                px.fill(to_u8((f32::from(l) - lv.y_off) * lv.y_scale));
            }
            continue;
        }
        let cy = (y as u32) >> frame.y_shift;
        frame.row(1, cy, &mut ur);
        frame.row(2, cy, &mut vr);
        for (x, px) in line.chunks_exact_mut(3).enumerate() {
            let cx = x >> frame.x_shift;
            let l = (f32::from(yr[x]) - lv.y_off) * lv.y_scale;
            let (u, v) = (f32::from(ur[cx]), f32::from(vr[cx]));
            let rgb = match k {
                None => {
                    let full = |s: f32| (s - lv.y_off) * lv.y_scale;
                    [full(v), l, full(u)]
                }
                Some((kr, kb)) => {
                    let cb = (u - lv.c_mid) * lv.c_scale;
                    let cr = (v - lv.c_mid) * lv.c_scale;
                    let r = l + 2.0 * (1.0 - kr) * cr;
                    let b = l + 2.0 * (1.0 - kb) * cb;
                    let g = (l - kr * r - kb * b) / (1.0 - kr - kb);
                    [r, g, b]
                }
            };
            for (o, c) in px.iter_mut().zip(rgb) {
                *o = to_u8(c);
            }
        }
    }
    Ok(out)
}

/// The luma plane as 8-bit alpha (limited-range alpha is stretched to full).
fn to_gray(frame: &Frame<'_>) -> Result<Vec<u8>, PipelineError> {
    let lv = Levels::new(frame.bit_depth, frame.full_range);
    let (w, h) = (frame.width as usize, frame.height as usize);
    let mut out = alloc_pixels(w * h)?;
    let mut row = Vec::new();
    for (y, line) in out.chunks_exact_mut(w).enumerate() {
        frame.row(0, y as u32, &mut row);
        for (o, &s) in line.iter_mut().zip(&row) {
            *o = to_u8((f32::from(s) - lv.y_off) * lv.y_scale);
        }
    }
    Ok(out)
}

/// The `width` x `height` window of `img` at (`x`, `y`).
fn crop(img: &Raster, x: u32, y: u32, width: u32, height: u32) -> Result<Raster, PipelineError> {
    if u64::from(x) + u64::from(width) > u64::from(img.width)
        || u64::from(y) + u64::from(height) > u64::from(img.height)
    {
        return Err(PipelineError::Undecodable(format!(
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
