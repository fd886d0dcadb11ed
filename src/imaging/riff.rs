//! The RIFF chunk walker WebP files are read and written with: chunks after the 12-byte
//! `RIFF....WEBP` header, each a fourcc, a little-endian size and the data padded to an even
//! length. Every offset goes through checked arithmetic and `slice::get`.

/// One chunk: its fourcc, where its 8-byte header starts, and its data (`None` when the file
/// ends before the size the header claims).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Chunk<'a> {
    pub fourcc: [u8; 4],
    pub at: usize,
    pub data: Option<&'a [u8]>,
    /// Where the next chunk starts (data end plus the pad byte); `None` on overflow.
    pub next: Option<usize>,
}

/// The chunks of `file` in order, read leniently: the walk goes on past a chunk whose data is
/// cut short and stops only where no whole chunk header is left (or an offset overflows).
pub(crate) fn chunks(file: &[u8]) -> Chunks<'_> {
    Chunks { file, pos: 12 }
}

pub(crate) struct Chunks<'a> {
    file: &'a [u8],
    pos: usize,
}

impl<'a> Iterator for Chunks<'a> {
    type Item = Chunk<'a>;

    fn next(&mut self) -> Option<Chunk<'a>> {
        let pos = self.pos;
        let head = self.file.get(pos..pos.checked_add(8)?)?;
        let size = u32::from_le_bytes([head[4], head[5], head[6], head[7]]) as usize;
        let start = pos + 8;
        let data = start
            .checked_add(size)
            .and_then(|end| self.file.get(start..end));
        // Chunks are padded to an even size.
        let next = start
            .checked_add(size)
            .and_then(|end| end.checked_add(size & 1));
        self.pos = next.unwrap_or(usize::MAX);
        Some(Chunk {
            fourcc: [head[0], head[1], head[2], head[3]],
            at: pos,
            data,
            next,
        })
    }
}

/// The chunks of `file` when they tile it exactly: every header and every (padded) body whole,
/// the last ending at the end of the file. `None` otherwise: a file about to be rewritten must
/// be one we understand completely.
pub(crate) fn tiled(file: &[u8]) -> Option<Vec<Chunk<'_>>> {
    let mut out = Vec::new();
    let mut end = 12;
    for chunk in chunks(file) {
        chunk.data?;
        end = chunk.next.filter(|&n| n <= file.len())?;
        out.push(chunk);
    }
    (end == file.len()).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn riff(chunks: &[(&[u8; 4], &[u8])]) -> Vec<u8> {
        let mut out = b"RIFF\0\0\0\0WEBP".to_vec();
        for (fourcc, data) in chunks {
            out.extend_from_slice(*fourcc);
            out.extend_from_slice(&(data.len() as u32).to_le_bytes());
            out.extend_from_slice(data);
            if data.len() % 2 == 1 {
                out.push(0);
            }
        }
        out
    }

    #[test]
    fn chunks_are_walked_with_their_padding() {
        let file = riff(&[(b"VP8X", &[1; 10]), (b"ICCP", &[2; 3]), (b"EXIF", &[3; 4])]);
        let got: Vec<_> = chunks(&file)
            .map(|c| (c.fourcc, c.at, c.data.unwrap().len()))
            .collect();
        assert_eq!(
            got,
            [(*b"VP8X", 12, 10), (*b"ICCP", 30, 3), (*b"EXIF", 42, 4)]
        );
        assert_eq!(tiled(&file).unwrap().len(), 3);
    }

    #[test]
    fn a_cut_body_is_read_leniently_and_refused_strictly() {
        let mut file = riff(&[(b"VP8 ", &[1; 10]), (b"EXIF", &[3; 8])]);
        file.truncate(file.len() - 2);
        let got: Vec<_> = chunks(&file)
            .map(|c| (c.fourcc, c.data.map(<[u8]>::len)))
            .collect();
        assert_eq!(got, [(*b"VP8 ", Some(10)), (*b"EXIF", None)]);
        assert!(tiled(&file).is_none());
        // A header cut short ends the walk; a stray byte after the last chunk fails tiling.
        let mut file = riff(&[(b"VP8 ", &[1; 10])]);
        file.extend_from_slice(b"EX");
        assert_eq!(chunks(&file).count(), 1);
        assert!(tiled(&file).is_none());
        // Sizes near usize::MAX end the walk instead of wrapping.
        let mut file = riff(&[(b"VP8 ", &[1; 2])]);
        file.extend_from_slice(b"EXIF\xff\xff\xff\xff");
        assert_eq!(chunks(&file).count(), 2);
        assert!(tiled(&file).is_none());
    }
}
