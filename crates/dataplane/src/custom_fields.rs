//! Custom user fields as real columns of `users`.
//!
//! A field declared in tenant settings becomes a nullable column `cf_<name>` (plus a unique
//! or plain index when asked). `sync` runs when a pool opens: it adds new columns online,
//! re-activates returning ones and hides removed ones (their data stays). Dropping a
//! column is a separate, explicit call. A type change is refused. Names are validated by
//! the control plane (`^[a-z][a-z0-9_]*$`, at most 60 chars) and always quoted.

use std::collections::BTreeMap;

use chrono::{NaiveDate, Utc};
use serde_json::Value;
use sqlx::{Database, Decode, Encode, Row, Type};
use tenantry_controlplane::model::{CustomField, CustomFieldType};

use crate::db::{DbError, Dialect, TenantDb, from_micros, query_err, to_micros};
use crate::on_pool;

/// The prefix that keeps custom columns apart from built-in ones.
pub const COLUMN_PREFIX: &str = "cf_";

fn type_name(t: CustomFieldType) -> &'static str {
    match t {
        CustomFieldType::Text => "text",
        CustomFieldType::Integer => "integer",
        CustomFieldType::Boolean => "boolean",
        CustomFieldType::Date => "date",
        CustomFieldType::Timestamp => "timestamp",
    }
}

fn column_type(dialect: Dialect, t: CustomFieldType) -> &'static str {
    match (dialect, t) {
        (Dialect::Postgres, CustomFieldType::Text) => "TEXT",
        (Dialect::MySql, CustomFieldType::Text) => "VARCHAR(512)",
        (Dialect::Sqlite, CustomFieldType::Text) => "TEXT",
        (Dialect::Sqlite, CustomFieldType::Integer | CustomFieldType::Timestamp | CustomFieldType::Boolean) => {
            "INTEGER"
        }
        (_, CustomFieldType::Integer | CustomFieldType::Timestamp) => "BIGINT",
        (_, CustomFieldType::Boolean) => "BOOLEAN",
        (Dialect::Sqlite, CustomFieldType::Date) => "TEXT",
        (_, CustomFieldType::Date) => "DATE",
    }
}

/// The active custom fields of a tenant (from its settings), used to read and write values.
#[derive(Debug, Clone, Default)]
pub struct CustomFieldSet {
    fields: Vec<CustomField>,
}

/// A typed value ready to bind.
#[derive(Debug, Clone)]
pub enum CustomValue {
    Text(Option<String>),
    Integer(Option<i64>),
    Boolean(Option<bool>),
    Date(Option<NaiveDate>),
    /// Unix microseconds.
    Timestamp(Option<i64>),
}

impl CustomFieldSet {
    pub fn new(fields: &[CustomField]) -> Self {
        Self {
            fields: fields.to_vec(),
        }
    }

    pub fn fields(&self) -> &[CustomField] {
        &self.fields
    }

    fn get(&self, name: &str) -> Option<&CustomField> {
        self.fields.iter().find(|f| f.name == name)
    }

    /// `, "cf_a", "cf_b"` for a SELECT list.
    pub(crate) fn select_list(&self, db: &TenantDb) -> String {
        self.fields
            .iter()
            .map(|f| format!(", {}", db.quote(&format!("{COLUMN_PREFIX}{}", f.name))))
            .collect()
    }

    /// Checks names and types; on create, required fields must be present.
    pub fn check_values(&self, values: &BTreeMap<String, Value>, creating: bool) -> Result<(), DbError> {
        for (name, value) in values {
            let field = self
                .get(name)
                .ok_or_else(|| DbError::Invalid(format!("unknown custom field `{name}`")))?;
            convert(field, value)?;
            if field.required && value.is_null() {
                return Err(DbError::Invalid(format!("custom field `{name}` is required")));
            }
        }
        if creating && let Some(missing) = self.fields.iter().find(|f| f.required && !values.contains_key(&f.name)) {
            return Err(DbError::Invalid(format!("custom field `{}` is required", missing.name)));
        }
        Ok(())
    }

