//! Users, password credentials and external identities.

use std::collections::BTreeMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::Value;
use uuid::Uuid;

use crate::custom_fields::{CustomFieldSet, CustomValue, bind_custom_value};
use crate::db::{DbError, TenantDb, from_micros, query_err, to_micros};
use crate::model::*;
use crate::on_pool;
use sqlx::FromRow;

pub(crate) const USER_COLUMNS: &str = "id, email, email_verified, username, given_name, family_name, name, picture, locale, \
    phone_number, phone_number_verified, status, disabled_at, disabled_reason, disabled_until, metadata, created_at, updated_at";

/// What a password login needs besides the user, as extra columns of the user query.
const LOGIN_COLUMNS: &str = ", (SELECT phc FROM password_credentials WHERE user_id = users.id) AS login_phc, \
    (SELECT COUNT(*) FROM totp_credentials WHERE user_id = users.id AND confirmed_at IS NOT NULL) AS login_totp";

/// An account's password and second-factor state, read with the user for a login.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginState {
    /// The PHC string of the password, if one is set.
    pub password: Option<String>,
    /// A confirmed TOTP authenticator is enrolled.
    pub totp_enrolled: bool,
}

#[derive(sqlx::FromRow)]
pub(crate) struct UserRow {
    id: Uuid,
    email: String,
    email_verified: bool,
    username: Option<String>,
    given_name: Option<String>,
    family_name: Option<String>,
    name: Option<String>,
    picture: Option<String>,
    locale: Option<String>,
    phone_number: Option<String>,
    phone_number_verified: bool,
    status: String,
    disabled_at: Option<i64>,
    disabled_reason: Option<String>,
    disabled_until: Option<i64>,
    metadata: String,
    created_at: i64,
    updated_at: i64,
}

impl UserRow {
    fn into_user(self, custom: BTreeMap<String, Value>) -> User {
        User {
            id: self.id,
            email: self.email,
            email_verified: self.email_verified,
            username: self.username,
            given_name: self.given_name,
            family_name: self.family_name,
            name: self.name,
            picture: self.picture,
            locale: self.locale,
            phone_number: self.phone_number,
            phone_number_verified: self.phone_number_verified,
            status: UserStatus::parse(&self.status),
            disabled_at: self.disabled_at.map(from_micros),
            disabled_reason: self.disabled_reason,
            disabled_until: self.disabled_until.map(from_micros),
            metadata: serde_json::from_str(&self.metadata).unwrap_or(Value::Null),
            custom,
            created_at: from_micros(self.created_at),
            updated_at: from_micros(self.updated_at),
        }
    }
}

/// Lower-cases an email for uniqueness and look-ups (the original spelling is kept).
pub fn normalize_email(email: &str) -> String {
    email.trim().to_lowercase()
}

/// Whether an email can name an account at all: a look-up of one that cannot (control
/// characters, which PostgreSQL cannot even compare) finds nobody without a query.
fn lookup_email(email: &str) -> Option<String> {
    let normalized = normalize_email(email);
    (!normalized.contains(char::is_control)).then_some(normalized)
}

#[async_trait]
pub trait UserRepository {
    /// Creates a user; custom field values are checked against `fields`.
    async fn create_user(&self, new: NewUser, fields: &CustomFieldSet) -> Result<User, DbError>;
    async fn user_by_id(&self, id: Uuid, fields: &CustomFieldSet) -> Result<Option<User>, DbError>;
    /// Finds a user by email, case-insensitively.
    async fn user_by_email(&self, email: &str, fields: &CustomFieldSet) -> Result<Option<User>, DbError>;
    /// [`user_by_email`](Self::user_by_email) with the account's password hash and
    /// second-factor state, in one statement: what a password login reads.
    async fn login_account(&self, email: &str, fields: &CustomFieldSet) -> Result<Option<(User, LoginState)>, DbError>;
    async fn list_users(&self, after: Option<Uuid>, limit: u32, fields: &CustomFieldSet) -> Result<Vec<User>, DbError>;
    /// The users matching every part of `search`, in id (creation) order after
    /// `search.after`, at most `search.limit` (1–1000).
    async fn search_users(&self, search: &UserSearch, fields: &CustomFieldSet) -> Result<Vec<User>, DbError>;
    async fn update_profile(&self, id: Uuid, update: ProfileUpdate) -> Result<(), DbError>;
    /// Sets custom field values by name, with type checks.
    async fn set_custom_fields(
        &self,
        id: Uuid,
        values: &BTreeMap<String, Value>,
        fields: &CustomFieldSet,
    ) -> Result<(), DbError>;
    async fn disable_user(&self, id: Uuid, reason: Option<&str>, until: Option<DateTime<Utc>>) -> Result<(), DbError>;
    async fn enable_user(&self, id: Uuid) -> Result<(), DbError>;
    async fn delete_user(&self, id: Uuid) -> Result<bool, DbError>;
    async fn count_users(&self) -> Result<i64, DbError>;

