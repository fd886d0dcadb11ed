//! The validated config: the types the rest of the crate reads (`Config`, `Site`, `Origin`,
//! `PerformanceConfig`...), with the presets' values and the few lookups on them. Built only by
//! `validate.rs`.

use crate::access_log::AccessLogConfig;
use crate::dialect::UrlPolicy;
use crate::forwarded::TrustedProxies;
use crate::origin::{Access, Reach};
use crate::pipeline::{Limits, Placement};
use crate::rewrite::HtmlRewrite;
use crate::route::{self, Source};
use bytes::Bytes;
use ipnet::IpNet;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

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
    /// The `pingora:` section as written, for `server::build`, which makes Pingora's
    /// `ServerConf` from it and the three values below (Pingora's type is never kept here).
    pub pingora: Option<serde_yaml::Value>,
    /// Worker threads of each Pingora service (`pingora.threads`; 0: one per CPU).
    pub threads: usize,
    /// CA bundle trusted for TLS origins (`pingora.ca_file`); `None`: the system roots.
    pub ca_file: Option<String>,
    /// Idle upstream connections the passthrough proxy keeps: `pool_size` per distinct HTTP
    /// origin.
    pub passthrough_pool_size: usize,
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
    /// `None`: this node is on its own.
    pub cluster: Option<ClusterConfig>,
    /// `None`: no TLS listener.
    pub tls: Option<TlsConfig>,
}

/// The edge's TLS listener: HTTP/2 and HTTP/1.1 by ALPN, the certificate chosen by SNI.
#[derive(Debug, Clone)]
pub struct TlsConfig {
    pub listen: String,
    pub certificates: Vec<CertificateFiles>,
    /// For a name no listed certificate covers; `None`: the handshake is refused.
    pub default_certificate: Option<CertificateFiles>,
    /// Plain-HTTP requests are redirected to HTTPS (`308`), ACME HTTP-01 challenges excepted.
    pub redirect_http: bool,
    /// The `Strict-Transport-Security` value HTTPS responses carry, when configured.
    pub hsts: Option<String>,
    /// Handshakes offering only older versions are refused.
    pub min_version: TlsVersion,
    /// `None`: certificates from files only.
    pub acme: Option<AcmeConfig>,
}

/// A TLS protocol version the edge accepts at least.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum TlsVersion {
    V1_2,
    V1_3,
}

impl TlsVersion {
    /// The version's number on the wire (`supported_versions`).
    pub fn wire(self) -> u16 {
        match self {
            TlsVersion::V1_2 => 0x0303,
            TlsVersion::V1_3 => 0x0304,
        }
    }
}

/// Certificates from an ACME CA for `hosts`, kept in `storage`, renewed when a third of their
/// lifetime is left.
#[derive(Debug, Clone)]
pub struct AcmeConfig {
    pub directory: String,
    pub email: Option<String>,
    pub hosts: Vec<String>,
    pub storage: PathBuf,
    pub ca_file: Option<PathBuf>,
    pub challenge: AcmeChallenge,
    /// Backoff after a failed order: the first wait, doubled after each failure up to `retry_max`.
    pub retry_initial: Duration,
    pub retry_max: Duration,
}

/// How the CA checks that this server answers for a host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AcmeChallenge {
    /// A token fetched over plain HTTP at `/.well-known/acme-challenge/` (port 80).
    Http01,
    /// A special certificate presented on the TLS listener to ALPN `acme-tls/1` (port 443).
    TlsAlpn01,
}

impl TlsConfig {
    /// The port of the TLS listener (what a redirect names unless it is 443).
    pub fn port(&self) -> u16 {
        self.listen
            .parse::<std::net::SocketAddr>()
            .map_or(443, |a| a.port())
    }
}

/// A certificate and its key, as files, and the host names it serves (lower case; a leading
/// `*.` covers one label).
#[derive(Debug, Clone)]
pub struct CertificateFiles {
    pub hosts: Vec<String>,
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Cluster mode: the nodes listed in `peers` share one cache. Each original has an owner on a
/// consistent-hash ring; a node asks the owner for what it misses over the owner's cluster
/// listener, and purges reach every node through Redis.
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    /// Where this node's cluster listener binds.
    pub listen: std::net::SocketAddr,
    /// This node as the peers list names it (`advertise`, else `listen`).
    pub me: std::net::SocketAddr,
    /// The peers' cluster listeners, `host:port`; names are resolved (and again every
    /// `discovery_interval`), a name may stand for several nodes.
    pub peers: Vec<String>,
    pub token: String,
    pub redis_url: Option<String>,
    pub keep_copies: bool,
    pub health_check_interval: Duration,
    pub discovery_interval: Duration,
    /// How long a node waits for an owner's answer before doing the work itself.
    pub peer_timeout: Duration,
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

/// Concurrency, timeouts and pooling, set by a preset (`performance`: `default`, `low_latency`,
/// `high_throughput`, `memory_efficient`); every field can be overridden in
/// `performance_overrides`.
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
    /// buffers, encoder working sets; `cpu::cost`): a burst of expensive jobs queues
    /// instead of multiplying, and a job costing more than all of it is refused with 413.
    /// The trap: it is also the largest job this server makes, so set too low it refuses
    /// large outputs; the memory tier, shared decodes and originals (`source_budget_bytes`)
    /// are outside it.
    pub processing_budget_bytes: u64,
    /// Bytes of originals held in memory at once: from the moment a download's size is known
    /// (or, unknown, the most it may be) until the last job using it ends. Downloads wait for
    /// room, so a burst of misses over many large originals queues at the origin instead of
    /// holding every original while the jobs wait for the CPU pool. At least
    /// `max_source_bytes` (raised to it when not set).
    pub source_budget_bytes: u64,
}

/// `processing_budget` of the `default` and `low_latency` presets; see the report of
/// the change that set it and BENCHMARKS.md for the measurements behind it.
const DEFAULT_PROCESSING_BUDGET: u64 = 512 << 20;

/// `limits.max_output_pixels` by default: 24 MP, a 6000x4000 camera frame (the largest
/// common original passed through at full size) and 4K (3840x2160) at `dpr=2` on one side.
pub const DEFAULT_MAX_OUTPUT_PIXELS: u64 = 24_000_000;

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
                source_budget_bytes: 256 << 20,
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
                source_budget_bytes: 48 << 20,
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
            source_budget_bytes: 128 << 20,
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
    /// Which transform URLs the site serves: signatures, presets, allowed values.
    pub urls: UrlPolicy,
    /// Overlays `watermark=<name>` lays, by name.
    pub watermarks: BTreeMap<String, WatermarkDef>,
}

/// One configured watermark: its picture and how it is laid (before a URL's adjustments).
#[derive(Debug, Clone)]
pub struct WatermarkDef {
    pub image: OverlayImage,
    pub placement: Placement,
}

/// Where a watermark's picture comes from.
#[derive(Clone)]
pub enum OverlayImage {
    /// A local file, read (and checked to decode) when the config was loaded.
    File(Bytes),
    /// A path on the site's origin, fetched like an original.
    Source(String),
}

impl std::fmt::Debug for OverlayImage {
    /// The bytes never printed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OverlayImage::File(b) => write!(f, "File({} bytes)", b.len()),
            OverlayImage::Source(p) => write!(f, "Source({p:?})"),
        }
    }
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
        if !self.allows_source_host(host) {
            return Err("source host not allowed");
        }
        route::check_source_scheme_and_port(
            *https,
            Some(port),
            self.allow_http_sources,
            &self.allowed_source_ports,
        )?;
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

impl Config {
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
