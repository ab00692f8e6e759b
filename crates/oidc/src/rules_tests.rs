//! The protocol rules, checked without HTTP on a real tenant: a control plane in a temp
//! directory, a SQLite tenant database, signing keys and the client-secret key, as a
//! running server has them.

use std::sync::Arc;

use chrono::{Duration, Utc};
use serde_json::json;
use tenantry_controlplane::Command;
use tenantry_controlplane::model::*;
use tenantry_crypto::{DigestKey, SealContext, hash_token, keyed_digest};
use tenantry_dataplane::model::{AuthorizationCode, NewUser};
use tenantry_dataplane::{SessionRepository, TokenRepository, UserRepository};
use tenantry_errors::OAuthError;
use tenantry_tenancy::TenantContext;
use tenantry_tenancy::keystore::{CLIENT_SECRET_KEY_FIELD, KeyStore, SYSTEM_OWNER};
use tenantry_tenancy::testing::Installation;

use crate::authorize::{self, Refusal, ResponseMode};
use crate::params::Params;
use crate::token_endpoint;

const SECRET: &str = "s3cret-of-the-confidential-client";
const CLIENT_SECRET_KEY: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";
/// RFC 7636 appendix B.
const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

struct Tenant {
    _installation: Installation,
    ctx: TenantContext,
    keystore: Arc<KeyStore>,
}

fn client(id: &str, kind: &str, method: &str, secret_hash: Option<String>) -> Client {
    let mut grant_types = vec!["authorization_code", "refresh_token"];
    if kind == "confidential" {
        grant_types.push("client_credentials");
    }
    serde_json::from_value(json!({
        "client_id": id,
        "name": id,
        "client_type": kind,
        "redirect_uris": ["https://app.example.com/cb"],
        "post_logout_redirect_uris": ["https://app.example.com/bye"],
        "grant_types": grant_types,
        "scopes": ["openid", "profile", "email", "offline_access", "api"],
        "token_endpoint_auth_method": method,
        "secret_hash": secret_hash,
        "created_at": Utc::now(),
        "updated_at": Utc::now(),
    }))
    .unwrap()
}

fn tenant() -> Tenant {
    let installation = Installation::new();
    let sealed = installation.secrets.seal(
        SealContext::new(SYSTEM_OWNER, CLIENT_SECRET_KEY_FIELD),
        CLIENT_SECRET_KEY,
    );
    installation
        .control_plane
        .apply(&Command::PutSystemSecrets {
            secrets: SystemSecrets {
                client_secret_key: Some(SealedSecret(sealed)),
            },
        })
        .unwrap();
    installation.add_tenant("acme", true, |_| {});
    let key =
        DigestKey::new(&base64::Engine::decode(&base64::engine::general_purpose::STANDARD, CLIENT_SECRET_KEY).unwrap());
    for c in [
        client("spa", "public", "none", None),
        client(
            "web",
            "confidential",
            "client_secret_basic",
            Some(keyed_digest(&key, SECRET)),
        ),
        client(
            "post",
            "confidential",
            "client_secret_post",
            Some(keyed_digest(&key, SECRET)),
        ),
    ] {
        installation
            .control_plane
            .apply(&Command::CreateClient {
                slug: "acme".into(),
                client: c,
            })
            .unwrap();
    }
    Tenant {
        ctx: installation.resolver.resolve_slug("acme").unwrap(),
        keystore: installation.keystore.clone(),
        _installation: installation,
    }
}

fn params(pairs: &[(&str, &str)]) -> Params {
    let body = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish();
    Params::parse(body.as_bytes(), &["resource"]).unwrap()
}

fn basic(id: &str, secret: &str) -> String {
    let raw = format!("{id}:{secret}");
    format!(
        "Basic {}",
        base64::Engine::encode(&base64::engine::general_purpose::STANDARD, raw)
    )
}

fn error_of(e: OAuthError) -> String {
    format!("{e:?}")
}

// ---- authorization requests (OIDC Core 3.1.2, RFC 9700) ----

const GOOD: &[(&str, &str)] = &[
    ("client_id", "spa"),
    ("redirect_uri", "https://app.example.com/cb"),
    ("response_type", "code"),
    ("scope", "openid profile openid"),
    ("state", "xyz"),
    ("code_challenge", CHALLENGE),
    ("code_challenge_method", "S256"),
];

