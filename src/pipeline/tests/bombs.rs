//! Decompression and allocation bombs, made in the test (nothing large is committed): each
//! hostile file must be refused with the right error, quickly, and without the memory it
//! claims. Memory is what the test's own thread took from the Rust allocator at its peak
//! (`crate::test_alloc`), which is where the `image` crate and our container readers
//! allocate.

use crate::imaging::avif::heif::testing::{bx, full, ispe};
use crate::pipeline::error::PipelineError;
use crate::pipeline::limits::Limits;
use crate::pipeline::process;
use crate::spec::{Accepts, TransformSpec};
use crate::test_alloc::peak_during;
use std::io::Write;
use std::time::{Duration, Instant};

/// Run the whole pipeline on `input` (a 100-pixel-wide thumbnail, as the edge would ask) and
/// check it is refused as `want` says, within `max_time` and `max_bytes` of peak memory.
fn refused(what: &str, input: &[u8], want: fn(&PipelineError) -> bool, max_bytes: usize) {
    let spec = TransformSpec {
        width: Some(100),
        ..TransformSpec::default()
    };
    let start = Instant::now();
    let (result, peak) =
        peak_during(|| process(input, &spec, Accepts::default(), &Limits::default()));
    let took = start.elapsed();
    match result {
        Err(e) if want(&e) => {}
        Err(e) => panic!("{what}: wrong error {e:?}"),
        Ok(p) => panic!("{what}: accepted ({} bytes out)", p.bytes.len()),
    }
    assert!(
        peak <= max_bytes,
        "{what}: held {} KiB at once (bound {} KiB)",
        peak >> 10,
        max_bytes >> 10
    );
    assert!(took < Duration::from_secs(3), "{what}: took {took:?}");
}

fn too_large(e: &PipelineError) -> bool {
    matches!(e, PipelineError::TooLarge(_))
}

fn corrupt(e: &PipelineError) -> bool {
    matches!(e, PipelineError::Undecodable(_))
}

fn too_large_or_corrupt(e: &PipelineError) -> bool {
    too_large(e) || corrupt(e)
}

fn zlib(data: &[u8]) -> Vec<u8> {
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
    z.write_all(data).unwrap();
    z.finish().unwrap()
}

/// `total` zero bytes, zlib-compressed 1 MiB at a time (never held inflated).
fn zlib_zeros(total: usize) -> Vec<u8> {
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
    let block = vec![0u8; 1 << 20];
    for _ in 0..total >> 20 {
        z.write_all(&block).unwrap();
    }
    z.finish().unwrap()
}

fn png_chunk(kind: &[u8; 4], data: &[u8]) -> Vec<u8> {
    let mut crc = flate2::Crc::new();
    crc.update(kind);
    crc.update(data);
    let mut out = (data.len() as u32).to_be_bytes().to_vec();
    out.extend_from_slice(kind);
    out.extend_from_slice(data);
    out.extend_from_slice(&crc.sum().to_be_bytes());
    out
}

