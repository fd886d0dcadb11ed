//! Configuration: the YAML file (wire structs in [`wire`]) plus environment overrides, validated
//! once into [`Config`], the only config type the rest of the crate takes. Validation errors name
//! the key and the file.

pub mod wire;

use crate::access_log::{AccessLogConfig, Format as LogFormat, Target as LogTarget};
use crate::forwarded::TrustedProxies;
use crate::origin::{Access, Reach};
use crate::pipeline::Limits;
use crate::rewrite::{HtmlRewrite, RewriteOptions};
use crate::route::Source;
use ipnet::IpNet;
use pingora::server::configuration::ServerConf;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use wire::{WireAccessLog, WireConfig, WireHtmlRewrite, WireSite};

/// The example config, compiled in: what `imgate` runs with when given no `--config`.
pub const DEFAULT_CONFIG: &str = include_str!("../../conf/imgate.yaml");
/// Relative `file://` origins in the embedded default resolve against the repo's `conf/`.
pub const DEFAULT_CONFIG_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/conf");

#[derive(Debug, thiserror::Error)]
#[error("{file}: {key}: {message}")]
pub struct ConfigError {
    pub file: String,
    pub key: String,
    pub message: String,
}

/// Validated configuration.
#[derive(Debug)]
pub struct Config {
    pub server: ServerConf,
    pub listen: String,
    pub admin_listen: String,
    /// Unix socket of the internal transform service.
    pub transform_socket: PathBuf,
    pub performance: PerformanceConfig,
    pub cache: CacheConfig,
    pub limits: Limits,
    pub max_source_bytes: u64,
    /// Largest output in pixels (width x height after `dpr`, `fit` and the original's size),
    /// checked from the header before decoding; over it answers 413 (`limits.max_output_pixels`).
    pub max_output_pixels: u64,
    /// Bearer token of the admin purge/warm API; `None` = the API answers 403.
    pub admin_token: Option<String>,
    pub sites: Vec<Site>,
    /// Peers whose forwarding fields are believed; empty by default (`forwarded`).
    pub trusted_proxies: TrustedProxies,
    /// `None` when the access log is off.
    pub access_log: Option<AccessLogConfig>,
    /// Client connections on the edge listener: head deadline, keep-alive idle time, head budget.
    pub clients: ClientLimits,
}

/// What a client connection on the edge may cost before its request reaches the proxy; the
/// defaults are nginx's (`client_header_timeout 60s`, `keepalive_timeout 75s`,
/// `large_client_header_buffers 4 8k`). The trap: without them Pingora waits up to 60 s per
/// *read* (a byte every 59 s keeps a head open forever), keeps an idle keep-alive connection
/// forever, and buffers heads up to 1 MiB per connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientLimits {
    /// A whole request head must arrive within this time, counted from the connection opening
    /// (first request) or from the request's first byte (later ones). Then: 408, closed.
    pub header_timeout: Duration,
    /// A kept-alive connection waits this long for the first byte of its next request.
    pub keepalive_timeout: Duration,
    /// Largest request head (request line and header fields); over it: 431, closed.
    pub max_header_bytes: usize,
}

impl Default for ClientLimits {
    fn default() -> ClientLimits {
        ClientLimits {
            header_timeout: Duration::from_secs(60),
            keepalive_timeout: Duration::from_secs(75),
            max_header_bytes: 32 << 10,
        }
    }
}

/// Bounds of `clients.max_header_size`: a head smaller than 1 KiB refuses ordinary browsers; over
/// Pingora's own limit (1 MiB) it would never apply.
const MIN_HEADER_SIZE: u64 = 1 << 10;
const MAX_HEADER_SIZE: u64 = (1 << 20) - 1;

