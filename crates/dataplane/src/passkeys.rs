//! Passkeys (WebAuthn credentials), the per-user WebAuthn handles they are bound to, and
//! the single-use challenges of the ceremonies.
//!
//! The rows are library-neutral: what the relying-party code needs to verify an assertion
//! (credential id, COSE public key, algorithm, counter, backup flags) and what a user sees
//! (name, dates). A credential is found by the SHA-256 of its id, in this tenant's
//! database only.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use crate::db::{DbError, TenantDb, from_micros, query_err, to_micros};
use crate::on_pool;

/// A registered passkey.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Passkey {
    pub id: Uuid,
    pub user_id: Uuid,
    #[serde(skip)]
    pub credential_id: Vec<u8>,
    /// Hex SHA-256 of the credential id: the lookup key.
    #[serde(skip)]
    pub credential_id_hash: String,
    /// The COSE_Key the authenticator registered.
    #[serde(skip)]
    pub public_key: Vec<u8>,
    /// COSE algorithm (-8 EdDSA, -7 ES256, -35 ES384, -257 RS256, -258 RS384).
    pub algorithm: i32,
    /// The last signature counter seen (0 for authenticators that do not count).
    pub sign_count: i64,
    /// BE: may be synced between devices.
    pub backup_eligible: bool,
    /// BS: is synced now.
    pub backup_state: bool,
    /// The authenticator verified the user (PIN, biometrics) at registration.
    pub user_verified: bool,
    /// A discoverable (resident) credential, when the browser said (`credProps`).
    pub discoverable: Option<bool>,
    pub transports: Vec<String>,
    /// The authenticator model's AAGUID (all zero when it stayed anonymous).
    #[serde(skip)]
    pub aaguid: Vec<u8>,
    /// The attestation the authenticator gave: `none`, `self`, `basic`, `attca`.
    pub attestation: String,
    pub name: String,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
}

/// A challenge of a WebAuthn ceremony, stored by its digest until it is spent or expires.
#[derive(Debug, Clone, PartialEq)]
pub struct WebauthnChallenge {
    /// Hex SHA-256 of the challenge bytes (the browser echoes the challenge in
    /// `clientDataJSON`, so the response finds its row).
    pub challenge_hash: String,
    /// `register`, `login`, `second_factor`, `signup`.
    pub purpose: String,
    /// The user the ceremony is for, if known when it started.
    pub user_id: Option<Uuid>,
    /// A digest of what must come back with the response (an `mfa_token`, a login
    /// transaction): another caller cannot finish the ceremony.
    pub binding_hash: Option<String>,
    /// What the second step needs, as JSON.
    pub state: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

/// What a successful assertion changes on its passkey.
#[derive(Debug, Clone, Copy)]
pub struct PasskeyUse {
    pub sign_count: i64,
    pub backup_state: bool,
    pub at: DateTime<Utc>,
}

#[async_trait]
pub trait PasskeyRepository {
    /// The user's WebAuthn handle; `new_handle` is stored first when they have none yet
    /// (a repeat made concurrently keeps the first one).
    async fn passkey_handle(&self, user_id: Uuid, new_handle: &[u8], now: DateTime<Utc>) -> Result<Vec<u8>, DbError>;
    /// The user a WebAuthn handle belongs to.
    async fn user_by_passkey_handle(&self, handle: &[u8]) -> Result<Option<Uuid>, DbError>;
    /// Stores a new passkey; `Conflict("duplicate")` when its credential id is known.
    async fn add_passkey(&self, passkey: &Passkey) -> Result<(), DbError>;
    /// The user's passkeys, oldest first.
    async fn passkeys(&self, user_id: Uuid) -> Result<Vec<Passkey>, DbError>;
    async fn passkey_by_credential(&self, credential_id_hash: &str) -> Result<Option<Passkey>, DbError>;
    /// Records an assertion: only when the counter moved forward (or both the stored and
    /// the new counter are 0: an authenticator that does not count). False, and nothing
    /// changed, on a counter that did not move forward — a possibly cloned authenticator.
    async fn record_passkey_use(&self, id: Uuid, used: PasskeyUse) -> Result<bool, DbError>;
    async fn rename_passkey(&self, user_id: Uuid, id: Uuid, name: &str) -> Result<bool, DbError>;
    async fn delete_passkey(&self, user_id: Uuid, id: Uuid) -> Result<bool, DbError>;
    async fn count_passkeys(&self, user_id: Uuid) -> Result<i64, DbError>;

