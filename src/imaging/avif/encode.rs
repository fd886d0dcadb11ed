//! AVIF output for the encode step: the raster becomes 8-bit YCbCr planes (BT.601, full
//! range; 4:2:0, or 4:4:4 at quality 90 and up), libaom encodes them as an all-intra AV1
//! still picture through the small C shim in `csrc/` (built by `build.rs`), and
//! `avif-serialize` wraps the bitstream in the AVIF container. Alpha, when the raster has any
//! that is not fully opaque, is a second, monochrome AV1 picture.
//!
//! Why libaom and these settings (BENCHMARKS.md, "Output size and look against libvips"):
//! measured against libvips' own AVIF (libheif + libaom) on the corpus photos at 300 px,
//! all-intra at `cpu-used` 6, tuned for SSIM, gives the same look in similar bytes at about a
//! third of libvips' CPU; rav1e, used before, needed 1.3x the bytes for that look at its fast
//! speeds, and its slow speeds cost more CPU than libvips.

use crate::imaging::effort::Effort;
use crate::imaging::error::ImageError;
use crate::imaging::raster::Raster;
use std::ffi::{c_char, c_int, c_uint, c_void};

/// libaom's speed for every request: the slowest setting that keeps AVIF CPU well under
/// libvips'. 5 costs about 3.5x as much for 1% fewer bytes and 0.002 more SSIM; 7 halves the
/// time but loses 0.003 SSIM for 2% more bytes.
const CPU_USED: c_int = 6;
/// Above this many output pixels (4 MP: 2560x1600, and every `dpr=2` 1920-wide hero image
/// stays under it) libaom runs at `CPU_USED_LARGE`: a 16 MP output at speed 6 took tens of
/// seconds of one core, which one request must not cost. Large outputs are rare and mostly
/// full-screen, where the speed's small loss in SSIM does not show.
const LARGE_OUTPUT_PIXELS: u64 = 4_000_000;
const CPU_USED_LARGE: c_int = 9;

/// libaom's speed for a picture of this size.
fn cpu_used(width: u32, height: u32, effort: Effort) -> c_int {
    if effort == Effort::Fast || u64::from(width) * u64::from(height) > LARGE_OUTPUT_PIXELS {
        CPU_USED_LARGE
    } else {
        CPU_USED
    }
}
/// From this quality up, chroma keeps full resolution (as libvips does).
const FULL_CHROMA_FROM_QUALITY: u8 = 90;
/// CICP matrix coefficients of the planes we write: BT.601.
const MATRIX_BT601: c_int = 6;

#[repr(C)]
struct AomPicture {
    planes: [*const u8; 3],
    strides: [c_int; 3],
    width: c_uint,
    height: c_uint,
    monochrome: c_int,
    chroma_444: c_int,
    matrix: c_int,
}

#[repr(C)]
struct AomSettings {
    cq_level: c_int,
    cpu_used: c_int,
    tune_ssim: c_int,
}

type Sink = unsafe extern "C" fn(*mut c_void, *const u8, usize) -> c_int;

extern "C" {
    // csrc/imgate_aom.h
    fn imgate_aom_encode(
        pic: *const AomPicture,
        settings: *const AomSettings,
        sink: Sink,
        sink_ctx: *mut c_void,
        err: *mut c_char,
        err_len: usize,
    ) -> c_int;
}

/// libaom's constant-quality level (0 best ..= 63) for a `quality` on the option's scale.
/// libheif, under libvips, maps quality q to about `(100 - q) * 0.63`; at q60 that level gave
/// 0.0012 less SSIM than libvips' output here, so ours runs a notch finer: q60 -> 24, q80 -> 12.
pub(crate) fn cq_level(quality: u8) -> c_int {
    let q = f32::from(quality.clamp(1, 100));
    ((100.0 - q) * 0.6).round() as c_int
}

/// Encode `img` as an AVIF file at `quality` (the option's scale, 1-100).
pub(crate) fn encode(img: &Raster, quality: u8, effort: Effort) -> Result<Vec<u8>, ImageError> {
    let streams = encode_streams_with(img, quality, effort)?;
    let mut mux = avif_serialize::Aviffy::new();
    mux.set_matrix_coefficients(avif_serialize::constants::MatrixCoefficients::Bt601)
        .set_full_color_range(true)
        .set_seq_profile(if streams.full_chroma { 1 } else { 0 })
        .set_chroma_subsampling((!streams.full_chroma, !streams.full_chroma));
    let alpha_len = streams.alpha.as_ref().map_or(0, Vec::len);
    let mut out = Vec::with_capacity(streams.color.len() + alpha_len + 512);
    mux.write(
        &mut out,
        &streams.color,
        streams.alpha.as_deref(),
        img.width,
        img.height,
        8,
    )
    .map_err(|e| ImageError::Encode(format!("AVIF container: {e}")))?;
    Ok(out)
}