/// An 8-bit RGB PNG header claiming `w` x `h`, the `extra` chunks, one IDAT of a single
/// scanline, and IEND.
fn png(w: u32, h: u32, extra: &[Vec<u8>]) -> Vec<u8> {
    let mut ihdr = w.to_be_bytes().to_vec();
    ihdr.extend_from_slice(&h.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    out.extend(png_chunk(b"IHDR", &ihdr));
    for c in extra {
        out.extend_from_slice(c);
    }
    out.extend(png_chunk(b"IDAT", &zlib(&[0, 0, 0, 0])));
    out.extend(png_chunk(b"IEND", &[]));
    out
}

#[test]
fn png_claiming_60000x60000_is_refused_from_its_header() {
    let bomb = png(60_000, 60_000, &[]);
    refused("60000x60000 PNG", &bomb, too_large, 1 << 20);
}

#[test]
fn png_icc_profile_inflating_to_256mib_is_refused_before_it_is_inflated() {
    // A plausible picture size (16 MP, under the pixel limit): before the bound, the decoder's
    // budget for it (~144 MB) was what the profile could inflate into.
    let mut iccp = b"bomb\0\0".to_vec();
    iccp.extend(zlib_zeros(256 << 20));
    let bomb = png(4000, 4000, &[png_chunk(b"iCCP", &iccp)]);
    assert!(bomb.len() < 1 << 20);
    refused("iCCP bomb", &bomb, too_large, 4 << 20);
    // A profile of ordinary size still goes through to the decoder (which then finds the
    // pixel data short: corrupt, not too large).
    let mut small = b"icc\0\0".to_vec();
    small.extend(zlib(&[7u8; 3000]));
    let ok = png(4, 4, &[png_chunk(b"iCCP", &small)]);
    refused("short PNG", &ok, corrupt, 4 << 20);
}

/// A GIF with a `w` x `h` screen and `frames` image descriptors of `fw` x `fh`, each with the
/// same one-pixel LZW stream.
fn gif(w: u16, h: u16, frames: usize, fw: u16, fh: u16) -> Vec<u8> {
    let mut out = b"GIF89a".to_vec();
    out.extend_from_slice(&w.to_le_bytes());
    out.extend_from_slice(&h.to_le_bytes());
    out.extend_from_slice(&[0x80, 0, 0, 0, 0, 0, 255, 255, 255]);
    for _ in 0..frames {
        out.push(0x2C);
        out.extend_from_slice(&[0, 0, 0, 0]);
        out.extend_from_slice(&fw.to_le_bytes());
        out.extend_from_slice(&fh.to_le_bytes());
        out.extend_from_slice(&[0, 2, 2, 0x44, 0x01, 0]);
    }
    out.push(0x3B);
    out
}

#[test]
fn gif_with_thousands_of_frames_is_refused_from_its_header() {
    let bomb = gif(1000, 1000, 20_000, 1000, 1000);
    refused("20000-frame GIF", &bomb, too_large, 1 << 20);
}

#[test]
fn gif_frame_far_larger_than_its_canvas_is_refused_without_its_buffer() {
    // A 1x1 screen with one 60000x60000 frame: 14 GB of RGBA if anyone allocated it.
    let bomb = gif(1, 1, 1, 60_000, 60_000);
    refused("oversized GIF frame", &bomb, too_large_or_corrupt, 64 << 20);
    // The same in an animation (two frames) asked for as animated WebP.
    let anim = gif(1, 1, 2, 60_000, 60_000);
    let spec = TransformSpec {
        width: Some(100),
        anim: true,
        format: crate::spec::FormatRequest::Fixed(crate::spec::OutputFormat::Webp),
        ..TransformSpec::default()
    };
    let (result, peak) =
        peak_during(|| process(&anim, &spec, Accepts::default(), &Limits::default()));
    assert!(
        matches!(&result, Err(e) if too_large_or_corrupt(e)),
        "{:?}",
        result.map(|p| p.bytes.len())
    );
    assert!(peak < 64 << 20, "held {} MiB", peak >> 20);
}

/// An animated WebP: VP8X canvas `w` x `h` and `frames` empty ANMF chunks.
fn animated_webp(w: u32, h: u32, frames: usize) -> Vec<u8> {
    let u24 = |v: u32| v.to_le_bytes()[..3].to_vec();
    let mut body = b"WEBP".to_vec();
    let mut vp8x = vec![0x02, 0, 0, 0];
    vp8x.extend(u24(w - 1));
    vp8x.extend(u24(h - 1));
    let chunk = |kind: &[u8; 4], data: &[u8]| {
        let mut c = kind.to_vec();
        c.extend_from_slice(&(data.len() as u32).to_le_bytes());
        c.extend_from_slice(data);
        c
    };
    body.extend(chunk(b"VP8X", &vp8x));
    body.extend(chunk(b"ANIM", &[0, 0, 0, 0, 0, 0]));
    let mut anmf = vec![0u8; 6];
    anmf.extend(u24(w - 1));
    anmf.extend(u24(h - 1));
    anmf.extend(u24(100));
    anmf.push(0);
    for _ in 0..frames {
        body.extend(chunk(b"ANMF", &anmf));
    }
    let mut out = b"RIFF".to_vec();
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    out.extend(body);
    out
}

#[test]
fn animated_webp_with_a_huge_frame_count_is_refused_from_its_header() {
    let bomb = animated_webp(2000, 2000, 100_000);
    refused("100000-frame WebP", &bomb, too_large, 8 << 20);
}

/// An AVIF whose primary `av01` item (64x64) is located by `iloc` (given whole, version 0),
/// followed by `padding` bytes in a `free` box.
fn avif_with_iloc(iloc: Vec<u8>, padding: usize) -> Vec<u8> {
    let ftyp = bx(b"ftyp", b"avif\0\0\0\0avifmif1miaf");
    let hdlr = full(b"hdlr", 0, b"\0\0\0\0pict\0\0\0\0\0\0\0\0\0\0\0\0\0");
    let pitm = full(b"pitm", 0, &1u16.to_be_bytes());
    let infe = full(b"infe", 2, b"\0\x01\0\0av01\0");
    let iinf = full(b"iinf", 0, &[&1u16.to_be_bytes()[..], &infe].concat());
    let ipma = full(b"ipma", 0, &[0, 0, 0, 1, 0, 1, 1, 0x81]);
    let iprp = bx(b"iprp", &[bx(b"ipco", &ispe(64, 64)), ipma].concat());
    let meta = full(b"meta", 0, &[hdlr, pitm, iloc, iinf, iprp].concat());
    [ftyp, meta, bx(b"free", &vec![0u8; padding])].concat()
}

#[test]
fn avif_item_of_many_whole_file_extents_is_refused_without_joining_them() {
    // iloc v0 with offset and length sizes 0: each extent takes no bytes and means "the whole
    // file". 30000 of them over a 32 KiB file joined to 1 GB before the bound.
    let mut p = vec![0x00, 0x00];
    p.extend_from_slice(&1u16.to_be_bytes()); // one item
    p.extend_from_slice(&1u16.to_be_bytes()); // item 1
    p.extend_from_slice(&0u16.to_be_bytes()); // data reference: this file
    p.extend_from_slice(&30_000u16.to_be_bytes());
    let bomb = avif_with_iloc(full(b"iloc", 0, &p), 32 << 10);
    assert!(bomb.len() < 40 << 10);
    refused("AVIF extent bomb", &bomb, corrupt, 8 << 20);
}

#[test]
fn avif_iloc_listing_millions_of_extents_is_refused_while_reading_it() {
    // 6 bytes of iloc per item, 65535 extents of 16 bytes each in memory: 1.2 KB of header
    // asked for 200 MB of extent lists before the bound.
    let items = 200u16;
    let mut p = vec![0x00, 0x00];
    p.extend_from_slice(&items.to_be_bytes());
    for id in 1..=items {
        p.extend_from_slice(&id.to_be_bytes());
        p.extend_from_slice(&0u16.to_be_bytes());
        p.extend_from_slice(&u16::MAX.to_be_bytes());
    }
    let bomb = avif_with_iloc(full(b"iloc", 0, &p), 0);
    refused("AVIF extent-list bomb", &bomb, too_large, 8 << 20);
}
