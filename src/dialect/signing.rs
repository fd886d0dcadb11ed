//! Signed URLs: HMAC-SHA256 over the site's salt and the signed path, in base64url without
//! padding, checked against every listed key so keys can be rotated without downtime. The same
//! scheme imgproxy uses for its own URLs.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use blake2::{Blake2b512, Digest};
use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// One key and its salt (raw bytes, decoded from the config's hex).
#[derive(Clone, PartialEq, Eq)]
pub struct SigningKey {
    pub key: Vec<u8>,
    pub salt: Vec<u8>,
}

impl std::fmt::Debug for SigningKey {
    /// Never the key itself: a short hash that tells keys apart (and changes the HTML
    /// rewriter's fingerprint when the key changes).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut hash = Blake2b512::new();
        hash.update((self.key.len() as u64).to_le_bytes());
        hash.update(&self.key);
        hash.update(&self.salt);
        write!(f, "SigningKey({})", hex::encode(&hash.finalize()[..6]))
    }
}

impl SigningKey {
    fn mac(&self, path: &str) -> HmacSha256 {
        // HMAC takes keys of any length; this cannot fail.
        let mut mac = <HmacSha256 as Mac>::new_from_slice(&self.key)
            .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
        mac.update(&self.salt);
        mac.update(path.as_bytes());
        mac
    }

    /// The signature of `path`: base64url, no padding.
    pub fn sign(&self, path: &str) -> String {
        URL_SAFE_NO_PAD.encode(self.mac(path).finalize().into_bytes())
    }

    /// Whether `signature` (raw HMAC bytes) is this key's for `path`, compared in constant
    /// time.
    fn verifies(&self, path: &str, signature: &[u8]) -> bool {
        self.mac(path).verify_slice(signature).is_ok()
    }
}

/// The signature of `path` with `key` and `salt` (raw bytes): base64url of
/// HMAC-SHA256(key, salt ++ path), no padding. For Rust callers building signed URLs; see
/// [`super::sign_cloudflare_path`] for a whole `/cdn-cgi/image/` path.
pub fn sign_path(key: &[u8], salt: &[u8], path: &str) -> String {
    SigningKey {
        key: key.to_vec(),
        salt: salt.to_vec(),
    }
    .sign(path)
}

/// A site's signing rules.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Signing {
    /// Every key accepted; the first one signs what imgate writes itself (HTML rewriting).
    pub keys: Vec<SigningKey>,
    /// Unsigned transform URLs refused (403).
    pub required: bool,
}

impl Signing {
    /// Whether `signature` (base64url as written in the URL) is any listed key's signature of
    /// `path`. Every key is tried, each compared in constant time.
    pub fn verify(&self, path: &str, signature: &str) -> bool {
        let Ok(raw) = URL_SAFE_NO_PAD.decode(signature.trim_end_matches('=')) else {
            return false;
        };
        let mut ok = false;
        for key in &self.keys {
            ok |= key.verifies(path, &raw);
        }
        ok
    }

    /// The key imgate signs its own URLs with.
    pub fn signer(&self) -> Option<&SigningKey> {
        self.keys.first()
    }
}