/// Concurrency, timeouts and pooling. Presets come from the original design; every field can
/// be overridden in `performance_overrides`.
#[derive(Debug, Clone, PartialEq)]
pub struct PerformanceConfig {
    pub max_concurrent_downloads: usize,
    pub max_concurrent_processing: usize,
    /// Jobs allowed to wait for a processing slot; beyond it requests get 503 + Retry-After.
    pub processing_queue: usize,
    pub origin_timeout: Duration,
    pub origin_connect_timeout: Duration,
    pub max_image_bytes: u64,
    /// Idle upstream connections kept for reuse.
    pub pool_size: usize,
    pub keepalive: Duration,
    /// Decoded originals kept while a burst of variants of them is being made (bytes).
    pub shared_decode_bytes: u64,
    /// Hand freed memory back to the OS at once (no allocator purge delay): RSS falls back
    /// near idle sooner after a burst, for a few percent more CPU per miss. Off, freed memory
    /// is kept 5 s for reuse, and handed back when processing goes idle
    /// (`service::set_memory_release`).
    pub eager_memory_release: bool,
    /// Per client connection: a response with a known length is gathered up to this many
    /// bytes before it is sent, so a hit of that size leaves in one write (header and body).
    pub response_write_buffer: usize,
    /// Estimated bytes that the jobs running at once may hold (decoded rasters, resize
    /// buffers, encoder working sets; `service::cost`): a burst of expensive jobs queues
    /// instead of multiplying, and a job costing more than all of it is refused with 413.
    /// The trap: it is also the largest job this server makes, so set too low it refuses
    /// large outputs; the memory tier, shared decodes and downloads are outside it.
    pub processing_budget_bytes: u64,
}

/// `processing_budget` of the `default` and `low_latency` presets; see the report of
/// the change that set it and BENCHMARKS.md for the measurements behind it.
const DEFAULT_PROCESSING_BUDGET: u64 = 512 << 20;

/// `limits.max_output_pixels` by default: 24 MP, a 6000x4000 camera frame (the largest
/// common original passed through at full size) and 4K (3840x2160) at `dpr=2` on one side.
pub const DEFAULT_MAX_OUTPUT_PIXELS: u64 = 24_000_000;

/// Upper bound of `response_write_buffer`.
const MAX_RESPONSE_WRITE_BUFFER: u64 = 1 << 20;

impl PerformanceConfig {
    /// The named preset, or `None` for an unknown name.
    pub fn preset(name: &str, cpus: usize) -> Option<PerformanceConfig> {
        let base = PerformanceConfig::default_for(cpus);
        Some(match name {
            "default" => base,
            "high_throughput" => PerformanceConfig {
                max_concurrent_downloads: 50,
                max_concurrent_processing: 2 * cpus,
                origin_timeout: Duration::from_secs(15),
                max_image_bytes: 100 << 20,
                pool_size: 100,
                shared_decode_bytes: 256 << 20,
                processing_budget_bytes: 1 << 30,
                ..base
            },
            "low_latency" => PerformanceConfig {
                max_concurrent_downloads: 10,
                max_concurrent_processing: cpus,
                origin_timeout: Duration::from_secs(10),
                max_image_bytes: 20 << 20,
                pool_size: 25,
                ..base
            },
            "memory_efficient" => PerformanceConfig {
                max_concurrent_downloads: 5,
                max_concurrent_processing: (cpus / 2).max(1),
                origin_timeout: Duration::from_secs(45),
                max_image_bytes: 10 << 20,
                pool_size: 10,
                shared_decode_bytes: 48 << 20,
                eager_memory_release: true,
                response_write_buffer: 16 << 10,
                processing_budget_bytes: 192 << 20,
                ..base
            },
            _ => return None,
        })
    }

    /// No preset: pool 50, keep-alive 60 s, 50 MB sources.
    pub fn default_for(cpus: usize) -> PerformanceConfig {
        PerformanceConfig {
            max_concurrent_downloads: 20,
            max_concurrent_processing: cpus.max(1),
            processing_queue: 256,
            origin_timeout: Duration::from_secs(30),
            origin_connect_timeout: Duration::from_secs(5),
            max_image_bytes: 50 << 20,
            pool_size: 50,
            keepalive: Duration::from_secs(60),
            shared_decode_bytes: 128 << 20,
            eager_memory_release: false,
            response_write_buffer: 64 << 10,
            processing_budget_bytes: DEFAULT_PROCESSING_BUDGET,
        }
    }
}

