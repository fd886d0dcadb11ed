//! Colour management: bring pixels into sRGB. Owns ICC conversion (lcms2, perceptual intent)
//! and CMYK -> RGB. A profile we cannot read or use is logged and ignored, never an error:
//! showing slightly wrong colours beats refusing the image. Does not parse containers (the
//! profile arrives in `SourceMeta`) and never changes the raster's size or channel count.

use super::error::ImageError;
use super::raster::{alloc_pixels, Raster};
use lcms2::{
    ColorSpaceSignature, Intent, Locale, PixelFormat, Profile, Tag, TagSignature, Transform,
};

/// True when the profile calls itself sRGB: converting sRGB to sRGB is wasted time, and most
/// web images carry exactly such a profile.
fn is_srgb(profile: &Profile) -> bool {
    match profile.read_tag(TagSignature::ProfileDescriptionTag) {
        // `text_ascii` (unlike `Profile::info`) returns an error on bad text instead of panicking.
        Tag::MLU(mlu) => mlu
            .text_ascii(Locale::none())
            .is_ok_and(|d| d.contains("sRGB")),
        _ => false,
    }
}

/// Convert an RGB(A) raster in place from the colour space described by `icc` to sRGB.
/// RGB profiles transform R, G, B (alpha untouched); a gray profile maps the gray level
/// (replicated in R, G, B by the decoder) through its tone curve.
pub(crate) fn to_srgb(img: &mut Raster, icc: &[u8]) {
    let profile = match Profile::new_icc(icc) {
        Ok(p) => p,
        Err(e) => {
            log::warn!("ignoring unreadable ICC profile ({} bytes): {e}", icc.len());
            return;
        }
    };
    if is_srgb(&profile) {
        return;
    }
    let srgb = Profile::new_srgb();
    let rgb_fmt = if img.has_alpha() {
        PixelFormat::RGBA_8
    } else {
        PixelFormat::RGB_8
    };
    match profile.color_space() {
        ColorSpaceSignature::RgbData => {
            match Transform::<u8, u8>::new(&profile, rgb_fmt, &srgb, rgb_fmt, Intent::Perceptual) {
                // In place: lcms writes only the colour channels, so alpha stays as it was.
                Ok(t) => t.transform_in_place(&mut img.data),
                Err(e) => log::warn!("ignoring ICC profile, no RGB transform: {e}"),
            }
        }
        ColorSpaceSignature::GrayData => {
            let t = match Transform::<u8, u8>::new(
                &profile,
                PixelFormat::GRAY_8,
                &srgb,
                PixelFormat::RGB_8,
                Intent::Perceptual,
            ) {
                Ok(t) => t,
                Err(e) => {
                    log::warn!("ignoring gray ICC profile, no transform: {e}");
                    return;
                }
            };
            // Row by row keeps the scratch buffers small.
            let ch = usize::from(img.channels);
            let w = img.width as usize;
            let mut gray = vec![0u8; w];
            let mut rgb = vec![0u8; w * 3];
            for row in img.data.chunks_exact_mut(w.max(1) * ch) {
                for (g, px) in gray.iter_mut().zip(row.chunks_exact(ch)) {
                    *g = px[0];
                }
                t.transform_pixels(&gray, &mut rgb);
                for (px, c) in row.chunks_exact_mut(ch).zip(rgb.chunks_exact(3)) {
                    px[..3].copy_from_slice(c);
                }
            }
        }
        other => log::warn!("ignoring ICC profile of colour space {other:?} on an RGB image"),
    }
}

/// CMYK samples (4 bytes a pixel) to sRGB (3 bytes a pixel). `inverted` is true for Adobe
/// CMYK JPEGs (APP14 marker), which store 255 - ink. Uses the CMYK ICC profile when there is
/// one, else the naive formula R = (1-C)(1-K). Returns the pixels and whether `icc` was used.
pub(crate) fn cmyk_to_rgb(
    cmyk: &[u8],
    icc: Option<&[u8]>,
    inverted: bool,
) -> Result<(Vec<u8>, bool), ImageError> {
    let pixels = cmyk.len() / 4;
    let mut rgb = alloc_pixels(pixels.checked_mul(3).ok_or_else(|| too_large(pixels))?)?;
    if let Some(t) = icc.and_then(|icc| cmyk_transform(icc, inverted)) {
        t.transform_pixels(&cmyk[..pixels * 4], &mut rgb);
        return Ok((rgb, true));
    }
    for (out, px) in rgb.chunks_exact_mut(3).zip(cmyk.chunks_exact(4)) {
        // Work in "amount of paper showing" (255 = no ink), which is what inverted data holds.
        let paper = |v: u8| -> u32 {
            if inverted {
                u32::from(v)
            } else {
                255 - u32::from(v)
            }
        };
        let k = paper(px[3]);
        for (o, &v) in out.iter_mut().zip(&px[..3]) {
            *o = ((paper(v) * k + 127) / 255) as u8;
        }
    }
    Ok((rgb, false))
}

/// A CMYK -> sRGB transform for `icc`, or `None` (logged) when it is not a usable CMYK profile.
fn cmyk_transform(icc: &[u8], inverted: bool) -> Option<Transform<u8, u8>> {
    let profile = Profile::new_icc(icc)
        .map_err(|e| log::warn!("ignoring unreadable CMYK ICC profile: {e}"))
        .ok()?;
    if profile.color_space() != ColorSpaceSignature::CmykData {
        log::warn!("ignoring non-CMYK ICC profile on a CMYK JPEG");
        return None;
    }
    // lcms's "_REV" formats read 0 as full ink, exactly the Adobe inverted convention.
    let fmt = if inverted {
        PixelFormat::CMYK_8_REV
    } else {
        PixelFormat::CMYK_8
    };
    let srgb = Profile::new_srgb();
    Transform::new(&profile, fmt, &srgb, PixelFormat::RGB_8, Intent::Perceptual)
        .map_err(|e| log::warn!("ignoring CMYK ICC profile, no transform: {e}"))
        .ok()
}

