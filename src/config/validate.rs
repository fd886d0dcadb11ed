//! Validation: the wire structs (and the environment overrides) turned into [`Config`], one
//! function per config section, each naming the key of what it refuses. Runs once at start;
//! must not read files or the environment itself (loading does).

use super::env::EnvOverrides;
use super::model::{
    AcmeChallenge, AcmeConfig, CacheConfig, CertificateFiles, ClientLimits, ClusterConfig, Config,
    ConfigError, HttpOrigin, Origin, PerformanceConfig, Site, TlsConfig, TlsVersion, TtlPolicy,
    DEFAULT_MAX_OUTPUT_PIXELS,
};
use super::wire::{
    WireAccessLog, WireAcme, WireAdmin, WireCache, WireCertificate, WireClients, WireCluster,
    WireConfig, WireHtmlRewrite, WireLimits, WirePerformance, WireSite, WireTls,
};
use crate::access_log::{AccessLogConfig, Format as LogFormat, Target as LogTarget};
use crate::dialect::UrlPolicy;
use crate::forwarded::TrustedProxies;
use crate::pipeline::Limits;
use crate::rewrite::{HtmlRewrite, RewriteOptions};
use ipnet::IpNet;
use pingora::server::configuration::ServerConf;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The whole config: each section in turn, then what spans sections (the passthrough pool).
pub(super) fn config(
    w: WireConfig,
    file: &str,
    base_dir: &Path,
    env: &EnvOverrides,
) -> Result<Config, ConfigError> {
    let err = |(key, message): (String, String)| ConfigError {
        file: file.into(),
        key,
        message,
    };
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let performance =
        performance(w.performance.as_deref(), &w.performance_overrides, cpus).map_err(err)?;
    let source = limits(
        &w.limits,
        w.performance_overrides.max_image_bytes.map(|b| b.0),
        performance.max_image_bytes,
    )
    .map_err(err)?;
    let performance = source_budget(
        performance,
        w.performance_overrides.source_budget.map(|b| b.0),
        source.max_source_bytes,
    )
    .map_err(err)?;
    let cache = cache(w.cache, env).map_err(err)?;
    let admin_token = admin_token(w.admin, env).map_err(err)?;
    let sites = sites(w.sites, env, base_dir).map_err(err)?;
    let (listen, admin_listen) = listeners(w.listen, w.admin_listen, env).map_err(err)?;
    let transform_socket = match w.transform_socket {
        Some(p) => PathBuf::from(p),
        None => std::env::temp_dir().join(format!("imgate-transform-{}.sock", std::process::id())),
    };
    let (threads, ca_file) = pingora(w.pingora.as_ref(), cpus).map_err(err)?;
    let passthrough_pool_size = passthrough_pool_size(performance.pool_size, &sites);
    let trusted_proxies = TrustedProxies::parse(&w.trusted_proxies)
        .map_err(|m| err(("trusted_proxies".into(), m)))?;
    let access_log = access_log(w.access_log).map_err(err)?;
    let clients = clients(&w.clients).map_err(err)?;
    let cluster = cluster(w.cluster, env, &listen, &admin_listen).map_err(err)?;
    let tls = tls(w.tls, env, base_dir, &listen, &admin_listen).map_err(err)?;
    Ok(Config {
        pingora: w.pingora,
        threads,
        ca_file,
        passthrough_pool_size,
        listen,
        admin_listen,
        transform_socket,
        performance,
        cache,
        limits: source.limits,
        max_source_bytes: source.max_source_bytes,
        max_output_pixels: source.max_output_pixels,
        admin_token,
        sites,
        trusted_proxies,
        access_log,
        clients,
        cluster,
        tls,
    })
}