#[derive(Debug, Clone)]
pub struct CacheConfig {
    /// Byte budget of the memory tier (bodies plus headers).
    pub memory_bytes: u64,
    /// Responses larger than this are not cached.
    pub max_entry_bytes: u64,
    /// How long concurrent misses wait for the one request that is fetching.
    pub lock_timeout: Duration,
    /// Directory of the disk tier; `None` = memory only.
    pub dir: Option<PathBuf>,
    /// Byte budget of the disk tier (whole entry files).
    pub disk_bytes: u64,
}

/// One site: the hosts it answers for and where its originals come from.
#[derive(Debug, Clone)]
pub struct Site {
    /// Lower-case host names without port; `*` matches any host.
    pub hosts: Vec<String>,
    pub origin: Origin,
    /// Hosts an absolute `https://` source URL may point at.
    pub allowed_source_hosts: Vec<String>,
    pub ttl: TtlPolicy,
    /// HTML pages passing through get their images rewritten to the edge; `None` when off.
    pub html_rewrite: Option<HtmlRewrite>,
    /// Non-public ranges absolute source URLs may reach anyway (`allowed_source_ranges`);
    /// empty by default: loopback, private, link-local and the like are refused.
    pub allowed_source_ranges: Arc<[IpNet]>,
    /// Absolute `http://` source URLs allowed (`allow_http_sources`); default false.
    pub allow_http_sources: bool,
    /// Ports absolute source URLs may name besides 80 and 443 (`allowed_source_ports`).
    pub allowed_source_ports: Vec<u16>,
    /// Dotfiles of a `file://` origin served (`allow_dotfiles`); default false: 404.
    pub allow_dotfiles: bool,
}

impl Site {
    /// May an absolute source URL point at `host` (lower-case)? Checked by the edge before
    /// anything is fetched and again by the transform service, which can run alone.
    pub fn allows_source_host(&self, host: &str) -> bool {
        self.allowed_source_hosts.iter().any(|h| h == host)
    }

    /// What fetching `source` may reach, or the public reason it may not be fetched at all
    /// (403). A path, or an absolute URL naming the site's own origin (scheme, host and
    /// port), is the trusted origin: any address. Any other absolute URL needs an allowed
    /// host, `https` (or `allow_http_sources`), port 80, 443 or one of `allowed_source_ports`,
    /// and gets public addresses only, plus `allowed_source_ranges`: the addresses are
    /// checked when connecting (`origin::Reach`), not here.
    pub fn source_access(&self, source: &Source) -> Result<Access, &'static str> {
        let own = Access {
            reach: Reach::Any,
            dotfiles: self.allow_dotfiles,
        };
        let Source::Url {
            https, host, port, ..
        } = source
        else {
            return Ok(own);
        };
        if !self.allows_source_host(host) {
            return Err("source host not allowed");
        }
        let port = port.unwrap_or(if *https { 443 } else { 80 });
        let unbracketed = |h: &str| h.trim_start_matches('[').trim_end_matches(']').to_string();
        if let Origin::Http(o) = &self.origin {
            if o.tls == *https
                && o.port == port
                && unbracketed(&o.host).eq_ignore_ascii_case(&unbracketed(host))
            {
                return Ok(own);
            }
        }
        if !*https && !self.allow_http_sources {
            return Err("http source URLs not allowed");
        }
        if port != 80 && port != 443 && !self.allowed_source_ports.contains(&port) {
            return Err("source port not allowed");
        }
        Ok(Access {
            reach: Reach::Public {
                also: self.allowed_source_ranges.clone(),
            },
            dotfiles: false,
        })
    }
}

/// Bounds on the freshness given to transformed images.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TtlPolicy {
    pub min: Duration,
    pub max: Duration,
    /// Used when the origin says nothing about freshness.
    pub default: Duration,
    /// How long a `404` without explicit freshness is cached (negative caching); zero: never.
    pub negative: Duration,
}

impl TtlPolicy {
    /// The TTL for a variant whose original had `origin_ttl` (None = no explicit freshness).
    pub fn bound(&self, origin_ttl: Option<Duration>) -> Duration {
        origin_ttl.unwrap_or(self.default).clamp(self.min, self.max)
    }
}

/// Where originals come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    Http(HttpOrigin),
    /// A local directory (`file:///srv/images`).
    Dir(PathBuf),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpOrigin {
    pub tls: bool,
    pub host: String,
    pub port: u16,
    /// Path prefix prepended to every request path ("" or "/base", no trailing slash).
    pub base_path: String,
}

