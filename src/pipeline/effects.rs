//! Pixel effects applied only when asked: tone adjustments (brightness, contrast, gamma,
//! saturation), blur, sharpen, grayscale.
//!
//! Owns the per-pixel filters that keep the image size. It must not resize, crop, rotate or
//! change the channel count, and every filter costs a fixed amount of work per pixel whatever
//! its strength, so a large `blur` cannot be used to burn CPU.
//!
//! Translucent images are filtered premultiplied (and divided back afterwards) so the colour of
//! invisible pixels never bleeds into visible ones; tone adjustments work on colour alone and
//! run before that, on straight alpha.
//!
//! Where they work: `brightness` multiplies linear light (twice as bright is twice the light);
//! `contrast` spreads the sRGB-encoded values around mid-grey; `gamma` raises them to 1/gamma
//! (above 1 lightens the mid-tones); `saturation` moves each pixel's linear-light colour away
//! from or towards its luminance (Rec. 709 weights), 0 giving grey. The first three make one
//! 256-entry table per request, so their cost is one lookup a sample.

use crate::imaging::Raster;
use crate::spec::TransformSpec;
use fast_image_resize::images::Image;
use fast_image_resize::{MulDiv, PixelType};

/// Apply tone adjustments, blur, sharpen and grayscale from the spec, in that order; a no-op
/// when none is set.
pub fn apply(img: Raster, spec: &TransformSpec) -> Raster {
    let blur = spec.blur_deci.filter(|&b| b > 0);
    let sharpen = spec.sharpen_deci.filter(|&s| s > 0);
    let tones = Tones::of(spec);
    if blur.is_none() && sharpen.is_none() && !spec.grayscale && tones.is_none() {
        return img;
    }
    if img.width == 0 || img.height == 0 {
        return img;
    }
    let mut img = img;
    if let Some(tones) = tones {
        tones.apply(&mut img);
    }
    if blur.is_some() || sharpen.is_some() {
        let premultiplied = premultiply(&mut img);
        if let Some(b) = blur {
            // Cloudflare's blur is a radius; a Gaussian of sigma = radius / 2 has most of its
            // weight inside that radius.
            let sigma = f64::from(b) / 10.0 / 2.0;
            img = blur_raster(img, sigma);
        }
        if let Some(s) = sharpen {
            sharpen_raster(&mut img, f64::from(s) / 10.0, premultiplied);
        }
        if premultiplied {
            unpremultiply(&mut img);
        }
    }
    if spec.grayscale {
        grayscale(&mut img);
    }
    img
}

/// The tone adjustments of a spec, as factors (1 = unchanged).
#[derive(Debug, Clone, Copy)]
struct Tones {
    brightness: f64,
    contrast: f64,
    gamma: f64,
    saturation: f64,
}

impl Tones {
    /// `None` when the spec changes no tone.
    fn of(spec: &TransformSpec) -> Option<Tones> {
        let factor = |v: Option<u16>| v.map_or(1.0, |c| f64::from(c) / 100.0);
        let t = Tones {
            brightness: factor(spec.brightness_centi.filter(|&c| c > 0)),
            contrast: factor(spec.contrast_centi.filter(|&c| c > 0)),
            gamma: factor(spec.gamma_centi.filter(|&c| c > 0)),
            saturation: factor(spec.saturation_centi),
        };
        let unchanged = [t.brightness, t.contrast, t.gamma, t.saturation] == [1.0; 4];
        (!unchanged).then_some(t)
    }

    /// The per-sample table of brightness, then contrast, then gamma.
    fn table(&self) -> [u8; 256] {
        let mut out = [0u8; 256];
        for (i, o) in out.iter_mut().enumerate() {
            let mut v = i as f64 / 255.0;
            if self.brightness != 1.0 {
                v = linear_to_srgb((srgb_to_linear(v) * self.brightness).min(1.0));
            }
            v = ((v - 0.5) * self.contrast + 0.5).clamp(0.0, 1.0);
            if self.gamma != 1.0 {
                v = v.powf(1.0 / self.gamma);
            }
            *o = (v * 255.0).round() as u8;
        }
        out
    }

    fn apply(&self, img: &mut Raster) {
        let channels = usize::from(img.channels);
        let table = self.table();
        let identity = table.iter().enumerate().all(|(i, &v)| usize::from(v) == i);
        if !identity {
            for px in img.data.chunks_exact_mut(channels) {
                for v in &mut px[..3] {
                    *v = table[usize::from(*v)];
                }
            }
        }
        if self.saturation != 1.0 {
            saturate(img, self.saturation);
        }
    }
}

