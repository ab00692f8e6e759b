//! The authorization code + PKCE flow driven by an independent OIDC client library (the
//! `openidconnect` crate): discovery, login through the hosted form over HTTP, code
//! exchange, ID token validation against the published JWKS, userinfo, refresh rotation
//! and reuse detection. Negative cases follow RFC 9700.

use crate::common;
use crate::common::browser::{Browser, form_action, hidden, query_param};
use crate::common::{TestServer, start, start_with_config};
use openidconnect::core::{CoreAuthenticationFlow, CoreClient, CoreProviderMetadata, CoreUserInfoClaims};
use openidconnect::{
    AccessTokenHash, AuthorizationCode, ClientId, CsrfToken, IssuerUrl, Nonce, OAuth2TokenResponse, PkceCodeChallenge,
    RedirectUrl, RefreshToken, Scope, TokenResponse,
};
use reqwest::Method;
use serde_json::json;

const REDIRECT: &str = "http://localhost:3000/callback";
/// RFC 7636 appendix B: a code verifier and its S256 challenge, for flows driven by hand
/// (confidential clients need PKCE too in tenants created now).
const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const CHALLENGE_PARAMS: &str = "&code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM&code_challenge_method=S256";

/// The HTTP client handed to `openidconnect` (no redirects followed, as it requires).
pub(crate) async fn http(request: openidconnect::HttpRequest) -> Result<openidconnect::HttpResponse, std::io::Error> {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(std::io::Error::other)?;
    let (parts, body) = request.into_parts();
    let response = client
        .request(parts.method, parts.uri.to_string())
        .headers(parts.headers)
        .body(body)
        .send()
        .await
        .map_err(std::io::Error::other)?;
    let mut builder = http::Response::builder().status(response.status());
    for (name, value) in response.headers() {
        builder = builder.header(name, value);
    }
    let bytes = response.bytes().await.map_err(std::io::Error::other)?;
    builder.body(bytes.to_vec()).map_err(std::io::Error::other)
}

pub(crate) async fn make_user(server: &TestServer, slug: &str) {
    let (status, body) = server
        .admin(
            Method::POST,
            &format!("/v1/admin/tenants/{slug}/users"),
            Some(json!({"email": "ada@example.com", "password": "correct horse battery", "given_name": "Ada", "email_verified": true})),
        )
        .await;
    assert_eq!(status, 201, "{body}");
}

/// Logs in through the hosted form; answers the redirect location.
pub(crate) async fn login(browser: &mut Browser, auth_url: &str, password: &str) -> (u16, String, String) {
    let (status, _, page) = browser.send(Method::GET, auth_url, None).await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("<label for=\"password\">"), "a labelled password field");
    let action = form_action(&page);
    let interaction = hidden(&page, "interaction");
    let csrf = hidden(&page, "csrf");
    let form = [
        ("interaction", interaction.as_str()),
        ("csrf", csrf.as_str()),
        ("email", "ada@example.com"),
        ("password", password),
    ];
    let (status, headers, body) = browser.send(Method::POST, &action, Some(&form)).await;
    (status, headers.get("location").cloned().unwrap_or_default(), body)
}

#[tokio::test]
async fn code_flow_with_pkce_on_sqlite() {
    let server = start().await;
    code_flow_with_pkce_through_an_independent_oidc_client(&server, "local").await;
}

/// The same flow for a tenant whose database is PostgreSQL (a fresh database on the server
/// named by `TENANTRY_TEST_POSTGRES_URL`; CI sets it, and an unreachable server fails).
#[tokio::test]
async fn code_flow_with_pkce_on_postgres() {
    let server = start().await;
    let client = common::postgres::spa_client(&["openid", "profile", "email"]);
    let Some(database) = common::postgres::postgres_tenant(&server, "pg", client).await else {
        return;
    };
    code_flow_with_pkce_through_an_independent_oidc_client(&server, "pg").await;
    let (status, db) = server.admin(Method::GET, "/v1/admin/tenants/pg/database", None).await;
    assert_eq!((status, db["driver"].as_str()), (200, Some("postgres")));
    drop(server);
    database.drop_database().await;
}

