//! JPEG: the header's size (libjpeg-turbo) and metadata (our own walk of the marker segments:
//! EXIF, ICC in APP2 chunks, the Adobe marker, the coefficient buffer a progressive decode
//! keeps), decoding through libjpeg-turbo at a DCT scale n/8, encoding, and the EXIF segment
//! written into an encoded file.

use super::color;
use super::effort::Effort;
use super::error::ImageError;
use super::exif;
use super::format::{too_large, Probe};
use super::meta::SourceMeta;
use super::raster::{alloc_pixels, Raster};
use super::read::truncated;
use turbojpeg::{Colorspace, Decompressor, Image, PixelFormat, ScalingFactor};

/// libjpeg-turbo reads SOF without touching entropy-coded data.
pub(crate) fn size(input: &[u8]) -> Result<(u32, u32), ImageError> {
    let header = turbojpeg::read_header(input)
        .map_err(|e| ImageError::Undecodable(format!("JPEG header: {e}")))?;
    let w = u32::try_from(header.width).map_err(|_| truncated("JPEG"))?;
    let h = u32::try_from(header.height).map_err(|_| truncated("JPEG"))?;
    Ok((w, h))
}

const ICC_SIG: &[u8] = b"ICC_PROFILE\0";

/// Walk JPEG segments from SOI up to the first SOS. APP2 ICC chunks are reassembled in
/// sequence order and dropped unless the set is complete and consistent. The frame header and
/// the first scan header tell whether the decoder buffers the whole image's coefficients.
pub(crate) fn read_meta(input: &[u8]) -> SourceMeta {
    let mut meta = SourceMeta::default();
    let mut icc_chunks: Vec<(u8, &[u8])> = Vec::new();
    let mut icc_count = 0u8;
    let mut frame: Option<JpegFrame> = None;
    let mut pos = 2usize; // after SOI
    loop {
        // Markers may be preceded by any number of 0xFF fill bytes.
        while input.get(pos) == Some(&0xFF) && input.get(pos + 1) == Some(&0xFF) {
            pos += 1;
        }
        let (Some(&0xFF), Some(&marker)) = (input.get(pos), input.get(pos + 1)) else {
            break;
        };
        pos += 2;
        if marker == 0x01 || (0xD0..=0xD8).contains(&marker) {
            continue; // standalone markers carry no length
        }
        if marker == 0xDA {
            // The first scan: its component count follows the segment length.
            let scan_components = usize::from(input.get(pos + 2).copied().unwrap_or(0));
            meta.coefficient_bytes = frame.map_or(0, |f| coefficient_bytes(&f, scan_components));
            break; // entropy-coded data: no more headers
        }
        if marker == 0xD9 {
            break; // end of image
        }
        let Some(len) = input
            .get(pos..pos + 2)
            .map(|b| usize::from(u16::from_be_bytes([b[0], b[1]])))
        else {
            break;
        };
        let Some(data) = len
            .checked_sub(2)
            .and_then(|n| input.get(pos + 2..pos + 2 + n))
        else {
            break;
        };
        pos += len;
        match marker {
            0xE1 if meta.orientation == 0 || meta.exif.is_none() => {
                if let Some(tiff) = data.strip_prefix(b"Exif\0\0") {
                    if meta.orientation == 0 {
                        meta.orientation = exif::orientation(tiff).unwrap_or(0);
                    }
                    // The first block is the one viewers read; later ones are not kept.
                    if meta.exif.is_none() {
                        meta.exif = exif::copy_bounded(tiff);
                    }
                }
            }
            0xE2 => {
                if let Some([seq, count, chunk @ ..]) = data.strip_prefix(ICC_SIG) {
                    icc_count = if icc_count == 0 { *count } else { icc_count };
                    icc_chunks.push((*seq, chunk));
                }
            }
            0xEE if data.starts_with(b"Adobe") => meta.adobe = true,
            // SOF0-15 but DHT (C4), JPG (C8) and DAC (CC).
            0xC0..=0xCF if !matches!(marker, 0xC4 | 0xC8 | 0xCC) => {
                frame = jpeg_frame(marker, data);
            }
            _ => {}
        }
    }
    meta.icc = assemble_icc(icc_chunks, icc_count);
    meta
}

/// A JPEG frame header: progressive, width, height, each component's sampling factors.
struct JpegFrame {
    progressive: bool,
    width: u64,
    height: u64,
    sampling: Vec<(u64, u64)>,
}

