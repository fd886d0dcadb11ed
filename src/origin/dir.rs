//! A local directory as origin (`file:///srv/images`). Reads happen on tokio's blocking pool,
//! never on an async worker. Paths are confined to the directory twice: lexically (no `..`, no
//! dotfiles unless allowed) before touching the disk, then by the real path (symbolic links
//! resolved) before opening, so a link pointing outside serves nothing. Both refusals answer
//! 404, as if the file were absent: a client learns nothing about the rest of the disk.

use super::error::OriginError;
use super::fetched::Fetched;
use bytes::Bytes;
use std::io::{ErrorKind, Read};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Component, Path, PathBuf};

/// Map a URL path onto the directory, refusing anything that could escape it (`BadPath`) and,
/// unless `dotfiles`, any component starting with `.` (`NotFound`: `/.env`, `/.git/config`).
pub fn resolve(root: &Path, url_path: &str, dotfiles: bool) -> Result<PathBuf, OriginError> {
    let path = url_path.split(['?', '#']).next().unwrap_or("");
    let decoded = percent_encoding::percent_decode_str(path)
        .decode_utf8()
        .map_err(|_| OriginError::BadPath("not UTF-8".into()))?;
    if decoded.contains('\0') {
        return Err(OriginError::BadPath("NUL in path".into()));
    }
    let mut out = root.to_path_buf();
    for component in Path::new(decoded.trim_start_matches('/')).components() {
        match component {
            Component::Normal(c) if !dotfiles && is_dotfile(c) => {
                return Err(OriginError::NotFound)
            }
            Component::Normal(c) => out.push(c),
            Component::CurDir => {}
            _ => return Err(OriginError::BadPath("path escapes the origin".into())),
        }
    }
    Ok(out)
}

fn is_dotfile(component: &std::ffi::OsStr) -> bool {
    component.as_encoded_bytes().first() == Some(&b'.')
}

/// A file opened within the directory, its size known, not read yet: the size decides how
/// much memory to set aside before reading it.
pub struct Opened {
    file: std::fs::File,
    path: PathBuf,
    meta: std::fs::Metadata,
}

impl Opened {
    /// The file's size when opened.
    pub fn len(&self) -> u64 {
        self.meta.len()
    }

    /// Read it whole on the blocking pool, at most `max_bytes` (a file growing while read
    /// stops at the limit, not beyond).
    pub async fn read(self, max_bytes: u64) -> Result<Fetched, OriginError> {
        tokio::task::spawn_blocking(move || self.read_blocking(max_bytes))
            .await
            .map_err(|e| OriginError::Unreachable(format!("file read task: {e}")))?
    }

    fn read_blocking(mut self, max_bytes: u64) -> Result<Fetched, OriginError> {
        let mut body = Vec::with_capacity(self.meta.len().min(max_bytes) as usize);
        self.file
            .by_ref()
            .take(max_bytes + 1)
            .read_to_end(&mut body)
            .map_err(|e| io_error(&self.path, e))?;
        if body.len() as u64 > max_bytes {
            return Err(OriginError::TooLarge { limit: max_bytes });
        }
        let modified = self.meta.modified().ok();
        let etag = modified
            .and_then(|m| m.duration_since(std::time::UNIX_EPOCH).ok())
            .map(|d| format!("\"{:x}-{:x}\"", d.as_secs(), self.meta.len()));
        Ok(Fetched {
            content_type: Some(content_type_for(&self.path).to_string()),
            body: Bytes::from(body),
            ttl: None,
            no_store: false,
            last_modified: modified,
            etag,
            tags: Vec::new(),
            askers: Default::default(),
        })
    }
}

/// Open the file `url_path` names under `root` (on the blocking pool), refusing one over
/// `max_bytes` before reading a byte.
pub async fn open(
    root: &Path,
    url_path: &str,
    max_bytes: u64,
    dotfiles: bool,
) -> Result<Opened, OriginError> {
    let file = resolve(root, url_path, dotfiles)?;
    let root = root.to_path_buf();
    tokio::task::spawn_blocking(move || open_confined(&root, file, max_bytes, dotfiles))
        .await
        .map_err(|e| OriginError::Unreachable(format!("file read task: {e}")))?
}

