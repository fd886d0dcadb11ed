//! HEIC and other HEIF images that are not AVIF (iPhone photos: HEVC tiles in a grid), decoded
//! by libheif through the C shim in `csrc/heif_decode.c`. libheif parses the container, decodes
//! on the calling thread and applies the image's own rotation, mirroring and crop (`irot`,
//! `imir`, `clap`), so the size we report is the displayed one and the EXIF Orientation tag is
//! not applied again (HEIF says the container's transforms win; iPhones write both). The ICC
//! profile, or the `nclx` code points, describe the colours for the colour step; the EXIF
//! block is kept for `metadata=keep`. AVIF stays with our own decoder (`avif`), and so does a
//! HEIF file whose picture is AV1 under other brands (`sniff` sends it there): the shim registers
//! a decoder plugin that refuses every coding but HEVC, so libheif never decodes AV1.

use super::avif::heif::has_brand;
use super::color;
use super::error::ImageError;
use super::exif;
use super::meta::{SourceMeta, MAX_ICC_BYTES};
use super::raster::{alloc_pixels, unpremultiply, Raster};
use std::ffi::{c_char, c_int, c_uint, CStr};
use std::marker::PhantomData;
use std::ptr::NonNull;

/// The brands of HEIF files whose pictures libheif decodes: HEVC stills and their
/// collections (`heic`, `heix`, `heim`, `heis`), HEVC sequences (`hevc`, `hevx`: their primary
/// picture) and the generic image brands (`mif1`, `mif2`, `msf1`) when AVIF's are absent.
const BRANDS: [&[u8; 4]; 9] = [
    b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"mif2", b"msf1",
];

/// True for an ISO-BMFF file that says it is HEIF (and, checked first by `sniff`, not AVIF).
pub(crate) fn is_heic(input: &[u8]) -> bool {
    has_brand(input, &BRANDS)
}

/// The header of the primary picture: displayed size, and the metadata (ICC, EXIF) read
/// without decoding pixels.
pub(crate) fn probe(input: &[u8]) -> Result<(u32, u32, SourceMeta), ImageError> {
    let heif = Heif::open(input, u64::MAX)?;
    let meta = SourceMeta {
        icc: heif.icc()?,
        exif: heif.exif(),
        ..SourceMeta::default()
    };
    Ok((heif.info.width, heif.info.height, meta))
}

/// Decode the primary picture, transformed as it displays, to 8-bit RGB or RGBA (alpha
/// unpremultiplied), and describe its colours in `meta.icc` for the colour step.
pub(crate) fn decode(
    input: &[u8],
    max_pixels: u64,
    meta: &mut SourceMeta,
) -> Result<Raster, ImageError> {
    let heif = Heif::open(input, max_pixels)?;
    let info = &heif.info;
    let channels: u8 = if info.alpha != 0 { 4 } else { 3 };
    let len = info.width as usize * info.height as usize * usize::from(channels);
    let mut pixels = alloc_pixels(len)?;
    let mut err = ErrBuf::new();
    // SAFETY: the handle is open; `pixels` is a live buffer of exactly `len` bytes, which the
    // shim checks the decoded picture against before copying; `err` is `err.len()` bytes.
    let rc = unsafe {
        imgate_heif_decode(
            heif.raw.as_ptr(),
            c_int::from(channels),
            pixels.as_mut_ptr(),
            len,
            err.as_mut_ptr(),
            err.len(),
        )
    };
    check(rc, &err)?;
    if channels == 4 && info.premultiplied != 0 {
        unpremultiply(&mut pixels);
    }
    if meta.icc.is_none() && info.has_nclx != 0 {
        let code = |v: c_int| u16::try_from(v).unwrap_or(2); // 2: unspecified
        meta.icc = color::icc_from_cicp(code(info.primaries), code(info.transfer));
    }
    Ok(Raster::new(info.width, info.height, channels, pixels))
}

