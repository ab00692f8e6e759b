//! TOTP credentials, recovery codes, trusted devices and email tokens.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::db::{DbError, TenantDb, from_micros, query_err, to_micros};
use crate::model::*;
use crate::on_pool;

#[async_trait]
pub trait MfaRepository {
    /// Stores a new (unconfirmed) TOTP secret, replacing an unconfirmed one; false (and
    /// nothing changed) when the user already has a confirmed credential.
    async fn put_totp(&self, user_id: Uuid, secret_sealed: &str, now: DateTime<Utc>) -> Result<bool, DbError>;
    async fn totp(&self, user_id: Uuid) -> Result<Option<TotpCredential>, DbError>;
    /// Confirms the pending secret — only if it is still `secret_sealed`, the one a code
    /// was just checked against.
    async fn confirm_totp(&self, user_id: Uuid, secret_sealed: &str, now: DateTime<Utc>) -> Result<bool, DbError>;
    /// Records the time step a code matched; false when that step (or a later one) was
    /// already used, which blocks replay.
    async fn use_totp_step(&self, user_id: Uuid, step: i64) -> Result<bool, DbError>;
    async fn delete_totp(&self, user_id: Uuid) -> Result<bool, DbError>;

    /// Replaces the user's recovery codes with these hashes.
    async fn replace_recovery_codes(
        &self,
        user_id: Uuid,
        code_hashes: &[String],
        now: DateTime<Utc>,
    ) -> Result<(), DbError>;
    /// Spends one recovery code; false when unknown or already used.
    async fn use_recovery_code(&self, user_id: Uuid, code_hash: &str, now: DateTime<Utc>) -> Result<bool, DbError>;
    async fn remaining_recovery_codes(&self, user_id: Uuid) -> Result<i64, DbError>;

    async fn trust_device(&self, device: &TrustedDevice) -> Result<(), DbError>;
    async fn trusted_device(
        &self,
        token_hash: &str,
        user_id: Uuid,
        now: DateTime<Utc>,
    ) -> Result<Option<TrustedDevice>, DbError>;
    async fn forget_devices(&self, user_id: Uuid, now: DateTime<Utc>) -> Result<u64, DbError>;
}

#[async_trait]
pub trait EmailTokenRepository {
    async fn store_email_token(&self, token: &EmailToken) -> Result<(), DbError>;
    /// A token of `purpose` that is unused and not expired, without spending it (to check
    /// a request before the work it authorizes; [`use_email_token`](Self::use_email_token)
    /// still decides who gets it).
    async fn email_token(
        &self,
        token_hash: &str,
        purpose: EmailTokenPurpose,
        now: DateTime<Utc>,
    ) -> Result<Option<EmailToken>, DbError>;
    /// Spends a token of `purpose` once, if it has not expired.
    async fn use_email_token(
        &self,
        token_hash: &str,
        purpose: EmailTokenPurpose,
        now: DateTime<Utc>,
    ) -> Result<Option<EmailToken>, DbError>;
    /// Spends every unused token of `purpose` the user still has (expired ones too: they
    /// are dead either way), so that once one link did its work no older mail's link can
    /// follow it. Answers how many were spent.
    async fn spend_email_tokens(
        &self,
        user_id: Uuid,
        purpose: EmailTokenPurpose,
        now: DateTime<Utc>,
    ) -> Result<u64, DbError>;
}

#[derive(sqlx::FromRow)]
struct TotpRow {
    user_id: Uuid,
    secret_sealed: String,
    confirmed_at: Option<i64>,
    last_used_step: Option<i64>,
    created_at: i64,
}

#[derive(sqlx::FromRow)]
struct DeviceRow {
    token_hash: String,
    user_id: Uuid,
    user_agent: Option<String>,
    created_at: i64,
    expires_at: i64,
    revoked_at: Option<i64>,
}

#[async_trait]
impl MfaRepository for TenantDb {
    async fn put_totp(&self, user_id: Uuid, secret_sealed: &str, now: DateTime<Utc>) -> Result<bool, DbError> {
        let delete = self.sql("DELETE FROM totp_credentials WHERE user_id = ? AND confirmed_at IS NULL");
        let confirmed = self.sql("SELECT user_id FROM totp_credentials WHERE user_id = ?");
        let insert = self.sql("INSERT INTO totp_credentials (user_id, secret_sealed, confirmed_at, last_used_step, created_at) VALUES (?, ?, NULL, NULL, ?)");
        on_pool!(self, p => {
            let mut tx = p.begin().await.map_err(query_err)?;
            sqlx::query(delete).bind(user_id).execute(&mut *tx).await.map_err(query_err)?;
            let kept: Option<(Uuid,)> = sqlx::query_as(confirmed).bind(user_id).fetch_optional(&mut *tx).await.map_err(query_err)?;
            if kept.is_some() {
                tx.rollback().await.map_err(query_err)?;
                return Ok(false);
            }
            sqlx::query(insert).bind(user_id).bind(secret_sealed).bind(to_micros(now)).execute(&mut *tx).await.map_err(query_err)?;
            tx.commit().await.map_err(query_err)?;
            Ok(true)
        })
    }