/// sRGB-encoded 0..=1 to linear light.
fn srgb_to_linear(v: f64) -> f64 {
    if v <= 0.04045 {
        v / 12.92
    } else {
        ((v + 0.055) / 1.055).powf(2.4)
    }
}

/// Linear light 0..=1 to sRGB-encoded.
fn linear_to_srgb(v: f64) -> f64 {
    if v <= 0.003_130_8 {
        v * 12.92
    } else {
        1.055 * v.powf(1.0 / 2.4) - 0.055
    }
}

/// Entries of the linear-to-sRGB table `saturate` encodes with: fine enough that every
/// 8-bit output is reachable.
const LINEAR_STEPS: usize = 4096;

/// Scale each pixel's distance from its luminance by `factor`, in linear light.
fn saturate(img: &mut Raster, factor: f64) {
    let to_linear: Vec<f32> = (0..256)
        .map(|i| srgb_to_linear(f64::from(i as u8) / 255.0) as f32)
        .collect();
    let to_srgb: Vec<u8> = (0..LINEAR_STEPS)
        .map(|i| {
            let v = linear_to_srgb(i as f64 / (LINEAR_STEPS - 1) as f64);
            (v * 255.0).round() as u8
        })
        .collect();
    let factor = factor as f32;
    let top = (LINEAR_STEPS - 1) as f32;
    for px in img.data.chunks_exact_mut(usize::from(img.channels)) {
        let [r, g, b] = [0, 1, 2].map(|i| to_linear[usize::from(px[i])]);
        let luma = 0.2126 * r + 0.7152 * g + 0.0722 * b;
        for (out, c) in px[..3].iter_mut().zip([r, g, b]) {
            let v = (luma + (c - luma) * factor).clamp(0.0, 1.0);
            *out = to_srgb[(v * top).round() as usize];
        }
    }
}

/// Premultiply an RGBA raster in place; false (and untouched) when there is no alpha or it is
/// fully opaque, where premultiplying would be a no-op.
fn premultiply(img: &mut Raster) -> bool {
    if !img.has_alpha() || img.data.chunks_exact(4).all(|p| p[3] == 255) {
        return false;
    }
    let (w, h) = (img.width, img.height);
    match Image::from_slice_u8(w, h, &mut img.data, PixelType::U8x4) {
        Ok(mut view) => MulDiv::new().multiply_alpha_inplace(&mut view).is_ok(),
        Err(_) => false,
    }
}

fn unpremultiply(img: &mut Raster) {
    let (w, h) = (img.width, img.height);
    if let Ok(mut view) = Image::from_slice_u8(w, h, &mut img.data, PixelType::U8x4) {
        // Cannot fail for U8x4 of the right size, which from_slice_u8 just checked.
        let _ = MulDiv::new().divide_alpha_inplace(&mut view);
    }
}

/// Radii of three box filters whose convolution approximates a Gaussian of `sigma`.
///
/// A box of odd width `w` has variance `(w^2 - 1) / 12` and variances add, so we pick the
/// largest odd width `wl` not above the ideal, use `m` boxes of `wl` and `3 - m` of `wl + 2`,
/// with `m` solving `m (wl^2 - 1) + (3 - m) ((wl + 2)^2 - 1) = 12 sigma^2`.
fn box_radii(sigma: f64) -> [usize; 3] {
    let var12 = 12.0 * sigma * sigma;
    let ideal = (var12 / 3.0 + 1.0).sqrt();
    let mut wl = ideal.floor().max(1.0) as i64;
    if wl % 2 == 0 {
        wl -= 1;
    }
    let wlf = wl as f64;
    let m = ((var12 - 3.0 * wlf * wlf - 12.0 * wlf - 9.0) / (-4.0 * wlf - 4.0)).round();
    let m = m.clamp(0.0, 3.0) as usize;
    let mut radii = [0; 3];
    for (i, r) in radii.iter_mut().enumerate() {
        let width = if i < m { wl } else { wl + 2 };
        *r = ((width - 1) / 2) as usize;
    }
    radii
}