fn with(changes: &[(&str, Option<&str>)]) -> Params {
    let mut pairs: Vec<(&str, &str)> = GOOD.to_vec();
    for (name, value) in changes {
        pairs.retain(|(n, _)| n != name);
        if let Some(v) = value {
            pairs.push((name, v));
        }
    }
    params(&pairs)
}

fn refusal(t: &Tenant, changes: &[(&str, Option<&str>)]) -> Refusal {
    authorize::validate(&t.ctx, &with(changes)).unwrap_err()
}

fn to_client_error(r: Refusal) -> &'static str {
    match r {
        Refusal::ToClient { error, to, .. } => {
            assert_eq!(to.redirect_uri, "https://app.example.com/cb");
            error
        }
        other => panic!("expected a redirect, got {other:?}"),
    }
}

#[test]
fn a_good_request_is_validated_with_scopes_deduplicated() {
    let t = tenant();
    let request = authorize::validate(&t.ctx, &with(&[])).unwrap();
    assert_eq!(request.client.client_id, "spa");
    assert_eq!(request.scopes, ["openid", "profile"]);
    assert_eq!(request.to.state.as_deref(), Some("xyz"));
    assert_eq!(request.to.mode, ResponseMode::Query);
    assert_eq!(request.code_challenge.as_deref(), Some(CHALLENGE));
}

#[test]
fn redirect_uris_match_exactly_and_are_never_redirected_to_when_wrong() {
    let t = tenant();
    for wrong in [
        "https://app.example.com/cb/",
        "https://app.example.com/cb?x=1",
        "https://APP.example.com/cb",
        "https://app.example.com/c",
        "https://evil.example.com/cb",
    ] {
        assert!(
            matches!(refusal(&t, &[("redirect_uri", Some(wrong))]), Refusal::Untrusted { .. }),
            "{wrong}"
        );
    }
    assert!(matches!(
        refusal(&t, &[("redirect_uri", None)]),
        Refusal::Untrusted { .. }
    ));
    assert!(matches!(
        refusal(&t, &[("client_id", Some("ghost"))]),
        Refusal::Untrusted {
            error: "invalid_client",
            ..
        }
    ));
}

#[test]
fn pkce_is_s256_only_and_required_for_public_and_by_default_for_confidential_clients() {
    let t = tenant();
    let missing = [("code_challenge", None), ("code_challenge_method", None)];
    assert_eq!(to_client_error(refusal(&t, &missing)), "invalid_request");
    assert_eq!(
        to_client_error(refusal(&t, &[("code_challenge_method", Some("plain"))])),
        "invalid_request"
    );
    assert_eq!(
        to_client_error(refusal(&t, &[("code_challenge_method", None)])),
        "invalid_request",
        "a challenge without a method is plain"
    );
    assert_eq!(
        to_client_error(refusal(&t, &[("code_challenge", Some("short"))])),
        "invalid_request"
    );
    // A confidential client of a new tenant needs PKCE too (RFC 9700 2.1.1).
    let confidential = [
        ("client_id", Some("web")),
        ("code_challenge", None),
        ("code_challenge_method", None),
    ];
    assert_eq!(to_client_error(refusal(&t, &confidential)), "invalid_request");
}

#[test]
fn scopes_must_be_allowed_and_request_objects_are_refused() {
    let t = tenant();
    assert_eq!(
        to_client_error(refusal(&t, &[("scope", Some("openid admin"))])),
        "invalid_scope"
    );
    assert_eq!(
        to_client_error(refusal(&t, &[("request", Some("eyJ..."))])),
        "request_not_supported"
    );
    assert_eq!(
        to_client_error(refusal(&t, &[("response_type", Some("token"))])),
        "unsupported_response_type"
    );
    assert_eq!(
        to_client_error(refusal(&t, &[("response_type", None)])),
        "invalid_request"
    );
}

#[test]
fn prompt_and_max_age() {
    let t = tenant();
    let request = authorize::validate(&t.ctx, &with(&[("prompt", Some("login consent"))])).unwrap();
    assert!(request.prompt.login && request.prompt.consent && !request.prompt.none);
    for bad in ["none login", "select_account", "nonsense"] {
        assert_eq!(
            to_client_error(refusal(&t, &[("prompt", Some(bad))])),
            "invalid_request",
            "{bad}"
        );
    }
    for bad in ["-1", "ten", "1.5"] {
        assert_eq!(
            to_client_error(refusal(&t, &[("max_age", Some(bad))])),
            "invalid_request",
            "{bad}"
        );
    }
    let now = Utc::now();
    let signed_in = now - Duration::seconds(120);
    assert!(authorize::session_satisfies(false, None, signed_in, now));
    assert!(authorize::session_satisfies(false, Some(120), signed_in, now));
    assert!(!authorize::session_satisfies(false, Some(60), signed_in, now));
    assert!(!authorize::session_satisfies(false, Some(0), signed_in, now));
    assert!(
        !authorize::session_satisfies(true, None, signed_in, now),
        "prompt=login"
    );
}

