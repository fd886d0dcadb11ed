//! [`HtmlBody`]: one origin HTML response body on its way through the rewriter. Removes the
//! origin's content coding (gzip, deflate, br) chunk by chunk before [`PageRewriter`]; the
//! output is always identity-coded (the edge compresses per client). Knows header *values*
//! (`Content-Type`, `Content-Encoding`) but not HTTP or Pingora.
//!
//! Decompression bombs: the decoders never hold more than one small output window
//! ([`WINDOW`]); each window goes straight to the rewriter and is counted against the page
//! limit as it comes, so a 2 KiB brotli body that expands to gigabytes stops at the limit
//! with [`RewriteError::TooLarge`] after decoding (and buffering) at most the limit.

use super::options::RewriteOptions;
use super::page::PageRewriter;
use std::io::{self, Write};
use std::sync::Arc;

/// Largest piece of decoded HTML a content decoder holds before handing it on. The gzip and
/// deflate decoders hold less (flate2's own 32 KiB buffer).
pub const WINDOW: usize = 64 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum RewriteError {
    #[error("origin body does not decode: {0}")]
    Decode(#[from] std::io::Error),
    #[error("HTML rewriting failed: {0}")]
    Rewrite(#[from] lol_html::errors::RewritingError),
    #[error("decoded page exceeds {0} bytes")]
    TooLarge(u64),
}

/// Is this `Content-Type` HTML (`text/html`, any parameters)?
pub fn is_html(content_type: &str) -> bool {
    content_type
        .split(';')
        .next()
        .is_some_and(|m| m.trim().eq_ignore_ascii_case("text/html"))
}

/// The `charset` parameter of a `Content-Type`, unquoted.
pub fn charset(content_type: &str) -> Option<&str> {
    content_type.split(';').skip(1).find_map(|p| {
        let (k, v) = p.split_once('=')?;
        k.trim()
            .eq_ignore_ascii_case("charset")
            .then(|| v.trim().trim_matches('"'))
    })
}

/// Removes one content coding, streaming, writing the decoded bytes to `W` in pieces of at
/// most [`WINDOW`] bytes as they are decoded. The trap it exists for: a decoder that returns
/// what one input chunk decodes to as one buffer lets a few compressed bytes allocate
/// gigabytes before anyone can count them; here `W` sees every window and stops the decoder
/// by returning an error.
pub(crate) enum ContentDecoder<W: Write> {
    Identity(W),
    Gzip(flate2::write::GzDecoder<W>),
    Deflate(flate2::write::ZlibDecoder<W>),
    Brotli(Box<brotli::DecompressorWriter<W>>),
}

impl<W: Write> ContentDecoder<W> {
    /// `None` for a coding we cannot remove (zstd, stacked codings): leave the page alone.
    pub(crate) fn for_coding(coding: Option<&str>, sink: W) -> Option<ContentDecoder<W>> {
        let coding = coding.map(|c| c.trim().to_ascii_lowercase());
        Some(match coding.as_deref() {
            None | Some("") | Some("identity") => ContentDecoder::Identity(sink),
            Some("gzip") | Some("x-gzip") => {
                ContentDecoder::Gzip(flate2::write::GzDecoder::new(sink))
            }
            Some("deflate") => ContentDecoder::Deflate(flate2::write::ZlibDecoder::new(sink)),
            Some("br") => {
                ContentDecoder::Brotli(Box::new(brotli::DecompressorWriter::new(sink, WINDOW)))
            }
            Some(_) => return None,
        })
    }

    /// Decode `input` into the sink, window by window.
    pub(crate) fn write(&mut self, input: &[u8]) -> io::Result<()> {
        match self {
            ContentDecoder::Identity(w) => {
                // Network reads are small already; the sink still sees bounded pieces.
                input
                    .chunks(WINDOW)
                    .try_for_each(|piece| w.write_all(piece))
            }
            ContentDecoder::Gzip(d) => d.write_all(input),
            ContentDecoder::Deflate(d) => d.write_all(input),
            ContentDecoder::Brotli(d) => d.write_all(input),
        }
    }

    /// The end of the body: the rest goes to the sink, and a truncated stream is an error.
    pub(crate) fn finish(&mut self) -> io::Result<()> {
        match self {
            ContentDecoder::Identity(_) => Ok(()),
            ContentDecoder::Gzip(d) => d.try_finish(),
            ContentDecoder::Deflate(d) => d.try_finish(),
            ContentDecoder::Brotli(d) => d.close(),
        }
    }

    pub(crate) fn sink(&mut self) -> &mut W {
        match self {
            ContentDecoder::Identity(w) => w,
            ContentDecoder::Gzip(d) => d.get_mut(),
            ContentDecoder::Deflate(d) => d.get_mut(),
            ContentDecoder::Brotli(d) => d.get_mut(),
        }
    }
}

/// Where decoded HTML goes: counted against the limit, then through the rewriter into `out`
/// (what the current `feed` returns). Once it has failed or been closed it refuses every
/// later window, so a decoder finishing on drop cannot decode the rest of a bomb.
struct RewriteSink {
    page: PageRewriter,
    out: Vec<u8>,
    decoded: u64,
    limit: u64,
    /// Why it stopped: kept here because the decoders only carry an `io::Error` out.
    failed: Option<RewriteError>,
    closed: bool,
}

impl RewriteSink {
    fn refuse(&self) -> io::Error {
        io::Error::other("HTML sink stopped")
    }
}

impl Write for RewriteSink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.closed || self.failed.is_some() {
            return Err(self.refuse());
        }
        self.decoded += buf.len() as u64;
        if self.decoded > self.limit {
            self.failed = Some(RewriteError::TooLarge(self.limit));
            return Err(self.refuse());
        }
        match self.page.write(buf) {
            Ok(html) => {
                self.out.extend_from_slice(&html);
                Ok(buf.len())
            }
            Err(e) => {
                self.failed = Some(e.into());
                Err(self.refuse())
            }
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// An HTML response body being decoded and rewritten.
pub struct HtmlBody {
    decoder: ContentDecoder<RewriteSink>,
}

impl HtmlBody {
    /// Start on a response with these `Content-Type` and `Content-Encoding` values, or `None`
    /// when it must pass through untouched (not HTML, a coding or charset we cannot handle).
    /// `limit` bounds the decoded size, counted window by window while decoding: a small
    /// gzip bomb never becomes more than `limit` bytes here.
    pub fn start(
        options: Arc<RewriteOptions>,
        page_path: &str,
        content_type: &str,
        content_encoding: Option<&str>,
        limit: u64,
    ) -> Option<HtmlBody> {
        if !is_html(content_type) {
            return None;
        }
        let page = PageRewriter::new(options, page_path, charset(content_type))?;
        let sink = RewriteSink {
            page,
            out: Vec::new(),
            decoded: 0,
            limit,
            failed: None,
            closed: false,
        };
        let decoder = ContentDecoder::for_coding(content_encoding, sink)?;
        Some(HtmlBody { decoder })
    }

    /// Feed the next chunk of the origin body (`end` on the last, which may be empty); returns
    /// the rewritten bytes ready to send and store. After an error the body is done: later
    /// calls fail too.
    pub fn feed(&mut self, chunk: &[u8], end: bool) -> Result<Vec<u8>, RewriteError> {
        let mut decoded = self.decoder.write(chunk);
        if decoded.is_ok() && end {
            decoded = self.decoder.finish();
        }
        let sink = self.decoder.sink();
        if let Some(e) = sink.failed.take() {
            sink.closed = true;
            return Err(e);
        }
        if let Err(e) = decoded {
            sink.closed = true;
            return Err(RewriteError::Decode(e));
        }
        if end {
            let rest = sink.page.end()?;
            sink.out.extend(rest);
            sink.closed = true;
        }
        Ok(std::mem::take(&mut sink.out))
    }
}

impl Drop for HtmlBody {
    fn drop(&mut self) {
        // flate2 and brotli writers finish their stream when dropped; a body abandoned
        // mid-way (client gone, error) must not decode what is left of it.
        self.decoder.sink().closed = true;
    }
}