async fn code_flow_with_pkce_through_an_independent_oidc_client(server: &TestServer, slug: &str) {
    make_user(server, slug).await;
    let issuer = IssuerUrl::new(format!("{}/t/{slug}", server.base)).unwrap();
    let metadata = CoreProviderMetadata::discover_async(issuer, &http).await.unwrap();
    let client = CoreClient::from_provider_metadata(metadata, ClientId::new("demo-spa".into()), None)
        .set_redirect_uri(RedirectUrl::new(REDIRECT.into()).unwrap());

    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (auth_url, state, nonce) = client
        .authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .add_scope(Scope::new("profile".into()))
        .add_scope(Scope::new("email".into()))
        .set_pkce_challenge(challenge)
        .url();

    let mut browser = Browser::new();
    // A wrong password shows the form again with an error, and no session.
    let (status, _, page) = login(&mut browser, auth_url.as_str(), "wrong password!").await;
    assert_eq!(status, 401);
    assert!(page.contains("role=\"alert\""));
    assert!(!browser.cookies.contains_key("tenantry_session"));

    let (status, location, _) = login(&mut browser, auth_url.as_str(), "correct horse battery").await;
    assert_eq!(status, 303, "a redirect to the client");
    assert!(location.starts_with(REDIRECT));
    assert_eq!(
        query_param(&location, "state").as_deref(),
        Some(state.secret().as_str())
    );
    assert_eq!(
        query_param(&location, "iss").as_deref(),
        Some(format!("{}/t/{slug}", server.base).as_str())
    );
    let code = query_param(&location, "code").unwrap();

    let tokens = client
        .exchange_code(AuthorizationCode::new(code.clone()))
        .unwrap()
        .set_pkce_verifier(verifier)
        .request_async(&http)
        .await
        .unwrap();
    let id_token = tokens.id_token().expect("an ID token for the openid scope");
    let verifier = client.id_token_verifier();
    let claims = id_token.claims(&verifier, &nonce).unwrap();
    assert_eq!(claims.email().map(|e| e.as_str()), Some("ada@example.com"));
    let expected_hash = AccessTokenHash::from_token(
        tokens.access_token(),
        id_token.signing_alg().unwrap(),
        id_token.signing_key(&verifier).unwrap(),
    )
    .unwrap();
    assert_eq!(claims.access_token_hash(), Some(&expected_hash));

    // Before the replay, the first redemption's access token is good.
    let first_access = tokens.access_token().secret().clone();
    let (status, _, _) = server.userinfo(slug, &first_access).await;
    assert_eq!(status, 200);
    let (introspector, secret) = introspecting_client(server, slug).await;
    assert_eq!(
        introspect(server, slug, &introspector, &secret, &first_access).await["active"],
        true
    );

    // The code is single use: a replay fails and revokes the refresh token it produced
    // and the access token of the first redemption (RFC 9700 4.5).
    let refresh = tokens.refresh_token().expect("the demo client may refresh").clone();
    let replay = client
        .exchange_code(AuthorizationCode::new(code))
        .unwrap()
        .set_pkce_verifier(openidconnect::PkceCodeVerifier::new("x".repeat(43)))
        .request_async(&http)
        .await;
    assert!(replay.is_err());
    let revoked = client
        .exchange_refresh_token(&refresh)
        .unwrap()
        .request_async(&http)
        .await;
    assert!(revoked.is_err(), "the replay revoked the code's refresh token");
    let (status, challenge, _) = server.userinfo(slug, &first_access).await;
    assert_eq!(status, 401, "the replay revoked the first access token");
    assert!(challenge.unwrap().contains("invalid_token"));
    assert_eq!(
        introspect(server, slug, &introspector, &secret, &first_access).await,
        json!({"active": false})
    );

    // A second authorization reuses the session (no login form), then refresh rotates.
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (auth_url, _, nonce) = client
        .authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .add_scope(Scope::new("profile".into()))
        .set_pkce_challenge(challenge)
        .url();
    let (status, headers, _) = browser.send(Method::GET, auth_url.as_str(), None).await;
    assert_eq!(status, 303);
    let code = query_param(&headers["location"], "code").unwrap();
    let tokens = client
        .exchange_code(AuthorizationCode::new(code))
        .unwrap()
        .set_pkce_verifier(verifier)
        .request_async(&http)
        .await
        .unwrap();
    tokens
        .id_token()
        .unwrap()
        .claims(&client.id_token_verifier(), &nonce)
        .unwrap();
    let userinfo: CoreUserInfoClaims = client
        .user_info(tokens.access_token().clone(), None)
        .unwrap()
        .request_async(&http)
        .await
        .unwrap();
    assert_eq!(
        userinfo.given_name().and_then(|n| n.get(None)).map(|n| n.as_str()),
        Some("Ada")
    );
    let first: RefreshToken = tokens.refresh_token().unwrap().clone();
    let rotated = client
        .exchange_refresh_token(&first)
        .unwrap()
        .request_async(&http)
        .await
        .unwrap();
    let second = rotated.refresh_token().unwrap().clone();
    assert_ne!(first.secret(), second.secret());
    // Reusing the rotated token revokes the family: the newer token dies with it.
    assert!(
        client
            .exchange_refresh_token(&first)
            .unwrap()
            .request_async(&http)
            .await
            .is_err()
    );
    assert!(
        client
            .exchange_refresh_token(&second)
            .unwrap()
            .request_async(&http)
            .await
            .is_err()
    );
}