impl HttpOrigin {
    /// The `Host` header to send: the port is omitted when it is the scheme's default.
    pub fn host_header(&self) -> String {
        let default_port = if self.tls { 443 } else { 80 };
        if self.port == default_port {
            self.host.clone()
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// Parse `http://host[:port][/base]`, `https://...` or `file:///dir` (relative `file://dir`
/// resolves against `base_dir`).
pub fn parse_origin(s: &str, base_dir: &Path) -> Result<Origin, String> {
    if let Some(rest) = s.strip_prefix("file://") {
        if rest.is_empty() {
            return Err("file:// origin needs a directory".into());
        }
        let p = Path::new(rest);
        let p = if p.is_absolute() {
            p.to_path_buf()
        } else {
            base_dir.join(p)
        };
        return Ok(Origin::Dir(p));
    }
    let (tls, rest) = if let Some(r) = s.strip_prefix("http://") {
        (false, r)
    } else if let Some(r) = s.strip_prefix("https://") {
        (true, r)
    } else {
        return Err(format!(
            "'{s}' must start with http://, https:// or file://"
        ));
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], rest[i..].trim_end_matches('/')),
        None => (rest, ""),
    };
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || authority.starts_with('[') => (
            h,
            p.parse::<u16>().map_err(|_| format!("bad port in '{s}'"))?,
        ),
        _ => (authority, if tls { 443 } else { 80 }),
    };
    if host.is_empty() {
        return Err(format!("no host in '{s}'"));
    }
    Ok(Origin::Http(HttpOrigin {
        tls,
        host: host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string(),
        port,
        base_path: path.to_string(),
    }))
}

/// Environment overrides for containers, applied on top of the file.
#[derive(Debug, Default, Clone)]
pub struct EnvOverrides {
    pub listen: Option<String>,
    pub admin_listen: Option<String>,
    pub origin: Option<String>,
    pub cache_dir: Option<String>,
    pub admin_token: Option<String>,
    /// `IMGATE_HTML_REWRITE=on|off`: the HTML rewrite of the first site.
    pub html_rewrite: Option<String>,
}

impl EnvOverrides {
    pub fn from_env() -> EnvOverrides {
        let get = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        EnvOverrides {
            listen: get("IMGATE_LISTEN"),
            admin_listen: get("IMGATE_ADMIN_LISTEN"),
            origin: get("IMGATE_ORIGIN"),
            cache_dir: get("IMGATE_CACHE_DIR"),
            admin_token: get("IMGATE_ADMIN_TOKEN"),
            html_rewrite: get("IMGATE_HTML_REWRITE"),
        }
    }
}

