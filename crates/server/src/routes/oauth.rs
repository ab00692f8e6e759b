//! OAuth 2.0 endpoints of a tenant issuer: token (RFC 6749), introspection (RFC 7662) and
//! revocation (RFC 7009), with client authentication (RFC 6749 2.3).
//!
//! Errors are RFC 6749 error JSON (`error`, `error_description`) with `no-store`; a failed
//! client authentication is 401 `invalid_client`, with a `Basic` challenge when the client
//! tried HTTP Basic. Every lookup stays inside the request's tenant: a client, code or
//! token of another tenant is simply unknown here.

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::Utc;
use serde_json::{Value, json};
use tenantry_controlplane::model::{Client, ClientType, GrantType, TokenEndpointAuthMethod};
use tenantry_dataplane::TokenRepository;
use tenantry_keys::claims::AccessTokenClaims;
use tenantry_keys::{Expect, TokenType};

use crate::app::AppState;
use crate::error::ApiError;
use crate::grants::{UserTokens, grant_user, refresh_body, refresh_lifetime, user_token_body};
use crate::params::Params;
use crate::tokens::{self, AccessGrant};
use crate::web::OAuthError;
use tenantry_tenancy::{Capability, TenantContext};

/// The endpoints a browser app calls with `fetch`: token and revocation.
pub fn fetch_router() -> Router<AppState> {
    Router::new()
        .route("/t/{slug}/token", post(token))
        .route("/t/{slug}/revoke", post(revoke))
}

/// Introspection, for resource servers (confidential clients), never from a browser.
pub fn server_router() -> Router<AppState> {
    Router::new().route("/t/{slug}/introspect", post(introspect))
}

/// The parameters of an OAuth endpoint: a form body (`application/x-www-form-urlencoded`)
/// where only `resource` (RFC 8707) may repeat.
pub type Form = Params;

/// Reads the form body of a token, introspection or revocation request. An empty body
/// needs no content type: it is an empty form, whose missing parameters are named.
pub fn form_body(headers: &HeaderMap, body: &[u8]) -> Result<Form, OAuthError> {
    let is_form = body.is_empty()
        || headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
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
fn require<'a>(form: &'a Form, name: &str) -> Result<&'a str, OAuthError> {
    form.get(name)
        .ok_or_else(|| OAuthError::new("invalid_request", format!("`{name}` is required")))
}

/// `client_assertion_type` of RFC 7523 client authentication.
const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// Longest lifetime accepted for a client assertion (its `jti` is kept that long).
const MAX_ASSERTION_SECS: i64 = 600;
/// Clock skew allowed between a client and us for `exp`, `nbf` and `iat`.
const ASSERTION_SKEW_SECS: i64 = 30;

/// Authenticates the client of a token, introspection or revocation request by the method
/// it registered: `client_secret_basic`, `client_secret_post`, `private_key_jwt`, or
/// `none` (public clients, which only identify themselves).
pub async fn authenticate_client<'a>(
    state: &AppState,
    ctx: &'a TenantContext,
    headers: &HeaderMap,
    form: &Form,
) -> Result<&'a Client, OAuthError> {
    if form.get("client_assertion").is_some() || form.get("client_assertion_type").is_some() {
        if headers.contains_key(header::AUTHORIZATION) || form.get("client_secret").is_some() {
            return Err(OAuthError::new(
                "invalid_request",
                "use one client authentication method only",
            ));
        }
        return assertion_client(ctx, form).await;
    }
    let basic = basic_credentials(headers)?;
    let post_secret = form.get("client_secret");
    let (client_id, secret, method) = match (&basic, post_secret) {
        (Some(_), Some(_)) => {
            return Err(OAuthError::new(
                "invalid_request",
                "use one client authentication method only",
            ));
        }
        (Some((id, secret)), None) => {
            if form.get("client_id").is_some_and(|form_id| form_id != id) {
                return Err(OAuthError::new(
                    "invalid_request",
                    "client_id does not match the credentials",
                ));
            }
            (
                id.as_str(),
                Some(secret.as_str()),
                TokenEndpointAuthMethod::ClientSecretBasic,
            )
        }
        (None, Some(secret)) => (
            require(form, "client_id")?,
            Some(secret),
            TokenEndpointAuthMethod::ClientSecretPost,
        ),
        (None, None) => (require(form, "client_id")?, None, TokenEndpointAuthMethod::None),
    };
    let failed = |description: &str| {
        let e = OAuthError::new("invalid_client", description.to_owned());
        match basic {
            Some(_) => e.with_basic_challenge(format!("Basic realm=\"{}\"", ctx.issuer)),
            None => e,
        }
    };
    let key = state.keystore.client_secret_key(&ctx.snapshot.system_secrets)?;
    let client = ctx
        .entry
        .clients
        .get(client_id)
        .filter(|c| c.token_endpoint_auth_method != TokenEndpointAuthMethod::PrivateKeyJwt);
    let Some(client) = client else {
        // Spend the same work as a real check, so unknown ids are not told apart by time.
        let _ = tenantry_crypto::verify_keyed_digest(&key, secret.unwrap_or(""), "");
        return Err(failed("client authentication failed"));
    };
    if client.token_endpoint_auth_method != method {
        return Err(failed("client authentication failed"));
    }
    match (secret, &client.secret_hash) {
        (None, _) if client.client_type == ClientType::Public => Ok(client),
        (Some(secret), Some(digest)) if tenantry_crypto::verify_keyed_digest(&key, secret, digest) => Ok(client),
        _ => Err(failed("client authentication failed")),
    }
}

