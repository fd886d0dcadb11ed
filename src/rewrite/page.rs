//! [`PageRewriter`]: Cloudflare's streaming `lol_html` parser wired to the image rules. Fed
//! chunks of any size (a tag may be split anywhere), it returns the bytes it can already emit;
//! lol_html buffers at most the tag it is in, never the page. Bytes it does not rewrite pass
//! through unchanged, in the page's own charset.
//!
//! `<noscript>` content is left alone by construction: lol_html parses it as raw text, as a
//! browser with scripting on does, so no `<img>` inside it is ever matched.

use super::entities::{decode_attribute, escape_attribute};
use super::image::{rewrite_img, rewrite_source, Changes, ImageTag};
use super::options::RewriteOptions;
use super::url::page_dir;
use encoding_rs::Encoding;
use lol_html::errors::RewritingError;
use lol_html::send::{HtmlRewriter, Settings};
use lol_html::{element, AsciiCompatibleEncoding, MemorySettings, OutputSink};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// lol_html's own memory: the tag it is buffering and the open-element stack its selectors
/// need. The trap: `<p>` is never closed for lol_html (it builds no tree), so a page of a few
/// million `<p>` grows that stack to gigabytes while the page is still under the size limit.
/// Over it, writing fails (`MemoryLimitExceeded`) and the response is cut off.
const MAX_PARSER_MEMORY: usize = 32 << 20;

/// Where lol_html writes: a buffer shared with [`PageRewriter`], drained after every chunk.
struct Sink(Arc<Mutex<Vec<u8>>>);

impl OutputSink for Sink {
    fn handle_chunk(&mut self, chunk: &[u8]) {
        lock(&self.0).extend_from_slice(chunk);
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding the lock leaves only bytes behind; they are still bytes.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// One page being rewritten. `Send + Sync` so the edge can keep it in its per-request context.
pub struct PageRewriter {
    // lol_html's rewriter is `Send` but not `Sync`; the lock is never contended.
    inner: Mutex<Option<HtmlRewriter<'static, Sink>>>,
    out: Arc<Mutex<Vec<u8>>>,
}

impl PageRewriter {
    /// A rewriter for the page at `page_path` (relative image URLs resolve against it).
    /// `charset` is the `Content-Type` charset label when the response has one: it wins over
    /// `<meta charset>`. Without one the page is read as windows-1252 until a `<meta>` says
    /// otherwise, which keeps every byte as it is. `None` when the charset is not
    /// ASCII-compatible (UTF-16): such a page must pass through untouched.
    pub fn new(
        options: Arc<RewriteOptions>,
        page_path: &str,
        charset: Option<&str>,
    ) -> Option<PageRewriter> {
        let (encoding, from_header) = match charset {
            Some(label) => (Encoding::for_label(label.trim().as_bytes())?, true),
            None => (encoding_rs::WINDOWS_1252, false),
        };
        let encoding = AsciiCompatibleEncoding::new(encoding)?;
        let dir = Arc::new(page_dir(page_path));
        let images = Arc::new(AtomicUsize::new(0));

        let (img_options, img_dir) = (options.clone(), dir.clone());
        let img = element!("img", move |el| {
            let index = images.fetch_add(1, Ordering::Relaxed);
            match read_tag(|name| el.get_attribute(name)) {
                Some(tag) => apply(el, rewrite_img(&tag, index, &img_dir, &img_options)),
                None => Ok(()),
            }
        });
        let source = element!("picture > source", move |el| {
            match read_tag(|name| el.get_attribute(name)) {
                Some(tag) => apply(el, rewrite_source(&tag, &dir, &options)),
                None => Ok(()),
            }
        });
        let settings = Settings::new_send()
            .append_element_content_handler(img)
            .append_element_content_handler(source)
            .with_encoding(encoding)
            .with_adjust_charset_on_meta_tag(!from_header)
            .with_memory_settings(
                MemorySettings::new().with_max_allowed_memory_usage(MAX_PARSER_MEMORY),
            );
        let out = Arc::new(Mutex::new(Vec::new()));
        let rewriter = HtmlRewriter::new(settings, Sink(out.clone()));
        Some(PageRewriter {
            inner: Mutex::new(Some(rewriter)),
            out,
        })
    }

    /// Feed the next chunk; returns what can be emitted so far (possibly nothing).
    pub fn write(&self, chunk: &[u8]) -> Result<Vec<u8>, RewritingError> {
        if let Some(r) = lock(&self.inner).as_mut() {
            r.write(chunk)?;
        }
        Ok(std::mem::take(&mut *lock(&self.out)))
    }

    /// The end of the page: returns the rest. Later calls return nothing.
    pub fn end(&self) -> Result<Vec<u8>, RewritingError> {
        if let Some(r) = lock(&self.inner).take() {
            r.end()?;
        }
        Ok(std::mem::take(&mut *lock(&self.out)))
    }
}

/// The tag's attributes with their character references decoded (lol_html gives them raw);
/// `None` when one holds a reference we cannot decode: such a tag is left as written.
fn read_tag(get: impl Fn(&str) -> Option<String>) -> Option<ImageTag> {
    let get = |name| match get(name) {
        Some(raw) => decode_attribute(&raw).map(Some),
        None => Some(None),
    };
    Some(ImageTag {
        src: get("src")?,
        srcset: get("srcset")?,
        sizes: get("sizes")?,
        width: get("width")?,
        loading: get("loading")?,
        decoding: get("decoding")?,
        mime: get("type")?,
    })
}

fn apply(
    el: &mut lol_html::send::Element<'_, '_>,
    changes: Changes,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    // Values are plain text; written back escaped, a browser decodes them to that text.
    for (name, value) in changes {
        el.set_attribute(name, &escape_attribute(&value))?;
    }
    Ok(())
}