    async fn store_webauthn_challenge(&self, challenge: &WebauthnChallenge) -> Result<(), DbError>;
    /// Spends a challenge once, if it is live: the row as stored, or `None` when it is
    /// unknown, spent or expired.
    async fn spend_webauthn_challenge(
        &self,
        challenge_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<WebauthnChallenge>, DbError>;
}

pub(crate) const PASSKEY_COLUMNS: &str = "id, user_id, credential_id, credential_id_hash, public_key, algorithm, sign_count, \
     backup_eligible, backup_state, user_verified, discoverable, transports, aaguid, attestation, name, created_at, \
     last_used_at";

#[derive(sqlx::FromRow)]
pub(crate) struct PasskeyRow {
    id: Uuid,
    user_id: Uuid,
    credential_id: Vec<u8>,
    credential_id_hash: String,
    public_key: Vec<u8>,
    algorithm: i32,
    sign_count: i64,
    backup_eligible: bool,
    backup_state: bool,
    user_verified: bool,
    discoverable: Option<bool>,
    transports: String,
    aaguid: Vec<u8>,
    attestation: String,
    name: String,
    created_at: i64,
    last_used_at: Option<i64>,
}

impl From<PasskeyRow> for Passkey {
    fn from(r: PasskeyRow) -> Self {
        Passkey {
            id: r.id,
            user_id: r.user_id,
            credential_id: r.credential_id,
            credential_id_hash: r.credential_id_hash,
            public_key: r.public_key,
            algorithm: r.algorithm,
            sign_count: r.sign_count,
            backup_eligible: r.backup_eligible,
            backup_state: r.backup_state,
            user_verified: r.user_verified,
            discoverable: r.discoverable,
            transports: serde_json::from_str(&r.transports).unwrap_or_default(),
            aaguid: r.aaguid,
            attestation: r.attestation,
            name: r.name,
            created_at: from_micros(r.created_at),
            last_used_at: r.last_used_at.map(from_micros),
        }
    }
}

/// A passkey row as `add_passkey` and a user import write it ([`bind_passkey!`]).
pub(crate) const INSERT_PASSKEY: &str = "INSERT INTO passkey_credentials (id, user_id, credential_id, \
     credential_id_hash, public_key, algorithm, sign_count, backup_eligible, backup_state, user_verified, discoverable, \
     transports, aaguid, attestation, name, created_at, last_used_at) \
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";

/// Binds the values of [`INSERT_PASSKEY`] (a macro: each driver's query type is its own).
macro_rules! bind_passkey {
    ($query:expr, $k:expr, $transports:expr) => {
        $query
            .bind($k.id)
            .bind($k.user_id)
            .bind(&$k.credential_id)
            .bind(&$k.credential_id_hash)
            .bind(&$k.public_key)
            .bind($k.algorithm)
            .bind($k.sign_count)
            .bind($k.backup_eligible)
            .bind($k.backup_state)
            .bind($k.user_verified)
            .bind($k.discoverable)
            .bind(&$transports)
            .bind(&$k.aaguid)
            .bind(&$k.attestation)
            .bind(&$k.name)
            .bind($crate::db::to_micros($k.created_at))
            .bind($k.last_used_at.map($crate::db::to_micros))
    };
}
pub(crate) use bind_passkey;

/// How the `transports` column holds a passkey's transports (a JSON list).
pub(crate) fn transports_text(k: &Passkey) -> String {
    serde_json::to_string(&k.transports).unwrap_or_else(|_| "[]".into())
}

#[derive(sqlx::FromRow)]
struct ChallengeRow {
    challenge_hash: String,
    purpose: String,
    user_id: Option<Uuid>,
    binding_hash: Option<String>,
    state: String,
    created_at: i64,
    expires_at: i64,
}

#[async_trait]
impl PasskeyRepository for TenantDb {
    async fn passkey_handle(&self, user_id: Uuid, new_handle: &[u8], now: DateTime<Utc>) -> Result<Vec<u8>, DbError> {
        const SELECT: &str = "SELECT handle FROM passkey_user_handles WHERE user_id = ?";
        let found: Option<Vec<u8>> =
            on_pool!(self, p => sqlx::query_scalar(self.sql(SELECT)).bind(user_id).fetch_optional(p).await)
                .map_err(query_err)?;
        if let Some(handle) = found {
            return Ok(handle);
        }
        let insert = self.sql("INSERT INTO passkey_user_handles (user_id, handle, created_at) VALUES (?, ?, ?)");
        match on_pool!(self, p => sqlx::query(insert).bind(user_id).bind(new_handle).bind(to_micros(now)).execute(p).await.map(|_| ()))
            .map_err(query_err)
        {
            Ok(()) => Ok(new_handle.to_vec()),
            // Made meanwhile by a concurrent ceremony of the same user: theirs stands.
            Err(DbError::Conflict(_)) => {
                on_pool!(self, p => sqlx::query_scalar(self.sql(SELECT)).bind(user_id).fetch_one(p).await).map_err(query_err)
            }
            Err(e) => Err(e),
        }
    }

