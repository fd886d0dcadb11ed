//! Metadata writing for `metadata=copyright|keep` (the `metadata` step): an EXIF block cut down
//! from the source's and spliced into the already encoded output. Owns the small TIFF
//! reader/patcher/writer for that block and the container surgery (JPEG APP1, WebP VP8X + `EXIF`,
//! PNG `eXIf`). Must not touch pixels or re-encode, must never copy the ICC profile (the pixels are
//! sRGB by now, which is what every decoder assumes without one) and must never fail a request: a
//! malformed source block or an output we cannot patch just means the image goes out without
//! metadata.
//!
//! AVIF output is always stripped: EXIF in AVIF is a separate item in the ISOBMFF `meta` box
//! (`iinf`, `iloc`, `iref`), which means rebuilding boxes whose offsets point into `mdat`,
//! far more surgery than this step should do on encoder output.

const TAG_ORIENTATION: u16 = 0x0112;
const TAG_ARTIST: u16 = 0x013B;
const TAG_COPYRIGHT: u16 = 0x8298;
const TAG_EXIF_IFD: u16 = 0x8769;
const TAG_GPS_IFD: u16 = 0x8825;
const TAG_INTEROP_IFD: u16 = 0xA005;
const TAG_COLOR_SPACE: u16 = 0xA001;
const TAG_PIXEL_X: u16 = 0xA002;
const TAG_PIXEL_Y: u16 = 0xA003;
const TYPE_ASCII: u16 = 2;
const TYPE_SHORT: u16 = 3;
const TYPE_LONG: u16 = 4;
/// An IFD with more entries than this is not something a camera or editor wrote.
const MAX_IFD_ENTRIES: usize = 1024;
/// A JPEG segment length is a u16 that counts itself (2) and our `Exif\0\0` prefix (6).
pub(super) const MAX_JPEG_EXIF: usize = u16::MAX as usize - 2 - 6;
/// VP8X flag bits (WebP container spec).
const VP8X_ALPHA: u8 = 0x10;
const VP8X_EXIF: u8 = 0x08;

/// Read-only view of a TIFF block; every read is bounds-checked and returns `None` past the end.
#[derive(Clone, Copy)]
struct Tiff<'a> {
    data: &'a [u8],
    little: bool,
}

/// One IFD entry: where it sits and where its value bytes are (inline or out of line).
#[derive(Debug, Clone, Copy)]
struct Entry {
    /// Offset of the 12-byte entry itself.
    at: usize,
    tag: u16,
    kind: u16,
    /// Offset and length of the value bytes; length 0 for types we do not know.
    value_at: usize,
    value_len: usize,
}

impl<'a> Tiff<'a> {
    fn new(data: &'a [u8]) -> Option<Self> {
        let little = match data.get(0..2)? {
            b"II" => true,
            b"MM" => false,
            _ => return None,
        };
        let t = Tiff { data, little };
        (t.u16_at(2)? == 42).then_some(t)
    }

    fn u16_at(&self, at: usize) -> Option<u16> {
        let b = self.data.get(at..at.checked_add(2)?)?;
        let b = [b[0], b[1]];
        Some(if self.little {
            u16::from_le_bytes(b)
        } else {
            u16::from_be_bytes(b)
        })
    }

    fn u32_at(&self, at: usize) -> Option<u32> {
        let b = self.data.get(at..at.checked_add(4)?)?;
        let b = [b[0], b[1], b[2], b[3]];
        Some(if self.little {
            u32::from_le_bytes(b)
        } else {
            u32::from_be_bytes(b)
        })
    }

    fn offset_at(&self, at: usize) -> Option<usize> {
        usize::try_from(self.u32_at(at)?).ok()
    }