// ---- PKCE at the token endpoint (RFC 7636 4.6) ----

#[test]
fn pkce_verifiers_match_only_their_s256_challenge() {
    assert!(token_endpoint::pkce_matches(VERIFIER, CHALLENGE));
    assert!(!token_endpoint::pkce_matches(&VERIFIER.replace('B', "C"), CHALLENGE));
    // The challenge itself is not a verifier of itself, and plain is never accepted.
    assert!(!token_endpoint::pkce_matches(CHALLENGE, CHALLENGE));
    assert!(!token_endpoint::pkce_matches("short", "short"));
}

// ---- client authentication (RFC 6749 2.3) ----

async fn authenticate(t: &Tenant, authorization: Option<&str>, form: &[(&str, &str)]) -> Result<String, String> {
    crate::client_auth::authenticate_client(&t.keystore, &t.ctx, authorization.map(str::as_bytes), &params(form))
        .await
        .map(|c| c.client_id.clone())
        .map_err(error_of)
}

#[tokio::test]
async fn clients_authenticate_only_by_their_registered_method() {
    let t = tenant();
    let basic_web = basic("web", SECRET);
    assert_eq!(authenticate(&t, Some(&basic_web), &[]).await.unwrap(), "web");
    // The right secret by the wrong method is refused.
    let posted = [("client_id", "web"), ("client_secret", SECRET)];
    assert!(
        authenticate(&t, None, &posted)
            .await
            .unwrap_err()
            .contains("invalid_client")
    );
    let posted = [("client_id", "post"), ("client_secret", SECRET)];
    assert_eq!(authenticate(&t, None, &posted).await.unwrap(), "post");
    assert!(authenticate(&t, Some(&basic("post", SECRET)), &[]).await.is_err());
    // A wrong secret, an unknown client, two methods at once.
    assert!(authenticate(&t, Some(&basic("web", "wrong")), &[]).await.is_err());
    assert!(authenticate(&t, Some(&basic("ghost", SECRET)), &[]).await.is_err());
    let both = [("client_secret", SECRET)];
    assert!(
        authenticate(&t, Some(&basic_web), &both)
            .await
            .unwrap_err()
            .contains("invalid_request")
    );
    // A confidential client cannot drop its secret and pass as public.
    assert!(authenticate(&t, None, &[("client_id", "web")]).await.is_err());
    assert_eq!(authenticate(&t, None, &[("client_id", "spa")]).await.unwrap(), "spa");
    // Basic credentials are form-urlencoded before base64 (RFC 6749 2.3.1).
    assert!(
        authenticate(&t, Some("Basic %%%"), &[])
            .await
            .unwrap_err()
            .contains("invalid_client")
    );
}

// ---- codes and refresh tokens ----

async fn code_for(t: &Tenant, client: &str, scope: &str, challenge: Option<&str>) -> (String, uuid::Uuid) {
    let db = t.ctx.db().await.unwrap();
    let user = db
        .create_user(
            NewUser {
                email: format!("{}@example.com", uuid::Uuid::new_v4()),
                email_verified: true,
                username: None,
                given_name: None,
                family_name: None,
                name: None,
                picture: None,
                locale: None,
                phone_number: None,
                metadata: None,
                custom: Default::default(),
            },
            &t.ctx.custom_fields(),
        )
        .await
        .unwrap();
    let code = tenantry_crypto::random_token(32);
    let now = Utc::now();
    db.store_code(&AuthorizationCode {
        code_hash: hash_token(&code),
        client_id: client.into(),
        user_id: user.id,
        session_id_hash: None,
        redirect_uri: "https://app.example.com/cb".into(),
        scope: scope.into(),
        nonce: None,
        code_challenge: challenge.map(str::to_owned),
        code_challenge_method: challenge.map(|_| "S256".to_owned()),
        auth_time: now,
        acr: None,
        amr: vec!["pwd".into()],
        created_at: now,
        expires_at: now + Duration::seconds(60),
        used_at: None,
    })
    .await
    .unwrap();
    (code, user.id)
}