/// A confidential client of the tenant that may introspect tokens.
async fn introspecting_client(server: &TestServer, slug: &str) -> (String, String) {
    let (status, created) = server
        .admin(
            Method::POST,
            &format!("/v1/admin/tenants/{slug}/clients"),
            Some(json!({"name": "Resource server", "grant_types": ["client_credentials"], "scopes": ["api"]})),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    (
        created["client_id"].as_str().unwrap().to_owned(),
        created["client_secret"].as_str().unwrap().to_owned(),
    )
}

/// The introspection answer (RFC 7662) for `token`.
async fn introspect(server: &TestServer, slug: &str, id: &str, secret: &str, token: &str) -> serde_json::Value {
    let response = server
        .http
        .post(format!("{}/t/{slug}/introspect", server.base))
        .basic_auth(id, Some(secret))
        .form(&[("token", token)])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

#[tokio::test]
async fn authorization_requests_that_must_fail() {
    let server = start().await;
    make_user(&server, "local").await;
    let base = format!("{}/t/local/authorize", server.base);
    let challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
    let mut browser = Browser::new();
    let url = |extra: &str| {
        format!(
            "{base}?client_id=demo-spa&response_type=code&scope=openid&state=s1&code_challenge={challenge}&code_challenge_method=S256&redirect_uri={}{extra}",
            urlencode(REDIRECT)
        )
    };

    // Redirect URI mismatch or unknown client: an error page, never a redirect.
    for bad in [
        format!(
            "{base}?client_id=demo-spa&response_type=code&redirect_uri={}",
            urlencode("http://localhost:3000/callback/../evil")
        ),
        format!(
            "{base}?client_id=demo-spa&response_type=code&redirect_uri={}",
            urlencode("https://evil.example/cb")
        ),
        format!(
            "{base}?client_id=ghost&response_type=code&redirect_uri={}",
            urlencode(REDIRECT)
        ),
    ] {
        let (status, headers, page) = browser.send(Method::GET, &bad, None).await;
        assert_eq!(status, 400, "{bad}");
        assert!(!headers.contains_key("location"));
        assert!(page.contains("role=\"alert\""));
    }

    // Later errors go back to the client with state and iss.
    let cases = [
        (url("&prompt=none"), "login_required"),
        (url("&scope=admin").replace("scope=openid&", ""), "invalid_scope"),
        (
            url("").replace("code_challenge_method=S256", "code_challenge_method=plain"),
            "invalid_request",
        ),
        (
            url("").replace(&format!("&code_challenge={challenge}&code_challenge_method=S256"), ""),
            "invalid_request",
        ),
        (
            url("").replace("response_type=code", "response_type=token"),
            "unsupported_response_type",
        ),
    ];
    for (request, error) in cases {
        let (status, headers, _) = browser.send(Method::GET, &request, None).await;
        assert_eq!(status, 303, "{request}");
        let location = &headers["location"];
        assert!(location.starts_with(REDIRECT), "{location}");
        assert_eq!(query_param(location, "error").as_deref(), Some(error), "{request}");
        assert_eq!(query_param(location, "state").as_deref(), Some("s1"));
        assert!(query_param(location, "iss").is_some());
    }

    // The login form refuses a missing or wrong CSRF token and a forged interaction.
    let (_, _, page) = browser.send(Method::GET, &url(""), None).await;
    let interaction = hidden(&page, "interaction");
    for (interaction, csrf) in [
        (interaction.as_str(), "wrong"),
        ("tsb1.forged.x", hidden(&page, "csrf").as_str()),
    ] {
        let form = [
            ("interaction", interaction),
            ("csrf", csrf),
            ("email", "ada@example.com"),
            ("password", "correct horse battery"),
        ];
        let (status, headers, _) = browser
            .send(Method::POST, &format!("{}/t/local/login", server.base), Some(&form))
            .await;
        assert_eq!(status, 400);
        assert!(!headers.contains_key("location"));
    }
}

fn urlencode(value: &str) -> String {
    url::form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

/// A relying party's back-channel logout endpoint: keeps every `logout_token` it receives.
async fn logout_receiver() -> (String, tokio::sync::mpsc::UnboundedReceiver<String>) {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    let app = axum::Router::new().route(
        "/backchannel",
        axum::routing::post(move |body: String| {
            let tx = tx.clone();
            async move {
                let token = url::form_urlencoded::parse(body.as_bytes())
                    .find(|(k, _)| k == "logout_token")
                    .map(|(_, v)| v.into_owned())
                    .unwrap_or_default();
                let _ = tx.send(token);
                axum::http::StatusCode::OK
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/backchannel", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, rx)
}

#[tokio::test]
async fn rp_initiated_logout_ends_the_session_and_notifies_relying_parties() {
    // The relying party listens on loopback, which the installation must allow.
    rp_initiated_logout(true).await;
}

#[tokio::test]
async fn back_channel_logout_never_reaches_loopback_unless_allowed() {
    rp_initiated_logout(false).await;
}

/// Logs in through a confidential client with a back-channel logout URI on loopback, logs
/// out, and checks what the relying party received: a verifiable logout token when private
/// networks are allowed, nothing under the default outbound policy.
async fn rp_initiated_logout(allow_private_networks: bool) {
    let server = start_with_config(Some(&format!(
        "[outbound]\nallow_private_networks = {allow_private_networks}\n"
    )))
    .await;
    make_user(&server, "local").await;
    let (backchannel, mut received) = logout_receiver().await;
    let (status, created) = server
        .admin(
            Method::POST,
            "/v1/admin/tenants/local/clients",
            Some(json!({"client_id": "portal", "name": "Portal", "first_party": true,
                "redirect_uris": ["https://portal.example/cb"],
                "post_logout_redirect_uris": ["https://portal.example/bye"],
                "backchannel_logout_uri": backchannel})),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let secret = created["client_secret"].as_str().unwrap().to_owned();

    // Log in through portal (a confidential client, with PKCE as new tenants require).
    let mut browser = Browser::new();
    let auth = format!(
        "{}/t/local/authorize?client_id=portal&response_type=code&scope=openid&redirect_uri={}{CHALLENGE_PARAMS}",
        server.base,
        urlencode("https://portal.example/cb")
    );
    let (status, location, _) = login(&mut browser, &auth, "correct horse battery").await;
    assert_eq!(status, 303);
    let code = query_param(&location, "code").unwrap();
    let response = server
        .http
        .post(format!("{}/t/local/token", server.base))
        .basic_auth("portal", Some(&secret))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", "https://portal.example/cb"),
            ("code_verifier", VERIFIER),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let tokens: serde_json::Value = response.json().await.unwrap();
    let id_token = tokens["id_token"].as_str().unwrap().to_owned();
    let refresh = tokens["refresh_token"].as_str().unwrap().to_owned();
    let id_claims = jsonwebtoken::dangerous::insecure_decode::<serde_json::Value>(&id_token)
        .unwrap()
        .claims;

    // Open-redirect attempts end on our own page.
    for uri in [
        "https://evil.example/",
        "https://portal.example/bye/../x",
        "https://portal.example/bye?x=1",
    ] {
        let url = format!(
            "{}/t/local/logout?id_token_hint={id_token}&post_logout_redirect_uri={}",
            server.base,
            urlencode(uri)
        );
        let (status, headers, _) = browser.send(Method::GET, &url, None).await;
        assert_eq!(status, 400, "{uri}");
        assert!(!headers.contains_key("location"));
    }

    let url = format!(
        "{}/t/local/logout?id_token_hint={id_token}&post_logout_redirect_uri={}&state=bye-1",
        server.base,
        urlencode("https://portal.example/bye")
    );
    let (status, headers, _) = browser.send(Method::GET, &url, None).await;
    assert_eq!(status, 303);
    assert_eq!(headers["location"], "https://portal.example/bye?state=bye-1");

    // The session is over: prompt=none now needs a login, the refresh token is revoked.
    let (status, headers, _) = browser.send(Method::GET, &format!("{auth}&prompt=none"), None).await;
    assert_eq!(status, 303);
    assert_eq!(
        query_param(&headers["location"], "error").as_deref(),
        Some("login_required")
    );
    let refreshed = server
        .http
        .post(format!("{}/t/local/token", server.base))
        .basic_auth("portal", Some(&secret))
        .form(&[("grant_type", "refresh_token"), ("refresh_token", &refresh)])
        .send()
        .await
        .unwrap();
    assert_eq!(refreshed.status(), 400);

    if !allow_private_networks {
        let delivered = tokio::time::timeout(std::time::Duration::from_secs(2), received.recv()).await;
        assert!(delivered.is_err(), "nothing is posted to a loopback address");
        return;
    }
    // The relying party received a logout token it can verify against the JWKS.
    let logout_token = tokio::time::timeout(std::time::Duration::from_secs(10), received.recv())
        .await
        .expect("a back-channel logout within 10 s")
        .unwrap();
    let header = jsonwebtoken::decode_header(&logout_token).unwrap();
    assert_eq!(header.typ.as_deref(), Some("logout+jwt"));
    let (set, _) = server.jwks("local").await;
    let mut validation = jsonwebtoken::Validation::new(header.alg);
    validation.set_audience(&["portal"]);
    validation.set_issuer(&[format!("{}/t/local", server.base)]);
    let jwk = set.find(header.kid.as_deref().unwrap()).unwrap();
    let claims = jsonwebtoken::decode::<serde_json::Value>(
        &logout_token,
        &jsonwebtoken::DecodingKey::from_jwk(jwk).unwrap(),
        &validation,
    )
    .unwrap()
    .claims;
    assert_eq!(claims["sid"], id_claims["sid"]);
    assert_eq!(claims["sub"], id_claims["sub"]);
    assert!(claims["events"]["http://schemas.openid.net/event/backchannel-logout"].is_object());
    assert!(claims.get("nonce").is_none());
}

#[tokio::test]
async fn logout_without_a_hint_asks_for_confirmation() {
    let server = start().await;
    make_user(&server, "local").await;
    let mut browser = Browser::new();
    let auth = format!(
        "{}/t/local/authorize?client_id=demo-spa&response_type=code&scope=openid&redirect_uri={}&code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM&code_challenge_method=S256&ui_locales=es",
        server.base,
        urlencode(REDIRECT)
    );
    let (status, _, _) = login(&mut browser, &auth, "correct horse battery").await;
    assert_eq!(status, 303);
    let (status, _, page) = browser
        .send(
            Method::GET,
            &format!("{}/t/local/logout?ui_locales=es", server.base),
            None,
        )
        .await;
    assert_eq!(status, 200);
    assert!(page.contains("Cerrar sesión"), "{page}");
    // A forged confirmation (no matching CSRF token) does not log out.
    let forged = [("confirm", "yes"), ("csrf", "guess")];
    let (_, _, again) = browser
        .send(Method::POST, &format!("{}/t/local/logout", server.base), Some(&forged))
        .await;
    assert!(again.contains("csrf"), "still asking");
    let csrf = hidden(&page, "csrf");
    let form = [("ui_locales", "es"), ("csrf", csrf.as_str()), ("confirm", "yes")];
    let (status, _, done) = browser
        .send(Method::POST, &format!("{}/t/local/logout", server.base), Some(&form))
        .await;
    assert_eq!(status, 200);
    assert!(done.contains("Has cerrado la sesión"), "{done}");
    let (status, _, page) = browser.send(Method::GET, &auth, None).await;
    assert_eq!(status, 200);
    assert!(page.contains("name=\"password\""), "the login form again");
}

#[tokio::test]
async fn third_party_clients_need_consent_and_codes_stay_in_their_tenant() {
    let server = start().await;
    make_user(&server, "local").await;
    // A tenant scope that releases a standard claim, and a third-party client that asks for it.
    let (status, body) = server
        .admin(
            Method::PUT,
            "/v1/admin/tenants/local/scopes/contact",
            Some(json!({"description": "Contact details", "claims": ["email", "given_name"]})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, _) = server
        .admin(
            Method::PUT,
            "/v1/admin/tenants/local/scopes/profile",
            Some(json!({"claims": []})),
        )
        .await;
    assert_eq!(status, 422, "built-in scopes cannot be redefined");
    let (status, created) = server
        .admin(
            Method::POST,
            "/v1/admin/tenants/local/clients",
            Some(
                json!({"client_id": "partner", "name": "Partner app", "redirect_uris": ["https://partner.example/cb"],
                "scopes": ["openid", "contact"]}),
            ),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let secret = created["client_secret"].as_str().unwrap().to_owned();
    let auth = format!(
        "{}/t/local/authorize?client_id=partner&response_type=code&scope={}&state=st&redirect_uri={}{CHALLENGE_PARAMS}",
        server.base,
        urlencode("openid contact"),
        urlencode("https://partner.example/cb")
    );

    // First time: the consent page; denying goes back with access_denied.
    let mut browser = Browser::new();
    let (status, _, page) = {
        let (status, location, page) = login(&mut browser, &auth, "correct horse battery").await;
        assert!(location.is_empty());
        (status, (), page)
    };
    assert_eq!(status, 200);
    assert!(page.contains("Partner app") && page.contains("contact"), "{page}");
    let interaction = hidden(&page, "interaction");
    let csrf = hidden(&page, "csrf");
    let consent_url = format!("{}/t/local/consent", server.base);
    let deny = [
        ("interaction", interaction.as_str()),
        ("csrf", csrf.as_str()),
        ("decision", "deny"),
    ];
    let (status, headers, _) = browser.send(Method::POST, &consent_url, Some(&deny)).await;
    assert_eq!(status, 303);
    assert_eq!(
        query_param(&headers["location"], "error").as_deref(),
        Some("access_denied")
    );

    // prompt=none cannot show the page: consent_required.
    let (_, headers, _) = browser.send(Method::GET, &format!("{auth}&prompt=none"), None).await;
    assert_eq!(
        query_param(&headers["location"], "error").as_deref(),
        Some("consent_required")
    );

    // Allowing issues a code; the consent is remembered next time.
    let (_, _, page) = browser.send(Method::GET, &auth, None).await;
    let allow = [
        ("interaction", hidden(&page, "interaction")),
        ("csrf", hidden(&page, "csrf")),
        ("decision", "allow".to_owned()),
    ];
    let allow: Vec<(&str, &str)> = allow.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (status, headers, _) = browser.send(Method::POST, &consent_url, Some(&allow)).await;
    assert_eq!(status, 303);
    let code = query_param(&headers["location"], "code").unwrap();
    let (status, headers, _) = browser.send(Method::GET, &auth, None).await;
    assert_eq!(status, 303, "remembered consent: straight back with a code");
    let second_code = query_param(&headers["location"], "code").unwrap();

    // A code of tenant local is unknown at tenant beta, even for a client with the same id.
    let (status, _) = server
        .admin(
            Method::POST,
            "/v1/admin/tenants",
            Some(json!({"slug": "beta", "settings": {"user_db": {"driver": "sqlite"}}})),
        )
        .await;
    assert_eq!(status, 201);
    let (_, beta_client) = server
        .admin(
            Method::POST,
            "/v1/admin/tenants/beta/clients",
            Some(json!({"client_id": "partner", "name": "Partner at beta", "redirect_uris": ["https://partner.example/cb"]})),
        )
        .await;
    let beta_secret = beta_client["client_secret"].as_str().unwrap().to_owned();
    let exchange = |slug: &str, secret: &str, code: &str| {
        let url = format!("{}/t/{slug}/token", server.base);
        let (secret, code) = (secret.to_owned(), code.to_owned());
        let http = server.http.clone();
        async move {
            let response = http
                .post(url)
                .basic_auth("partner", Some(secret))
                .form(&[
                    ("grant_type", "authorization_code"),
                    ("code", code.as_str()),
                    ("redirect_uri", "https://partner.example/cb"),
                    ("code_verifier", VERIFIER),
                ])
                .send()
                .await
                .unwrap();
            let status = response.status().as_u16();
            (status, response.json::<serde_json::Value>().await.unwrap())
        }
    };
    let (status, body) = exchange("beta", &beta_secret, &code).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_grant")));
    let (status, tokens) = exchange("local", &secret, &code).await;
    assert_eq!(status, 200, "{tokens}");
    let id = jsonwebtoken::dangerous::insecure_decode::<serde_json::Value>(tokens["id_token"].as_str().unwrap())
        .unwrap()
        .claims;
    assert_eq!(
        (id["email"].as_str(), id["given_name"].as_str()),
        (Some("ada@example.com"), Some("Ada"))
    );
    assert!(id.get("family_name").is_none(), "only the claims the scope lists");
    // Its refresh token is unknown at beta too.
    let refresh = tokens["refresh_token"].as_str().unwrap();
    let response = server
        .http
        .post(format!("{}/t/beta/token", server.base))
        .basic_auth("partner", Some(&beta_secret))
        .form(&[("grant_type", "refresh_token"), ("refresh_token", refresh)])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    // And the redirect_uri must match the one of the request.
    let response = server
        .http
        .post(format!("{}/t/local/token", server.base))
        .basic_auth("partner", Some(&secret))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", second_code.as_str()),
            ("redirect_uri", "https://partner.example/other"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
}

/// Signing out on the account page ends the login session as RP-initiated logout does:
/// the apps of the session get their back-channel logout token. The account page signs
/// in silently on the session the app's login opened.
#[tokio::test]
async fn signing_out_on_the_account_page_notifies_the_sessions_apps() {
    let server = start_with_config(Some("[outbound]\nallow_private_networks = true\n")).await;
    make_user(&server, "local").await;
    let (backchannel, mut received) = logout_receiver().await;
    let client = json!({"client_id": "portal", "name": "Portal", "first_party": true,
        "redirect_uris": ["https://portal.example/cb"], "backchannel_logout_uri": backchannel});
    let (status, created) = server
        .admin(Method::POST, "/v1/admin/tenants/local/clients", Some(client))
        .await;
    assert_eq!(status, 201, "{created}");
    let mut browser = Browser::new();
    let auth = format!(
        "{}/t/local/authorize?client_id=portal&response_type=code&scope=openid&redirect_uri={}{CHALLENGE_PARAMS}",
        server.base,
        urlencode("https://portal.example/cb")
    );
    let (status, _, _) = login(&mut browser, &auth, "correct horse battery").await;
    assert_eq!(status, 303);

    // The account page: authorize → callback → page, with no login page on the way.
    let account = crate::account_page::account_url(&server);
    let mut url = account.clone();
    for _ in 0..3 {
        let (status, headers, body) = browser.send(Method::GET, &url, None).await;
        assert_eq!(status, 303, "{body}");
        url = headers["location"].clone();
    }
    assert_eq!(url, account);
    let (status, _, page) = browser.send(Method::GET, &account, None).await;
    assert_eq!(status, 200, "{page}");
    let (status, _, body) = crate::account_page::post(&server, &mut browser, &page, "sign-out", &[]).await;
    assert_eq!(status, 200, "{body}");
    let logout_token = tokio::time::timeout(std::time::Duration::from_secs(10), received.recv())
        .await
        .expect("a back-channel logout within 10 s")
        .unwrap();
    let claims = jsonwebtoken::dangerous::insecure_decode::<serde_json::Value>(&logout_token)
        .unwrap()
        .claims;
    assert_eq!(claims["aud"], "portal", "{claims}");
    assert!(claims["events"]["http://schemas.openid.net/event/backchannel-logout"].is_object());
}
