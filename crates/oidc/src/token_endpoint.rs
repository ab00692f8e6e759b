//! The token endpoint (RFC 6749 3.2: the `authorization_code`, `refresh_token` and
//! `client_credentials` grants, RFC 7636 PKCE, RFC 8707 resources), introspection
//! (RFC 7662) and revocation (RFC 7009). Every lookup stays inside the request's tenant: a
//! client, code or token of another tenant is simply unknown here.

use base64::Engine;
use chrono::Utc;
use serde_json::{Value, json};
use tenantry_controlplane::model::{Client, ClientType, GrantType};
use tenantry_dataplane::TokenRepository;
use tenantry_errors::{ApiError, OAuthError};
use tenantry_keys::claims::AccessTokenClaims;
use tenantry_keys::{Expect, TokenType};
use tenantry_tenancy::keystore::KeyStore;
use tenantry_tenancy::{Capability, TenantContext};

use crate::client_auth::authenticate_client;
use crate::grants::{RefreshGrant, UserTokens, grant_user, issue_refresh_token, refresh_body, user_token_body};
use crate::params::Params;
use crate::tokens::{self, AccessGrant};

/// Reads the form body of a token, introspection or revocation request. An empty body
/// needs no content type: it is an empty form, whose missing parameters are named.
/// `content_type` is the request's `Content-Type` header, if any.
pub fn form_body(content_type: Option<&[u8]>, body: &[u8]) -> Result<Params, OAuthError> {
    let is_form = body.is_empty()
        || content_type
            .and_then(|v| std::str::from_utf8(v).ok())
            .is_some_and(|v| v.trim_start().starts_with("application/x-www-form-urlencoded"));
    if !is_form {
        return Err(OAuthError::new(
            "invalid_request",
            "send the parameters as application/x-www-form-urlencoded",
        ));
    }
    Params::parse(body, &["resource"]).map_err(|e| OAuthError::new("invalid_request", e.message()))
}

/// A required parameter, or `invalid_request`.
pub(crate) fn require<'a>(form: &'a Params, name: &str) -> Result<&'a str, OAuthError> {
    form.get(name)
        .ok_or_else(|| OAuthError::new("invalid_request", format!("`{name}` is required")))
}

/// The token endpoint (RFC 6749 3.2): authenticates the client, lets `admit` count the
/// request against the client's quota, then runs the grant it asks for. Answers the JSON
/// body of a successful response.
pub async fn token(
    keystore: &KeyStore,
    ctx: &TenantContext,
    authorization: Option<&[u8]>,
    form: &Params,
    admit: impl AsyncFnOnce(&Client) -> Result<(), OAuthError>,
) -> Result<Value, OAuthError> {
    let grant_type = require(form, "grant_type")?;
    let client = authenticate_client(keystore, ctx, authorization, form).await?;
    admit(client).await?;
    match grant_type {
        "client_credentials" => client_credentials(ctx, client, form),
        "authorization_code" => authorization_code(ctx, client, form).await,
        "refresh_token" => refresh_token(ctx, client, form).await,
        other => Err(OAuthError::new(
            "unsupported_grant_type",
            format!("unknown grant type `{}`", tenantry_errors::printable(other)),
        )),
    }
}

/// The scopes a request may have: each must be allowed for the client (RFC 6749 3.3).
fn granted_scopes<'a>(
    client: &'a Client,
    requested: Option<&'a str>,
    default: &[&'a str],
) -> Result<Vec<&'a str>, OAuthError> {
    let Some(requested) = requested else {
        return Ok(default.to_vec());
    };
    let mut scopes = Vec::new();
    for scope in requested.split(' ').filter(|s| !s.is_empty()) {
        if !client.scopes.iter().any(|s| s == scope) {
            return Err(OAuthError::new(
                "invalid_scope",
                format!(
                    "scope `{}` is not allowed for this client",
                    tenantry_errors::printable(scope)
                ),
            ));
        }
        if !scopes.contains(&scope) {
            scopes.push(scope);
        }
    }
    Ok(scopes)
}

/// Audiences from RFC 8707 `resource` parameters (absolute URIs), else the client itself.
fn audiences(client: &Client, form: &Params) -> Result<Vec<String>, OAuthError> {
    let mut audiences = Vec::new();
    for resource in form.all("resource") {
        match url::Url::parse(resource) {
            Ok(url) if url.fragment().is_none() => audiences.push(resource.to_owned()),
            _ => {
                return Err(OAuthError::new(
                    "invalid_target",
                    "`resource` must be an absolute URI without a fragment",
                ));
            }
        }
    }
    if audiences.is_empty() {
        audiences.push(client.client_id.clone());
    }
    Ok(audiences)
}