impl Config {
    /// Load and validate a config file.
    pub fn load(path: &Path, env: &EnvOverrides) -> Result<Config, ConfigError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: file.clone(),
            key: "-".into(),
            message: format!("cannot read: {e}"),
        })?;
        let base = path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        Config::from_yaml(&text, &file, &base, env)
    }

    /// The embedded example config.
    pub fn embedded_default(env: &EnvOverrides) -> Result<Config, ConfigError> {
        Config::from_yaml(
            DEFAULT_CONFIG,
            "<embedded conf/imgate.yaml>",
            Path::new(DEFAULT_CONFIG_DIR),
            env,
        )
    }

    /// Parse and validate YAML text; `file` names it in errors, `base_dir` anchors relative paths.
    pub fn from_yaml(
        text: &str,
        file: &str,
        base_dir: &Path,
        env: &EnvOverrides,
    ) -> Result<Config, ConfigError> {
        let wire: WireConfig = serde_yaml::from_str(text).map_err(|e| ConfigError {
            file: file.into(),
            key: e
                .location()
                .map(|l| format!("line {}", l.line()))
                .unwrap_or_else(|| "-".into()),
            message: e.to_string(),
        })?;
        Config::validate(wire, file, base_dir, env)
    }

    fn validate(
        w: WireConfig,
        file: &str,
        base_dir: &Path,
        env: &EnvOverrides,
    ) -> Result<Config, ConfigError> {
        let err = |key: &str, message: String| ConfigError {
            file: file.into(),
            key: key.into(),
            message,
        };
        let cpus = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1);

        let mut performance = match w.performance.as_deref() {
            None => PerformanceConfig::default_for(cpus),
            Some(name) => PerformanceConfig::preset(name, cpus).ok_or_else(|| {
                err(
                    "performance",
                    format!("unknown preset '{name}': expected high_throughput, low_latency, memory_efficient or default"),
                )
            })?,
        };
        let o = &w.performance_overrides;
        let positive = |key: &str, v: Option<usize>| -> Result<Option<usize>, ConfigError> {
            match v {
                Some(0) => Err(err(
                    &format!("performance_overrides.{key}"),
                    "must be at least 1".into(),
                )),
                v => Ok(v),
            }
        };
        if let Some(v) = positive("max_concurrent_downloads", o.max_concurrent_downloads)? {
            performance.max_concurrent_downloads = v;
        }
        if let Some(v) = positive("max_concurrent_processing", o.max_concurrent_processing)? {
            performance.max_concurrent_processing = v;
        }
        if let Some(v) = o.processing_queue {
            performance.processing_queue = v;
        }
        if let Some(v) = o.origin_timeout_seconds {
            if v == 0 {
                return Err(err(
                    "performance_overrides.origin_timeout_seconds",
                    "must be at least 1".into(),
                ));
            }
            performance.origin_timeout = Duration::from_secs(v);
        }
        if let Some(v) = o.origin_connect_timeout_seconds {
            performance.origin_connect_timeout = Duration::from_secs(v.max(1));
        }
        if let Some(v) = o.max_image_bytes {
            performance.max_image_bytes = v.0;
        }
        if let Some(v) = o.pool_size {
            performance.pool_size = v;
        }
        if let Some(v) = o.keepalive_seconds {
            performance.keepalive = Duration::from_secs(v);
        }
        if let Some(v) = o.shared_decode_size {
            performance.shared_decode_bytes = v.0;
        }
        if let Some(v) = o.eager_memory_release {
            performance.eager_memory_release = v;
        }
        if let Some(v) = o.response_write_buffer {
            // Held by every open client connection: a few MiB would be a memory leak in all but
            // name. Zero sends each write at once.
            if v.0 > MAX_RESPONSE_WRITE_BUFFER {
                return Err(err(
                    "performance_overrides.response_write_buffer",
                    format!("{} is over the limit of 1MiB", v.0),
                ));
            }
            performance.response_write_buffer = v.0 as usize;
        }
        if let Some(v) = o.processing_budget {
            if v.0 < 16 << 20 {
                return Err(err(
                    "performance_overrides.processing_budget",
                    format!("{} is under the minimum of 16MiB", v.0),
                ));
            }
            performance.processing_budget_bytes = v.0;
        }

        let defaults = Limits::default();
        let limits = Limits {
            max_source_pixels: w
                .limits
                .max_source_pixels
                .unwrap_or(defaults.max_source_pixels),
            max_output_dimension: w
                .limits
                .max_output_dimension
                .unwrap_or(defaults.max_output_dimension),
            max_animation_frames: w
                .limits
                .max_animation_frames
                .unwrap_or(defaults.max_animation_frames),
        };
        if limits.max_source_pixels == 0 || limits.max_output_dimension == 0 {
            return Err(err("limits", "limits must be positive".into()));
        }
        let max_output_pixels = w
            .limits
            .max_output_pixels
            .unwrap_or(DEFAULT_MAX_OUTPUT_PIXELS);
        if max_output_pixels == 0 {
            return Err(err("limits.max_output_pixels", "must be positive".into()));
        }
        // `limits.max_source_bytes` is the key; `performance_overrides.max_image_bytes` (older
        // configs) is its deprecated alias, already applied to the preset's default above.
        // Both set to different values is refused: which one wins would be a guess.
        let alias = o.max_image_bytes.map(|b| b.0);
        let max_source_bytes = match (w.limits.max_source_bytes.map(|b| b.0), alias) {
            (Some(key), Some(old)) if key != old => {
                return Err(err(
                    "limits.max_source_bytes",
                    format!(
                        "{key} differs from performance_overrides.max_image_bytes ({old}), its \
                         deprecated alias: set only limits.max_source_bytes"
                    ),
                ))
            }
            (Some(key), _) => key,
            (None, _) => performance.max_image_bytes,
        };
        if max_source_bytes == 0 {
            return Err(err("limits.max_source_bytes", "must be positive".into()));
        }

        let cache = CacheConfig {
            memory_bytes: w.cache.memory_size.map(|b| b.0).unwrap_or(256 << 20),
            max_entry_bytes: w.cache.max_entry_size.map(|b| b.0).unwrap_or(32 << 20),
            lock_timeout: Duration::from_secs(w.cache.lock_timeout_seconds.unwrap_or(30)),
            dir: env.cache_dir.clone().or(w.cache.dir).map(PathBuf::from),
            disk_bytes: w.cache.disk_size.map(|b| b.0).unwrap_or(1 << 30),
        };
        for (key, v) in [
            ("cache.memory_size", cache.memory_bytes),
            ("cache.disk_size", cache.disk_bytes),
        ] {
            if v == 0 {
                return Err(err(key, "must be positive".into()));
            }
        }
        if cache.dir.as_ref().is_some_and(|d| d.as_os_str().is_empty()) {
            return Err(err("cache.dir", "must not be empty".into()));
        }
        let admin_token = env.admin_token.clone().or(w.admin.token);
        if let Some(t) = &admin_token {
            if t.len() < 16 || !t.bytes().all(|b| b.is_ascii_graphic()) {
                return Err(err(
                    "admin.token",
                    "must be at least 16 printable characters without spaces".into(),
                ));
            }
        }

        if w.sites.is_empty() {
            return Err(err("sites", "at least one site is required".into()));
        }
        let mut sites = Vec::with_capacity(w.sites.len());
        let html_switch = match env.html_rewrite.as_deref() {
            None => None,
            Some("on") => Some(true),
            Some("off") => Some(false),
            Some(other) => {
                return Err(err(
                    "IMGATE_HTML_REWRITE",
                    format!("'{other}' must be on or off"),
                ))
            }
        };
        for (i, mut s) in w.sites.into_iter().enumerate() {
            if let (0, Some(on)) = (i, html_switch) {
                s.html_rewrite.get_or_insert_with(Default::default).enabled = on;
            }
            sites.push(validate_site(s, i, env, base_dir).map_err(|(k, m)| err(&k, m))?);
        }

        let listen = env
            .listen
            .clone()
            .or(w.listen)
            .unwrap_or_else(|| "127.0.0.1:8080".into());
        let admin_listen = env
            .admin_listen
            .clone()
            .or(w.admin_listen)
            .unwrap_or_else(|| "127.0.0.1:9090".into());
        for (key, addr) in [("listen", &listen), ("admin_listen", &admin_listen)] {
            addr.parse::<std::net::SocketAddr>().map_err(|_| {
                err(
                    key,
                    format!("'{addr}' is not an address like 127.0.0.1:8080"),
                )
            })?;
        }
        let transform_socket = match w.transform_socket {
            Some(p) => PathBuf::from(p),
            None => {
                std::env::temp_dir().join(format!("imgate-transform-{}.sock", std::process::id()))
            }
        };

        let mut server = w.pingora.unwrap_or_default();
        if server.threads == 0 {
            server.threads = cpus;
        }
        // Passthrough goes through Pingora's proxy connector, whose idle pool is one LRU for
        // every upstream: size it as `pool_size` per distinct HTTP origin so each site's origin
        // has room for its share (the transform fetcher keeps a strict pool per host).
        let http_origins: std::collections::HashSet<(bool, &str, u16)> = sites
            .iter()
            .filter_map(|s| match &s.origin {
                Origin::Http(o) => Some((o.tls, o.host.as_str(), o.port)),
                Origin::Dir(_) => None,
            })
            .collect();
        server.upstream_keepalive_pool_size = performance.pool_size * http_origins.len().max(1);
        let trusted_proxies =
            TrustedProxies::parse(&w.trusted_proxies).map_err(|m| err("trusted_proxies", m))?;
        let access_log = validate_access_log(w.access_log).map_err(|(k, m)| err(&k, m))?;
        let clients = validate_clients(&w.clients).map_err(|(k, m)| err(&k, m))?;
        Ok(Config {
            server,
            listen,
            admin_listen,
            transform_socket,
            performance,
            cache,
            limits,
            max_source_bytes,
            max_output_pixels,
            admin_token,
            sites,
            trusted_proxies,
            access_log,
            clients,
        })
    }

    /// The site answering for `host` (port stripped, case-insensitive): an exact match first,
    /// then a `*` site.
    pub fn site_for(&self, host: &str) -> Option<(usize, &Site)> {
        let host = strip_port(host).to_ascii_lowercase();
        self.sites
            .iter()
            .enumerate()
            .find(|(_, s)| s.hosts.contains(&host))
            .or_else(|| {
                self.sites
                    .iter()
                    .enumerate()
                    .find(|(_, s)| s.hosts.iter().any(|h| h == "*"))
            })
    }
}

