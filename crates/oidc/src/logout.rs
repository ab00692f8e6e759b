//! RP-Initiated Logout 1.0 and OIDC Back-Channel Logout 1.0, without HTTP.
//!
//! [`end_session_request`] checks an end-session request: `post_logout_redirect_uri` is
//! honoured only when it is registered, exactly, for the client named by `client_id` or by
//! the `id_token_hint`'s audience; the hint may be expired, never forged or foreign.
//! [`hint_proves_session`] decides whether the hint proves the request comes from the
//! session's relying party (else the user confirms first). [`end_session`] revokes the
//! session and its refresh tokens and sends signed logout tokens to every client of the
//! session that registered a `backchannel_logout_uri`, in the background with retries.

use std::time::Duration;

use chrono::Utc;
use serde_json::{Value, json};
use tenantry_controlplane::model::Client;
use tenantry_crypto::random_token;
use tenantry_dataplane::model::Session;
use tenantry_dataplane::{SessionRepository, TenantDb, TokenRepository};
use tenantry_errors::ApiError;
use tenantry_keys::claims::Audience;
use tenantry_keys::{Expect, TokenType};
use tenantry_tenancy::TenantContext;

use crate::outbound::{OutboundPolicy, OutboundRefusal};
use crate::params::Params;

/// Attempts to deliver one logout token (then it is dropped and logged).
const DELIVERY_ATTEMPTS: u32 = 4;

/// A checked end-session request.
#[derive(Debug, Clone, PartialEq)]
pub struct EndSession {
    /// The verified claims of the `id_token_hint`, when one was sent.
    pub hint: Option<Value>,
    /// Where to send the browser afterwards: registered for the client, exactly.
    pub redirect: Option<String>,
    pub state: Option<String>,
}