    async fn set_password(&self, user_id: Uuid, phc: &str) -> Result<(), DbError>;
    async fn password(&self, user_id: Uuid) -> Result<Option<String>, DbError>;

    async fn link_identity(
        &self,
        user_id: Uuid,
        provider: &str,
        subject: &str,
        email: Option<&str>,
    ) -> Result<ExternalIdentity, DbError>;
    async fn identity(&self, provider: &str, subject: &str) -> Result<Option<ExternalIdentity>, DbError>;
    async fn identities_of(&self, user_id: Uuid) -> Result<Vec<ExternalIdentity>, DbError>;
    /// Removes the user's identities at `provider`; answers how many went.
    async fn unlink_identities(&self, user_id: Uuid, provider: &str) -> Result<u64, DbError>;
}

impl TenantDb {
    async fn load_users(
        &self,
        where_sql: &str,
        binds: UserQuery,
        fields: &CustomFieldSet,
    ) -> Result<Vec<User>, DbError> {
        let rows = self.load_user_rows(where_sql, binds, fields, false).await?;
        Ok(rows.into_iter().map(|(user, _)| user).collect())
    }

    /// Users with, when `with_login`, their password hash and second-factor state, read
    /// by scalar subqueries in the same statement.
    async fn load_user_rows(
        &self,
        where_sql: &str,
        binds: UserQuery,
        fields: &CustomFieldSet,
        with_login: bool,
    ) -> Result<Vec<(User, Option<LoginState>)>, DbError> {
        let custom_cols = fields.select_list(self);
        let login_cols = if with_login { LOGIN_COLUMNS } else { "" };
        let text = format!("SELECT {USER_COLUMNS}{custom_cols}{login_cols} FROM users {where_sql}");
        let sql = self.sql(&text);
        on_pool!(self, p => {
            let query = sqlx::query(sql);
            let query = match &binds {
                UserQuery::Id(id) => query.bind(*id),
                UserQuery::Email(e) => query.bind(e.clone()),
                UserQuery::Search(binds) => binds.iter().fold(query, |query, bind| match bind {
                    SearchBind::Text(text) => query.bind(text.clone()),
                    SearchBind::Id(id) => query.bind(*id),
                    SearchBind::Int(n) => query.bind(*n),
                    SearchBind::Custom(value) => bind_custom_value(query, value),
                }),
            };
            let rows = query.fetch_all(p).await.map_err(query_err)?;
            let mut users = Vec::with_capacity(rows.len());
            for row in &rows {
                let user = user_from_row(row, fields)?;
                let login = if with_login {
                    Some(LoginState {
                        password: sqlx::Row::try_get(row, "login_phc").map_err(query_err)?,
                        totp_enrolled: sqlx::Row::try_get::<i64, _>(row, "login_totp").map_err(query_err)? > 0,
                    })
                } else {
                    None
                };
                users.push((user, login));
            }
            Ok(users)
        })
    }
}

/// A user from a row that selects [`USER_COLUMNS`] and `fields`' columns (among others).
pub(crate) fn user_from_row<R>(row: &R, fields: &CustomFieldSet) -> Result<User, DbError>
where
    R: sqlx::Row,
    UserRow: for<'r> sqlx::FromRow<'r, R>,
    for<'a> &'a str: sqlx::ColumnIndex<R>,
    for<'r> Option<String>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> Option<i64>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> Option<bool>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> Option<chrono::NaiveDate>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    let base = UserRow::from_row(row).map_err(query_err)?;
    Ok(base.into_user(fields.read(row)?))
}

enum UserQuery {
    Id(Uuid),
    Email(String),
    Search(Vec<SearchBind>),
}

enum SearchBind {
    Text(String),
    Id(Uuid),
    Int(i64),
    Custom(CustomValue),
}