/// The AV1 bitstreams of one image, before the container.
pub(crate) struct Streams {
    pub color: Vec<u8>,
    pub alpha: Option<Vec<u8>>,
    pub full_chroma: bool,
}

#[cfg(test)]
pub(crate) fn encode_streams(img: &Raster, quality: u8) -> Result<Streams, ImageError> {
    encode_streams_with(img, quality, Effort::Normal)
}

/// [`encode_streams`] at the given effort.
pub(crate) fn encode_streams_with(
    img: &Raster,
    quality: u8,
    effort: Effort,
) -> Result<Streams, ImageError> {
    let full_chroma = quality >= FULL_CHROMA_FROM_QUALITY;
    let planes = Planes::from_raster(img, full_chroma);
    let settings = AomSettings {
        cq_level: cq_level(quality),
        cpu_used: cpu_used(img.width, img.height, effort),
        tune_ssim: 1,
    };
    let color = encode_av1(&planes.color_picture(), &settings)?;
    let alpha = match &planes.alpha {
        Some(alpha) => Some(encode_av1(&planes.alpha_picture(alpha), &settings)?),
        None => None,
    };
    Ok(Streams {
        color,
        alpha,
        full_chroma,
    })
}

/// The raster as 8-bit planes ready for libaom.
pub(crate) struct Planes {
    pub width: u32,
    pub height: u32,
    pub full_chroma: bool,
    pub chroma_width: usize,
    pub y: Vec<u8>,
    pub cb: Vec<u8>,
    pub cr: Vec<u8>,
    /// Present only when some pixel is not fully opaque.
    pub alpha: Option<Vec<u8>>,
}

// BT.601 in 16-bit fixed point: each row sums to 65536 (luma) or 0 (chroma).
const Y_RGB: [i32; 3] = [19595, 38470, 7471];
const CB_RGB: [i32; 3] = [-11059, -21709, 32768];
const CR_RGB: [i32; 3] = [32768, -27439, -5329];

/// `128 + num / den`, rounded half up and clamped to a byte.
fn chroma(num: i32, den: i32) -> u8 {
    (128 + (num + den / 2).div_euclid(den)).clamp(0, 255) as u8
}

impl Planes {
    pub(crate) fn from_raster(img: &Raster, full_chroma: bool) -> Planes {
        let (w, h) = (img.width as usize, img.height as usize);
        let ch = usize::from(img.channels);
        let px = |x: usize, y: usize| &img.data[(y * w + x) * ch..(y * w + x) * ch + 3];
        let y: Vec<u8> = img
            .data
            .chunks_exact(ch)
            .map(|p| {
                let s = Y_RGB[0] * i32::from(p[0])
                    + Y_RGB[1] * i32::from(p[1])
                    + Y_RGB[2] * i32::from(p[2]);
                ((s + 32768) >> 16) as u8
            })
            .collect();
        // 4:2:0 takes each 2x2 block's mean (a partial block at an odd edge is averaged over
        // the pixels it has); chroma is linear in RGB, so converting the mean RGB is exact.
        let step = if full_chroma { 1 } else { 2 };
        let (cw, chh) = (w.div_ceil(step), h.div_ceil(step));
        let mut cb = Vec::with_capacity(cw * chh);
        let mut cr = Vec::with_capacity(cw * chh);
        for by in 0..chh {
            for bx in 0..cw {
                let mut sum = [0i32; 3];
                let mut n = 0;
                for yy in by * step..((by + 1) * step).min(h) {
                    for xx in bx * step..((bx + 1) * step).min(w) {
                        let p = px(xx, yy);
                        for c in 0..3 {
                            sum[c] += i32::from(p[c]);
                        }
                        n += 1;
                    }
                }
                let dot = |k: [i32; 3]| k[0] * sum[0] + k[1] * sum[1] + k[2] * sum[2];
                cb.push(chroma(dot(CB_RGB), 65536 * n));
                cr.push(chroma(dot(CR_RGB), 65536 * n));
            }
        }
        let alpha = img
            .has_alpha()
            .then(|| img.data.chunks_exact(4).map(|p| p[3]).collect::<Vec<u8>>())
            .filter(|a| a.iter().any(|&v| v != 255));
        Planes {
            width: img.width,
            height: img.height,
            full_chroma,
            chroma_width: cw,
            y,
            cb,
            cr,
            alpha,
        }
    }