/// `tls`, with `IMGATE_TLS_LISTEN`. On when a TLS listener is set; then at least one
/// certificate (listed or default) is required. Files are relative to the config's directory
/// and read when the server starts.
fn tls(
    w: Option<WireTls>,
    env: &EnvOverrides,
    base_dir: &Path,
    listen: &str,
    admin_listen: &str,
) -> Result<Option<TlsConfig>, (String, String)> {
    let w = w.unwrap_or_default();
    let Some(addr) = env.tls_listen.clone().or(w.listen) else {
        if !w.certificates.is_empty() || w.default_certificate.is_some() || w.acme.is_some() {
            return Err((
                "tls.listen".into(),
                "is required with certificates (or IMGATE_TLS_LISTEN)".into(),
            ));
        }
        return Ok(None);
    };
    extra_listener("tls.listen", &addr, "0.0.0.0:443", listen, admin_listen)?;
    let files = |key: &str, c: WireCertificate, need_hosts: bool| {
        if need_hosts && c.hosts.is_empty() {
            return Err((
                format!("{key}.hosts"),
                "must name at least one host".to_string(),
            ));
        }
        Ok(CertificateFiles {
            hosts: host_names(&format!("{key}.hosts"), c.hosts, true)?,
            cert: base_dir.join(c.cert),
            key: base_dir.join(c.key),
        })
    };
    let mut certificates = Vec::new();
    for (i, c) in w.certificates.into_iter().enumerate() {
        certificates.push(files(&format!("tls.certificates[{i}]"), c, true)?);
    }
    let default_certificate = match w.default_certificate {
        Some(c) => Some(files("tls.default_certificate", c, false)?),
        None => None,
    };
    let acme = match w.acme {
        Some(a) => Some(acme(a, base_dir)?),
        None => None,
    };
    if certificates.is_empty() && default_certificate.is_none() && acme.is_none() {
        return Err((
            "tls.certificates".into(),
            "a TLS listener needs at least one certificate (or tls.acme)".into(),
        ));
    }
    let min_version = match w.min_version.as_deref() {
        None | Some("1.2") => TlsVersion::V1_2,
        Some("1.3") => TlsVersion::V1_3,
        Some(other) => {
            return Err((
                "tls.min_version".into(),
                format!("'{other}' is not one of \"1.2\", \"1.3\""),
            ))
        }
    };
    let hsts = match w.hsts_max_age_seconds.unwrap_or(0) {
        0 => None,
        age if w.hsts_include_subdomains.unwrap_or(false) => {
            Some(format!("max-age={age}; includeSubDomains"))
        }
        age => Some(format!("max-age={age}")),
    };
    Ok(Some(TlsConfig {
        listen: addr,
        certificates,
        default_certificate,
        redirect_http: w.redirect_http.unwrap_or(false),
        hsts,
        min_version,
        acme,
    }))
}

/// Host names as certificates name them, lower-cased: letters, digits, `-` and `.`, and a
/// leading `*.` (covering one label) where `wildcards` allows it.
fn host_names(
    key: &str,
    names: Vec<String>,
    wildcards: bool,
) -> Result<Vec<String>, (String, String)> {
    let mut hosts = Vec::with_capacity(names.len());
    for h in names {
        let name = match h.strip_prefix("*.") {
            Some(parent) if wildcards => parent,
            _ => &h,
        };
        let ok = !name.is_empty()
            && !name.starts_with('.')
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
        if !ok {
            let what = if wildcards {
                "a host name (or *.name)"
            } else {
                "a host name (no wildcards)"
            };
            return Err((key.to_string(), format!("'{h}' is not {what}")));
        }
        hosts.push(h.to_ascii_lowercase());
    }
    Ok(hosts)
}

/// `tls.acme`: a directory over HTTPS, hosts without wildcards (HTTP-01 and TLS-ALPN-01 cannot
/// prove them), a storage directory, and the challenge kind.
fn acme(w: WireAcme, base_dir: &Path) -> Result<AcmeConfig, (String, String)> {
    let directory = w.directory.ok_or_else(|| {
        (
            "tls.acme.directory".to_string(),
            "is required (the CA's directory URL)".to_string(),
        )
    })?;
    if !directory.starts_with("https://") || directory.len() <= "https://".len() {
        return Err((
            "tls.acme.directory".into(),
            format!("'{directory}' is not an https:// URL"),
        ));
    }
    if w.hosts.is_empty() {
        return Err((
            "tls.acme.hosts".into(),
            "must name at least one host".into(),
        ));
    }
    let hosts = host_names("tls.acme.hosts", w.hosts, false)?;
    let storage = w.storage.ok_or_else(|| {
        (
            "tls.acme.storage".to_string(),
            "is required (a directory for the account key and certificates)".to_string(),
        )
    })?;
    if let Some(email) = &w.email {
        if !email.contains('@') || email.contains(char::is_whitespace) {
            return Err((
                "tls.acme.email".into(),
                format!("'{email}' is not an e-mail address"),
            ));
        }
    }
    let challenge = match w.challenge.as_deref() {
        None | Some("http-01") => AcmeChallenge::Http01,
        Some("tls-alpn-01") => AcmeChallenge::TlsAlpn01,
        Some(other) => {
            return Err((
                "tls.acme.challenge".into(),
                format!("'{other}' is not one of http-01, tls-alpn-01"),
            ))
        }
    };
    let retry_initial = w.retry_initial_seconds.unwrap_or(60);
    let retry_max = w.retry_max_seconds.unwrap_or(3600);
    if retry_initial == 0 || retry_max < retry_initial {
        return Err((
            "tls.acme.retry_initial_seconds".into(),
            "must be at least 1 and at most retry_max_seconds".into(),
        ));
    }
    Ok(AcmeConfig {
        directory,
        email: w.email,
        hosts,
        storage: base_dir.join(storage),
        ca_file: w.ca_file.map(|f| base_dir.join(f)),
        challenge,
        retry_initial: Duration::from_secs(retry_initial),
        retry_max: Duration::from_secs(retry_max),
    })
}