    async fn user_by_passkey_handle(&self, handle: &[u8]) -> Result<Option<Uuid>, DbError> {
        let sql = self.sql("SELECT user_id FROM passkey_user_handles WHERE handle = ?");
        on_pool!(self, p => sqlx::query_scalar(sql).bind(handle).fetch_optional(p).await).map_err(query_err)
    }

    async fn add_passkey(&self, k: &Passkey) -> Result<(), DbError> {
        let sql = self.sql(INSERT_PASSKEY);
        let transports = transports_text(k);
        on_pool!(self, p => bind_passkey!(sqlx::query(sql), k, transports).execute(p).await.map(|_| ()))
            .map_err(query_err)
    }

    async fn passkeys(&self, user_id: Uuid) -> Result<Vec<Passkey>, DbError> {
        let sql =
            format!("SELECT {PASSKEY_COLUMNS} FROM passkey_credentials WHERE user_id = ? ORDER BY created_at, id");
        let sql = self.sql(&sql);
        let rows: Vec<PasskeyRow> =
            on_pool!(self, p => sqlx::query_as(sql).bind(user_id).fetch_all(p).await).map_err(query_err)?;
        Ok(rows.into_iter().map(Passkey::from).collect())
    }

    async fn passkey_by_credential(&self, credential_id_hash: &str) -> Result<Option<Passkey>, DbError> {
        let sql = format!("SELECT {PASSKEY_COLUMNS} FROM passkey_credentials WHERE credential_id_hash = ?");
        let sql = self.sql(&sql);
        let row: Option<PasskeyRow> =
            on_pool!(self, p => sqlx::query_as(sql).bind(credential_id_hash).fetch_optional(p).await)
                .map_err(query_err)?;
        Ok(row.map(Passkey::from))
    }

