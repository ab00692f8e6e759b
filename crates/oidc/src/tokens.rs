//! Token issuance and verification for a tenant: JWT access tokens (RFC 9068), ID tokens
//! (OIDC Core) with the claims their scopes release, and the one access-token check that
//! userinfo, introspection and the REST API share ([`accept_access_token`]).
//!
//! Algorithms come from the tenant's signing settings, overridden per client; lifetimes
//! from the tenant's token lifetimes, overridden per client. Every token carries `tid`
//! (the tenant slug) and is signed by the tenant's own keys, so its issuer and its keys
//! both tie it to one tenant.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};
use tenantry_accounts::login::IDP_METHOD_PREFIX;
use tenantry_controlplane::TenantEntry;
use tenantry_controlplane::model::{Client, SigningAlg};
use tenantry_dataplane::model::{Session, User};
use tenantry_dataplane::{SessionRepository, TokenRepository};
use tenantry_keys::claims::{AccessTokenClaims, Audience, IdTokenClaims, half_hash};
use tenantry_keys::{Expect, TokenType, VerifyError};

use tenantry_errors::ApiError;
use tenantry_tenancy::{Capability, TenantContext};

/// Scopes every tenant has (discovery lists them; a tenant cannot redefine them).
pub const BUILTIN_SCOPES: [&str; 7] = [
    "openid",
    "profile",
    "email",
    "phone",
    "address",
    "offline_access",
    ROLES_SCOPE,
];

/// The scope that releases the user's roles (`roles` claim, ID and access tokens and
/// userinfo) and their permissions (`permissions` claim, access tokens).
pub const ROLES_SCOPE: &str = "roles";

/// A user's roles that still exist in the tenant, and the permissions they carry (each
/// sorted, without repeats).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RoleClaims {
    pub roles: Vec<String>,
    pub permissions: Vec<String>,
}

impl RoleClaims {
    /// From the role names assigned to a user: roles no longer defined are left out.
    pub fn of(entry: &TenantEntry, assigned: &[String]) -> Self {
        let mut roles = std::collections::BTreeSet::new();
        let mut permissions = std::collections::BTreeSet::new();
        for role in assigned.iter().filter_map(|name| entry.roles.get(name)) {
            roles.insert(role.name.clone());
            permissions.extend(role.permissions.iter().cloned());
        }
        Self {
            roles: roles.into_iter().collect(),
            permissions: permissions.into_iter().collect(),
        }
    }

    /// The user's role claims when `scopes` grant [`ROLES_SCOPE`] (one query), else `None`.
    pub async fn when_granted(
        ctx: &TenantContext,
        db: &tenantry_dataplane::TenantDb,
        user: uuid::Uuid,
        scopes: &[&str],
    ) -> Result<Option<Self>, ApiError> {
        if !scopes.contains(&ROLES_SCOPE) {
            return Ok(None);
        }
        use tenantry_dataplane::RoleRepository;
        let assigned = db.roles_of(user).await?;
        Ok(Some(Self::of(&ctx.entry, &assigned)))
    }
}
/// `typ` of JWT access tokens (RFC 9068 section 2.1).
pub const ACCESS_TOKEN_TYP: &str = "at+jwt";
/// `typ` of ID tokens.
pub const ID_TOKEN_TYP: &str = "JWT";

/// The algorithm that signs `client`'s access tokens.
pub fn access_token_alg(entry: &TenantEntry, client: &Client) -> SigningAlg {
    client
        .access_token_signed_response_alg
        .unwrap_or(entry.tenant.settings.signing.access_token_alg)
}

/// The algorithm that signs `client`'s ID tokens.
pub fn id_token_alg(entry: &TenantEntry, client: &Client) -> SigningAlg {
    client
        .id_token_signed_response_alg
        .unwrap_or(entry.tenant.settings.signing.id_token_alg)
}

/// Access-token lifetime for `client`, in seconds.
pub fn access_token_secs(entry: &TenantEntry, client: &Client) -> u64 {
    client
        .access_token_secs
        .unwrap_or(entry.tenant.settings.token_lifetimes.access_token_secs)
}

/// ID-token lifetime for `client`, in seconds.
pub fn id_token_secs(entry: &TenantEntry, client: &Client) -> u64 {
    client
        .id_token_secs
        .unwrap_or(entry.tenant.settings.token_lifetimes.id_token_secs)
}

/// The longest lifetime of any JWT the tenant signs (tenant setting or client override):
/// a replaced key must stay published at least this long.
pub fn longest_jwt_secs(entry: &TenantEntry) -> u64 {
    let lifetimes = &entry.tenant.settings.token_lifetimes;
    entry
        .clients
        .values()
        .flat_map(|c| [c.access_token_secs, c.id_token_secs])
        .flatten()
        .chain([lifetimes.access_token_secs, lifetimes.id_token_secs])
        .max()
        .unwrap_or(0)
}

