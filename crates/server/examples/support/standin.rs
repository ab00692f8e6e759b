//! Stand-ins for providers the tests cannot reach, on a loopback port, serving the shapes
//! their documentation gives:
//!
//! - GitHub (OAuth 2.0, no ID token): `/login/oauth/authorize`, `/login/oauth/access_token`
//!   (which answers a refused code with HTTP 200 and an `error` member, as GitHub does),
//!   and the REST API under `/api/v3` (`/user`, `/user/emails`), as GitHub Enterprise
//!   Server lays it out.
//! - Microsoft's multi-tenant issuer: discovery at `/common/v2.0` declaring the issuer
//!   `{base}/{tenantid}/v2.0`, ID tokens whose `iss` carries their directory (`tid`).
//!
//! A Microsoft person may carry `forge` to make its ID token an attack: `nonce`, `aud` or
//! `exp` (seconds from now) overridden, or `signer` = `unknown` (a key the JWKS does not
//! hold), `none` (`alg: none`) or `hs256` (HMAC with the client secret).
//!
//! Both check PKCE S256 and single-use codes. The ID tokens are signed with a key ring of
//! the keys crate (an upstream's own keys); the relying party verifies them with the
//! `openidconnect` crate. Shared by the integration tests and the `upstream_login` load
//! example.

// The tests and the example each use part of it.
#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::{Form, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use openidconnect::{PkceCodeChallenge, PkceCodeVerifier};
use serde_json::{Value, json};
use tenantry_controlplane::model::SigningAlg;
use tenantry_crypto::{MasterKey, SecretBox};
use tenantry_keys::IssuerKeys;

pub const CLIENT_ID: &str = "tenantry-app";
pub const CLIENT_SECRET: &str = "a secret the stand-in knows";

/// One authorization waiting for its code exchange.
struct Grant {
    challenge: String,
    nonce: Option<String>,
    person: Value,
}

/// What the stand-in knows and what it was asked.
#[derive(Default)]
struct Known {
    /// Who the next authorization signs in: GitHub `{"user": …, "emails": […]}`, or the
    /// ID token claims of a Microsoft account (with `tid`, and `iss_tid` to lie).
    person: Value,
    codes: HashMap<String, Grant>,
    tokens: HashMap<String, Value>,
    /// API calls without a `User-Agent` (GitHub refuses them).
    calls_without_agent: usize,
    /// Discovery documents and JWKS served.
    discoveries: usize,
    jwks_served: usize,
    /// Authorizations so far (numbering the people of `{"unique": true}`).
    authorizations: usize,
}

#[derive(Clone)]
struct Shared {
    base: String,
    known: Arc<Mutex<Known>>,
    keys: Arc<IssuerKeys>,
    /// Keys the JWKS does not publish (for `forge.signer = "unknown"`).
    strangers: Arc<IssuerKeys>,
}

/// A running stand-in.
pub struct StandIn {
    pub base: String,
    known: Arc<Mutex<Known>>,
}

impl StandIn {
    pub async fn start() -> Self {
        let secrets = SecretBox::new(MasterKey::generate(), vec![]);
        let ring = tenantry_keys::generate_ring(&secrets, "stand-in", chrono::Utc::now()).unwrap();
        let keys = Arc::new(IssuerKeys::open(&ring, &secrets, "stand-in").unwrap());
        let ring = tenantry_keys::generate_ring(&secrets, "stranger", chrono::Utc::now()).unwrap();
        let strangers = Arc::new(IssuerKeys::open(&ring, &secrets, "stranger").unwrap());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let known = Arc::new(Mutex::new(Known::default()));
        let shared = Shared {
            base: base.clone(),
            known: known.clone(),
            keys,
            strangers,
        };
        let app = Router::new()
            .route("/login/oauth/authorize", get(authorize))
            .route("/login/oauth/access_token", post(github_token))
            .route("/api/v3/", get(github_root))
            .route("/api/v3/user", get(github_user))
            .route("/api/v3/user/emails", get(github_emails))
            .route("/common/v2.0/.well-known/openid-configuration", get(ms_discovery))
            .route("/common/oauth2/v2.0/authorize", get(authorize))
            .route("/common/oauth2/v2.0/token", post(ms_token))
            .route("/common/discovery/v2.0/keys", get(ms_keys))
            .with_state(shared);
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self { base, known }
    }

