//! A tenant's users moved in bulk, for export and import: pages of whole user records
//! (profile, custom fields, roles and, when asked, credentials) out, and one transaction
//! in, so an import that fails half-way leaves the database as it was.
//!
//! Credentials leave this layer as they are stored (the password's PHC string, the TOTP
//! secret sealed by the installation); whoever writes the export document seals them for
//! the installation that will import it.

use std::collections::BTreeMap;

use chrono::Utc;
use sqlx::{MySql, Postgres, Sqlite, Transaction};
use uuid::Uuid;

use crate::custom_fields::{CustomFieldSet, bind_custom_value};
use crate::db::{DbError, TenantDb, query_err, to_micros};
use crate::model::{NewUser, User};
use crate::passkeys::{INSERT_PASSKEY, PASSKEY_COLUMNS, Passkey, PasskeyRow, bind_passkey, transports_text};
use crate::users::UserRepository;
use crate::users::profile;

/// One user as it moves between installations.
#[derive(Debug, Clone, PartialEq)]
pub struct UserRecord {
    pub user: User,
    /// Names of the roles assigned to the user, sorted.
    pub roles: Vec<String>,
    /// Present only when credentials were asked for.
    pub credentials: Option<Credentials>,
}

/// A user's credentials as stored.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Credentials {
    /// The password's Argon2 PHC string.
    pub password: Option<String>,
    pub totp: Option<TotpRecord>,
    /// The user's passkeys and the WebAuthn user handle they carry (public values).
    pub passkeys: Option<PasskeyCredentials>,
}

/// A user's passkeys as stored, with the user handle their authenticators hold: a passkey
/// signs in without an email only when the handle moves with it.
#[derive(Debug, Clone, PartialEq)]
pub struct PasskeyCredentials {
    pub handle: Vec<u8>,
    pub passkeys: Vec<Passkey>,
}

/// A TOTP credential as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct TotpRecord {
    /// The secret as the installation sealed it.
    pub sealed: String,
    pub confirmed: bool,
    /// The last time step a code was accepted for: a code is good once, here or after a move.
    pub last_used_step: Option<i64>,
}

/// How an import meets the users already there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImportMode {
    /// The database holds no user yet (a new tenant): every record is created.
    Fresh,
    /// A record updates the user with its id, else the user with its email, else is
    /// created; users the document does not name stay.
    Merge,
    /// Every user is deleted first (with their sessions, tokens and consents).
    Replace,
}

/// Whether an imported record made a user or changed one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placed {
    Created,
    Updated,
}

