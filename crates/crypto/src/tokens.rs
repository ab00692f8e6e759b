//! Random bearer tokens and the hashes stored in their place.
//!
//! Tokens made here carry 256 bits of entropy, so a single fast hash (SHA-256 with a
//! domain-separation prefix) is enough to store them: there is nothing to brute-force.
//! Slow password hashes are reserved for human-chosen passwords.

use aws_lc_rs::{digest, rand::SecureRandom};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};

/// Prefix of every stored token hash; names the scheme so it can change later.
const HASH_PREFIX: &str = "sha256:";

/// Returns `bytes` of fresh randomness encoded as unpadded base64url.
pub fn random_token(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    aws_lc_rs::rand::SystemRandom::new()
        .fill(&mut buf)
        .expect("the system random generator failed");
    URL_SAFE_NO_PAD.encode(buf)
}

/// Returns `N` bytes of fresh randomness for a key, wiped from memory when dropped.
pub fn random_key<const N: usize>() -> zeroize::Zeroizing<[u8; N]> {
    let mut key = zeroize::Zeroizing::new([0u8; N]);
    aws_lc_rs::rand::SystemRandom::new()
        .fill(key.as_mut())
        .expect("the system random generator failed");
    key
}

/// Hashes a high-entropy token for storage: `sha256:<hex>`.
pub fn hash_token(token: &str) -> String {
    let mut ctx = digest::Context::new(&digest::SHA256);
    ctx.update(b"tenantry-token-v1\0");
    ctx.update(token.as_bytes());
    prefixed_hex(HASH_PREFIX, ctx.finish().as_ref())
}

/// `prefix` followed by `bytes` in lowercase hex. Runs on every token request (client
/// secrets, codes, refresh tokens): one allocation, not one per byte.
fn prefixed_hex(prefix: &str, bytes: &[u8]) -> String {
    let mut out = String::with_capacity(prefix.len() + 2 * bytes.len());
    out.push_str(prefix);
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for byte in bytes {
        out.push(char::from(DIGITS[usize::from(byte >> 4)]));
        out.push(char::from(DIGITS[usize::from(byte & 0x0f)]));
    }
    out
}

/// Checks `token` against a hash made by [`hash_token`] in constant time.
pub fn verify_token_hash(token: &str, stored_hash: &str) -> bool {
    constant_time_eq(hash_token(token).as_bytes(), stored_hash.as_bytes())
}

/// Prefix of keyed digests (client secrets).
const KEYED_PREFIX: &str = "hmac-sha256:";

/// The installation key of [`keyed_digest`], prepared once: HMAC-SHA256 keeps the key's
/// inner and outer padded states, so a digest costs two compressions, not four.
#[derive(Clone)]
pub struct DigestKey(aws_lc_rs::hmac::Key);

impl DigestKey {
    pub fn new(key: &[u8]) -> Self {
        Self(aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, key))
    }
}

impl std::fmt::Debug for DigestKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DigestKey(..)")
    }
}

/// Digest of a high-entropy secret keyed with an installation key: `hmac-sha256:<hex>`.
/// Fast on purpose (client authentication on every token request); without the key the
/// stored digest does not even allow checking a guess.
pub fn keyed_digest(key: &DigestKey, secret: &str) -> String {
    let tag = aws_lc_rs::hmac::sign(&key.0, secret.as_bytes());
    prefixed_hex(KEYED_PREFIX, tag.as_ref())
}

/// Checks `secret` against a digest made by [`keyed_digest`], in constant time.
pub fn verify_keyed_digest(key: &DigestKey, secret: &str, stored: &str) -> bool {
    constant_time_eq(keyed_digest(key, secret).as_bytes(), stored.as_bytes())
}

/// Compares two byte strings in constant time (for equal lengths).
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    aws_lc_rs::constant_time::verify_slices_are_equal(a, b).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_tokens_differ_and_have_the_requested_entropy() {
        let a = random_token(32);
        let b = random_token(32);
        assert_ne!(a, b);
        assert_eq!(URL_SAFE_NO_PAD.decode(&a).unwrap().len(), 32);
    }

    #[test]
    fn keyed_digests_depend_on_the_key_and_the_secret() {
        let secret = random_token(32);
        let (one, two) = (DigestKey::new(b"key-one"), DigestKey::new(b"key-two"));
        let digest = keyed_digest(&one, &secret);
        assert!(digest.starts_with("hmac-sha256:") && digest.len() == 12 + 64);
        assert!(verify_keyed_digest(&one, &secret, &digest));
        assert!(!verify_keyed_digest(&two, &secret, &digest));
        assert!(!verify_keyed_digest(&one, "other", &digest));
        assert!(!verify_keyed_digest(&one, &secret, ""));
    }

    #[test]
    fn token_hash_verifies_only_the_same_token() {
        let token = random_token(32);
        let stored = hash_token(&token);
        assert!(stored.starts_with("sha256:"));
        assert!(verify_token_hash(&token, &stored));
        assert!(!verify_token_hash("other", &stored));
        assert!(!verify_token_hash(&token, "sha256:00"));
    }

    /// Stored hashes and digests must not change form: fixed vectors (Python's hashlib).
    #[test]
    fn stored_forms_are_stable() {
        assert_eq!(
            hash_token("abc"),
            "sha256:27d40c59f685db9268a987d2105501d9c6f18f969b72694a4aa9e51c8a924b79"
        );
        assert_eq!(
            keyed_digest(&DigestKey::new(&[b'k'; 32]), "secret"),
            "hmac-sha256:ead256ccb47a97d5f4efd6f4da905f03b79bf86513d1d81048a5101cff08dbae"
        );
    }

    #[test]
    fn constant_time_eq_compares_content_and_length() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
    }
}
