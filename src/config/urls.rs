//! Validation of a site's URL rules (`signing`, `presets`, `presets_only`, `allowed_widths`,
//! `allowed_qualities`, the `imgproxy`, `thumbor` and `nextjs` dialects, and `IMGATE_SIGNING_KEY`/`IMGATE_SIGNING_SALT` for the first site) into
//! a [`UrlPolicy`]. Errors name the key below `sites[i]`.

use super::env::EnvOverrides;
use super::wire::{WireNextjs, WireSigning, WireSigningKey, WireSite};
use crate::dialect::{NextjsConfig, Presets, Signing, SigningKey, ThumborConfig, UrlPolicy};
use crate::spec;

/// The URL rules of site `i`; the environment's keys replace the first site's.
pub(super) fn url_policy(
    s: &mut WireSite,
    i: usize,
    env: &EnvOverrides,
) -> Result<UrlPolicy, (String, String)> {
    if i == 0 {
        if let Some(keys) = env_keys(env)? {
            s.signing.get_or_insert_with(WireSigning::default).keys = keys;
        }
    }
    let signing = match s.signing.take() {
        None => None,
        Some(w) => Some(signing(w)?),
    };
    let mut presets = Presets::default();
    for (name, options) in std::mem::take(&mut s.presets) {
        let key = format!("presets.{name}");
        if name.is_empty()
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_".contains(&b))
        {
            return Err((key, "a preset name is letters, digits, '-' and '_'".into()));
        }
        spec::parse_options(&options).map_err(|e| (key.clone(), e.0))?;
        presets.0.insert(name, options);
    }
    let presets_only = s.presets_only.unwrap_or(false);
    if presets_only && presets.0.is_empty() {
        return Err(("presets_only".into(), "needs at least one preset".into()));
    }
    let mut allowed_widths = std::mem::take(&mut s.allowed_widths);
    allowed_widths.sort_unstable();
    allowed_widths.dedup();
    if allowed_widths.iter().any(|w| !(1..=12_000).contains(w)) {
        return Err(("allowed_widths".into(), "widths from 1 to 12000".into()));
    }
    let mut allowed_qualities = std::mem::take(&mut s.allowed_qualities);
    allowed_qualities.sort_unstable();
    allowed_qualities.dedup();
    if allowed_qualities.iter().any(|q| !(1..=100).contains(q)) {
        return Err(("allowed_qualities".into(), "qualities from 1 to 100".into()));
    }
    let watermarks: Vec<(String, Option<String>)> = s
        .watermarks
        .iter()
        .map(|(name, w)| (name.clone(), w.source.clone()))
        .collect();
    let (imgproxy_prefix, imgproxy_watermark) = match s.imgproxy.take() {
        None => (None, None),
        Some(w) => {
            if let Some(name) = &w.watermark {
                if !watermarks.iter().any(|(n, _)| n == name) {
                    return Err((
                        "imgproxy.watermark".into(),
                        format!("'{name}' is not one of the site's watermarks"),
                    ));
                }
            }
            (
                Some(
                    dialect_prefix(w.prefix, "/imgproxy")
                        .map_err(|m| ("imgproxy.prefix".to_string(), m))?,
                ),
                w.watermark,
            )
        }
    };
    let nextjs = match s.nextjs.take() {
        Some(w) if w.enabled => Some(nextjs(w).map_err(|(k, m)| (format!("nextjs.{k}"), m))?),
        _ => None,
    };
    let thumbor = match s.thumbor.take() {
        None => None,
        Some(w) => {
            let prefix = dialect_prefix(w.prefix, "/thumbor")
                .map_err(|m| ("thumbor.prefix".to_string(), m))?;
            if imgproxy_prefix.as_deref() == Some(prefix.as_str()) {
                return Err((
                    "thumbor.prefix".into(),
                    format!("'{prefix}' is imgproxy's prefix too"),
                ));
            }
            let security_key = match w.security_key {
                Some(k) if k.is_empty() => {
                    return Err(("thumbor.security_key".into(), "must not be empty".into()))
                }
                k => k.map(String::into_bytes),
            };
            let allow_unsafe = w.allow_unsafe.unwrap_or(security_key.is_none());
            if !allow_unsafe && security_key.is_none() {
                return Err((
                    "thumbor.security_key".into(),
                    "needed when unsafe URLs are not allowed".into(),
                ));
            }
            Some(ThumborConfig {
                prefix,
                security_key,
                allow_unsafe,
            })
        }
    };
    let policy = UrlPolicy {
        signing,
        presets,
        presets_only,
        allowed_widths,
        allowed_qualities,
        imgproxy_prefix,
        nextjs,
        thumbor,
        watermarks: Some(watermarks),
        imgproxy_watermark,
    };
    // A preset the site itself refuses would be a trap.
    for (name, options) in &policy.presets.0 {
        let preset = spec::parse_options(options).map_err(|e| (format!("presets.{name}"), e.0))?;
        policy
            .check_values(&preset)
            .map_err(|r| (format!("presets.{name}"), r.message))?;
    }
    Ok(policy)
}