/// Fixed-point reciprocal (24 fractional bits) so the inner loops multiply instead of divide.
/// A sum is at most `255 * width`, so `sum * inv + 2^23 < 2^32` stays in u32 (which keeps the
/// loops vectorisable) and the result is off by < 0.01 before rounding.
fn reciprocal(width: usize) -> u32 {
    (((1u64 << 24) + width as u64 / 2) / width as u64) as u32
}

/// Divide a box sum by its width (via `inv`), rounding, saturating at 255.
#[inline(always)]
fn scale_sum(sum: u32, inv: u32) -> u8 {
    ((sum * inv + (1 << 23)) >> 24).min(255) as u8
}

/// Gaussian blur approximated by three box blurs per axis (error well under 3% of the peak).
/// Each box pass is a running sum: O(1) per pixel for any radius. Edges repeat the border.
fn blur_raster(img: Raster, sigma: f64) -> Raster {
    let radii = box_radii(sigma);
    if radii.iter().all(|&r| r == 0) {
        return img;
    }
    match img.channels {
        4 => blur_c::<4>(img, radii),
        _ => blur_c::<3>(img, radii),
    }
}

fn blur_c<const C: usize>(mut img: Raster, radii: [usize; 3]) -> Raster {
    let (w, h) = (img.width as usize, img.height as usize);
    let stride = w * C;
    // Horizontal passes run row by row in two row-sized scratch buffers.
    let mut a = vec![0u8; stride];
    let mut b = vec![0u8; stride];
    for row in img.data.chunks_exact_mut(stride) {
        a.copy_from_slice(row);
        for &r in &radii {
            box_row::<C>(&a, &mut b, r);
            std::mem::swap(&mut a, &mut b);
        }
        row.copy_from_slice(&a);
    }
    // Vertical passes ping-pong between the image and one full-size buffer; the result ends
    // up in whichever holds it last, which is moved into the raster without a copy.
    let mut other = vec![0u8; img.data.len()];
    let mut sums = vec![0u32; stride];
    for &r in &radii {
        box_columns(&img.data, &mut other, &mut sums, stride, h, r);
        std::mem::swap(&mut img.data, &mut other);
    }
    img
}

/// One horizontal box pass of radius `r` over a row of `C`-channel pixels.
fn box_row<const C: usize>(src: &[u8], dst: &mut [u8], r: usize) {
    let (src, _) = src.as_chunks::<C>();
    let (dst, _) = dst.as_chunks_mut::<C>();
    let n = src.len().min(dst.len());
    if r == 0 || n == 0 {
        dst.copy_from_slice(src);
        return;
    }
    let inv = reciprocal(2 * r + 1);
    let last = n - 1;
    let mut sum = [0u32; C];
    // Window for pixel 0 is -r..=r with indices clamped into the row.
    for (s, &v) in sum.iter_mut().zip(&src[0]) {
        *s = u32::from(v) * (r as u32 + 1);
    }
    for p in (1..=r).map(|i| &src[i.min(last)]) {
        for (s, &v) in sum.iter_mut().zip(p) {
            *s += u32::from(v);
        }
    }
    // Fixed-size arrays: the channel loop unrolls and needs no bounds checks.
    let step = |out: &mut [u8; C], sum: &mut [u32; C], add: &[u8; C], sub: &[u8; C]| {
        for (((o, s), &a), &d) in out.iter_mut().zip(sum.iter_mut()).zip(add).zip(sub) {
            *o = scale_sum(*s, inv);
            *s = *s + u32::from(a) - u32::from(d);
        }
    };
    // Three stretches so the long middle one needs no index clamping: pixels whose window
    // leaves the row on the left, those fully inside, and those leaving it on the right.
    let head = r.min(n);
    let tail_start = n.saturating_sub(r + 1).max(head);
    for (x, out) in dst[..head].iter_mut().enumerate() {
        step(out, &mut sum, &src[(x + r + 1).min(last)], &src[0]);
    }
    if tail_start > head {
        // Here n > r + 1 and head == r, so both source offsets are in range.
        let adds = &src[head + r + 1..];
        let subs = &src[head - r..];
        for ((out, add), sub) in dst[head..tail_start].iter_mut().zip(adds).zip(subs) {
            step(out, &mut sum, add, sub);
        }
    }
    if tail_start < n {
        let subs = &src[tail_start - r..];
        for (out, sub) in dst[tail_start..n].iter_mut().zip(subs) {
            step(out, &mut sum, &src[last], sub);
        }
    }
}

/// Row `y` of an image with `stride` bytes per row.
#[inline(always)]
fn pixel_row(data: &[u8], stride: usize, y: usize) -> &[u8] {
    &data[y * stride..(y + 1) * stride]
}