    /// `"cf_a" = ?` and the value, for finding users whose field `name` equals `raw` (text
    /// as given, the other types parsed from their JSON text form: `42`, `true`,
    /// `2024-01-31`, an RFC 3339 time).
    pub(crate) fn equals(&self, db: &TenantDb, name: &str, raw: &str) -> Result<(String, CustomValue), DbError> {
        let field = self
            .get(name)
            .ok_or_else(|| DbError::Invalid(format!("unknown custom field `{name}`")))?;
        let value = match field.field_type {
            CustomFieldType::Text | CustomFieldType::Date | CustomFieldType::Timestamp => Value::String(raw.to_owned()),
            CustomFieldType::Integer | CustomFieldType::Boolean => serde_json::from_str(raw).unwrap_or(Value::Null),
        };
        if value.is_null() {
            return Err(DbError::Invalid(format!(
                "custom field `{name}` must be {}",
                type_name(field.field_type)
            )));
        }
        let column = db.quote(&format!("{COLUMN_PREFIX}{name}"));
        Ok((format!("{column} = ?"), convert(field, &value)?))
    }

    /// `"cf_a" = ?, "cf_b" = ?` and the values in order.
    pub(crate) fn assignments(
        &self,
        db: &TenantDb,
        values: &BTreeMap<String, Value>,
    ) -> Result<(String, Vec<CustomValue>), DbError> {
        let mut set = Vec::new();
        let mut bound = Vec::new();
        for (name, value) in values {
            let field = self
                .get(name)
                .ok_or_else(|| DbError::Invalid(format!("unknown custom field `{name}`")))?;
            set.push(format!("{} = ?", db.quote(&format!("{COLUMN_PREFIX}{name}"))));
            bound.push(convert(field, value)?);
        }
        Ok((set.join(", "), bound))
    }

    /// Reads every active custom column of a row into JSON values.
    pub(crate) fn read<R>(&self, row: &R) -> Result<BTreeMap<String, Value>, DbError>
    where
        R: Row,
        for<'a> &'a str: sqlx::ColumnIndex<R>,
        for<'r> Option<String>: Decode<'r, R::Database> + Type<R::Database>,
        for<'r> Option<i64>: Decode<'r, R::Database> + Type<R::Database>,
        for<'r> Option<bool>: Decode<'r, R::Database> + Type<R::Database>,
        for<'r> Option<NaiveDate>: Decode<'r, R::Database> + Type<R::Database>,
    {
        let mut out = BTreeMap::new();
        for f in &self.fields {
            let col = format!("{COLUMN_PREFIX}{}", f.name);
            let col = col.as_str();
            let value = match f.field_type {
                CustomFieldType::Text => row
                    .try_get::<Option<String>, _>(col)
                    .map_err(query_err)?
                    .map(Value::String),
                CustomFieldType::Integer => row.try_get::<Option<i64>, _>(col).map_err(query_err)?.map(Value::from),
                CustomFieldType::Boolean => row.try_get::<Option<bool>, _>(col).map_err(query_err)?.map(Value::Bool),
                CustomFieldType::Date => row
                    .try_get::<Option<NaiveDate>, _>(col)
                    .map_err(query_err)?
                    .map(|d| Value::String(d.to_string())),
                CustomFieldType::Timestamp => row
                    .try_get::<Option<i64>, _>(col)
                    .map_err(query_err)?
                    .map(|us| Value::String(from_micros(us).to_rfc3339_opts(chrono::SecondsFormat::Micros, true))),
            };
            out.insert(f.name.clone(), value.unwrap_or(Value::Null));
        }
        Ok(out)
    }
}