/// The frame header in a SOF segment's `data`; `None` when too short to say the size.
fn jpeg_frame(marker: u8, data: &[u8]) -> Option<JpegFrame> {
    let be16 = |at: usize| {
        data.get(at..at + 2)
            .map(|b| u16::from_be_bytes([b[0], b[1]]))
    };
    let (height, width) = (be16(1)?, be16(3)?);
    let n = usize::from(data.get(5).copied().unwrap_or(0));
    Some(JpegFrame {
        progressive: matches!(marker, 0xC2 | 0xC6 | 0xCA | 0xCE),
        width: u64::from(width),
        height: u64::from(height),
        sampling: (0..n)
            .filter_map(|i| data.get(6 + 3 * i + 1))
            .map(|hv| (u64::from(hv >> 4).max(1), u64::from(hv & 15).max(1)))
            .collect(),
    })
}

/// The full-image coefficient buffer libjpeg keeps for `frame` (2 bytes per coefficient, 64
/// per 8x8 block of each component): for a progressive frame, or a sequential one whose
/// first scan has fewer components than the frame (several scans); none otherwise, since a
/// single-scan sequential JPEG is decoded one MCU row at a time.
fn coefficient_bytes(frame: &JpegFrame, scan_components: usize) -> u64 {
    if !frame.progressive && scan_components >= frame.sampling.len() {
        return 0;
    }
    let hmax = frame.sampling.iter().map(|s| s.0).max().unwrap_or(1);
    let vmax = frame.sampling.iter().map(|s| s.1).max().unwrap_or(1);
    frame
        .sampling
        .iter()
        .map(|&(hs, vs)| {
            let bw = (frame.width * hs).div_ceil(hmax).div_ceil(8);
            let bh = (frame.height * vs).div_ceil(vmax).div_ceil(8);
            bw * bh * 64 * 2
        })
        .sum()
}

/// Chunks must number 1..=count exactly once each; anything else is a broken profile.
fn assemble_icc(mut chunks: Vec<(u8, &[u8])>, count: u8) -> Option<Vec<u8>> {
    if chunks.is_empty() {
        return None;
    }
    chunks.sort_by_key(|c| c.0);
    let in_order = chunks
        .iter()
        .enumerate()
        .all(|(i, c)| usize::from(c.0) == i + 1);
    if !in_order || chunks.len() != usize::from(count) {
        log::warn!("ignoring JPEG ICC profile with inconsistent APP2 chunks");
        return None;
    }
    let total = chunks.iter().map(|c| c.1.len()).sum();
    let mut icc = Vec::with_capacity(total);
    for (_, c) in chunks {
        icc.extend_from_slice(c);
    }
    Some(icc)
}

/// Progressive JPEGs with absurd scan counts are a known CPU-exhaustion trick; real encoders
/// write about ten scans.
const MAX_JPEG_SCANS: u32 = 500;

/// Smallest DCT scale n/8 whose output still covers `min_w` x `min_h`.
pub(crate) fn scale(width: u32, height: u32, min_w: u32, min_h: u32) -> ScalingFactor {
    (1..=8)
        .map(|num| ScalingFactor::new(num, 8))
        .find(|s| {
            s.scale(width as usize) >= min_w as usize && s.scale(height as usize) >= min_h as usize
        })
        .unwrap_or(ScalingFactor::ONE)
}

fn jpeg_err(e: turbojpeg::Error) -> ImageError {
    ImageError::Undecodable(format!("JPEG: {e}"))
}

/// libjpeg-turbo reports recoverable problems ("warnings") as errors after finishing the
/// decode, and the API does not say which kind it was. We let through, by message, the
/// encoder quirks that leave every pixel decoded and that browsers show fine: junk between
/// segments and odd scan parameters. Truncation and corrupt entropy data stay errors.
const TOLERATED_JPEG_WARNINGS: &[&str] = &[
    "extraneous bytes before marker",
    "Invalid SOS parameters for sequential JPEG",
];

fn tolerable(e: &turbojpeg::Error) -> bool {
    matches!(e, turbojpeg::Error::TurboJpegError(msg)
        if TOLERATED_JPEG_WARNINGS.iter().any(|w| msg.contains(w)))
}

