//! The export document: one JSON object, written and read as a stream.
//!
//! ```text
//! {"format":"tenantry-tenant","version":1,"volatile":[...],"exported_at":...,"source":{...},
//!  "credentials":false,"tenant":{...},"clients":[...],"scopes":[...],"roles":[...],"users":[
//! {...one user per line...},
//! ...
//! ],"user_count":N}
//! ```
//!
//! Everything before `users` is the header; the users follow one per line, so neither side
//! ever holds the whole tenant. A reader takes any JSON layout, but the keys in this order:
//! the header must be complete before the first user.

use std::collections::BTreeMap;
use std::io::Read;

use chrono::{DateTime, Utc};
use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tenantry_controlplane::model::{Client, Role, Scope};
use tenantry_dataplane::model::UserStatus;
use tenantry_errors::{ApiError, ErrorCode};
use uuid::Uuid;

/// The `format` of every export document.
pub const FORMAT: &str = "tenantry-tenant";
/// The newest document version this binary writes and reads.
pub const VERSION: u32 = 1;
/// Values that differ between two exports of the same tenant (also after an import into
/// another tenant or installation): when and from where it was exported, the per-document
/// key agreement, and every value sealed for the importer (`**.sealed`, at any depth).
pub const VOLATILE: &[&str] = &["exported_at", "source", "transfer", "**.sealed"];

/// What precedes the users.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Header {
    pub format: String,
    pub version: u32,
    pub volatile: Vec<String>,
    pub exported_at: DateTime<Utc>,
    pub source: Source,
    /// Whether users carry their password hashes and TOTP secrets (sealed for the importer).
    pub credentials: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transfer: Option<Transfer>,
    pub tenant: TenantPart,
    pub clients: Vec<Client>,
    pub scopes: Vec<Scope>,
    pub roles: Vec<Role>,
}

/// The tenant the document was exported from.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Source {
    pub tenant_id: Uuid,
    pub slug: String,
    pub issuer: String,
}

/// The key agreement of the sealed values: the importing installation's transfer key and
/// this document's ephemeral key.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Transfer {
    pub recipient: String,
    pub ephemeral: String,
}

/// The tenant's own configuration. Settings never carry where its database lives
/// (`user_db` is the importing installation's choice); their secrets are present only
/// when credentials are, as `{"sealed": "..."}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantPart {
    pub display_name: String,
    pub settings: Value,
}

/// A value sealed for the importing installation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sealed {
    pub sealed: String,
}

/// One user.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserDoc {
    pub id: Uuid,
    pub email: String,
    pub email_verified: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub given_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub family_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub picture: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locale: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone_number: Option<String>,
    #[serde(default)]
    pub phone_number_verified: bool,
    pub status: UserStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disabled_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disabled_reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disabled_until: Option<DateTime<Utc>>,
    #[serde(default = "empty_object")]
    pub metadata: Value,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub custom: BTreeMap<String, Value>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<String>,
    /// The password's PHC string, sealed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<Sealed>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub totp: Option<TotpDoc>,
    /// The user's passkeys (public keys: nothing to seal), with the credentials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub passkeys: Option<PasskeysDoc>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

fn empty_object() -> Value {
    Value::Object(Default::default())
}

/// A TOTP secret (base32), sealed, and whether its enrolment was confirmed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TotpDoc {
    pub secret: Sealed,
    pub confirmed: bool,
    /// The last time step a code was accepted for, so a code used before the move is not
    /// good again after it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_used_step: Option<i64>,
}

/// A user's passkeys and the WebAuthn user handle their authenticators hold (base64url):
/// a passkey signs in without an email only when its handle moves with it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PasskeysDoc {
    pub handle: String,
    #[serde(default)]
    pub credentials: Vec<PasskeyDoc>,
}

