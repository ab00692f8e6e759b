//! Login sessions, authorization codes, refresh tokens and consents.
//!
//! Every secret (session id, code, refresh token) is stored as a hash made by the caller.
//! Single-use rules are enforced by conditional updates (`... WHERE used_at IS NULL`), so
//! they hold under concurrency on every driver without row locks.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::db::{DbError, Pool, TenantDb, from_micros, query_err, to_micros};
use crate::model::*;
use crate::on_pool;

fn json_list(items: &[String]) -> String {
    serde_json::to_string(items).expect("strings serialize")
}

fn parse_list(text: &str) -> Vec<String> {
    serde_json::from_str(text).unwrap_or_default()
}

#[derive(sqlx::FromRow)]
struct SessionRow {
    id_hash: String,
    user_id: Uuid,
    auth_time: i64,
    amr: String,
    acr: Option<String>,
    ip: Option<String>,
    user_agent: Option<String>,
    created_at: i64,
    last_seen_at: i64,
    expires_at: i64,
    revoked_at: Option<i64>,
}

impl From<SessionRow> for Session {
    fn from(r: SessionRow) -> Self {
        Session {
            id_hash: r.id_hash,
            user_id: r.user_id,
            auth_time: from_micros(r.auth_time),
            amr: parse_list(&r.amr),
            acr: r.acr,
            ip: r.ip,
            user_agent: r.user_agent,
            created_at: from_micros(r.created_at),
            last_seen_at: from_micros(r.last_seen_at),
            expires_at: from_micros(r.expires_at),
            revoked_at: r.revoked_at.map(from_micros),
        }
    }
}

const SESSION_COLUMNS: &str =
    "id_hash, user_id, auth_time, amr, acr, ip, user_agent, created_at, last_seen_at, expires_at, revoked_at";

#[derive(sqlx::FromRow)]
struct CodeRow {
    code_hash: String,
    client_id: String,
    user_id: Uuid,
    session_id_hash: Option<String>,
    redirect_uri: String,
    scope: String,
    nonce: Option<String>,
    code_challenge: Option<String>,
    code_challenge_method: Option<String>,
    auth_time: i64,
    acr: Option<String>,
    amr: String,
    created_at: i64,
    expires_at: i64,
    used_at: Option<i64>,
}

impl From<CodeRow> for AuthorizationCode {
    fn from(r: CodeRow) -> Self {
        AuthorizationCode {
            code_hash: r.code_hash,
            client_id: r.client_id,
            user_id: r.user_id,
            session_id_hash: r.session_id_hash,
            redirect_uri: r.redirect_uri,
            scope: r.scope,
            nonce: r.nonce,
            code_challenge: r.code_challenge,
            code_challenge_method: r.code_challenge_method,
            auth_time: from_micros(r.auth_time),
            acr: r.acr,
            amr: parse_list(&r.amr),
            created_at: from_micros(r.created_at),
            expires_at: from_micros(r.expires_at),
            used_at: r.used_at.map(from_micros),
        }
    }
}

const CODE_COLUMNS: &str = "code_hash, client_id, user_id, session_id_hash, redirect_uri, scope, nonce, code_challenge, \
    code_challenge_method, auth_time, acr, amr, created_at, expires_at, used_at";

#[derive(sqlx::FromRow)]
struct RefreshRow {
    token_hash: String,
    family_id: Uuid,
    parent_hash: Option<String>,
    client_id: String,
    user_id: Uuid,
    session_id_hash: Option<String>,
    origin_code_hash: Option<String>,
    scope: String,
    auth_time: Option<i64>,
    amr: Option<String>,
    issued_at: i64,
    expires_at: i64,
    rotated_at: Option<i64>,
    revoked_at: Option<i64>,
    revoke_reason: Option<String>,
}

impl From<RefreshRow> for RefreshToken {
    fn from(r: RefreshRow) -> Self {
        RefreshToken {
            token_hash: r.token_hash,
            family_id: r.family_id,
            parent_hash: r.parent_hash,
            client_id: r.client_id,
            user_id: r.user_id,
            session_id_hash: r.session_id_hash,
            origin_code_hash: r.origin_code_hash,
            scope: r.scope,
            auth_time: r.auth_time.map(from_micros),
            amr: r.amr.as_deref().map(parse_list).unwrap_or_default(),
            issued_at: from_micros(r.issued_at),
            expires_at: from_micros(r.expires_at),
            rotated_at: r.rotated_at.map(from_micros),
            revoked_at: r.revoked_at.map(from_micros),
            revoke_reason: r.revoke_reason,
        }
    }
}

const REFRESH_COLUMNS: &str = "token_hash, family_id, parent_hash, client_id, user_id, session_id_hash, origin_code_hash, \
    scope, auth_time, amr, issued_at, expires_at, rotated_at, revoked_at, revoke_reason";