    /// Who the next authorization signs in.
    pub fn sign_in_as(&self, person: Value) {
        self.known.lock().unwrap().person = person;
    }

    pub fn calls_without_agent(&self) -> usize {
        self.known.lock().unwrap().calls_without_agent
    }

    /// How many discovery documents and JWKS it served.
    pub fn documents_served(&self) -> (usize, usize) {
        let known = self.known.lock().unwrap();
        (known.discoveries, known.jwks_served)
    }
}

fn random() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// Both providers' authorization endpoint: signs the stand-in's person in at once.
async fn authorize(State(shared): State<Shared>, Query(query): Query<HashMap<String, String>>) -> Response {
    if query.get("client_id").map(String::as_str) != Some(CLIENT_ID)
        || query.get("code_challenge_method").map(String::as_str) != Some("S256")
    {
        return (StatusCode::BAD_REQUEST, "client_id and PKCE S256 are required").into_response();
    }
    let code = random();
    let mut known = shared.known.lock().unwrap();
    known.authorizations += 1;
    let mut person = known.person.clone();
    // A person of their own for every authorization: `sub` and `email` numbered.
    if person.get("unique").is_some_and(|u| u == true) {
        let n = known.authorizations;
        person["sub"] = json!(format!("{}-{n}", person["sub"].as_str().unwrap_or_default()));
        person["email"] = json!(format!("{n}-{}", person["email"].as_str().unwrap_or_default()));
        person.as_object_mut().unwrap().remove("unique");
    }
    let grant = Grant {
        challenge: query["code_challenge"].clone(),
        nonce: query.get("nonce").cloned(),
        person,
    };
    known.codes.insert(code.clone(), grant);
    let mut back = url::Url::parse(&query["redirect_uri"]).unwrap();
    back.query_pairs_mut()
        .append_pair("code", &code)
        .append_pair("state", query.get("state").map_or("", String::as_str));
    Redirect::to(back.as_str()).into_response()
}

/// The grant of a code exchange whose client secret, code and PKCE verifier are right.
fn redeem(shared: &Shared, form: &HashMap<String, String>) -> Option<Grant> {
    if form.get("client_id").map(String::as_str) != Some(CLIENT_ID)
        || form.get("client_secret").map(String::as_str) != Some(CLIENT_SECRET)
    {
        return None;
    }
    let grant = shared.known.lock().unwrap().codes.remove(form.get("code")?)?;
    let verifier = PkceCodeVerifier::new(form.get("code_verifier")?.clone());
    let challenge = PkceCodeChallenge::from_code_verifier_sha256(&verifier);
    (challenge.as_str() == grant.challenge).then_some(grant)
}

async fn github_token(State(shared): State<Shared>, Form(form): Form<HashMap<String, String>>) -> Json<Value> {
    let Some(grant) = redeem(&shared, &form) else {
        return Json(json!({"error": "bad_verification_code",
            "error_description": "The code passed is incorrect or expired.",
            "error_uri": "https://docs.github.com/apps/managing-oauth-apps/troubleshooting-oauth-app-access-token-request-errors/#bad-verification-code"}));
    };
    let token = format!("gho_{}", random());
    shared.known.lock().unwrap().tokens.insert(token.clone(), grant.person);
    Json(json!({"access_token": token, "token_type": "bearer", "scope": "read:user,user:email"}))
}

/// The person of a GitHub API call's bearer token, or GitHub's refusal.
fn github_caller(shared: &Shared, headers: &HeaderMap) -> Result<Value, StatusCode> {
    let mut known = shared.known.lock().unwrap();
    if !headers.contains_key("user-agent") {
        known.calls_without_agent += 1;
        return Err(StatusCode::FORBIDDEN);
    }
    let token = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    known.tokens.get(token).cloned().ok_or(StatusCode::UNAUTHORIZED)
}