/// Why an end-session request is refused.
#[derive(Debug)]
pub enum EndSessionError {
    /// Shown to the user as `invalid_request` with this description.
    Invalid(&'static str),
    /// The tenant cannot verify the hint (no keys).
    Unavailable(ApiError),
}

/// Checks an end-session request's parameters.
pub fn end_session_request(ctx: &TenantContext, params: &Params) -> Result<EndSession, EndSessionError> {
    let hint = match params.get("id_token_hint") {
        None => None,
        Some(token) => {
            let keys = ctx.keys().map_err(EndSessionError::Unavailable)?;
            let mut expect = Expect::new(&ctx.issuer, TokenType::Id);
            expect.allow_expired = true;
            match keys.verify::<Value>(token, &expect) {
                Ok(verified) => Some(verified.claims),
                Err(_) => return Err(EndSessionError::Invalid("the id_token_hint is not valid")),
            }
        }
    };
    let hint_aud: Vec<String> = hint
        .as_ref()
        .and_then(|c| serde_json::from_value::<Audience>(c["aud"].clone()).ok())
        .map(|a| match a {
            Audience::One(one) => vec![one],
            Audience::Many(many) => many,
        })
        .unwrap_or_default();
    let client_id = params
        .get("client_id")
        .map(str::to_owned)
        .or_else(|| hint_aud.first().cloned());
    if let (Some(id), false) = (&client_id, hint_aud.is_empty())
        && !hint_aud.contains(id)
    {
        return Err(EndSessionError::Invalid("client_id does not match the id_token_hint"));
    }
    let client = client_id.as_deref().and_then(|id| ctx.client(id));
    let redirect = match params.get("post_logout_redirect_uri") {
        None => None,
        Some(uri) => match client {
            Some(c) if c.post_logout_redirect_uris.iter().any(|r| r == uri) => Some(uri.to_owned()),
            _ => {
                return Err(EndSessionError::Invalid(
                    "post_logout_redirect_uri is not registered for this client",
                ));
            }
        },
    };
    Ok(EndSession {
        hint,
        redirect,
        state: params.get("state").map(str::to_owned),
    })
}

/// Whether the hint names this session's user and (when it carries one) its `sid`.
pub fn hint_proves_session(hint: Option<&Value>, session: Option<&Session>) -> bool {
    match (hint, session) {
        (Some(claims), Some(s)) => {
            claims["sub"] == json!(s.user_id.to_string())
                && claims
                    .get("sid")
                    .is_none_or(|sid| *sid == json!(crate::tokens::sid(&s.id_hash)))
        }
        _ => false,
    }
}

/// Ends `session`: revokes it and its refresh tokens, then notifies its clients'
/// back-channel logout endpoints.
pub async fn end_session(
    ctx: &TenantContext,
    db: &TenantDb,
    session: &Session,
    policy: OutboundPolicy,
) -> Result<(), ApiError> {
    let now = Utc::now();
    let clients = db.clients_of_session(&session.id_hash).await.unwrap_or_default();
    db.revoke_session(&session.id_hash, now).await?;
    db.revoke_refresh_by_session(&session.id_hash, now).await?;
    let targets: Vec<Client> = clients
        .iter()
        .filter_map(|id| ctx.client(id))
        .filter(|c| c.backchannel_logout_uri.is_some())
        .cloned()
        .collect();
    send_logout_tokens(
        ctx,
        policy,
        &targets,
        &session.user_id.to_string(),
        &crate::tokens::sid(&session.id_hash),
    );
    Ok(())
}

/// Ends the live sessions of `user` that `which` picks, each as [`end_session`] ends one
/// (its clients told by back-channel logout); answers how many ended.
pub async fn end_sessions_of(
    ctx: &TenantContext,
    db: &TenantDb,
    user: uuid::Uuid,
    which: impl Fn(&Session) -> bool,
    policy: OutboundPolicy,
) -> Result<usize, ApiError> {
    let live = db.sessions_of(user, Utc::now()).await?;
    let mut ended = 0;
    for session in live.iter().filter(|s| which(s)) {
        end_session(ctx, db, session, policy).await?;
        ended += 1;
    }
    Ok(ended)
}

/// Signs one logout token per client (OIDC Back-Channel Logout 2.4) and delivers them in
/// the background with retries, under the installation's outbound policy (no redirects;
/// private and loopback targets only where allowed).
fn send_logout_tokens(ctx: &TenantContext, policy: OutboundPolicy, clients: &[Client], sub: &str, sid: &str) {
    let Ok(keys) = ctx.keys() else {
        tracing::warn!("no signing keys: back-channel logout tokens not sent");
        return;
    };
    let now = Utc::now().timestamp();
    for client in clients {
        let Some(uri) = client.backchannel_logout_uri.clone() else {
            continue;
        };
        if let Err(refusal) = url::Url::parse(&uri)
            .map_err(|_| OutboundRefusal::NotHttp)
            .and_then(|url| policy.check_url(&url))
        {
            tracing::warn!(client_id = %client.client_id, %refusal, "back-channel logout not sent: the URI is not allowed");
            continue;
        }
        let claims = json!({
            "iss": ctx.issuer,
            "sub": sub,
            "aud": client.client_id,
            "iat": now,
            "exp": now + 120,
            "jti": random_token(16),
            "sid": sid,
            "tid": ctx.slug(),
            "events": { "http://schemas.openid.net/event/backchannel-logout": {} },
        });
        let alg = crate::tokens::id_token_alg(&ctx.entry, client);
        let token = match keys.sign(alg, "logout+jwt", &claims) {
            Ok(token) => token,
            Err(e) => {
                tracing::error!(error = %e, "logout token signing failed");
                continue;
            }
        };
        let client_id = client.client_id.clone();
        tokio::spawn(async move { deliver(policy, uri, client_id, token).await });
    }
}

/// A failure that retrying cannot cure: the name resolved only to refused addresses.
fn is_refused_target(e: &reqwest::Error) -> bool {
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        if s.is::<OutboundRefusal>() {
            return true;
        }
        source = s.source();
    }
    false
}

async fn deliver(policy: OutboundPolicy, uri: String, client_id: String, token: String) {
    let http = match policy.client(Duration::from_secs(5)) {
        Ok(http) => http,
        Err(e) => {
            tracing::error!(error = %e, "no HTTP client for back-channel logout");
            return;
        }
    };
    let mut delay = Duration::from_millis(500);
    for attempt in 1..=DELIVERY_ATTEMPTS {
        let result = http.post(&uri).form(&[("logout_token", token.as_str())]).send().await;
        match result {
            Ok(r) if r.status().is_success() => {
                tracing::info!(client_id, attempt, "back-channel logout delivered");
                return;
            }
            Ok(r) if r.status().is_redirection() => {
                // Redirects are never followed, and a retry would meet the same one.
                tracing::warn!(
                    client_id,
                    status = r.status().as_u16(),
                    "back-channel logout answered with a redirect; not followed, given up"
                );
                return;
            }
            Err(e) if is_refused_target(&e) => {
                tracing::warn!(client_id, error = %e, "back-channel logout not sent: the address is not allowed");
                return;
            }
            Ok(r) => tracing::warn!(
                client_id,
                attempt,
                status = r.status().as_u16(),
                "back-channel logout refused"
            ),
            Err(e) => tracing::warn!(client_id, attempt, error = %e, "back-channel logout not delivered"),
        }
        if attempt < DELIVERY_ATTEMPTS {
            tokio::time::sleep(delay).await;
            delay *= 4;
        }
    }
    tracing::error!(
        client_id,
        "back-channel logout given up after {DELIVERY_ATTEMPTS} attempts"
    );
}