/// The public session identifier (`sid` of ID, access and logout tokens), derived from
/// the session's stored hash — never the cookie value itself.
pub fn sid(session_id_hash: &str) -> String {
    tenantry_crypto::hash_token(session_id_hash)
        .trim_start_matches("sha256:")
        .chars()
        .take(32)
        .collect()
}

/// What an access token is issued for.
#[derive(Debug, Clone)]
pub struct AccessGrant<'a> {
    pub client: &'a Client,
    /// The user id, or the client id for `client_credentials`.
    pub subject: &'a str,
    /// Granted scopes, space-separated (may be empty).
    pub scope: &'a str,
    pub audience: Vec<String>,
    pub auth_time: Option<DateTime<Utc>>,
    pub acr: Option<&'a str>,
    pub amr: Option<Vec<String>>,
    /// The login session id, when there is a session.
    pub sid: Option<&'a str>,
    /// The `jti` to use instead of a random one ([`code_access_jti`]).
    pub jti: Option<&'a str>,
    /// The user's roles and permissions, when the `roles` scope was granted.
    pub roles: Option<&'a RoleClaims>,
}

/// A signed access token and the facts the token response and the deny-list need.
#[derive(Debug, Clone)]
pub struct IssuedAccessToken {
    pub token: String,
    pub jti: String,
    pub expires_in: u64,
    pub expires_at: DateTime<Utc>,
}

/// Signs an RFC 9068 access token for `grant`.
pub fn issue_access_token(
    ctx: &TenantContext,
    grant: &AccessGrant<'_>,
    now: DateTime<Utc>,
) -> Result<IssuedAccessToken, ApiError> {
    let keys = ctx.keys()?;
    let expires_in = access_token_secs(&ctx.entry, grant.client);
    let expires_at = now + chrono::Duration::seconds(expires_in as i64);
    let jti = grant
        .jti
        .map_or_else(|| tenantry_crypto::random_token(16), str::to_owned);
    let claims = AccessTokenClaims {
        iss: ctx.issuer.clone(),
        sub: grant.subject.to_owned(),
        aud: Audience::from_list(grant.audience.clone()),
        client_id: grant.client.client_id.clone(),
        scope: (!grant.scope.is_empty()).then(|| grant.scope.to_owned()),
        jti: jti.clone(),
        iat: now.timestamp(),
        exp: expires_at.timestamp(),
        auth_time: grant.auth_time.map(|t| t.timestamp()),
        acr: grant.acr.map(str::to_owned),
        amr: amr_claim(grant.amr.as_deref()),
        sid: grant.sid.map(str::to_owned),
        idp: idp_claim(grant.amr.as_deref()),
        tid: ctx.slug().to_owned(),
        roles: grant.roles.map(|r| r.roles.clone()),
        permissions: grant.roles.map(|r| r.permissions.clone()),
    };
    let token = keys
        .sign(access_token_alg(&ctx.entry, grant.client), ACCESS_TOKEN_TYP, &claims)
        .map_err(signing_failed)?;
    Ok(IssuedAccessToken {
        token,
        jti,
        expires_in,
        expires_at,
    })
}

/// The `jti` of the access token issued for an authorization code, derived from the
/// code's stored hash: a replayed code can deny it (RFC 9700 4.5) without the first
/// redemption having to record it. Only whoever holds the code (or the token) knows it.
pub fn code_access_jti(code_hash: &str) -> String {
    tenantry_crypto::hash_token(&format!("access-jti:{code_hash}"))
        .trim_start_matches("sha256:")
        .chars()
        .take(32)
        .collect()
}

/// The `amr` claim of a session's authentication methods: without the provider entry.
fn amr_claim(methods: Option<&[String]>) -> Option<Vec<String>> {
    methods.map(|m| {
        m.iter()
            .filter(|m| !m.starts_with(IDP_METHOD_PREFIX))
            .cloned()
            .collect()
    })
}

/// The `idp` claim: the provider entry of a session's authentication methods, if any.
fn idp_claim(methods: Option<&[String]>) -> Option<String> {
    methods?
        .iter()
        .find_map(|m| m.strip_prefix(IDP_METHOD_PREFIX))
        .map(str::to_owned)
}

