//! The YAML config as written by operators: serde structs that reject unknown keys. Nothing
//! outside `config` uses these types; they are converted once into [`super::Config`].

use serde::Deserialize;

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct WireConfig {
    /// Pingora's own server section (threads, grace periods, pid file...), kept as written:
    /// validation reads it as Pingora's `ServerConf`, and `server::build` makes that from it.
    #[serde(default)]
    pub pingora: Option<serde_yaml::Value>,
    pub listen: Option<String>,
    pub admin_listen: Option<String>,
    pub transform_socket: Option<String>,
    pub performance: Option<String>,
    #[serde(default)]
    pub performance_overrides: WirePerformance,
    #[serde(default)]
    pub cache: WireCache,
    #[serde(default)]
    pub limits: WireLimits,
    #[serde(default)]
    pub admin: WireAdmin,
    #[serde(default)]
    pub sites: Vec<WireSite>,
    /// Address ranges (CIDR) of proxies in front of the edge whose `X-Forwarded-*` are believed.
    #[serde(default)]
    pub trusted_proxies: Vec<String>,
    #[serde(default)]
    pub access_log: WireAccessLog,
    #[serde(default)]
    pub clients: WireClients,
    /// Cluster mode; absent (and no `IMGATE_CLUSTER_LISTEN`): one node on its own.
    pub cluster: Option<WireCluster>,
    /// HTTPS (and HTTP/2) to clients; absent (and no `IMGATE_TLS_LISTEN`): plain HTTP only.
    pub tls: Option<WireTls>,
}

/// `tls`: the edge's TLS listener and the certificates it serves, chosen by SNI.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct WireTls {
    pub listen: Option<String>,
    #[serde(default)]
    pub certificates: Vec<WireCertificate>,
    /// Served when the client's SNI names no listed host (or it sends none); absent: such
    /// handshakes are refused.
    pub default_certificate: Option<WireCertificate>,
    /// Answer plain-HTTP requests with a redirect to HTTPS (ACME challenges excepted).
    pub redirect_http: Option<bool>,
    /// `Strict-Transport-Security` on HTTPS responses; absent or 0: not sent.
    pub hsts_max_age_seconds: Option<u64>,
    pub hsts_include_subdomains: Option<bool>,
    /// The oldest TLS version a client may use: `"1.2"` (the default) or `"1.3"`.
    pub min_version: Option<String>,
    /// Certificates obtained (and renewed) from an ACME CA for these hosts.
    pub acme: Option<WireAcme>,
}

/// `tls.acme`: an ACME (RFC 8555) account and the hosts it gets certificates for.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct WireAcme {
    /// The CA's directory URL (Let's Encrypt: `https://acme-v02.api.letsencrypt.org/directory`).
    pub directory: Option<String>,
    /// The account's contact address.
    pub email: Option<String>,
    #[serde(default)]
    pub hosts: Vec<String>,
    /// Where the account key and the certificates are kept between runs.
    pub storage: Option<String>,
    /// The CA's root certificate (PEM), for a CA the system does not trust (a test CA).
    pub ca_file: Option<String>,
    /// `http-01` (the default: on the plain listener) or `tls-alpn-01` (on the TLS listener).
    pub challenge: Option<String>,
    /// After a failed order, the first retry waits this long (60), doubling up to
    /// `retry_max_seconds` (3600).
    pub retry_initial_seconds: Option<u64>,
    pub retry_max_seconds: Option<u64>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct WireCertificate {
    /// Host names it serves; `*.example.com` covers one label.
    #[serde(default)]
    pub hosts: Vec<String>,
    /// PEM chain, leaf first.
    pub cert: String,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key: String,
}