async fn token(t: &Tenant, form: &[(&str, &str)]) -> Result<serde_json::Value, String> {
    token_endpoint::token(&t.keystore, &t.ctx, None, &params(form), async |_| Ok(()))
        .await
        .map_err(error_of)
}

fn redeem<'a>(code: &'a str, verifier: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("grant_type", "authorization_code"),
        ("client_id", "spa"),
        ("code", code),
        ("redirect_uri", "https://app.example.com/cb"),
        ("code_verifier", verifier),
    ]
}

#[tokio::test]
async fn a_code_is_single_use_and_its_replay_revokes_what_it_issued() {
    let t = tenant();
    let (code, _) = code_for(&t, "spa", "openid offline_access", Some(CHALLENGE)).await;
    let first = token(&t, &redeem(&code, VERIFIER)).await.unwrap();
    let refresh_token = first["refresh_token"].as_str().unwrap().to_owned();
    assert!(first["id_token"].is_string() && first["access_token"].is_string());
    let replay = token(&t, &redeem(&code, VERIFIER)).await.unwrap_err();
    assert!(replay.contains("invalid_grant"), "{replay}");
    // The refresh token issued from the code is revoked by the replay (RFC 9700 4.5).
    let refreshed = refresh(&t, &refresh_token, None).await.unwrap_err();
    assert!(refreshed.contains("invalid_grant"), "{refreshed}");
}

#[tokio::test]
async fn a_code_needs_its_verifier_redirect_uri_and_client() {
    let t = tenant();
    let (code, _) = code_for(&t, "spa", "openid", Some(CHALLENGE)).await;
    let wrong_verifier = token(&t, &redeem(&code, &VERIFIER.replace('B', "C")))
        .await
        .unwrap_err();
    assert!(wrong_verifier.contains("invalid_grant"));
    let (code, _) = code_for(&t, "spa", "openid", Some(CHALLENGE)).await;
    let mut other_uri = redeem(&code, VERIFIER);
    other_uri[3].1 = "https://app.example.com/other";
    assert!(token(&t, &other_uri).await.unwrap_err().contains("invalid_grant"));
    let (code, _) = code_for(&t, "post", "openid", Some(CHALLENGE)).await;
    assert!(
        token(&t, &redeem(&code, VERIFIER))
            .await
            .unwrap_err()
            .contains("invalid_grant"),
        "a code of another client"
    );
    // A public client's code without a challenge is refused at redemption too.
    let (code, _) = code_for(&t, "spa", "openid", None).await;
    let mut no_pkce = redeem(&code, VERIFIER);
    no_pkce.pop();
    assert!(token(&t, &no_pkce).await.unwrap_err().contains("PKCE is required"));
}

async fn refresh(t: &Tenant, refresh_token: &str, scope: Option<&str>) -> Result<serde_json::Value, String> {
    let mut form = vec![
        ("grant_type", "refresh_token"),
        ("client_id", "spa"),
        ("refresh_token", refresh_token),
    ];
    form.extend(scope.map(|s| ("scope", s)));
    token(t, &form).await
}