fn too_large(pixels: usize) -> ImageError {
    ImageError::TooLarge(format!("{pixels} CMYK pixels"))
}

/// SMPTE ST 2084 (PQ): a signal in 0..=1 to display light in cd/m².
fn pq_nits(e: f64) -> f64 {
    let (m1, m2) = (2610.0 / 16384.0, 2523.0 / 4096.0 * 128.0);
    let (c1, c2, c3) = (
        3424.0 / 4096.0,
        2413.0 / 4096.0 * 32.0,
        2392.0 / 4096.0 * 32.0,
    );
    let p = e.clamp(0.0, 1.0).powf(1.0 / m2);
    10_000.0 * ((p - c1).max(0.0) / (c2 - c3 * p)).powf(1.0 / m1)
}

/// ARIB STD-B67 (HLG): a signal in 0..=1 to display light in cd/m² on the reference 1000 cd/m²
/// display (inverse OETF, then the system gamma of 1.2, channel by channel).
fn hlg_nits(e: f64) -> f64 {
    let (a, b, c) = (0.178_832_77, 0.284_668_92, 0.559_910_73);
    let e = e.clamp(0.0, 1.0);
    let scene = if e <= 0.5 {
        e * e / 3.0
    } else {
        (((e - c) / a).exp() + b) / 12.0
    };
    1000.0 * scene.powf(1.2)
}

/// Display light of an HDR picture to SDR linear light in 0..=1: HDR reference white
/// (203 cd/m², ITU-R BT.2408) becomes 0.93; below 0.8 of it nothing changes, and everything
/// brighter is rolled off smoothly (same slope at the knee) towards 1 instead of clipped.
fn hdr_to_sdr(nits: f64) -> f64 {
    const KNEE: f64 = 0.8;
    let l = nits / 203.0;
    if l <= KNEE {
        l
    } else {
        KNEE + (1.0 - KNEE) * (1.0 - (-(l - KNEE) / (1.0 - KNEE)).exp())
    }
}

/// An ICC profile for pixels described by CICP code points (an AVIF `colr nclx` box or the AV1
/// sequence header), or `None` when they are sRGB already (BT.709 primaries with an sRGB-like
/// curve, or unspecified). PQ and HLG (HDR) get a curve that maps their display light into SDR
/// range (`hdr_to_sdr`): reference white to near white, highlights rolled off.
pub(crate) fn icc_from_cicp(primaries: u16, transfer: u16) -> Option<Vec<u8>> {
    use lcms2::{CIExyY, CIExyYTRIPLE, ToneCurve};
    let xy = |x: f64, y: f64| CIExyY { x, y, Y: 1.0 };
    let d65 = xy(0.3127, 0.3290);
    // (red, green, blue, white) for the code points that differ from BT.709 (1) / sRGB.
    let (r, g, b, white) = match primaries {
        1 | 2 => ((0.64, 0.33), (0.30, 0.60), (0.15, 0.06), d65),
        5 => ((0.64, 0.33), (0.29, 0.60), (0.15, 0.06), d65),
        6 | 7 => ((0.630, 0.340), (0.310, 0.595), (0.155, 0.070), d65),
        9 => ((0.708, 0.292), (0.170, 0.797), (0.131, 0.046), d65),
        11 => (
            (0.680, 0.320),
            (0.265, 0.690),
            (0.150, 0.060),
            xy(0.314, 0.351),
        ),
        12 => ((0.680, 0.320), (0.265, 0.690), (0.150, 0.060), d65),
        other => {
            log::debug!("CICP primaries {other} treated as BT.709");
            ((0.64, 0.33), (0.30, 0.60), (0.15, 0.06), d65)
        }
    };
    let srgb_like = matches!(transfer, 1 | 2 | 6 | 13 | 14 | 15);
    let srgb_primaries = !matches!(primaries, 5 | 6 | 7 | 9 | 11 | 12);
    if srgb_primaries && srgb_like {
        return None;
    }
    let curve = match transfer {
        4 => ToneCurve::new(2.2),
        5 => ToneCurve::new(2.8),
        8 => ToneCurve::new(1.0),
        // BT.709's inverse OETF.
        1 | 6 | 14 | 15 => ToneCurve::new_parametric(
            4,
            &[1.0 / 0.45, 1.0 / 1.099, 0.099 / 1.099, 1.0 / 4.5, 0.081],
        )
        .ok()?,
        // HDR: to display light, then into SDR range (`hdr_to_sdr`).
        16 | 18 => {
            let n = 4096;
            let table: Vec<f32> = (0..n)
                .map(|i| {
                    let e = f64::from(i) / f64::from(n - 1);
                    let nits = if transfer == 16 {
                        pq_nits(e)
                    } else {
                        hlg_nits(e)
                    };
                    hdr_to_sdr(nits) as f32
                })
                .collect();
            ToneCurve::new_tabulated_float(&table)
        }
        _ => ToneCurve::new_parametric(4, &[2.4, 1.0 / 1.055, 0.055 / 1.055, 1.0 / 12.92, 0.04045])
            .ok()?,
    };
    let triple = CIExyYTRIPLE {
        Red: xy(r.0, r.1),
        Green: xy(g.0, g.1),
        Blue: xy(b.0, b.1),
    };
    Profile::new_rgb(&white, &triple, &[&curve, &curve, &curve])
        .and_then(|p| p.icc())
        .map_err(|e| log::warn!("no profile for CICP {primaries}/{transfer}: {e}"))
        .ok()
}