    async fn record_passkey_use(&self, id: Uuid, used: PasskeyUse) -> Result<bool, DbError> {
        // Monotonic without a lock: of two concurrent assertions with the same counter
        // only one moves it.
        let sql = self.sql(
            "UPDATE passkey_credentials SET sign_count = ?, backup_state = ?, \
             last_used_at = ? \
             WHERE id = ? AND (sign_count < ? OR (sign_count = 0 AND ? = 0))",
        );
        let n = on_pool!(self, p => sqlx::query(sql)
            .bind(used.sign_count).bind(used.backup_state).bind(to_micros(used.at))
            .bind(id).bind(used.sign_count).bind(used.sign_count)
            .execute(p).await.map(|r| r.rows_affected()))
        .map_err(query_err)?;
        Ok(n > 0)
    }

    async fn rename_passkey(&self, user_id: Uuid, id: Uuid, name: &str) -> Result<bool, DbError> {
        let sql = self.sql("UPDATE passkey_credentials SET name = ? WHERE id = ? AND user_id = ?");
        let n = on_pool!(self, p => sqlx::query(sql).bind(name).bind(id).bind(user_id).execute(p).await.map(|r| r.rows_affected()))
            .map_err(query_err)?;
        // MySQL counts changed rows: renaming to the same name touches none.
        if n == 0 {
            return Ok(self.passkeys(user_id).await?.iter().any(|k| k.id == id));
        }
        Ok(true)
    }

    async fn delete_passkey(&self, user_id: Uuid, id: Uuid) -> Result<bool, DbError> {
        let sql = self.sql("DELETE FROM passkey_credentials WHERE id = ? AND user_id = ?");
        let n =
            on_pool!(self, p => sqlx::query(sql).bind(id).bind(user_id).execute(p).await.map(|r| r.rows_affected()))
                .map_err(query_err)?;
        Ok(n > 0)
    }

    async fn count_passkeys(&self, user_id: Uuid) -> Result<i64, DbError> {
        let sql = self.sql("SELECT COUNT(*) FROM passkey_credentials WHERE user_id = ?");
        on_pool!(self, p => sqlx::query_scalar::<_, i64>(sql).bind(user_id).fetch_one(p).await).map_err(query_err)
    }

    async fn store_webauthn_challenge(&self, c: &WebauthnChallenge) -> Result<(), DbError> {
        let sql = self.sql(
            "INSERT INTO webauthn_challenges (challenge_hash, purpose, user_id, binding_hash, state, created_at, \
             expires_at, used_at) VALUES (?, ?, ?, ?, ?, ?, ?, NULL)",
        );
        on_pool!(self, p => sqlx::query(sql)
            .bind(&c.challenge_hash).bind(&c.purpose).bind(c.user_id).bind(&c.binding_hash).bind(&c.state)
            .bind(to_micros(c.created_at)).bind(to_micros(c.expires_at))
            .execute(p).await.map(|_| ()))
        .map_err(query_err)
    }

    async fn spend_webauthn_challenge(
        &self,
        challenge_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<WebauthnChallenge>, DbError> {
        let now = to_micros(now);
        let spend = self.sql(
            "UPDATE webauthn_challenges SET used_at = ? WHERE challenge_hash = ? AND used_at IS NULL AND expires_at > ?",
        );
        let n = on_pool!(self, p => sqlx::query(spend).bind(now).bind(challenge_hash).bind(now).execute(p).await.map(|r| r.rows_affected()))
            .map_err(query_err)?;
        if n == 0 {
            return Ok(None);
        }
        let select = self.sql(
            "SELECT challenge_hash, purpose, user_id, binding_hash, state, created_at, expires_at \
             FROM webauthn_challenges WHERE challenge_hash = ?",
        );
        let row: Option<ChallengeRow> =
            on_pool!(self, p => sqlx::query_as(select).bind(challenge_hash).fetch_optional(p).await)
                .map_err(query_err)?;
        Ok(row.map(|r| WebauthnChallenge {
            challenge_hash: r.challenge_hash,
            purpose: r.purpose,
            user_id: r.user_id,
            binding_hash: r.binding_hash,
            state: r.state,
            created_at: from_micros(r.created_at),
            expires_at: from_micros(r.expires_at),
        }))
    }
}
