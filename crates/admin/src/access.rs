//! Who may do what on the admin API: the credentials (admin tokens and API keys), the
//! [`Principal`] one of them authenticates, and the one rule of what a principal may
//! reach ([`Principal::permits`]). API keys are made here too, never reaching further
//! than the principal that makes them.
//!
//! The HTTP crate decides, per route, which tenant a request names and whether it writes;
//! everything else about admin authorization is here, without HTTP.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tenantry_controlplane::Snapshot;
use tenantry_controlplane::model::{AdminAccess, AdminReach, ApiKey};
use tenantry_crypto::{DigestKey, constant_time_eq, hash_token, keyed_digest, random_token, verify_keyed_digest};
use tenantry_errors::{ApiError, ErrorCode};
use uuid::Uuid;

use crate::Actor;

/// The prefix of every API key (`tnk_<id as 32 hex>_<secret>`), so a key is recognised
/// (and found by id, without trying every stored digest) before its secret is checked.
pub const API_KEY_PREFIX: &str = "tnk_";

/// An authenticated admin credential and how far it reaches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub actor: Actor,
    pub reach: AdminReach,
    pub access: AdminAccess,
}

/// What one admin request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Needs<'a> {
    pub target: Target<'a>,
    /// Anything but a read (`GET`/`HEAD`).
    pub write: bool,
}

/// What an admin request acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target<'a> {
    /// One tenant, named in the path.
    Tenant(&'a str),
    /// The installation as a whole (creating tenants, re-sealing, the audit trail).
    Installation,
    /// Objects of several tenants, narrowed by the handler to the principal's reach
    /// (listing tenants, API keys).
    WithinReach,
}

impl Principal {
    /// The one rule: a read-only principal only reads; a tenant principal only reaches
    /// its tenants (and lists within them); installation-wide operations are global.
    /// The error is the refusal's detail.
    pub fn permits(&self, needs: Needs<'_>) -> Result<(), String> {
        if needs.write && self.access == AdminAccess::ReadOnly {
            return Err("this credential is read-only".into());
        }
        match needs.target {
            Target::Tenant(slug) if !self.reach.covers(slug) => {
                Err(format!("tenant `{slug}` is outside this credential's reach"))
            }
            Target::Installation if !self.reach.is_global() => {
                Err("this operation needs a credential that reaches the whole installation".into())
            }
            _ => Ok(()),
        }
    }

    /// Whether this principal may make a credential (an API key, an admin) with `reach`
    /// and `access`: never one that reaches further or writes where it may only read, and
    /// only over tenants that exist. A refusal is 403 `forbidden` (or 422 for an unknown
    /// tenant).
    pub fn may_grant(&self, reach: &AdminReach, access: AdminAccess, snapshot: &Snapshot) -> Result<(), ApiError> {
        if !self.reach.includes(reach) {
            return Err(ApiError::new(
                ErrorCode::Forbidden,
                "a credential cannot grant tenants it does not reach",
            ));
        }
        if access > self.access {
            return Err(ApiError::new(
                ErrorCode::Forbidden,
                "a read-only credential cannot grant write access",
            ));
        }
        if let AdminReach::Tenants(slugs) = reach {
            if slugs.is_empty() {
                return Err(ApiError::field("reach.tenants", "must name at least one tenant"));
            }
            if let Some(unknown) = slugs.iter().find(|s| snapshot.tenant(s).is_none()) {
                return Err(ApiError::field("reach.tenants", format!("no tenant `{unknown}`")));
            }
        }
        Ok(())
    }

    /// Whether `slug` is within reach (for narrowing lists).
    pub fn covers(&self, slug: &str) -> bool {
        self.reach.covers(slug)
    }
}

/// Why a bearer credential was not accepted (always answered 401).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unauthenticated {
    Unknown,
    /// A real key (its secret matched) past its expiry.
    Expired(Uuid),
    /// A real key that was revoked.
    Revoked(Uuid),
}

impl Unauthenticated {
    pub fn detail(&self) -> &'static str {
        match self {
            Unauthenticated::Unknown => "the admin access token, admin token or API key is not valid",
            Unauthenticated::Expired(_) => "the API key has expired",
            Unauthenticated::Revoked(_) => "the API key was revoked",
        }
    }
}