    /// The entries of the IFD at `at`, or `None` if the IFD or any value it points to lies
    /// (even partly) outside the block: a half-valid block is treated as no block at all.
    fn ifd(&self, at: usize) -> Option<Vec<Entry>> {
        let count = usize::from(self.u16_at(at)?);
        if count > MAX_IFD_ENTRIES {
            return None;
        }
        // The next-IFD pointer must be there too: we may rewrite it.
        self.u32_at(at.checked_add(2 + count * 12)?)?;
        let mut entries = Vec::with_capacity(count);
        for i in 0..count {
            let e = at + 2 + i * 12;
            let (tag, kind) = (self.u16_at(e)?, self.u16_at(e + 2)?);
            let n = usize::try_from(self.u32_at(e + 4)?).ok()?;
            // Unknown types: readers skip them, and so do we (nothing to bounds-check).
            let len = type_size(kind).map_or(Some(0), |s| s.checked_mul(n))?;
            let value_at = if len <= 4 {
                e + 8
            } else {
                self.offset_at(e + 8)?
            };
            self.data.get(value_at..value_at.checked_add(len)?)?;
            entries.push(Entry {
                at: e,
                tag,
                kind,
                value_at,
                value_len: len,
            });
        }
        Some(entries)
    }

    fn value(&self, e: &Entry) -> &'a [u8] {
        // In range: checked when the entry was read.
        self.data
            .get(e.value_at..e.value_at + e.value_len)
            .unwrap_or(&[])
    }
}

/// Bytes per value of a TIFF field type; `None` for types TIFF 6 / EXIF do not define.
fn type_size(kind: u16) -> Option<usize> {
    match kind {
        1 | 2 | 6 | 7 => Some(1),
        3 | 8 => Some(2),
        4 | 9 | 11 | 13 => Some(4),
        5 | 10 | 12 => Some(8),
        _ => None,
    }
}

/// IFD0 as (tag, type, value bytes): the reader the tests use to check what we wrote.
#[cfg(test)]
pub(super) fn ifd0_fields(tiff: &[u8]) -> Option<Vec<(u16, u16, Vec<u8>)>> {
    let t = Tiff::new(tiff)?;
    fields_at(&t, t.offset_at(4)?)
}

/// The entries of the IFD at `offset` as (tag, type, value bytes); for tests.
#[cfg(test)]
fn fields_at(t: &Tiff<'_>, offset: usize) -> Option<Vec<(u16, u16, Vec<u8>)>> {
    let entries = t.ifd(offset)?;
    Some(
        entries
            .iter()
            .map(|e| (e.tag, e.kind, t.value(e).to_vec()))
            .collect(),
    )
}

/// The IFD that an IFD0 pointer entry (`TAG_EXIF_IFD`, `TAG_GPS_IFD`) names, as
/// `ifd0_fields` gives IFD0; for tests.
#[cfg(test)]
pub(super) fn sub_ifd_fields(tiff: &[u8], pointer: u16) -> Option<Vec<(u16, u16, Vec<u8>)>> {
    let t = Tiff::new(tiff)?;
    let ifd0 = t.ifd(t.offset_at(4)?)?;
    let e = ifd0.iter().find(|e| e.tag == pointer)?;
    fields_at(&t, t.offset_at(e.value_at)?)
}

/// Offset of the IFD after IFD0 (0 = none); for tests.
#[cfg(test)]
pub(super) fn next_ifd(tiff: &[u8]) -> Option<u32> {
    let t = Tiff::new(tiff)?;
    let at = t.offset_at(4)?;
    let count = usize::from(t.u16_at(at)?);
    t.u32_at(at.checked_add(2 + count * 12)?)
}

/// `metadata=copyright`: a fresh block holding only IFD0 Artist and Copyright (ASCII), the
/// fields Cloudflare keeps. `None` if the source has neither or is malformed.
pub(super) fn copyright_exif(source: &[u8]) -> Option<Vec<u8>> {
    let t = Tiff::new(source)?;
    let entries = t.ifd(t.offset_at(4)?)?;
    let mut fields: Vec<(u16, Vec<u8>)> = Vec::new();
    for tag in [TAG_ARTIST, TAG_COPYRIGHT] {
        let Some(e) = entries
            .iter()
            .find(|e| e.tag == tag && e.kind == TYPE_ASCII)
        else {
            continue;
        };
        // Keep inner NULs (Copyright may hold "photographer\0editor"), normalise the end.
        let mut text = t.value(e).to_vec();
        while text.last() == Some(&0) {
            text.pop();
        }
        if !text.is_empty() {
            text.push(0);
            fields.push((tag, text));
        }
    }
    if fields.is_empty() {
        return None;
    }
    build_ascii_tiff(&fields)
}

