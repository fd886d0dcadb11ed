//! Container metadata walkers: JPEG marker segments and WebP RIFF chunks, read for the EXIF
//! orientation, the ICC profile, the Adobe APP14 marker and the animation frame count. Owns
//! only reading; it never fails (a malformed segment just yields "no metadata") and never
//! reads past the input: every offset goes through `slice::get`.

use super::orient;

/// What the pixel steps need to know about a source beyond its pixels.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct SourceMeta {
    /// EXIF Orientation 1..=8; 0 when absent (treated as 1).
    pub orientation: u8,
    /// Embedded ICC profile, reassembled.
    pub icc: Option<Vec<u8>>,
    /// JPEG APP14 "Adobe" marker present: CMYK samples are stored inverted.
    pub adobe: bool,
    /// ANMF chunks in a WebP (0 for a still image).
    pub anim_frames: u32,
    /// The ICC profile was already applied (CMYK is converted while decoding).
    pub icc_applied: bool,
    /// The raw TIFF structure of the first EXIF block (without the `Exif\0\0` prefix), kept
    /// only for `metadata=copyright|keep`; `None` when absent or over `MAX_EXIF_BYTES`.
    pub exif: Option<Vec<u8>>,
    /// JPEG: bytes of the full-image coefficient buffer its decoder keeps whatever the scale
    /// (`Footprint::coefficient_bytes`); 0 for a single-scan sequential JPEG.
    pub coefficient_bytes: u64,
}

/// Largest source EXIF we keep a copy of. A JPEG APP1 cannot carry more than 64 KB anyway;
/// WebP and PNG chunks could be huge, and a hostile one must not be copied per request.
pub(super) const MAX_EXIF_BYTES: usize = 256 * 1024;

/// A bounded owned copy of an EXIF TIFF block; blocks that do not even start like TIFF are
/// not worth keeping.
pub(super) fn keep_exif(tiff: &[u8]) -> Option<Vec<u8>> {
    let tiff_like = matches!(tiff.get(0..2), Some(b"II") | Some(b"MM"));
    if !tiff_like {
        return None;
    }
    if tiff.len() > MAX_EXIF_BYTES {
        log::debug!(
            "source EXIF of {} bytes is over the limit; not kept",
            tiff.len()
        );
        return None;
    }
    Some(tiff.to_vec())
}

/// Largest ICC profile we accept (print profiles with large CLUTs reach 2-3 MB). Over it the
/// source is `TooLarge`: a PNG's `iCCP` is compressed, so without this bound a few kilobytes
/// would inflate to as much as the decoder's whole allocation budget, before a pixel.
pub(super) const MAX_ICC_BYTES: usize = 8 << 20;

/// `TooLarge` when a profile is over [`MAX_ICC_BYTES`].
pub(super) fn check_icc(icc: Option<&[u8]>) -> Result<(), super::PipelineError> {
    match icc {
        Some(p) if p.len() > MAX_ICC_BYTES => Err(super::PipelineError::TooLarge(format!(
            "ICC profile of {} bytes, limit {MAX_ICC_BYTES}",
            p.len()
        ))),
        _ => Ok(()),
    }
}

const ICC_SIG: &[u8] = b"ICC_PROFILE\0";

/// Walk JPEG segments from SOI up to the first SOS. APP2 ICC chunks are reassembled in
/// sequence order and dropped unless the set is complete and consistent. The frame header and
/// the first scan header tell whether the decoder buffers the whole image's coefficients.
pub(super) fn jpeg(input: &[u8]) -> SourceMeta {
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
                        meta.orientation = orient::exif_orientation(tiff).unwrap_or(0);
                    }
                    // The first block is the one viewers read; later ones are not kept.
                    if meta.exif.is_none() {
                        meta.exif = keep_exif(tiff);
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

/// Walk RIFF chunks after the "WEBP" tag: ICCP, EXIF and the ANMF frame count.
pub(super) fn webp(input: &[u8]) -> SourceMeta {
    let mut meta = SourceMeta::default();
    let mut pos = 12usize;
    while let (Some(kind), Some(size)) = (input.get(pos..pos + 4), input.get(pos + 4..pos + 8)) {
        let size = u32::from_le_bytes([size[0], size[1], size[2], size[3]]) as usize;
        let start = pos + 8;
        let data = input.get(start..start.saturating_add(size)).unwrap_or(&[]);
        match kind {
            b"ICCP" if !data.is_empty() => meta.icc = Some(data.to_vec()),
            b"EXIF" => {
                // Some writers keep the JPEG-style "Exif\0\0" prefix inside the chunk.
                let tiff = data.strip_prefix(b"Exif\0\0").unwrap_or(data);
                meta.orientation = orient::exif_orientation(tiff).unwrap_or(0);
                meta.exif = keep_exif(tiff);
            }
            b"ANMF" => meta.anim_frames = meta.anim_frames.saturating_add(1),
            _ => {}
        }
        // Chunks are padded to an even size.
        match start
            .checked_add(size)
            .and_then(|e| e.checked_add(size & 1))
        {
            Some(next) if next > pos => pos = next,
            _ => break,
        }
    }
    meta
}

/// The EXIF TIFF block of a PNG's `eXIf` chunk, walking chunks up to the first `IDAT` (the
/// PNG spec puts `eXIf` before it). PNG sources are not walked at probe time, so the
/// metadata step asks for this lazily, only when a request keeps metadata.
pub(super) fn png_exif(input: &[u8]) -> Option<Vec<u8>> {
    let mut pos = 8usize; // after the signature
    loop {
        let size = input.get(pos..pos.checked_add(4)?)?;
        let size = u32::from_be_bytes([size[0], size[1], size[2], size[3]]) as usize;
        let kind = input.get(pos + 4..pos + 8)?;
        let start = pos + 8;
        let data = input.get(start..start.checked_add(size)?)?;
        match kind {
            b"eXIf" => return keep_exif(data),
            b"IDAT" | b"IEND" => return None,
            _ => {}
        }
        // Length, type, data, CRC.
        pos = start.checked_add(size)?.checked_add(4)?;
    }
}
