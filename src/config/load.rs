//! Loading a config: the file (or the embedded example) read and parsed into the wire structs,
//! the environment overrides containers set, then validated once (`validate.rs`). Knows
//! where text comes from; must not judge values (validation does).

use super::wire::WireConfig;
use super::{Config, ConfigError};
use std::path::{Path, PathBuf};

/// The example config, compiled in: what `imgate` runs with when given no `--config`.
pub const DEFAULT_CONFIG: &str = include_str!("../../conf/imgate.yaml");
/// Relative `file://` origins in the embedded default resolve against the repo's `conf/`.
pub const DEFAULT_CONFIG_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/conf");

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
        super::validate::config(wire, file, base_dir, env)
    }
}
