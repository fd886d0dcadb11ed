//! Configuration: the YAML file (wire structs in [`wire`]) plus environment overrides, loaded
//! by `load.rs` and validated once by `validate.rs` (one function per section) into [`Config`],
//! the only config type the rest of the crate takes. Validation errors name the key and the
//! file. The validated types are in `model.rs`, the environment overrides in `env.rs`, the
//! URL policy in `urls.rs` and the watermarks (files read and probed once) in `watermarks.rs`;
//! this file only re-exports.

mod env;
mod load;
mod model;
mod urls;
mod validate;
mod watermarks;
pub mod wire;

pub use env::EnvOverrides;
pub use load::{DEFAULT_CONFIG, DEFAULT_CONFIG_DIR};
pub use model::{
    strip_port, AcmeChallenge, AcmeConfig, CacheConfig, CertificateFiles, ClientLimits,
    ClusterConfig, Config, ConfigError, HttpOrigin, Origin, OverlayImage, PerformanceConfig, Site,
    TlsConfig, TlsVersion, TtlPolicy, WatermarkDef, DEFAULT_MAX_OUTPUT_PIXELS,
};
pub use validate::parse_origin;

#[cfg(test)]
mod tests;