/// One vertical box pass of radius `r`: a running sum per byte column, updated one row at a
/// time so every access walks memory in order.
fn box_columns(src: &[u8], dst: &mut [u8], sums: &mut [u32], stride: usize, h: usize, r: usize) {
    if r == 0 {
        dst.copy_from_slice(src);
        return;
    }
    let inv = reciprocal(2 * r + 1);
    let row = |y: usize| pixel_row(src, stride, y);
    let last = h - 1;
    for (s, &v) in sums.iter_mut().zip(row(0)) {
        *s = u32::from(v) * (r as u32 + 1);
    }
    for y in 1..=r {
        for (s, &v) in sums.iter_mut().zip(row(y.min(last))) {
            *s += u32::from(v);
        }
    }
    for (y, out) in dst.chunks_exact_mut(stride).enumerate() {
        let add = row((y + r + 1).min(last));
        let sub = row(y.saturating_sub(r));
        for (((o, s), &a), &d) in out.iter_mut().zip(sums.iter_mut()).zip(add).zip(sub) {
            *o = scale_sum(*s, inv);
            *s = *s + u32::from(a) - u32::from(d);
        }
    }
}

/// Unsharp mask: `out = px + amount * (px - blur3x3(px))` with the 1-2-1 binomial kernel
/// (about a 1 px radius). `amount` is Cloudflare's 0..10 `sharpen`; 1 adds the high-pass once.
/// Streams through the image keeping two original rows, so it works in place.
fn sharpen_raster(img: &mut Raster, amount: f64, premultiplied: bool) {
    match img.channels {
        4 => sharpen_c::<4>(img, amount, premultiplied),
        _ => sharpen_c::<3>(img, amount, false),
    }
}

fn sharpen_c<const C: usize>(img: &mut Raster, amount: f64, premultiplied: bool) {
    let (w, h) = (img.width as usize, img.height as usize);
    let stride = w * C;
    // amount in 1/256 steps; the high-pass below is scaled by 16 (the kernel's weight).
    let amt = (amount * 256.0).round() as i32;
    if amt == 0 {
        return;
    }
    let mut prev = img.data[..stride].to_vec();
    let mut cur = prev.clone();
    // Vertical 1-2-1 sums with one replicated pixel on each side, so the horizontal 1-2-1 is
    // three shifted slices of the same buffer and the loop has no edge cases.
    let mut vert = vec![0u16; stride + 2 * C];
    for y in 0..h {
        let next_y = (y + 1).min(h - 1);
        // prev and cur are copies of original rows; next is still original because rows are
        // written top to bottom.
        let next = &img.data[next_y * stride..(next_y + 1) * stride];
        let inner = &mut vert[C..C + stride];
        for (((v, &p), &c), &n) in inner.iter_mut().zip(&prev).zip(&cur).zip(next) {
            *v = u16::from(p) + 2 * u16::from(c) + u16::from(n);
        }
        vert.copy_within(C..2 * C, 0);
        vert.copy_within(stride..stride + C, stride + C);

        let out = &mut img.data[y * stride..(y + 1) * stride];
        let taps = vert[..stride]
            .iter()
            .zip(&vert[C..C + stride])
            .zip(&vert[2 * C..]);
        for ((o, &orig), ((&l, &m), &r)) in out.iter_mut().zip(&cur).zip(taps) {
            let blur16 = i32::from(l) + 2 * i32::from(m) + i32::from(r);
            let orig = i32::from(orig);
            let v = orig + (((orig * 16 - blur16) * amt + 2048) >> 12);
            *o = v.clamp(0, 255) as u8;
        }
        if premultiplied {
            // Premultiplied colour may not exceed alpha, or un-premultiplying overflows.
            for px in out.as_chunks_mut::<C>().0 {
                let a = px[C - 1];
                for c in &mut px[..C - 1] {
                    *c = (*c).min(a);
                }
            }
        }
        std::mem::swap(&mut prev, &mut cur);
        cur.copy_from_slice(&img.data[next_y * stride..(next_y + 1) * stride]);
    }
}

/// Rec. 709 luma on the encoded values (weights 0.2126, 0.7152, 0.0722 in 1/65536), written to
/// all three colour channels; alpha is kept.
fn grayscale(img: &mut Raster) {
    match img.channels {
        4 => grayscale_c::<4>(&mut img.data),
        _ => grayscale_c::<3>(&mut img.data),
    }
}