/// One passkey as stored (binary values base64url, unpadded).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PasskeyDoc {
    pub id: Uuid,
    pub credential_id: String,
    /// The COSE_Key the authenticator registered.
    pub public_key: String,
    pub algorithm: i32,
    pub sign_count: i64,
    pub backup_eligible: bool,
    pub backup_state: bool,
    pub user_verified: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub discoverable: Option<bool>,
    #[serde(default)]
    pub transports: Vec<String>,
    pub aaguid: String,
    pub attestation: String,
    pub name: String,
    pub created_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_used_at: Option<DateTime<Utc>>,
}

/// What a reader hands on, in document order.
#[derive(Debug)]
pub enum Item {
    Header(Box<Header>),
    User(Box<UserDoc>),
    /// The end of the document, with the count it states.
    End {
        user_count: u64,
    },
}

/// Where [`parse`] sends items; `false` when the receiver is gone (stop reading).
pub trait ItemSink {
    fn send(&mut self, item: Item) -> bool;
}

impl ItemSink for tokio::sync::mpsc::Sender<Result<Item, ApiError>> {
    fn send(&mut self, item: Item) -> bool {
        self.blocking_send(Ok(item)).is_ok()
    }
}

/// Reads one document from `reader` (blocking), handing each part to `sink` as soon as it
/// is read. A document of another format, a newer version, keys out of order or a
/// malformed value is an error that names where it is.
pub fn parse(reader: impl Read, sink: &mut dyn ItemSink) -> Result<(), ApiError> {
    let budget = Budget::default();
    budget.allow(MAX_HEADER_BYTES);
    let mut de = serde_json::Deserializer::from_reader(Budgeted {
        inner: reader,
        budget: budget.clone(),
    });
    let mut cancelled = false;
    let result = DocumentSeed {
        sink,
        cancelled: &mut cancelled,
        budget: &budget,
    }
    .deserialize(&mut de)
    .and_then(|()| de.end());
    match result {
        Ok(()) => Ok(()),
        Err(_) if cancelled => Ok(()),
        Err(e) => Err(document_error(e)),
    }
}

/// The most the header (everything before `users`) may take.
pub const MAX_HEADER_BYTES: u64 = 16 << 20;
/// The most one user may take.
pub const MAX_USER_BYTES: u64 = 1 << 20;
/// The message of the error raised when one part of the document passes its limit.
pub const PART_TOO_LARGE: &str = "a part of the document is larger than allowed (the header 16 MiB, a user 1 MiB)";

/// How far into the document reading may go before the part being read is too large:
/// the parser holds one part at a time in memory, so each is bounded, not only the whole.
#[derive(Clone, Default)]
struct Budget {
    read: std::rc::Rc<std::cell::Cell<u64>>,
    limit: std::rc::Rc<std::cell::Cell<u64>>,
}

impl Budget {
    /// The next part may take `bytes` from here.
    fn allow(&self, bytes: u64) {
        self.limit.set(self.read.get() + bytes);
    }
}

struct Budgeted<R> {
    inner: R,
    budget: Budget,
}

impl<R: Read> Read for Budgeted<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        let read = self.budget.read.get() + n as u64;
        self.budget.read.set(read);
        if read > self.budget.limit.get() {
            return Err(std::io::Error::other(PART_TOO_LARGE));
        }
        Ok(n)
    }
}

/// Errors the reader raises itself start with this, then the stable code.
const OWN_ERROR: &str = "tenantry:";

fn document_error(e: serde_json::Error) -> ApiError {
    let text = e.to_string();
    if let Some(rest) = text.strip_prefix(OWN_ERROR) {
        let (code, detail) = rest.split_once(':').unwrap_or((rest, ""));
        let code = ErrorCode::ALL
            .iter()
            .copied()
            .find(|c| c.as_str() == code)
            .unwrap_or(ErrorCode::ValidationFailed);
        return ApiError::new(code, detail.trim().to_owned());
    }
    match e.classify() {
        serde_json::error::Category::Io => {
            if let Some(limit) = [TOO_LARGE, PART_TOO_LARGE].into_iter().find(|l| text.contains(l)) {
                ApiError::new(ErrorCode::PayloadTooLarge, limit)
            } else {
                ApiError::new(ErrorCode::BadRequest, format!("the document could not be read: {e}"))
            }
        }
        serde_json::error::Category::Syntax | serde_json::error::Category::Eof => {
            ApiError::new(ErrorCode::InvalidJson, format!("the document is not valid JSON: {e}"))
        }
        serde_json::error::Category::Data => {
            ApiError::new(ErrorCode::ValidationFailed, format!("the document is invalid: {e}"))
        }
    }
}