/// A little-endian TIFF with one IFD of ASCII entries (already sorted by tag, as TIFF wants);
/// values longer than 4 bytes follow the IFD, each starting on a word (even) boundary.
fn build_ascii_tiff(fields: &[(u16, Vec<u8>)]) -> Option<Vec<u8>> {
    let count = u16::try_from(fields.len()).ok()?;
    let mut out = b"II*\0".to_vec();
    out.extend_from_slice(&8u32.to_le_bytes());
    out.extend_from_slice(&count.to_le_bytes());
    let mut tail: Vec<u8> = Vec::new();
    let tail_start = 8 + 2 + 12 * fields.len() + 4;
    for (tag, value) in fields {
        out.extend_from_slice(&tag.to_le_bytes());
        out.extend_from_slice(&TYPE_ASCII.to_le_bytes());
        out.extend_from_slice(&u32::try_from(value.len()).ok()?.to_le_bytes());
        if value.len() <= 4 {
            let mut inline = [0u8; 4];
            inline[..value.len()].copy_from_slice(value);
            out.extend_from_slice(&inline);
        } else {
            let at = u32::try_from(tail_start + tail.len()).ok()?;
            out.extend_from_slice(&at.to_le_bytes());
            tail.extend_from_slice(value);
            if tail.len() % 2 == 1 {
                tail.push(0);
            }
        }
    }
    out.extend_from_slice(&0u32.to_le_bytes()); // no next IFD
    out.extend_from_slice(&tail);
    Some(out)
}

/// `metadata=keep`: the source block, copied and patched in place so it describes the
/// pixels we send: Orientation 1 (they are upright already; a kept 6 would make viewers
/// rotate twice), ColorSpace sRGB (they were converted), PixelX/YDimension the output size.
/// The IFD1 link is cut: its thumbnail shows the uncropped, unrotated original. `None` when
/// IFD0 or the Exif/GPS/Interop IFDs it points to are malformed.
pub(super) fn keep_exif(source: &[u8], width: u32, height: u32) -> Option<Vec<u8>> {
    let t = Tiff::new(source)?;
    let ifd0_at = t.offset_at(4)?;
    let ifd0 = t.ifd(ifd0_at)?;
    let mut patches: Vec<(Entry, u16, u32)> = Vec::new();
    let mut sub_ifds = Vec::new();
    for e in &ifd0 {
        match e.tag {
            TAG_ORIENTATION => patches.push((*e, TYPE_SHORT, 1)),
            TAG_EXIF_IFD | TAG_GPS_IFD => sub_ifds.push((e.tag, t.offset_at(e.value_at)?)),
            _ => {}
        }
    }
    let mut exif_ifd = Vec::new();
    for (tag, at) in sub_ifds {
        let entries = t.ifd(at)?;
        if tag == TAG_EXIF_IFD {
            exif_ifd = entries;
        }
    }
    for e in &exif_ifd {
        match e.tag {
            TAG_COLOR_SPACE => patches.push((*e, TYPE_SHORT, 1)),
            TAG_PIXEL_X if width > 0 => patches.push((*e, TYPE_LONG, width)),
            TAG_PIXEL_Y if height > 0 => patches.push((*e, TYPE_LONG, height)),
            TAG_INTEROP_IFD => {
                t.ifd(t.offset_at(e.value_at)?)?;
            }
            _ => {}
        }
    }
    let mut out = source.to_vec();
    let mut w = Writer {
        data: &mut out,
        little: t.little,
    };
    for (e, kind, value) in patches {
        w.set_single(&e, kind, value)?;
    }
    w.put_u32(ifd0_at + 2 + ifd0.len() * 12, 0)?;
    // IFDs may overlap in a hostile block, so a patch could land in another IFD: never emit
    // a block our own reader would refuse.
    let patched = Tiff::new(&out)?;
    patched.ifd(ifd0_at)?;
    // Nor one that still says the pixels are turned (a patch of an overlapping IFD can land
    // on IFD0's Orientation): a viewer would turn the upright pixels again.
    if !matches!(super::orient::exif_orientation(&out), None | Some(1)) {
        return None;
    }
    Some(out)
}

