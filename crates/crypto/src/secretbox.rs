//! The sealed-secret envelope.
//!
//! A sealed value is a printable string:
//!
//! ```text
//! tsb1.<key id>.<base64url(nonce || ciphertext || tag)>
//! ```
//!
//! * `tsb1` names the format version.
//! * `<key id>` names the master key that sealed it (derived from the key itself), so a
//!   value sealed under a previous master key can still be opened during a rotation.
//! * The cipher is AES-256-GCM with a random 96-bit nonce, keyed by an HKDF-SHA256 subkey
//!   of the master key derived per field (the "purpose").
//! * The associated data is the owner and the field, so a ciphertext copied to another
//!   tenant or another field fails to open instead of yielding somebody else's secret.

use aws_lc_rs::{
    aead::{AES_256_GCM, Aad, NONCE_LEN, Nonce, RandomizedNonceKey},
    hkdf,
};
use base64::{
    Engine,
    engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD},
};
use zeroize::Zeroizing;

use crate::transfer::{TRANSFER_KEY_INFO, TransferKey};

const ENVELOPE_VERSION: &str = "tsb1";
const HKDF_SALT: &[u8] = b"tenantry-secretbox-v1";
const TAG_LEN: usize = 16;

/// Who a sealed value belongs to. Both parts are bound into the ciphertext.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SealContext<'a> {
    /// The owner, e.g. a tenant id, or `system` for installation-wide secrets.
    pub owner: &'a str,
    /// The field inside the owner, e.g. `smtp.password`.
    pub field: &'a str,
}

impl<'a> SealContext<'a> {
    pub fn new(owner: &'a str, field: &'a str) -> Self {
        Self { owner, field }
    }

    fn aad(&self) -> Vec<u8> {
        let mut aad = Vec::with_capacity(32 + self.owner.len() + self.field.len());
        aad.extend_from_slice(HKDF_SALT);
        aad.push(0);
        aad.extend_from_slice(self.owner.as_bytes());
        aad.push(0);
        aad.extend_from_slice(self.field.as_bytes());
        aad
    }
}

/// Why a master key was refused. The messages name the problem, never the key.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MasterKeyError {
    #[error("is empty")]
    Empty,
    #[error("is not valid base64")]
    NotBase64,
    #[error("must decode to exactly 32 bytes, got {0}")]
    WrongLength(usize),
}

/// A 32-byte master key and the id derived from it.
pub struct MasterKey {
    secret: Zeroizing<[u8; 32]>,
    id: String,
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MasterKey")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl MasterKey {
    /// Parses the base64 (standard or URL-safe, padded or not) of exactly 32 bytes.
    pub fn from_base64(encoded: &str) -> Result<Self, MasterKeyError> {
        let trimmed = encoded.trim();
        if trimmed.is_empty() {
            return Err(MasterKeyError::Empty);
        }
        let bytes = Zeroizing::new(
            STANDARD
                .decode(trimmed)
                .or_else(|_| URL_SAFE_NO_PAD.decode(trimmed.trim_end_matches('=')))
                .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(trimmed.trim_end_matches('=')))
                .map_err(|_| MasterKeyError::NotBase64)?,
        );
        let secret: [u8; 32] = bytes
            .as_slice()
            .try_into()
            .map_err(|_| MasterKeyError::WrongLength(bytes.len()))?;
        Ok(Self::from_bytes(secret))
    }

    /// Makes a fresh random key (used only by `serve --dev` and tests).
    pub fn generate() -> Self {
        let mut secret = [0u8; 32];
        aws_lc_rs::rand::fill(&mut secret).expect("the system random generator failed");
        Self::from_bytes(secret)
    }

    fn from_bytes(secret: [u8; 32]) -> Self {
        let mut id_bytes = [0u8; 6];
        derive(&secret, b"tenantry/key-id", &mut id_bytes);
        Self {
            secret: Zeroizing::new(secret),
            id: URL_SAFE_NO_PAD.encode(id_bytes),
        }
    }

    /// The key id written into every envelope this key seals.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The key as standard base64, for writing the development key file.
    pub fn to_base64(&self) -> Zeroizing<String> {
        Zeroizing::new(STANDARD.encode(self.secret.as_slice()))
    }

    fn aead_key(&self, field: &str) -> RandomizedNonceKey {
        let mut sub = Zeroizing::new([0u8; 32]);
        let info = format!("tenantry/secretbox/{field}");
        derive(self.secret.as_ref(), info.as_bytes(), sub.as_mut());
        RandomizedNonceKey::new(&AES_256_GCM, sub.as_ref()).expect("a 32-byte AES-256 key")
    }

    fn transfer_key(&self) -> TransferKey {
        let mut seed = Zeroizing::new([0u8; 32]);
        derive(self.secret.as_ref(), TRANSFER_KEY_INFO, seed.as_mut());
        TransferKey::from_seed(&self.id, &seed)
    }
}

struct OkmLen(usize);