fn convert(field: &CustomField, value: &Value) -> Result<CustomValue, DbError> {
    let wrong = || {
        DbError::Invalid(format!(
            "custom field `{}` must be {}",
            field.name,
            type_name(field.field_type)
        ))
    };
    Ok(match (field.field_type, value) {
        (CustomFieldType::Text, Value::Null) => CustomValue::Text(None),
        (CustomFieldType::Text, Value::String(s)) if s.chars().count() <= 512 => CustomValue::Text(Some(s.clone())),
        (CustomFieldType::Integer, Value::Null) => CustomValue::Integer(None),
        (CustomFieldType::Integer, Value::Number(n)) => CustomValue::Integer(Some(n.as_i64().ok_or_else(wrong)?)),
        (CustomFieldType::Boolean, Value::Null) => CustomValue::Boolean(None),
        (CustomFieldType::Boolean, Value::Bool(b)) => CustomValue::Boolean(Some(*b)),
        (CustomFieldType::Date, Value::Null) => CustomValue::Date(None),
        (CustomFieldType::Date, Value::String(s)) => {
            CustomValue::Date(Some(NaiveDate::parse_from_str(s, "%Y-%m-%d").map_err(|_| wrong())?))
        }
        (CustomFieldType::Timestamp, Value::Null) => CustomValue::Timestamp(None),
        (CustomFieldType::Timestamp, Value::String(s)) => {
            let t = chrono::DateTime::parse_from_rfc3339(s).map_err(|_| wrong())?;
            CustomValue::Timestamp(Some(to_micros(t.with_timezone(&Utc))))
        }
        _ => return Err(wrong()),
    })
}

/// Binds one custom value to a query of any driver.
pub(crate) fn bind_custom_value<'q, DB: Database>(
    query: sqlx::query::Query<'q, DB, <DB as Database>::Arguments>,
    value: &CustomValue,
) -> sqlx::query::Query<'q, DB, <DB as Database>::Arguments>
where
    Option<String>: Encode<'q, DB> + Type<DB>,
    Option<i64>: Encode<'q, DB> + Type<DB>,
    Option<bool>: Encode<'q, DB> + Type<DB>,
    Option<NaiveDate>: Encode<'q, DB> + Type<DB>,
{
    match value.clone() {
        CustomValue::Text(v) => query.bind(v),
        CustomValue::Integer(v) | CustomValue::Timestamp(v) => query.bind(v),
        CustomValue::Boolean(v) => query.bind(v),
        CustomValue::Date(v) => query.bind(v),
    }
}

/// A field's column as recorded in the tenant database.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct StoredField {
    pub name: String,
    pub field_type: String,
    pub is_required: bool,
    pub is_unique: bool,
    pub is_indexed: bool,
    pub active: bool,
}

/// Refuses settings that change the type of a field already declared or stored.
pub fn type_changes(old: &[CustomField], new: &[CustomField], stored: &[StoredField]) -> Vec<String> {
    let mut problems = Vec::new();
    for field in new {
        let declared = old
            .iter()
            .find(|o| o.name == field.name)
            .map(|o| type_name(o.field_type));
        let on_disk = stored
            .iter()
            .find(|s| s.name == field.name)
            .map(|s| s.field_type.as_str());
        for before in [declared, on_disk].into_iter().flatten() {
            if before != type_name(field.field_type) {
                problems.push(format!(
                    "custom field `{}` is {before}; changing its type to {} is not supported (add a new field instead)",
                    field.name,
                    type_name(field.field_type)
                ));
                break;
            }
        }
    }
    problems
}

impl TenantDb {
    /// The custom fields recorded in this database (active and hidden).
    pub async fn stored_custom_fields(&self) -> Result<Vec<StoredField>, DbError> {
        let sql = self.sql(
            "SELECT name, field_type, is_required, is_unique, is_indexed, active FROM custom_fields ORDER BY name",
        );
        on_pool!(self, p => sqlx::query_as::<_, StoredField>(sql).fetch_all(p).await).map_err(query_err)
    }