    async fn totp(&self, user_id: Uuid) -> Result<Option<TotpCredential>, DbError> {
        let sql = self.sql("SELECT user_id, secret_sealed, confirmed_at, last_used_step, created_at FROM totp_credentials WHERE user_id = ?");
        let row: Option<TotpRow> =
            on_pool!(self, p => sqlx::query_as(sql).bind(user_id).fetch_optional(p).await).map_err(query_err)?;
        Ok(row.map(|r| TotpCredential {
            user_id: r.user_id,
            secret_sealed: r.secret_sealed,
            confirmed_at: r.confirmed_at.map(from_micros),
            last_used_step: r.last_used_step,
            created_at: from_micros(r.created_at),
        }))
    }

    async fn confirm_totp(&self, user_id: Uuid, secret_sealed: &str, now: DateTime<Utc>) -> Result<bool, DbError> {
        let sql = self.sql("UPDATE totp_credentials SET confirmed_at = ? WHERE user_id = ? AND secret_sealed = ? AND confirmed_at IS NULL");
        let n = on_pool!(self, p => sqlx::query(sql).bind(to_micros(now)).bind(user_id).bind(secret_sealed).execute(p).await.map(|r| r.rows_affected())).map_err(query_err)?;
        Ok(n > 0)
    }

    async fn use_totp_step(&self, user_id: Uuid, step: i64) -> Result<bool, DbError> {
        let sql = self.sql("UPDATE totp_credentials SET last_used_step = ? WHERE user_id = ? AND (last_used_step IS NULL OR last_used_step < ?)");
        let n = on_pool!(self, p => sqlx::query(sql).bind(step).bind(user_id).bind(step).execute(p).await.map(|r| r.rows_affected())).map_err(query_err)?;
        Ok(n > 0)
    }

    async fn delete_totp(&self, user_id: Uuid) -> Result<bool, DbError> {
        let sql = self.sql("DELETE FROM totp_credentials WHERE user_id = ?");
        let n = on_pool!(self, p => sqlx::query(sql).bind(user_id).execute(p).await.map(|r| r.rows_affected()))
            .map_err(query_err)?;
        Ok(n > 0)
    }

    async fn replace_recovery_codes(
        &self,
        user_id: Uuid,
        code_hashes: &[String],
        now: DateTime<Utc>,
    ) -> Result<(), DbError> {
        let delete = self.sql("DELETE FROM recovery_codes WHERE user_id = ?");
        let insert = "INSERT INTO recovery_codes (user_id, code_hash, used_at, created_at) VALUES (?, ?, NULL, ?)";
        on_pool!(self, p => {
            let mut tx = p.begin().await.map_err(query_err)?;
            sqlx::query(delete).bind(user_id).execute(&mut *tx).await.map_err(query_err)?;
            for hash in code_hashes {
                sqlx::query(self.sql(insert)).bind(user_id).bind(hash).bind(to_micros(now)).execute(&mut *tx).await.map_err(query_err)?;
            }
            tx.commit().await.map_err(query_err)
        })
    }

    async fn use_recovery_code(&self, user_id: Uuid, code_hash: &str, now: DateTime<Utc>) -> Result<bool, DbError> {
        let sql =
            self.sql("UPDATE recovery_codes SET used_at = ? WHERE user_id = ? AND code_hash = ? AND used_at IS NULL");
        let n = on_pool!(self, p => sqlx::query(sql).bind(to_micros(now)).bind(user_id).bind(code_hash).execute(p).await.map(|r| r.rows_affected())).map_err(query_err)?;
        Ok(n > 0)
    }

    async fn remaining_recovery_codes(&self, user_id: Uuid) -> Result<i64, DbError> {
        let sql = self.sql("SELECT COUNT(*) FROM recovery_codes WHERE user_id = ? AND used_at IS NULL");
        on_pool!(self, p => sqlx::query_scalar::<_, i64>(sql).bind(user_id).fetch_one(p).await).map_err(query_err)
    }

    async fn trust_device(&self, d: &TrustedDevice) -> Result<(), DbError> {
        let sql = self.sql("INSERT INTO trusted_devices (token_hash, user_id, user_agent, created_at, expires_at, revoked_at) VALUES (?, ?, ?, ?, ?, NULL)");
        on_pool!(self, p => sqlx::query(sql).bind(&d.token_hash).bind(d.user_id).bind(&d.user_agent).bind(to_micros(d.created_at)).bind(to_micros(d.expires_at)).execute(p).await.map(|_| ()))
            .map_err(query_err)?;
        Ok(())
    }