const INSERT_REFRESH: &str = "INSERT INTO refresh_tokens (token_hash, family_id, parent_hash, client_id, user_id, session_id_hash, \
    origin_code_hash, scope, auth_time, amr, issued_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";

/// What a new refresh token carries; the family and parent are filled by the repository.
#[derive(Debug, Clone)]
pub struct NewRefreshToken {
    pub token_hash: String,
    pub client_id: String,
    pub user_id: Uuid,
    pub session_id_hash: Option<String>,
    pub origin_code_hash: Option<String>,
    pub scope: String,
    /// When and how the user logged in for the grant that starts this family.
    pub auth_time: Option<DateTime<Utc>>,
    pub amr: Vec<String>,
    pub expires_at: DateTime<Utc>,
}

/// A rotation: which client presents the old token, what the successor is, and the
/// scope it asks for (`None` keeps the old scope; a narrower list is allowed, a wider
/// one refused). Checked before the token is spent, so a refused request
/// changes nothing.
#[derive(Debug, Clone)]
pub struct RotationRequest {
    pub client_id: String,
    pub new_hash: String,
    pub scope: Option<Vec<String>>,
    pub expires_at: DateTime<Utc>,
    /// The tenant's custom fields: the token's user is read with it, in the same statement.
    pub user_fields: crate::custom_fields::CustomFieldSet,
}

impl RotationRequest {
    /// The successor's scope, or `None` when a requested scope was not granted.
    fn scope_from(&self, granted: &str) -> Option<String> {
        let Some(requested) = &self.scope else {
            return Some(granted.to_owned());
        };
        let granted: Vec<&str> = granted.split(' ').collect();
        let mut narrowed: Vec<&str> = Vec::new();
        for s in requested.iter().map(String::as_str).filter(|s| !s.is_empty()) {
            if !granted.contains(&s) {
                return None;
            }
            if !narrowed.contains(&s) {
                narrowed.push(s);
            }
        }
        Some(narrowed.join(" "))
    }
}

#[async_trait]
pub trait SessionRepository {
    async fn create_session(&self, session: &Session) -> Result<(), DbError>;
    /// A session that is neither revoked nor expired.
    async fn active_session(&self, id_hash: &str, now: DateTime<Utc>) -> Result<Option<Session>, DbError>;
    async fn touch_session(&self, id_hash: &str, now: DateTime<Utc>) -> Result<(), DbError>;
    async fn revoke_session(&self, id_hash: &str, now: DateTime<Utc>) -> Result<bool, DbError>;
    /// Revokes every session of a user except `keep` (if given); returns how many.
    async fn revoke_user_sessions(&self, user_id: Uuid, keep: Option<&str>, now: DateTime<Utc>)
    -> Result<u64, DbError>;
    async fn sessions_of(&self, user_id: Uuid, now: DateTime<Utc>) -> Result<Vec<Session>, DbError>;
}

#[async_trait]
pub trait TokenRepository {
    async fn store_code(&self, code: &AuthorizationCode) -> Result<(), DbError>;
    /// Spends a code once; a second attempt reports `Replayed` with the code's data.
    async fn redeem_code(&self, code_hash: &str, now: DateTime<Utc>) -> Result<CodeRedemption, DbError>;

    /// Stores the first token of a new family.
    async fn issue_refresh(&self, token: NewRefreshToken, now: DateTime<Utc>) -> Result<RefreshToken, DbError>;
    async fn refresh_token(&self, token_hash: &str) -> Result<Option<RefreshToken>, DbError>;
    /// Spends `old_hash` and stores its successor in the same family, in one transaction
    /// and commit. Presenting an already-rotated token revokes the whole family.
    async fn rotate_refresh(
        &self,
        old_hash: &str,
        request: RotationRequest,
        now: DateTime<Utc>,
    ) -> Result<Rotation, DbError>;
    async fn revoke_family(&self, family_id: Uuid, reason: &str, now: DateTime<Utc>) -> Result<u64, DbError>;
    async fn revoke_refresh_by_session(&self, session_id_hash: &str, now: DateTime<Utc>) -> Result<u64, DbError>;
    async fn revoke_refresh_by_user(&self, user_id: Uuid, now: DateTime<Utc>) -> Result<u64, DbError>;
    async fn revoke_refresh_by_code(&self, code_hash: &str, now: DateTime<Utc>) -> Result<u64, DbError>;
    /// Revokes every live refresh token of `client_id` (of one user, when given).
    async fn revoke_refresh_by_client(
        &self,
        client_id: &str,
        user_id: Option<Uuid>,
        now: DateTime<Utc>,
    ) -> Result<u64, DbError>;
    /// The user's usable refresh tokens (one per family: its current token), newest first.
    async fn live_refresh_tokens_of(&self, user_id: Uuid, now: DateTime<Utc>) -> Result<Vec<RefreshToken>, DbError>;

