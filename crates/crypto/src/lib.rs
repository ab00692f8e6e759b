//! Cryptographic building blocks shared by every plane of Tenantry.
//!
//! This crate is the only place that touches key material directly:
//!
//! * [`secretbox`] seals secrets at rest (SMTP passwords, DSNs, social client secrets,
//!   signing keys) in a versioned AEAD envelope bound to its owner.
//! * [`tokens`] makes random bearer tokens and keys, and the fast hashes stored in their
//!   place.
//! * [`files`] writes owner-only files for key material kept on disk.
//! * [`transfer`] seals credentials in a tenant export document to the importing
//!   installation's transfer key (derived from its master key).
//!
//! Everything here is built on aws-lc-rs; nothing hand-rolls a primitive.

pub mod files;
pub mod secretbox;
pub mod tokens;
pub mod transfer;

pub use secretbox::{MasterKey, MasterKeyError, SealContext, SecretBox, SecretBoxError};
pub use tokens::{
    DigestKey, constant_time_eq, hash_token, keyed_digest, random_key, random_token, verify_keyed_digest,
    verify_token_hash,
};
pub use transfer::{Opener, Sealer, TransferError, TransferHeader, TransferKey, TransferPublicKey};