/// `cluster`: this node's place in a group of nodes acting as one cache.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct WireCluster {
    /// This node's cluster listener (`host:port`), which answers peers only.
    pub listen: Option<String>,
    /// How peers reach this node, when `listen` is a wildcard (`0.0.0.0:8091`).
    pub advertise: Option<String>,
    /// Every node's cluster listener, this one's included; a name may stand for several
    /// (a Kubernetes headless Service) and is resolved again periodically.
    #[serde(default)]
    pub peers: Vec<String>,
    /// Shared secret every node sends and checks.
    pub token: Option<String>,
    /// Redis carrying purges between nodes (`redis://host:port/db`).
    pub redis_url: Option<String>,
    /// Whether a node keeps its own copy of what an owner answered (default true).
    pub keep_copies: Option<bool>,
    pub health_check_interval_seconds: Option<u64>,
    pub discovery_interval_seconds: Option<u64>,
    pub peer_timeout_seconds: Option<u64>,
}

/// `access_log`: one line per request.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct WireAccessLog {
    pub enabled: Option<bool>,
    /// `json` or `combined`.
    pub format: Option<String>,
    /// `stdout` or a file path.
    pub path: Option<String>,
}

/// `clients`: how long and how much the edge listener waits for a client's request head.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct WireClients {
    pub header_timeout_seconds: Option<u64>,
    pub keepalive_timeout_seconds: Option<u64>,
    pub max_header_size: Option<ByteSize>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct WireAdmin {
    /// Bearer token for `POST /purge` and `POST /warm`; absent = those endpoints refuse.
    pub token: Option<String>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct WirePerformance {
    pub max_concurrent_downloads: Option<usize>,
    pub max_concurrent_processing: Option<usize>,
    pub processing_queue: Option<usize>,
    pub origin_timeout_seconds: Option<u64>,
    pub origin_connect_timeout_seconds: Option<u64>,
    /// Deprecated alias of `limits.max_source_bytes` (kept for existing configs).
    pub max_image_bytes: Option<ByteSize>,
    pub pool_size: Option<usize>,
    pub keepalive_seconds: Option<u64>,
    pub shared_decode_size: Option<ByteSize>,
    pub eager_memory_release: Option<bool>,
    pub response_write_buffer: Option<ByteSize>,
    pub processing_budget: Option<ByteSize>,
    pub source_budget: Option<ByteSize>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct WireCache {
    pub memory_size: Option<ByteSize>,
    pub max_entry_size: Option<ByteSize>,
    pub lock_timeout_seconds: Option<u64>,
    pub dir: Option<String>,
    pub disk_size: Option<ByteSize>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct WireLimits {
    pub max_source_bytes: Option<ByteSize>,
    pub max_source_pixels: Option<u64>,
    pub max_output_dimension: Option<u32>,
    pub max_animation_frames: Option<u32>,
    pub max_output_pixels: Option<u64>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct WireSite {
    #[serde(default)]
    pub hosts: Vec<String>,
    pub origin: String,
    #[serde(default)]
    pub allowed_source_hosts: Vec<String>,
    #[serde(default)]
    pub ttl: WireTtl,
    pub html_rewrite: Option<WireHtmlRewrite>,
    /// Address ranges (CIDR or single addresses) absolute source URLs may reach although
    /// they are not public (`10.1.0.0/16`, `127.0.0.1`).
    #[serde(default)]
    pub allowed_source_ranges: Vec<String>,
    /// Absolute `http://` source URLs; default false (https only).
    pub allow_http_sources: Option<bool>,
    /// Ports absolute source URLs may name besides 80 and 443.
    #[serde(default)]
    pub allowed_source_ports: Vec<u16>,
    /// Serve dotfiles (`/.env`, `/.git/...`) of a `file://` origin; default false (404).
    pub allow_dotfiles: Option<bool>,
    /// Signed transform URLs: keys (hex) and whether unsigned URLs are refused.
    pub signing: Option<WireSigning>,
    /// Named option strings, used as `preset=<name>`.
    #[serde(default)]
    pub presets: std::collections::BTreeMap<String, String>,
    /// Refuse every option but `preset=`; default false.
    pub presets_only: Option<bool>,
    /// Widths transform URLs may ask for; empty: any.
    #[serde(default)]
    pub allowed_widths: Vec<u32>,
    /// Qualities transform URLs may ask for; empty: any.
    #[serde(default)]
    pub allowed_qualities: Vec<u8>,
    /// imgproxy URLs served under a prefix.
    pub imgproxy: Option<WireImgproxy>,
    /// The Next.js image optimizer on `/_next/image`.
    pub nextjs: Option<WireNextjs>,
    /// thumbor URLs served under a prefix.
    pub thumbor: Option<WireThumbor>,
    /// Named overlays, laid with `watermark=<name>`.
    #[serde(default)]
    pub watermarks: std::collections::BTreeMap<String, WireWatermark>,
}

/// `sites[].watermarks.<name>`: an overlay and how it is laid.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct WireWatermark {
    /// A local file, relative to the config file's directory; read once, at load.
    pub file: Option<String>,
    /// A path on the site's origin, fetched (and kept) like an original.
    pub source: Option<String>,
    /// `bottom-right` (default), another gravity name, `<x>x<y>`, or `tile`.
    pub position: Option<String>,
    /// Pixels from the edges it is placed against (both axes), or between tiles; default 0.
    pub offset: Option<u16>,
    pub offset_x: Option<u16>,
    pub offset_y: Option<u16>,
    /// 0 to 1; default 1.
    pub opacity: Option<f64>,
    /// Its width as a fraction of the output's (above 0, up to 1); default: its own size.
    pub scale: Option<f64>,
}

/// `sites[].thumbor`.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct WireThumbor {
    /// Default `/thumbor`; `/` for a host that serves only thumbor URLs.
    pub prefix: Option<String>,
    /// thumbor's `SECURITY_KEY` (text, as thumbor takes it).
    pub security_key: Option<String>,
    /// `unsafe` URLs; default: only when no security key is set.
    pub allow_unsafe: Option<bool>,
}

/// `sites[].nextjs`: Next.js 16's `images` settings of the same names.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct WireNextjs {
    #[serde(default)]
    pub enabled: bool,
    pub device_sizes: Option<Vec<u32>>,
    pub image_sizes: Option<Vec<u32>>,
    pub qualities: Option<Vec<u8>>,
    /// MIME types, as Next.js writes them: `image/webp`, `image/avif`.
    pub formats: Option<Vec<String>>,
}

/// `sites[].imgproxy`.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct WireImgproxy {
    /// Default `/imgproxy`; `/` for a host that serves only imgproxy URLs.
    pub prefix: Option<String>,
    /// Which of the site's `watermarks` imgproxy's `wm` option lays; unset: `wm` is refused.
    pub watermark: Option<String>,
}