/// What an administrator looks users up by; every part given must hold.
#[derive(Debug, Clone, Default)]
pub struct UserSearch {
    /// Part of the email, username, name, given or family name (case-insensitive).
    pub text: Option<String>,
    /// Part of the email (case-insensitive).
    pub email: Option<String>,
    /// Part of the name, given or family name (case-insensitive).
    pub name: Option<String>,
    /// Custom fields equal to a value (as text: `42`, `true`, `2024-01-31`).
    pub custom: Vec<(String, String)>,
    pub status: Option<UserStatus>,
    /// The last id of the previous page.
    pub after: Option<Uuid>,
    pub limit: u32,
}

/// `%part%` for `LIKE ... ESCAPE '!'`, lowercase, the pattern characters escaped.
fn contains_pattern(part: &str) -> String {
    let mut pattern = String::from("%");
    for c in part.to_lowercase().chars() {
        if matches!(c, '%' | '_' | '!') {
            pattern.push('!');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

impl UserSearch {
    /// The WHERE clause and its values.
    fn clause(&self, db: &TenantDb, fields: &CustomFieldSet) -> Result<(String, Vec<SearchBind>), DbError> {
        let mut conditions = vec!["id > ?".to_owned()];
        let mut binds = vec![SearchBind::Id(self.after.unwrap_or(Uuid::nil()))];
        let like = |column: &str| format!("LOWER(COALESCE({column}, '')) LIKE ? ESCAPE '!'");
        let mut any_of = |columns: &[&str], part: &str, conditions: &mut Vec<String>| {
            let pattern = contains_pattern(part);
            let ors: Vec<String> = columns.iter().map(|c| like(c)).collect();
            conditions.push(format!("({})", ors.join(" OR ")));
            binds.extend(columns.iter().map(|_| SearchBind::Text(pattern.clone())));
        };
        if let Some(text) = &self.text {
            any_of(
                &["email", "username", "name", "given_name", "family_name"],
                text,
                &mut conditions,
            );
        }
        if let Some(email) = &self.email {
            any_of(&["email"], email, &mut conditions);
        }
        if let Some(name) = &self.name {
            any_of(&["name", "given_name", "family_name"], name, &mut conditions);
        }
        if let Some(status) = self.status {
            conditions.push("status = ?".into());
            binds.push(SearchBind::Text(status.as_str().to_owned()));
        }
        for (name, raw) in &self.custom {
            let (condition, value) = fields.equals(db, name, raw)?;
            conditions.push(condition);
            binds.push(SearchBind::Custom(value));
        }
        binds.push(SearchBind::Int(i64::from(self.limit.clamp(1, 1000))));
        Ok((format!("WHERE {} ORDER BY id LIMIT ?", conditions.join(" AND ")), binds))
    }
}

#[async_trait]
impl UserRepository for TenantDb {
    async fn create_user(&self, new: NewUser, fields: &CustomFieldSet) -> Result<User, DbError> {
        profile::check_new_user(&new)?;
        fields.check_values(&new.custom, true)?;
        let now = to_micros(Utc::now());
        let id = Uuid::now_v7();
        let metadata = new
            .metadata
            .clone()
            .unwrap_or_else(|| Value::Object(Default::default()))
            .to_string();
        let username_norm = new.username.as_deref().map(str::to_lowercase);
        let sql = self.sql(
            "INSERT INTO users (id, email, email_normalized, email_verified, username, username_normalized, given_name, family_name, \
             name, picture, locale, phone_number, phone_number_verified, status, metadata, created_at, updated_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        );
        let email = new.email.trim().to_owned();
        let normalized = normalize_email(&email);
        on_pool!(self, p => {
            let mut tx = p.begin().await.map_err(query_err)?;
            sqlx::query(sql)
                .bind(id).bind(&email).bind(&normalized).bind(new.email_verified).bind(&new.username).bind(&username_norm)
                .bind(&new.given_name).bind(&new.family_name).bind(&new.name).bind(&new.picture).bind(&new.locale)
                .bind(&new.phone_number).bind(false).bind(UserStatus::Active.as_str()).bind(&metadata).bind(now).bind(now)
                .execute(&mut *tx).await.map_err(query_err)?;
            if !new.custom.is_empty() {
                let (set, values) = fields.assignments(self, &new.custom)?;
                let text = format!("UPDATE users SET {set} WHERE id = ?");
                let sql = self.sql(&text);
                let mut query = sqlx::query(sql);
                for v in &values {
                    query = bind_custom_value(query, v);
                }
                query.bind(id).execute(&mut *tx).await.map_err(query_err)?;
            }
            tx.commit().await.map_err(query_err)?;
            Ok::<(), DbError>(())
        })?;
        self.user_by_id(id, fields)
            .await?
            .ok_or(DbError::Query(crate::db::ErrorKind::Other))
    }

    async fn user_by_id(&self, id: Uuid, fields: &CustomFieldSet) -> Result<Option<User>, DbError> {
        Ok(self.load_users("WHERE id = ?", UserQuery::Id(id), fields).await?.pop())
    }

    async fn user_by_email(&self, email: &str, fields: &CustomFieldSet) -> Result<Option<User>, DbError> {
        let Some(email) = lookup_email(email) else {
            return Ok(None);
        };
        Ok(self
            .load_users("WHERE email_normalized = ?", UserQuery::Email(email), fields)
            .await?
            .pop())
    }

    async fn login_account(&self, email: &str, fields: &CustomFieldSet) -> Result<Option<(User, LoginState)>, DbError> {
        let Some(email) = lookup_email(email) else {
            return Ok(None);
        };
        let rows = self
            .load_user_rows("WHERE email_normalized = ?", UserQuery::Email(email), fields, true)
            .await?;
        Ok(rows
            .into_iter()
            .next()
            .and_then(|(user, login)| login.map(|login| (user, login))))
    }

    async fn list_users(&self, after: Option<Uuid>, limit: u32, fields: &CustomFieldSet) -> Result<Vec<User>, DbError> {
        let search = UserSearch {
            after,
            limit,
            ..UserSearch::default()
        };
        self.search_users(&search, fields).await
    }

    async fn search_users(&self, search: &UserSearch, fields: &CustomFieldSet) -> Result<Vec<User>, DbError> {
        let (clause, binds) = search.clause(self, fields)?;
        self.readers()
            .load_users(&clause, UserQuery::Search(binds), fields)
            .await
    }

    async fn update_profile(&self, id: Uuid, u: ProfileUpdate) -> Result<(), DbError> {
        profile::check_update(&u, None)?;
        let sql = self.sql(
            "UPDATE users SET email = COALESCE(?, email), email_normalized = COALESCE(?, email_normalized), \
             email_verified = COALESCE(?, email_verified), username = COALESCE(?, username), \
             username_normalized = COALESCE(?, username_normalized), given_name = COALESCE(?, given_name), \
             family_name = COALESCE(?, family_name), name = COALESCE(?, name), picture = COALESCE(?, picture), \
             locale = COALESCE(?, locale), phone_number = COALESCE(?, phone_number), \
             phone_number_verified = COALESCE(?, phone_number_verified), metadata = COALESCE(?, metadata), updated_at = ? \
             WHERE id = ?",
        );
        let email = u.email.as_deref().map(|e| e.trim().to_owned());
        let normalized = email.as_deref().map(normalize_email);
        let username_norm = u.username.as_deref().map(str::to_lowercase);
        let metadata = u.metadata.as_ref().map(Value::to_string);
        let affected = on_pool!(self, p => sqlx::query(sql)
            .bind(&email).bind(&normalized).bind(u.email_verified).bind(&u.username).bind(&username_norm)
            .bind(&u.given_name).bind(&u.family_name).bind(&u.name).bind(&u.picture).bind(&u.locale)
            .bind(&u.phone_number).bind(u.phone_number_verified).bind(&metadata).bind(to_micros(Utc::now())).bind(id)
            .execute(p).await.map(|r| r.rows_affected()))
        .map_err(query_err)?;
        if affected == 0 {
            Err(DbError::Invalid("no such user".into()))
        } else {
            Ok(())
        }
    }

    async fn set_custom_fields(
        &self,
        id: Uuid,
        values: &BTreeMap<String, Value>,
        fields: &CustomFieldSet,
    ) -> Result<(), DbError> {
        profile::check_update(&ProfileUpdate::default(), Some(values))?;
        fields.check_values(values, false)?;
        if values.is_empty() {
            return Ok(());
        }
        let (set, bound) = fields.assignments(self, values)?;
        let text = format!("UPDATE users SET {set}, updated_at = ? WHERE id = ?");
        let sql = self.sql(&text);
        on_pool!(self, p => {
            let mut query = sqlx::query(sql);
            for v in &bound {
                query = bind_custom_value(query, v);
            }
            query.bind(to_micros(Utc::now())).bind(id).execute(p).await.map_err(query_err)?;
            Ok(())
        })
    }

    async fn disable_user(&self, id: Uuid, reason: Option<&str>, until: Option<DateTime<Utc>>) -> Result<(), DbError> {
        let sql = self.sql("UPDATE users SET status = ?, disabled_at = ?, disabled_reason = ?, disabled_until = ?, updated_at = ? WHERE id = ?");
        let now = to_micros(Utc::now());
        on_pool!(self, p => sqlx::query(sql).bind(UserStatus::Disabled.as_str()).bind(now).bind(reason).bind(until.map(to_micros)).bind(now).bind(id).execute(p).await.map(|_| ()))
            .map_err(query_err)?;
        Ok(())
    }

    async fn enable_user(&self, id: Uuid) -> Result<(), DbError> {
        let sql = self.sql("UPDATE users SET status = ?, disabled_at = NULL, disabled_reason = NULL, disabled_until = NULL, updated_at = ? WHERE id = ?");
        on_pool!(self, p => sqlx::query(sql).bind(UserStatus::Active.as_str()).bind(to_micros(Utc::now())).bind(id).execute(p).await.map(|_| ())).map_err(query_err)?;
        Ok(())
    }

    async fn delete_user(&self, id: Uuid) -> Result<bool, DbError> {
        let sql = self.sql("DELETE FROM users WHERE id = ?");
        let n = on_pool!(self, p => sqlx::query(sql).bind(id).execute(p).await.map(|r| r.rows_affected()))
            .map_err(query_err)?;
        Ok(n > 0)
    }

    async fn count_users(&self) -> Result<i64, DbError> {
        let sql = self.sql("SELECT COUNT(*) FROM users");
        on_pool!(self.readers(), p => sqlx::query_scalar::<_, i64>(sql).fetch_one(p).await).map_err(query_err)
    }

    async fn set_password(&self, user_id: Uuid, phc: &str) -> Result<(), DbError> {
        let now = to_micros(Utc::now());
        let sql = self.sql(match self.dialect() {
            crate::db::Dialect::MySql => {
                "INSERT INTO password_credentials (user_id, phc, updated_at) VALUES (?, ?, ?) \
                 ON DUPLICATE KEY UPDATE phc = VALUES(phc), updated_at = VALUES(updated_at)"
            }
            _ => {
                "INSERT INTO password_credentials (user_id, phc, updated_at) VALUES (?, ?, ?) \
                 ON CONFLICT (user_id) DO UPDATE SET phc = excluded.phc, updated_at = excluded.updated_at"
            }
        });
        on_pool!(self, p => sqlx::query(sql).bind(user_id).bind(phc).bind(now).execute(p).await.map(|_| ()))
            .map_err(query_err)?;
        Ok(())
    }

    async fn password(&self, user_id: Uuid) -> Result<Option<String>, DbError> {
        let sql = self.sql("SELECT phc FROM password_credentials WHERE user_id = ?");
        on_pool!(self, p => sqlx::query_scalar::<_, String>(sql).bind(user_id).fetch_optional(p).await)
            .map_err(query_err)
    }

    async fn link_identity(
        &self,
        user_id: Uuid,
        provider: &str,
        subject: &str,
        email: Option<&str>,
    ) -> Result<ExternalIdentity, DbError> {
        let identity = ExternalIdentity {
            id: Uuid::now_v7(),
            user_id,
            provider: provider.to_owned(),
            subject: subject.to_owned(),
            email: email.map(str::to_owned),
            created_at: from_micros(to_micros(Utc::now())),
        };
        let sql = self.sql("INSERT INTO external_identities (id, user_id, provider, subject, email, created_at) VALUES (?, ?, ?, ?, ?, ?)");
        on_pool!(self, p => sqlx::query(sql).bind(identity.id).bind(user_id).bind(provider).bind(subject).bind(email).bind(to_micros(identity.created_at)).execute(p).await.map(|_| ()))
            .map_err(query_err)?;
        Ok(identity)
    }

    async fn identity(&self, provider: &str, subject: &str) -> Result<Option<ExternalIdentity>, DbError> {
        let sql = self.sql("SELECT id, user_id, provider, subject, email, created_at FROM external_identities WHERE provider = ? AND subject = ?");
        let row: Option<IdentityRow> =
            on_pool!(self, p => sqlx::query_as(sql).bind(provider).bind(subject).fetch_optional(p).await)
                .map_err(query_err)?;
        Ok(row.map(Into::into))
    }

    async fn identities_of(&self, user_id: Uuid) -> Result<Vec<ExternalIdentity>, DbError> {
        let sql = self.sql("SELECT id, user_id, provider, subject, email, created_at FROM external_identities WHERE user_id = ? ORDER BY created_at");
        let rows: Vec<IdentityRow> =
            on_pool!(self, p => sqlx::query_as(sql).bind(user_id).fetch_all(p).await).map_err(query_err)?;
        Ok(rows.into_iter().map(Into::into).collect())
    }

    async fn unlink_identities(&self, user_id: Uuid, provider: &str) -> Result<u64, DbError> {
        let sql = self.sql("DELETE FROM external_identities WHERE user_id = ? AND provider = ?");
        on_pool!(self, p => sqlx::query(sql).bind(user_id).bind(provider).execute(p).await.map(|r| r.rows_affected()))
            .map_err(query_err)
    }
}

#[derive(sqlx::FromRow)]
struct IdentityRow {
    id: Uuid,
    user_id: Uuid,
    provider: String,
    subject: String,
    email: Option<String>,
    created_at: i64,
}

impl From<IdentityRow> for ExternalIdentity {
    fn from(r: IdentityRow) -> Self {
        ExternalIdentity {
            id: r.id,
            user_id: r.user_id,
            provider: r.provider,
            subject: r.subject,
            email: r.email,
            created_at: from_micros(r.created_at),
        }
    }
}

/// The profile checks every write of a user goes through (`create_user`,
/// `update_profile`, `set_custom_fields`), so registration, "me" and the admin API share
/// them: lengths the columns hold, no control characters (PostgreSQL cannot store NUL,
/// and none of them belongs in a name or ends up harmless in an ID token), `picture` an
/// absolute `https:` URL, `locale` a BCP 47 tag, `phone_number` digits and the usual
/// separators. A refusal is [`DbError::InvalidFields`], naming each field (422
/// `validation_failed` at the API), and happens before any statement.
pub mod profile {
    use std::collections::BTreeMap;

    use serde_json::Value;
    use tenantry_controlplane::FieldError;

    use crate::db::DbError;
    use crate::model::{NewUser, ProfileUpdate};

    /// Longest email address (RFC 5321's path limit less the brackets).
    pub const MAX_EMAIL_CHARS: usize = 254;
    /// Longest name, username (the columns are VARCHAR(255)).
    pub const MAX_NAME_CHARS: usize = 255;
    /// Longest `picture` URL.
    pub const MAX_URL_CHARS: usize = 2048;
    /// Longest `locale` (the column is VARCHAR(35), BCP 47's practical limit).
    pub const MAX_LOCALE_CHARS: usize = 35;
    /// Longest `phone_number` (E.164 has 15 digits; room for separators and an extension).
    pub const MAX_PHONE_CHARS: usize = 32;
    /// Largest `metadata` document, as stored JSON.
    pub const MAX_METADATA_BYTES: usize = 16 * 1024;

    #[derive(Default)]
    struct Problems(Vec<FieldError>);

    impl Problems {
        fn push(&mut self, field: &str, message: impl Into<String>) {
            self.0.push(FieldError {
                field: field.to_owned(),
                message: message.into(),
            });
        }

        fn into_result(self) -> Result<(), DbError> {
            if self.0.is_empty() {
                Ok(())
            } else {
                Err(DbError::InvalidFields(self.0))
            }
        }
    }

    /// An email address as the account's: `local@domain`, at most 254 characters, no
    /// spaces or control characters.
    pub fn email_problem(email: &str) -> Option<&'static str> {
        let e = email.trim();
        if e.chars().count() > MAX_EMAIL_CHARS {
            return Some("is longer than 254 characters");
        }
        if e.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Some("contains spaces or control characters");
        }
        match e.rsplit_once('@') {
            Some((local, domain))
                if !local.is_empty()
                    && local.chars().count() <= 64
                    && !domain.is_empty()
                    && !domain.split('.').any(str::is_empty) =>
            {
                None
            }
            _ => Some("is not an email address"),
        }
    }

    fn text(problems: &mut Problems, field: &str, value: Option<&str>, max: usize) {
        let Some(value) = value else { return };
        if value.chars().count() > max {
            problems.push(field, format!("is longer than {max} characters"));
        } else if value.chars().any(char::is_control) {
            problems.push(field, "contains control characters");
        }
    }

    fn url(problems: &mut Problems, field: &str, value: Option<&str>) {
        let Some(value) = value.filter(|v| !v.is_empty()) else {
            return;
        };
        if value.chars().count() > MAX_URL_CHARS {
            return problems.push(field, format!("is longer than {MAX_URL_CHARS} characters"));
        }
        let https = url::Url::parse(value)
            .ok()
            .filter(|u| u.scheme() == "https" && u.host_str().is_some_and(|h| !h.is_empty()));
        // The parser drops tabs and newlines; the value itself must not carry them.
        if https.is_none() || value.chars().any(|c| c.is_control() || c.is_whitespace()) {
            problems.push(field, "must be an absolute https: URL");
        }
    }

    fn locale(problems: &mut Problems, value: Option<&str>) {
        let Some(value) = value.filter(|v| !v.is_empty()) else {
            return;
        };
        // BCP 47 shape: a 2-8 letter language, then 1-8 character subtags (`-`, or the
        // `_` some platforms use).
        let mut parts = value.split(['-', '_']);
        let language = parts.next().unwrap_or("");
        let well_formed = value.len() <= MAX_LOCALE_CHARS
            && (2..=8).contains(&language.len())
            && language.bytes().all(|b| b.is_ascii_alphabetic())
            && parts.all(|p| (1..=8).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_alphanumeric()));
        if !well_formed {
            problems.push("locale", "must be a BCP 47 language tag such as `en` or `es-ES`");
        }
    }

    fn phone(problems: &mut Problems, value: Option<&str>) {
        let Some(value) = value.filter(|v| !v.is_empty()) else {
            return;
        };
        let (number, extension) = value.split_once(";ext=").unwrap_or((value, "0"));
        let digits = number.bytes().filter(u8::is_ascii_digit).count();
        let well_formed = value.len() <= MAX_PHONE_CHARS
            && (3..=15).contains(&digits)
            && number
                .strip_prefix('+')
                .unwrap_or(number)
                .bytes()
                .all(|b| b.is_ascii_digit() || matches!(b, b' ' | b'-' | b'.' | b'(' | b')'))
            && !extension.is_empty()
            && extension.bytes().all(|b| b.is_ascii_digit());
        if !well_formed {
            problems.push("phone_number", "must be a phone number such as `+1 (425) 555-1212`");
        }
    }

    fn metadata(problems: &mut Problems, value: Option<&Value>) {
        if value.is_some_and(|v| v.to_string().len() > MAX_METADATA_BYTES) {
            problems.push("metadata", format!("is larger than {MAX_METADATA_BYTES} bytes"));
        }
    }

    /// Text values of custom fields: no NUL or other control characters besides line
    /// breaks and tabs (types and lengths are the field set's to check).
    fn custom(problems: &mut Problems, values: &BTreeMap<String, Value>) {
        for (name, value) in values {
            if let Value::String(s) = value
                && s.chars().any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
            {
                problems.push(&format!("custom.{name}"), "contains control characters");
            }
        }
    }

    /// A new user's fields.
    pub fn check_new_user(new: &NewUser) -> Result<(), DbError> {
        let mut problems = Problems::default();
        if let Some(why) = email_problem(&new.email) {
            problems.push("email", why);
        }
        text(&mut problems, "username", new.username.as_deref(), MAX_NAME_CHARS);
        text(&mut problems, "given_name", new.given_name.as_deref(), MAX_NAME_CHARS);
        text(&mut problems, "family_name", new.family_name.as_deref(), MAX_NAME_CHARS);
        text(&mut problems, "name", new.name.as_deref(), MAX_NAME_CHARS);
        url(&mut problems, "picture", new.picture.as_deref());
        locale(&mut problems, new.locale.as_deref());
        phone(&mut problems, new.phone_number.as_deref());
        metadata(&mut problems, new.metadata.as_ref());
        custom(&mut problems, &new.custom);
        problems.into_result()
    }

    /// A profile change's fields, and the custom field values changed with it.
    pub fn check_update(
        update: &ProfileUpdate,
        custom_values: Option<&BTreeMap<String, Value>>,
    ) -> Result<(), DbError> {
        let mut problems = Problems::default();
        if let Some(why) = update.email.as_deref().and_then(email_problem) {
            problems.push("email", why);
        }
        text(&mut problems, "username", update.username.as_deref(), MAX_NAME_CHARS);
        text(
            &mut problems,
            "given_name",
            update.given_name.as_deref(),
            MAX_NAME_CHARS,
        );
        text(
            &mut problems,
            "family_name",
            update.family_name.as_deref(),
            MAX_NAME_CHARS,
        );
        text(&mut problems, "name", update.name.as_deref(), MAX_NAME_CHARS);
        url(&mut problems, "picture", update.picture.as_deref());
        locale(&mut problems, update.locale.as_deref());
        phone(&mut problems, update.phone_number.as_deref());
        metadata(&mut problems, update.metadata.as_ref());
        if let Some(values) = custom_values {
            custom(&mut problems, values);
        }
        problems.into_result()
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        fn update(f: impl FnOnce(&mut ProfileUpdate)) -> Result<(), DbError> {
            let mut u = ProfileUpdate::default();
            f(&mut u);
            check_update(&u, None)
        }

        fn field_of(r: Result<(), DbError>) -> String {
            match r {
                Err(DbError::InvalidFields(errors)) => errors[0].field.clone(),
                other => panic!("expected a refusal, got {other:?}"),
            }
        }

        #[test]
        fn good_profiles_pass() {
            let ok = ProfileUpdate {
                email: Some("Ada.Lovelace+x@example.co.uk".into()),
                given_name: Some("Ada María".into()),
                name: Some("Ada Lovelace".into()),
                picture: Some("https://cdn.example.com/a.png?s=64".into()),
                locale: Some("es-ES".into()),
                phone_number: Some("+1 (425) 555-1212".into()),
                ..Default::default()
            };
            check_update(&ok, None).unwrap();
            for locale in ["en", "zh-Hant-TW", "en_US", "de-CH-1996"] {
                update(|u| u.locale = Some(locale.into())).unwrap();
            }
            update(|u| u.phone_number = Some("+34600000000;ext=12".into())).unwrap();
            update(|u| u.picture = Some(String::new())).unwrap();
        }

        #[test]
        fn bad_values_name_their_field() {
            assert_eq!(field_of(update(|u| u.name = Some("x".repeat(256)))), "name");
            assert_eq!(field_of(update(|u| u.given_name = Some("A\0da".into()))), "given_name");
            assert_eq!(
                field_of(update(|u| u.family_name = Some("L\u{1b}[31m".into()))),
                "family_name"
            );
            for url in [
                "javascript:alert(1)",
                "http://example.com/a.png",
                "/a.png",
                "https://",
                "https://a b/",
            ] {
                assert_eq!(field_of(update(|u| u.picture = Some(url.into()))), "picture", "{url}");
            }
            for locale in [
                "x".repeat(36),
                "e".into(),
                "en-".into(),
                "en US".into(),
                "<script>".into(),
            ] {
                assert_eq!(
                    field_of(update(|u| u.locale = Some(locale.clone()))),
                    "locale",
                    "{locale}"
                );
            }
            for phone in ["call me", "12", "+1 555 0100 ext 9", &"1".repeat(40)] {
                assert_eq!(
                    field_of(update(|u| u.phone_number = Some(phone.into()))),
                    "phone_number"
                );
            }
            for email in [
                "a\0@example.com",
                "no-at-sign",
                "@example.com",
                "a@",
                "a@b..c",
                "a b@example.com",
            ] {
                assert_eq!(field_of(update(|u| u.email = Some(email.into()))), "email", "{email}");
            }
            let long = format!("{}@example.com", "a".repeat(64)).repeat(1) + &".example".repeat(30);
            assert_eq!(field_of(update(|u| u.email = Some(long))), "email");
            let metadata = serde_json::json!({"x": "y".repeat(MAX_METADATA_BYTES)});
            assert_eq!(field_of(update(|u| u.metadata = Some(metadata))), "metadata");
            let custom = BTreeMap::from([("nick".to_owned(), Value::String("a\0".into()))]);
            assert_eq!(
                field_of(check_update(&ProfileUpdate::default(), Some(&custom))),
                "custom.nick"
            );
        }
    }
}