/// What an ID token is issued for.
#[derive(Debug, Clone)]
pub struct IdGrant<'a> {
    pub client: &'a Client,
    pub user: &'a User,
    pub scopes: &'a [&'a str],
    pub nonce: Option<&'a str>,
    pub auth_time: Option<DateTime<Utc>>,
    pub acr: Option<&'a str>,
    pub amr: Option<Vec<String>>,
    pub sid: Option<&'a str>,
    /// The access token issued alongside, for `at_hash`.
    pub access_token: Option<&'a str>,
    /// The authorization code issued alongside (hybrid flows), for `c_hash`.
    pub code: Option<&'a str>,
    /// The user's roles, when the `roles` scope was granted.
    pub roles: Option<&'a RoleClaims>,
}

/// Signs an OIDC ID token for `grant`, with the user claims its scopes release.
pub fn issue_id_token(ctx: &TenantContext, grant: &IdGrant<'_>, now: DateTime<Utc>) -> Result<String, ApiError> {
    let keys = ctx.keys()?;
    let alg = id_token_alg(&ctx.entry, grant.client);
    let expires = now + chrono::Duration::seconds(id_token_secs(&ctx.entry, grant.client) as i64);
    let claims = IdTokenClaims {
        iss: ctx.issuer.clone(),
        sub: grant.user.id.to_string(),
        aud: Audience::One(grant.client.client_id.clone()),
        exp: expires.timestamp(),
        iat: now.timestamp(),
        auth_time: grant.auth_time.map(|t| t.timestamp()),
        nonce: grant.nonce.map(str::to_owned),
        acr: grant.acr.map(str::to_owned),
        amr: amr_claim(grant.amr.as_deref()),
        azp: Some(grant.client.client_id.clone()),
        sid: grant.sid.map(str::to_owned),
        at_hash: grant.access_token.map(|t| half_hash(alg, t)),
        c_hash: grant.code.map(|c| half_hash(alg, c)),
        idp: idp_claim(grant.amr.as_deref()),
        tid: ctx.slug().to_owned(),
        claims: {
            let mut claims = released_claims(&ctx.entry, grant.user, grant.scopes);
            if let Some(roles) = grant.roles {
                claims.insert("roles".into(), Value::from(roles.roles.clone()));
            }
            claims
        },
    };
    keys.sign(alg, ID_TOKEN_TYP, &claims).map_err(signing_failed)
}

fn signing_failed(e: tenantry_keys::KeyError) -> ApiError {
    tracing::error!(error = %e, "token signing failed");
    ApiError::new(
        tenantry_errors::ErrorCode::TenantKeysMissing,
        "the token could not be signed; see the server log",
    )
}

/// The standard claims of OIDC Core 5.1 that Tenantry stores, by the scope that releases
/// them (5.4).
fn standard_claims(user: &User) -> [(&'static str, &'static str, Option<Value>); 11] {
    let text = |v: &Option<String>| v.clone().map(Value::String);
    [
        ("profile", "name", text(&user.name)),
        ("profile", "given_name", text(&user.given_name)),
        ("profile", "family_name", text(&user.family_name)),
        ("profile", "preferred_username", text(&user.username)),
        ("profile", "picture", text(&user.picture)),
        ("profile", "locale", text(&user.locale)),
        ("profile", "updated_at", Some(Value::from(user.updated_at.timestamp()))),
        ("email", "email", Some(Value::String(user.email.clone()))),
        ("email", "email_verified", Some(Value::Bool(user.email_verified))),
        ("phone", "phone_number", text(&user.phone_number)),
        (
            "address",
            "address",
            user.metadata.get("address").filter(|a| a.is_object()).cloned(),
        ),
    ]
}

/// The user claims that `scopes` release: the standard scopes (profile, email, phone,
/// address), the tenant's own scopes by the claims they list, and custom user fields
/// mapped to a granted scope.
pub fn released_claims(entry: &TenantEntry, user: &User, scopes: &[&str]) -> Map<String, Value> {
    let granted = |scope: &str| scopes.contains(&scope);
    let mut available = Map::new();
    let mut released = Map::new();
    for (scope, claim, value) in standard_claims(user) {
        if let Some(value) = value {
            if granted(scope) {
                released.insert(claim.to_owned(), value.clone());
            }
            available.insert(claim.to_owned(), value);
        }
    }
    if user.phone_number.is_some() {
        let verified = Value::Bool(user.phone_number_verified);
        if granted("phone") {
            released.insert("phone_number_verified".into(), verified.clone());
        }
        available.insert("phone_number_verified".into(), verified);
    }
    for field in &entry.tenant.settings.custom_fields {
        let Some(value) = user.custom.get(&field.name).filter(|v| !v.is_null()) else {
            continue;
        };
        if field.scope.as_deref().is_some_and(granted) {
            released.insert(field.name.clone(), value.clone());
        }
        available.entry(field.name.clone()).or_insert_with(|| value.clone());
    }
    for scope in entry.scopes.values().filter(|s| granted(&s.name)) {
        for claim in &scope.claims {
            if let Some(value) = available.get(claim) {
                released.insert(claim.clone(), value.clone());
            }
        }
    }
    released
}

