//! Entry points for the coverage-guided fuzz targets in `fuzz/` (see fuzz/README.md), one per
//! parser of outside bytes. Compiled only with the `fuzzing` cargo feature, never in a product
//! build. Each function feeds its input to the real code the way a request, an admin call or
//! a config file would, and asserts the round-trip properties the callers rely on; it holds no
//! parsing of its own.

use crate::config::{Config, EnvOverrides};
use crate::cpu::cost;
use crate::dialect;
use crate::pipeline::{self, Limits, Processed};
use crate::purge::PurgeRequest;
use crate::rewrite::{entities, url, HtmlBody, RewriteOptions};
use crate::route::{self, KeyedRoute};
use crate::spec::{self, Accepts, FormatRequest};
use crate::warm::WarmRequest;
use once_cell::sync::Lazy;
use std::path::Path;
use std::sync::Arc;

pub use crate::imaging::fuzzing::{container_metadata, exif, heif, svg_document};

/// Sniffing and the header probe with the default limits, as the `probe` step runs them.
pub fn probe(input: &[u8]) {
    if crate::imaging::sniff(input).is_ok() {
        let _ = pipeline::probe(input, &Limits::default());
    }
}

/// Two sites, one with absolute sources allowed: what the purge and route targets resolve
/// against.
static CONFIG: Lazy<Config> = Lazy::new(|| {
    Config::from_yaml(
        "sites:\n\
         - {hosts: [img.example.com], origin: 'http://127.0.0.1:9', allowed_source_hosts: [cdn.example.net]}\n\
         - {hosts: ['*'], origin: 'http://127.0.0.1:9'}\n",
        "fuzz",
        Path::new("/"),
        &EnvOverrides::default(),
    )
    .expect("the fuzz config is valid")
});

/// A site serving every dialect, with presets and signing keys (not required), for
/// [`edge_route`].
static DIALECTS: Lazy<Config> = Lazy::new(|| {
    Config::from_yaml(
        "sites:\n\
         - hosts: ['*']\n\
         \x20 origin: 'http://127.0.0.1:9'\n\
         \x20 presets: {thumb: 'width=200,height=200,fit=cover', webp: 'format=webp'}\n\
         \x20 signing: {keys: [{key: '6b6579', salt: '73616c74'}], required: false}\n\
         \x20 imgproxy: {prefix: /imgproxy}\n\
         \x20 thumbor: {prefix: /thumbor, security_key: key, allow_unsafe: true}\n\
         \x20 nextjs: {enabled: true}\n",
        "fuzz",
        Path::new("/"),
        &EnvOverrides::default(),
    )
    .expect("the fuzz dialect config is valid")
});

/// A request path and its `Accept` value as the edge routes them (`proxy::request_filter`):
/// read in every dialect (the canonical path it yields must be a URI the service reads back
/// as the same transform), split, options parsed, source checked against the site; then the
/// key round trips.
pub fn edge_route(path: &str, accept: &str) {
    // The edge reads the path and query of a parsed request URI (no fragment).
    let uri = path
        .starts_with('/')
        .then(|| path.parse::<http::Uri>().ok())
        .flatten();
    let edge_path = uri
        .as_ref()
        .and_then(|u| u.path_and_query())
        .map(|p| p.as_str());
    let resolved = edge_path.and_then(|p| dialect::resolve(&DIALECTS.sites[0].urls, p));
    if let Some(Ok(r)) = resolved {
        let canonical = dialect::canonical_path(&r.spec.canonical(), &r.source.key());
        assert!(
            canonical.parse::<http::Uri>().is_ok(),
            "the service path is no URI: {canonical}"
        );
        let back = dialect::read_canonical(&canonical)
            .unwrap_or_else(|| panic!("not a transform path: {canonical}"))
            .unwrap_or_else(|e| panic!("{canonical}: {e}"));
        assert_eq!(back.spec, r.spec, "{canonical}");
        assert_eq!(back.source.key(), r.source.key(), "{canonical}");
    }
    let accepts = Accepts::from_accept_header(accept);
    let Some((options, source)) = route::split_image_path(path) else {
        let key = route::primary_key(
            1,
            KeyedRoute::Raw {
                path_and_query: path,
            },
        );
        assert_eq!(
            route::parse_primary_key(&key),
            Some((
                1,
                KeyedRoute::Raw {
                    path_and_query: path
                }
            ))
        );
        return;
    };
    let spec = spec::parse_options(options);
    if let Ok(spec) = &spec {
        // Two URLs that mean the same transform share one cache entry.
        // The default spec (`rotate=0`) canonicalises to "", which names no transform.
        let canonical = spec.canonical();
        if canonical.is_empty() {
            assert_eq!(spec, &spec::TransformSpec::default());
        } else {
            assert_eq!(
                spec::parse_options(&canonical).as_ref(),
                Ok(spec),
                "{canonical}"
            );
        }
        if spec.format == FormatRequest::Auto {
            let _ = accepts.vary_token(spec.format);
        }
    }
    let Ok(source) = route::parse_source(source) else {
        return;
    };
    let source_key = source.key();
    assert_eq!(
        route::parse_source(&source_key).as_ref(),
        Ok(&source),
        "{source_key}"
    );
    for (_, site) in [CONFIG.site_for("img.example.com"), CONFIG.site_for("other")]
        .into_iter()
        .flatten()
    {
        let _ = site.source_access(&source);
    }
    if let Ok(spec) = spec {
        let canonical = spec.canonical();
        let key = route::primary_key(
            0,
            KeyedRoute::Image {
                canonical: &canonical,
                source: &source_key,
            },
        );
        assert_eq!(
            route::parse_primary_key(&key),
            Some((
                0,
                KeyedRoute::Image {
                    canonical: &canonical,
                    source: &source_key
                }
            )),
            "{key}"
        );
    }
}

