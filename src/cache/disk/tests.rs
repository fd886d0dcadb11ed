use super::*;

fn sample() -> DiskEntry {
    DiskEntry {
        primary: "0|img|width=300|/photos/cat.jpg".into(),
        tags: vec!["cats".into(), "summer-2026".into()],
        meta: (vec![1, 2, 3], b"HTTP/1.1 200 OK\r\n\r\n".to_vec()),
        body: Bytes::from(vec![9u8; 5000]),
    }
}

fn encoded(entry: &DiskEntry) -> Vec<u8> {
    let mut out = Vec::new();
    encode_to(entry, &mut out).unwrap();
    out
}

fn decode(bytes: &[u8]) -> Result<DiskEntry, FormatError> {
    super::decode(Bytes::copy_from_slice(bytes))
}

#[test]
fn roundtrip() {
    let e = sample();
    let bytes = encoded(&e);
    assert_eq!(&bytes[..4], b"IMGC");
    assert_eq!(bytes.len(), HEADER_LEN + 31 + 16 + 3 + 19 + 5000);
    assert_eq!(decode(&bytes).unwrap(), e);
    let untagged = DiskEntry {
        tags: vec![],
        body: Bytes::new(),
        ..sample()
    };
    assert_eq!(decode(&encoded(&untagged)).unwrap(), untagged);
}

#[test]
fn checksum_mismatch_in_body_meta_or_lengths() {
    let bytes = encoded(&sample());
    for at in [bytes.len() - 1, HEADER_LEN + 40, HEADER_LEN] {
        let mut bad = bytes.clone();
        bad[at] ^= 0x40;
        assert_eq!(decode(&bad), Err(FormatError::Checksum), "byte {at}");
    }
    // A flipped checksum byte is a mismatch too.
    let mut bad = bytes.clone();
    bad[CHECKSUM_AT] ^= 1;
    assert_eq!(decode(&bad), Err(FormatError::Checksum));
}

#[test]
fn truncated_header_and_body() {
    let bytes = encoded(&sample());
    assert_eq!(
        decode(&bytes[..HEADER_LEN - 1]),
        Err(FormatError::Truncated("header"))
    );
    assert_eq!(decode(&[]), Err(FormatError::Truncated("header")));
    assert_eq!(
        decode(&bytes[..bytes.len() - 1]),
        Err(FormatError::Truncated("body"))
    );
    let mut longer = bytes.clone();
    longer.push(0);
    assert!(matches!(decode(&longer), Err(FormatError::Length { .. })));
}

#[test]
fn bad_magic_and_version() {
    let mut bytes = encoded(&sample());
    bytes[0] = b'X';
    assert_eq!(decode(&bytes), Err(FormatError::BadMagic));
    let mut bytes = encoded(&sample());
    bytes[4] = 9;
    assert_eq!(decode(&bytes), Err(FormatError::Version(9)));
}

const HASH_A: &str = "aa000000000000000000000000000001";
const HASH_B: &str = "bb000000000000000000000000000002";
const HASH_C: &str = "cc000000000000000000000000000003";

#[test]
fn tier_survives_reopen_cleans_temp_files_and_drops_corrupt_entries() {
    let dir = tempfile::tempdir().unwrap();
    let (tier, scanned) = DiskTier::open(dir.path(), 1 << 20).unwrap();
    assert!(scanned.is_empty());
    tier.write(HASH_A, &sample()).unwrap();
    tier.write(HASH_B, &sample()).unwrap();
    assert_eq!(tier.read(HASH_A).unwrap(), sample());
    drop(tier);
    // A crash mid-write leaves a temp file; a disk error leaves a torn entry.
    let tmp = dir.path().join("aa").join(format!("{HASH_A}.1.1.tmp"));
    std::fs::write(&tmp, b"half").unwrap();
    let b_path = dir.path().join("bb").join(HASH_B);
    let len = std::fs::metadata(&b_path).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&b_path)
        .unwrap()
        .set_len(len / 2)
        .unwrap();
    let (tier, scanned) = DiskTier::open(dir.path(), 1 << 20).unwrap();
    assert_eq!(scanned.len(), 1);
    assert_eq!(scanned[0].hash, HASH_A);
    assert_eq!(scanned[0].primary, sample().primary);
    assert_eq!(scanned[0].tags, sample().tags);
    assert!(!tmp.exists() && !b_path.exists());
    assert!(tier.read(HASH_B).is_none());
    assert_eq!(tier.read(HASH_A).unwrap(), sample());
}

#[test]
fn corrupt_entry_is_a_miss_and_deleted_on_read() {
    let dir = tempfile::tempdir().unwrap();
    let (tier, _) = DiskTier::open(dir.path(), 1 << 20).unwrap();
    tier.write(HASH_A, &sample()).unwrap();
    let path = dir.path().join("aa").join(HASH_A);
    let mut bytes = std::fs::read(&path).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&path, bytes).unwrap();
    assert!(tier.read(HASH_A).is_none());
    assert!(!path.exists());
    assert!(!tier.contains(HASH_A));
}

#[test]
fn evicts_least_recently_used_within_budget() {
    let dir = tempfile::tempdir().unwrap();
    let one = encoded(&sample()).len() as u64;
    let (tier, _) = DiskTier::open(dir.path(), 2 * one + 10).unwrap();
    tier.write(HASH_A, &sample()).unwrap();
    tier.write(HASH_B, &sample()).unwrap();
    assert!(tier.read(HASH_A).is_some()); // A is now the most recent
    let evicted = tier.write(HASH_C, &sample()).unwrap();
    assert_eq!(evicted, vec![HASH_B.to_string()]);
    assert!(tier.contains(HASH_A) && tier.contains(HASH_C));
    assert!(!dir.path().join("bb").join(HASH_B).exists());
    assert_eq!(tier.usage(), (2, 2 * one));
    // Reopening with a smaller budget evicts the oldest files.
    drop(tier);
    let (tier, scanned) = DiskTier::open(dir.path(), one).unwrap();
    assert_eq!(scanned.len(), 1);
    assert_eq!(tier.usage().0, 1);
}

#[test]
fn replace_meta_keeps_body() {
    let dir = tempfile::tempdir().unwrap();
    let (tier, _) = DiskTier::open(dir.path(), 1 << 20).unwrap();
    tier.write(HASH_A, &sample()).unwrap();
    assert!(tier.replace_meta(HASH_A, |_| Some((vec![7], vec![8]))));
    let e = tier.read(HASH_A).unwrap();
    assert_eq!(e.meta, (vec![7], vec![8]));
    assert_eq!(e.body, sample().body);
    assert!(!tier.replace_meta(HASH_B, |_| Some((vec![], vec![]))));
}