/// Why a bearer access token was not accepted (RFC 6750 section 3.1).
#[derive(Debug)]
pub enum BearerError {
    /// The token is missing, malformed, expired, revoked, of another tenant, ...
    InvalidToken(String),
    /// The tenant cannot check tokens now (no keys, database down).
    Unavailable(ApiError),
}

/// An access token that is still good, with what it stands for.
#[derive(Debug)]
pub struct GoodToken {
    pub claims: AccessTokenClaims,
    /// The (active) user of a user's token; `None` for a client's own
    /// (`client_credentials`) token.
    pub user: Option<User>,
    /// The login session the token was issued under (`sid`), not ended.
    pub session: Option<Session>,
}

/// The one rule deciding whether a bearer access token presented to this tenant is still
/// good, shared by userinfo, introspection and the `/v1/auth` API: the signature and
/// claims ([`verify_access_token`]), the deny-list, then for a user's token the user must
/// exist and be active, and the login session named by `sid` must not have been ended
/// (logout, logout-all, a password change or reset, a disabled account). A session that
/// merely reached its lifetime does not end the tokens of a refresh family that outlives
/// it; their own `exp` does.
pub async fn accept_access_token(ctx: &TenantContext, token: &str) -> Result<GoodToken, BearerError> {
    let claims = verify_access_token(ctx, token).await?;
    if claims.sub == claims.client_id && claims.sid.is_none() {
        // `client_credentials`: the client is the subject; there is no user or session.
        return Ok(GoodToken {
            claims,
            user: None,
            session: None,
        });
    }
    let invalid = |why: &str| BearerError::InvalidToken(why.to_owned());
    let user_id: uuid::Uuid = claims.sub.parse().map_err(|_| invalid("the token is not a user's"))?;
    let db = ctx.db().await.map_err(BearerError::Unavailable)?;
    let unavailable = |e: tenantry_dataplane::DbError| BearerError::Unavailable(e.into());
    let user = tenantry_tenancy::users::active_user(ctx, &db, user_id)
        .await
        .map_err(BearerError::Unavailable)?
        .ok_or_else(|| invalid("the user no longer exists or is disabled"))?;
    let session = match claims.sid.as_deref() {
        None => None,
        Some(sid_claim) => {
            // Every session of the user not revoked, expired ones included (see above).
            let not_ended = db
                .sessions_of(user_id, DateTime::<Utc>::UNIX_EPOCH)
                .await
                .map_err(unavailable)?;
            let session = not_ended
                .into_iter()
                .find(|s| sid(&s.id_hash) == sid_claim)
                .ok_or_else(|| invalid("the login session has ended"))?;
            Some(session)
        }
    };
    Ok(GoodToken {
        claims,
        user: Some(user),
        session,
    })
}

/// The signature part of [`accept_access_token`]: the tenant's issuer and keys,
/// `typ: at+jwt`, time claims, the tenant slug, and the revocation deny-list. Nothing
/// answers a caller on this alone.
async fn verify_access_token(ctx: &TenantContext, token: &str) -> Result<AccessTokenClaims, BearerError> {
    let keys = ctx.keys().map_err(BearerError::Unavailable)?;
    let verified = keys
        .verify::<AccessTokenClaims>(token, &Expect::new(&ctx.issuer, TokenType::Access))
        .map_err(|e: VerifyError| BearerError::InvalidToken(e.to_string()))?;
    let claims = verified.claims;
    if claims.tid != ctx.slug() {
        return Err(BearerError::InvalidToken("the token belongs to another tenant".into()));
    }
    // Revocations are recorded in the tenant database; a tenant without one cannot have
    // revoked a token.
    if ctx.require(Capability::TenantDb).is_ok() {
        let tenant = ctx.entry.tenant.id;
        let denied = match ctx.revocations().known(tenant, &claims.jti) {
            Some(denied) => denied,
            None => {
                let db = ctx.db().await.map_err(BearerError::Unavailable)?;
                let denied = db
                    .access_token_denied(&claims.jti)
                    .await
                    .map_err(|e| BearerError::Unavailable(e.into()))?;
                ctx.revocations().remember(tenant, &claims.jti, denied, claims.exp);
                denied
            }
        };
        if denied {
            return Err(BearerError::InvalidToken("the token has been revoked".into()));
        }
    }
    Ok(claims)
}
