//! The environment overrides containers set (`IMGATE_LISTEN`, `IMGATE_ORIGIN`...), read once
//! at start and applied on top of the file by validation.

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
    /// `IMGATE_SIGNING_KEY` and `IMGATE_SIGNING_SALT`: the first site's signing keys and
    /// salts, hex, comma-separated for rotation (as imgproxy's `IMGPROXY_KEY`/`IMGPROXY_SALT`).
    pub signing_key: Option<String>,
    pub signing_salt: Option<String>,
    /// `IMGATE_CLUSTER_LISTEN`, `IMGATE_CLUSTER_ADVERTISE`, `IMGATE_PEERS` (comma-separated),
    /// `IMGATE_CLUSTER_TOKEN`, `IMGATE_REDIS_URL`: the `cluster` section's keys.
    pub cluster_listen: Option<String>,
    pub cluster_advertise: Option<String>,
    pub peers: Option<String>,
    pub cluster_token: Option<String>,
    pub redis_url: Option<String>,
    /// `IMGATE_TLS_LISTEN`: the `tls.listen` address.
    pub tls_listen: Option<String>,
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
            signing_key: get("IMGATE_SIGNING_KEY"),
            signing_salt: get("IMGATE_SIGNING_SALT"),
            cluster_listen: get("IMGATE_CLUSTER_LISTEN"),
            cluster_advertise: get("IMGATE_CLUSTER_ADVERTISE"),
            peers: get("IMGATE_PEERS"),
            cluster_token: get("IMGATE_CLUSTER_TOKEN"),
            redis_url: get("IMGATE_REDIS_URL"),
            tls_listen: get("IMGATE_TLS_LISTEN"),
        }
    }
}
