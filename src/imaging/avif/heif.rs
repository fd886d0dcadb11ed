//! The HEIF container (ISO/IEC 23008-12 on ISO-BMFF) as AVIF uses it: which item is the
//! picture, where its coded bytes are, its properties (size, colour, rotation, mirror, clean
//! aperture), its alpha item and, for grid pictures, its tiles; for an image sequence with no
//! still picture, its first frame as if it were the primary item. Owns only reading the boxes:
//! it never decodes pixels and never allocates in proportion to a size the file claims, only
//! to bytes that are actually in the input, so a hostile header costs nothing.
//!
//! Every read goes through `slice::get`; a malformed box is an `Undecodable` error, a
//! well-formed container we cannot show (HEVC items, a sequence with no AV1 video track, item
//! data in another file) is `Unsupported`.

use crate::imaging::error::ImageError;
use std::borrow::Cow;
use std::ops::Range;

/// The `auxC` types that mark an auxiliary item as an alpha plane (AVIF and HEIF spellings).
const ALPHA_URNS: [&[u8]; 2] = [
    b"urn:mpeg:mpegB:cicp:systems:auxiliary:alpha",
    b"urn:mpeg:hevc:2015:auxid:1",
];

/// Largest grid we accept: tiles are decoded one by one, but each costs a decoder set-up.
const MAX_GRID_TILES: usize = 4096;

/// Most items (and `iloc`/`ipma` entries) a file may describe: a colour grid and an alpha grid
/// of the largest size, and some metadata. Items are looked up by scanning, so without a bound
/// a few megabytes of entries would cost billions of comparisons.
const MAX_ITEMS: usize = 2 * MAX_GRID_TILES + 64;

/// Most extents all `iloc` entries may list together. An extent can take no bytes at all in
/// `iloc` (offset and length sizes of 0: "the whole file"), so the count is what bounds the
/// memory the list takes, not the box's size.
const MAX_EXTENTS: usize = 4 * MAX_ITEMS;

/// Colour information from an `nclx` `colr` property (CICP code points).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Nclx {
    pub primaries: u16,
    pub transfer: u16,
    pub matrix: u16,
    pub full_range: bool,
}

/// A clean aperture (`clap`) reduced to a whole-pixel crop of the decoded picture.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Crop {
    pub x: u32,
    pub y: u32,
    pub width: u32,
    pub height: u32,
}

/// The properties of one item that decide how it is shown.
#[derive(Debug, Clone, Default)]
pub(crate) struct ItemProps {
    /// `ispe`: the coded picture's size.
    pub size: Option<(u32, u32)>,
    pub nclx: Option<Nclx>,
    pub icc: Option<Vec<u8>>,
    /// `irot`: anticlockwise quarter turns, 0..=3.
    pub rotation: u8,
    /// `imir`: 0 mirrors about the vertical axis (left-right), 1 about the horizontal one.
    pub mirror: Option<u8>,
    pub crop: Option<Crop>,
    /// `auxC` marks the item as an alpha plane.
    pub is_alpha: bool,
}

impl ItemProps {
    /// The shown orientation as an EXIF Orientation value: HEIF turns first, then mirrors.
    pub fn exif_orientation(&self) -> u8 {
        match (self.rotation, self.mirror) {
            (0, None) => 1,
            (0, Some(0)) | (2, Some(1)) => 2,
            (2, None) => 3,
            (0, Some(_)) | (2, Some(_)) => 4,
            (1, Some(1)) | (3, Some(0)) => 5,
            (3, None) => 6,
            (1, Some(0)) | (3, Some(_)) => 7,
            _ => 8, // (1, None)
        }
    }
}

/// A `grid` item: tiles laid out in rows, cropped to the output size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Grid {
    pub rows: u32,
    pub columns: u32,
    pub width: u32,
    pub height: u32,
    /// Tile item ids, row by row.
    pub tiles: Vec<u32>,
}

/// What an image item is made of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Coded {
    /// One AV1 picture.
    Av1,
    Grid(Grid),
}

#[derive(Debug, Clone)]
struct Item {
    id: u32,
    kind: [u8; 4],
    /// From `iloc`: construction method (0 file, 1 `idat`) and extents.
    method: u8,
    extents: Vec<Range<usize>>,
    /// Property indexes (1-based into `ipco`).
    props: Vec<u16>,
}

#[derive(Debug, Clone)]
struct Reference {
    kind: [u8; 4],
    from: u32,
    to: Vec<u32>,
}

#[derive(Debug, Clone)]
enum Property {
    Ispe(u32, u32),
    Nclx(Nclx),
    Icc(Range<usize>),
    Irot(u8),
    Imir(u8),
    Clap([u32; 8]),
    AuxC(Range<usize>),
    Other,
}

/// A parsed AVIF/HEIF file, borrowing the input.
#[derive(Debug)]
pub(crate) struct Heif<'a> {
    file: &'a [u8],
    primary: u32,
    items: Vec<Item>,
    refs: Vec<Reference>,
    props: Vec<Property>,
    idat: Option<Range<usize>>,
}

fn corrupt(what: &str) -> ImageError {
    ImageError::Undecodable(format!("AVIF container: {what}"))
}

fn too_many(what: &str) -> ImageError {
    ImageError::TooLarge(format!("AVIF container: more {what} than we accept"))
}