fn client_credentials(ctx: &TenantContext, client: &Client, form: &Params) -> Result<Value, OAuthError> {
    if client.client_type != ClientType::Confidential || !client.grant_types.contains(&GrantType::ClientCredentials) {
        return Err(OAuthError::new(
            "unauthorized_client",
            "this client may not use the client_credentials grant",
        ));
    }
    // No user is involved: user-facing scopes and refresh tokens do not apply.
    let default: Vec<&str> = client
        .scopes
        .iter()
        .map(String::as_str)
        .filter(|s| !needs_a_user(s))
        .collect();
    let scopes = granted_scopes(client, form.get("scope"), &default)?;
    if scopes.iter().any(|s| needs_a_user(s)) {
        return Err(OAuthError::new(
            "invalid_scope",
            "openid, offline_access and roles need a user; client_credentials has none",
        ));
    }
    let scope = scopes.join(" ");
    let grant = AccessGrant {
        client,
        subject: &client.client_id,
        scope: &scope,
        audience: audiences(client, form)?,
        auth_time: None,
        acr: None,
        amr: None,
        sid: None,
        jti: None,
        roles: None,
    };
    let issued = tokens::issue_access_token(ctx, &grant, Utc::now())?;
    let mut body = json!({
        "access_token": issued.token,
        "token_type": "Bearer",
        "expires_in": issued.expires_in,
    });
    if !scope.is_empty() {
        body["scope"] = json!(scope);
    }
    Ok(body)
}

fn invalid_grant(description: &str) -> OAuthError {
    OAuthError::new("invalid_grant", description.to_owned())
}

/// `code_verifier` against the stored S256 challenge (RFC 7636 4.6).
pub fn pkce_matches(verifier: &str, challenge: &str) -> bool {
    let well_formed = (43..=128).contains(&verifier.len())
        && verifier
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'));
    well_formed && tenantry_crypto::constant_time_eq(pkce_challenge(verifier).as_bytes(), challenge.as_bytes())
}

/// The S256 `code_challenge` of `verifier` (RFC 7636 4.2).
pub fn pkce_challenge(verifier: &str) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, verifier.as_bytes());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest)
}

/// `authorization_code` (RFC 6749 4.1.3, RFC 7636): single use — a second use fails and
/// revokes the refresh tokens issued from the code and denies the access token of the
/// first redemption (its `jti` is `tokens::code_access_jti` of the code).
async fn authorization_code(ctx: &TenantContext, client: &Client, form: &Params) -> Result<Value, OAuthError> {
    if !client.grant_types.contains(&GrantType::AuthorizationCode) {
        return Err(OAuthError::new(
            "unauthorized_client",
            "this client may not use authorization codes",
        ));
    }
    let code = require(form, "code")?;
    let code_hash = tenantry_crypto::hash_token(code);
    let db = ctx.db().await?;
    let now = Utc::now();
    let record = match db.redeem_code(&code_hash, now).await.map_err(ApiError::from)? {
        tenantry_dataplane::model::CodeRedemption::Redeemed(record) => record,
        tenantry_dataplane::model::CodeRedemption::Replayed(record) => {
            if record.client_id == client.client_id {
                let revoked = db
                    .revoke_refresh_by_code(&code_hash, now)
                    .await
                    .map_err(ApiError::from)?;
                // The first redemption's access token goes too (RFC 9700 4.5). It was
                // issued before now, so it expires before now plus its lifetime.
                let jti = tokens::code_access_jti(&code_hash);
                let expires_at = now + chrono::Duration::seconds(tokens::access_token_secs(&ctx.entry, client) as i64);
                db.deny_access_token(&jti, expires_at).await.map_err(ApiError::from)?;
                ctx.revocations()
                    .remember(ctx.entry.tenant.id, &jti, true, expires_at.timestamp());
                tracing::warn!(client_id = %client.client_id, revoked, "authorization code replayed; its tokens are revoked");
            }
            return Err(invalid_grant("the code has already been used"));
        }
        _ => return Err(invalid_grant("the code is invalid or expired")),
    };
    if record.client_id != client.client_id {
        return Err(invalid_grant("the code was issued to another client"));
    }
    if form.get("redirect_uri") != Some(record.redirect_uri.as_str()) {
        return Err(invalid_grant("redirect_uri does not match the authorization request"));
    }
    match (&record.code_challenge, form.get("code_verifier")) {
        (Some(challenge), Some(verifier)) if pkce_matches(verifier, challenge) => {}
        (Some(_), _) => return Err(invalid_grant("code_verifier does not match the code challenge")),
        (None, Some(_)) => return Err(invalid_grant("no code challenge was sent for this code")),
        (None, None) if client.client_type == ClientType::Public => {
            return Err(invalid_grant("PKCE is required"));
        }
        (None, None) => {}
    }
    let refresh = RefreshGrant {
        client,
        user_id: record.user_id,
        scope: &record.scope,
        session_id_hash: record.session_id_hash.as_deref(),
        origin_code_hash: Some(&code_hash),
        auth_time: record.auth_time,
        amr: &record.amr,
    };
    let refresh_token = issue_refresh_token(ctx, &db, refresh).await?;
    let user = grant_user(ctx, record.user_id).await?;
    user_token_body(
        ctx,
        UserTokens {
            client,
            user: &user,
            scope: &record.scope,
            session_id_hash: record.session_id_hash.as_deref(),
            nonce: record.nonce.as_deref(),
            auth_time: record.auth_time,
            acr: record.acr.as_deref(),
            amr: &record.amr,
            refresh_token,
            access_jti: Some(tokens::code_access_jti(&code_hash)),
        },
    )
    .await
}