#[tokio::test]
async fn refresh_rotates_may_narrow_never_widen_and_reuse_revokes_the_family() {
    let t = tenant();
    let (code, _) = code_for(&t, "spa", "openid profile offline_access", Some(CHALLENGE)).await;
    let first = token(&t, &redeem(&code, VERIFIER)).await.unwrap();
    let r1 = first["refresh_token"].as_str().unwrap().to_owned();
    let widened = refresh(&t, &r1, Some("openid profile email")).await.unwrap_err();
    assert!(widened.contains("invalid_scope"), "{widened}");
    let second = refresh(&t, &r1, Some("openid offline_access")).await.unwrap();
    assert_eq!(second["scope"], "openid offline_access");
    let r2 = second["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(r1, r2, "rotated");
    // The rotated token presented again: refused, and the whole family with it.
    assert!(refresh(&t, &r1, None).await.unwrap_err().contains("invalid_grant"));
    let after = refresh(&t, &r2, None).await.unwrap_err();
    assert!(after.contains("invalid_grant"), "the family is revoked: {after}");
}

// ---- end-session requests (RP-Initiated Logout 1.0) ----

#[test]
fn post_logout_redirects_are_registered_exactly_and_hints_are_verified() {
    use crate::logout::{EndSessionError, end_session_request};
    let t = tenant();
    let request = |pairs: &[(&str, &str)]| end_session_request(&t.ctx, &params(pairs));
    let ok = request(&[
        ("client_id", "spa"),
        ("post_logout_redirect_uri", "https://app.example.com/bye"),
        ("state", "s1"),
    ])
    .unwrap();
    assert_eq!(ok.redirect.as_deref(), Some("https://app.example.com/bye"));
    assert_eq!(ok.state.as_deref(), Some("s1"));
    for refused in [
        vec![
            ("client_id", "spa"),
            ("post_logout_redirect_uri", "https://app.example.com/bye/"),
        ],
        vec![
            ("client_id", "web"),
            ("post_logout_redirect_uri", "https://evil.example.com/"),
        ],
        // Without a client there is nothing the URI could be registered for.
        vec![("post_logout_redirect_uri", "https://app.example.com/bye")],
        vec![("id_token_hint", "a.b.c")],
    ] {
        assert!(
            matches!(request(&refused), Err(EndSessionError::Invalid(_))),
            "{refused:?}"
        );
    }
    assert!(request(&[]).unwrap().redirect.is_none());
}

// ---- consent and code issuance (OIDC Core 3.1.2.4, RFC 6749 4.1.2) ----

async fn asks(t: &Tenant, client: &Client, user: uuid::Uuid, scopes: Vec<String>, force: bool) -> bool {
    authorize::needs_consent(&t.ctx, client, user, &scopes, force)
        .await
        .unwrap()
}

#[tokio::test]
async fn consent_is_asked_until_it_covers_every_scope_and_always_with_prompt_consent() {
    let t = tenant();
    let (_, user) = code_for(&t, "spa", "openid", None).await;
    let spa = t.ctx.entry.clients.get("spa").unwrap();
    let scopes = |list: &[&str]| list.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert!(
        asks(&t, spa, user, scopes(&["openid"]), false).await,
        "nothing granted yet"
    );
    authorize::grant_consent(&t.ctx, spa, user, &scopes(&["openid", "profile"]))
        .await
        .unwrap();
    assert!(!asks(&t, spa, user, scopes(&["openid"]), false).await);
    assert!(!asks(&t, spa, user, scopes(&["openid", "profile"]), false).await);
    assert!(
        asks(&t, spa, user, scopes(&["openid", "email"]), false).await,
        "a new scope asks again"
    );
    assert!(asks(&t, spa, user, scopes(&["openid"]), true).await, "prompt=consent");
    let mut first_party = spa.clone();
    first_party.first_party = true;
    assert!(
        !authorize::needs_consent(&t.ctx, &first_party, user, &scopes(&["openid", "email"]), true)
            .await
            .unwrap()
    );
}

#[tokio::test]
async fn an_issued_code_carries_the_session_sign_in_to_the_token_endpoint() {
    let t = tenant();
    let (_, user) = code_for(&t, "spa", "openid", None).await;
    let now = Utc::now();
    let session = tenantry_dataplane::model::Session {
        id_hash: hash_token("session-id"),
        user_id: user,
        auth_time: now - Duration::seconds(30),
        amr: vec!["pwd".into(), "otp".into(), "mfa".into()],
        acr: None,
        ip: None,
        user_agent: None,
        created_at: now,
        last_seen_at: now,
        expires_at: now + Duration::hours(1),
        revoked_at: None,
    };
    t.ctx.db().await.unwrap().create_session(&session).await.unwrap();
    let scopes = vec!["openid".to_owned()];
    let request = authorize::CodeRequest {
        client_id: "spa",
        redirect_uri: "https://app.example.com/cb",
        scopes: &scopes,
        nonce: Some("n-1"),
        code_challenge: Some(CHALLENGE),
    };
    let code = authorize::issue_code(&t.ctx, request, &session, user).await.unwrap();
    let answer = token(&t, &redeem(&code, VERIFIER)).await.unwrap();
    let id_token = answer["id_token"].as_str().unwrap();
    let claims = jsonwebtoken::dangerous::insecure_decode::<serde_json::Value>(id_token)
        .unwrap()
        .claims;
    assert_eq!(claims["nonce"], "n-1");
    assert_eq!(claims["amr"], json!(["pwd", "otp", "mfa"]));
    assert_eq!(claims["auth_time"], json!(session.auth_time.timestamp()));
    assert_eq!(claims["sid"], json!(crate::tokens::sid(&session.id_hash)));
}