    /// Brings the `users` columns in line with the declared fields: adds new columns and
    /// indexes, hides removed fields (never drops data). Each field is applied on its own,
    /// so one that cannot be (a type change, a unique index over duplicate values) is
    /// reported and the others still are; its column, when it has one, stays readable.
    /// Fails with the problems of the fields left out, after applying the rest.
    pub async fn sync_custom_fields(&self, declared: &[CustomField]) -> Result<(), DbError> {
        let problems = self.sync_custom_fields_report(declared).await?;
        if problems.is_empty() {
            Ok(())
        } else {
            Err(DbError::Invalid(
                problems
                    .iter()
                    .map(|p| p.problem.as_str())
                    .collect::<Vec<_>>()
                    .join("; "),
            ))
        }
    }

    /// [`sync_custom_fields`](Self::sync_custom_fields), answering the fields that could
    /// not be applied instead of failing. `Err` only when the stored fields cannot be read.
    pub async fn sync_custom_fields_report(&self, declared: &[CustomField]) -> Result<Vec<FieldProblem>, DbError> {
        let stored = self.stored_custom_fields().await?;
        let now = to_micros(Utc::now());
        let mut problems = Vec::new();
        for field in declared {
            if let Some(problem) = type_changes(&[], std::slice::from_ref(field), &stored)
                .into_iter()
                .next()
            {
                problems.push(FieldProblem {
                    field: field.name.clone(),
                    problem,
                });
                continue;
            }
            let before = stored.iter().find(|s| s.name == field.name);
            if let Err(e) = self.sync_column(field, before, now).await {
                problems.push(FieldProblem::from_error(&field.name, e));
                continue;
            }
            if let Err(e) = self.sync_indexes(field, before, now).await {
                problems.push(FieldProblem::from_error(&field.name, e));
            }
        }
        let hide: Vec<_> = stored
            .iter()
            .filter(|s| s.active && !declared.iter().any(|d| d.name == s.name))
            .map(|gone| {
                (
                    "UPDATE custom_fields SET active = ?, updated_at = ? WHERE name = ?".to_owned(),
                    vec![
                        SyncBind::Bool(false),
                        SyncBind::Int(now),
                        SyncBind::Text(gone.name.clone()),
                    ],
                )
            })
            .collect();
        if !hide.is_empty() {
            self.run_locked(hide).await?;
        }
        for p in &problems {
            tracing::warn!(field = %p.field, problem = %p.problem, "custom field not synced");
        }
        Ok(problems)
    }

    /// The field's column and its row in `custom_fields` (new fields start without
    /// indexes; [`sync_indexes`](Self::sync_indexes) adds them in a step of their own).
    async fn sync_column(&self, field: &CustomField, before: Option<&StoredField>, now: i64) -> Result<(), DbError> {
        let statements = match before {
            None => vec![
                (
                    format!(
                        "ALTER TABLE users ADD COLUMN {} {}",
                        self.quote(&format!("{COLUMN_PREFIX}{}", field.name)),
                        column_type(self.dialect(), field.field_type)
                    ),
                    vec![],
                ),
                (
                    "INSERT INTO custom_fields (name, field_type, is_required, is_unique, is_indexed, active, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)".into(),
                    vec![
                        SyncBind::Text(field.name.clone()),
                        SyncBind::Text(type_name(field.field_type).into()),
                        SyncBind::Bool(field.required),
                        SyncBind::Bool(false),
                        SyncBind::Bool(false),
                        SyncBind::Bool(true),
                        SyncBind::Int(now),
                        SyncBind::Int(now),
                    ],
                ),
            ],
            Some(b) if b.is_required == field.required && b.active => return Ok(()),
            Some(_) => vec![(
                "UPDATE custom_fields SET is_required = ?, active = ?, updated_at = ? WHERE name = ?".into(),
                vec![
                    SyncBind::Bool(field.required),
                    SyncBind::Bool(true),
                    SyncBind::Int(now),
                    SyncBind::Text(field.name.clone()),
                ],
            )],
        };
        self.run_locked(statements).await
    }