/// `refresh_token` (RFC 6749 6): rotation on every use; a rotated token presented again
/// revokes its whole family; the scope may be narrowed, never widened.
async fn refresh_token(ctx: &TenantContext, client: &Client, form: &Params) -> Result<Value, OAuthError> {
    let presented = require(form, "refresh_token")?;
    refresh_body(ctx, client, presented, form.get("scope")).await
}

/// Introspection (RFC 7662): any authenticated confidential client of the tenant may ask
/// (`admit` counts it against the client's quota); only this tenant's live tokens are
/// active, everything else is `{"active": false}`.
pub async fn introspect(
    keystore: &KeyStore,
    ctx: &TenantContext,
    authorization: Option<&[u8]>,
    form: &Params,
    admit: impl AsyncFnOnce(&Client) -> Result<(), OAuthError>,
) -> Result<Value, OAuthError> {
    let client = authenticate_client(keystore, ctx, authorization, form).await?;
    admit(client).await?;
    if client.client_type != ClientType::Confidential {
        return Err(OAuthError::new(
            "invalid_client",
            "introspection needs an authenticated client",
        ));
    }
    let token = require(form, "token")?;
    let inactive = || json!({"active": false});
    if token.matches('.').count() == 2 {
        return Ok(match tokens::accept_access_token(ctx, token).await {
            Ok(good) => access_introspection(&good.claims),
            Err(tokens::BearerError::InvalidToken(_)) => inactive(),
            Err(tokens::BearerError::Unavailable(e)) => return Err(e.into()),
        });
    }
    if ctx.require(Capability::TenantDb).is_err() {
        return Ok(inactive());
    }
    let db = ctx.db().await?;
    let stored = db
        .refresh_token(&tenantry_crypto::hash_token(token))
        .await
        .map_err(ApiError::from)?;
    let now = Utc::now();
    Ok(match stored {
        Some(t) if t.revoked_at.is_none() && t.rotated_at.is_none() && t.expires_at > now => json!({
            "active": true,
            "token_type": "refresh_token",
            "client_id": t.client_id,
            "sub": t.user_id.to_string(),
            "scope": t.scope,
            "iat": t.issued_at.timestamp(),
            "exp": t.expires_at.timestamp(),
            "iss": ctx.issuer,
            "tid": ctx.slug(),
        }),
        _ => inactive(),
    })
}

fn access_introspection(claims: &AccessTokenClaims) -> Value {
    let mut body = serde_json::to_value(claims).unwrap_or_else(|_| json!({}));
    body["active"] = json!(true);
    body["token_type"] = json!("Bearer");
    body
}

/// Revocation (RFC 7009): a refresh token revokes its whole family; an access token's
/// `jti` is denied until it expires. Unknown or invalid tokens succeed (2.2); a token
/// issued to another client is refused. `admit` counts it against the client's quota.
pub async fn revoke(
    keystore: &KeyStore,
    ctx: &TenantContext,
    authorization: Option<&[u8]>,
    form: &Params,
    admit: impl AsyncFnOnce(&Client) -> Result<(), OAuthError>,
) -> Result<(), OAuthError> {
    let client = authenticate_client(keystore, ctx, authorization, form).await?;
    admit(client).await?;
    let token = require(form, "token")?;
    if token.matches('.').count() == 2 {
        let keys = ctx.keys()?;
        let mut expect = Expect::new(&ctx.issuer, TokenType::Access);
        // Revoking an expired token is a no-op, not an error.
        expect.allow_expired = true;
        let Ok(verified) = keys.verify::<AccessTokenClaims>(token, &expect) else {
            return Ok(());
        };
        let claims = verified.claims;
        if claims.client_id != client.client_id {
            return Err(OAuthError::new(
                "unauthorized_client",
                "the token was issued to another client",
            ));
        }
        let expires_at = chrono::DateTime::from_timestamp(claims.exp, 0).unwrap_or_else(Utc::now);
        if expires_at > Utc::now() {
            ctx.db()
                .await?
                .deny_access_token(&claims.jti, expires_at)
                .await
                .map_err(ApiError::from)?;
            // Honoured by this process at once, without waiting for a re-check.
            ctx.revocations()
                .remember(ctx.entry.tenant.id, &claims.jti, true, claims.exp);
        }
        return Ok(());
    }
    if ctx.require(Capability::TenantDb).is_err() {
        return Ok(());
    }
    let db = ctx.db().await?;
    if let Some(stored) = db
        .refresh_token(&tenantry_crypto::hash_token(token))
        .await
        .map_err(ApiError::from)?
    {
        if stored.client_id != client.client_id {
            return Err(OAuthError::new(
                "unauthorized_client",
                "the token was issued to another client",
            ));
        }
        db.revoke_family(stored.family_id, "revoked_by_client", Utc::now())
            .await
            .map_err(ApiError::from)?;
    }
    Ok(())
}

/// Scopes that only mean something for a user's token.
fn needs_a_user(scope: &str) -> bool {
    matches!(scope, "openid" | "offline_access" | tokens::ROLES_SCOPE)
}