fn own<E: de::Error>(code: ErrorCode, detail: impl std::fmt::Display) -> E {
    E::custom(format!("{OWN_ERROR}{}: {detail}", code.as_str()))
}

struct DocumentSeed<'a> {
    sink: &'a mut dyn ItemSink,
    cancelled: &'a mut bool,
    budget: &'a Budget,
}

impl<'de> DeserializeSeed<'de> for DocumentSeed<'_> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for DocumentSeed<'_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a Tenantry export document (a JSON object)")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut header = serde_json::Map::new();
        let mut users_seen: Option<u64> = None;
        let mut user_count: Option<u64> = None;
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "users" => {
                    if users_seen.is_some() {
                        return Err(own(ErrorCode::ValidationFailed, "`users` appears twice"));
                    }
                    let parsed: Header =
                        serde_json::from_value(Value::Object(std::mem::take(&mut header))).map_err(|e| {
                            own::<A::Error>(ErrorCode::ValidationFailed, format!("the header before `users`: {e}"))
                        })?;
                    if !self.sink.send(Item::Header(Box::new(parsed))) {
                        *self.cancelled = true;
                        return Err(de::Error::custom("cancelled"));
                    }
                    let seen = map.next_value_seed(UsersSeed {
                        sink: &mut *self.sink,
                        cancelled: &mut *self.cancelled,
                        budget: self.budget,
                    })?;
                    users_seen = Some(seen);
                    self.budget.allow(MAX_USER_BYTES);
                }
                "user_count" => user_count = Some(map.next_value()?),
                _ if users_seen.is_some() => {
                    map.next_value::<IgnoredAny>()?;
                    return Err(own(ErrorCode::ValidationFailed, format!("`{key}` comes after `users`")));
                }
                _ => {
                    let value: Value = map.next_value()?;
                    check_early(&key, &value)?;
                    if header.insert(key.clone(), value).is_some() {
                        return Err(own(ErrorCode::ValidationFailed, format!("`{key}` appears twice")));
                    }
                }
            }
        }
        let Some(seen) = users_seen else {
            return Err(own(ErrorCode::ValidationFailed, "the document has no `users`"));
        };
        match user_count {
            Some(count) if count == seen => {}
            Some(count) => {
                return Err(own(
                    ErrorCode::ValidationFailed,
                    format!("`user_count` says {count} users but the document holds {seen}"),
                ));
            }
            None => {
                return Err(own(
                    ErrorCode::ValidationFailed,
                    "the document ends without `user_count`",
                ));
            }
        }
        if !self.sink.send(Item::End { user_count: seen }) {
            *self.cancelled = true;
        }
        Ok(())
    }
}

/// The format and version are checked as soon as they are read, so a document this
/// binary cannot read stops before anything else is.
fn check_early<E: de::Error>(key: &str, value: &Value) -> Result<(), E> {
    match key {
        "format" if value.as_str() != Some(FORMAT) => Err(own(
            ErrorCode::ValidationFailed,
            format!("`format` must be `{FORMAT}`: this is not a Tenantry tenant export"),
        )),
        "version" => match value.as_u64() {
            Some(v) if v > u64::from(VERSION) => Err(own(
                ErrorCode::ImportVersionUnsupported,
                format!("the document is version {v}; this installation reads up to version {VERSION}"),
            )),
            Some(v) if v >= 1 => Ok(()),
            _ => Err(own(ErrorCode::ValidationFailed, "`version` must be a positive integer")),
        },
        _ => Ok(()),
    }
}

