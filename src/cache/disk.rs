//! The disk tier: one file per stored response under `cache.dir`, bounded by a byte budget and
//! evicted least-recently-used first. Every call here blocks on the file system: callers run it
//! on tokio's blocking pool, never on an async worker. Sees keys, tags and bytes only.
//!
//! Crash safety: an entry is written to a temp file beside its final name and renamed into place,
//! so a reader sees the old file, the new file or none, never half of one. The header carries
//! lengths and a BLAKE2b checksum of everything; a file that fails the check (torn by a power
//! loss, edited, truncated) is a miss and is deleted. Temp files left by a crash are removed at
//! startup.
//!
//! The recency index lives in memory (a map plus an ordered tick list, exact byte accounting) and
//! is rebuilt at startup from the entry headers, oldest file first by modification time. moka is
//! not used here: its admission policy may refuse a fresh entry (a file written for nothing) and
//! its eviction runs later and approximately, while a disk budget must hold and every evicted key
//! must reach `remove_file`.

use crate::metrics;
use blake2::digest::consts::U32;
use blake2::{Blake2b, Digest};
use bytes::Bytes;
use std::collections::{BTreeMap, HashMap};
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// First bytes of every entry file.
pub const MAGIC: [u8; 4] = *b"IMGC";
/// Format version; a file of another version is treated as corrupt (a miss, then deleted).
pub const VERSION: u16 = 1;
/// Fixed header: magic, version, reserved, five lengths, then a 32-byte checksum.
pub const HEADER_LEN: usize = 64;
const CHECKSUM_AT: usize = 32;
/// Suffix of files being written; anything with it at startup is a leftover of a crash.
const TMP_SUFFIX: &str = ".tmp";