/// What [`authenticate`] opens only when the credential needs it.
pub struct Verifiers<D, S> {
    /// The installation's digest key (for an API key).
    pub digest_key: D,
    /// The system issuer's ring and URL (for an admin access token).
    pub system_issuer: S,
}

/// The principal a bearer token authenticates at `now`: an admin access token (signed by
/// the system issuer, its session open: `signin::verify_access_token`), an API key
/// (found by its id, its secret checked against the keyed digest) or an admin token
/// (compared with every admin's hash, so timing does not tell which one matched).
pub fn authenticate<'s, D, S>(
    snapshot: &'s Snapshot,
    token: &str,
    now: DateTime<Utc>,
    verifiers: Verifiers<D, S>,
) -> Result<Result<(Principal, Option<&'s ApiKey>), Unauthenticated>, ApiError>
where
    D: FnOnce() -> Result<tenantry_tenancy::keystore::ClientSecretKey, ApiError>,
    S: FnOnce() -> Result<(std::sync::Arc<tenantry_keys::IssuerKeys>, String), ApiError>,
{
    let Verifiers {
        digest_key,
        system_issuer,
    } = verifiers;
    if crate::signin::looks_like_jwt(token) {
        let (keys, issuer) = system_issuer()?;
        return Ok(crate::signin::verify_access_token(snapshot, &keys, &issuer, token, now)
            .map(|admin| (admin_principal(admin), None))
            .ok_or(Unauthenticated::Unknown));
    }
    if let Some((id, secret)) = split_api_key(token) {
        let Some(key) = snapshot.api_keys.get(&id) else {
            return Ok(Err(Unauthenticated::Unknown));
        };
        if !verify_keyed_digest(&*digest_key()?, secret, &key.secret_digest) {
            return Ok(Err(Unauthenticated::Unknown));
        }
        if key.revoked_at.is_some() {
            return Ok(Err(Unauthenticated::Revoked(key.id)));
        }
        if !key.is_live(now) {
            return Ok(Err(Unauthenticated::Expired(key.id)));
        }
        let principal = Principal {
            actor: Actor {
                admin_id: key.id,
                api_key: true,
                request_id: None,
            },
            reach: key.reach.clone(),
            access: key.access,
        };
        return Ok(Ok((principal, Some(key))));
    }
    let presented = hash_token(token);
    let mut found = None;
    for admin in snapshot.admins.values() {
        if let Some(hash) = &admin.token_hash
            && constant_time_eq(presented.as_bytes(), hash.as_bytes())
        {
            found = Some(admin);
        }
    }
    Ok(found
        .map(|admin| (admin_principal(admin), None))
        .ok_or(Unauthenticated::Unknown))
}

fn admin_principal(admin: &tenantry_controlplane::model::Admin) -> Principal {
    Principal {
        actor: Actor {
            admin_id: admin.id,
            api_key: false,
            request_id: None,
        },
        reach: admin.reach.clone(),
        access: admin.access,
    }
}

/// `tnk_<32 hex>_<secret>` → (id, secret).
fn split_api_key(token: &str) -> Option<(Uuid, &str)> {
    let rest = token.strip_prefix(API_KEY_PREFIX)?;
    let (id, secret) = rest.split_once('_')?;
    if id.len() != 32 || secret.is_empty() {
        return None;
    }
    Some((Uuid::try_parse(id).ok()?, secret))
}

/// A key as the API shows it: never its secret or digest.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ApiKeyView {
    pub id: Uuid,
    pub name: String,
    pub reach: AdminReach,
    pub access: AdminAccess,
    pub created_by: Uuid,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub last_used_at: Option<DateTime<Utc>>,
    /// Neither revoked nor expired.
    pub active: bool,
}

impl From<&ApiKey> for ApiKeyView {
    fn from(k: &ApiKey) -> Self {
        ApiKeyView {
            id: k.id,
            name: k.name.clone(),
            reach: k.reach.clone(),
            access: k.access,
            created_by: k.created_by,
            created_at: k.created_at,
            expires_at: k.expires_at,
            revoked_at: k.revoked_at,
            last_used_at: k.last_used_at,
            active: k.is_live(Utc::now()),
        }
    }
}