struct UsersSeed<'a> {
    sink: &'a mut dyn ItemSink,
    cancelled: &'a mut bool,
    budget: &'a Budget,
}

impl<'de> DeserializeSeed<'de> for UsersSeed<'_> {
    type Value = u64;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<u64, D::Error> {
        deserializer.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for UsersSeed<'_> {
    type Value = u64;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("an array of users")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<u64, A::Error> {
        let mut count = 0u64;
        loop {
            self.budget.allow(MAX_USER_BYTES);
            // Read as JSON first, so a syntax error stays one; then as a user, naming it.
            let Some(value) = seq.next_element::<Value>()? else {
                break;
            };
            let user: UserDoc = serde_json::from_value(value)
                .map_err(|e| own::<A::Error>(ErrorCode::ValidationFailed, format!("users[{count}]: {e}")))?;
            count += 1;
            if !self.sink.send(Item::User(Box::new(user))) {
                *self.cancelled = true;
                return Err(de::Error::custom("cancelled"));
            }
        }
        Ok(count)
    }
}

/// A blocking reader over chunks a task receives from the network, which stops with an
/// error past `max` bytes: the parser runs on a blocking thread and never holds more than
/// one chunk.
pub struct ChunkReader {
    chunks: tokio::sync::mpsc::Receiver<std::io::Result<Vec<u8>>>,
    current: Vec<u8>,
    at: usize,
    read: u64,
    max: u64,
}

impl ChunkReader {
    pub fn new(chunks: tokio::sync::mpsc::Receiver<std::io::Result<Vec<u8>>>, max: u64) -> Self {
        Self {
            chunks,
            current: Vec::new(),
            at: 0,
            read: 0,
            max,
        }
    }
}

/// The message of the error a [`ChunkReader`] raises past its limit.
pub const TOO_LARGE: &str = "the document is larger than this installation accepts";