/// In-place writes into a copy of a block whose layout `Tiff` has already checked.
struct Writer<'a> {
    data: &'a mut [u8],
    little: bool,
}

impl Writer<'_> {
    fn put(&mut self, at: usize, bytes: &[u8]) -> Option<()> {
        self.data
            .get_mut(at..at.checked_add(bytes.len())?)?
            .copy_from_slice(bytes);
        Some(())
    }

    fn put_u16(&mut self, at: usize, v: u16) -> Option<()> {
        let b = if self.little {
            v.to_le_bytes()
        } else {
            v.to_be_bytes()
        };
        self.put(at, &b)
    }

    fn put_u32(&mut self, at: usize, v: u32) -> Option<()> {
        let b = if self.little {
            v.to_le_bytes()
        } else {
            v.to_be_bytes()
        };
        self.put(at, &b)
    }

    /// Rewrite an entry as one inline SHORT or LONG. Entries are fixed-size, so this always
    /// fits; an old out-of-line value is simply left unreferenced.
    fn set_single(&mut self, e: &Entry, kind: u16, value: u32) -> Option<()> {
        self.put_u16(e.at + 2, kind)?;
        self.put_u32(e.at + 4, 1)?;
        match u16::try_from(value) {
            Ok(short) if kind == TYPE_SHORT => {
                self.put_u16(e.at + 8, short)?;
                self.put_u16(e.at + 10, 0)
            }
            _ => {
                self.put_u16(e.at + 2, TYPE_LONG)?;
                self.put_u32(e.at + 8, value)
            }
        }
    }
}