    /// The field's unique or plain index. The statement that can fail on existing rows
    /// (a new unique index) runs first, so a refusal leaves everything as it was even where
    /// DDL is not transactional (MySQL).
    async fn sync_indexes(&self, field: &CustomField, before: Option<&StoredField>, now: i64) -> Result<(), DbError> {
        let column = self.quote(&format!("{COLUMN_PREFIX}{}", field.name));
        let unique_index = self.quote(&format!("users_cf_{}_uq", field.name));
        let plain_index = self.quote(&format!("users_cf_{}_ix", field.name));
        // Stored flags: the unique index exists when `is_unique`; the plain one when
        // `is_indexed` and not `is_unique`.
        let (had_unique, had_plain) = before.map_or((false, false), |b| (b.is_unique, b.is_indexed && !b.is_unique));
        let want_plain = field.indexed && !field.unique;
        let mut statements = Vec::new();
        if field.unique && !had_unique {
            statements.push((
                format!("CREATE UNIQUE INDEX {unique_index} ON users ({column})"),
                vec![],
            ));
        }
        if want_plain && !had_plain {
            statements.push((format!("CREATE INDEX {plain_index} ON users ({column})"), vec![]));
        }
        if had_unique && !field.unique {
            statements.push((self.drop_index_sql(&unique_index), vec![]));
        }
        if had_plain && !want_plain {
            statements.push((self.drop_index_sql(&plain_index), vec![]));
        }
        let flags_differ = before.is_none_or(|b| b.is_unique != field.unique || b.is_indexed != field.indexed);
        if statements.is_empty() && !flags_differ {
            return Ok(());
        }
        statements.push((
            "UPDATE custom_fields SET is_unique = ?, is_indexed = ?, updated_at = ? WHERE name = ?".into(),
            vec![
                SyncBind::Bool(field.unique),
                SyncBind::Bool(field.indexed),
                SyncBind::Int(now),
                SyncBind::Text(field.name.clone()),
            ],
        ));
        self.run_locked(statements).await.map_err(|e| match e {
            DbError::Invalid(_) if field.unique && !had_unique => DbError::Invalid(format!(
                "custom field `{}`: existing values repeat, so it cannot be unique",
                field.name
            )),
            other => other,
        })
    }

    /// Up to `limit` values of a custom field's column that more than one user has (as
    /// text), i.e. what would stop a unique index. Empty when the column does not exist.
    pub async fn custom_field_duplicates(&self, name: &str, limit: u32) -> Result<Vec<String>, DbError> {
        if !self.stored_custom_fields().await?.iter().any(|s| s.name == name) {
            return Ok(Vec::new());
        }
        let column = self.quote(&format!("{COLUMN_PREFIX}{name}"));
        let as_text = match self.dialect() {
            Dialect::Postgres => format!("CAST({column} AS TEXT)"),
            Dialect::MySql => format!("CAST({column} AS CHAR)"),
            Dialect::Sqlite => format!("CAST({column} AS TEXT)"),
        };
        let sql = self.sql(&format!(
            "SELECT {as_text} FROM users WHERE {column} IS NOT NULL GROUP BY {column} HAVING COUNT(*) > 1 ORDER BY {column} LIMIT {limit}"
        ));
        on_pool!(self, p => sqlx::query_scalar::<_, Option<String>>(sql).fetch_all(p).await)
            .map(|values| values.into_iter().flatten().collect())
            .map_err(query_err)
    }

    fn drop_index_sql(&self, quoted: &str) -> String {
        match self.dialect() {
            Dialect::MySql => format!("DROP INDEX {quoted} ON users"),
            _ => format!("DROP INDEX IF EXISTS {quoted}"),
        }
    }

