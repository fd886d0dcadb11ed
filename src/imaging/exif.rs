//! EXIF, the one TIFF reader and writer: a bounds-checked view of a TIFF block (`Tiff`), the
//! Orientation tag read as viewers read it (`orientation`), a bounded copy of a source's block
//! (`copy_bounded`), and the two blocks `metadata=copyright|keep` write (`copyright_only`,
//! `patch_for_upright`). Every read goes through `slice::get`; a malformed block means "no
//! metadata", never an error or a panic. Where the block goes in a file is each codec's
//! `write_exif`.

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

/// More IFD0 entries than this are not looked through for Orientation (an EXIF block nobody
/// wrote on purpose); unlike [`MAX_IFD_ENTRIES`], such a block is not refused, only cut short.
const MAX_ORIENTATION_ENTRIES: usize = 4096;

/// Orientation (1..=8) from a TIFF structure (the body of an EXIF block, or a TIFF file):
/// IFD0, tag 0x0112, type SHORT. `None` when absent, malformed or out of range. Lenient, as
/// viewers are: the first Orientation entry counts, the count field and the rest of the IFD
/// are not checked, so a block cut after the tag still gives it.
pub(crate) fn orientation(tiff: &[u8]) -> Option<u8> {
    let t = Tiff::new(tiff)?;
    let ifd = t.offset_at(4)?;
    let entries = usize::from(t.u16_at(ifd)?).min(MAX_ORIENTATION_ENTRIES);
    for i in 0..entries {
        let entry = ifd.checked_add(2 + i * 12)?;
        if t.u16_at(entry)? != TAG_ORIENTATION {
            continue;
        }
        // Type 3 (SHORT), count 1: the value sits left-aligned in the 4-byte value field.
        if t.u16_at(entry + 2)? != TYPE_SHORT {
            return None;
        }
        let value = t.u16_at(entry + 8)?;
        return (1..=8).contains(&value).then_some(value as u8);
    }
    None
}

/// Largest source EXIF we keep a copy of. A JPEG APP1 cannot carry more than 64 KB anyway;
/// WebP and PNG chunks could be huge, and a hostile one must not be copied per request.
pub(super) const MAX_EXIF_BYTES: usize = 256 * 1024;

/// A bounded owned copy of an EXIF TIFF block; blocks that do not even start like TIFF are
/// not worth keeping.
pub(crate) fn copy_bounded(tiff: &[u8]) -> Option<Vec<u8>> {
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
    pub(crate) fn new(data: &'a [u8]) -> Option<Self> {
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
pub(crate) fn ifd0_fields(tiff: &[u8]) -> Option<Vec<(u16, u16, Vec<u8>)>> {
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
pub(crate) fn sub_ifd_fields(tiff: &[u8], pointer: u16) -> Option<Vec<(u16, u16, Vec<u8>)>> {
    let t = Tiff::new(tiff)?;
    let ifd0 = t.ifd(t.offset_at(4)?)?;
    let e = ifd0.iter().find(|e| e.tag == pointer)?;
    fields_at(&t, t.offset_at(e.value_at)?)
}

/// Offset of the IFD after IFD0 (0 = none); for tests.
#[cfg(test)]
pub(crate) fn next_ifd(tiff: &[u8]) -> Option<u32> {
    let t = Tiff::new(tiff)?;
    let at = t.offset_at(4)?;
    let count = usize::from(t.u16_at(at)?);
    t.u32_at(at.checked_add(2 + count * 12)?)
}

/// `metadata=copyright`: a fresh block holding only IFD0 Artist and Copyright (ASCII), the
/// fields Cloudflare keeps. `None` if the source has neither or is malformed.
pub(crate) fn copyright_only(source: &[u8]) -> Option<Vec<u8>> {
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
pub(crate) fn patch_for_upright(source: &[u8], width: u32, height: u32) -> Option<Vec<u8>> {
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
    if !matches!(orientation(&out), None | Some(1)) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::imaging::jpeg;

    /// Found by the `metadata` fuzz target: an Exif IFD that overlaps IFD0 took a patch into
    /// IFD0's Orientation entry, and the kept block said 8 again over upright pixels.
    #[test]
    fn r_fuzz_kept_exif_never_says_rotated() {
        let source = include_bytes!(
            "../../fuzz/corpus/metadata/crash-b42d36840638a8cb34316e8a484dd61408e616b9"
        );
        let mut blocks = vec![source.to_vec()];
        blocks.extend(jpeg::read_meta(source).exif);
        for block in blocks {
            if let Some(kept) = patch_for_upright(&block, 640, 480) {
                let o = orientation(&kept);
                assert!(matches!(o, None | Some(1)), "{o:?}");
            }
        }
    }
}
