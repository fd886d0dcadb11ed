//! A local directory as origin (`file:///srv/images`). Reads happen on tokio's blocking pool,
//! never on an async worker; paths are confined to the directory.

use super::{Fetched, OriginError};
use bytes::Bytes;
use std::path::{Component, Path, PathBuf};

/// Map a URL path onto the directory, refusing anything that could escape it.
pub fn resolve(root: &Path, url_path: &str) -> Result<PathBuf, OriginError> {
    let path = url_path.split(['?', '#']).next().unwrap_or("");
    let decoded = percent_encoding::percent_decode_str(path)
        .decode_utf8()
        .map_err(|_| OriginError::BadPath("not UTF-8".into()))?;
    let mut out = root.to_path_buf();
    for component in Path::new(decoded.trim_start_matches('/')).components() {
        match component {
            Component::Normal(c) => out.push(c),
            Component::CurDir => {}
            _ => return Err(OriginError::BadPath("path escapes the origin".into())),
        }
    }
    if decoded.contains('\0') {
        return Err(OriginError::BadPath("NUL in path".into()));
    }
    Ok(out)
}

pub async fn fetch(root: &Path, url_path: &str, max_bytes: u64) -> Result<Fetched, OriginError> {
    let file = resolve(root, url_path)?;
    let meta = match tokio::fs::metadata(&file).await {
        Ok(m) if m.is_file() => m,
        Ok(_) => return Err(OriginError::NotFound),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(OriginError::NotFound),
        Err(e) => return Err(OriginError::Unreachable(format!("{}: {e}", file.display()))),
    };
    // Checked before reading a byte: a huge file costs nothing.
    if meta.len() > max_bytes {
        return Err(OriginError::TooLarge { limit: max_bytes });
    }
    let body = tokio::fs::read(&file)
        .await
        .map_err(|e| OriginError::Unreachable(e.to_string()))?;
    let modified = meta.modified().ok();
    let etag = modified
        .and_then(|m| m.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| format!("\"{:x}-{:x}\"", d.as_secs(), meta.len()));
    Ok(Fetched {
        content_type: Some(content_type_for(&file).to_string()),
        body: Bytes::from(body),
        ttl: None,
        no_store: false,
        last_modified: modified,
        etag,
        tags: Vec::new(),
    })
}

/// A content type from the file extension, for serving the directory as a plain website.
pub fn content_type_for(path: &Path) -> &'static str {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    match ext.as_str() {
        "jpg" | "jpeg" => "image/jpeg",
        "png" => "image/png",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "avif" => "image/avif",
        "svg" => "image/svg+xml",
        "html" | "htm" => "text/html; charset=utf-8",
        "css" => "text/css",
        "js" => "text/javascript",
        "json" => "application/json",
        "txt" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolve_refuses_escapes() {
        let root = Path::new("/srv/img");
        assert_eq!(
            resolve(root, "/a/b.jpg").unwrap(),
            PathBuf::from("/srv/img/a/b.jpg")
        );
        assert_eq!(
            resolve(root, "/a/./b.jpg?x=1").unwrap(),
            PathBuf::from("/srv/img/a/b.jpg")
        );
        assert!(resolve(root, "/../etc/passwd").is_err());
        assert!(resolve(root, "/a/%2e%2e/%2e%2e/etc/passwd").is_err());
    }
}