/// A cursor over one box's payload; every read is checked.
struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn new(data: &'a [u8]) -> Self {
        Reader { data, pos: 0 }
    }

    fn bytes(&mut self, n: usize) -> Result<&'a [u8], ImageError> {
        let end = self.pos.checked_add(n).ok_or_else(|| corrupt("overflow"))?;
        let s = self
            .data
            .get(self.pos..end)
            .ok_or_else(|| corrupt("box shorter than its fields"))?;
        self.pos = end;
        Ok(s)
    }

    fn u8(&mut self) -> Result<u8, ImageError> {
        Ok(self.bytes(1)?[0])
    }

    fn u16(&mut self) -> Result<u16, ImageError> {
        let b = self.bytes(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    fn u32(&mut self) -> Result<u32, ImageError> {
        let b = self.bytes(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// An unsigned big-endian field of 0, 4 or 8 bytes (`iloc`'s sized fields).
    fn sized(&mut self, size: u8) -> Result<u64, ImageError> {
        match size {
            0 => Ok(0),
            4 => Ok(u64::from(self.u32()?)),
            8 => {
                let b = self.bytes(8)?;
                Ok(u64::from_be_bytes(b.try_into().expect("8 bytes")))
            }
            _ => Err(corrupt("iloc field size not 0, 4 or 8")),
        }
    }

    /// An item id: 16 bits in version 0 boxes, 32 in later ones.
    fn id(&mut self, wide: bool) -> Result<u32, ImageError> {
        if wide {
            self.u32()
        } else {
            self.u16().map(u32::from)
        }
    }

    /// A full box's version and flags.
    fn full(&mut self) -> Result<(u8, u32), ImageError> {
        let v = self.u32()?;
        Ok(((v >> 24) as u8, v & 0x00FF_FFFF))
    }

    fn rest(&self) -> usize {
        self.data.len() - self.pos
    }
}

/// One box: its type, and where its payload sits in `data` (offsets relative to `data`).
struct BoxRef {
    kind: [u8; 4],
    payload: Range<usize>,
}

/// The boxes laid end to end in `data`. A box running past the end is an error; a size of 0
/// means "to the end".
fn boxes(data: &[u8]) -> Result<Vec<BoxRef>, ImageError> {
    let mut out = Vec::new();
    let mut pos = 0usize;
    while pos < data.len() {
        let mut r = Reader::new(&data[pos..]);
        let size32 = r.u32()?;
        let kind: [u8; 4] = r.bytes(4)?.try_into().expect("4 bytes");
        let (header, size) = match size32 {
            0 => (8, (data.len() - pos) as u64),
            1 => (16, r.sized(8)?),
            n => (8, u64::from(n)),
        };
        let size = usize::try_from(size).map_err(|_| corrupt("box size"))?;
        if size < header || size > data.len() - pos {
            return Err(corrupt("box size outside its parent"));
        }
        out.push(BoxRef {
            kind,
            payload: pos + header..pos + size,
        });
        pos += size;
    }
    Ok(out)
}

/// The boxes inside `range` of `file`, their payloads as ranges of `file`.
fn children(file: &[u8], range: Range<usize>) -> Result<Vec<BoxRef>, ImageError> {
    let data = file
        .get(range.clone())
        .ok_or_else(|| corrupt("box outside the file"))?;
    Ok(boxes(data)?
        .into_iter()
        .map(|b| BoxRef {
            kind: b.kind,
            payload: range.start + b.payload.start..range.start + b.payload.end,
        })
        .collect())
}

/// The payload (a range of `file`) of the first `kind` box inside `range`.
fn child(
    file: &[u8],
    range: Range<usize>,
    kind: &[u8; 4],
) -> Result<Option<Range<usize>>, ImageError> {
    Ok(children(file, range)?
        .into_iter()
        .find(|b| &b.kind == kind)
        .map(|b| b.payload))
}

/// Where a track's first sample is: the first chunk's offset (`stco` or `co64`) and the first
/// sample's size (`stsz`), inside the file.
fn first_sample(file: &[u8], stbl: Range<usize>) -> Result<Range<usize>, ImageError> {
    let table = |kind: &[u8; 4]| -> Result<Option<Reader<'_>>, ImageError> {
        Ok(child(file, stbl.clone(), kind)?.map(|p| Reader::new(&file[p])))
    };
    let size = {
        let mut r = table(b"stsz")?.ok_or_else(|| corrupt("track without stsz"))?;
        r.full()?;
        let (fixed, count) = (r.u32()?, r.u32()?);
        if count == 0 {
            return Err(corrupt("track without samples"));
        }
        if fixed != 0 {
            fixed
        } else {
            r.u32()?
        }
    };
    let offset = if let Some(mut r) = table(b"stco")? {
        r.full()?;
        if r.u32()? == 0 {
            return Err(corrupt("track without chunks"));
        }
        u64::from(r.u32()?)
    } else {
        let mut r = table(b"co64")?.ok_or_else(|| corrupt("track without chunk offsets"))?;
        r.full()?;
        if r.u32()? == 0 {
            return Err(corrupt("track without chunks"));
        }
        r.sized(8)?
    };
    let start = usize::try_from(offset).map_err(|_| corrupt("sample offset"))?;
    let end = start
        .checked_add(size as usize)
        .filter(|&end| end <= file.len() && size > 0)
        .ok_or_else(|| corrupt("first sample outside the file"))?;
    Ok(start..end)
}

/// The brands of an `ftyp` box: major then compatible.
fn brands(payload: &[u8]) -> impl Iterator<Item = &[u8]> {
    let major = payload.get(..4).into_iter();
    let compatible = payload.get(8..).unwrap_or(&[]).chunks_exact(4);
    major.chain(compatible)
}

/// True when an ISO-BMFF file (starting with `ftyp`) says it is AVIF: brand `avif` (still) or
/// `avis` (sequence) among its major or compatible brands.
pub(crate) fn is_avif(input: &[u8]) -> bool {
    has_brand(input, &[b"avif", b"avis"])
}

/// True when a HEIF file's primary item is AV1 (one picture, or a grid of AV1 tiles), whatever
/// its brands say.
pub(crate) fn holds_av1(input: &[u8]) -> bool {
    Heif::parse(input).is_ok_and(|heif| heif.coded(heif.primary()).is_ok())
}

/// True when an ISO-BMFF file starts with an `ftyp` box naming one of `wanted` among its major
/// or compatible brands.
pub(crate) fn has_brand(input: &[u8], wanted: &[&[u8; 4]]) -> bool {
    let Some(size) = input
        .get(..4)
        .map(|b| u32::from_be_bytes(b.try_into().expect("4")))
    else {
        return false;
    };
    if input.get(4..8) != Some(&b"ftyp"[..]) {
        return false;
    }
    let end = (size as usize).min(input.len());
    let payload = input.get(8..end).unwrap_or(&[]);
    brands(payload).any(|b| wanted.iter().any(|w| b == &w[..]))
}

impl<'a> Heif<'a> {
    /// Read the `meta` box of `file`.
    pub fn parse(file: &'a [u8]) -> Result<Heif<'a>, ImageError> {
        let top = boxes(file)?;
        let Some(meta) = top.iter().find(|b| &b.kind == b"meta") else {
            return match top.iter().find(|b| &b.kind == b"moov") {
                Some(moov) => Heif::first_frame(file, moov.payload.clone()),
                None => Err(corrupt("no meta box")),
            };
        };
        let meta_data = &file[meta.payload.clone()];
        let mut r = Reader::new(meta_data);
        r.full()?;
        let base = meta.payload.start + r.pos;
        let mut heif = Heif {
            file,
            primary: 0,
            items: Vec::new(),
            refs: Vec::new(),
            props: Vec::new(),
            idat: None,
        };
        let mut locations = Vec::new();
        let mut have_primary = false;
        for child in boxes(&meta_data[r.pos..])? {
            let payload = &file[base + child.payload.start..base + child.payload.end];
            match &child.kind {
                b"hdlr" => {
                    let mut h = Reader::new(payload);
                    h.full()?;
                    h.u32()?; // pre_defined
                    if h.bytes(4)? != b"pict" {
                        return Err(ImageError::Unsupported(
                            "HEIF file whose handler is not a picture".into(),
                        ));
                    }
                }
                b"pitm" => {
                    let mut p = Reader::new(payload);
                    let (version, _) = p.full()?;
                    heif.primary = p.id(version > 0)?;
                    have_primary = true;
                }
                b"iloc" => locations = parse_iloc(payload)?,
                b"iinf" => heif.items = parse_iinf(payload)?,
                b"iref" => heif.refs = parse_iref(payload)?,
                b"iprp" => {
                    let offset = base + child.payload.start;
                    heif.parse_iprp(payload, offset)?;
                }
                b"idat" => heif.idat = Some(base + child.payload.start..base + child.payload.end),
                _ => {}
            }
        }
        if !have_primary {
            return Err(corrupt("no primary item (pitm)"));
        }
        for (id, method, extents) in locations {
            if let Some(item) = heif.items.iter_mut().find(|i| i.id == id) {
                item.method = method;
                item.extents = extents;
            }
        }
        heif.item(heif.primary)?;
        Ok(heif)
    }

    /// An image sequence without a still picture: its first frame, as if it were the primary
    /// item. The first video track coded in AV1 gives the frame (the first sample of the first
    /// chunk: `stco`/`co64` and `stsz`), its size (the sample entry's) and its colour (the
    /// sample entry's `colr` boxes). Alpha tracks are not read.
    fn first_frame(file: &'a [u8], moov: Range<usize>) -> Result<Heif<'a>, ImageError> {
        let unsupported =
            || ImageError::Unsupported("AVIF sequence without an AV1 video track".into());
        let mut props = Vec::new();
        let mut item_props = Vec::new();
        let mut found = None;
        for trak in children(file, moov.clone())?
            .into_iter()
            .filter(|b| &b.kind == b"trak")
        {
            let Some(mdia) = child(file, trak.payload.clone(), b"mdia")? else {
                continue;
            };
            let handler = child(file, mdia.clone(), b"hdlr")?
                .and_then(|h| file.get(h.start + 8..h.start + 12));
            if !matches!(handler, Some(b"pict" | b"vide")) {
                continue;
            }
            let Some(minf) = child(file, mdia, b"minf")? else {
                continue;
            };
            let Some(stbl) = child(file, minf, b"stbl")? else {
                continue;
            };
            let Some(stsd) = child(file, stbl.clone(), b"stsd")? else {
                continue;
            };
            // stsd: version/flags, entry count, then the entries; the first must be `av01`.
            let entries = stsd.start + 8..stsd.end;
            let Some(entry) = children(file, entries)?.into_iter().next() else {
                continue;
            };
            if &entry.kind != b"av01" {
                continue;
            }
            // A VisualSampleEntry: 78 bytes of fields (width and height at 24..28), then boxes.
            let fields = &file[entry.payload.clone()];
            let mut r = Reader::new(fields.get(24..28).ok_or_else(|| corrupt("av01 entry"))?);
            let (width, height) = (u32::from(r.u16()?), u32::from(r.u16()?));
            props.push(Property::Ispe(width, height));
            item_props.push(props.len() as u16);
            if entry.payload.len() > 78 {
                let boxes = entry.payload.start + 78..entry.payload.end;
                for b in children(file, boxes)? {
                    if &b.kind == b"colr" {
                        let abs = b.payload.clone();
                        props.push(parse_property(&b.kind, &file[abs.clone()], abs)?);
                        item_props.push(props.len() as u16);
                    }
                }
            }
            found = Some(first_sample(file, stbl)?);
            break;
        }
        let sample = found.ok_or_else(unsupported)?;
        Ok(Heif {
            file,
            primary: 1,
            items: vec![Item {
                id: 1,
                kind: *b"av01",
                method: 0,
                extents: vec![sample],
                props: item_props,
            }],
            refs: Vec::new(),
            props,
            idat: None,
        })
    }

    /// `ipco` (the property list) and `ipma` (which item has which).
    fn parse_iprp(&mut self, payload: &[u8], offset: usize) -> Result<(), ImageError> {
        for child in boxes(payload)? {
            let data = &payload[child.payload.clone()];
            match &child.kind {
                b"ipco" => {
                    for prop in boxes(data)? {
                        let abs = offset + child.payload.start + prop.payload.start
                            ..offset + child.payload.start + prop.payload.end;
                        self.props
                            .push(parse_property(&prop.kind, &self.file[abs.clone()], abs)?);
                    }
                }
                b"ipma" => {
                    let mut r = Reader::new(data);
                    let (version, flags) = r.full()?;
                    let count = r.u32()?;
                    if count as usize > MAX_ITEMS {
                        return Err(too_many("ipma entries"));
                    }
                    for _ in 0..count {
                        let id = r.id(version >= 1)?;
                        let n = r.u8()?;
                        let mut props = Vec::with_capacity(usize::from(n));
                        for _ in 0..n {
                            // The top bit says "essential"; the rest is the 1-based index.
                            let index = if flags & 1 == 1 {
                                r.u16()? & 0x7FFF
                            } else {
                                u16::from(r.u8()? & 0x7F)
                            };
                            props.push(index);
                        }
                        if let Some(item) = self.items.iter_mut().find(|i| i.id == id) {
                            item.props.extend(props);
                        }
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }

    fn item(&self, id: u32) -> Result<&Item, ImageError> {
        self.items
            .iter()
            .find(|i| i.id == id)
            .ok_or_else(|| corrupt(&format!("item {id} is not described")))
    }

    /// The primary (shown) item's id.
    pub fn primary(&self) -> u32 {
        self.primary
    }

    /// What the item is made of; HEVC and other codings are `Unsupported`.
    pub fn coded(&self, id: u32) -> Result<Coded, ImageError> {
        let item = self.item(id)?;
        match &item.kind {
            b"av01" => Ok(Coded::Av1),
            b"grid" => self.grid(id).map(Coded::Grid),
            other => Err(ImageError::Unsupported(format!(
                "HEIF item of type {:?} (only AV1 is decoded)",
                String::from_utf8_lossy(other)
            ))),
        }
    }

    fn grid(&self, id: u32) -> Result<Grid, ImageError> {
        let data = self.item_data(id)?;
        let mut r = Reader::new(&data);
        let (_version, flags) = (r.u8()?, r.u8()?);
        let rows = u32::from(r.u8()?) + 1;
        let columns = u32::from(r.u8()?) + 1;
        let (width, height) = if flags & 1 == 1 {
            (r.u32()?, r.u32()?)
        } else {
            (u32::from(r.u16()?), u32::from(r.u16()?))
        };
        let tiles = self
            .refs
            .iter()
            .find(|r| &r.kind == b"dimg" && r.from == id)
            .map(|r| r.to.clone())
            .unwrap_or_default();
        if tiles.len() != (rows * columns) as usize || tiles.len() > MAX_GRID_TILES {
            return Err(corrupt(&format!(
                "grid of {rows}x{columns} has {} tiles",
                tiles.len()
            )));
        }
        for &tile in &tiles {
            if self.item(tile)?.kind != *b"av01" {
                return Err(ImageError::Unsupported(
                    "grid tiles that are not AV1".into(),
                ));
            }
        }
        Ok(Grid {
            rows,
            columns,
            width,
            height,
            tiles,
        })
    }

    /// The item's coded bytes: its extents, joined when there are several.
    pub fn item_data(&self, id: u32) -> Result<Cow<'a, [u8]>, ImageError> {
        let item = self.item(id)?;
        let source: &'a [u8] = match item.method {
            0 => self.file,
            1 => {
                let range = self.idat.clone().ok_or_else(|| corrupt("idat missing"))?;
                &self.file[range]
            }
            _ => {
                return Err(ImageError::Unsupported(
                    "item data built from other items".into(),
                ))
            }
        };
        let mut slices = Vec::with_capacity(item.extents.len());
        let mut total = 0usize;
        for extent in &item.extents {
            // A length of 0 means "to the end".
            let range = if extent.end == extent.start {
                extent.start..source.len()
            } else {
                extent.clone()
            };
            let slice = source
                .get(range)
                .ok_or_else(|| corrupt(&format!("item {id} data outside the file")))?;
            // Extents may point at the same bytes again and again; joined, an item can never
            // need more than the file holds (the trap: 60,000 zero-byte extents that each
            // mean "the whole file" would join to gigabytes).
            total = total.saturating_add(slice.len());
            if total > source.len() {
                return Err(corrupt(&format!("item {id} data larger than the file")));
            }
            slices.push(slice);
        }
        match slices.as_slice() {
            [] => Err(corrupt(&format!("item {id} has no data"))),
            [one] => Ok(Cow::Borrowed(one)),
            many => Ok(Cow::Owned(many.concat())),
        }
    }

    /// The properties of `id` that affect how it is shown.
    pub fn props(&self, id: u32) -> Result<ItemProps, ImageError> {
        let item = self.item(id)?;
        let mut out = ItemProps::default();
        let mut clap = None;
        for &index in &item.props {
            let Some(prop) = usize::from(index)
                .checked_sub(1)
                .and_then(|i| self.props.get(i))
            else {
                continue;
            };
            match prop {
                Property::Ispe(w, h) => out.size = Some((*w, *h)),
                Property::Nclx(n) => out.nclx = Some(*n),
                Property::Icc(range) => out.icc = Some(self.file[range.clone()].to_vec()),
                Property::Irot(a) => out.rotation = *a,
                Property::Imir(axis) => out.mirror = Some(*axis),
                Property::Clap(v) => clap = Some(*v),
                Property::AuxC(range) => {
                    let urn = &self.file[range.clone()];
                    let urn = urn.split(|&b| b == 0).next().unwrap_or(&[]);
                    out.is_alpha = ALPHA_URNS.contains(&urn);
                }
                Property::Other => {}
            }
        }
        // After the loop: `clap` may be listed before `ispe`.
        out.crop = clap.and_then(|v| clap_crop(&v, out.size));
        Ok(out)
    }

    /// The alpha plane of `id`: an auxiliary item referring to it with an alpha `auxC`.
    pub fn alpha_of(&self, id: u32) -> Option<u32> {
        self.refs
            .iter()
            .filter(|r| &r.kind == b"auxl" && r.to.contains(&id))
            .map(|r| r.from)
            .find(|&aux| self.props(aux).is_ok_and(|p| p.is_alpha))
    }

    /// True when `color`'s pixels are premultiplied by `alpha` (a `prem` reference).
    pub fn premultiplied(&self, color: u32, alpha: u32) -> bool {
        self.refs
            .iter()
            .any(|r| &r.kind == b"prem" && r.from == color && r.to.contains(&alpha))
    }

    /// The TIFF structure of the item's `Exif` metadata item, if any.
    pub fn exif_of(&self, id: u32) -> Option<&'a [u8]> {
        let exif = self
            .refs
            .iter()
            .filter(|r| &r.kind == b"cdsc" && r.to.contains(&id))
            .map(|r| r.from)
            .find(|&from| self.item(from).is_ok_and(|i| &i.kind == b"Exif"))?;
        let Ok(Cow::Borrowed(data)) = self.item_data(exif) else {
            return None;
        };
        // A 32-bit offset to the TIFF header, counted after the offset field.
        let skip = u32::from_be_bytes(data.get(..4)?.try_into().ok()?) as usize;
        data.get(4usize.checked_add(skip)?..)
    }
}

/// `iloc`: (item id, construction method, extents) for every item.
#[allow(clippy::type_complexity)]
fn parse_iloc(payload: &[u8]) -> Result<Vec<(u32, u8, Vec<Range<usize>>)>, ImageError> {
    let mut r = Reader::new(payload);
    let (version, _) = r.full()?;
    if version > 2 {
        return Err(corrupt("iloc version"));
    }
    let sizes = r.u16()?;
    let offset_size = (sizes >> 12) as u8;
    let length_size = ((sizes >> 8) & 0xF) as u8;
    let base_offset_size = ((sizes >> 4) & 0xF) as u8;
    let index_size = if version >= 1 { (sizes & 0xF) as u8 } else { 0 };
    let count = if version < 2 {
        u32::from(r.u16()?)
    } else {
        r.u32()?
    };
    if count as usize > MAX_ITEMS {
        return Err(too_many("iloc entries"));
    }
    let mut out = Vec::new();
    let mut all_extents = 0usize;
    for _ in 0..count {
        let id = r.id(version == 2)?;
        let method = if version >= 1 {
            (r.u16()? & 0xF) as u8
        } else {
            0
        };
        let data_ref = r.u16()?;
        let base = r.sized(base_offset_size)?;
        let extent_count = r.u16()?;
        all_extents += usize::from(extent_count);
        if all_extents > MAX_EXTENTS {
            return Err(too_many("item extents"));
        }
        let mut extents = Vec::new();
        for _ in 0..extent_count {
            r.sized(index_size)?;
            let offset = r.sized(offset_size)?;
            let length = r.sized(length_size)?;
            let start = base
                .checked_add(offset)
                .and_then(|s| usize::try_from(s).ok())
                .ok_or_else(|| corrupt("iloc offset"))?;
            let end = u64::try_from(start)
                .ok()
                .and_then(|s| s.checked_add(length))
                .and_then(|e| usize::try_from(e).ok())
                .ok_or_else(|| corrupt("iloc length"))?;
            extents.push(start..end);
        }
        if data_ref != 0 {
            return Err(ImageError::Unsupported(
                "AVIF item data in another file".into(),
            ));
        }
        out.push((id, method, extents));
    }
    Ok(out)
}

/// `iinf`: the items and their types (only `infe` versions 2 and 3 carry a type).
fn parse_iinf(payload: &[u8]) -> Result<Vec<Item>, ImageError> {
    let mut r = Reader::new(payload);
    let (version, _) = r.full()?;
    if version == 0 {
        r.u16()?;
    } else {
        r.u32()?;
    }
    let mut items = Vec::new();
    for b in boxes(&payload[r.pos..])? {
        if &b.kind != b"infe" {
            continue;
        }
        let mut e = Reader::new(&payload[r.pos + b.payload.start..r.pos + b.payload.end]);
        let (v, _) = e.full()?;
        if v < 2 {
            continue;
        }
        let id = e.id(v >= 3)?;
        e.u16()?; // protection index
        let kind: [u8; 4] = e.bytes(4)?.try_into().expect("4 bytes");
        if items.len() == MAX_ITEMS {
            return Err(too_many("items"));
        }
        items.push(Item {
            id,
            kind,
            method: 0,
            extents: Vec::new(),
            props: Vec::new(),
        });
    }
    Ok(items)
}

/// `iref`: typed references from one item to others.
fn parse_iref(payload: &[u8]) -> Result<Vec<Reference>, ImageError> {
    let mut r = Reader::new(payload);
    let (version, _) = r.full()?;
    let mut refs = Vec::new();
    for b in boxes(&payload[r.pos..])? {
        let mut e = Reader::new(&payload[r.pos + b.payload.start..r.pos + b.payload.end]);
        let from = e.id(version >= 1)?;
        let count = e.u16()?;
        let mut to = Vec::with_capacity(usize::from(count).min(e.rest() / 2));
        for _ in 0..count {
            to.push(e.id(version >= 1)?);
        }
        refs.push(Reference {
            kind: b.kind,
            from,
            to,
        });
    }
    Ok(refs)
}

/// One property box of `ipco`; `abs` is its payload's place in the file.
fn parse_property(
    kind: &[u8; 4],
    payload: &[u8],
    abs: Range<usize>,
) -> Result<Property, ImageError> {
    let mut r = Reader::new(payload);
    Ok(match kind {
        b"ispe" => {
            r.full()?;
            Property::Ispe(r.u32()?, r.u32()?)
        }
        b"colr" => match r.bytes(4)? {
            b"nclx" => {
                let (primaries, transfer, matrix) = (r.u16()?, r.u16()?, r.u16()?);
                let full_range = r.u8()? & 0x80 != 0;
                Property::Nclx(Nclx {
                    primaries,
                    transfer,
                    matrix,
                    full_range,
                })
            }
            b"prof" | b"rICC" => Property::Icc(abs.start + 4..abs.end),
            _ => Property::Other,
        },
        b"irot" => Property::Irot(r.u8()? & 3),
        b"imir" => Property::Imir(r.u8()? & 1),
        b"clap" => {
            let mut v = [0u32; 8];
            for x in &mut v {
                *x = r.u32()?;
            }
            Property::Clap(v)
        }
        b"auxC" => {
            r.full()?;
            Property::AuxC(abs.start + 4..abs.end)
        }
        _ => Property::Other,
    })
}

/// A clean aperture as a whole-pixel crop inside `size`; `None` (show it all) when the box
/// does not land on whole pixels or does not fit, as the spec leaves such files to the reader.
fn clap_crop(v: &[u32; 8], size: Option<(u32, u32)>) -> Option<Crop> {
    let (w, h) = size?;
    let frac = |n: u32, d: u32| -> Option<i64> {
        (d != 0 && n.is_multiple_of(d)).then(|| i64::from(n / d))
    };
    // The offsets are signed; centre-relative, in units of the fraction.
    let sfrac =
        |n: u32, d: u32| -> Option<f64> { (d != 0).then(|| f64::from(n as i32) / f64::from(d)) };
    let (cw, ch) = (frac(v[0], v[1])?, frac(v[2], v[3])?);
    let (ox, oy) = (sfrac(v[4], v[5])?, sfrac(v[6], v[7])?);
    let x = (f64::from(w) - cw as f64) / 2.0 + ox;
    let y = (f64::from(h) - ch as f64) / 2.0 + oy;
    let whole = |f: f64| (f.fract() == 0.0 && f >= 0.0).then_some(f as i64);
    let (x, y) = (whole(x)?, whole(y)?);
    let fits = cw > 0 && ch > 0 && x + cw <= i64::from(w) && y + ch <= i64::from(h);
    fits.then_some(Crop {
        x: x as u32,
        y: y as u32,
        width: cw as u32,
        height: ch as u32,
    })
}

#[cfg(test)]
pub(crate) mod testing {
    //! A small HEIF writer for tests: any items (data in `mdat` or `idat`, in one extent or
    //! two), their properties and references. It makes the files no encoder here writes
    //! (turned, mirrored, cropped, gridded, broken) to drive the reader through each path.

    /// A box: size, type, payload.
    pub fn bx(kind: &[u8; 4], payload: &[u8]) -> Vec<u8> {
        let mut out = ((payload.len() + 8) as u32).to_be_bytes().to_vec();
        out.extend_from_slice(kind);
        out.extend_from_slice(payload);
        out
    }

    /// A full box with `version`, flags 0.
    pub fn full(kind: &[u8; 4], version: u8, payload: &[u8]) -> Vec<u8> {
        let mut p = vec![version, 0, 0, 0];
        p.extend_from_slice(payload);
        bx(kind, &p)
    }

    pub fn ispe(w: u32, h: u32) -> Vec<u8> {
        full(b"ispe", 0, &[w.to_be_bytes(), h.to_be_bytes()].concat())
    }

    pub fn nclx(primaries: u16, transfer: u16, matrix: u16, full_range: bool) -> Vec<u8> {
        let mut p = b"nclx".to_vec();
        for v in [primaries, transfer, matrix] {
            p.extend_from_slice(&v.to_be_bytes());
        }
        p.push(if full_range { 0x80 } else { 0 });
        bx(b"colr", &p)
    }

    pub fn alpha_aux() -> Vec<u8> {
        full(b"auxC", 0, b"urn:mpeg:mpegB:cicp:systems:auxiliary:alpha\0")
    }

    /// One item of the file.
    #[derive(Clone, Default)]
    pub struct TestItem {
        pub id: u16,
        pub kind: [u8; 4],
        pub data: Vec<u8>,
        /// Stored in `idat` (construction method 1) instead of `mdat`.
        pub in_idat: bool,
        /// Stored as two extents.
        pub split: bool,
        /// Property boxes, associated in this order.
        pub props: Vec<Vec<u8>>,
    }

    impl TestItem {
        pub fn av1(id: u16, data: &[u8], props: Vec<Vec<u8>>) -> TestItem {
            TestItem {
                id,
                kind: *b"av01",
                data: data.to_vec(),
                props,
                ..TestItem::default()
            }
        }
    }

    /// A typed reference: kind, from, to.
    pub type TestRef = ([u8; 4], u16, Vec<u16>);

    /// An AVIF file of `items`, showing `primary`.
    pub fn file(items: &[TestItem], refs: &[TestRef], primary: u16) -> Vec<u8> {
        let ftyp = bx(b"ftyp", b"avif\0\0\0\0avifmif1miaf");
        let hdlr = full(b"hdlr", 0, b"\0\0\0\0pict\0\0\0\0\0\0\0\0\0\0\0\0\0");
        let pitm = full(b"pitm", 0, &primary.to_be_bytes());
        let mut iinf = (items.len() as u16).to_be_bytes().to_vec();
        for item in items {
            let mut p = item.id.to_be_bytes().to_vec();
            p.extend_from_slice(&[0, 0]);
            p.extend_from_slice(&item.kind);
            p.push(0);
            iinf.extend_from_slice(&full(b"infe", 2, &p));
        }
        let iinf = full(b"iinf", 0, &iinf);
        let iref = (!refs.is_empty()).then(|| {
            let mut p = Vec::new();
            for (kind, from, to) in refs {
                let mut r = from.to_be_bytes().to_vec();
                r.extend_from_slice(&(to.len() as u16).to_be_bytes());
                for t in to {
                    r.extend_from_slice(&t.to_be_bytes());
                }
                p.extend_from_slice(&bx(kind, &r));
            }
            full(b"iref", 0, &p)
        });
        let (mut ipco, mut ipma, mut index) = (Vec::new(), Vec::new(), 0u8);
        ipma.extend_from_slice(&(items.len() as u32).to_be_bytes());
        for item in items {
            ipma.extend_from_slice(&item.id.to_be_bytes());
            ipma.push(item.props.len() as u8);
            for prop in &item.props {
                index += 1;
                ipco.extend_from_slice(prop);
                ipma.push(0x80 | index);
            }
        }
        let iprp = bx(
            b"iprp",
            &[bx(b"ipco", &ipco), full(b"ipma", 0, &ipma)].concat(),
        );
        let idat: Vec<u8> = items
            .iter()
            .filter(|i| i.in_idat)
            .flat_map(|i| i.data.clone())
            .collect();
        // iloc version 1 (construction methods), 4-byte offsets and lengths.
        let iloc = |mdat_start: u32| {
            let mut p = vec![0x44, 0x00];
            p.extend_from_slice(&(items.len() as u16).to_be_bytes());
            let (mut in_mdat, mut in_idat) = (mdat_start, 0u32);
            for item in items {
                p.extend_from_slice(&item.id.to_be_bytes());
                p.extend_from_slice(&u16::from(item.in_idat).to_be_bytes());
                p.extend_from_slice(&[0, 0]);
                let at = if item.in_idat {
                    &mut in_idat
                } else {
                    &mut in_mdat
                };
                let parts: Vec<&[u8]> = if item.split && item.data.len() > 1 {
                    let (a, b) = item.data.split_at(item.data.len() / 2);
                    vec![a, b]
                } else {
                    vec![&item.data]
                };
                p.extend_from_slice(&(parts.len() as u16).to_be_bytes());
                for part in parts {
                    p.extend_from_slice(&at.to_be_bytes());
                    p.extend_from_slice(&(part.len() as u32).to_be_bytes());
                    *at += part.len() as u32;
                }
            }
            full(b"iloc", 1, &p)
        };
        let meta_of = |iloc: Vec<u8>| {
            let mut m = [hdlr.clone(), pitm.clone(), iloc, iinf.clone()].concat();
            if let Some(r) = &iref {
                m.extend_from_slice(r);
            }
            m.extend_from_slice(&iprp);
            if !idat.is_empty() {
                m.extend_from_slice(&bx(b"idat", &idat));
            }
            full(b"meta", 0, &m)
        };
        let mdat_start = (ftyp.len() + meta_of(iloc(0)).len() + 8) as u32;
        let mdat: Vec<u8> = items
            .iter()
            .filter(|i| !i.in_idat)
            .flat_map(|i| i.data.clone())
            .collect();
        [ftyp, meta_of(iloc(mdat_start)), bx(b"mdat", &mdat)].concat()
    }

    /// A grid item's data: rows x columns tiles cropped to `width` x `height`.
    pub fn grid_data(rows: u8, columns: u8, width: u16, height: u16) -> Vec<u8> {
        let mut d = vec![0, 0, rows - 1, columns - 1];
        d.extend_from_slice(&width.to_be_bytes());
        d.extend_from_slice(&height.to_be_bytes());
        d
    }
}

#[cfg(test)]
mod tests {
    use super::testing::*;
    use super::*;

    /// A colour item (split over two extents, turned and mirrored) with an alpha item.
    fn two_items() -> Vec<u8> {
        let color = TestItem {
            split: true,
            ..TestItem::av1(
                1,
                b"colour-bytes",
                vec![ispe(64, 48), bx(b"irot", &[1]), bx(b"imir", &[0])],
            )
        };
        let alpha = TestItem::av1(2, b"alpha", vec![ispe(64, 48), alpha_aux()]);
        file(&[color, alpha], &[(*b"auxl", 2, vec![1])], 1)
    }

    #[test]
    fn reads_items_properties_and_extents_of_a_written_file() {
        let file = two_items();
        assert!(is_avif(&file));
        let heif = Heif::parse(&file).unwrap();
        assert_eq!(heif.primary(), 1);
        assert_eq!(heif.coded(1).unwrap(), Coded::Av1);
        assert_eq!(&*heif.item_data(1).unwrap(), b"colour-bytes");
        let props = heif.props(1).unwrap();
        assert_eq!(props.size, Some((64, 48)));
        assert_eq!((props.rotation, props.mirror), (1, Some(0)));
        assert_eq!(props.exif_orientation(), 7);
        assert!(!props.is_alpha);
        assert_eq!(heif.alpha_of(1), Some(2));
        assert_eq!(&*heif.item_data(2).unwrap(), b"alpha");
        assert!(heif.props(2).unwrap().is_alpha);
        assert!(!heif.premultiplied(1, 2));
    }

    #[test]
    fn grid_items_list_their_tiles_and_read_from_idat() {
        let tiles: Vec<TestItem> = (2..=5)
            .map(|id| TestItem::av1(id, &[id as u8; 3], vec![ispe(32, 32)]))
            .collect();
        let grid = TestItem {
            id: 1,
            kind: *b"grid",
            data: grid_data(2, 2, 60, 50),
            in_idat: true,
            props: vec![ispe(60, 50)],
            ..TestItem::default()
        };
        let items = [vec![grid], tiles].concat();
        let f = file(&items, &[(*b"dimg", 1, vec![2, 3, 4, 5])], 1);
        let heif = Heif::parse(&f).unwrap();
        let Coded::Grid(g) = heif.coded(1).unwrap() else {
            panic!("not a grid")
        };
        assert_eq!((g.rows, g.columns, g.width, g.height), (2, 2, 60, 50));
        assert_eq!(g.tiles, vec![2, 3, 4, 5]);
        assert_eq!(&*heif.item_data(4).unwrap(), &[4, 4, 4]);
        // Three tile references for a 2x2 grid is a broken file.
        let f = file(&items, &[(*b"dimg", 1, vec![2, 3, 4])], 1);
        assert!(matches!(
            Heif::parse(&f).unwrap().coded(1),
            Err(ImageError::Undecodable(_))
        ));
    }

    #[test]
    fn every_turn_and_mirror_maps_to_one_exif_orientation() {
        let mut seen = std::collections::HashSet::new();
        for rotation in 0..4 {
            for mirror in [None, Some(0), Some(1)] {
                let p = ItemProps {
                    rotation,
                    mirror,
                    ..ItemProps::default()
                };
                seen.insert(p.exif_orientation());
            }
        }
        // 12 combinations, 8 distinct results: each of the dihedral group's elements.
        assert_eq!(seen.len(), 8);
    }

    #[test]
    fn clean_aperture_becomes_a_centred_crop_or_nothing() {
        // 40x30 centred in 64x48, no offset.
        let v = [40, 1, 30, 1, 0, 1, 0, 1];
        let crop = clap_crop(&v, Some((64, 48))).unwrap();
        assert_eq!((crop.x, crop.y, crop.width, crop.height), (12, 9, 40, 30));
        // A negative offset of 2 moves it left.
        let v = [40, 1, 30, 1, (-2i32) as u32, 1, 0, 1];
        assert_eq!(clap_crop(&v, Some((64, 48))).unwrap().x, 10);
        // Larger than the picture, or off the pixel grid: shown whole.
        assert_eq!(clap_crop(&[80, 1, 30, 1, 0, 1, 0, 1], Some((64, 48))), None);
        assert_eq!(clap_crop(&[41, 2, 30, 1, 0, 1, 0, 1], Some((64, 48))), None);
        assert_eq!(clap_crop(&[40, 0, 30, 1, 0, 1, 0, 1], Some((64, 48))), None);
    }

    #[test]
    fn malformed_containers_are_errors_not_panics() {
        let good = two_items();
        // Every truncation and every single-byte corruption of the header parses or errors.
        for len in 0..good.len() {
            let _ = Heif::parse(&good[..len]).and_then(|h| h.item_data(h.primary()));
        }
        for i in 0..good.len() - 17 {
            for v in [0x00, 0x01, 0xFF, 0x7F] {
                let mut bad = good.clone();
                bad[i] = v;
                if let Ok(h) = Heif::parse(&bad) {
                    let id = h.primary();
                    let _ = (h.item_data(id), h.props(id), h.coded(id), h.alpha_of(id));
                    let _ = h.exif_of(id);
                }
            }
        }
        // A sequence without a still picture, and a HEVC item, are unsupported.
        let seq = [bx(b"ftyp", b"avis\0\0\0\0avismsf1"), bx(b"moov", b"")].concat();
        assert!(is_avif(&seq));
        assert!(matches!(Heif::parse(&seq), Err(ImageError::Unsupported(_))));
        let at = good.windows(4).position(|w| w == b"av01").unwrap();
        let mut hevc = good.clone();
        hevc[at..at + 4].copy_from_slice(b"hvc1");
        let h = Heif::parse(&hevc).unwrap();
        assert!(matches!(h.coded(1), Err(ImageError::Unsupported(_))));
    }
}