/// JPEG: an APP1 `Exif\0\0` segment after SOI (after a leading JFIF APP0 if there is one, so
/// the file stays a valid JFIF as well). Blocks over the 64 KB segment limit are refused.
pub(super) fn inject_jpeg(jpeg: &[u8], tiff: &[u8]) -> Result<Vec<u8>, String> {
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

/// WebP: simple `VP8 `/`VP8L` files become extended (`VP8X` first, EXIF flag set, canvas
/// size read from the bitstream); an existing `VP8X` just gets the flag. The `EXIF` chunk
/// (raw TIFF, no `Exif\0\0` prefix) goes after the image data and before any `XMP `, the
/// order the container spec asks for; the RIFF size is recomputed.
pub(super) fn inject_webp(webp: &[u8], tiff: &[u8]) -> Result<Vec<u8>, String> {
    if webp.get(0..4) != Some(&b"RIFF"[..]) || webp.get(8..12) != Some(&b"WEBP"[..]) {
        return Err("not a RIFF WebP".into());
    }
    let chunks = riff_chunks(webp).ok_or("malformed RIFF chunks")?;
    let first = chunks.first().ok_or("no chunks")?;
    if chunks.iter().any(|c| c.0 == *b"EXIF") {
        return Ok(webp.to_vec());
    }
    let chunk_len = u32::try_from(tiff.len()).map_err(|_| "EXIF too large")?;
    let mut exif_chunk = Vec::with_capacity(tiff.len() + 9);
    exif_chunk.extend_from_slice(b"EXIF");
    exif_chunk.extend_from_slice(&chunk_len.to_le_bytes());
    exif_chunk.extend_from_slice(tiff);
    if tiff.len() % 2 == 1 {
        exif_chunk.push(0);
    }
    let insert_at = chunks
        .iter()
        .find(|c| c.0 == *b"XMP ")
        .map_or(webp.len(), |c| c.1);
    let mut out = Vec::with_capacity(webp.len() + exif_chunk.len() + 18);
    out.extend_from_slice(&webp[..12]);
    match &first.0 {
        b"VP8X" => {
            out.extend_from_slice(&webp[12..insert_at]);
            // Flags byte right after the VP8X chunk header; present since the chunk parsed.
            let flags = out.get_mut(20).ok_or("short VP8X")?;
            *flags |= VP8X_EXIF;
        }
        b"VP8 " | b"VP8L" => {
            let data = webp.get(first.1 + 8..first.2).ok_or("short chunk")?;
            let (w, h, alpha) = if first.0 == *b"VP8 " {
                vp8_size(data)
            } else {
                vp8l_size(data)
            }
            .ok_or("unreadable bitstream header")?;
            out.extend_from_slice(b"VP8X");
            out.extend_from_slice(&10u32.to_le_bytes());
            out.push(VP8X_EXIF | if alpha { VP8X_ALPHA } else { 0 });
            out.extend_from_slice(&[0, 0, 0]);
            out.extend_from_slice(&(w - 1).to_le_bytes()[..3]);
            out.extend_from_slice(&(h - 1).to_le_bytes()[..3]);
            out.extend_from_slice(&webp[12..insert_at]);
        }
        other => return Err(format!("unexpected first chunk {other:?}")),
    }
    out.extend_from_slice(&exif_chunk);
    out.extend_from_slice(&webp[insert_at..]);
    let riff = u32::try_from(out.len() - 8).map_err(|_| "file too large for RIFF")?;
    out[4..8].copy_from_slice(&riff.to_le_bytes());
    Ok(out)
}

/// (fourcc, chunk start, end of data) for each chunk; `None` unless the chunks tile the file.
fn riff_chunks(webp: &[u8]) -> Option<Vec<([u8; 4], usize, usize)>> {
    let mut chunks = Vec::new();
    let mut pos = 12usize;
    while pos < webp.len() {
        let head = webp.get(pos..pos.checked_add(8)?)?;
        let kind = [head[0], head[1], head[2], head[3]];
        let size = u32::from_le_bytes([head[4], head[5], head[6], head[7]]) as usize;
        let end = (pos + 8).checked_add(size)?;
        chunks.push((kind, pos, end));
        // Odd sizes are padded; the padded chunk must still fit (we append after it).
        pos = end.checked_add(size & 1)?;
        if pos > webp.len() {
            return None;
        }
    }
    Some(chunks)
}

/// Lossy VP8 key frame: 3-byte frame tag, start code 9d 01 2a, then 14-bit width and height.
fn vp8_size(data: &[u8]) -> Option<(u32, u32, bool)> {
    if data.get(3..6)? != [0x9D, 0x01, 0x2A] {
        return None;
    }
    let w = u32::from(u16::from_le_bytes([*data.get(6)?, *data.get(7)?]) & 0x3FFF);
    let h = u32::from(u16::from_le_bytes([*data.get(8)?, *data.get(9)?]) & 0x3FFF);
    (w > 0 && h > 0).then_some((w, h, false))
}

/// Lossless VP8L: signature 0x2f, then width-1 and height-1 (14 bits each) and the alpha bit.
fn vp8l_size(data: &[u8]) -> Option<(u32, u32, bool)> {
    if *data.first()? != 0x2F {
        return None;
    }
    let b = data.get(1..5)?;
    let bits = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
    Some((
        (bits & 0x3FFF) + 1,
        ((bits >> 14) & 0x3FFF) + 1,
        (bits >> 28) & 1 == 1,
    ))
}

/// PNG: an `eXIf` chunk right after `IHDR` (it must precede `IDAT`), with its CRC.
pub(super) fn inject_png(png: &[u8], tiff: &[u8]) -> Result<Vec<u8>, String> {
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
pub(super) fn crc32(bytes: &[u8]) -> u32 {
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

#[cfg(test)]
mod tests {
    use super::super::{metadata, orient};

    /// Found by the `metadata` fuzz target: an Exif IFD that overlaps IFD0 took a patch into
    /// IFD0's Orientation entry, and the kept block said 8 again over upright pixels.
    #[test]
    fn r_fuzz_kept_exif_never_says_rotated() {
        let source = include_bytes!(
            "../../fuzz/corpus/metadata/crash-b42d36840638a8cb34316e8a484dd61408e616b9"
        );
        let mut blocks = vec![source.to_vec()];
        blocks.extend(metadata::jpeg(source).exif);
        for block in blocks {
            if let Some(kept) = super::keep_exif(&block, 640, 480) {
                let o = orient::exif_orientation(&kept);
                assert!(matches!(o, None | Some(1)), "{o:?}");
            }
        }
    }
}