fn validate_site(
    s: WireSite,
    i: usize,
    env: &EnvOverrides,
    base_dir: &Path,
) -> Result<Site, (String, String)> {
    let key = |k: &str| format!("sites[{i}].{k}");
    let origin_text = env.origin.clone().unwrap_or(s.origin);
    let origin = parse_origin(&origin_text, base_dir).map_err(|m| (key("origin"), m))?;
    let hosts: Vec<String> = if s.hosts.is_empty() {
        vec!["*".into()]
    } else {
        s.hosts
            .iter()
            .map(|h| h.trim().to_ascii_lowercase())
            .collect()
    };
    if hosts.iter().any(|h| h.is_empty()) {
        return Err((key("hosts"), "empty host name".into()));
    }
    let min = Duration::from_secs(s.ttl.min_seconds.unwrap_or(60));
    let max = Duration::from_secs(s.ttl.max_seconds.unwrap_or(365 * 24 * 3600));
    let default = Duration::from_secs(s.ttl.default_seconds.unwrap_or(24 * 3600));
    let negative = Duration::from_secs(s.ttl.negative_seconds.unwrap_or(10));
    if negative > Duration::from_secs(3600) {
        return Err((
            key("ttl.negative_seconds"),
            "at most 3600: a missing image should not stay missing for long".into(),
        ));
    }
    if min > max {
        return Err((
            key("ttl"),
            format!(
                "min_seconds ({}) exceeds max_seconds ({})",
                min.as_secs(),
                max.as_secs()
            ),
        ));
    }
    let allowed_source_hosts: Vec<String> = s
        .allowed_source_hosts
        .iter()
        .map(|h| h.to_ascii_lowercase())
        .collect();
    let html_rewrite = match s.html_rewrite {
        Some(h) if h.enabled => Some(
            validate_html_rewrite(h, &hosts, &allowed_source_hosts)
                .map_err(|(k, m)| (key(&format!("html_rewrite.{k}")), m))?,
        ),
        _ => None,
    };
    let mut allowed_source_ranges = Vec::with_capacity(s.allowed_source_ranges.len());
    for range in &s.allowed_source_ranges {
        allowed_source_ranges.push(parse_range(range).ok_or_else(|| {
            (
                key("allowed_source_ranges"),
                format!("'{range}' is not an address range like 10.1.0.0/16 or fd00::/8"),
            )
        })?);
    }
    if s.allowed_source_ports.contains(&0) {
        return Err((key("allowed_source_ports"), "0 is not a port".into()));
    }
    Ok(Site {
        hosts,
        origin,
        allowed_source_hosts,
        ttl: TtlPolicy {
            min,
            max,
            default,
            negative,
        },
        html_rewrite,
        allowed_source_ranges: allowed_source_ranges.into(),
        allow_http_sources: s.allow_http_sources.unwrap_or(false),
        allowed_source_ports: s.allowed_source_ports,
        allow_dotfiles: s.allow_dotfiles.unwrap_or(false),
    })
}