    async fn trusted_device(
        &self,
        token_hash: &str,
        user_id: Uuid,
        now: DateTime<Utc>,
    ) -> Result<Option<TrustedDevice>, DbError> {
        let sql = self.sql(
            "SELECT token_hash, user_id, user_agent, created_at, expires_at, revoked_at FROM trusted_devices \
             WHERE token_hash = ? AND user_id = ? AND revoked_at IS NULL AND expires_at > ?",
        );
        let row: Option<DeviceRow> = on_pool!(self, p => sqlx::query_as(sql).bind(token_hash).bind(user_id).bind(to_micros(now)).fetch_optional(p).await).map_err(query_err)?;
        Ok(row.map(|r| TrustedDevice {
            token_hash: r.token_hash,
            user_id: r.user_id,
            user_agent: r.user_agent,
            created_at: from_micros(r.created_at),
            expires_at: from_micros(r.expires_at),
            revoked_at: r.revoked_at.map(from_micros),
        }))
    }

    async fn forget_devices(&self, user_id: Uuid, now: DateTime<Utc>) -> Result<u64, DbError> {
        let sql = self.sql("UPDATE trusted_devices SET revoked_at = ? WHERE user_id = ? AND revoked_at IS NULL");
        on_pool!(self, p => sqlx::query(sql).bind(to_micros(now)).bind(user_id).execute(p).await.map(|r| r.rows_affected())).map_err(query_err)
    }
}

#[derive(sqlx::FromRow)]
struct EmailTokenRow {
    token_hash: String,
    user_id: Uuid,
    purpose: String,
    email: String,
    created_at: i64,
    expires_at: i64,
    used_at: Option<i64>,
}

impl EmailTokenRow {
    fn into_token(self) -> EmailToken {
        EmailToken {
            token_hash: self.token_hash,
            user_id: self.user_id,
            purpose: self.purpose,
            email: self.email,
            created_at: from_micros(self.created_at),
            expires_at: from_micros(self.expires_at),
            used_at: self.used_at.map(from_micros),
        }
    }
}

#[async_trait]
impl EmailTokenRepository for TenantDb {
    async fn store_email_token(&self, t: &EmailToken) -> Result<(), DbError> {
        let sql = self.sql("INSERT INTO email_tokens (token_hash, user_id, purpose, email, created_at, expires_at, used_at) VALUES (?, ?, ?, ?, ?, ?, NULL)");
        on_pool!(self, p => sqlx::query(sql).bind(&t.token_hash).bind(t.user_id).bind(&t.purpose).bind(&t.email).bind(to_micros(t.created_at)).bind(to_micros(t.expires_at)).execute(p).await.map(|_| ()))
            .map_err(query_err)?;
        Ok(())
    }

    async fn email_token(
        &self,
        token_hash: &str,
        purpose: EmailTokenPurpose,
        now: DateTime<Utc>,
    ) -> Result<Option<EmailToken>, DbError> {
        let sql = self.sql(
            "SELECT token_hash, user_id, purpose, email, created_at, expires_at, used_at FROM email_tokens \
             WHERE token_hash = ? AND purpose = ? AND used_at IS NULL AND expires_at > ?",
        );
        let row: Option<EmailTokenRow> = on_pool!(self, p => sqlx::query_as(sql).bind(token_hash).bind(purpose.as_str()).bind(to_micros(now)).fetch_optional(p).await).map_err(query_err)?;
        Ok(row.map(EmailTokenRow::into_token))
    }

    async fn use_email_token(
        &self,
        token_hash: &str,
        purpose: EmailTokenPurpose,
        now: DateTime<Utc>,
    ) -> Result<Option<EmailToken>, DbError> {
        let now_us = to_micros(now);
        let spend = self.sql("UPDATE email_tokens SET used_at = ? WHERE token_hash = ? AND purpose = ? AND used_at IS NULL AND expires_at > ?");
        let fetch = self.sql("SELECT token_hash, user_id, purpose, email, created_at, expires_at, used_at FROM email_tokens WHERE token_hash = ?");
        let (n, row): (u64, Option<EmailTokenRow>) = on_pool!(self, p => {
            let n = sqlx::query(spend).bind(now_us).bind(token_hash).bind(purpose.as_str()).bind(now_us).execute(p).await.map_err(query_err)?.rows_affected();
            let row = if n == 1 { sqlx::query_as(fetch).bind(token_hash).fetch_optional(p).await.map_err(query_err)? } else { None };
            Ok::<_, DbError>((n, row))
        })?;
        Ok(row.filter(|_| n == 1).map(EmailTokenRow::into_token))
    }

    async fn spend_email_tokens(
        &self,
        user_id: Uuid,
        purpose: EmailTokenPurpose,
        now: DateTime<Utc>,
    ) -> Result<u64, DbError> {
        let sql = self.sql("UPDATE email_tokens SET used_at = ? WHERE user_id = ? AND purpose = ? AND used_at IS NULL");
        on_pool!(self, p => sqlx::query(sql).bind(to_micros(now)).bind(user_id).bind(purpose.as_str()).execute(p).await.map(|r| r.rows_affected())).map_err(query_err)
    }
}
