//! Loading a config: the file (or the embedded example) read and parsed into the wire structs,
//! the environment overrides containers set, then validated once (`validate.rs`). Knows
//! where text comes from; must not judge values (validation does).

use super::env::EnvOverrides;
use super::model::{Config, ConfigError};
use super::wire::WireConfig;
use std::path::{Path, PathBuf};

/// The example config, compiled in: what `imgate` runs with when given no `--config`.
pub const DEFAULT_CONFIG: &str = include_str!("../../conf/imgate.yaml");
/// Relative `file://` origins in the embedded default resolve against the repo's `conf/`.
pub const DEFAULT_CONFIG_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/conf");

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