/// What `imgate_heif_open` reports (`csrc/imgate_heif.h`).
#[repr(C)]
#[derive(Default)]
struct Info {
    width: c_uint,
    height: c_uint,
    alpha: c_int,
    premultiplied: c_int,
    icc_len: usize,
    has_nclx: c_int,
    primaries: c_int,
    transfer: c_int,
    exif_len: usize,
}

/// The shim's opaque handle.
#[repr(C)]
struct RawHeif {
    _private: [u8; 0],
}

const INVALID: c_int = -1;
const UNSUPPORTED: c_int = -2;
const TOO_LARGE: c_int = -3;

extern "C" {
    // csrc/imgate_heif.h
    fn imgate_heif_open(
        data: *const u8,
        len: usize,
        max_pixels: u64,
        out: *mut *mut RawHeif,
        info: *mut Info,
        err: *mut c_char,
        err_len: usize,
    ) -> c_int;
    fn imgate_heif_icc(h: *const RawHeif, out: *mut u8, err: *mut c_char, err_len: usize) -> c_int;
    fn imgate_heif_exif(h: *const RawHeif, out: *mut u8, err: *mut c_char, err_len: usize)
        -> c_int;
    fn imgate_heif_decode(
        h: *const RawHeif,
        channels: c_int,
        out: *mut u8,
        out_len: usize,
        err: *mut c_char,
        err_len: usize,
    ) -> c_int;
    fn imgate_heif_close(h: *mut RawHeif);
}

/// An open file and its primary picture; the bytes it was opened on outlive it.
struct Heif<'a> {
    raw: NonNull<RawHeif>,
    info: Info,
    _input: PhantomData<&'a [u8]>,
}

impl<'a> Heif<'a> {
    fn open(input: &'a [u8], max_pixels: u64) -> Result<Heif<'a>, ImageError> {
        let mut raw = std::ptr::null_mut();
        let mut info = Info::default();
        let mut err = ErrBuf::new();
        // SAFETY: `input` is a live slice that outlives the handle (the lifetime on `Heif`);
        // `raw` and `info` are valid out-pointers; `err` is `err.len()` bytes.
        let rc = unsafe {
            imgate_heif_open(
                input.as_ptr(),
                input.len(),
                max_pixels,
                &mut raw,
                &mut info,
                err.as_mut_ptr(),
                err.len(),
            )
        };
        check(rc, &err)?;
        let raw = NonNull::new(raw)
            .ok_or_else(|| ImageError::Undecodable("HEIF: libheif returned no image".into()))?;
        Ok(Heif {
            raw,
            info,
            _input: PhantomData,
        })
    }

    /// The embedded ICC profile, refused over [`MAX_ICC_BYTES`].
    fn icc(&self) -> Result<Option<Vec<u8>>, ImageError> {
        let len = self.info.icc_len;
        if len == 0 {
            return Ok(None);
        }
        if len > MAX_ICC_BYTES {
            return Err(ImageError::TooLarge(format!(
                "ICC profile of {len} bytes, limit {MAX_ICC_BYTES}"
            )));
        }
        self.copy_out(len, imgate_heif_icc).map(Some)
    }

    /// The first EXIF block's TIFF structure (a HEIF block starts with the offset of its
    /// TIFF header), bounded as every codec's is; `None` when absent or malformed.
    fn exif(&self) -> Option<Vec<u8>> {
        let len = self.info.exif_len;
        if !(4..=exif::MAX_EXIF_BYTES + 4).contains(&len) {
            return None;
        }
        let block = self.copy_out(len, imgate_heif_exif).ok()?;
        let skip = u32::from_be_bytes(block[..4].try_into().ok()?) as usize;
        let tiff = block.get(4usize.checked_add(skip)?..)?;
        exif::copy_bounded(tiff)
    }

    /// `len` bytes the shim's `copy` writes (the size libheif reported for them).
    fn copy_out(&self, len: usize, copy: CopyFn) -> Result<Vec<u8>, ImageError> {
        let mut out = vec![0; len];
        let mut err = ErrBuf::new();
        // SAFETY: the handle is open and `out` holds the `len` bytes libheif reported for
        // what `copy` writes; `err` is `err.len()` bytes.
        let rc = unsafe {
            copy(
                self.raw.as_ptr(),
                out.as_mut_ptr(),
                err.as_mut_ptr(),
                err.len(),
            )
        };
        check(rc, &err)?;
        Ok(out)
    }
}

/// `imgate_heif_icc` or `imgate_heif_exif`.
type CopyFn = unsafe extern "C" fn(*const RawHeif, *mut u8, *mut c_char, usize) -> c_int;

impl Drop for Heif<'_> {
    fn drop(&mut self) {
        // SAFETY: the handle came from `imgate_heif_open` and is closed only here.
        unsafe { imgate_heif_close(self.raw.as_ptr()) }
    }
}