/// A GitHub API answer: `part` of the caller's person, or the refusal GitHub gives.
fn github_answer(shared: &Shared, headers: &HeaderMap, part: &str) -> Response {
    match github_caller(shared, headers) {
        Ok(person) => Json(person[part].clone()).into_response(),
        Err(StatusCode::FORBIDDEN) => {
            (StatusCode::FORBIDDEN, "Request forbidden by administrative rules.").into_response()
        }
        Err(status) => (status, Json(json!({"message": "Bad credentials"}))).into_response(),
    }
}

async fn github_root(State(shared): State<Shared>) -> Json<Value> {
    Json(json!({"current_user_url": format!("{}/api/v3/user", shared.base)}))
}

async fn github_user(State(shared): State<Shared>, headers: HeaderMap) -> Response {
    github_answer(&shared, &headers, "user")
}

async fn github_emails(State(shared): State<Shared>, headers: HeaderMap) -> Response {
    github_answer(&shared, &headers, "emails")
}

async fn ms_discovery(State(shared): State<Shared>) -> Json<Value> {
    shared.known.lock().unwrap().discoveries += 1;
    let base = &shared.base;
    Json(json!({
        "issuer": format!("{base}/{{tenantid}}/v2.0"),
        "authorization_endpoint": format!("{base}/common/oauth2/v2.0/authorize"),
        "token_endpoint": format!("{base}/common/oauth2/v2.0/token"),
        "jwks_uri": format!("{base}/common/discovery/v2.0/keys"),
        "response_types_supported": ["code", "id_token", "code id_token"],
        "subject_types_supported": ["pairwise"],
        "id_token_signing_alg_values_supported": ["ES256"],
        "token_endpoint_auth_methods_supported": ["client_secret_post"],
        "scopes_supported": ["openid", "profile", "email", "offline_access"],
    }))
}

async fn ms_keys(State(shared): State<Shared>) -> Response {
    shared.known.lock().unwrap().jwks_served += 1;
    ([("content-type", "application/json")], shared.keys.jwks().body.clone()).into_response()
}

async fn ms_token(State(shared): State<Shared>, Form(form): Form<HashMap<String, String>>) -> Response {
    let Some(grant) = redeem(&shared, &form) else {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": "invalid_grant", "error_description": "AADSTS70000"})),
        )
            .into_response();
    };
    let mut claims = grant.person.as_object().cloned().unwrap_or_default();
    let forge = claims.remove("forge").unwrap_or_default();
    let tid = claims["tid"].as_str().unwrap_or_default().to_owned();
    let iss_tid = claims.remove("iss_tid").and_then(|v| v.as_str().map(str::to_owned));
    let now = chrono::Utc::now().timestamp();
    claims.insert(
        "iss".into(),
        json!(format!("{}/{}/v2.0", shared.base, iss_tid.unwrap_or(tid))),
    );
    claims.insert("aud".into(), json!(CLIENT_ID));
    claims.insert("iat".into(), json!(now));
    claims.insert("nbf".into(), json!(now));
    claims.insert("exp".into(), json!(now + 3600));
    if let Some(nonce) = grant.nonce {
        claims.insert("nonce".into(), json!(nonce));
    }
    for claim in ["nonce", "aud"] {
        if let Some(forged) = forge.get(claim) {
            claims.insert(claim.into(), forged.clone());
        }
    }
    if let Some(offset) = forge.get("exp").and_then(Value::as_i64) {
        claims.insert("exp".into(), json!(now + offset));
    }
    let id_token = match forge.get("signer").and_then(Value::as_str) {
        Some("unknown") => shared.strangers.sign(SigningAlg::Es256, "JWT", &claims).unwrap(),
        Some("none") => {
            use base64::Engine;
            let b64 = |v: &Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
            format!(
                "{}.{}.",
                b64(&json!({"alg": "none", "typ": "JWT"})),
                b64(&Value::Object(claims))
            )
        }
        Some("hs256") => jsonwebtoken::encode(
            &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(CLIENT_SECRET.as_bytes()),
        )
        .unwrap(),
        _ => shared.keys.sign(SigningAlg::Es256, "JWT", &claims).unwrap(),
    };
    Json(json!({"token_type": "Bearer", "access_token": random(), "expires_in": 3600, "id_token": id_token}))
        .into_response()
}