/// One entry as stored on disk: the primary key and tags (so the purge index can be rebuilt at
/// startup), Pingora's serialized meta and the body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiskEntry {
    pub primary: String,
    pub tags: Vec<String>,
    pub meta: (Vec<u8>, Vec<u8>),
    pub body: Bytes,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FormatError {
    #[error("bad magic")]
    BadMagic,
    #[error("unsupported format version {0}")]
    Version(u16),
    #[error("truncated {0}")]
    Truncated(&'static str),
    #[error("file length {actual} does not match header ({expected})")]
    Length { expected: u64, actual: u64 },
    #[error("checksum mismatch")]
    Checksum,
    #[error("key or tags are not UTF-8")]
    Text,
}

/// The lengths a header announces.
#[derive(Debug, Clone, Copy)]
struct Lengths {
    primary: u32,
    tags: u32,
    meta0: u32,
    meta1: u32,
    body: u64,
}

impl Lengths {
    fn of(entry: &DiskEntry, tags: &[u8]) -> Lengths {
        Lengths {
            primary: entry.primary.len() as u32,
            tags: tags.len() as u32,
            meta0: entry.meta.0.len() as u32,
            meta1: entry.meta.1.len() as u32,
            body: entry.body.len() as u64,
        }
    }

    fn file_len(&self) -> u64 {
        HEADER_LEN as u64
            + u64::from(self.primary)
            + u64::from(self.tags)
            + u64::from(self.meta0)
            + u64::from(self.meta1)
            + self.body
    }

    /// The first 32 header bytes; the checksum covers them too, so a flipped length is caught.
    fn head(&self) -> [u8; CHECKSUM_AT] {
        let mut h = [0u8; CHECKSUM_AT];
        h[0..4].copy_from_slice(&MAGIC);
        h[4..6].copy_from_slice(&VERSION.to_le_bytes());
        h[8..12].copy_from_slice(&self.primary.to_le_bytes());
        h[12..16].copy_from_slice(&self.tags.to_le_bytes());
        h[16..20].copy_from_slice(&self.meta0.to_le_bytes());
        h[20..24].copy_from_slice(&self.meta1.to_le_bytes());
        h[24..32].copy_from_slice(&self.body.to_le_bytes());
        h
    }

    fn parse(header: &[u8]) -> Result<Lengths, FormatError> {
        if header.len() < HEADER_LEN {
            return Err(FormatError::Truncated("header"));
        }
        if header[0..4] != MAGIC {
            return Err(FormatError::BadMagic);
        }
        let version = u16::from_le_bytes([header[4], header[5]]);
        if version != VERSION {
            return Err(FormatError::Version(version));
        }
        let u32_at = |i: usize| u32::from_le_bytes(header[i..i + 4].try_into().expect("4 bytes"));
        Ok(Lengths {
            primary: u32_at(8),
            tags: u32_at(12),
            meta0: u32_at(16),
            meta1: u32_at(20),
            body: u64::from_le_bytes(header[24..32].try_into().expect("8 bytes")),
        })
    }
}

fn checksum(head: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    let mut h = Blake2b::<U32>::new();
    h.update(head);
    for p in parts {
        h.update(p);
    }
    h.finalize().into()
}

/// Write `entry` in the entry format to `out`, header first.
pub fn encode_to(entry: &DiskEntry, out: &mut impl Write) -> io::Result<()> {
    let tags = entry.tags.join("\n");
    let lengths = Lengths::of(entry, tags.as_bytes());
    let head = lengths.head();
    let parts: [&[u8]; 5] = [
        entry.primary.as_bytes(),
        tags.as_bytes(),
        &entry.meta.0,
        &entry.meta.1,
        &entry.body,
    ];
    out.write_all(&head)?;
    out.write_all(&checksum(&head, &parts))?;
    for p in parts {
        out.write_all(p)?;
    }
    Ok(())
}

/// Parse and verify a whole entry file. The body shares `bytes`' buffer: no copy on the hit
/// path.
pub fn decode(bytes: Bytes) -> Result<DiskEntry, FormatError> {
    let lengths = Lengths::parse(&bytes)?;
    let expected = lengths.file_len();
    if (bytes.len() as u64) < expected {
        return Err(FormatError::Truncated("body"));
    }
    if bytes.len() as u64 != expected {
        return Err(FormatError::Length {
            expected,
            actual: bytes.len() as u64,
        });
    }
    let mut at = HEADER_LEN;
    let mut take = |n: u64| {
        let range = at..at + n as usize;
        at += n as usize;
        range
    };
    let primary = take(u64::from(lengths.primary));
    let tags = take(u64::from(lengths.tags));
    let meta0 = take(u64::from(lengths.meta0));
    let meta1 = take(u64::from(lengths.meta1));
    let body = take(lengths.body);
    let parts = [&primary, &tags, &meta0, &meta1, &body].map(|r| &bytes[r.clone()]);
    let sum = checksum(&bytes[..CHECKSUM_AT], &parts);
    if sum[..] != bytes[CHECKSUM_AT..HEADER_LEN] {
        return Err(FormatError::Checksum);
    }
    let (primary, tags) = texts(parts[0], parts[1])?;
    Ok(DiskEntry {
        primary,
        tags,
        meta: (parts[2].to_vec(), parts[3].to_vec()),
        body: bytes.slice(body),
    })
}

fn texts(primary: &[u8], tags: &[u8]) -> Result<(String, Vec<String>), FormatError> {
    let primary = std::str::from_utf8(primary).map_err(|_| FormatError::Text)?;
    let tags = std::str::from_utf8(tags).map_err(|_| FormatError::Text)?;
    Ok((
        primary.to_string(),
        tags.split('\n')
            .filter(|t| !t.is_empty())
            .map(str::to_string)
            .collect(),
    ))
}

/// Read only what the startup scan needs (primary key and tags) and check the announced
/// lengths against the file size. The checksum is verified when the entry is read for a hit.
fn read_head(file: &mut File, file_len: u64) -> Result<(String, Vec<String>), FormatError> {
    let mut header = [0u8; HEADER_LEN];
    file.read_exact(&mut header)
        .map_err(|_| FormatError::Truncated("header"))?;
    let lengths = Lengths::parse(&header)?;
    if lengths.file_len() != file_len {
        return Err(FormatError::Length {
            expected: lengths.file_len(),
            actual: file_len,
        });
    }
    let mut text = vec![0u8; (lengths.primary + lengths.tags) as usize];
    file.read_exact(&mut text)
        .map_err(|_| FormatError::Truncated("key"))?;
    let (primary, tags) = text.split_at(lengths.primary as usize);
    texts(primary, tags)
}

/// An entry found by the startup scan, for rebuilding the purge index.
#[derive(Debug)]
pub struct ScannedEntry {
    pub hash: String,
    pub primary: String,
    pub tags: Vec<String>,
}

/// Recency order with exact byte accounting.
#[derive(Default)]
struct Recency {
    entries: HashMap<String, Slot>,
    order: BTreeMap<u64, String>,
    tick: u64,
    bytes: u64,
}

struct Slot {
    bytes: u64,
    tick: u64,
}

impl Recency {
    fn insert(&mut self, hash: &str, bytes: u64) {
        self.remove(hash);
        self.tick += 1;
        self.order.insert(self.tick, hash.to_string());
        self.entries.insert(
            hash.to_string(),
            Slot {
                bytes,
                tick: self.tick,
            },
        );
        self.bytes += bytes;
    }

    fn touch(&mut self, hash: &str) {
        if let Some(slot) = self.entries.get_mut(hash) {
            self.order.remove(&slot.tick);
            self.tick += 1;
            slot.tick = self.tick;
            self.order.insert(self.tick, hash.to_string());
        }
    }

    fn remove(&mut self, hash: &str) -> bool {
        match self.entries.remove(hash) {
            Some(slot) => {
                self.order.remove(&slot.tick);
                self.bytes -= slot.bytes;
                true
            }
            None => false,
        }
    }

    /// Drop least recently used entries until `budget` holds; their hashes.
    fn evict_to(&mut self, budget: u64) -> Vec<String> {
        let mut victims = Vec::new();
        while self.bytes > budget {
            let Some((_, hash)) = self.order.pop_first() else {
                break;
            };
            if let Some(slot) = self.entries.remove(&hash) {
                self.bytes -= slot.bytes;
            }
            victims.push(hash);
        }
        victims
    }
}

pub struct DiskTier {
    dir: PathBuf,
    budget: u64,
    recency: Mutex<Recency>,
    tmp_seq: AtomicU64,
}

impl DiskTier {
    /// Open (creating) the cache directory, delete leftover temp files and unreadable entries,
    /// and index what is there, evicting down to `budget` if it shrank. Runs once at startup,
    /// before any request, so it may block.
    pub fn open(dir: &Path, budget: u64) -> io::Result<(DiskTier, Vec<ScannedEntry>)> {
        fs::create_dir_all(dir)?;
        let mut found = Vec::new();
        for shard in fs::read_dir(dir)? {
            let shard = shard?.path();
            // Only our own layout is touched: a mistyped `cache.dir` must not cost anyone files.
            let shard_name = shard.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if !shard.is_dir() || shard_name.len() != 2 || !is_hex(shard_name) {
                continue;
            }
            for file in fs::read_dir(&shard)? {
                let path = file?.path();
                let name = path
                    .file_name()
                    .and_then(|n| n.to_str())
                    .unwrap_or("")
                    .to_string();
                let hash_part = name.split('.').next().unwrap_or("");
                if hash_part.len() != 32 || !is_hex(hash_part) {
                    continue;
                }
                if name.ends_with(TMP_SUFFIX) {
                    log::info!("removing unfinished cache write {}", path.display());
                    let _ = fs::remove_file(&path);
                    continue;
                }
                match scan_one(&path) {
                    Ok((mtime, len, primary, tags)) => found.push((
                        mtime,
                        len,
                        ScannedEntry {
                            hash: name,
                            primary,
                            tags,
                        },
                    )),
                    Err(e) => {
                        log::warn!("dropping cache file {}: {e}", path.display());
                        metrics::CACHE_DISK_ERRORS
                            .with_label_values(&["corrupt"])
                            .inc();
                        let _ = fs::remove_file(&path);
                    }
                }
            }
        }
        found.sort_by_key(|(mtime, _, _)| *mtime);
        let tier = DiskTier {
            dir: dir.to_path_buf(),
            budget,
            recency: Mutex::new(Recency::default()),
            tmp_seq: AtomicU64::new(0),
        };
        let mut scanned = Vec::with_capacity(found.len());
        {
            let mut recency = tier.lock();
            for (_, len, entry) in &found {
                recency.insert(&entry.hash, *len);
            }
        }
        let victims = tier.evict();
        for (_, _, entry) in found {
            if !victims.contains(&entry.hash) {
                scanned.push(entry);
            }
        }
        tier.publish_size();
        Ok((tier, scanned))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Recency> {
        // A panic while holding the lock cannot leave the maps inconsistent in a way that
        // matters more than losing the whole tier would.
        self.recency.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn path_of(&self, hash: &str) -> PathBuf {
        let shard = hash.get(..2).unwrap_or("00");
        self.dir.join(shard).join(hash)
    }

    /// Is the entry indexed? No I/O: safe on the event loop.
    pub fn contains(&self, hash: &str) -> bool {
        self.lock().entries.contains_key(hash)
    }

    /// Read and verify an entry. A missing file is a miss; a bad one is a miss and is deleted.
    pub fn read(&self, hash: &str) -> Option<DiskEntry> {
        let path = self.path_of(hash);
        let bytes = match fs::read(&path) {
            Ok(b) => Bytes::from(b),
            Err(e) => {
                if e.kind() != io::ErrorKind::NotFound {
                    log::warn!("cannot read cache file {}: {e}", path.display());
                    metrics::CACHE_DISK_ERRORS
                        .with_label_values(&["read"])
                        .inc();
                }
                self.forget(hash);
                return None;
            }
        };
        match decode(bytes) {
            Ok(entry) => {
                self.lock().touch(hash);
                Some(entry)
            }
            Err(e) => {
                log::warn!("dropping corrupt cache file {}: {e}", path.display());
                metrics::CACHE_DISK_ERRORS
                    .with_label_values(&["corrupt"])
                    .inc();
                self.remove(hash);
                None
            }
        }
    }

    /// Store an entry (temp file, then rename) and evict down to the budget. Returns the
    /// hashes evicted. An entry larger than the whole budget is not stored.
    pub fn write(&self, hash: &str, entry: &DiskEntry) -> io::Result<Vec<String>> {
        let path = self.path_of(hash);
        let shard = path.parent().expect("entry path has a shard directory");
        fs::create_dir_all(shard)?;
        let seq = self.tmp_seq.fetch_add(1, Ordering::Relaxed);
        let tmp = shard.join(format!("{hash}.{}.{seq}{TMP_SUFFIX}", std::process::id()));
        let written = (|| {
            let mut out = io::BufWriter::new(File::create(&tmp)?);
            encode_to(entry, &mut out)?;
            out.into_inner().map_err(|e| e.into_error())?;
            fs::rename(&tmp, &path)
        })();
        if let Err(e) = written {
            let _ = fs::remove_file(&tmp);
            return Err(e);
        }
        let len = fs::metadata(&path)?.len();
        if len > self.budget {
            let _ = fs::remove_file(&path);
            self.forget(hash);
            return Ok(Vec::new());
        }
        self.lock().insert(hash, len);
        let victims = self.evict();
        self.publish_size();
        Ok(victims)
    }

    /// Rewrite an entry's meta, keeping its body (revalidation, soft purge). `false` when the
    /// entry is not there (or unreadable, and now removed).
    pub fn replace_meta(
        &self,
        hash: &str,
        change: impl FnOnce(&(Vec<u8>, Vec<u8>)) -> Option<(Vec<u8>, Vec<u8>)>,
    ) -> bool {
        if !self.contains(hash) {
            return false;
        }
        let Some(mut entry) = self.read(hash) else {
            return false;
        };
        let Some(meta) = change(&entry.meta) else {
            return false;
        };
        entry.meta = meta;
        match self.write(hash, &entry) {
            Ok(_) => true,
            Err(e) => {
                log::warn!("cannot rewrite cache entry {hash}: {e}");
                metrics::CACHE_DISK_ERRORS
                    .with_label_values(&["write"])
                    .inc();
                false
            }
        }
    }

    /// Delete an entry; `true` if it was indexed.
    pub fn remove(&self, hash: &str) -> bool {
        let had = self.forget(hash);
        let _ = fs::remove_file(self.path_of(hash));
        had
    }

    fn forget(&self, hash: &str) -> bool {
        let had = self.lock().remove(hash);
        self.publish_size();
        had
    }

    fn evict(&self) -> Vec<String> {
        let victims = self.lock().evict_to(self.budget);
        for hash in &victims {
            let _ = fs::remove_file(self.path_of(hash));
        }
        metrics::CACHE_EVICTIONS
            .with_label_values(&["disk"])
            .inc_by(victims.len() as u64);
        victims
    }

    /// Entries and bytes indexed now.
    pub fn usage(&self) -> (u64, u64) {
        let r = self.lock();
        (r.entries.len() as u64, r.bytes)
    }

    fn publish_size(&self) {
        let (entries, bytes) = self.usage();
        metrics::CACHE_ENTRIES
            .with_label_values(&["disk"])
            .set(entries as i64);
        metrics::CACHE_BYTES
            .with_label_values(&["disk"])
            .set(bytes as i64);
    }
}

fn is_hex(s: &str) -> bool {
    s.bytes().all(|b| b.is_ascii_hexdigit())
}

fn scan_one(path: &Path) -> Result<(std::time::SystemTime, u64, String, Vec<String>), String> {
    let mut file = File::open(path).map_err(|e| e.to_string())?;
    let meta = file.metadata().map_err(|e| e.to_string())?;
    let mtime = meta.modified().unwrap_or(std::time::UNIX_EPOCH);
    let (primary, tags) = read_head(&mut file, meta.len()).map_err(|e| e.to_string())?;
    Ok((mtime, meta.len(), primary, tags))
}

#[cfg(test)]
mod tests;