/// RFC 7523 `private_key_jwt`: a JWT signed with one of the client's registered keys,
/// `iss` = `sub` = client id, single-use `jti`, and as audience the issuer identifier
/// alone (a string, or an array holding only it), as the current OpenID guidance on
/// client assertions asks: an endpoint URL or a second audience beside ours is refused,
/// so an assertion made for another server cannot be replayed here. `iat` and `nbf` may
/// not lie in the future beyond the clock skew.
async fn assertion_client<'a>(ctx: &'a TenantContext, form: &Form) -> Result<&'a Client, OAuthError> {
    let failed = |why: &str| OAuthError::new("invalid_client", format!("client assertion refused: {why}"));
    if form.get("client_assertion_type") != Some(JWT_BEARER) {
        return Err(OAuthError::new("invalid_request", "unsupported client_assertion_type"));
    }
    let assertion = require(form, "client_assertion")?;
    let unverified =
        jsonwebtoken::dangerous::insecure_decode::<serde_json::Value>(assertion).map_err(|_| failed("malformed"))?;
    let client_id = unverified.claims["iss"].as_str().ok_or_else(|| failed("no iss"))?;
    if form.get("client_id").is_some_and(|id| id != client_id) {
        return Err(failed("client_id does not match the assertion"));
    }
    let client = ctx
        .entry
        .clients
        .get(client_id)
        .filter(|c| c.token_endpoint_auth_method == TokenEndpointAuthMethod::PrivateKeyJwt)
        .ok_or_else(|| failed("unknown client or not registered for private_key_jwt"))?;
    let set: jsonwebtoken::jwk::JwkSet = client
        .jwks
        .clone()
        .and_then(|j| serde_json::from_value(j).ok())
        .ok_or_else(|| failed("the client has no usable keys"))?;
    let header = &unverified.header;
    let jwk = match &header.kid {
        Some(kid) => set.find(kid),
        None if set.keys.len() == 1 => set.keys.first(),
        None => None,
    }
    .ok_or_else(|| failed("no registered key matches"))?;
    // Only the asymmetric algorithms we sign with; the key decides the family.
    let allowed = [
        jsonwebtoken::Algorithm::RS256,
        jsonwebtoken::Algorithm::ES256,
        jsonwebtoken::Algorithm::EdDSA,
    ];
    if !allowed.contains(&header.alg) {
        return Err(failed("algorithm not allowed"));
    }
    let key = jsonwebtoken::DecodingKey::from_jwk(jwk).map_err(|_| failed("unusable key"))?;
    let mut validation = jsonwebtoken::Validation::new(header.alg);
    validation.leeway = ASSERTION_SKEW_SECS as u64;
    validation.set_issuer(&[client_id]);
    validation.sub = Some(client_id.to_owned());
    validation.validate_nbf = true;
    // The audience rule is stricter than "any of": checked below.
    validation.validate_aud = false;
    validation.set_required_spec_claims(&["exp", "iss", "sub", "aud"]);
    let claims = jsonwebtoken::decode::<serde_json::Value>(assertion, &key, &validation)
        .map_err(|e| failed(&format!("{:?}", e.kind())))?
        .claims;
    if !audience_is_only(&claims["aud"], &ctx.issuer) {
        return Err(failed("the audience must be the issuer identifier alone"));
    }
    let now = Utc::now().timestamp();
    if claims.get("iat").is_some() {
        let iat = claims["iat"].as_i64().ok_or_else(|| failed("iat is not a number"))?;
        if iat > now + ASSERTION_SKEW_SECS {
            return Err(failed("iat is in the future"));
        }
    }
    let exp = claims["exp"].as_i64().ok_or_else(|| failed("exp"))?;
    if exp - now > MAX_ASSERTION_SECS {
        return Err(failed("the assertion lives too long"));
    }
    let jti = claims["jti"]
        .as_str()
        .filter(|j| !j.is_empty() && j.len() <= 255)
        .ok_or_else(|| failed("no jti"))?;
    let expires_at = chrono::DateTime::from_timestamp(exp, 0).unwrap_or_else(Utc::now);
    let fresh = ctx
        .db()
        .await?
        .spend_assertion_jti(&client.client_id, jti, expires_at)
        .await
        .map_err(ApiError::from)?;
    if !fresh {
        return Err(failed("the assertion was already used"));
    }
    Ok(client)
}