/// A dialect's path prefix: `/` or `/name[/name...]`, no trailing `/`, not under
/// `/cdn-cgi/image/`.
fn dialect_prefix(prefix: Option<String>, default: &str) -> Result<String, String> {
    let prefix = prefix.unwrap_or_else(|| default.to_string());
    let valid = prefix == "/"
        || (prefix.starts_with('/')
            && !prefix.ends_with('/')
            && prefix
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"/-_.".contains(&b))
            && !prefix.contains("//"));
    if !valid {
        return Err(format!(
            "'{prefix}' must be / or a path like /imgproxy (letters, digits, '-', '_', '.')"
        ));
    }
    if prefix.starts_with("/cdn-cgi/image") {
        return Err(format!("'{prefix}' is under /cdn-cgi/image/"));
    }
    Ok(prefix)
}

/// Next.js 16's defaults for what is left out; the same limits as Next.js' own config check.
fn nextjs(w: WireNextjs) -> Result<NextjsConfig, (String, String)> {
    let defaults = NextjsConfig::default();
    let sizes = |key: &str, v: Option<Vec<u32>>, default: Vec<u32>| {
        let mut v = v.unwrap_or(default);
        v.sort_unstable();
        v.dedup();
        if v.is_empty() || v.iter().any(|w| !(1..=12_000).contains(w)) {
            return Err((
                key.to_string(),
                "a list of widths from 1 to 12000".to_string(),
            ));
        }
        Ok(v)
    };
    let device_sizes = sizes("device_sizes", w.device_sizes, defaults.device_sizes)?;
    let image_sizes = sizes("image_sizes", w.image_sizes, defaults.image_sizes)?;
    let mut qualities = w.qualities.unwrap_or(defaults.qualities);
    qualities.sort_unstable();
    qualities.dedup();
    if qualities.is_empty() || qualities.iter().any(|q| !(1..=100).contains(q)) {
        return Err((
            "qualities".into(),
            "a list of qualities from 1 to 100".into(),
        ));
    }
    let formats = w.formats.unwrap_or_else(|| vec!["image/webp".into()]);
    let avif = formats.iter().any(|f| f == "image/avif");
    let webp = formats.iter().any(|f| f == "image/webp");
    if !webp
        || formats
            .iter()
            .any(|f| f != "image/avif" && f != "image/webp")
    {
        return Err((
            "formats".into(),
            "[image/webp] or [image/avif, image/webp]: imgate negotiates AVIF before WebP and \
             falls back to JPEG or PNG"
                .into(),
        ));
    }
    Ok(NextjsConfig {
        device_sizes,
        image_sizes,
        qualities,
        avif,
    })
}

fn signing(w: WireSigning) -> Result<Signing, (String, String)> {
    let mut keys = Vec::with_capacity(w.keys.len());
    for (n, k) in w.keys.iter().enumerate() {
        let field = |f: &str| format!("signing.keys[{n}].{f}");
        let key = hex::decode(k.key.trim()).map_err(|_| (field("key"), "must be hex".into()))?;
        if key.is_empty() {
            // Short keys are weak, but refusing them would break the URLs of sites moving
            // from imgproxy with their keys; only an empty one is refused.
            return Err((field("key"), "must not be empty".into()));
        }
        let salt = hex::decode(k.salt.trim()).map_err(|_| (field("salt"), "must be hex".into()))?;
        keys.push(SigningKey { key, salt });
    }
    let required = w.required.unwrap_or(!keys.is_empty());
    if required && keys.is_empty() {
        return Err((
            "signing.required".into(),
            "needs at least one key in signing.keys".into(),
        ));
    }
    Ok(Signing { keys, required })
}

/// `IMGATE_SIGNING_KEY` and `IMGATE_SIGNING_SALT`, comma-separated lists of equal length (the
/// salt may be left out: no salts).
fn env_keys(env: &EnvOverrides) -> Result<Option<Vec<WireSigningKey>>, (String, String)> {
    let Some(keys) = &env.signing_key else {
        if env.signing_salt.is_some() {
            return Err((
                "IMGATE_SIGNING_SALT".into(),
                "set without IMGATE_SIGNING_KEY".into(),
            ));
        }
        return Ok(None);
    };
    let keys: Vec<&str> = keys.split(',').map(str::trim).collect();
    let salts: Vec<&str> = match &env.signing_salt {
        Some(s) => s.split(',').map(str::trim).collect(),
        None => vec![""; keys.len()],
    };
    if salts.len() != keys.len() {
        return Err((
            "IMGATE_SIGNING_SALT".into(),
            format!("{} salts for {} keys", salts.len(), keys.len()),
        ));
    }
    Ok(Some(
        keys.iter()
            .zip(salts)
            .map(|(k, s)| WireSigningKey {
                key: k.to_string(),
                salt: s.to_string(),
            })
            .collect(),
    ))
}