/// The shim's message buffer.
struct ErrBuf([c_char; 256]);

impl ErrBuf {
    fn new() -> ErrBuf {
        ErrBuf([0; 256])
    }
    fn as_mut_ptr(&mut self) -> *mut c_char {
        self.0.as_mut_ptr()
    }
    fn len(&self) -> usize {
        self.0.len()
    }
    fn message(&self) -> String {
        let bytes: Vec<u8> = self.0.iter().map(|&c| c as u8).collect();
        CStr::from_bytes_until_nul(&bytes)
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default()
    }
}

/// The shim's result code as an [`ImageError`].
fn check(rc: c_int, err: &ErrBuf) -> Result<(), ImageError> {
    let message = || format!("HEIF: {}", err.message());
    match rc {
        0 => Ok(()),
        TOO_LARGE => Err(ImageError::TooLarge(message())),
        UNSUPPORTED => Err(ImageError::Unsupported(message())),
        INVALID => Err(ImageError::Undecodable(message())),
        _ => Err(ImageError::Undecodable(message())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FLOWER: &[u8] = include_bytes!("../../tests/fixtures/heic/flower.heic");

    #[test]
    fn sniffs_heic_brands_only() {
        assert!(is_heic(FLOWER));
        let avif = include_bytes!("../../tests/fixtures/yellowflower.avif");
        assert!(!is_heic(&avif[..]) || super::super::avif::is_avif(avif));
        assert!(!is_heic(b"\0\0\0\x14ftypisom\0\0\0\0mp41"));
        assert!(!is_heic(b"ftyp"));
    }

    #[test]
    fn probes_and_decodes_a_real_heic() {
        let (w, h, meta) = probe(FLOWER).unwrap();
        assert_eq!((w, h), (1600, 1203));
        assert_eq!(meta.orientation, 0);
        let mut meta = meta;
        let raster = decode(FLOWER, 1 << 30, &mut meta).unwrap();
        assert_eq!(
            (raster.width, raster.height, raster.channels),
            (1600, 1203, 3)
        );
    }

    #[test]
    fn refuses_over_the_pixel_limit_before_decoding() {
        let mut meta = SourceMeta::default();
        let err = decode(FLOWER, 1600 * 1203 - 1, &mut meta).unwrap_err();
        assert!(matches!(err, ImageError::TooLarge(_)), "{err:?}");
    }

    #[test]
    fn truncated_and_corrupt_files_are_errors_not_crashes() {
        for cut in [0, 16, 64, 300, 1000, FLOWER.len() / 2, FLOWER.len() - 1] {
            let part = &FLOWER[..cut];
            let decoded = probe(part).and_then(|(_, _, mut meta)| decode(part, 1 << 30, &mut meta));
            assert!(decoded.is_err(), "{cut} bytes decoded");
        }
        let mut flipped = FLOWER.to_vec();
        for i in (400..flipped.len()).step_by(997) {
            flipped[i] ^= 0x5a;
        }
        let mut meta = SourceMeta::default();
        if let Ok((w, h, _)) = probe(&flipped) {
            if let Ok(raster) = decode(&flipped, 1 << 30, &mut meta) {
                assert_eq!((raster.width, raster.height), (w, h));
            }
        }
    }
}