impl hkdf::KeyType for OkmLen {
    fn len(&self) -> usize {
        self.0
    }
}

fn derive(ikm: &[u8], info: &[u8], out: &mut [u8]) {
    let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, HKDF_SALT).extract(ikm);
    let info = [info];
    prk.expand(&info, OkmLen(out.len()))
        .and_then(|okm| okm.fill(out))
        .expect("HKDF output length within bounds");
}

/// Why a sealed value could not be opened. Never carries plaintext or key material.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SecretBoxError {
    #[error("the sealed value is not a tsb1 envelope")]
    Malformed,
    #[error("the sealed value names key `{0}`, which is not configured")]
    UnknownKey(String),
    #[error("the sealed value does not open for this owner and field (tampered or moved)")]
    Rejected,
    #[error("the opened secret is not valid UTF-8")]
    NotUtf8,
}

/// Seals and opens secrets under the current master key; opens under previous keys too.
#[derive(Debug)]
pub struct SecretBox {
    current: MasterKey,
    previous: Vec<MasterKey>,
}

impl SecretBox {
    pub fn new(current: MasterKey, previous: Vec<MasterKey>) -> Self {
        Self { current, previous }
    }

    /// The id of the key new envelopes are sealed with.
    pub fn current_key_id(&self) -> &str {
        self.current.id()
    }

    /// This installation's transfer key, derived from the current master key: export
    /// documents meant for this installation are sealed to its public half (see
    /// [`crate::transfer`]).
    pub fn transfer_key(&self) -> TransferKey {
        self.current.transfer_key()
    }

    /// The transfer keys of the current and previous master keys, current first, so a
    /// document sealed before a master-key rotation still opens.
    pub fn transfer_keys(&self) -> Vec<TransferKey> {
        std::iter::once(&self.current)
            .chain(&self.previous)
            .map(MasterKey::transfer_key)
            .collect()
    }

    /// Seals `plaintext` for `ctx` under the current master key.
    pub fn seal(&self, ctx: SealContext<'_>, plaintext: &str) -> String {
        let key = self.current.aead_key(ctx.field);
        let mut in_out = plaintext.as_bytes().to_vec();
        let nonce = key
            .seal_in_place_append_tag(Aad::from(ctx.aad()), &mut in_out)
            .expect("AES-GCM sealing of an in-memory buffer");
        let mut payload = Vec::with_capacity(NONCE_LEN + in_out.len());
        payload.extend_from_slice(nonce.as_ref());
        payload.extend_from_slice(&in_out);
        format!(
            "{ENVELOPE_VERSION}.{}.{}",
            self.current.id(),
            URL_SAFE_NO_PAD.encode(payload)
        )
    }

    /// Opens an envelope sealed for `ctx`, with whichever configured key it names.
    pub fn open(&self, ctx: SealContext<'_>, sealed: &str) -> Result<Zeroizing<String>, SecretBoxError> {
        let (key_id, payload) = parse_envelope(sealed)?;
        let master = std::iter::once(&self.current)
            .chain(&self.previous)
            .find(|k| k.id() == key_id)
            .ok_or_else(|| SecretBoxError::UnknownKey(key_id.to_owned()))?;
        let mut payload = Zeroizing::new(payload);
        let (nonce, ciphertext) = payload.split_at_mut(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| SecretBoxError::Malformed)?;
        let plain = master
            .aead_key(ctx.field)
            .open_in_place(nonce, Aad::from(ctx.aad()), ciphertext)
            .map_err(|_| SecretBoxError::Rejected)?;
        let text = std::str::from_utf8(plain).map_err(|_| SecretBoxError::NotUtf8)?;
        Ok(Zeroizing::new(text.to_owned()))
    }

    /// True when `sealed` was sealed under an older key and should be re-sealed.
    pub fn needs_reseal(&self, sealed: &str) -> bool {
        parse_envelope(sealed).is_ok_and(|(kid, _)| kid != self.current.id())
    }

    /// Opens with any configured key and seals again under the current one.
    pub fn reseal(&self, ctx: SealContext<'_>, sealed: &str) -> Result<String, SecretBoxError> {
        let plain = self.open(ctx, sealed)?;
        Ok(self.seal(ctx, &plain))
    }
}

/// True when `value` has the shape of an envelope (it may still fail to open).
pub fn looks_sealed(value: &str) -> bool {
    parse_envelope(value).is_ok()
}