/// `10.1.0.0/16`, `fd00::/8`, or a single address (`127.0.0.1`, `::1`); host bits dropped.
fn parse_range(text: &str) -> Option<IpNet> {
    let text = text.trim();
    let net = match text.parse::<IpNet>() {
        Ok(net) => net,
        Err(_) => IpNet::from(text.parse::<std::net::IpAddr>().ok()?),
    };
    Some(net.trunc())
}

/// Defaults from [`RewriteOptions::default`]; errors name the key below `html_rewrite`.
fn validate_html_rewrite(
    h: WireHtmlRewrite,
    hosts: &[String],
    allowed_source_hosts: &[String],
) -> Result<HtmlRewrite, (String, String)> {
    let defaults = RewriteOptions::default();
    let mut widths = h.widths.unwrap_or(defaults.widths);
    widths.sort_unstable();
    widths.dedup();
    if widths.is_empty() || widths.iter().any(|w| !(1..=12_000).contains(w)) {
        return Err(("widths".into(), "a list of widths from 1 to 12000".into()));
    }
    let mut densities = h.densities.unwrap_or(defaults.densities);
    densities.sort_unstable();
    densities.dedup();
    if densities.is_empty() || densities.iter().any(|d| !(1..=4).contains(d)) {
        return Err(("densities".into(), "a list of densities from 1 to 4".into()));
    }
    let sizes = h.sizes.unwrap_or(defaults.sizes);
    if sizes.trim().is_empty() {
        return Err(("sizes".into(), "must not be empty".into()));
    }
    Ok(HtmlRewrite::new(RewriteOptions {
        widths,
        densities,
        sizes,
        lazy_loading: h.lazy_loading.unwrap_or(defaults.lazy_loading),
        eager_images: h.eager_images.unwrap_or(defaults.eager_images),
        own_hosts: hosts.iter().filter(|h| *h != "*").cloned().collect(),
        allowed_source_hosts: allowed_source_hosts.to_vec(),
    }))
}