/// Whether a JWT `aud` claim names `issuer` and nothing else.
fn audience_is_only(aud: &serde_json::Value, issuer: &str) -> bool {
    match aud {
        serde_json::Value::String(one) => one == issuer,
        serde_json::Value::Array(many) => many.len() == 1 && many[0].as_str() == Some(issuer),
        _ => false,
    }
}

/// `Authorization: Basic` credentials: base64 of form-urlencoded id `:` secret (RFC 6749
/// 2.3.1).
fn basic_credentials(headers: &HeaderMap) -> Result<Option<(String, String)>, OAuthError> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let malformed =
        || OAuthError::new("invalid_client", "malformed Basic credentials").with_basic_challenge("Basic".into());
    let value = value.to_str().map_err(|_| malformed())?;
    let (scheme, encoded) = value.split_once(' ').ok_or_else(malformed)?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(OAuthError::new(
            "invalid_request",
            "use HTTP Basic for client credentials",
        ));
    }
    let decoded = STANDARD.decode(encoded.trim()).map_err(|_| malformed())?;
    let decoded = String::from_utf8(decoded).map_err(|_| malformed())?;
    let (id, secret) = decoded.split_once(':').ok_or_else(malformed)?;
    let unescape = |s: &str| {
        url::form_urlencoded::parse(format!("v={s}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default()
    };
    Ok(Some((unescape(id), unescape(secret))))
}

fn no_store(body: Value) -> Response {
    let mut response = Json(body).into_response();
    response
        .headers_mut()
        .insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    response
}

/// `POST /t/{slug}/token`.
async fn token(
    ctx: TenantContext,
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, OAuthError> {
    let body = body.map_err(OAuthError::unreadable_body)?;
    let form = form_body(&headers, &body)?;
    let grant_type = require(&form, "grant_type")?;
    let client = authenticate_client(&state, &ctx, &headers, &form).await?;
    match grant_type {
        "client_credentials" => client_credentials(&ctx, client, &form),
        "authorization_code" => authorization_code(&ctx, client, &form).await,
        "refresh_token" => refresh_token(&ctx, client, &form).await,
        other => Err(OAuthError::new(
            "unsupported_grant_type",
            format!("unknown grant type `{}`", crate::error::printable(other)),
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
                    crate::error::printable(scope)
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
fn audiences(client: &Client, form: &Form) -> Result<Vec<String>, OAuthError> {
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

fn client_credentials(ctx: &TenantContext, client: &Client, form: &Form) -> Result<Response, OAuthError> {
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
        .filter(|s| !matches!(*s, "openid" | "offline_access"))
        .collect();
    let scopes = granted_scopes(client, form.get("scope"), &default)?;
    if scopes.iter().any(|s| matches!(*s, "openid" | "offline_access")) {
        return Err(OAuthError::new(
            "invalid_scope",
            "openid and offline_access need a user; client_credentials has none",
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
    Ok(no_store(body))
}

fn invalid_grant(description: &str) -> OAuthError {
    OAuthError::new("invalid_grant", description.to_owned())
}

/// `code_verifier` against the stored S256 challenge (RFC 7636 4.6).
fn pkce_matches(verifier: &str, challenge: &str) -> bool {
    let well_formed = (43..=128).contains(&verifier.len())
        && verifier
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'));
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, verifier.as_bytes());
    let computed = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest);
    well_formed && tenantry_crypto::constant_time_eq(computed.as_bytes(), challenge.as_bytes())
}

async fn user_token_response(ctx: &TenantContext, t: UserTokens<'_>) -> Result<Response, OAuthError> {
    Ok(no_store(user_token_body(ctx, t).await?))
}

/// `authorization_code` (RFC 6749 4.1.3, RFC 7636): single use — a second use fails and
/// revokes the refresh tokens issued from the code and denies the access token of the
/// first redemption (its `jti` is `tokens::code_access_jti` of the code).
async fn authorization_code(ctx: &TenantContext, client: &Client, form: &Form) -> Result<Response, OAuthError> {
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
    let refresh_token = if client.grant_types.contains(&GrantType::RefreshToken) {
        let token = tenantry_crypto::random_token(32);
        db.issue_refresh(
            tenantry_dataplane::NewRefreshToken {
                token_hash: tenantry_crypto::hash_token(&token),
                client_id: client.client_id.clone(),
                user_id: record.user_id,
                session_id_hash: record.session_id_hash.clone(),
                origin_code_hash: Some(code_hash.clone()),
                scope: record.scope.clone(),
                auth_time: Some(record.auth_time),
                amr: record.amr.clone(),
                expires_at: now + refresh_lifetime(ctx, client),
            },
            now,
        )
        .await
        .map_err(ApiError::from)?;
        Some(token)
    } else {
        None
    };
    let user = grant_user(ctx, record.user_id).await?;
    user_token_response(
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
async fn refresh_token(ctx: &TenantContext, client: &Client, form: &Form) -> Result<Response, OAuthError> {
    let presented = require(form, "refresh_token")?;
    Ok(no_store(refresh_body(ctx, client, presented, form.get("scope")).await?))
}

/// `POST /t/{slug}/introspect` (RFC 7662): any authenticated client of the tenant may ask;
/// only this tenant's live tokens are active, everything else is `{"active": false}`.
async fn introspect(
    ctx: TenantContext,
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, OAuthError> {
    let body = body.map_err(OAuthError::unreadable_body)?;
    let form = form_body(&headers, &body)?;
    let client = authenticate_client(&state, &ctx, &headers, &form).await?;
    if client.client_type != ClientType::Confidential {
        return Err(OAuthError::new(
            "invalid_client",
            "introspection needs an authenticated client",
        ));
    }
    let token = require(&form, "token")?;
    let inactive = || no_store(json!({"active": false}));
    if token.matches('.').count() == 2 {
        return Ok(match tokens::accept_access_token(&ctx, token).await {
            Ok(good) => no_store(access_introspection(&good.claims)),
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
        Some(t) if t.revoked_at.is_none() && t.rotated_at.is_none() && t.expires_at > now => no_store(json!({
            "active": true,
            "token_type": "refresh_token",
            "client_id": t.client_id,
            "sub": t.user_id.to_string(),
            "scope": t.scope,
            "iat": t.issued_at.timestamp(),
            "exp": t.expires_at.timestamp(),
            "iss": ctx.issuer,
            "tid": ctx.slug(),
        })),
        _ => inactive(),
    })
}

fn access_introspection(claims: &AccessTokenClaims) -> Value {
    let mut body = serde_json::to_value(claims).unwrap_or_else(|_| json!({}));
    body["active"] = json!(true);
    body["token_type"] = json!("Bearer");
    body
}

/// `POST /t/{slug}/revoke` (RFC 7009): a refresh token revokes its whole family; an
/// access token's `jti` is denied until it expires. Unknown or invalid tokens answer 200
/// (2.2); a token issued to another client is refused.
async fn revoke(
    ctx: TenantContext,
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, OAuthError> {
    let body = body.map_err(OAuthError::unreadable_body)?;
    let form = form_body(&headers, &body)?;
    let client = authenticate_client(&state, &ctx, &headers, &form).await?;
    let token = require(&form, "token")?;
    let ok = || StatusCode::OK.into_response();
    if token.matches('.').count() == 2 {
        let keys = ctx.keys()?;
        let mut expect = Expect::new(&ctx.issuer, TokenType::Access);
        // Revoking an expired token is a no-op, not an error.
        expect.allow_expired = true;
        let Ok(verified) = keys.verify::<AccessTokenClaims>(token, &expect) else {
            return Ok(ok());
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
        return Ok(ok());
    }
    if ctx.require(Capability::TenantDb).is_err() {
        return Ok(ok());
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
    Ok(ok())
}
