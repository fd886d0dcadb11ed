//! Comparing a secret a request presents (the admin bearer token, the cluster token) with the
//! configured one without the time taken telling anything about either: both are hashed, and
//! the digests compared in full.

use blake2::{Blake2b512, Digest};

/// Whether `given` is `expected`, in time independent of where they differ.
pub fn same_secret(given: &str, expected: &str) -> bool {
    let (a, b) = (Blake2b512::digest(given), Blake2b512::digest(expected));
    a.iter()
        .zip(b.iter())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y))
        == 0
}

#[cfg(test)]
mod tests {
    use super::same_secret;

    #[test]
    fn only_the_same_text_matches() {
        let t = "0123456789abcdef";
        assert!(same_secret(t, t));
        for other in [
            "",
            "0123456789abcde",
            "0123456789abcdef0",
            "0123456789abcdeX",
        ] {
            assert!(!same_secret(other, t), "{other}");
        }
    }
}
