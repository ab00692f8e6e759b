//! The grants that end in a user's tokens, shared by the token endpoint
//! (`routes::oauth`) and the headless API (`routes::auth_api`): the token response body
//! for a user (access token, ID token when `openid` was granted, refresh token), the
//! refresh-token rotation, and the refresh lifetime. Errors are RFC 6749 errors
//! ([`OAuthError`]); the headless API answers them as problems.

use chrono::Utc;
use serde_json::{Value, json};
use tenantry_controlplane::model::{Client, GrantType};
use tenantry_dataplane::TokenRepository;
use tenantry_dataplane::model::User;

use crate::tokens::{self, AccessGrant};
use tenantry_errors::ApiError;
use tenantry_errors::OAuthError;
use tenantry_tenancy::TenantContext;

/// Tokens for a user: an access token, an ID token when `openid` was granted, and a
/// refresh token when the client may refresh.
pub struct UserTokens<'a> {
    pub client: &'a Client,
    /// The (active) user, already loaded by the grant.
    pub user: &'a User,
    pub scope: &'a str,
    pub session_id_hash: Option<&'a str>,
    pub nonce: Option<&'a str>,
    pub auth_time: chrono::DateTime<Utc>,
    pub acr: Option<&'a str>,
    pub amr: &'a [String],
    pub refresh_token: Option<String>,
    /// A fixed `jti` for the access token (`tokens::code_access_jti`); random otherwise.
    pub access_jti: Option<String>,
}

/// The grant's user, if it still exists and is active.
pub async fn grant_user(ctx: &TenantContext, id: uuid::Uuid) -> Result<User, OAuthError> {
    let db = ctx.db().await?;
    tenantry_tenancy::users::active_user(ctx, &db, id)
        .await?
        .ok_or_else(user_gone)
}

/// The refusal of a grant whose user was deleted or disabled since it was issued.
fn user_gone() -> OAuthError {
    OAuthError::new("invalid_grant", "the user no longer exists or is disabled")
}

/// The token response body (RFC 6749 5.1) for a user, shared with the headless API.
pub async fn user_token_body(ctx: &TenantContext, t: UserTokens<'_>) -> Result<Value, OAuthError> {
    let user = t.user;
    let subject = user.id.to_string();
    let sid = t.session_id_hash.map(tokens::sid);
    let now = Utc::now();
    let scopes: Vec<&str> = t.scope.split(' ').filter(|s| !s.is_empty()).collect();
    let roles = tokens::RoleClaims::when_granted(ctx, &ctx.db().await?, user.id, &scopes).await?;
    let grant = AccessGrant {
        client: t.client,
        subject: &subject,
        scope: t.scope,
        audience: vec![t.client.client_id.clone()],
        auth_time: Some(t.auth_time),
        acr: t.acr,
        amr: Some(t.amr.to_vec()),
        sid: sid.as_deref(),
        jti: t.access_jti.as_deref(),
        roles: roles.as_ref(),
    };
    let access = tokens::issue_access_token(ctx, &grant, now)?;
    let mut body = json!({
        "access_token": access.token,
        "token_type": "Bearer",
        "expires_in": access.expires_in,
        "scope": t.scope,
    });
    if scopes.contains(&"openid") {
        let id = tokens::IdGrant {
            client: t.client,
            user,
            scopes: &scopes,
            nonce: t.nonce,
            auth_time: Some(t.auth_time),
            acr: t.acr,
            amr: Some(t.amr.to_vec()),
            sid: sid.as_deref(),
            access_token: Some(&access.token),
            code: None,
            roles: roles.as_ref(),
        };
        body["id_token"] = json!(tokens::issue_id_token(ctx, &id, now)?);
    }
    if let Some(refresh) = t.refresh_token {
        body["refresh_token"] = json!(refresh);
    }
    Ok(body)
}

/// How long a refresh token of `client` lives (client override, else the tenant's).
pub fn refresh_lifetime(ctx: &TenantContext, client: &Client) -> chrono::Duration {
    let secs = client
        .refresh_token_secs
        .unwrap_or(ctx.entry.tenant.settings.token_lifetimes.refresh_token_secs);
    chrono::Duration::seconds(secs as i64)
}

/// What a new refresh token is bound to: the login it continues.
pub struct RefreshGrant<'a> {
    pub client: &'a Client,
    pub user_id: uuid::Uuid,
    pub scope: &'a str,
    /// The login session: ending it ends the token.
    pub session_id_hash: Option<&'a str>,
    /// The authorization code it was issued for: a replay of the code revokes it.
    pub origin_code_hash: Option<&'a str>,
    pub auth_time: chrono::DateTime<Utc>,
    pub amr: &'a [String],
}