    /// The clients that received a code or refresh token from a login session.
    async fn clients_of_session(&self, session_id_hash: &str) -> Result<Vec<String>, DbError>;
    /// Records a client assertion's `jti` until `expires_at`; `false` when it was already
    /// spent (a replay).
    async fn spend_assertion_jti(&self, client_id: &str, jti: &str, expires_at: DateTime<Utc>)
    -> Result<bool, DbError>;
    /// Records the hash of an upstream sign-in's `state` until `expires_at`; `false` when
    /// it came back before (a replay).
    async fn spend_upstream_state(&self, state_hash: &str, expires_at: DateTime<Utc>) -> Result<bool, DbError>;
    /// Puts a JWT access token's `jti` on the deny-list until `expires_at` (idempotent).
    async fn deny_access_token(&self, jti: &str, expires_at: DateTime<Utc>) -> Result<(), DbError>;
    /// Whether `jti` is on the deny-list.
    async fn access_token_denied(&self, jti: &str) -> Result<bool, DbError>;
    /// Drops deny-list entries of tokens that have expired anyway; returns how many.
    async fn purge_denied_access_tokens(&self, now: DateTime<Utc>) -> Result<u64, DbError>;
}

#[async_trait]
pub trait ConsentRepository {
    /// Records (or widens) a grant.
    async fn grant_consent(&self, consent: &Consent) -> Result<(), DbError>;
    /// The grant if it is neither revoked nor expired.
    async fn consent(&self, user_id: Uuid, client_id: &str, now: DateTime<Utc>) -> Result<Option<Consent>, DbError>;
    async fn revoke_consent(&self, user_id: Uuid, client_id: &str, now: DateTime<Utc>) -> Result<bool, DbError>;
    /// The user's grants that are neither revoked nor expired.
    async fn consents_of(&self, user_id: Uuid, now: DateTime<Utc>) -> Result<Vec<Consent>, DbError>;
    /// Revokes every grant made to `client_id`; returns how many.
    async fn revoke_consents_by_client(&self, client_id: &str, now: DateTime<Utc>) -> Result<u64, DbError>;
}