    fn color_picture(&self) -> AomPicture {
        let (yw, cw) = (self.width as c_int, self.chroma_width as c_int);
        AomPicture {
            planes: [self.y.as_ptr(), self.cb.as_ptr(), self.cr.as_ptr()],
            strides: [yw, cw, cw],
            width: self.width,
            height: self.height,
            monochrome: 0,
            chroma_444: c_int::from(self.full_chroma),
            matrix: MATRIX_BT601,
        }
    }

    fn alpha_picture(&self, alpha: &[u8]) -> AomPicture {
        let w = self.width as c_int;
        AomPicture {
            planes: [alpha.as_ptr(); 3],
            strides: [w; 3],
            width: self.width,
            height: self.height,
            monochrome: 1,
            chroma_444: 0,
            matrix: MATRIX_BT601,
        }
    }
}

/// libaom's output callback: append to the `Vec<u8>` in `ctx`; non-zero (abort) if it cannot
/// grow, rather than aborting the process on allocation failure.
unsafe extern "C" fn append(ctx: *mut c_void, data: *const u8, len: usize) -> c_int {
    // SAFETY: `ctx` is the `Vec` passed by `encode_av1`, alive and exclusively ours for the
    // whole call; `data` holds `len` bytes per the shim's contract.
    let (out, bytes) = unsafe {
        (
            &mut *(ctx as *mut Vec<u8>),
            std::slice::from_raw_parts(data, len),
        )
    };
    if out.try_reserve(len).is_err() {
        return 1;
    }
    out.extend_from_slice(bytes);
    0
}

/// One picture through libaom: the AV1 bitstream (a sequence header and one key frame).
fn encode_av1(pic: &AomPicture, settings: &AomSettings) -> Result<Vec<u8>, ImageError> {
    // An AVIF thumbnail runs near one bit per pixel.
    let mut out: Vec<u8> = Vec::with_capacity(pic.width as usize * pic.height as usize / 8 + 256);
    let mut err = [0 as c_char; 256];
    // SAFETY: the picture's planes point into `Planes` buffers that outlive the call, with the
    // strides and sizes set from the same raster; `append` gets our `out` as its context.
    let rc = unsafe {
        imgate_aom_encode(
            pic,
            settings,
            append,
            (&mut out as *mut Vec<u8>).cast::<c_void>(),
            err.as_mut_ptr(),
            err.len(),
        )
    };
    if rc != 0 {
        // SAFETY: the shim always NUL-terminates what it writes into `err` (snprintf), and
        // `err` starts zeroed.
        let msg = unsafe { std::ffi::CStr::from_ptr(err.as_ptr()) };
        return Err(ImageError::Encode(format!(
            "AVIF: {}",
            msg.to_string_lossy()
        )));
    }
    Ok(out)
}

// The project's one test SSIM, shared with the integration tests.
#[cfg(test)]
#[path = "../../../tests/it/support/ssim.rs"]
mod ssim;

#[cfg(test)]
pub(crate) mod testing {
    //! Reading AVIF back in tests: libaom's decoder (csrc/aom_decode.c) and the few ISO-BMFF
    //! boxes needed to find the AV1 data in a file `avif-serialize` wrote.
    use super::*;

    /// A decoded plane: width, height, tightly packed samples.
    pub type Plane = (u32, u32, Vec<u8>);

    /// Decode an AV1 bitstream into its planes as stored (Y, Cb, Cr; or one for monochrome).
    pub fn decode_av1(data: &[u8]) -> Result<Vec<Plane>, String> {
        super::super::decode::decode_frame(data, u64::MAX, |f| {
            let n = if f.monochrome { 1 } else { 3 };
            Ok((0..n)
                .map(|p| {
                    let (w, h) = f.plane_size(p);
                    (w, h, f.plane8(p))
                })
                .collect())
        })
        .map_err(|e| e.to_string())
    }

