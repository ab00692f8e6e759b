//! Client authentication at the token, introspection and revocation endpoints (RFC 6749
//! 2.3): `client_secret_basic`, `client_secret_post`, `private_key_jwt` (RFC 7523) and
//! `none` for public clients. A client authenticates only by the method it registered.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::Utc;
use tenantry_controlplane::model::{Client, ClientType, TokenEndpointAuthMethod};
use tenantry_dataplane::TokenRepository;
use tenantry_errors::{ApiError, OAuthError};
use tenantry_tenancy::TenantContext;
use tenantry_tenancy::keystore::KeyStore;

use crate::params::Params;
use crate::token_endpoint::require;

/// `client_assertion_type` of RFC 7523 client authentication.
const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// Longest lifetime accepted for a client assertion (its `jti` is kept that long).
const MAX_ASSERTION_SECS: i64 = 600;
/// Clock skew allowed between a client and us for `exp`, `nbf` and `iat`.
const ASSERTION_SKEW_SECS: i64 = 30;

/// Authenticates the client of a token, introspection or revocation request by the method
/// it registered: `client_secret_basic`, `client_secret_post`, `private_key_jwt`, or
/// `none` (public clients, which only identify themselves).
///
/// `authorization` is the request's `Authorization` header, if any.
pub async fn authenticate_client<'a>(
    keystore: &KeyStore,
    ctx: &'a TenantContext,
    authorization: Option<&[u8]>,
    form: &Params,
) -> Result<&'a Client, OAuthError> {
    if form.get("client_assertion").is_some() || form.get("client_assertion_type").is_some() {
        if authorization.is_some() || form.get("client_secret").is_some() {
            return Err(OAuthError::new(
                "invalid_request",
                "use one client authentication method only",
            ));
        }
        return assertion_client(ctx, form).await;
    }
    let basic = basic_credentials(authorization)?;
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
    let key = keystore.client_secret_key(&ctx.snapshot.system_secrets)?;
    let client = ctx
        .client(client_id)
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
        // Within a rotation's overlap window the replaced secret still works.
        (Some(secret), Some(_))
            if client.previous_secret.as_ref().is_some_and(|previous| {
                previous.expires_at > chrono::Utc::now()
                    && tenantry_crypto::verify_keyed_digest(&key, secret, &previous.hash)
            }) =>
        {
            Ok(client)
        }
        _ => Err(failed("client authentication failed")),
    }
}

/// RFC 7523 `private_key_jwt`: a JWT signed with one of the client's registered keys,
/// `iss` = `sub` = client id, single-use `jti`, and as audience the issuer identifier
/// alone (a string, or an array holding only it), as the current OpenID guidance on
/// client assertions asks: an endpoint URL or a second audience beside ours is refused,
/// so an assertion made for another server cannot be replayed here. `iat` and `nbf` may
/// not lie in the future beyond the clock skew.
async fn assertion_client<'a>(ctx: &'a TenantContext, form: &Params) -> Result<&'a Client, OAuthError> {
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
        .client(client_id)
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
fn basic_credentials(authorization: Option<&[u8]>) -> Result<Option<(String, String)>, OAuthError> {
    let Some(value) = authorization else {
        return Ok(None);
    };
    let malformed =
        || OAuthError::new("invalid_client", "malformed Basic credentials").with_basic_challenge("Basic".into());
    let value = std::str::from_utf8(value).map_err(|_| malformed())?;
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