impl Read for ChunkReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.at == self.current.len() {
            match self.chunks.blocking_recv() {
                Some(Ok(chunk)) => {
                    self.read += chunk.len() as u64;
                    if self.read > self.max {
                        return Err(std::io::Error::other(TOO_LARGE));
                    }
                    self.current = chunk;
                    self.at = 0;
                }
                Some(Err(e)) => return Err(e),
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len() - self.at);
        buf[..n].copy_from_slice(&self.current[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Collect(Vec<Item>);

    impl ItemSink for Collect {
        fn send(&mut self, item: Item) -> bool {
            self.0.push(item);
            true
        }
    }

    /// The header's members in document order (a `json!` object would sort them).
    fn header() -> Vec<(&'static str, Value)> {
        vec![
            ("format", FORMAT.into()),
            ("version", 1.into()),
            ("volatile", serde_json::json!(VOLATILE)),
            ("exported_at", "2026-01-01T00:00:00Z".into()),
            (
                "source",
                serde_json::json!({"tenant_id": Uuid::nil(), "slug": "acme", "issuer": "http://x/t/acme"}),
            ),
            ("credentials", false.into()),
            ("tenant", serde_json::json!({"display_name": "Acme", "settings": {}})),
            ("clients", serde_json::json!([])),
            ("scopes", serde_json::json!([])),
            ("roles", serde_json::json!([])),
        ]
    }

    fn user(email: &str) -> Value {
        serde_json::json!({"id": Uuid::now_v7(), "email": email, "email_verified": true, "status": "active",
            "created_at": "2026-01-01T00:00:00Z", "updated_at": "2026-01-01T00:00:00Z"})
    }

    fn document(users: Vec<Value>, count: usize) -> String {
        let mut members = header();
        members.push(("users", Value::Array(users)));
        members.push(("user_count", count.into()));
        let members: Vec<String> = members.iter().map(|(k, v)| format!("\"{k}\":{v}")).collect();
        format!("{{{}}}", members.join(","))
    }

    fn run(text: &str) -> (Vec<Item>, Result<(), ApiError>) {
        let mut sink = Collect(Vec::new());
        let result = parse(text.as_bytes(), &mut sink);
        (sink.0, result)
    }

    #[test]
    fn a_document_is_read_in_order() {
        let (items, result) = run(&document(vec![user("a@x.test"), user("b@x.test")], 2));
        result.unwrap();
        assert!(matches!(items[0], Item::Header(_)));
        assert!(matches!(&items[1], Item::User(u) if u.email == "a@x.test"));
        assert!(matches!(&items[2], Item::User(u) if u.email == "b@x.test"));
        assert!(matches!(items[3], Item::End { user_count: 2 }));
    }

    #[test]
    fn a_newer_version_stops_before_anything_is_handed_on() {
        let text = document(vec![user("a@x.test")], 1).replace("\"version\":1", "\"version\":2");
        let (items, result) = run(&text);
        assert_eq!(result.unwrap_err().code, ErrorCode::ImportVersionUnsupported);
        assert!(items.is_empty());
    }

    #[test]
    fn a_wrong_count_a_truncation_and_unknown_fields_are_refused() {
        let (_, result) = run(&document(vec![user("a@x.test")], 2));
        assert_eq!(result.unwrap_err().code, ErrorCode::ValidationFailed);
        let text = document(vec![user("a@x.test")], 1);
        let (_, result) = run(&text[..text.len() - 20]);
        assert_eq!(result.unwrap_err().code, ErrorCode::InvalidJson);
        let mut odd = user("a@x.test");
        odd["is_admin"] = true.into();
        let (_, result) = run(&document(vec![odd], 1));
        let error = result.unwrap_err();
        assert_eq!(error.code, ErrorCode::ValidationFailed);
        assert!(
            error.detail.contains("users[0]") && error.detail.contains("is_admin"),
            "{}",
            error.detail
        );
    }

    #[test]
    fn the_header_must_precede_the_users() {
        let text = format!(
            "{{\"users\":[],{}",
            &document(vec![], 0)[1..].replace(",\"users\":[],\"user_count\":0", ",\"user_count\":0")
        );
        let (items, result) = run(&text);
        assert_eq!(result.unwrap_err().code, ErrorCode::ValidationFailed);
        assert!(items.is_empty());
        let text = document(vec![], 0).replace("\"format\":\"tenantry-tenant\"", "\"format\":\"other\"");
        assert_eq!(run(&text).1.unwrap_err().code, ErrorCode::ValidationFailed);
    }

    #[test]
    fn a_part_past_its_limit_is_too_large_before_it_is_held() {
        let big = "x".repeat(MAX_USER_BYTES as usize + 10);
        let mut user = user("a@x.test");
        user["name"] = big.clone().into();
        let (items, result) = run(&document(vec![user], 1));
        assert_eq!(result.unwrap_err().code, ErrorCode::PayloadTooLarge);
        assert_eq!(items.len(), 1, "only the header was handed on");
        let text = document(vec![], 0).replacen(
            "\"settings\":{}",
            &format!("\"settings\":{{\"x\":\"{big}{big}{}\"}}", "y".repeat(15 << 20)),
            1,
        );
        let (items, result) = run(&text);
        assert_eq!(result.unwrap_err().code, ErrorCode::PayloadTooLarge);
        assert!(items.is_empty());
    }

    #[test]
    fn the_reader_stops_past_its_limit() {
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        tx.try_send(Ok(vec![b'{'; 10])).unwrap();
        tx.try_send(Ok(vec![b' '; 10])).unwrap();
        drop(tx);
        let mut reader = ChunkReader::new(rx, 15);
        let mut all = Vec::new();
        let error = reader.read_to_end(&mut all).unwrap_err();
        assert_eq!(error.to_string(), TOO_LARGE);
    }
}