    /// Find the first box `name` in `data` (a run of ISO-BMFF boxes): its payload.
    pub fn find_box<'a>(mut data: &'a [u8], name: &[u8; 4]) -> Option<&'a [u8]> {
        while data.len() >= 8 {
            let size = u32::from_be_bytes(data[..4].try_into().unwrap()) as usize;
            if size < 8 || size > data.len() {
                return None;
            }
            if &data[4..8] == name {
                return Some(&data[8..size]);
            }
            data = &data[size..];
        }
        None
    }

    /// The `ispe` (image spatial extents) sizes in an AVIF file, in item order.
    pub fn ispe_sizes(file: &[u8]) -> Vec<(u32, u32)> {
        file.windows(4)
            .enumerate()
            .filter(|(_, w)| w == b"ispe")
            .map(|(i, _)| {
                let b = &file[i + 8..i + 16]; // after the full-box version and flags
                (
                    u32::from_be_bytes(b[..4].try_into().unwrap()),
                    u32::from_be_bytes(b[4..].try_into().unwrap()),
                )
            })
            .collect()
    }

    /// Decoded Y, Cb, Cr planes back to an RGB raster (BT.601 full range; subsampled chroma
    /// taken from the sample covering each pixel).
    pub fn to_rgb(planes: &[Plane]) -> Raster {
        let (w, h, y) = &planes[0];
        let (cw, _, cb) = &planes[1];
        let cr = &planes[2].2;
        let sub = if cw == w { 1 } else { 2 };
        let mut data = Vec::with_capacity((w * h * 3) as usize);
        for row in 0..*h as usize {
            for col in 0..*w as usize {
                let l = f64::from(y[row * *w as usize + col]);
                let c = (row / sub) * *cw as usize + col / sub;
                let (b, r) = (f64::from(cb[c]) - 128.0, f64::from(cr[c]) - 128.0);
                for v in [
                    l + 1.402 * r,
                    l - 0.344136 * b - 0.714136 * r,
                    l + 1.772 * b,
                ] {
                    data.push(v.round().clamp(0.0, 255.0) as u8);
                }
            }
        }
        Raster::new(*w, *h, 3, data)
    }

    /// Mean SSIM of the luma of two same-sized rasters over 8x8 windows (step 4).
    pub fn luma_ssim(a: &Raster, b: &Raster) -> f64 {
        assert_eq!((a.width, a.height), (b.width, b.height), "sizes differ");
        let luma = |img: &Raster| -> Vec<f64> {
            img.data
                .chunks_exact(usize::from(img.channels))
                .map(|p| {
                    0.299 * f64::from(p[0]) + 0.587 * f64::from(p[1]) + 0.114 * f64::from(p[2])
                })
                .collect()
        };
        super::ssim::windowed_ssim(&luma(a), &luma(b), a.width as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::testing::*;
    use super::*;

    /// A picture with smooth gradients, hard edges and fine texture, in RGB or RGBA (alpha a
    /// left-to-right ramp).
    fn synthetic(w: u32, h: u32, with_alpha: bool) -> Raster {
        let ch = if with_alpha { 4 } else { 3 };
        let mut data = Vec::with_capacity((w * h * ch) as usize);
        for y in 0..h {
            for x in 0..w {
                let (fx, fy) = (x as f64 / w as f64, y as f64 / h as f64);
                let disc = (fx - 0.5).powi(2) + (fy - 0.5).powi(2) < 0.06;
                let texture = if (x / 3 + y / 3) % 2 == 0 { 12.0 } else { 0.0 };
                let r = if disc { 220.0 } else { 255.0 * fx };
                let g = 255.0 * fy * 0.8 + texture;
                let b = if disc {
                    40.0
                } else {
                    255.0 * (1.0 - fx) * 0.7 + texture
                };
                data.extend([r, g, b].map(|v: f64| v.round().clamp(0.0, 255.0) as u8));
                if with_alpha {
                    data.push((255.0 * fx).round() as u8);
                }
            }
        }
        Raster::new(w, h, ch as u8, data)
    }

    #[test]
    fn quality_maps_to_finer_libaom_levels_as_it_rises() {
        assert_eq!(cq_level(60), 24);
        assert_eq!(cq_level(80), 12);
        assert_eq!(cq_level(100), 0);
        assert_eq!(cq_level(1), 59);
        assert_eq!(cq_level(0), 59, "0 is clamped to 1");
        for q in 1..100 {
            assert!(cq_level(q) >= cq_level(q + 1), "q{q}");
        }
    }

    #[test]
    fn planes_are_bt601_full_range_with_averaged_chroma() {
        // gray, red, blue, white / a 3x2 raster: 4:2:0 chroma is 2x1, the odd column alone.
        let px = [
            [128, 128, 128],
            [255, 0, 0],
            [0, 0, 255],
            [255, 255, 255],
            [0, 0, 0],
            [255, 0, 0],
        ];
        let img = Raster::new(3, 2, 3, px.concat());
        let p = Planes::from_raster(&img, false);
        assert_eq!(p.y, vec![128, 76, 29, 255, 0, 76]);
        assert_eq!((p.chroma_width, p.cb.len(), p.cr.len()), (2, 2, 2));
        // Block 0 is gray, red, white, black: mean RGB (159.5, 95.75, 95.75).
        assert_eq!((p.cb[0], p.cr[0]), (117, 160));
        // Block 1 is blue over red: mean (127.5, 0, 127.5).
        assert_eq!((p.cb[1], p.cr[1]), (170, 181));
        let full = Planes::from_raster(&img, true);
        assert_eq!((full.chroma_width, full.cb.len()), (3, 6));
        assert_eq!((full.cb[0], full.cr[0]), (128, 128), "gray has no chroma");
        assert_eq!((full.cb[1], full.cr[1]), (85, 255), "red");
        assert_eq!((full.cb[2], full.cr[2]), (255, 107), "blue");
        assert!(p.alpha.is_none());
    }

    #[test]
    fn fully_opaque_alpha_is_left_out() {
        let mut img = synthetic(16, 8, true);
        img.data.chunks_exact_mut(4).for_each(|p| p[3] = 255);
        let s = encode_streams(&img, 60).unwrap();
        assert!(s.alpha.is_none());
        assert_eq!(
            ispe_sizes(&encode(&img, 60, Effort::Normal).unwrap()),
            vec![(16, 8)]
        );
    }

    #[test]
    fn files_hold_the_streams_and_decode_to_the_same_size_and_look() {
        // Odd sizes exercise the partial chroma blocks; q95 takes the 4:4:4 path.
        for (w, h, q) in [(301, 199, 60), (64, 47, 95), (1, 1, 60)] {
            let img = synthetic(w, h, false);
            let file = encode(&img, q, Effort::Normal).unwrap();
            assert_eq!(&file[4..12], b"ftypavif", "{w}x{h}");
            assert_eq!(ispe_sizes(&file), vec![(w, h)], "{w}x{h}");
            let streams = encode_streams(&img, q).unwrap();
            assert_eq!(
                find_box(&file, b"mdat"),
                Some(&streams.color[..]),
                "{w}x{h}"
            );
            let planes = decode_av1(&streams.color).unwrap();
            let chroma = if q >= FULL_CHROMA_FROM_QUALITY {
                (w, h)
            } else {
                (w.div_ceil(2), h.div_ceil(2))
            };
            let sizes: Vec<(u32, u32)> = planes.iter().map(|p| (p.0, p.1)).collect();
            assert_eq!(sizes, vec![(w, h), chroma, chroma], "{w}x{h}");
            let back = to_rgb(&planes);
            if w >= 8 && h >= 8 {
                let ssim = luma_ssim(&img, &back);
                assert!(ssim > 0.95, "{w}x{h} q{q}: SSIM {ssim:.4}");
            }
        }
    }

    #[test]
    fn higher_quality_costs_bytes_and_buys_look() {
        let img = synthetic(200, 150, false);
        let look = |q| {
            let s = encode_streams(&img, q).unwrap();
            (
                s.color.len(),
                luma_ssim(&img, &to_rgb(&decode_av1(&s.color).unwrap())),
            )
        };
        let (low, mid, high) = (look(20), look(60), look(85));
        assert!(low.0 < mid.0 && mid.0 < high.0, "{low:?} {mid:?} {high:?}");
        assert!(low.1 < mid.1 && mid.1 < high.1, "{low:?} {mid:?} {high:?}");
    }

    #[test]
    fn alpha_is_a_second_monochrome_picture() {
        let img = synthetic(120, 80, true);
        let file = encode(&img, 60, Effort::Normal).unwrap();
        let streams = encode_streams(&img, 60).unwrap();
        let alpha = streams.alpha.as_ref().expect("an alpha stream");
        // Two AV1 items, the second an auxiliary (alpha) image of the first; both share one
        // `ispe` property.
        assert_eq!(file.windows(4).filter(|w| w == b"av01").count(), 2);
        assert!(file.windows(4).any(|w| w == b"auxl"), "no auxl reference");
        assert!(
            file.windows(9).any(|w| w == b"auxiliary"),
            "no alpha auxC box"
        );
        assert_eq!(ispe_sizes(&file), vec![(120, 80)]);
        let mdat = find_box(&file, b"mdat").unwrap();
        // avif-serialize stores the (smaller) alpha data first.
        assert_eq!(mdat, [&alpha[..], &streams.color[..]].concat());
        let planes = decode_av1(alpha).unwrap();
        assert_eq!(planes.len(), 1, "monochrome");
        let (w, h, a) = &planes[0];
        assert_eq!((*w, *h), (120, 80));
        let want = img.data.chunks_exact(4).map(|p| f64::from(p[3]));
        let diff = want
            .zip(a)
            .map(|(x, &y)| (x - f64::from(y)).abs())
            .sum::<f64>()
            / a.len() as f64;
        assert!(diff < 2.0, "alpha off by {diff:.2} on average");
    }
}