/// `sites[].signing`.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct WireSigning {
    #[serde(default)]
    pub keys: Vec<WireSigningKey>,
    pub required: Option<bool>,
}

/// One `sites[].signing.keys` entry: key and salt in hex.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WireSigningKey {
    pub key: String,
    #[serde(default)]
    pub salt: String,
}

/// `sites[].html_rewrite`: `<img>` URLs in the site's HTML pages rewritten to the edge.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct WireHtmlRewrite {
    #[serde(default)]
    pub enabled: bool,
    pub widths: Option<Vec<u32>>,
    pub densities: Option<Vec<u8>>,
    pub sizes: Option<String>,
    pub lazy_loading: Option<bool>,
    pub eager_images: Option<usize>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct WireTtl {
    pub min_seconds: Option<u64>,
    pub max_seconds: Option<u64>,
    pub default_seconds: Option<u64>,
    pub negative_seconds: Option<u64>,
}

/// A byte count written as a number (`1048576`) or with a unit (`512KB`, `256MiB`, `1GB`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteSize(pub u64);

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            N(u64),
            S(String),
        }
        match Raw::deserialize(d)? {
            Raw::N(n) => Ok(ByteSize(n)),
            Raw::S(s) => parse_byte_size(&s)
                .map(ByteSize)
                .map_err(serde::de::Error::custom),
        }
    }
}

/// Parse `512`, `512B`, `64KB`, `64KiB`, `256MB`, `1GiB` (KB/MB/GB are powers of 1024 too, as
/// operators mean them for cache sizes).
pub fn parse_byte_size(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("bad size '{s}': expected e.g. 256MB"))?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        other => return Err(format!("bad size unit '{other}' in '{s}'")),
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("size '{s}' overflows"))
}
