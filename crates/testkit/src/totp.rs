//! An independent RFC 6238 TOTP (HMAC-SHA1 from RustCrypto), to check the server's codes.

use hmac::{KeyInit, Mac};

/// RFC 4226 HOTP with 6 digits over RFC 6238 30-second steps.
pub fn totp_at_step(secret_base32: &str, step: u64) -> String {
    let secret = base32::decode(base32::Alphabet::Rfc4648 { padding: false }, secret_base32).expect("base32 secret");
    let mut mac = hmac::Hmac::<sha1::Sha1>::new_from_slice(&secret).unwrap();
    mac.update(&step.to_be_bytes());
    let digest = mac.finalize().into_bytes();
    let offset = (digest[19] & 0x0f) as usize;
    let binary = u32::from_be_bytes([
        digest[offset] & 0x7f,
        digest[offset + 1],
        digest[offset + 2],
        digest[offset + 3],
    ]);
    format!("{:06}", binary % 1_000_000)
}

pub fn current_step() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        / 30
}