/// A `POST /purge` body as the admin listener reads it, resolved into keys and matchers
/// (nothing is purged); every key it names is one the purge itself matches.
pub fn purge_body(body: &[u8]) {
    let Ok(request) = serde_json::from_slice::<PurgeRequest>(body) else {
        return;
    };
    let Ok((primaries, matchers)) = request.plan(&CONFIG) else {
        return;
    };
    for key in &primaries {
        assert!(route::parse_primary_key(key).is_some(), "{key}");
        for m in &matchers {
            let _ = m.matches(key);
        }
    }
}

/// A `POST /warm` body as the admin listener reads and checks it.
pub fn warm_body(body: &[u8]) {
    if let Ok(request) = serde_json::from_slice::<WarmRequest>(body) {
        let _ = request.check();
    }
}

/// `srcset` text and attribute values as the HTML rewriter reads and writes them.
pub fn srcset(text: &str) {
    let options = RewriteOptions {
        own_hosts: vec!["img.example.com".into()],
        allowed_source_hosts: vec!["cdn.example.net".into()],
        ..RewriteOptions::default()
    };
    if let Some(decoded) = entities::decode_attribute(text) {
        // Escaped values read back as written.
        let escaped = entities::escape_attribute(&decoded);
        assert_eq!(
            entities::decode_attribute(&escaped).as_deref(),
            Some(&*decoded)
        );
    }
    // Page paths come from a request target, which holds no whitespace.
    let dir = url::page_dir("/blog/post.html");
    let candidates = url::parse_srcset(text);
    let rewritten: Vec<(String, &str)> = candidates
        .iter()
        .filter_map(|c| {
            let source = url::image_source(c.url, &dir, &options)?;
            // The rewriter only emits sources the edge accepts.
            assert!(route::parse_source(&source).is_ok(), "{source}");
            Some((url::image_url("format=auto", &source, None), c.descriptor))
        })
        .collect();
    let joined = url::format_srcset(rewritten.iter().map(|(u, d)| (u.clone(), *d)));
    // What the rewriter writes parses back into the same candidates.
    let again: Vec<(String, &str)> = url::parse_srcset(&joined)
        .into_iter()
        .map(|c| (c.url.to_string(), c.descriptor))
        .collect();
    // Trailing commas are written percent-encoded (a browser would end the URL there).
    let expected: Vec<(String, &str)> = rewritten
        .iter()
        .map(|(u, d)| {
            let kept = u.trim_end_matches(',');
            (format!("{kept}{}", "%2C".repeat(u.len() - kept.len())), *d)
        })
        .collect();
    assert_eq!(again, expected, "{joined}");
}

/// An origin HTML response through the edge's rewriter: `content_type` and `coding` pick the
/// charset and the content coding, `body` is fed in `chunk`-byte pieces.
pub fn html_body(content_type: &str, coding: Option<&str>, body: &[u8], chunk: usize) {
    let options = Arc::new(RewriteOptions {
        own_hosts: vec!["img.example.com".into()],
        allowed_source_hosts: vec!["cdn.example.net".into()],
        ..RewriteOptions::default()
    });
    let Some(mut html) = HtmlBody::start(options, "/blog/post.html", content_type, coding, 1 << 20)
    else {
        return;
    };
    let mut pieces = body.chunks(chunk.max(1)).peekable();
    while let Some(piece) = pieces.next() {
        if html.feed(piece, pieces.peek().is_none()).is_err() {
            return;
        }
    }
    let _ = html.feed(&[], true);
}

