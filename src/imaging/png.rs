//! PNG: the header (`IHDR` size, an APNG's frame count, the `iCCP` profile's inflated size
//! bounded), the `eXIf` block read when a request keeps metadata, encoding, and the `eXIf`
//! chunk written into an encoded file. Decoding is the `image` crate's (`via_image`).

use super::error::ImageError;
use super::exif;
use super::meta::MAX_ICC_BYTES;
use super::raster::Raster;
use super::read::{read_u32_be, truncated};
use image::ImageEncoder;

/// IHDR must be the first chunk; an APNG's `acTL` (frame count) must come before IDAT.
pub(crate) fn header(input: &[u8]) -> Result<(u32, u32, u32), ImageError> {
    if read_u32_be(input, 8) != Some(13) || input.get(12..16) != Some(&b"IHDR"[..]) {
        return Err(truncated("PNG"));
    }
    let w = read_u32_be(input, 16).ok_or_else(|| truncated("PNG"))?;
    let h = read_u32_be(input, 20).ok_or_else(|| truncated("PNG"))?;
    let mut frames = 1;
    let mut pos: usize = 8;
    // Bounded walk: each chunk advances at least 12 bytes and stops at the end of input.
    while let (Some(len), Some(kind)) = (read_u32_be(input, pos), input.get(pos + 4..pos + 8)) {
        if kind == b"IDAT" {
            break;
        }
        if kind == b"acTL" {
            frames = read_u32_be(input, pos + 8).unwrap_or(1).max(1);
            break;
        }
        if kind == b"iCCP" {
            let end = (pos + 8).saturating_add(len as usize).min(input.len());
            iccp_within_limit(input.get(pos + 8..end).unwrap_or(&[]))?;
        }
        match pos
            .checked_add(12)
            .and_then(|p| p.checked_add(len as usize))
        {
            Some(next) if next <= input.len() => pos = next,
            _ => break,
        }
    }
    Ok((w, h, frames))
}

/// An `iCCP` chunk's profile must inflate to at most `MAX_ICC_BYTES`: inflated here into a
/// small scratch window and counted, so a compressed profile that expands to gigabytes costs
/// at most that much CPU and no memory. A corrupt stream is left to the decoder (which ignores
/// a bad `iCCP`, as browsers do).
fn iccp_within_limit(data: &[u8]) -> Result<(), ImageError> {
    // Keyword (1-79 bytes), NUL, compression method, then the zlib stream.
    let Some(nul) = data.iter().take(80).position(|&b| b == 0) else {
        return Ok(());
    };
    let mut stream = data.get(nul + 2..).unwrap_or(&[]);
    let mut inflate = flate2::Decompress::new(true);
    let mut window = [0u8; 16 * 1024];
    loop {
        let before = (inflate.total_in(), inflate.total_out());
        let status = inflate.decompress(stream, &mut window, flate2::FlushDecompress::Finish);
        if inflate.total_out() > MAX_ICC_BYTES as u64 {
            return Err(ImageError::TooLarge(format!(
                "PNG iCCP inflates past {} bytes",
                MAX_ICC_BYTES
            )));
        }
        let used = (inflate.total_in() - before.0) as usize;
        stream = stream.get(used..).unwrap_or(&[]);
        let stalled = (inflate.total_in(), inflate.total_out()) == before;
        match status {
            Ok(flate2::Status::StreamEnd) | Err(_) => return Ok(()),
            Ok(_) if stalled => return Ok(()),
            Ok(_) => {}
        }
    }
}

/// The EXIF TIFF block of a PNG's `eXIf` chunk, walking chunks up to the first `IDAT` (the
/// PNG spec puts `eXIf` before it). PNG sources are not walked at probe time, so the
/// metadata step asks for this lazily, only when a request keeps metadata.
pub(crate) fn read_exif(input: &[u8]) -> Option<Vec<u8>> {
    let mut pos = 8usize; // after the signature
    loop {
        let size = input.get(pos..pos.checked_add(4)?)?;
        let size = u32::from_be_bytes([size[0], size[1], size[2], size[3]]) as usize;
        let kind = input.get(pos + 4..pos + 8)?;
        let start = pos + 8;
        let data = input.get(start..start.checked_add(size)?)?;
        match kind {
            b"eXIf" => return exif::copy_bounded(data),
            b"IDAT" | b"IEND" => return None,
            _ => {}
        }
        // Length, type, data, CRC.
        pos = start.checked_add(size)?.checked_add(4)?;
    }
}

/// The `image` crate's PNG encoder at its fast (fdeflate) level: PNG output is for alpha and
/// graphics, where encode time matters more than the last few percent of size.
pub(crate) fn encode(img: &Raster) -> Result<Vec<u8>, ImageError> {
    let raw = img.data.len();
    let mut out = Vec::with_capacity(raw / 2 + 1024);
    let color = if img.has_alpha() {
        image::ExtendedColorType::Rgba8
    } else {
        image::ExtendedColorType::Rgb8
    };
    image::codecs::png::PngEncoder::new_with_quality(
        &mut out,
        image::codecs::png::CompressionType::Fast,
        image::codecs::png::FilterType::Adaptive,
    )
    .write_image(&img.data, img.width, img.height, color)
    .map_err(|e| ImageError::Encode(format!("PNG: {e}")))?;
    Ok(out)
}

/// PNG: an `eXIf` chunk right after `IHDR` (it must precede `IDAT`), with its CRC.
pub(crate) fn write_exif(png: &[u8], tiff: &[u8]) -> Result<Vec<u8>, String> {
    const SIG: &[u8] = b"\x89PNG\r\n\x1a\n";
    if png.get(0..8) != Some(SIG) || png.get(12..16) != Some(&b"IHDR"[..]) {
        return Err("not a PNG starting with IHDR".into());
    }
    // Signature, then IHDR: length, type, 13 bytes of data, CRC.
    let at = 8 + 4 + 4 + 13 + 4;
    if png.len() < at {
        return Err("truncated PNG".into());
    }
    let len = u32::try_from(tiff.len()).map_err(|_| "EXIF too large")?;
    let mut chunk = Vec::with_capacity(tiff.len() + 12);
    chunk.extend_from_slice(&len.to_be_bytes());
    chunk.extend_from_slice(b"eXIf");
    chunk.extend_from_slice(tiff);
    let crc = crc32(&chunk[4..]);
    chunk.extend_from_slice(&crc.to_be_bytes());
    let mut out = Vec::with_capacity(png.len() + chunk.len());
    out.extend_from_slice(&png[..at]);
    out.extend_from_slice(&chunk);
    out.extend_from_slice(&png[at..]);
    Ok(out)
}

/// CRC-32 (IEEE, reflected, as PNG defines it), bit by bit: the chunk is at most a few KB,
/// so a table would buy nothing measurable.
pub(crate) fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            let mask = (crc & 1).wrapping_neg();
            crc = (crc >> 1) ^ (0xEDB8_8320 & mask);
        }
    }
    !crc
}