/// A new refresh token for a login (a code redemption or a headless login), stored as its
/// hash; `None` when the client may not refresh. Rotation is [`refresh_body`]'s.
pub async fn issue_refresh_token(
    ctx: &TenantContext,
    db: &tenantry_dataplane::TenantDb,
    grant: RefreshGrant<'_>,
) -> Result<Option<String>, ApiError> {
    if !grant.client.grant_types.contains(&GrantType::RefreshToken) {
        return Ok(None);
    }
    let token = tenantry_crypto::random_token(32);
    let now = Utc::now();
    let stored = tenantry_dataplane::NewRefreshToken {
        token_hash: tenantry_crypto::hash_token(&token),
        client_id: grant.client.client_id.clone(),
        user_id: grant.user_id,
        session_id_hash: grant.session_id_hash.map(str::to_owned),
        origin_code_hash: grant.origin_code_hash.map(str::to_owned),
        scope: grant.scope.to_owned(),
        auth_time: Some(grant.auth_time),
        amr: grant.amr.to_vec(),
        expires_at: now + refresh_lifetime(ctx, grant.client),
    };
    db.issue_refresh(stored, now).await?;
    Ok(Some(token))
}

/// Rotates a refresh token and answers the new tokens' response body; shared with the
/// headless API.
pub async fn refresh_body(
    ctx: &TenantContext,
    client: &Client,
    presented: &str,
    scope: Option<&str>,
) -> Result<Value, OAuthError> {
    if !client.grant_types.contains(&GrantType::RefreshToken) {
        return Err(OAuthError::new(
            "unauthorized_client",
            "this client may not use refresh tokens",
        ));
    }
    let old_hash = tenantry_crypto::hash_token(presented);
    let db = ctx.db().await?;
    let now = Utc::now();
    let token = tenantry_crypto::random_token(32);
    let request = tenantry_dataplane::RotationRequest {
        client_id: client.client_id.clone(),
        new_hash: tenantry_crypto::hash_token(&token),
        scope: scope.map(|s| s.split(' ').filter(|s| !s.is_empty()).map(str::to_owned).collect()),
        expires_at: now + refresh_lifetime(ctx, client),
        user_fields: ctx.custom_fields(),
    };
    use tenantry_dataplane::model::Rotation;
    let (old, new, user) = match db
        .rotate_refresh(&old_hash, request, now)
        .await
        .map_err(ApiError::from)?
    {
        Rotation::Rotated { old, new, user } => (old, new, user),
        Rotation::ReuseDetected { revoked, family_id } => {
            tracing::warn!(client_id = %client.client_id, revoked, "refresh token reuse detected; family revoked");
            let replay = tenantry_accounts::events::Event {
                action: "refresh_token_reused",
                outcome: Some(tenantry_dataplane::Outcome::Failure),
                user: None,
                actor: Some(format!("client:{}", client.client_id)),
                target: Some(format!("refresh_family:{family_id}")),
                details: serde_json::json!({ "client_id": client.client_id, "family_revoked": revoked }),
            };
            tenantry_accounts::events::record(&db, replay).await;
            return Err(OAuthError::new(
                "invalid_grant",
                "the refresh token has already been used",
            ));
        }
        Rotation::WrongClient => {
            return Err(OAuthError::new(
                "invalid_grant",
                "the refresh token was issued to another client",
            ));
        }
        Rotation::ScopeWidened => {
            return Err(OAuthError::new(
                "invalid_scope",
                "the scope cannot be widened on refresh",
            ));
        }
        Rotation::Revoked | Rotation::Expired | Rotation::NotFound => {
            return Err(OAuthError::new(
                "invalid_grant",
                "the refresh token is invalid or expired",
            ));
        }
    };
    // The login the family started from: its time and methods stay the same.
    let auth_time = new.auth_time.unwrap_or(old.issued_at);
    let amr = if new.amr.is_empty() {
        vec!["pwd".to_owned()]
    } else {
        new.amr.clone()
    };
    // The user was read with the token, in the same statement; a disabled one gets none.
    if !tenantry_tenancy::users::is_active(&user) {
        return Err(user_gone());
    }
    user_token_body(
        ctx,
        UserTokens {
            client,
            user: &user,
            scope: &new.scope,
            session_id_hash: new.session_id_hash.as_deref(),
            nonce: None,
            auth_time,
            acr: None,
            amr: &amr,
            refresh_token: Some(token),
            access_jti: None,
        },
    )
    .await
}