/// JPEG through libjpeg-turbo at DCT `scale` (n/8): RGB for YCbCr/RGB/gray sources, CMYK (converted
/// right away by `color::cmyk_to_rgb`) for CMYK/YCCK.
pub(crate) fn decode(
    input: &[u8],
    probe: &Probe,
    meta: &mut SourceMeta,
    scale: ScalingFactor,
) -> Result<Raster, ImageError> {
    let mut d = Decompressor::new().map_err(jpeg_err)?;
    let header = d.read_header(input).map_err(jpeg_err)?;
    // A lossless JPEG has no DCT to scale by.
    let scale = if header.is_lossless {
        ScalingFactor::ONE
    } else {
        scale
    };
    d.set_scaling_factor(scale).map_err(jpeg_err)?;
    d.set_scan_limit(MAX_JPEG_SCANS).map_err(jpeg_err)?;
    let out = header.scaled(scale);
    let cmyk = matches!(header.colorspace, Colorspace::CMYK | Colorspace::YCCK);
    let format = if cmyk {
        PixelFormat::CMYK
    } else {
        PixelFormat::RGB
    };
    let pitch = out
        .width
        .checked_mul(format.size())
        .ok_or_else(|| too_large(probe))?;
    let mut pixels = alloc_pixels(
        pitch
            .checked_mul(out.height)
            .ok_or_else(|| too_large(probe))?,
    )?;
    let image = Image {
        pixels: &mut pixels[..],
        width: out.width,
        pitch,
        height: out.height,
        format,
    };
    match d.decompress(input, image) {
        Ok(()) => {}
        Err(e) if tolerable(&e) => log::debug!("JPEG decoded with warning: {e}"),
        Err(e) => return Err(jpeg_err(e)),
    }
    let (w, h) = (out.width as u32, out.height as u32);
    if cmyk {
        let (rgb, used_icc) = color::cmyk_to_rgb(&pixels, meta.icc.as_deref(), meta.adobe)?;
        // A profile that could not convert CMYK is of no use on the RGB result either.
        meta.icc_applied = true;
        if !used_icc && meta.icc.is_some() {
            log::debug!("CMYK JPEG converted without its ICC profile");
        }
        return Ok(Raster::new(w, h, 3, rgb));
    }
    Ok(Raster::new(w, h, 3, pixels))
}

fn encode_err(e: turbojpeg::Error) -> ImageError {
    ImageError::Encode(format!("JPEG: {e}"))
}

/// libjpeg-turbo, baseline (sequential), optimised Huffman tables (a few % smaller for little
/// CPU; not at `Effort::Fast`), 4:2:0. A grayscale request is written as a one-channel JPEG,
/// a third smaller than gray in YCbCr.
pub(crate) fn encode(
    img: &Raster,
    quality: u8,
    grayscale: bool,
    effort: Effort,
) -> Result<Vec<u8>, ImageError> {
    let mut c = turbojpeg::Compressor::new().map_err(encode_err)?;
    c.set_quality(i32::from(quality)).map_err(encode_err)?;
    let subsamp = if grayscale {
        turbojpeg::Subsamp::Gray
    } else {
        turbojpeg::Subsamp::Sub2x2
    };
    c.set_subsamp(subsamp).map_err(encode_err)?;
    c.set_optimize(effort == Effort::Normal)
        .map_err(encode_err)?;
    // Flatten runs before us, so alpha should be gone; RGBX ignores it if not.
    let format = if img.has_alpha() {
        turbojpeg::PixelFormat::RGBX
    } else {
        turbojpeg::PixelFormat::RGB
    };
    let width = img.width as usize;
    let image = turbojpeg::Image {
        pixels: &img.data[..],
        width,
        pitch: width * usize::from(img.channels),
        height: img.height as usize,
        format,
    };
    // turbojpeg sizes its own buffer from the image; the copy out is the compressed size.
    c.compress_to_vec(image).map_err(encode_err)
}

/// A JPEG segment length is a u16 that counts itself (2) and our `Exif\0\0` prefix (6).
pub(crate) const MAX_JPEG_EXIF: usize = u16::MAX as usize - 2 - 6;

/// JPEG: an APP1 `Exif\0\0` segment after SOI (after a leading JFIF APP0 if there is one, so
/// the file stays a valid JFIF as well). Blocks over the 64 KB segment limit are refused.
pub(crate) fn write_exif(jpeg: &[u8], tiff: &[u8]) -> Result<Vec<u8>, String> {
    if tiff.len() > MAX_JPEG_EXIF {
        return Err(format!(
            "{} bytes of EXIF exceed the 64 KB JPEG segment limit",
            tiff.len()
        ));
    }
    if jpeg.get(0..2) != Some(&[0xFF, 0xD8][..]) {
        return Err("no JPEG SOI marker".into());
    }
    let mut at = 2;
    if jpeg.get(2..4) == Some(&[0xFF, 0xE0][..]) && jpeg.get(6..11) == Some(&b"JFIF\0"[..]) {
        let len = jpeg
            .get(4..6)
            .map(|b| usize::from(u16::from_be_bytes([b[0], b[1]])))
            .unwrap_or(0);
        if 4 + len <= jpeg.len() {
            at = 4 + len;
        }
    }
    let seg_len = u16::try_from(2 + 6 + tiff.len()).map_err(|_| "EXIF too large")?;
    let mut out = Vec::with_capacity(jpeg.len() + tiff.len() + 10);
    out.extend_from_slice(&jpeg[..at]);
    out.extend_from_slice(&[0xFF, 0xE1]);
    out.extend_from_slice(&seg_len.to_be_bytes());
    out.extend_from_slice(b"Exif\0\0");
    out.extend_from_slice(tiff);
    out.extend_from_slice(&jpeg[at..]);
    Ok(out)
}