fn parse_envelope(sealed: &str) -> Result<(&str, Vec<u8>), SecretBoxError> {
    let mut parts = sealed.splitn(3, '.');
    let (Some(version), Some(key_id), Some(body)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(SecretBoxError::Malformed);
    };
    if version != ENVELOPE_VERSION || key_id.is_empty() {
        return Err(SecretBoxError::Malformed);
    }
    let payload = URL_SAFE_NO_PAD.decode(body).map_err(|_| SecretBoxError::Malformed)?;
    if payload.len() < NONCE_LEN + TAG_LEN {
        return Err(SecretBoxError::Malformed);
    }
    Ok((key_id, payload))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sb() -> SecretBox {
        SecretBox::new(MasterKey::generate(), vec![])
    }

    #[test]
    fn master_key_parsing_names_the_problem() {
        assert_eq!(MasterKey::from_base64("").unwrap_err(), MasterKeyError::Empty);
        assert_eq!(
            MasterKey::from_base64("not base64!!").unwrap_err(),
            MasterKeyError::NotBase64
        );
        assert_eq!(
            MasterKey::from_base64(&STANDARD.encode([1u8; 16])).unwrap_err(),
            MasterKeyError::WrongLength(16)
        );
        let key = MasterKey::from_base64(&STANDARD.encode([7u8; 32])).unwrap();
        let again = MasterKey::from_base64(&URL_SAFE_NO_PAD.encode([7u8; 32])).unwrap();
        assert_eq!(key.id(), again.id());
        assert!(!format!("{key:?}").contains(&STANDARD.encode([7u8; 32])));
    }

    #[test]
    fn seal_then_open_round_trips() {
        let sb = sb();
        let ctx = SealContext::new("tenant-a", "smtp.password");
        let sealed = sb.seal(ctx, "hunter2");
        assert!(sealed.starts_with("tsb1."));
        assert!(!sealed.contains("hunter2"));
        assert_eq!(sb.open(ctx, &sealed).unwrap().as_str(), "hunter2");
        assert_ne!(sealed, sb.seal(ctx, "hunter2"), "nonces are random");
    }

    #[test]
    fn a_value_moved_to_another_owner_or_field_does_not_open() {
        let sb = sb();
        let sealed = sb.seal(SealContext::new("tenant-a", "smtp.password"), "s3cret");
        assert_eq!(
            sb.open(SealContext::new("tenant-b", "smtp.password"), &sealed)
                .unwrap_err(),
            SecretBoxError::Rejected
        );
        assert_eq!(
            sb.open(SealContext::new("tenant-a", "user_db.dsn"), &sealed)
                .unwrap_err(),
            SecretBoxError::Rejected
        );
    }

    #[test]
    fn tampering_is_an_error_never_garbage() {
        let sb = sb();
        let ctx = SealContext::new("t", "f");
        let sealed = sb.seal(ctx, "value");
        let (head, body) = sealed.rsplit_once('.').unwrap();
        let mut bytes = URL_SAFE_NO_PAD.decode(body).unwrap();
        for i in 0..bytes.len() {
            bytes[i] ^= 0x01;
            let tampered = format!("{head}.{}", URL_SAFE_NO_PAD.encode(&bytes));
            assert_eq!(sb.open(ctx, &tampered).unwrap_err(), SecretBoxError::Rejected);
            bytes[i] ^= 0x01;
        }
        assert_eq!(sb.open(ctx, "tsb1.x.!!").unwrap_err(), SecretBoxError::Malformed);
        assert_eq!(sb.open(ctx, "plaintext").unwrap_err(), SecretBoxError::Malformed);
        assert_eq!(sb.open(ctx, "tsb1.abc.AAAA").unwrap_err(), SecretBoxError::Malformed);
    }

    #[test]
    fn previous_keys_open_and_reseal_moves_to_the_current_key() {
        let old = SecretBox::new(MasterKey::from_base64(&STANDARD.encode([1u8; 32])).unwrap(), vec![]);
        let ctx = SealContext::new("t", "f");
        let sealed_old = old.seal(ctx, "rotate me");

        let rotated = SecretBox::new(
            MasterKey::from_base64(&STANDARD.encode([2u8; 32])).unwrap(),
            vec![MasterKey::from_base64(&STANDARD.encode([1u8; 32])).unwrap()],
        );
        assert!(rotated.needs_reseal(&sealed_old));
        assert_eq!(rotated.open(ctx, &sealed_old).unwrap().as_str(), "rotate me");
        let resealed = rotated.reseal(ctx, &sealed_old).unwrap();
        assert!(!rotated.needs_reseal(&resealed));
        assert!(resealed.contains(rotated.current_key_id()));

        let without_old = SecretBox::new(MasterKey::from_base64(&STANDARD.encode([2u8; 32])).unwrap(), vec![]);
        assert!(matches!(
            without_old.open(ctx, &sealed_old),
            Err(SecretBoxError::UnknownKey(_))
        ));
        assert_eq!(without_old.open(ctx, &resealed).unwrap().as_str(), "rotate me");
    }

    proptest! {
        #[test]
        fn any_utf8_round_trips(plain in ".*", owner in "[a-z0-9-]{1,20}", field in "[a-z_.]{1,20}") {
            let sb = sb();
            let ctx = SealContext::new(&owner, &field);
            let sealed = sb.seal(ctx, &plain);
            let opened = sb.open(ctx, &sealed).unwrap();
            prop_assert_eq!(opened.as_str(), plain.as_str());
        }
    }
}
