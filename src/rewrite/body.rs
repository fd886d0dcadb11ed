//! [`HtmlBody`]: one origin HTML response body on its way through the rewriter. Removes the
//! origin's content coding (gzip, deflate, br) chunk by chunk before [`PageRewriter`]; the
//! output is always identity-coded (the edge compresses per client). Knows header *values*
//! (`Content-Type`, `Content-Encoding`) but not HTTP or Pingora.

use super::page::PageRewriter;
use super::RewriteOptions;
use std::io::Write;
use std::sync::Arc;

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

/// Removes one content coding, streaming.
enum Decoder {
    Identity,
    Gzip(flate2::write::GzDecoder<Vec<u8>>),
    Deflate(flate2::write::ZlibDecoder<Vec<u8>>),
    Brotli(Box<brotli::DecompressorWriter<Vec<u8>>>),
}

impl Decoder {
    /// `None` for a coding we cannot remove (zstd, stacked codings): leave the page alone.
    fn for_coding(coding: Option<&str>) -> Option<Decoder> {
        let coding = coding.map(|c| c.trim().to_ascii_lowercase());
        Some(match coding.as_deref() {
            None | Some("") | Some("identity") => Decoder::Identity,
            Some("gzip") | Some("x-gzip") => Decoder::Gzip(flate2::write::GzDecoder::new(vec![])),
            Some("deflate") => Decoder::Deflate(flate2::write::ZlibDecoder::new(vec![])),
            Some("br") => Decoder::Brotli(Box::new(brotli::DecompressorWriter::new(vec![], 8192))),
            Some(_) => return None,
        })
    }

    /// Decode `input`; with `end`, also check the stream is complete.
    fn decode(&mut self, input: &[u8], end: bool) -> std::io::Result<Vec<u8>> {
        match self {
            Decoder::Identity => Ok(input.to_vec()),
            Decoder::Gzip(d) => {
                d.write_all(input)?;
                if end {
                    d.try_finish()?;
                }
                Ok(std::mem::take(d.get_mut()))
            }
            Decoder::Deflate(d) => {
                d.write_all(input)?;
                if end {
                    d.try_finish()?;
                }
                Ok(std::mem::take(d.get_mut()))
            }
            Decoder::Brotli(d) => {
                d.write_all(input)?;
                if end {
                    d.close()?;
                }
                Ok(std::mem::take(d.get_mut()))
            }
        }
    }
}

/// An HTML response body being decoded and rewritten.
pub struct HtmlBody {
    decoder: Decoder,
    page: PageRewriter,
    decoded: u64,
    limit: u64,
}

impl HtmlBody {
    /// Start on a response with these `Content-Type` and `Content-Encoding` values, or `None`
    /// when it must pass through untouched (not HTML, a coding or charset we cannot handle).
    /// `limit` bounds the decoded size: a small gzip bomb must not become gigabytes here.
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
        let decoder = Decoder::for_coding(content_encoding)?;
        let page = PageRewriter::new(options, page_path, charset(content_type))?;
        Some(HtmlBody {
            decoder,
            page,
            decoded: 0,
            limit,
        })
    }

    /// Feed the next chunk of the origin body (`end` on the last, which may be empty); returns
    /// the rewritten bytes ready to send and store.
    pub fn feed(&mut self, chunk: &[u8], end: bool) -> Result<Vec<u8>, RewriteError> {
        let html = self.decoder.decode(chunk, end)?;
        self.decoded += html.len() as u64;
        if self.decoded > self.limit {
            return Err(RewriteError::TooLarge(self.limit));
        }
        let mut out = self.page.write(&html)?;
        if end {
            out.extend(self.page.end()?);
        }
        Ok(out)
    }
}