/// Config YAML as `imgate --validate` and startup read it.
pub fn config_yaml(text: &str) {
    if let Ok(config) = Config::from_yaml(
        text,
        "fuzz.yaml",
        Path::new("/srv"),
        &EnvOverrides::default(),
    ) {
        for host in ["img.example.com", "example.com:8080", ""] {
            let _ = config.site_for(host);
        }
    }
}

/// Limits small enough that one run stays fast; the code paths are those of any size.
pub fn small_limits() -> Limits {
    Limits {
        max_source_pixels: 512 * 512,
        max_output_dimension: 512,
        max_animation_frames: 8,
    }
}

/// Largest output a fuzz run makes (the service's `limits.max_output_pixels` check).
pub const MAX_OUTPUT_PIXELS: u64 = 128 * 128;

/// One transform job as the transform service runs it (`Transformer::render` after the
/// fetch): options parsed, the footprint and output size checked from the header, then the
/// whole pipeline on the calling thread.
pub fn transform(input: &[u8], options: &str, accepts: Accepts) -> Option<Processed> {
    let spec = spec::parse_options(options).ok()?;
    let accepts = if spec.format == FormatRequest::Auto {
        accepts
    } else {
        Accepts::default()
    };
    let limits = small_limits();
    let footprint = pipeline::footprint(input, &spec, accepts, &limits).ok()?;
    cost::check_output_pixels(&footprint, MAX_OUTPUT_PIXELS).ok()?;
    let _ = cost::estimate(&footprint, input.len());
    let out = pipeline::process(input, &spec, accepts, &limits).ok()?;
    // The header promised what the pipeline made: a bigger output escaped the budget. A JSON
    // description makes no pixels (its size is that of the picture it describes).
    assert!(
        spec.format == FormatRequest::Json
            || u64::from(out.width) * u64::from(out.height) <= footprint.output_pixels().max(1),
        "{}x{} over the footprint's {:?}",
        out.width,
        out.height,
        footprint.canvas
    );
    Some(out)
}

/// The TLS listener's ClientHello reader on a connection's first bytes: a hello read is read
/// the same from exactly the bytes it took, and a request for more asks for more than there is.
pub fn client_hello(data: &[u8]) {
    use crate::tls::hello::{scan, Scan, MAX_HELLO};
    match scan(data) {
        Scan::Hello(hello, used) => {
            assert!(used <= data.len());
            assert_eq!(scan(&data[..used]), Scan::Hello(hello, used));
        }
        Scan::NeedMore(n) => assert!(n > data.len() && n <= MAX_HELLO, "{n}"),
        Scan::NotHello => {}
    }
}

/// The fuzz targets, by name: each takes libFuzzer's raw bytes.
pub const TARGETS: [&str; 12] = [
    "client_hello",
    "config",
    "heif",
    "html",
    "metadata",
    "pipeline",
    "purge",
    "sniff",
    "spec_route",
    "srcset",
    "svg",
    "warm",
];

/// Run fuzz target `target` (one of [`TARGETS`]) on `data`: how its bytes become the
/// arguments above. `fuzz/fuzz_targets/*.rs` call this, and so does the corpus replay test.
pub fn run(target: &str, data: &[u8]) {
    match target {
        "client_hello" => client_hello(data),
        "config" => {
            if let Ok(text) = std::str::from_utf8(data) {
                config_yaml(text);
            }
        }
        "heif" => heif(data),
        "html" => html_input(data),
        "metadata" => container_metadata(data),
        "pipeline" => pipeline_input(data),
        "purge" => purge_body(data),
        "sniff" => probe(data),
        "spec_route" => {
            let text = String::from_utf8_lossy(data);
            let (path, accept) = text.split_once('\n').unwrap_or((&text, ""));
            edge_route(path, accept);
        }
        "srcset" => srcset(&String::from_utf8_lossy(data)),
        "svg" => svg_document(data),
        "warm" => warm_body(data),
        other => panic!("no fuzz target named {other}"),
    }
}

/// `html`: the first three bytes pick the content coding, the content type and the chunk size.
fn html_input(data: &[u8]) {
    const CODINGS: [Option<&str>; 5] = [
        None,
        Some("gzip"),
        Some("deflate"),
        Some("br"),
        Some("identity"),
    ];
    const TYPES: [&str; 6] = [
        "text/html",
        "text/html; charset=utf-8",
        "text/html; charset=windows-1252",
        "text/html; charset=shift_jis",
        "text/html; charset=utf-16",
        "text/html; charset=\"iso-8859-2\"",
    ];
    let [coding, kind, chunk, body @ ..] = data else {
        return;
    };
    html_body(
        TYPES[usize::from(*kind) % TYPES.len()],
        CODINGS[usize::from(*coding) % CODINGS.len()],
        body,
        usize::from(*chunk) * 16 + 1,
    );
}