#[async_trait]
impl SessionRepository for TenantDb {
    async fn create_session(&self, s: &Session) -> Result<(), DbError> {
        let sql = self.sql(&format!(
            "INSERT INTO sessions ({SESSION_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        ));
        on_pool!(self, p => sqlx::query(sql)
            .bind(&s.id_hash).bind(s.user_id).bind(to_micros(s.auth_time)).bind(json_list(&s.amr)).bind(&s.acr).bind(&s.ip)
            .bind(&s.user_agent).bind(to_micros(s.created_at)).bind(to_micros(s.last_seen_at)).bind(to_micros(s.expires_at))
            .bind(s.revoked_at.map(to_micros))
            .execute(p).await.map(|_| ())).map_err(query_err)?;
        Ok(())
    }

    async fn active_session(&self, id_hash: &str, now: DateTime<Utc>) -> Result<Option<Session>, DbError> {
        let sql = self.sql(&format!(
            "SELECT {SESSION_COLUMNS} FROM sessions WHERE id_hash = ? AND revoked_at IS NULL AND expires_at > ?"
        ));
        let row: Option<SessionRow> =
            on_pool!(self, p => sqlx::query_as(sql).bind(id_hash).bind(to_micros(now)).fetch_optional(p).await)
                .map_err(query_err)?;
        Ok(row.map(Into::into))
    }

    async fn touch_session(&self, id_hash: &str, now: DateTime<Utc>) -> Result<(), DbError> {
        let sql = self.sql("UPDATE sessions SET last_seen_at = ? WHERE id_hash = ?");
        on_pool!(self, p => sqlx::query(sql).bind(to_micros(now)).bind(id_hash).execute(p).await.map(|_| ()))
            .map_err(query_err)?;
        Ok(())
    }

    async fn revoke_session(&self, id_hash: &str, now: DateTime<Utc>) -> Result<bool, DbError> {
        let sql = self.sql("UPDATE sessions SET revoked_at = ? WHERE id_hash = ? AND revoked_at IS NULL");
        let n = on_pool!(self, p => sqlx::query(sql).bind(to_micros(now)).bind(id_hash).execute(p).await.map(|r| r.rows_affected())).map_err(query_err)?;
        Ok(n > 0)
    }

    async fn revoke_user_sessions(
        &self,
        user_id: Uuid,
        keep: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<u64, DbError> {
        let sql =
            self.sql("UPDATE sessions SET revoked_at = ? WHERE user_id = ? AND revoked_at IS NULL AND id_hash <> ?");
        on_pool!(self, p => sqlx::query(sql).bind(to_micros(now)).bind(user_id).bind(keep.unwrap_or("")).execute(p).await.map(|r| r.rows_affected()))
            .map_err(query_err)
    }

    async fn sessions_of(&self, user_id: Uuid, now: DateTime<Utc>) -> Result<Vec<Session>, DbError> {
        let sql = self.sql(&format!(
            "SELECT {SESSION_COLUMNS} FROM sessions WHERE user_id = ? AND revoked_at IS NULL AND expires_at > ? ORDER BY created_at DESC"
        ));
        let rows: Vec<SessionRow> =
            on_pool!(self, p => sqlx::query_as(sql).bind(user_id).bind(to_micros(now)).fetch_all(p).await)
                .map_err(query_err)?;
        Ok(rows.into_iter().map(Into::into).collect())
    }
}

#[async_trait]
impl TokenRepository for TenantDb {
    async fn store_code(&self, c: &AuthorizationCode) -> Result<(), DbError> {
        let sql = self.sql(&format!(
            "INSERT INTO authorization_codes ({CODE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        ));
        on_pool!(self, p => sqlx::query(sql)
            .bind(&c.code_hash).bind(&c.client_id).bind(c.user_id).bind(&c.session_id_hash).bind(&c.redirect_uri).bind(&c.scope)
            .bind(&c.nonce).bind(&c.code_challenge).bind(&c.code_challenge_method).bind(to_micros(c.auth_time)).bind(&c.acr)
            .bind(json_list(&c.amr)).bind(to_micros(c.created_at)).bind(to_micros(c.expires_at)).bind(c.used_at.map(to_micros))
            .execute(p).await.map(|_| ())).map_err(query_err)?;
        Ok(())
    }

    async fn redeem_code(&self, code_hash: &str, now: DateTime<Utc>) -> Result<CodeRedemption, DbError> {
        let spend = self.sql(
            "UPDATE authorization_codes SET used_at = ? WHERE code_hash = ? AND used_at IS NULL AND expires_at > ?",
        );
        let fetch = self.sql(&format!(
            "SELECT {CODE_COLUMNS} FROM authorization_codes WHERE code_hash = ?"
        ));
        let now_us = to_micros(now);
        let (spent, row): (u64, Option<CodeRow>) = on_pool!(self, p => {
            let spent = sqlx::query(spend).bind(now_us).bind(code_hash).bind(now_us).execute(p).await.map_err(query_err)?.rows_affected();
            let row = sqlx::query_as(fetch).bind(code_hash).fetch_optional(p).await.map_err(query_err)?;
            Ok::<_, DbError>((spent, row))
        })?;
        Ok(match (spent, row) {
            (_, None) => CodeRedemption::NotFound,
            (1, Some(row)) => CodeRedemption::Redeemed(row.into()),
            (_, Some(row)) if row.used_at.is_some() => CodeRedemption::Replayed(row.into()),
            (_, Some(_)) => CodeRedemption::Expired,
        })
    }

    async fn issue_refresh(&self, t: NewRefreshToken, now: DateTime<Utc>) -> Result<RefreshToken, DbError> {
        let token = RefreshToken {
            token_hash: t.token_hash,
            family_id: Uuid::now_v7(),
            parent_hash: None,
            client_id: t.client_id,
            user_id: t.user_id,
            session_id_hash: t.session_id_hash,
            origin_code_hash: t.origin_code_hash,
            scope: t.scope,
            auth_time: t.auth_time.map(|at| from_micros(to_micros(at))),
            amr: t.amr,
            issued_at: from_micros(to_micros(now)),
            expires_at: from_micros(to_micros(t.expires_at)),
            rotated_at: None,
            revoked_at: None,
            revoke_reason: None,
        };
        let sql = self.sql(INSERT_REFRESH);
        on_pool!(self, p => bind_refresh(sqlx::query(sql), &token).execute(p).await.map(|_| ())).map_err(query_err)?;
        Ok(token)
    }

    async fn refresh_token(&self, token_hash: &str) -> Result<Option<RefreshToken>, DbError> {
        let sql = self.sql(&format!(
            "SELECT {REFRESH_COLUMNS} FROM refresh_tokens WHERE token_hash = ?"
        ));
        let row: Option<RefreshRow> =
            on_pool!(self, p => sqlx::query_as(sql).bind(token_hash).fetch_optional(p).await).map_err(query_err)?;
        Ok(row.map(Into::into))
    }

    async fn rotate_refresh(
        &self,
        old_hash: &str,
        request: RotationRequest,
        now: DateTime<Utc>,
    ) -> Result<Rotation, DbError> {
        // Judge the token on a plain read, then spend it and store its successor in one
        // atomic step that re-checks it is still spendable: a refused request writes
        // nothing, and of two concurrent uses only one can spend it. The loser reads
        // the token again and finds it spent, which is reuse.
        let now = from_micros(to_micros(now));
        let (verdict, user) = match self.refresh_token_and_user(old_hash, &request.user_fields).await? {
            None => return Ok(Rotation::NotFound),
            Some((old, user)) => (judge_rotation(old, &request, now), user),
        };
        let verdict = match verdict {
            Ok((old, new)) => {
                if self.spend_into_successor(&old.token_hash, &new, now).await? {
                    return Ok(Rotation::Rotated {
                        old: Box::new(old),
                        new: Box::new(new),
                        user: Box::new(user),
                    });
                }
                match self.refresh_token(old_hash).await? {
                    None => Rotation::NotFound,
                    // A spendable token whose spend failed cannot happen (a spent or
                    // revoked row never becomes spendable again); refuse it all the same.
                    Some(old) => judge_rotation(old, &request, now).err().unwrap_or(Rotation::Revoked),
                }
            }
            Err(refusal) => refusal,
        };
        match verdict {
            Rotation::ReuseDetected { family_id, .. } => {
                let revoked = self.revoke_family(family_id, "reuse_detected", now).await?;
                tracing::warn!(%family_id, revoked, "refresh token reuse detected; family revoked");
                Ok(Rotation::ReuseDetected { family_id, revoked })
            }
            other => Ok(other),
        }
    }

    async fn revoke_family(&self, family_id: Uuid, reason: &str, now: DateTime<Utc>) -> Result<u64, DbError> {
        let sql = self.sql(
            "UPDATE refresh_tokens SET revoked_at = ?, revoke_reason = ? WHERE family_id = ? AND revoked_at IS NULL",
        );
        on_pool!(self, p => sqlx::query(sql).bind(to_micros(now)).bind(reason).bind(family_id).execute(p).await.map(|r| r.rows_affected())).map_err(query_err)
    }

    async fn revoke_refresh_by_session(&self, session_id_hash: &str, now: DateTime<Utc>) -> Result<u64, DbError> {
        let sql = self.sql("UPDATE refresh_tokens SET revoked_at = ?, revoke_reason = ? WHERE session_id_hash = ? AND revoked_at IS NULL");
        on_pool!(self, p => sqlx::query(sql).bind(to_micros(now)).bind("session_ended").bind(session_id_hash).execute(p).await.map(|r| r.rows_affected()))
            .map_err(query_err)
    }

    async fn revoke_refresh_by_user(&self, user_id: Uuid, now: DateTime<Utc>) -> Result<u64, DbError> {
        let sql = self.sql(
            "UPDATE refresh_tokens SET revoked_at = ?, revoke_reason = ? WHERE user_id = ? AND revoked_at IS NULL",
        );
        on_pool!(self, p => sqlx::query(sql).bind(to_micros(now)).bind("user_revoked").bind(user_id).execute(p).await.map(|r| r.rows_affected()))
            .map_err(query_err)
    }

    async fn revoke_refresh_by_client(
        &self,
        client_id: &str,
        user_id: Option<Uuid>,
        now: DateTime<Utc>,
    ) -> Result<u64, DbError> {
        let now = to_micros(now);
        match user_id {
            Some(user_id) => {
                let sql = self.sql("UPDATE refresh_tokens SET revoked_at = ?, revoke_reason = ? WHERE client_id = ? AND user_id = ? AND revoked_at IS NULL");
                on_pool!(self, p => sqlx::query(sql).bind(now).bind("admin_revoked").bind(client_id).bind(user_id).execute(p).await.map(|r| r.rows_affected()))
            }
            None => {
                let sql = self.sql("UPDATE refresh_tokens SET revoked_at = ?, revoke_reason = ? WHERE client_id = ? AND revoked_at IS NULL");
                on_pool!(self, p => sqlx::query(sql).bind(now).bind("admin_revoked").bind(client_id).execute(p).await.map(|r| r.rows_affected()))
            }
        }
        .map_err(query_err)
    }

    async fn live_refresh_tokens_of(&self, user_id: Uuid, now: DateTime<Utc>) -> Result<Vec<RefreshToken>, DbError> {
        let sql = self.sql(&format!(
            "SELECT {REFRESH_COLUMNS} FROM refresh_tokens WHERE user_id = ? AND rotated_at IS NULL \
             AND revoked_at IS NULL AND expires_at > ? ORDER BY issued_at DESC LIMIT 1000"
        ));
        let rows: Vec<RefreshRow> =
            on_pool!(self, p => sqlx::query_as(sql).bind(user_id).bind(to_micros(now)).fetch_all(p).await)
                .map_err(query_err)?;
        Ok(rows.into_iter().map(Into::into).collect())
    }

    async fn revoke_refresh_by_code(&self, code_hash: &str, now: DateTime<Utc>) -> Result<u64, DbError> {
        let sql = self.sql("UPDATE refresh_tokens SET revoked_at = ?, revoke_reason = ? WHERE origin_code_hash = ? AND revoked_at IS NULL");
        on_pool!(self, p => sqlx::query(sql).bind(to_micros(now)).bind("code_replayed").bind(code_hash).execute(p).await.map(|r| r.rows_affected()))
            .map_err(query_err)
    }

    async fn clients_of_session(&self, session_id_hash: &str) -> Result<Vec<String>, DbError> {
        let sql = self.sql(
            "SELECT client_id FROM authorization_codes WHERE session_id_hash = ? \
             UNION SELECT client_id FROM refresh_tokens WHERE session_id_hash = ?",
        );
        let rows: Vec<(String,)> =
            on_pool!(self, p => sqlx::query_as(sql).bind(session_id_hash).bind(session_id_hash).fetch_all(p).await)
                .map_err(query_err)?;
        let mut clients: Vec<String> = rows.into_iter().map(|(c,)| c).collect();
        clients.sort();
        Ok(clients)
    }

    async fn spend_assertion_jti(
        &self,
        client_id: &str,
        jti: &str,
        expires_at: DateTime<Utc>,
    ) -> Result<bool, DbError> {
        let sql = match self.dialect() {
            crate::db::Dialect::MySql => {
                "INSERT IGNORE INTO client_assertion_jtis (client_id, jti, expires_at) VALUES (?, ?, ?)"
            }
            _ => {
                "INSERT INTO client_assertion_jtis (client_id, jti, expires_at) VALUES (?, ?, ?) ON CONFLICT (client_id, jti) DO NOTHING"
            }
        };
        let sql = self.sql(sql);
        let inserted = on_pool!(self, p => sqlx::query(sql).bind(client_id).bind(jti).bind(to_micros(expires_at)).execute(p).await.map(|r| r.rows_affected()))
            .map_err(query_err)?;
        Ok(inserted == 1)
    }

    async fn spend_upstream_state(&self, state_hash: &str, expires_at: DateTime<Utc>) -> Result<bool, DbError> {
        let sql = match self.dialect() {
            crate::db::Dialect::MySql => {
                "INSERT IGNORE INTO spent_upstream_states (state_hash, expires_at) VALUES (?, ?)"
            }
            _ => {
                "INSERT INTO spent_upstream_states (state_hash, expires_at) VALUES (?, ?) ON CONFLICT (state_hash) DO NOTHING"
            }
        };
        let sql = self.sql(sql);
        let inserted = on_pool!(self, p => sqlx::query(sql).bind(state_hash).bind(to_micros(expires_at)).execute(p).await.map(|r| r.rows_affected()))
            .map_err(query_err)?;
        Ok(inserted == 1)
    }

    async fn deny_access_token(&self, jti: &str, expires_at: DateTime<Utc>) -> Result<(), DbError> {
        let sql = match self.dialect() {
            crate::db::Dialect::MySql => "INSERT IGNORE INTO revoked_access_tokens (jti, expires_at) VALUES (?, ?)",
            _ => "INSERT INTO revoked_access_tokens (jti, expires_at) VALUES (?, ?) ON CONFLICT (jti) DO NOTHING",
        };
        let sql = self.sql(sql);
        on_pool!(self, p => sqlx::query(sql).bind(jti).bind(to_micros(expires_at)).execute(p).await.map(|_| ()))
            .map_err(query_err)
    }

    async fn access_token_denied(&self, jti: &str) -> Result<bool, DbError> {
        let sql = self.sql("SELECT 1 FROM revoked_access_tokens WHERE jti = ?");
        on_pool!(self, p => sqlx::query(sql).bind(jti).fetch_optional(p).await.map(|row| row.is_some()))
            .map_err(query_err)
    }

    async fn purge_denied_access_tokens(&self, now: DateTime<Utc>) -> Result<u64, DbError> {
        let sql = self.sql("DELETE FROM revoked_access_tokens WHERE expires_at <= ?");
        on_pool!(self, p => sqlx::query(sql).bind(to_micros(now)).execute(p).await.map(|r| r.rows_affected()))
            .map_err(query_err)
    }
}

/// Whether `old` may be rotated for `request` at `now`: the old token and its successor,
/// or the refusal. Another client's token says nothing about its family's reuse, so the
/// client is checked first.
fn judge_rotation(
    old: RefreshToken,
    request: &RotationRequest,
    now: DateTime<Utc>,
) -> Result<(RefreshToken, RefreshToken), Rotation> {
    if old.client_id != request.client_id {
        return Err(Rotation::WrongClient);
    }
    if old.revoked_at.is_some() {
        return Err(Rotation::Revoked);
    }
    if old.rotated_at.is_some() {
        return Err(Rotation::ReuseDetected {
            family_id: old.family_id,
            revoked: 0,
        });
    }
    if old.expires_at <= now {
        return Err(Rotation::Expired);
    }
    let Some(scope) = request.scope_from(&old.scope) else {
        return Err(Rotation::ScopeWidened);
    };
    let new = RefreshToken {
        token_hash: request.new_hash.clone(),
        family_id: old.family_id,
        parent_hash: Some(old.token_hash.clone()),
        client_id: old.client_id.clone(),
        user_id: old.user_id,
        session_id_hash: old.session_id_hash.clone(),
        origin_code_hash: old.origin_code_hash.clone(),
        scope,
        auth_time: old.auth_time,
        amr: old.amr.clone(),
        issued_at: now,
        expires_at: from_micros(to_micros(request.expires_at)),
        rotated_at: None,
        revoked_at: None,
        revoke_reason: None,
    };
    Ok((old, new))
}

/// The condition under which a refresh token can still be spent (binds: hash, now).
const SPENDABLE: &str = "token_hash = ? AND rotated_at IS NULL AND revoked_at IS NULL AND expires_at > ?";

impl TenantDb {
    /// A refresh token with its user, in one statement (a user's tokens go with the user,
    /// so a token without one is not found): what a rotation reads first.
    async fn refresh_token_and_user(
        &self,
        token_hash: &str,
        fields: &crate::custom_fields::CustomFieldSet,
    ) -> Result<Option<(RefreshToken, User)>, DbError> {
        let sql = self.sql(&format!(
            "SELECT {REFRESH_COLUMNS}, {}{} FROM refresh_tokens JOIN users ON users.id = refresh_tokens.user_id \
             WHERE refresh_tokens.token_hash = ?",
            crate::users::USER_COLUMNS,
            fields.select_list(self),
        ));
        on_pool!(self, p => {
            let Some(row) = sqlx::query(sql).bind(token_hash).fetch_optional(p).await.map_err(query_err)? else {
                return Ok(None);
            };
            let token: RefreshRow = sqlx::FromRow::from_row(&row).map_err(query_err)?;
            let user = crate::users::user_from_row(&row, fields)?;
            Ok(Some((token.into(), user)))
        })
    }

    /// Spends `old_hash` (if it is still spendable at `now`) and stores `new` in one
    /// atomic step; false when a concurrent use or revocation spent it first. One round
    /// trip to the database where the dialect allows it: a rotation is on the hot path of
    /// every long-lived client.
    async fn spend_into_successor(
        &self,
        old_hash: &str,
        new: &RefreshToken,
        now: DateTime<Utc>,
    ) -> Result<bool, DbError> {
        let now_us = to_micros(now);
        let columns = "token_hash, family_id, parent_hash, client_id, user_id, session_id_hash, \
            origin_code_hash, scope, auth_time, amr, issued_at, expires_at";
        let row = "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";
        match self.pool() {
            // The UPDATE re-checks the row under its row lock, and the successor is
            // inserted only from the row it spent.
            Pool::Postgres(p) => {
                let sql = self.sql(&format!(
                    "WITH spent AS (UPDATE refresh_tokens SET rotated_at = ? WHERE {SPENDABLE} RETURNING 1) \
                     INSERT INTO refresh_tokens ({columns}) SELECT v.* FROM (VALUES {row}) AS v, spent"
                ));
                let q = sqlx::query(sql).bind(now_us).bind(old_hash).bind(now_us);
                let done = bind_refresh(q, new).execute(p).await.map_err(query_err)?;
                Ok(done.rows_affected() == 1)
            }
            // No writable CTE in SQLite; an upsert does both in one statement. Both rows
            // are inserted only while the old token is spendable, and the old one's key
            // exists, so its "insert" becomes the update that spends it. SQLite runs the
            // SELECT to completion before it writes (it reads the table it inserts into),
            // and one statement is one transaction.
            Pool::Sqlite(p) => {
                let sql = self.sql(&format!(
                    "INSERT INTO refresh_tokens ({columns}) SELECT * FROM (VALUES {row}, {row}) \
                     WHERE EXISTS (SELECT 1 FROM refresh_tokens WHERE {SPENDABLE}) \
                     ON CONFLICT (token_hash) DO UPDATE SET rotated_at = ? WHERE refresh_tokens.rotated_at IS NULL"
                ));
                let placeholder = RefreshToken {
                    token_hash: old_hash.to_owned(),
                    ..new.clone()
                };
                let q = bind_refresh(bind_refresh(sqlx::query(sql), new), &placeholder);
                let q = q.bind(old_hash).bind(now_us).bind(now_us);
                let _gate = self.write_gate().await;
                let done = q.execute(p).await.map_err(query_err)?;
                Ok(done.rows_affected() == 2)
            }
            // Neither in MySQL: a transaction, in which the conditional UPDATE locks the row.
            Pool::MySql(p) => {
                let mut tx = p.begin().await.map_err(query_err)?;
                let spend = self.sql(&format!("UPDATE refresh_tokens SET rotated_at = ? WHERE {SPENDABLE}"));
                let spent = sqlx::query(spend)
                    .bind(now_us)
                    .bind(old_hash)
                    .bind(now_us)
                    .execute(&mut *tx)
                    .await
                    .map_err(query_err)?;
                if spent.rows_affected() != 1 {
                    tx.rollback().await.map_err(query_err)?;
                    return Ok(false);
                }
                bind_refresh(sqlx::query(self.sql(INSERT_REFRESH)), new)
                    .execute(&mut *tx)
                    .await
                    .map_err(query_err)?;
                tx.commit().await.map_err(query_err)?;
                Ok(true)
            }
        }
    }
}

fn bind_refresh<'q, DB: sqlx::Database>(
    q: sqlx::query::Query<'q, DB, <DB as sqlx::Database>::Arguments>,
    t: &RefreshToken,
) -> sqlx::query::Query<'q, DB, <DB as sqlx::Database>::Arguments>
where
    String: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    Option<String>: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    Uuid: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    i64: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    Option<i64>: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
{
    q.bind(t.token_hash.clone())
        .bind(t.family_id)
        .bind(t.parent_hash.clone())
        .bind(t.client_id.clone())
        .bind(t.user_id)
        .bind(t.session_id_hash.clone())
        .bind(t.origin_code_hash.clone())
        .bind(t.scope.clone())
        .bind(t.auth_time.map(to_micros))
        .bind((!t.amr.is_empty()).then(|| json_list(&t.amr)))
        .bind(to_micros(t.issued_at))
        .bind(to_micros(t.expires_at))
}

#[derive(sqlx::FromRow)]
struct ConsentRow {
    user_id: Uuid,
    client_id: String,
    scopes: String,
    granted_at: i64,
    expires_at: Option<i64>,
    revoked_at: Option<i64>,
}

impl From<ConsentRow> for Consent {
    fn from(r: ConsentRow) -> Self {
        Consent {
            user_id: r.user_id,
            client_id: r.client_id,
            scopes: r
                .scopes
                .split(' ')
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect(),
            granted_at: from_micros(r.granted_at),
            expires_at: r.expires_at.map(from_micros),
            revoked_at: r.revoked_at.map(from_micros),
        }
    }
}

#[async_trait]
impl ConsentRepository for TenantDb {
    async fn grant_consent(&self, c: &Consent) -> Result<(), DbError> {
        let sql = self.sql(match self.dialect() {
            crate::db::Dialect::MySql => {
                "INSERT INTO consents (user_id, client_id, scopes, granted_at, expires_at, revoked_at) VALUES (?, ?, ?, ?, ?, NULL) \
                 ON DUPLICATE KEY UPDATE scopes = VALUES(scopes), granted_at = VALUES(granted_at), expires_at = VALUES(expires_at), revoked_at = NULL"
            }
            _ => {
                "INSERT INTO consents (user_id, client_id, scopes, granted_at, expires_at, revoked_at) VALUES (?, ?, ?, ?, ?, NULL) \
                 ON CONFLICT (user_id, client_id) DO UPDATE SET scopes = excluded.scopes, granted_at = excluded.granted_at, \
                 expires_at = excluded.expires_at, revoked_at = NULL"
            }
        });
        on_pool!(self, p => sqlx::query(sql).bind(c.user_id).bind(&c.client_id).bind(c.scopes.join(" ")).bind(to_micros(c.granted_at)).bind(c.expires_at.map(to_micros)).execute(p).await.map(|_| ()))
            .map_err(query_err)?;
        Ok(())
    }

    async fn consent(&self, user_id: Uuid, client_id: &str, now: DateTime<Utc>) -> Result<Option<Consent>, DbError> {
        let sql = self.sql(
            "SELECT user_id, client_id, scopes, granted_at, expires_at, revoked_at FROM consents \
             WHERE user_id = ? AND client_id = ? AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > ?)",
        );
        let row: Option<ConsentRow> = on_pool!(self, p => sqlx::query_as(sql).bind(user_id).bind(client_id).bind(to_micros(now)).fetch_optional(p).await).map_err(query_err)?;
        Ok(row.map(Into::into))
    }

    async fn consents_of(&self, user_id: Uuid, now: DateTime<Utc>) -> Result<Vec<Consent>, DbError> {
        let sql = self.sql(
            "SELECT user_id, client_id, scopes, granted_at, expires_at, revoked_at FROM consents \
             WHERE user_id = ? AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > ?) ORDER BY client_id",
        );
        let rows: Vec<ConsentRow> =
            on_pool!(self, p => sqlx::query_as(sql).bind(user_id).bind(to_micros(now)).fetch_all(p).await)
                .map_err(query_err)?;
        Ok(rows.into_iter().map(Into::into).collect())
    }

    async fn revoke_consents_by_client(&self, client_id: &str, now: DateTime<Utc>) -> Result<u64, DbError> {
        let sql = self.sql("UPDATE consents SET revoked_at = ? WHERE client_id = ? AND revoked_at IS NULL");
        on_pool!(self, p => sqlx::query(sql).bind(to_micros(now)).bind(client_id).execute(p).await.map(|r| r.rows_affected()))
            .map_err(query_err)
    }

    async fn revoke_consent(&self, user_id: Uuid, client_id: &str, now: DateTime<Utc>) -> Result<bool, DbError> {
        let sql =
            self.sql("UPDATE consents SET revoked_at = ? WHERE user_id = ? AND client_id = ? AND revoked_at IS NULL");
        let n = on_pool!(self, p => sqlx::query(sql).bind(to_micros(now)).bind(user_id).bind(client_id).execute(p).await.map(|r| r.rows_affected())).map_err(query_err)?;
        Ok(n > 0)
    }
}