/// Open `file` if its real path (links resolved) lies inside the real `root` and, unless
/// `dotfiles`, has no component starting with `.` below it. Blocking: run on the blocking pool.
fn open_confined(
    root: &Path,
    file: PathBuf,
    max_bytes: u64,
    dotfiles: bool,
) -> Result<Opened, OriginError> {
    let real_root = root.canonicalize().map_err(|e| {
        OriginError::Unreachable(format!("origin directory {}: {e}", root.display()))
    })?;
    let real = file.canonicalize().map_err(|e| io_error(&file, e))?;
    let inside = real.strip_prefix(&real_root).map_err(|_| {
        log::info!(
            "{} leads outside the origin directory (to {}): not served",
            file.display(),
            real.display()
        );
        OriginError::NotFound
    })?;
    if !dotfiles && inside.components().any(|c| is_dotfile(c.as_os_str())) {
        return Err(OriginError::NotFound);
    }
    // The real path has no links left; refusing one at the last step closes the window in
    // which the file could be swapped for a link after `canonicalize`.
    let opened = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&real)
        .map_err(|e| io_error(&file, e))?;
    let meta = opened.metadata().map_err(|e| io_error(&file, e))?;
    if !meta.is_file() {
        return Err(OriginError::NotFound);
    }
    // Checked before reading a byte: a huge file costs nothing.
    if meta.len() > max_bytes {
        return Err(OriginError::TooLarge { limit: max_bytes });
    }
    Ok(Opened {
        file: opened,
        path: file,
        meta,
    })
}

/// Absent, a file used as a directory, a link loop or a link at the last step: 404; anything
/// else (permissions, I/O) is the origin failing.
fn io_error(file: &Path, e: std::io::Error) -> OriginError {
    match e.kind() {
        ErrorKind::NotFound | ErrorKind::NotADirectory => OriginError::NotFound,
        _ if e.raw_os_error() == Some(libc::ELOOP) => OriginError::NotFound,
        _ => OriginError::Unreachable(format!("{}: {e}", file.display())),
    }
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
            resolve(root, "/a/b.jpg", false).unwrap(),
            PathBuf::from("/srv/img/a/b.jpg")
        );
        assert_eq!(
            resolve(root, "/a/./b.jpg?x=1", false).unwrap(),
            PathBuf::from("/srv/img/a/b.jpg")
        );
        assert!(resolve(root, "/../etc/passwd", false).is_err());
        assert!(resolve(root, "/a/%2e%2e/%2e%2e/etc/passwd", false).is_err());
        assert!(resolve(root, "/a/b%00.jpg", false).is_err());
    }

    #[test]
    fn dotfiles_are_absent_unless_allowed() {
        let root = Path::new("/srv/img");
        for path in [
            "/.env",
            "/.git/config",
            "/a/.hidden/b.jpg",
            "/%2egit/HEAD",
            "/.well-known/x",
        ] {
            assert!(
                matches!(resolve(root, path, false), Err(OriginError::NotFound)),
                "{path}"
            );
        }
        assert_eq!(
            resolve(root, "/.git/config", true).unwrap(),
            PathBuf::from("/srv/img/.git/config")
        );
        // Dots inside a name are ordinary.
        assert!(resolve(root, "/a.b/c..jpg", false).is_ok());
    }

    async fn fetch(
        root: &Path,
        url_path: &str,
        max_bytes: u64,
        dotfiles: bool,
    ) -> Result<Fetched, OriginError> {
        open(root, url_path, max_bytes, dotfiles)
            .await?
            .read(max_bytes)
            .await
    }

    /// A real directory with real links: out of the root (a file, a directory), within it,
    /// and to a dotfile inside it.
    #[tokio::test]
    async fn links_are_followed_only_within_the_directory() {
        use std::os::unix::fs::symlink;
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret.txt"), b"secret").unwrap();
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir(root.join("img")).unwrap();
        std::fs::write(root.join("img/a.jpg"), b"inside").unwrap();
        std::fs::write(root.join(".env"), b"TOKEN=1").unwrap();
        symlink(outside.path().join("secret.txt"), root.join("secret.txt")).unwrap();
        symlink(outside.path(), root.join("out")).unwrap();
        symlink(root.join("img/a.jpg"), root.join("same.jpg")).unwrap();
        symlink("img", root.join("alias")).unwrap();
        symlink(".env", root.join("env.txt")).unwrap();
        let get = |path: &'static str, dotfiles| fetch(root, path, 1 << 20, dotfiles);
        for path in ["/secret.txt", "/out/secret.txt", "/env.txt", "/.env"] {
            assert!(
                matches!(get(path, false).await, Err(OriginError::NotFound)),
                "{path} served"
            );
        }
        for path in ["/same.jpg", "/alias/a.jpg", "/img/a.jpg"] {
            assert_eq!(
                &get(path, false).await.unwrap().body[..],
                b"inside",
                "{path}"
            );
        }
        assert_eq!(&get("/env.txt", true).await.unwrap().body[..], b"TOKEN=1");
        assert!(matches!(
            get("/out/secret.txt", true).await,
            Err(OriginError::NotFound)
        ));
        assert!(matches!(
            get("/img", false).await,
            Err(OriginError::NotFound)
        ));
        assert!(matches!(
            get("/img/a.jpg/x", false).await,
            Err(OriginError::NotFound)
        ));
    }
}