/// The `pipeline` target's input taken apart: a length byte, that many bytes of options, an
/// `Accept` byte (bit 0 AVIF, bit 1 WebP), then the image.
pub fn pipeline_parts(data: &[u8]) -> Option<(String, Accepts, &[u8])> {
    let (&n, rest) = data.split_first()?;
    let (options, rest) = rest.split_at_checked(usize::from(n))?;
    let (&accept, image) = rest.split_first()?;
    let accepts = Accepts {
        avif: accept & 1 == 1,
        webp: accept & 2 == 2,
    };
    Some((
        String::from_utf8_lossy(options).into_owned(),
        accepts,
        image,
    ))
}

/// `pipeline`: one transform job on [`pipeline_parts`].
fn pipeline_input(data: &[u8]) {
    let Some((options, accepts, image)) = pipeline_parts(data) else {
        return;
    };
    transform(image, &options, accepts);
    // What the CPU pool does when it goes idle. Without it the AV1 decoder this thread keeps
    // between pictures outlives the input, and LeakSanitizer cannot see that it still owns
    // the motion-compensation buffers of a high-bit-depth stream: libaom stores those
    // pointers shifted right by one bit (`CONVERT_TO_BYTEPTR`), so they read as leaked.
    // Dropped here, a real leak (memory that destroying the decoder does not free) still
    // shows.
    crate::imaging::release_thread_memory();
}

/// The entries of `fuzz/dict/<name>.dict` that end in `suffix`, without the suffix and the
/// quotes: what the dictionary tests of the config loader and the options parser compare with
/// the keys those parsers accept.
#[cfg(test)]
pub(crate) fn dict_tokens(name: &str, suffix: &str) -> std::collections::BTreeSet<String> {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("fuzz/dict/{name}.dict"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let tail = format!("{suffix}\"");
    text.lines()
        .filter_map(|l| l.strip_prefix('"')?.strip_suffix(tail.as_str()))
        .map(str::to_owned)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::{run, TARGETS};
    use std::path::Path;

    /// Every committed corpus input, crash reproducers included, through its target: what
    /// `./dev fuzz` starts from, replayed in every test run so a fixed crash stays fixed.
    #[test]
    fn committed_fuzz_corpora_replay_cleanly() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus");
        for target in TARGETS {
            let dir = root.join(target);
            let mut inputs: Vec<_> = std::fs::read_dir(&dir)
                .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
                .map(|e| e.unwrap().path())
                .collect();
            inputs.sort();
            assert!(
                inputs.len() >= 10,
                "{target}: a corpus of {} inputs",
                inputs.len()
            );
            for input in inputs {
                let data = std::fs::read(&input).unwrap();
                let ran = std::panic::catch_unwind(|| run(target, &data));
                assert!(ran.is_ok(), "{target}: {} panicked", input.display());
            }
        }
    }

    /// Fuzz finding 13: a BMP trimmed to a narrower picture and resized to a width came out
    /// 3x87 where the header-based footprint had said 3x61 (the harness's assertion).
    #[test]
    fn r_fuzz_a_border_trim_stays_within_the_footprint() {
        let input = include_bytes!(
            "../fuzz/corpus/pipeline/crash-eb1ecaeeb40390fa96f128cd95686efd7adadf6b"
        );
        let (options, _, image) = super::pipeline_parts(input).unwrap();
        assert_eq!(options, "trim=border,w=3,metadata=copyright");
        run("pipeline", input);
        let out = super::transform(image, &options, Default::default()).expect("the BMP is made");
        assert_eq!((out.width, out.height), (3, 87));
    }

    /// Fuzz finding 9: `format=json` makes no pixels, so its footprint has an empty canvas,
    /// and the harness took the size the description reports for an output over budget.
    #[test]
    fn r_fuzz_a_json_description_is_not_held_to_the_pixel_footprint() {
        let input = include_bytes!(
            "../fuzz/corpus/pipeline/crash-875b6221131af8b06c7b76dbd5244a9c4bfb2a9c"
        );
        let (options, accepts, image) = super::pipeline_parts(input).unwrap();
        assert_eq!(
            (options.as_str(), accepts.avif, accepts.webp),
            ("format=json,w=8", true, false)
        );
        run("pipeline", input);
        let out =
            super::transform(image, &options, Default::default()).expect("the PNG is described");
        assert_eq!(out.format, crate::pipeline::Media::Json);
        assert_eq!((out.width, out.height), (4, 9));
        let json: serde_json::Value = serde_json::from_slice(&out.bytes).unwrap();
        assert_eq!((&json["width"], &json["height"]), (&4.into(), &9.into()));
        assert_eq!(json["original"]["format"], "image/png");
    }
}