fn grayscale_c<const C: usize>(data: &mut [u8]) {
    const WR: u32 = 13933;
    const WG: u32 = 46871;
    const WB: u32 = 4732;
    for p in data.as_chunks_mut::<C>().0 {
        let luma = WR * u32::from(p[0]) + WG * u32::from(p[1]) + WB * u32::from(p[2]);
        // The weights sum to 65536, so this is at most 255 after rounding.
        let y = ((luma + 32768) >> 16) as u8;
        p[0] = y;
        p[1] = y;
        p[2] = y;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn checkerboard(w: u32, h: u32, cell: u32, channels: u8) -> Raster {
        let mut data = Vec::new();
        for y in 0..h {
            for x in 0..w {
                let v = if (x / cell + y / cell).is_multiple_of(2) {
                    255
                } else {
                    0
                };
                data.extend_from_slice(&[v, v, v]);
                if channels == 4 {
                    data.push(255);
                }
            }
        }
        Raster::new(w, h, channels, data)
    }

    fn stats(img: &Raster, channel: usize) -> (f64, f64) {
        let vals: Vec<f64> = img
            .data
            .chunks_exact(img.channels as usize)
            .map(|p| f64::from(p[channel]))
            .collect();
        let n = vals.len() as f64;
        let mean = vals.iter().sum::<f64>() / n;
        let var = vals.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / n;
        (mean, var)
    }

    fn with(f: impl FnOnce(&mut TransformSpec)) -> TransformSpec {
        let mut s = TransformSpec::default();
        f(&mut s);
        s
    }

    /// Box blur by definition: mean of the window with indices clamped into the row.
    fn naive_box(src: &[u8], c: usize, r: usize) -> Vec<u8> {
        let n = (src.len() / c) as isize;
        let mut out = vec![0u8; src.len()];
        for x in 0..n {
            for k in 0..c {
                let sum: u32 = (x - r as isize..=x + r as isize)
                    .map(|i| u32::from(src[i.clamp(0, n - 1) as usize * c + k]))
                    .sum();
                let w = (2 * r + 1) as f64;
                out[x as usize * c + k] = (f64::from(sum) / w).round() as u8;
            }
        }
        out
    }

    #[test]
    fn box_passes_match_the_definition() {
        let row: Vec<u8> = (0..40u32).map(|i| (i * 97 % 256) as u8).collect();
        for n_px in [1usize, 2, 3, 5, 7, 10] {
            for r in [1usize, 2, 3, 4, 6, 9, 20] {
                let src3 = &row[..n_px * 3];
                let mut dst = vec![0u8; src3.len()];
                box_row::<3>(src3, &mut dst, r);
                assert_eq!(dst, naive_box(src3, 3, r), "row n={n_px} r={r}");
                let src4 = &row[..n_px * 4];
                let mut dst = vec![0u8; src4.len()];
                box_row::<4>(src4, &mut dst, r);
                assert_eq!(dst, naive_box(src4, 4, r), "row4 n={n_px} r={r}");
                // a column of n_px one-byte "rows" is the same problem vertically
                let col = &row[..n_px];
                let mut dst = vec![0u8; n_px];
                let mut sums = vec![0u32; 1];
                box_columns(col, &mut dst, &mut sums, 1, n_px, r);
                assert_eq!(dst, naive_box(col, 1, r), "column n={n_px} r={r}");
            }
        }
    }

    #[test]
    fn nothing_asked_is_identity() {
        let img = checkerboard(16, 16, 2, 3);
        assert_eq!(apply(img.clone(), &TransformSpec::default()), img);
        let s = with(|s| s.sharpen_deci = Some(0));
        assert_eq!(apply(img.clone(), &s), img);
    }

    #[test]
    fn box_radii_match_sigma() {
        for sigma in [0.8, 2.0, 5.0, 31.0, 125.0] {
            let var: f64 = box_radii(sigma)
                .iter()
                .map(|&r| {
                    let w = (2 * r + 1) as f64;
                    (w * w - 1.0) / 12.0
                })
                .sum();
            assert!(
                (var.sqrt() - sigma).abs() < 0.2 * sigma.max(1.0),
                "sigma {sigma}: {var}"
            );
        }
    }

    #[test]
    fn blur_reduces_variance_keeps_mean() {
        let img = checkerboard(64, 48, 4, 3);
        let (m0, v0) = stats(&img, 0);
        for radius in [4u16, 20, 250] {
            let s = with(|s| s.blur_deci = Some(radius * 10));
            let out = apply(img.clone(), &s);
            assert_eq!((out.width, out.height, out.channels), (64, 48, 3));
            let (m1, v1) = stats(&out, 1);
            assert!(v1 < v0 * 0.25, "radius {radius}: variance {v1} vs {v0}");
            assert!((m1 - m0).abs() < 2.0, "radius {radius}: mean {m1} vs {m0}");
        }
    }

    #[test]
    fn blur_keeps_flat_colour_and_opaque_alpha() {
        let img = Raster::new(9, 7, 4, [10, 20, 30, 255].repeat(63));
        let out = apply(img.clone(), &with(|s| s.blur_deci = Some(50)));
        assert_eq!(out, img);
    }

    #[test]
    fn blur_of_translucent_edge_has_no_dark_halo() {
        // transparent black next to opaque white: blurred edge pixels stay white
        let mut data = Vec::new();
        for _ in 0..8 {
            for x in 0..32 {
                data.extend_from_slice(if x < 16 { &[0, 0, 0, 0] } else { &[255; 4] });
            }
        }
        let out = apply(
            Raster::new(32, 8, 4, data),
            &with(|s| s.blur_deci = Some(40)),
        );
        for p in out.data.chunks_exact(4) {
            if p[3] > 8 {
                assert!(p[..3].iter().all(|&v| v >= 240), "halo pixel {p:?}");
            }
        }
        // alpha itself is blurred across the edge
        assert!(out.data.chunks_exact(4).any(|p| p[3] > 0 && p[3] < 255));
    }

    #[test]
    fn sharpen_increases_contrast_at_edges() {
        // a soft ramp edge: sharpening overshoots on both sides
        let mut data = Vec::new();
        for _ in 0..8 {
            for x in 0..16u8 {
                let v = match x {
                    0..=6 => 100,
                    7 => 128,
                    _ => 156,
                };
                data.extend_from_slice(&[v, v, v]);
            }
        }
        let img = Raster::new(16, 8, 3, data);
        let out = apply(img.clone(), &with(|s| s.sharpen_deci = Some(20)));
        assert_eq!(out.data.len(), img.data.len());
        let at = |r: &Raster, x: usize| r.data[(3 * 16 + x) * 3];
        assert!(
            at(&out, 6) < 100 && at(&out, 8) > 156,
            "{} {}",
            at(&out, 6),
            at(&out, 8)
        );
        // flat regions untouched
        assert_eq!(at(&out, 1), 100);
        assert_eq!(at(&out, 14), 156);
        let (_, v0) = stats(&img, 0);
        let (_, v1) = stats(&out, 0);
        assert!(v1 > v0);
    }

    #[test]
    fn sharpen_translucent_keeps_colour_below_alpha() {
        let mut data = Vec::new();
        for y in 0..6 {
            for x in 0..6 {
                let a = if (x + y) % 2 == 0 { 255 } else { 40 };
                data.extend_from_slice(&[250, 10, 120, a]);
            }
        }
        let img = Raster::new(6, 6, 4, data);
        let out = apply(img, &with(|s| s.sharpen_deci = Some(100)));
        assert_eq!(out.data.len(), 6 * 6 * 4);
    }

    #[test]
    fn grayscale_equalises_channels_and_keeps_alpha() {
        let img = Raster::new(3, 1, 4, vec![255, 0, 0, 10, 0, 255, 0, 20, 0, 0, 255, 30]);
        let out = apply(img, &with(|s| s.grayscale = true));
        for p in out.data.chunks_exact(4) {
            assert!(p[0] == p[1] && p[1] == p[2]);
        }
        // 0.2126, 0.7152, 0.0722 of 255
        assert_eq!([out.data[0], out.data[4], out.data[8]], [54, 182, 18]);
        assert_eq!([out.data[3], out.data[7], out.data[11]], [10, 20, 30]);
        let white = apply(
            Raster::new(1, 1, 3, vec![255; 3]),
            &with(|s| s.grayscale = true),
        );
        assert_eq!(white.data, vec![255; 3]);
    }

    #[test]
    fn tiny_images_survive_every_effect() {
        for (w, h, c) in [(1u32, 1u32, 3u8), (1, 5, 4), (5, 1, 3)] {
            let img = Raster::new(w, h, c, vec![77; (w * h) as usize * c as usize]);
            let s = with(|s| {
                s.blur_deci = Some(2500);
                s.sharpen_deci = Some(100);
                s.grayscale = true;
            });
            let out = apply(img, &s);
            assert_eq!((out.width, out.height, out.channels), (w, h, c));
            // alpha 77 costs a little precision in the premultiplied round trip
            assert!(
                out.data.iter().all(|&v| v.abs_diff(77) <= 2),
                "{:?}",
                out.data
            );
        }
    }

    fn tones(options: &str, pixels: &[[u8; 4]]) -> Vec<[u8; 4]> {
        let spec = crate::spec::parse_options(options).unwrap();
        let data = pixels.iter().flatten().copied().collect();
        let img = apply(Raster::new(pixels.len() as u32, 1, 4, data), &spec);
        img.data
            .chunks_exact(4)
            .map(|p| [p[0], p[1], p[2], p[3]])
            .collect()
    }

    fn near(a: [u8; 4], b: [u8; 4]) -> bool {
        a.iter().zip(&b).all(|(x, y)| x.abs_diff(*y) <= 1)
    }

    #[test]
    fn brightness_scales_light_and_keeps_black_black() {
        let px = [[0, 0, 0, 255], [128, 128, 128, 200], [255, 255, 255, 255]];
        // 128 is 21.6% light; twice that (43.2%) is encoded 176; alpha is left alone.
        let out = tones("brightness=2", &px);
        assert!(near(out[0], [0, 0, 0, 255]), "{:?}", out[0]);
        assert!(near(out[1], [176, 176, 176, 200]), "{:?}", out[1]);
        assert_eq!(out[2], [255, 255, 255, 255], "light past white clips");
        let out = tones("brightness=0.5", &px);
        assert!(near(out[1], [92, 92, 92, 200]), "{:?}", out[1]);
        assert!(near(out[2], [188, 188, 188, 255]), "{:?}", out[2]);
    }

    #[test]
    fn contrast_spreads_around_mid_grey_and_gamma_bends_the_mid_tones() {
        let px = [
            [64, 64, 64, 255],
            [128, 128, 128, 255],
            [192, 192, 192, 255],
        ];
        let out = tones("contrast=2", &px);
        assert!(out[0][0] <= 1 && out[2][0] >= 254, "{out:?}");
        assert!(near(out[1], [128, 128, 128, 255]), "{out:?}");
        let out = tones("contrast=0.5", &px);
        assert!(
            near(out[0], [96, 96, 96, 255]) && near(out[2], [160, 160, 160, 255]),
            "{out:?}"
        );
        // gamma 2 lightens: 64/255 = 0.251, its square root 0.501 = 128; 0.5 darkens back.
        assert!(near(tones("gamma=2", &px)[0], [128, 128, 128, 255]));
        assert!(near(tones("gamma=0.5", &px)[1], [64, 64, 64, 255]));
    }

    #[test]
    fn saturation_moves_colour_from_or_to_its_luminance() {
        let px = [[255, 0, 0, 255], [100, 150, 200, 255], [90, 90, 90, 255]];
        // 0 is grey of the same luminance: red is 21.3% light, encoded 127.
        let out = tones("saturation=0", &px);
        assert!(near(out[0], [127, 127, 127, 255]), "{:?}", out[0]);
        assert!(
            out[1][0] == out[1][1] && out[1][1] == out[1][2],
            "{:?}",
            out[1]
        );
        // Grey stays grey whatever the factor; more saturation spreads the channels.
        let out = tones("saturation=3", &px);
        assert!(near(out[2], [90, 90, 90, 255]), "{:?}", out[2]);
        let spread = |p: [u8; 4]| p[2] - p[0];
        assert!(spread(out[1]) > spread(px[1]) + 40, "{:?}", out[1]);
        assert_eq!(out[0][0], 255, "already pure red cannot get redder");
    }

    #[test]
    fn unset_and_unit_factors_change_nothing() {
        let px = [[12, 200, 99, 255], [1, 2, 3, 4]];
        for options in [
            "brightness=1",
            "brightness=0",
            "contrast=0,gamma=1",
            "saturation=1",
        ] {
            let spec = crate::spec::parse_options(&format!("{options},width=5")).unwrap();
            assert!(Tones::of(&spec).is_none(), "{options}");
            assert_eq!(tones(options, &px), px, "{options}");
        }
    }
}