/// Whether a use at `now` should be recorded (`last_used_at` is coarse).
pub fn due_for_touch(key: &ApiKey, now: DateTime<Utc>) -> bool {
    key.last_used_at
        .is_none_or(|at| (now - at).num_seconds() >= ApiKey::TOUCH_INTERVAL_SECS)
}

/// `POST /v1/admin/api-keys`: a new key's name, reach, access and lifetime.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewApiKey {
    pub name: String,
    /// Default: the maker's reach.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reach: Option<AdminReach>,
    /// Default: `read_only`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access: Option<AdminAccess>,
    /// Days until it expires (1–3650); without it the key lives until revoked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_in_days: Option<u32>,
}

/// The longest lifetime a key may be given.
pub const MAX_KEY_DAYS: u32 = 3650;

/// Makes a key for `maker`: its reach and access may not exceed the maker's (422
/// otherwise, nothing made). Answers the record to store and the token, shown once.
pub fn new_api_key(
    maker: &Principal,
    input: NewApiKey,
    digest_key: &DigestKey,
    snapshot: &Snapshot,
    now: DateTime<Utc>,
) -> Result<(ApiKey, String), ApiError> {
    let reach = input.reach.unwrap_or_else(|| maker.reach.clone());
    let access = input.access.unwrap_or(AdminAccess::ReadOnly);
    maker.may_grant(&reach, access, snapshot)?;
    let expires_at = match input.expires_in_days {
        Some(days) if (1..=MAX_KEY_DAYS).contains(&days) => Some(now + chrono::Duration::days(i64::from(days))),
        Some(_) => return Err(ApiError::field("expires_in_days", format!("must be 1-{MAX_KEY_DAYS}"))),
        None => None,
    };
    let id = Uuid::new_v4();
    let secret = random_token(32);
    let token = format!("{API_KEY_PREFIX}{}_{secret}", id.simple());
    let key = ApiKey {
        id,
        name: input.name,
        secret_digest: keyed_digest(digest_key, &secret),
        reach,
        access,
        created_by: maker.actor.admin_id,
        created_at: now,
        expires_at,
        revoked_at: None,
        last_used_at: None,
    };
    tenantry_controlplane::validate::validate_api_key(&key).map_err(ApiError::validation)?;
    Ok((key, token))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn principal(reach: AdminReach, access: AdminAccess) -> Principal {
        Principal {
            actor: Actor {
                admin_id: Uuid::new_v4(),
                api_key: false,
                request_id: None,
            },
            reach,
            access,
        }
    }

    fn tenants(slugs: &[&str]) -> AdminReach {
        AdminReach::Tenants(slugs.iter().map(|s| s.to_string()).collect())
    }

    #[test]
    fn reach_and_access_bound_every_request() {
        let read = |target| Needs { target, write: false };
        let write = |target| Needs { target, write: true };
        let global = principal(AdminReach::Global, AdminAccess::ReadWrite);
        for needs in [
            write(Target::Installation),
            write(Target::Tenant("a")),
            read(Target::WithinReach),
        ] {
            assert!(global.permits(needs).is_ok(), "{needs:?}");
        }
        let viewer = principal(AdminReach::Global, AdminAccess::ReadOnly);
        assert!(viewer.permits(read(Target::Installation)).is_ok());
        assert!(viewer.permits(write(Target::Tenant("a"))).is_err());
        assert!(viewer.permits(write(Target::WithinReach)).is_err());
        let tenant_admin = principal(tenants(&["a"]), AdminAccess::ReadWrite);
        assert!(tenant_admin.permits(write(Target::Tenant("a"))).is_ok());
        assert!(tenant_admin.permits(read(Target::Tenant("b"))).is_err());
        assert!(tenant_admin.permits(read(Target::Installation)).is_err());
        assert!(tenant_admin.permits(write(Target::WithinReach)).is_ok());
    }

    #[test]
    fn a_key_never_reaches_further_than_its_maker() {
        let mut snapshot = Snapshot::default();
        for slug in ["a", "b"] {
            let mut entry = tenantry_controlplane::TenantEntry::default();
            entry.tenant.slug = slug.into();
            snapshot.tenants.insert(slug.into(), std::sync::Arc::new(entry));
        }
        let key = DigestKey::new(&[7u8; 32]);
        let now = Utc::now();
        let input = |reach: Option<AdminReach>, access: Option<AdminAccess>| NewApiKey {
            name: "ci".into(),
            reach,
            access,
            expires_in_days: Some(30),
        };
        let maker = principal(tenants(&["a"]), AdminAccess::ReadWrite);
        let (made, token) = new_api_key(&maker, input(None, None), &key, &snapshot, now).unwrap();
        assert_eq!(
            (made.reach.clone(), made.access),
            (tenants(&["a"]), AdminAccess::ReadOnly)
        );
        assert!(token.starts_with(API_KEY_PREFIX));
        for (reach, access) in [(Some(AdminReach::Global), None), (Some(tenants(&["a", "b"])), None)] {
            let refused = new_api_key(&maker, input(reach, access), &key, &snapshot, now).unwrap_err();
            assert_eq!(refused.code, ErrorCode::Forbidden);
        }
        let viewer = principal(AdminReach::Global, AdminAccess::ReadOnly);
        let refused = new_api_key(&viewer, input(None, Some(AdminAccess::ReadWrite)), &key, &snapshot, now);
        assert_eq!(refused.unwrap_err().code, ErrorCode::Forbidden);
        let global = principal(AdminReach::Global, AdminAccess::ReadWrite);
        let unknown = new_api_key(&global, input(Some(tenants(&["zz"])), None), &key, &snapshot, now);
        assert_eq!(unknown.unwrap_err().code, ErrorCode::ValidationFailed);
        let mut too_long = input(None, None);
        too_long.expires_in_days = Some(MAX_KEY_DAYS + 1);
        assert!(new_api_key(&global, too_long, &key, &snapshot, now).is_err());
    }

    #[test]
    fn a_key_authenticates_until_it_expires_or_is_revoked() {
        let digest_key = std::sync::Arc::new(DigestKey::new(&[7u8; 32]));
        let global = principal(AdminReach::Global, AdminAccess::ReadWrite);
        let now = Utc::now();
        let input = NewApiKey {
            name: "ci".into(),
            reach: None,
            access: Some(AdminAccess::ReadWrite),
            expires_in_days: Some(1),
        };
        let mut snapshot = Snapshot::default();
        let (key, token) = new_api_key(&global, input, &digest_key, &snapshot, now).unwrap();
        snapshot.api_keys.insert(key.id, key.clone());
        let auth = |snapshot: &Snapshot, token: &str, at| {
            let verifiers = Verifiers {
                digest_key: || Ok(digest_key.clone()),
                system_issuer: || Err(ApiError::internal()),
            };
            authenticate(snapshot, token, at, verifiers).unwrap().map(|(p, _)| p)
        };
        let principal = auth(&snapshot, &token, now).unwrap();
        assert_eq!(principal.actor.admin_id, key.id);
        assert!(principal.actor.api_key);
        let other = if token.ends_with('x') { 'y' } else { 'x' };
        let tampered = format!("{}{other}", &token[..token.len() - 1]);
        assert_eq!(auth(&snapshot, &tampered, now), Err(Unauthenticated::Unknown));
        assert_eq!(
            auth(&snapshot, &token, now + chrono::Duration::days(2)),
            Err(Unauthenticated::Expired(key.id))
        );
        snapshot.api_keys.get_mut(&key.id).unwrap().revoked_at = Some(now);
        assert_eq!(auth(&snapshot, &token, now), Err(Unauthenticated::Revoked(key.id)));
        for junk in [
            "tnk_",
            "tnk_zz_secret",
            "tnk_00000000000000000000000000000000_",
            "other",
        ] {
            assert_eq!(auth(&snapshot, junk, now), Err(Unauthenticated::Unknown), "{junk}");
        }
    }
}