enum ImportTx {
    Sqlite(Transaction<'static, Sqlite>),
    Postgres(Transaction<'static, Postgres>),
    MySql(Transaction<'static, MySql>),
}

/// Runs `$body` with `$t` bound to the transaction of whichever driver it is.
macro_rules! on_tx {
    ($tx:expr, $t:ident => $body:expr) => {
        match $tx {
            ImportTx::Sqlite($t) => $body,
            ImportTx::Postgres($t) => $body,
            ImportTx::MySql($t) => $body,
        }
    };
}

/// Checks a record the way the API checks a user it creates (profile fields and custom
/// values), without a database.
pub fn check_record(record: &UserRecord, fields: &CustomFieldSet) -> Result<(), DbError> {
    let user = &record.user;
    let new = NewUser {
        email: user.email.clone(),
        email_verified: user.email_verified,
        username: user.username.clone(),
        given_name: user.given_name.clone(),
        family_name: user.family_name.clone(),
        name: user.name.clone(),
        picture: user.picture.clone(),
        locale: user.locale.clone(),
        phone_number: user.phone_number.clone(),
        metadata: Some(user.metadata.clone()),
        custom: user.custom.clone(),
    };
    profile::check_new_user(&new)?;
    fields.check_values(&user.custom, true)
}

/// Users per statement batch when reading an export.
pub const EXPORT_PAGE: u32 = 500;

impl TenantDb {
    /// Up to `limit` users after `after` (by id), with their roles and, when
    /// `with_credentials`, their credentials; three range queries per page besides the users.
    pub async fn export_page(
        &self,
        after: Option<Uuid>,
        limit: u32,
        fields: &CustomFieldSet,
        with_credentials: bool,
    ) -> Result<Vec<UserRecord>, DbError> {
        let db = self.readers();
        let users = db.list_users(after, limit, fields).await?;
        let (Some(first), Some(last)) = (users.first().map(|u| u.id), users.last().map(|u| u.id)) else {
            return Ok(Vec::new());
        };
        let roles_sql =
            self.sql("SELECT user_id, role FROM user_roles WHERE user_id >= ? AND user_id <= ? ORDER BY role");
        let roles: Vec<(Uuid, String)> =
            crate::on_pool!(db, p => sqlx::query_as(roles_sql).bind(first).bind(last).fetch_all(p).await)
                .map_err(query_err)?;
        let mut roles_of: BTreeMap<Uuid, Vec<String>> = BTreeMap::new();
        for (user, role) in roles {
            roles_of.entry(user).or_default().push(role);
        }
        let mut credentials_of: BTreeMap<Uuid, Credentials> = BTreeMap::new();
        if with_credentials {
            let passwords_sql =
                self.sql("SELECT user_id, phc FROM password_credentials WHERE user_id >= ? AND user_id <= ?");
            let passwords: Vec<(Uuid, String)> =
                crate::on_pool!(db, p => sqlx::query_as(passwords_sql).bind(first).bind(last).fetch_all(p).await)
                    .map_err(query_err)?;
            for (user, phc) in passwords {
                credentials_of.entry(user).or_default().password = Some(phc);
            }
            let totp_sql = self.sql(
                "SELECT user_id, secret_sealed, confirmed_at, last_used_step FROM totp_credentials \
                 WHERE user_id >= ? AND user_id <= ?",
            );
            let totps: Vec<(Uuid, String, Option<i64>, Option<i64>)> =
                crate::on_pool!(db, p => sqlx::query_as(totp_sql).bind(first).bind(last).fetch_all(p).await)
                    .map_err(query_err)?;
            for (user, sealed, confirmed_at, last_used_step) in totps {
                credentials_of.entry(user).or_default().totp = Some(TotpRecord {
                    sealed,
                    confirmed: confirmed_at.is_some(),
                    last_used_step,
                });
            }
            let handles_sql =
                self.sql("SELECT user_id, handle FROM passkey_user_handles WHERE user_id >= ? AND user_id <= ?");
            let handles: Vec<(Uuid, Vec<u8>)> =
                crate::on_pool!(db, p => sqlx::query_as(handles_sql).bind(first).bind(last).fetch_all(p).await)
                    .map_err(query_err)?;
            let passkeys_sql = format!(
                "SELECT {PASSKEY_COLUMNS} FROM passkey_credentials WHERE user_id >= ? AND user_id <= ? \
                 ORDER BY created_at, id"
            );
            let passkeys_sql = self.sql(&passkeys_sql);
            let rows: Vec<PasskeyRow> =
                crate::on_pool!(db, p => sqlx::query_as(passkeys_sql).bind(first).bind(last).fetch_all(p).await)
                    .map_err(query_err)?;
            let mut passkeys_of: BTreeMap<Uuid, Vec<Passkey>> = BTreeMap::new();
            for passkey in rows.into_iter().map(Passkey::from) {
                passkeys_of.entry(passkey.user_id).or_default().push(passkey);
            }
            for (user, handle) in handles {
                let passkeys = passkeys_of.remove(&user).unwrap_or_default();
                credentials_of.entry(user).or_default().passkeys = Some(PasskeyCredentials { handle, passkeys });
            }
        }
        Ok(users
            .into_iter()
            .map(|user| UserRecord {
                roles: roles_of.remove(&user.id).unwrap_or_default(),
                credentials: with_credentials.then(|| credentials_of.remove(&user.id).unwrap_or_default()),
                user,
            })
            .collect())
    }

    /// Starts an import: one transaction that [`UserImport::commit`] ends; dropping the
    /// import without committing rolls every change back.
    pub async fn begin_import(&self, fields: CustomFieldSet, mode: ImportMode) -> Result<UserImport, DbError> {
        // A long write transaction: on the long-read pool, so the traffic's connection
        // keeps serving reads while it runs.
        let mut tx = match self.readers().pool() {
            crate::db::Pool::Sqlite(p) => ImportTx::Sqlite(p.begin().await.map_err(query_err)?),
            crate::db::Pool::Postgres(p) => ImportTx::Postgres(p.begin().await.map_err(query_err)?),
            crate::db::Pool::MySql(p) => ImportTx::MySql(p.begin().await.map_err(query_err)?),
        };
        if mode == ImportMode::Replace {
            let sql = self.sql("DELETE FROM users");
            on_tx!(&mut tx, t => sqlx::query(sql).execute(&mut **t).await.map(|_| ())).map_err(query_err)?;
        }
        Ok(UserImport {
            db: self.clone(),
            tx,
            fields,
            mode,
        })
    }
}

/// An import under way (see [`TenantDb::begin_import`]).
pub struct UserImport {
    db: TenantDb,
    tx: ImportTx,
    fields: CustomFieldSet,
    mode: ImportMode,
}

impl UserImport {
    /// Writes one record: checked like a user the API creates, then created or (merge)
    /// updated, with its roles and its password when it carries one. Answers what it did
    /// and the user's id here (in a merge, the id of the user it updated).
    pub async fn put(&mut self, record: &UserRecord) -> Result<(Placed, Uuid), DbError> {
        check_record(record, &self.fields)?;
        let user = &record.user;
        let db = self.db.clone();
        let email = user.email.trim().to_owned();
        let normalized = crate::users::normalize_email(&email);
        let username_norm = user.username.as_deref().map(str::to_lowercase);
        let existing = match self.mode {
            ImportMode::Merge => {
                let sql = db.sql("SELECT id FROM users WHERE id = ? OR email_normalized = ? ORDER BY CASE WHEN id = ? THEN 0 ELSE 1 END");
                on_tx!(&mut self.tx, t => sqlx::query_scalar::<_, Uuid>(sql).bind(user.id).bind(&normalized).bind(user.id).fetch_optional(&mut **t).await)
                    .map_err(query_err)?
            }
            ImportMode::Fresh | ImportMode::Replace => None,
        };
        let metadata = user.metadata.to_string();
        let id = existing.unwrap_or(user.id);
        if existing.is_some() {
            let sql = db.sql(
                "UPDATE users SET email = ?, email_normalized = ?, email_verified = ?, username = ?, username_normalized = ?, \
                 given_name = ?, family_name = ?, name = ?, picture = ?, locale = ?, phone_number = ?, phone_number_verified = ?, \
                 status = ?, disabled_at = ?, disabled_reason = ?, disabled_until = ?, metadata = ?, updated_at = ? WHERE id = ?",
            );
            on_tx!(&mut self.tx, t => sqlx::query(sql)
                .bind(&email).bind(&normalized).bind(user.email_verified).bind(&user.username).bind(&username_norm)
                .bind(&user.given_name).bind(&user.family_name).bind(&user.name).bind(&user.picture).bind(&user.locale)
                .bind(&user.phone_number).bind(user.phone_number_verified).bind(user.status.as_str())
                .bind(user.disabled_at.map(to_micros)).bind(&user.disabled_reason).bind(user.disabled_until.map(to_micros))
                .bind(&metadata).bind(to_micros(user.updated_at)).bind(id)
                .execute(&mut **t).await.map(|_| ()))
            .map_err(query_err)?;
            let clear = db.sql("DELETE FROM user_roles WHERE user_id = ?");
            on_tx!(&mut self.tx, t => sqlx::query(clear).bind(id).execute(&mut **t).await.map(|_| ()))
                .map_err(query_err)?;
        } else {
            let sql = db.sql(
                "INSERT INTO users (id, email, email_normalized, email_verified, username, username_normalized, given_name, \
                 family_name, name, picture, locale, phone_number, phone_number_verified, status, disabled_at, disabled_reason, \
                 disabled_until, metadata, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            );
            on_tx!(&mut self.tx, t => sqlx::query(sql)
                .bind(id).bind(&email).bind(&normalized).bind(user.email_verified).bind(&user.username).bind(&username_norm)
                .bind(&user.given_name).bind(&user.family_name).bind(&user.name).bind(&user.picture).bind(&user.locale)
                .bind(&user.phone_number).bind(user.phone_number_verified).bind(user.status.as_str())
                .bind(user.disabled_at.map(to_micros)).bind(&user.disabled_reason).bind(user.disabled_until.map(to_micros))
                .bind(&metadata).bind(to_micros(user.created_at)).bind(to_micros(user.updated_at))
                .execute(&mut **t).await.map(|_| ()))
            .map_err(query_err)?;
        }
        if !user.custom.is_empty() {
            let (set, values) = self.fields.assignments(&db, &user.custom)?;
            let text = format!("UPDATE users SET {set} WHERE id = ?");
            let sql = db.sql(&text);
            on_tx!(&mut self.tx, t => {
                let mut query = sqlx::query(sql);
                for value in &values {
                    query = bind_custom_value(query, value);
                }
                query.bind(id).execute(&mut **t).await.map(|_| ())
            })
            .map_err(query_err)?;
        }
        let assigned_at = to_micros(user.created_at);
        for role in &record.roles {
            let sql = db.sql("INSERT INTO user_roles (user_id, role, assigned_at) VALUES (?, ?, ?)");
            on_tx!(&mut self.tx, t => sqlx::query(sql).bind(id).bind(role).bind(assigned_at).execute(&mut **t).await.map(|_| ()))
                .map_err(query_err)?;
        }
        if let Some(credentials) = &record.credentials {
            let now = to_micros(Utc::now());
            if let Some(phc) = &credentials.password {
                let clear = db.sql("DELETE FROM password_credentials WHERE user_id = ?");
                let insert = db.sql("INSERT INTO password_credentials (user_id, phc, updated_at) VALUES (?, ?, ?)");
                on_tx!(&mut self.tx, t => {
                    sqlx::query(clear).bind(id).execute(&mut **t).await.map_err(query_err)?;
                    sqlx::query(insert).bind(id).bind(phc).bind(now).execute(&mut **t).await.map(|_| ())
                })
                .map_err(query_err)?;
            }
        }
        let placed = if existing.is_some() {
            Placed::Updated
        } else {
            Placed::Created
        };
        Ok((placed, id))
    }

    /// Sets the TOTP credential of user `id` (its secret sealed for this installation).
    pub async fn put_totp(&mut self, id: Uuid, totp: &TotpRecord) -> Result<(), DbError> {
        let now = to_micros(Utc::now());
        let clear = self.db.sql("DELETE FROM totp_credentials WHERE user_id = ?");
        let insert = self.db.sql(
            "INSERT INTO totp_credentials (user_id, secret_sealed, confirmed_at, last_used_step, created_at) \
             VALUES (?, ?, ?, ?, ?)",
        );
        on_tx!(&mut self.tx, t => {
            sqlx::query(clear).bind(id).execute(&mut **t).await.map_err(query_err)?;
            sqlx::query(insert).bind(id).bind(&totp.sealed).bind(totp.confirmed.then_some(now))
                .bind(totp.last_used_step).bind(now)
                .execute(&mut **t).await.map(|_| ())
        })
        .map_err(query_err)
    }

    /// Sets the passkeys of user `id` and the user handle they carry (their `user_id`
    /// becomes `id`, which a merge may have given the record).
    pub async fn put_passkeys(&mut self, id: Uuid, moved: &PasskeyCredentials) -> Result<(), DbError> {
        let now = to_micros(Utc::now());
        let clear_keys = self.db.sql("DELETE FROM passkey_credentials WHERE user_id = ?");
        let clear_handle = self.db.sql("DELETE FROM passkey_user_handles WHERE user_id = ?");
        let handle = self
            .db
            .sql("INSERT INTO passkey_user_handles (user_id, handle, created_at) VALUES (?, ?, ?)");
        on_tx!(&mut self.tx, t => {
            sqlx::query(clear_keys).bind(id).execute(&mut **t).await.map_err(query_err)?;
            sqlx::query(clear_handle).bind(id).execute(&mut **t).await.map_err(query_err)?;
            sqlx::query(handle).bind(id).bind(&moved.handle).bind(now).execute(&mut **t).await.map(|_| ())
        })
        .map_err(query_err)?;
        for passkey in &moved.passkeys {
            let insert = self.db.sql(INSERT_PASSKEY);
            let passkey = Passkey {
                user_id: id,
                ..passkey.clone()
            };
            let transports = transports_text(&passkey);
            on_tx!(&mut self.tx, t => bind_passkey!(sqlx::query(insert), passkey, transports)
                .execute(&mut **t).await.map(|_| ()))
            .map_err(query_err)?;
        }
        Ok(())
    }

    /// Makes every change of the import visible at once.
    pub async fn commit(self) -> Result<(), DbError> {
        on_tx!(self.tx, t => t.commit().await).map_err(query_err)
    }

    /// Undoes every change of the import (also what dropping it does).
    pub async fn rollback(self) -> Result<(), DbError> {
        on_tx!(self.tx, t => t.rollback().await).map_err(query_err)
    }
}