/// Upper bound of `response_write_buffer`.
const MAX_RESPONSE_WRITE_BUFFER: u64 = 1 << 20;

/// `performance` (a preset name; none: the defaults for `cpus`) with `performance_overrides`
/// applied field by field.
fn performance(
    preset: Option<&str>,
    o: &WirePerformance,
    cpus: usize,
) -> Result<PerformanceConfig, (String, String)> {
    let mut performance = match preset {
        None => PerformanceConfig::default_for(cpus),
        Some(name) => PerformanceConfig::preset(name, cpus).ok_or_else(|| {
            (
                "performance".to_string(),
                format!("unknown preset '{name}': expected high_throughput, low_latency, memory_efficient or default"),
            )
        })?,
    };
    let positive = |key: &str, v: Option<usize>| -> Result<Option<usize>, (String, String)> {
        match v {
            Some(0) => Err((
                format!("performance_overrides.{key}"),
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
            return Err((
                "performance_overrides.origin_timeout_seconds".into(),
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
            return Err((
                "performance_overrides.response_write_buffer".into(),
                format!("{} is over the limit of 1MiB", v.0),
            ));
        }
        performance.response_write_buffer = v.0 as usize;
    }
    if let Some(v) = o.processing_budget {
        if v.0 < 16 << 20 {
            return Err((
                "performance_overrides.processing_budget".into(),
                format!("{} is under the minimum of 16MiB", v.0),
            ));
        }
        performance.processing_budget_bytes = v.0;
    }
    Ok(performance)
}

/// `performance_overrides.source_budget` (`set`), or the preset's raised to
/// `max_source_bytes`: one original of the largest allowed size must fit.
fn source_budget(
    mut performance: PerformanceConfig,
    set: Option<u64>,
    max_source_bytes: u64,
) -> Result<PerformanceConfig, (String, String)> {
    performance.source_budget_bytes = match set {
        Some(v) if v < max_source_bytes => {
            return Err((
                "performance_overrides.source_budget".into(),
                format!(
                    "{v} is under limits.max_source_bytes ({max_source_bytes}): \
                     an original of the largest allowed size could never be held"
                ),
            ))
        }
        Some(v) => v,
        None => performance.source_budget_bytes.max(max_source_bytes),
    };
    Ok(performance)
}

/// What the `limits` section sets.
struct SourceLimits {
    limits: Limits,
    max_source_bytes: u64,
    max_output_pixels: u64,
}

/// `limits`. The source size defaults to the preset's (`preset_source_bytes`, which the
/// deprecated alias `performance_overrides.max_image_bytes`, given here as `alias`, has
/// already overridden).
fn limits(
    w: &WireLimits,
    alias: Option<u64>,
    preset_source_bytes: u64,
) -> Result<SourceLimits, (String, String)> {
    let defaults = Limits::default();
    let limits = Limits {
        max_source_pixels: w.max_source_pixels.unwrap_or(defaults.max_source_pixels),
        max_output_dimension: w
            .max_output_dimension
            .unwrap_or(defaults.max_output_dimension),
        max_animation_frames: w
            .max_animation_frames
            .unwrap_or(defaults.max_animation_frames),
    };
    if limits.max_source_pixels == 0 || limits.max_output_dimension == 0 {
        return Err(("limits".into(), "limits must be positive".into()));
    }
    let max_output_pixels = w.max_output_pixels.unwrap_or(DEFAULT_MAX_OUTPUT_PIXELS);
    if max_output_pixels == 0 {
        return Err(("limits.max_output_pixels".into(), "must be positive".into()));
    }
    // `limits.max_source_bytes` is the key; `performance_overrides.max_image_bytes` (older
    // configs) is its deprecated alias. Both set to different values is refused: which one
    // wins would be a guess.
    let max_source_bytes = match (w.max_source_bytes.map(|b| b.0), alias) {
        (Some(key), Some(old)) if key != old => {
            return Err((
                "limits.max_source_bytes".into(),
                format!(
                    "{key} differs from performance_overrides.max_image_bytes ({old}), its \
                     deprecated alias: set only limits.max_source_bytes"
                ),
            ))
        }
        (Some(key), _) => key,
        (None, _) => preset_source_bytes,
    };
    if max_source_bytes == 0 {
        return Err(("limits.max_source_bytes".into(), "must be positive".into()));
    }
    Ok(SourceLimits {
        limits,
        max_source_bytes,
        max_output_pixels,
    })
}

/// `cache`; `IMGATE_CACHE_DIR` overrides `cache.dir`.
fn cache(w: WireCache, env: &EnvOverrides) -> Result<CacheConfig, (String, String)> {
    let cache = CacheConfig {
        memory_bytes: w.memory_size.map(|b| b.0).unwrap_or(256 << 20),
        max_entry_bytes: w.max_entry_size.map(|b| b.0).unwrap_or(32 << 20),
        lock_timeout: Duration::from_secs(w.lock_timeout_seconds.unwrap_or(30)),
        dir: env.cache_dir.clone().or(w.dir).map(PathBuf::from),
        disk_bytes: w.disk_size.map(|b| b.0).unwrap_or(1 << 30),
    };
    for (key, v) in [
        ("cache.memory_size", cache.memory_bytes),
        ("cache.disk_size", cache.disk_bytes),
    ] {
        if v == 0 {
            return Err((key.into(), "must be positive".into()));
        }
    }
    if cache.dir.as_ref().is_some_and(|d| d.as_os_str().is_empty()) {
        return Err(("cache.dir".into(), "must not be empty".into()));
    }
    Ok(cache)
}

/// `admin.token`; `IMGATE_ADMIN_TOKEN` overrides it. `None`: the purge/warm API answers 403.
fn admin_token(w: WireAdmin, env: &EnvOverrides) -> Result<Option<String>, (String, String)> {
    let admin_token = env.admin_token.clone().or(w.token);
    if let Some(t) = &admin_token {
        check_secret("admin.token", t)?;
    }
    Ok(admin_token)
}

/// A shared secret (admin token, cluster token): long enough, printable, no spaces.
fn check_secret(key: &str, secret: &str) -> Result<(), (String, String)> {
    if secret.len() < 16 || !secret.bytes().all(|b| b.is_ascii_graphic()) {
        return Err((
            key.into(),
            "must be at least 16 printable characters without spaces".into(),
        ));
    }
    Ok(())
}

/// A listener besides `listen` and `admin_listen` (the TLS and cluster ones): an address, and
/// not one of those two. `example` is shown when it is not an address.
fn extra_listener(
    key: &str,
    addr: &str,
    example: &str,
    listen: &str,
    admin_listen: &str,
) -> Result<std::net::SocketAddr, (String, String)> {
    let parsed = addr.parse::<std::net::SocketAddr>().map_err(|_| {
        (
            key.to_string(),
            format!("'{addr}' is not an address like {example}"),
        )
    })?;
    for (other_key, other) in [("listen", listen), ("admin_listen", admin_listen)] {
        if other.parse::<std::net::SocketAddr>().ok() == Some(parsed) {
            return Err((key.into(), format!("is the same as {other_key}")));
        }
    }
    Ok(parsed)
}

/// `sites`, at least one; `IMGATE_HTML_REWRITE` switches the first site's HTML rewrite.
fn sites(
    w: Vec<WireSite>,
    env: &EnvOverrides,
    base_dir: &Path,
) -> Result<Vec<Site>, (String, String)> {
    if w.is_empty() {
        return Err(("sites".into(), "at least one site is required".into()));
    }
    let mut sites = Vec::with_capacity(w.len());
    let html_switch = match env.html_rewrite.as_deref() {
        None => None,
        Some("on") => Some(true),
        Some("off") => Some(false),
        Some(other) => {
            return Err((
                "IMGATE_HTML_REWRITE".into(),
                format!("'{other}' must be on or off"),
            ))
        }
    };
    for (i, mut s) in w.into_iter().enumerate() {
        if let (0, Some(on)) = (i, html_switch) {
            s.html_rewrite.get_or_insert_with(Default::default).enabled = on;
        }
        sites.push(site(s, i, env, base_dir)?);
    }
    Ok(sites)
}

/// `listen` and `admin_listen` (`IMGATE_LISTEN`, `IMGATE_ADMIN_LISTEN` override them).
fn listeners(
    listen: Option<String>,
    admin_listen: Option<String>,
    env: &EnvOverrides,
) -> Result<(String, String), (String, String)> {
    let listen = env
        .listen
        .clone()
        .or(listen)
        .unwrap_or_else(|| "127.0.0.1:8080".into());
    let admin_listen = env
        .admin_listen
        .clone()
        .or(admin_listen)
        .unwrap_or_else(|| "127.0.0.1:9090".into());
    for (key, addr) in [("listen", &listen), ("admin_listen", &admin_listen)] {
        addr.parse::<std::net::SocketAddr>().map_err(|_| {
            (
                key.to_string(),
                format!("'{addr}' is not an address like 127.0.0.1:8080"),
            )
        })?;
    }
    Ok((listen, admin_listen))
}

/// `cluster`, with the `IMGATE_CLUSTER_*`, `IMGATE_PEERS` and `IMGATE_REDIS_URL` overrides. On
/// when a cluster listener is set; then a token and the peers are required.
fn cluster(
    w: Option<WireCluster>,
    env: &EnvOverrides,
    listen: &str,
    admin_listen: &str,
) -> Result<Option<ClusterConfig>, (String, String)> {
    let w = w.unwrap_or_default();
    let Some(bind) = env.cluster_listen.clone().or(w.listen) else {
        if w.peers.is_empty() && w.token.is_none() && w.redis_url.is_none() {
            return Ok(None);
        }
        return Err((
            "cluster.listen".into(),
            "is required in cluster mode (or IMGATE_CLUSTER_LISTEN)".into(),
        ));
    };
    let address = |key: &str, text: &str| {
        text.parse::<std::net::SocketAddr>().map_err(|_| {
            (
                key.to_string(),
                format!("'{text}' is not an address like 10.0.0.5:8091"),
            )
        })
    };
    let bind = extra_listener(
        "cluster.listen",
        &bind,
        "10.0.0.5:8091",
        listen,
        admin_listen,
    )?;
    let me = match env.cluster_advertise.clone().or(w.advertise) {
        Some(a) => address("cluster.advertise", &a)?,
        None if bind.ip().is_unspecified() => {
            return Err((
                "cluster.advertise".into(),
                format!(
                "is required when cluster.listen is {bind}: the address peers reach this node at"
            ),
            ))
        }
        None => bind,
    };
    let peers: Vec<String> = match &env.peers {
        Some(list) => list
            .split(',')
            .map(|p| p.trim().to_string())
            .filter(|p| !p.is_empty())
            .collect(),
        None => w.peers,
    };
    if peers.is_empty() {
        return Err((
            "cluster.peers".into(),
            "must list every node's cluster listener, this one's included".into(),
        ));
    }
    for p in &peers {
        let port_ok = p
            .rsplit_once(':')
            .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
        if !port_ok {
            return Err(("cluster.peers".into(), format!("'{p}' is not host:port")));
        }
    }
    // Names are resolved later; a list of addresses alone must hold this node.
    let literal: Option<Vec<std::net::SocketAddr>> = peers.iter().map(|p| p.parse().ok()).collect();
    if literal.is_some_and(|l| !l.contains(&me)) {
        return Err((
            "cluster.peers".into(),
            format!("must include this node's own cluster address {me}"),
        ));
    }
    let token = env.cluster_token.clone().or(w.token).ok_or_else(|| {
        (
            "cluster.token".into(),
            "is required in cluster mode (or IMGATE_CLUSTER_TOKEN)".into(),
        )
    })?;
    check_secret("cluster.token", &token)?;
    let redis_url = env.redis_url.clone().or(w.redis_url);
    if let Some(url) = &redis_url {
        if !(url.starts_with("redis://")
            || url.starts_with("rediss://")
            || url.starts_with("unix://"))
        {
            return Err((
                "cluster.redis_url".into(),
                format!("'{url}' must start with redis://, rediss:// or unix://"),
            ));
        }
    }
    let seconds = |key: &str, v: Option<u64>, default: u64| match v.unwrap_or(default) {
        0 => Err((format!("cluster.{key}"), "must be positive".to_string())),
        n => Ok(Duration::from_secs(n)),
    };
    Ok(Some(ClusterConfig {
        listen: bind,
        me,
        peers,
        token,
        redis_url,
        keep_copies: w.keep_copies.unwrap_or(true),
        health_check_interval: seconds(
            "health_check_interval_seconds",
            w.health_check_interval_seconds,
            1,
        )?,
        discovery_interval: seconds(
            "discovery_interval_seconds",
            w.discovery_interval_seconds,
            10,
        )?,
        peer_timeout: seconds("peer_timeout_seconds", w.peer_timeout_seconds, 30)?,
    }))
}

/// Pingora's own `pingora:` section, read as Pingora's `ServerConf` (its serde: unknown keys
/// ignored, wrong types refused): the thread count (`threads: 0` means one per CPU; absent,
/// Pingora's default) and the CA file trusted for TLS origins.
fn pingora(
    w: Option<&serde_yaml::Value>,
    cpus: usize,
) -> Result<(usize, Option<String>), (String, String)> {
    let conf: ServerConf = match w {
        Some(section) => serde_yaml::from_value(section.clone())
            .map_err(|e| ("pingora".to_string(), e.to_string()))?,
        None => ServerConf::default(),
    };
    let threads = if conf.threads == 0 {
        cpus
    } else {
        conf.threads
    };
    Ok((threads, conf.ca_file))
}

/// Idle connections of the passthrough proxy. It goes through Pingora's proxy connector, whose
/// idle pool is one LRU for every upstream: `pool_size` per distinct HTTP origin gives each
/// site's origin room for its share (the transform fetcher keeps a strict pool per host).
fn passthrough_pool_size(pool_size: usize, sites: &[Site]) -> usize {
    let http_origins: std::collections::HashSet<(bool, &str, u16)> = sites
        .iter()
        .filter_map(|s| match &s.origin {
            Origin::Http(o) => Some((o.tls, o.host.as_str(), o.port)),
            Origin::Dir(_) => None,
        })
        .collect();
    pool_size * http_origins.len().max(1)
}

fn site(
    mut s: WireSite,
    i: usize,
    env: &EnvOverrides,
    base_dir: &Path,
) -> Result<Site, (String, String)> {
    let key = |k: &str| format!("sites[{i}].{k}");
    let urls = super::urls::url_policy(&mut s, i, env).map_err(|(k, m)| (key(&k), m))?;
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
        Some(h) if h.enabled && urls.presets_only => {
            return Err((
                key("html_rewrite"),
                "cannot be on with presets_only: the rewriter chooses widths itself".into(),
            ))
        }
        Some(h) if h.enabled => Some(
            html_rewrite(
                h,
                &hosts,
                &allowed_source_hosts,
                (s.allow_http_sources, &s.allowed_source_ports),
                &urls,
            )
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
    let watermarks = super::watermarks::watermarks(std::mem::take(&mut s.watermarks), base_dir)
        .map_err(|(k, m)| (key(&k), m))?;
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
        urls,
        watermarks,
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
fn html_rewrite(
    h: WireHtmlRewrite,
    hosts: &[String],
    allowed_source_hosts: &[String],
    (allow_http, ports): (Option<bool>, &[u16]),
    urls: &UrlPolicy,
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
        allow_http_sources: allow_http.unwrap_or(false),
        allowed_source_ports: ports.to_vec(),
        allowed_widths: urls.allowed_widths.clone(),
        signer: urls.signing.as_ref().and_then(|s| s.signer().cloned()),
    }))
}

/// On by default, JSON lines to stdout; `None` when `enabled: false`.
fn access_log(w: WireAccessLog) -> Result<Option<AccessLogConfig>, (String, String)> {
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
fn clients(w: &WireClients) -> Result<ClientLimits, (String, String)> {
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

/// Bounds of `clients.max_header_size`: a head smaller than 1 KiB refuses ordinary browsers; over
/// Pingora's own limit (1 MiB) it would never apply.
const MIN_HEADER_SIZE: u64 = 1 << 10;
const MAX_HEADER_SIZE: u64 = (1 << 20) - 1;

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