    /// Drops the column of a hidden custom field (an explicit admin action; data is lost).
    pub async fn drop_custom_column(&self, name: &str, declared: &[CustomField]) -> Result<(), DbError> {
        if declared.iter().any(|f| f.name == name) {
            return Err(DbError::Invalid(format!(
                "custom field `{name}` is still declared; remove it from the settings first"
            )));
        }
        let stored = self.stored_custom_fields().await?;
        let Some(field) = stored.iter().find(|s| s.name == name) else {
            return Err(DbError::Invalid(format!("custom field `{name}` has no column")));
        };
        let mut statements = Vec::new();
        if field.is_unique {
            statements.push((self.drop_index_sql(&self.quote(&format!("users_cf_{name}_uq"))), vec![]));
        }
        if field.is_indexed && !field.is_unique {
            statements.push((self.drop_index_sql(&self.quote(&format!("users_cf_{name}_ix"))), vec![]));
        }
        statements.push((
            format!(
                "ALTER TABLE users DROP COLUMN {}",
                self.quote(&format!("{COLUMN_PREFIX}{name}"))
            ),
            vec![],
        ));
        statements.push((
            "DELETE FROM custom_fields WHERE name = ?".into(),
            vec![SyncBind::Text(name.to_owned())],
        ));
        self.run_locked(statements).await
    }

    /// Runs schema statements on one connection under a lock that serialises nodes:
    /// an advisory lock on PostgreSQL, `GET_LOCK` on MySQL, `BEGIN IMMEDIATE` on SQLite.
    async fn run_locked(&self, statements: Vec<(String, Vec<SyncBind>)>) -> Result<(), DbError> {
        const LOCK_KEY: i64 = 0x7e4a_4e74_7279_0001;
        let texts: Vec<_> = statements.iter().map(|(sql, _)| self.sql(sql)).collect();
        let (lock, unlock) = match self.dialect() {
            Dialect::Postgres => ("SELECT pg_advisory_lock($1)", "SELECT pg_advisory_unlock($1)"),
            Dialect::MySql => (
                "SELECT GET_LOCK('tenantry_custom_fields', 60)",
                "SELECT RELEASE_LOCK('tenantry_custom_fields')",
            ),
            Dialect::Sqlite => ("BEGIN IMMEDIATE", "COMMIT"),
        };
        on_pool!(self, p => {
            let mut conn = p.acquire().await.map_err(query_err)?;
            let mut q = sqlx::query(lock);
            if self.dialect() == Dialect::Postgres {
                q = q.bind(LOCK_KEY);
            }
            q.execute(&mut *conn).await.map_err(query_err)?;
            let mut result = Ok(());
            for ((_, binds), sql) in statements.iter().zip(texts) {
                let mut query = sqlx::query(sql);
                for b in binds {
                    query = match b {
                        SyncBind::Text(s) => query.bind(s.clone()),
                        SyncBind::Bool(v) => query.bind(*v),
                        SyncBind::Int(v) => query.bind(*v),
                    };
                }
                if let Err(e) = query.execute(&mut *conn).await {
                    result = Err(match query_err(e) {
                        DbError::Conflict(_) => DbError::Invalid("existing rows break the new uniqueness rule".into()),
                        other => other,
                    });
                    break;
                }
            }
            let release = if result.is_err() && self.dialect() == Dialect::Sqlite { "ROLLBACK" } else { unlock };
            let mut q = sqlx::query(release);
            if self.dialect() == Dialect::Postgres {
                q = q.bind(LOCK_KEY);
            }
            q.execute(&mut *conn).await.map_err(query_err)?;
            result
        })
    }
}

/// A declared custom field that could not be applied to the database, and why.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FieldProblem {
    pub field: String,
    pub problem: String,
}

impl FieldProblem {
    fn from_error(field: &str, e: DbError) -> Self {
        let problem = match e {
            DbError::Invalid(message) => message,
            other => format!("custom field `{field}`: {other}"),
        };
        Self {
            field: field.to_owned(),
            problem,
        }
    }
}

enum SyncBind {
    Text(String),
    Bool(bool),
    Int(i64),
}