/// On by default, JSON lines to stdout; `None` when `enabled: false`.
fn validate_access_log(w: WireAccessLog) -> Result<Option<AccessLogConfig>, (String, String)> {
    if w.enabled == Some(false) {
        return Ok(None);
    }
    let format = match w.format.as_deref() {
        None | Some("json") => LogFormat::Json,
        Some("combined") => LogFormat::Combined,
        Some(other) => {
            return Err((
                "access_log.format".into(),
                format!("'{other}' must be json or combined"),
            ))
        }
    };
    let target = match w.path.as_deref() {
        None | Some("stdout") => LogTarget::Stdout,
        Some("") => return Err(("access_log.path".into(), "must not be empty".into())),
        Some(path) => LogTarget::File(PathBuf::from(path)),
    };
    Ok(Some(AccessLogConfig { format, target }))
}

/// `clients`: defaults from [`ClientLimits::default`]; errors name the key.
fn validate_clients(w: &wire::WireClients) -> Result<ClientLimits, (String, String)> {
    let defaults = ClientLimits::default();
    let seconds = |key: &str, v: Option<u64>, default: Duration| match v {
        None => Ok(default),
        Some(0) => Err((format!("clients.{key}"), "must be at least 1".to_string())),
        Some(s) => Ok(Duration::from_secs(s)),
    };
    let max_header_bytes = match w.max_header_size {
        None => defaults.max_header_bytes,
        Some(b) if (MIN_HEADER_SIZE..=MAX_HEADER_SIZE).contains(&b.0) => b.0 as usize,
        Some(b) => {
            return Err((
                "clients.max_header_size".into(),
                format!("{} is outside 1KiB..1MiB", b.0),
            ))
        }
    };
    Ok(ClientLimits {
        header_timeout: seconds(
            "header_timeout_seconds",
            w.header_timeout_seconds,
            defaults.header_timeout,
        )?,
        keepalive_timeout: seconds(
            "keepalive_timeout_seconds",
            w.keepalive_timeout_seconds,
            defaults.keepalive_timeout,
        )?,
        max_header_bytes,
    })
}

/// `example.com:8080` -> `example.com`; `[::1]:80` -> `[::1]`.
pub fn strip_port(host: &str) -> &str {
    if host.starts_with('[') {
        return host
            .split_once(']')
            .map(|(h, _)| &host[..h.len() + 1])
            .unwrap_or(host);
    }
    host.rsplit_once(':').map(|(h, _)| h).unwrap_or(host)
}

#[cfg(test)]
mod tests;
