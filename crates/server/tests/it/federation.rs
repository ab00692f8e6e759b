//! Sign-in through an upstream identity provider, end to end over HTTP: the upstream is a
//! second Tenantry tenant (`up`) on the same server, a real OpenID provider with its own
//! keys, hosted login and code flow; the relying tenant (`rp`) signs its users in there
//! and issues its own tokens, which an independent client (`openidconnect`) validates.
//!
//! Cookies are scoped by path (`/t/{slug}`), so one browser is modelled as one jar per
//! tenant.

use openidconnect::core::{CoreAuthenticationFlow, CoreClient, CoreProviderMetadata};
use openidconnect::{
    AuthorizationCode, ClientId, CsrfToken, IssuerUrl, Nonce, OAuth2TokenResponse, PkceCodeChallenge, RedirectUrl,
    Scope, TokenResponse,
};
use reqwest::Method;
use serde_json::{Value, json};
use tenantry_dataplane::UserRepository;

use crate::common::browser::{Browser, form_actions, hidden, query_param};
use crate::common::{TestServer, start_with_config};
use crate::oidc_flow::http;

pub(crate) const REDIRECT: &str = "http://localhost:3000/callback";
pub(crate) const ALLOW_LOOPBACK: &str = "[outbound]\nallow_private_networks = true\n";

/// A browser: one cookie jar per tenant path.
pub(crate) struct Tabs {
    pub rp: Browser,
    pub up: Browser,
}

impl Tabs {
    pub fn new() -> Self {
        Self {
            rp: Browser::new(),
            up: Browser::new(),
        }
    }

    fn jar(&mut self, url: &str) -> &mut Browser {
        if url.contains("/t/up/") {
            &mut self.up
        } else {
            &mut self.rp
        }
    }

    pub async fn get(&mut self, url: &str) -> (u16, std::collections::HashMap<String, String>, String) {
        self.jar(url).send(Method::GET, url, None).await
    }

    pub async fn post(
        &mut self,
        url: &str,
        form: &[(&str, &str)],
    ) -> (u16, std::collections::HashMap<String, String>, String) {
        self.jar(url).send(Method::POST, url, Some(form)).await
    }
}

/// The upstream tenant `up` with the user Ada and a confidential client for `rp`; the
/// relying tenant `rp` with `rp_settings` merged over a provider pointing at `up`, and the
/// SPA client. Answers the server.
pub(crate) async fn setup(config: Option<&str>, rp_settings: Value, provider: Value) -> TestServer {
    let server = start_with_config(config).await;
    let base = server.base.clone();
    let (status, body) = server
        .admin(Method::POST, "/v1/admin/tenants", Some(json!({"slug": "up"})))
        .await;
    assert_eq!(status, 201, "{body}");
    let (status, client) = server
        .admin(
            Method::POST,
            "/v1/admin/tenants/up/clients",
            Some(json!({"client_id": "rp", "name": "Relying tenant", "first_party": true,
                "grant_types": ["authorization_code"],
                "redirect_uris": [format!("{base}/t/rp/federation/callback")],
                "scopes": ["openid", "email", "profile"]})),
        )
        .await;
    assert_eq!(status, 201, "{client}");
    let (status, body) = server
        .admin(
            Method::POST,
            "/v1/admin/tenants/up/users",
            Some(
                json!({"email": "ada@example.com", "password": "upstream password 1", "given_name": "Ada",
                "family_name": "Lovelace", "email_verified": true}),
            ),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let mut upstream = json!({"id": "up", "kind": "oidc", "display_name": "Upstream Co",
        "client_id": "rp", "client_secret": client["client_secret"],
        "issuer_url": format!("{base}/t/up"), "scopes": ["openid", "email", "profile"]});
    merge(&mut upstream, provider);
    let mut settings = json!({"security": {"registration_enabled": true}, "social_providers": [upstream]});
    merge(&mut settings, rp_settings);
    server.tenant_with_spa("rp", settings).await;
    server
}

fn merge(into: &mut Value, from: Value) {
    match (into, from) {
        (Value::Object(into), Value::Object(from)) => {
            for (k, v) in from {
                merge(into.entry(k).or_insert(Value::Null), v);
            }
        }
        (into, from) => *into = from,
    }
}

/// The relying tenant's OIDC client after discovery.
pub(crate) type RpClient = CoreClient<
    openidconnect::EndpointSet,
    openidconnect::EndpointNotSet,
    openidconnect::EndpointNotSet,
    openidconnect::EndpointNotSet,
    openidconnect::EndpointMaybeSet,
    openidconnect::EndpointMaybeSet,
>;

/// The relying tenant's OIDC client, as an application would build it.
pub(crate) async fn rp_client(
    server: &TestServer,
) -> CoreClient<
    openidconnect::EndpointSet,
    openidconnect::EndpointNotSet,
    openidconnect::EndpointNotSet,
    openidconnect::EndpointNotSet,
    openidconnect::EndpointMaybeSet,
    openidconnect::EndpointMaybeSet,
> {
    let issuer = IssuerUrl::new(format!("{}/t/rp", server.base)).unwrap();
    let metadata = CoreProviderMetadata::discover_async(issuer, &http).await.unwrap();
    CoreClient::from_provider_metadata(metadata, ClientId::new("demo-spa".into()), None)
        .set_redirect_uri(RedirectUrl::new(REDIRECT.into()).unwrap())
}

/// What the upstream sign-in left: the callback URL the upstream sent the browser to.
pub(crate) struct AtCallback {
    pub callback: String,
    /// The relying tenant's sealed `tenantry_upstream` cookie, as the browser held it.
    pub cookie: String,
}

/// From the relying tenant's login page, through the provider button and the upstream's
/// hosted login, to the callback URL (not yet followed).
pub(crate) async fn through_upstream(tabs: &mut Tabs, auth_url: &str) -> AtCallback {
    let (status, _, page) = tabs.get(auth_url).await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("Continue with Upstream Co"), "a provider button: {page}");
    let start = form_actions(&page)
        .into_iter()
        .find(|a| a.ends_with("/federation/up/start"))
        .expect("the provider's form");
    let (interaction, csrf) = (hidden(&page, "interaction"), hidden(&page, "csrf"));
    let (status, headers, body) = tabs
        .post(&start, &[("interaction", &interaction), ("csrf", &csrf)])
        .await;
    assert_eq!(status, 303, "{body}");
    let upstream_authorize = headers["location"].clone();
    assert!(upstream_authorize.contains("/t/up/authorize?"), "{upstream_authorize}");
    assert_eq!(
        query_param(&upstream_authorize, "code_challenge_method").as_deref(),
        Some("S256")
    );
    assert!(query_param(&upstream_authorize, "nonce").is_some());
    let cookie = tabs.rp.cookies["tenantry_upstream"].clone();
    let callback = upstream_login(tabs, &upstream_authorize).await;
    AtCallback { callback, cookie }
}

/// Ada's login at the upstream's hosted page; answers the callback URL it sends the
/// browser to.
pub(crate) async fn upstream_login(tabs: &mut Tabs, upstream_authorize: &str) -> String {
    let (status, _, page) = tabs.get(upstream_authorize).await;
    assert_eq!(status, 200, "{page}");
    let form = [
        ("interaction", hidden(&page, "interaction")),
        ("csrf", hidden(&page, "csrf")),
        ("email", "ada@example.com".to_owned()),
        ("password", "upstream password 1".to_owned()),
    ];
    let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let login = form_actions(&page)[0].clone();
    let (status, headers, body) = tabs.post(&login, &form).await;
    assert_eq!(status, 303, "{body}");
    let callback = headers["location"].clone();
    assert!(callback.contains("/t/rp/federation/callback?"), "{callback}");
    callback
}

/// The relying tenant's authorization URL for the SPA, with its PKCE verifier and nonce.
pub(crate) fn authorization(client: &RpClient) -> (String, openidconnect::PkceCodeVerifier, Nonce) {
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (url, _, nonce) = client
        .authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .add_scope(Scope::new("email".into()))
        .add_scope(Scope::new("profile".into()))
        .set_pkce_challenge(challenge)
        .url();
    (url.to_string(), verifier, nonce)
}

/// The relying tenant's tokens for `code`, by the independent client.
pub(crate) async fn exchange(client: &RpClient, code: String, verifier: openidconnect::PkceCodeVerifier) -> RpTokens {
    client
        .exchange_code(AuthorizationCode::new(code))
        .unwrap()
        .set_pkce_verifier(verifier)
        .request_async(&http)
        .await
        .unwrap()
}

pub(crate) type RpTokens = openidconnect::core::CoreTokenResponse;

/// Ada's account in the relying tenant.
async fn rp_user(server: &TestServer) -> tenantry_dataplane::model::User {
    let ctx = server.ctx("rp");
    let db = ctx.db().await.unwrap();
    db.user_by_email("ada@example.com", &ctx.custom_fields())
        .await
        .unwrap()
        .expect("the account")
}

/// The claims of a compact JWS, unverified (the caller verified it with `openidconnect`).
pub(crate) fn payload(jwt: &str) -> Value {
    use base64::Engine;
    let part = jwt.split('.').nth(1).unwrap();
    serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
}

#[tokio::test]
async fn a_first_upstream_sign_in_creates_the_account_and_tokens_say_how_it_signed_in() {
    // The upstream's `tid` claim (its tenant) fills a custom field of the new account.
    let server = setup(
        Some(ALLOW_LOOPBACK),
        json!({"custom_fields": [{"name": "department", "type": "text"}]}),
        json!({"claim_mapping": {"custom.department": "tid"}}),
    )
    .await;
    let client = rp_client(&server).await;
    let (auth_url, verifier, nonce) = authorization(&client);
    let mut tabs = Tabs::new();
    let at = through_upstream(&mut tabs, &auth_url).await;

    let (status, headers, body) = tabs.get(&at.callback).await;
    assert_eq!(status, 303, "{body}");
    let location = headers["location"].clone();
    assert!(location.starts_with(REDIRECT), "{location}");
    assert!(
        tabs.rp.cookies.get("tenantry_upstream").is_some_and(|c| c.is_empty()),
        "the cookie is cleared"
    );
    let code = query_param(&location, "code").unwrap();
    let tokens = exchange(&client, code, verifier).await;
    let id_token = tokens.id_token().unwrap();
    let claims = id_token.claims(&client.id_token_verifier(), &nonce).unwrap();
    let amr: Vec<String> = claims
        .auth_method_refs()
        .unwrap()
        .iter()
        .map(|m| m.to_string())
        .collect();
    assert_eq!(amr, ["fed"]);
    let raw = payload(&id_token.to_string());
    assert_eq!(raw["idp"], "up");
    assert_eq!(raw["email"], "ada@example.com");
    assert_eq!(raw["email_verified"], true, "as the upstream asserted it");
    assert_eq!(raw["given_name"], "Ada");
    let access = payload(tokens.access_token().secret());
    assert_eq!(
        (access["idp"].as_str(), access["amr"].clone()),
        (Some("up"), json!(["fed"]))
    );

    let user = rp_user(&server).await;
    assert_eq!(raw["sub"], user.id.to_string());
    assert_eq!(user.family_name.as_deref(), Some("Lovelace"));
    assert_eq!(user.custom.get("department"), Some(&json!("up")), "{:?}", user.custom);

    // The account lists its identity, and cannot drop it: it has no password.
    let bearer = tokens.access_token().secret().clone();
    let (status, listed) = me(&server, &bearer, Method::GET, "/v1/auth/me/identities").await;
    assert_eq!(status, 200, "{listed}");
    assert_eq!(listed["identities"][0]["provider"], "up");
    assert_eq!(listed["identities"][0]["email"], "ada@example.com");
    let (status, refused) = me(&server, &bearer, Method::DELETE, "/v1/auth/me/identities/up").await;
    assert_eq!(
        (status, refused["code"].as_str()),
        (409, Some("last_way_in")),
        "{refused}"
    );
    let (status, _) = me(&server, &bearer, Method::DELETE, "/v1/auth/me/identities/nope").await;
    assert_eq!(status, 404);

    // The admin finds the account by its upstream identity, and tests the provider live.
    let subject = listed["identities"][0]["subject"].as_str().unwrap().to_owned();
    let (status, found) = server
        .admin(
            Method::GET,
            &format!("/v1/admin/tenants/rp/identities/up/{subject}"),
            None,
        )
        .await;
    assert_eq!(
        (status, found["user_id"].as_str()),
        (200, Some(user.id.to_string().as_str())),
        "{found}"
    );
    let (status, _) = server
        .admin(Method::GET, "/v1/admin/tenants/rp/identities/up/someone-else", None)
        .await;
    assert_eq!(status, 404);
    let (status, listed) = server
        .admin(
            Method::GET,
            &format!("/v1/admin/tenants/rp/users/{}/identities", user.id),
            None,
        )
        .await;
    assert_eq!(
        (status, listed["identities"].as_array().map(Vec::len)),
        (200, Some(1)),
        "{listed}"
    );
    let (status, tested) = server
        .admin(Method::POST, "/v1/admin/tenants/rp/providers/up/test", None)
        .await;
    assert_eq!(status, 200, "{tested}");
    assert_eq!(tested["upstream"]["issuer"], format!("{}/t/up", server.base));
    assert_eq!(tested["upstream"]["iss_parameter_supported"], true);
    let (status, body) = server
        .admin(Method::POST, "/v1/admin/tenants/rp/providers/nope/test", None)
        .await;
    assert_eq!((status, body["code"].as_str()), (404, Some("upstream_unknown")));

    // The callback URL once more, with the cookie as it was: the state is spent.
    tabs.rp.cookies.insert("tenantry_upstream".into(), at.cookie.clone());
    let (status, _, page) = tabs.get(&at.callback).await;
    assert_eq!(status, 400, "{page}");
    assert!(
        page.contains("upstream_invalid_response") && page.contains("already used"),
        "{page}"
    );

    // A second sign-in, in a fresh browser, reaches the same account.
    let (auth_url, verifier, nonce) = authorization(&client);
    let mut tabs = Tabs::new();
    let at = through_upstream(&mut tabs, &auth_url).await;
    let (status, headers, _) = tabs.get(&at.callback).await;
    assert_eq!(status, 303);
    let code = query_param(&headers["location"], "code").unwrap();
    let tokens = exchange(&client, code, verifier).await;
    let claims = tokens
        .id_token()
        .unwrap()
        .claims(&client.id_token_verifier(), &nonce)
        .unwrap();
    assert_eq!(claims.subject().as_str(), user.id.to_string());
    let (_, users) = server.admin(Method::GET, "/v1/admin/tenants/rp/users", None).await;
    assert_eq!(users["users"].as_array().map(Vec::len), Some(1), "{users}");
}

#[tokio::test]
async fn answers_that_are_not_this_browsers_sign_in_are_refused() {
    let server = setup(Some(ALLOW_LOOPBACK), json!({}), json!({})).await;
    let client = rp_client(&server).await;
    let (auth_url, _, _) = authorization(&client);
    let mut tabs = Tabs::new();
    let at = through_upstream(&mut tabs, &auth_url).await;

    // Another browser (no cookie).
    let (status, _, page) = Browser::new().send(Method::GET, &at.callback, None).await;
    assert_eq!(status, 400);
    assert!(page.contains("not started in this browser"), "{page}");
    // The right browser, another state.
    let state = query_param(&at.callback, "state").unwrap();
    let forged = at.callback.replace(&format!("state={state}"), "state=forged");
    let (status, _, page) = tabs.get(&forged).await;
    assert_eq!(status, 400);
    assert!(page.contains("state is not this sign-in"), "{page}");
    // An `iss` naming another issuer (mix-up), and none where the upstream promised it:
    // each refused, and each spends the state, so the genuine answer cannot follow.
    let other_iss = |callback: &str| callback.replace("%2Ft%2Fup", "%2Ft%2Fevil");
    let no_iss = |callback: &str| {
        let mut url = url::Url::parse(callback).unwrap();
        let kept: Vec<(String, String)> = url
            .query_pairs()
            .filter(|(k, _)| k != "iss")
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        url.query_pairs_mut().clear().extend_pairs(kept);
        url.to_string()
    };
    type Change<'a> = &'a dyn Fn(&str) -> String;
    let variants: [(&str, Change); 2] = [("other iss", &other_iss), ("no iss", &no_iss)];
    for (label, change) in variants {
        let (auth_url, _, _) = authorization(&client);
        let mut tabs = Tabs::new();
        let at = through_upstream(&mut tabs, &auth_url).await;
        let url = change(&at.callback);
        assert_ne!(url, at.callback, "{label}");
        let (status, _, page) = tabs.get(&url).await;
        assert_eq!(status, 400, "{label}: {page}");
        assert!(page.contains("did not come from the provider"), "{label}: {page}");
        tabs.rp.cookies.insert("tenantry_upstream".into(), at.cookie.clone());
        let (status, _, page) = tabs.get(&at.callback).await;
        assert_eq!(status, 400, "{label}: {page}");
        assert!(page.contains("already used"), "{label}: {page}");
    }
    let (_, users) = server.admin(Method::GET, "/v1/admin/tenants/rp/users", None).await;
    assert_eq!(
        users["users"].as_array().map(Vec::len),
        Some(0),
        "no account was made: {users}"
    );

    // The upstream's refusal is shown with its error code.
    let (auth_url, _, _) = authorization(&client);
    let mut tabs = Tabs::new();
    let at = through_upstream(&mut tabs, &auth_url).await;
    let state = query_param(&at.callback, "state").unwrap();
    let denied = format!(
        "{}/t/rp/federation/callback?error=access_denied&state={state}&iss={}",
        server.base,
        urlencode(&format!("{}/t/up", server.base))
    );
    let (status, _, page) = tabs.get(&denied).await;
    assert_eq!(status, 403, "{page}");
    assert!(
        page.contains("upstream_refused") && page.contains("access_denied"),
        "{page}"
    );
}

fn urlencode(value: &str) -> String {
    url::form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

#[tokio::test]
async fn without_registration_a_stranger_gets_no_account() {
    let server = setup(
        Some(ALLOW_LOOPBACK),
        json!({"security": {"registration_enabled": false}}),
        json!({}),
    )
    .await;
    let client = rp_client(&server).await;
    let (auth_url, _, _) = authorization(&client);
    let mut tabs = Tabs::new();
    let at = through_upstream(&mut tabs, &auth_url).await;
    let (status, _, page) = tabs.get(&at.callback).await;
    assert_eq!(status, 403, "{page}");
    assert!(page.contains("registration_disabled"), "{page}");
    let (_, users) = server.admin(Method::GET, "/v1/admin/tenants/rp/users", None).await;
    assert_eq!(users["users"].as_array().map(Vec::len), Some(0), "{users}");
}

#[tokio::test]
async fn an_existing_account_is_linked_only_after_its_owner_signs_in_to_it() {
    let server = setup(Some(ALLOW_LOOPBACK), json!({}), json!({})).await;
    let (status, body) = server
        .admin(
            Method::POST,
            "/v1/admin/tenants/rp/users",
            Some(json!({"email": "ada@example.com", "password": "relying password 1", "email_verified": true})),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let user = rp_user(&server).await;
    let client = rp_client(&server).await;
    let (auth_url, verifier, _) = authorization(&client);
    let mut tabs = Tabs::new();
    let at = through_upstream(&mut tabs, &auth_url).await;

    // The upstream's verified email is not enough here: the login form asks for the account.
    let (status, _, page) = tabs.get(&at.callback).await;
    assert_eq!(status, 200, "{page}");
    assert!(
        page.contains("role=\"status\"") && page.contains("Upstream Co"),
        "{page}"
    );
    assert!(
        server
            .ctx("rp")
            .db()
            .await
            .unwrap()
            .identities_of(user.id)
            .await
            .unwrap()
            .is_empty()
    );
    let login = form_actions(&page)[0].clone();
    let (interaction, csrf) = (hidden(&page, "interaction"), hidden(&page, "csrf"));
    let wrong = [
        ("interaction", interaction.as_str()),
        ("csrf", csrf.as_str()),
        ("email", "ada@example.com"),
        ("password", "not the password"),
    ];
    let (status, _, page) = tabs.post(&login, &wrong).await;
    assert_eq!(status, 401, "{page}");
    let (interaction, csrf) = (hidden(&page, "interaction"), hidden(&page, "csrf"));
    let right = [
        ("interaction", interaction.as_str()),
        ("csrf", csrf.as_str()),
        ("email", "ada@example.com"),
        ("password", "relying password 1"),
    ];
    let (status, headers, body) = tabs.post(&login, &right).await;
    assert_eq!(status, 303, "{body}");
    assert!(headers["location"].starts_with(REDIRECT));
    let identities = server
        .ctx("rp")
        .db()
        .await
        .unwrap()
        .identities_of(user.id)
        .await
        .unwrap();
    assert_eq!(identities.len(), 1);
    assert_eq!(identities[0].provider, "up");
    let tokens = exchange(&client, query_param(&headers["location"], "code").unwrap(), verifier).await;
    let amr = payload(tokens.access_token().secret())["amr"].clone();
    assert_eq!(amr, json!(["pwd"]), "this session was opened by the password");

    // From now on the upstream alone signs in to that account.
    let (auth_url, _, _) = authorization(&client);
    let mut tabs = Tabs::new();
    let at = through_upstream(&mut tabs, &auth_url).await;
    let (status, headers, body) = tabs.get(&at.callback).await;
    assert_eq!(status, 303, "{body}");
    assert!(headers["location"].starts_with(REDIRECT));

    // With a password, the account may drop the link; the next upstream sign-in asks again.
    let bearer = tokens.access_token().secret().clone();
    let (status, body) = me(&server, &bearer, Method::DELETE, "/v1/auth/me/identities/up").await;
    assert_eq!(status, 204, "{body}");
    let db = server.ctx("rp").db().await.unwrap();
    assert!(db.identities_of(user.id).await.unwrap().is_empty());
    let (auth_url, _, _) = authorization(&client);
    let mut tabs = Tabs::new();
    let at = through_upstream(&mut tabs, &auth_url).await;
    let (status, _, page) = tabs.get(&at.callback).await;
    assert_eq!(status, 200);
    assert!(page.contains("role=\"status\""), "{page}");
}

/// A call to the headless API of the relying tenant with a user's access token.
pub(crate) async fn me(server: &TestServer, bearer: &str, method: Method, path: &str) -> (u16, Value) {
    let response = server
        .http
        .request(method, format!("{}{path}", server.base))
        .bearer_auth(bearer)
        .header("X-Tenant-Slug", "rp")
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn a_trusted_verified_email_links_at_once_and_the_second_factor_still_applies() {
    let server = setup(
        Some(ALLOW_LOOPBACK),
        json!({"security": {"mfa_required": true}}),
        json!({"link_verified_email": true}),
    )
    .await;
    let (status, body) = server
        .admin(
            Method::POST,
            "/v1/admin/tenants/rp/users",
            Some(json!({"email": "ada@example.com", "password": "relying password 1", "email_verified": true})),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let user = rp_user(&server).await;
    let client = rp_client(&server).await;
    let (auth_url, _, _) = authorization(&client);
    let mut tabs = Tabs::new();
    let at = through_upstream(&mut tabs, &auth_url).await;
    let (status, _, page) = tabs.get(&at.callback).await;
    assert_eq!(status, 200, "{page}");
    assert!(
        page.contains("name=\"code\""),
        "the tenant's second factor is asked: {page}"
    );
    let identities = server
        .ctx("rp")
        .db()
        .await
        .unwrap()
        .identities_of(user.id)
        .await
        .unwrap();
    assert_eq!(identities.len(), 1, "linked by the verified email");
}

#[tokio::test]
async fn an_upstream_on_a_private_address_is_refused_by_default() {
    let server = setup(None, json!({}), json!({})).await;
    let client = rp_client(&server).await;
    let (auth_url, _, _) = authorization(&client);
    let mut browser = Browser::new();
    let (_, _, page) = browser.send(Method::GET, &auth_url, None).await;
    let start = form_actions(&page)
        .into_iter()
        .find(|a| a.ends_with("/federation/up/start"))
        .unwrap();
    let (interaction, csrf) = (hidden(&page, "interaction"), hidden(&page, "csrf"));
    let (status, _, page) = browser
        .send(
            Method::POST,
            &start,
            Some(&[("interaction", &interaction), ("csrf", &csrf)]),
        )
        .await;
    assert_eq!(status, 502, "{page}");
    assert!(
        page.contains("upstream_unavailable") && page.contains("allow_private_networks"),
        "{page}"
    );
    let (status, body) = server
        .admin(Method::POST, "/v1/admin/tenants/rp/providers/up/test", None)
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (502, Some("upstream_unavailable")),
        "{body}"
    );
    assert!(
        body["detail"].as_str().unwrap().contains("allow_private_networks"),
        "{body}"
    );

    // An unknown provider, and a start without the login form's CSRF token.
    let unknown = start.replace("/federation/up/", "/federation/nope/");
    let (status, _, page) = browser
        .send(
            Method::POST,
            &unknown,
            Some(&[("interaction", &interaction), ("csrf", &csrf)]),
        )
        .await;
    assert_eq!(status, 404, "{page}");
    assert!(page.contains("upstream_unknown"), "{page}");
    let (status, _, _) = Browser::new()
        .send(
            Method::POST,
            &start,
            Some(&[("interaction", &interaction), ("csrf", &csrf)]),
        )
        .await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn an_spa_starts_through_the_api_and_its_code_comes_back_to_it() {
    let server = setup(Some(ALLOW_LOOPBACK), json!({}), json!({})).await;
    let client = rp_client(&server).await;
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let start = |body: Value| {
        let request = server
            .http
            .post(format!("{}/v1/auth/upstream/start", server.base))
            .header("X-Tenant-Slug", "rp")
            .json(&body);
        async move {
            let response = request.send().await.unwrap();
            (response.status().as_u16(), response.json::<Value>().await.unwrap())
        }
    };
    let request = json!({"provider": "up", "client_id": "demo-spa", "redirect_uri": REDIRECT,
        "scope": "email profile", "state": "spa-state", "nonce": "spa-nonce",
        "code_challenge": challenge.as_str(), "code_challenge_method": "S256"});
    let (status, started) = start(request.clone()).await;
    assert_eq!(status, 200, "{started}");
    let url = started["authorization_url"].as_str().unwrap().to_owned();
    assert!(url.starts_with(&format!("{}/t/rp/authorize?", server.base)), "{url}");

    // The tenant's authorization URL goes straight on to the provider.
    let mut tabs = Tabs::new();
    let (status, headers, body) = tabs.get(&url).await;
    assert_eq!(status, 303, "{body}");
    let upstream_authorize = headers["location"].clone();
    assert!(upstream_authorize.contains("/t/up/authorize?"), "{upstream_authorize}");
    let callback = upstream_login(&mut tabs, &upstream_authorize).await;
    let (status, headers, body) = tabs.get(&callback).await;
    assert_eq!(status, 303, "{body}");
    let location = headers["location"].clone();
    assert!(location.starts_with(REDIRECT), "{location}");
    assert_eq!(query_param(&location, "state").as_deref(), Some("spa-state"));
    let tokens = exchange(&client, query_param(&location, "code").unwrap(), verifier).await;
    let nonce = Nonce::new("spa-nonce".into());
    let claims = tokens
        .id_token()
        .unwrap()
        .claims(&client.id_token_verifier(), &nonce)
        .unwrap();
    assert_eq!(claims.email().map(|e| e.as_str()), Some("ada@example.com"));

    // Refused up front, as problems: an unknown provider, an unregistered redirect URI, a
    // request without PKCE S256.
    let mut unknown = request.clone();
    unknown["provider"] = json!("nope");
    let (status, body) = start(unknown).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (404, Some("upstream_unknown")),
        "{body}"
    );
    let mut elsewhere = request.clone();
    elsewhere["redirect_uri"] = json!("https://evil.example/callback");
    let (status, body) = start(elsewhere).await;
    assert_eq!(status, 400, "{body}");
    let mut plain = request.clone();
    plain["code_challenge_method"] = json!("plain");
    let (status, body) = start(plain).await;
    assert_eq!(status, 400, "{body}");

    // A hint naming no enabled provider goes back to the client as an error.
    let hinted = url.replace("idp_hint=up", "idp_hint=nope");
    let (status, headers, _) = Tabs::new().get(&hinted).await;
    assert_eq!(status, 303);
    assert_eq!(
        query_param(&headers["location"], "error").as_deref(),
        Some("invalid_request")
    );
}

/// The upstream is node-oidc-provider (the OpenID-certified Node implementation, npm
/// `oidc-provider` pinned in `e2e/`), started on a loopback port with its development
/// login and consent pages. Runs where the Node test tools are set up
/// (`TENANTRY_TEST_BROWSER=1`, which `.ci/run` sets after `npm ci --prefix e2e`).
#[tokio::test]
async fn node_oidc_provider_signs_a_user_in_as_the_upstream() {
    node_oidc_provider_sign_in(Authentication::Secret).await;
}

/// node-oidc-provider knows the tenant by its JWKS (`private_key_jwt`) and serves the
/// profile and email at userinfo only.
#[tokio::test]
async fn node_oidc_provider_takes_the_tenants_key_and_userinfo_gives_the_profile() {
    node_oidc_provider_sign_in(Authentication::TenantKey).await;
}

/// How the tenant authenticates to node-oidc-provider.
#[derive(PartialEq)]
enum Authentication {
    Secret,
    TenantKey,
}

async fn node_oidc_provider_sign_in(authentication: Authentication) {
    if tenantry_testkit::configured(tenantry_testkit::Service::Browser).is_none() {
        return;
    }
    const SECRET: &str = "a client secret for node-oidc-provider";
    let server = start_with_config(Some(ALLOW_LOOPBACK)).await;
    let key = authentication == Authentication::TenantKey;
    // The tenant first: node-oidc-provider fetches its JWKS.
    let mut provider = json!({"id": "op", "kind": "oidc", "display_name": "Node OP", "client_id": "tenantry",
        "scopes": ["openid", "email", "profile"]});
    if key {
        merge(
            &mut provider,
            json!({"client_auth": "private_key_jwt", "fetch_userinfo": true}),
        );
    } else {
        merge(&mut provider, json!({"client_secret": SECRET}));
    }
    let workspace = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut command = tokio::process::Command::new("node");
    command
        .arg("e2e/oidc-provider.mjs")
        .current_dir(&workspace)
        .env("OP_CLIENT_ID", "tenantry")
        .env("OP_CLIENT_SECRET", SECRET)
        .env("OP_REDIRECT_URI", format!("{}/t/rp/federation/callback", server.base));
    if key {
        command
            .env("OP_JWKS_URI", format!("{}/t/rp/jwks.json", server.base))
            .env("OP_USERINFO_ONLY", "1");
    }
    let mut op = command
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("node runs (the Node test tools are configured)");
    let stdout = op.stdout.take().unwrap();
    let mut lines = tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(stdout));
    let line = tokio::time::timeout(std::time::Duration::from_secs(30), lines.next_line())
        .await
        .expect("node-oidc-provider starts within 30 s")
        .unwrap()
        .expect("node-oidc-provider prints its issuer");
    let issuer = line.strip_prefix("issuer ").expect("`issuer <url>`").to_owned();

    merge(&mut provider, json!({"issuer_url": issuer}));
    let settings = json!({"security": {"registration_enabled": true}, "social_providers": [provider]});
    server.tenant_with_spa("rp", settings).await;
    let (status, tested) = server
        .admin(Method::POST, "/v1/admin/tenants/rp/providers/op/test", None)
        .await;
    assert_eq!(
        (status, tested["upstream"]["issuer"].as_str()),
        (200, Some(issuer.as_str())),
        "{tested}"
    );

    let client = rp_client(&server).await;
    let (auth_url, verifier, nonce) = authorization(&client);
    let mut rp = Browser::new();
    let (status, _, page) = rp.send(Method::GET, &auth_url, None).await;
    assert_eq!(status, 200, "{page}");
    let start = form_actions(&page)
        .into_iter()
        .find(|a| a.ends_with("/federation/op/start"))
        .expect("the provider's button");
    let (interaction, csrf) = (hidden(&page, "interaction"), hidden(&page, "csrf"));
    let (status, headers, body) = rp
        .send(
            Method::POST,
            &start,
            Some(&[("interaction", &interaction), ("csrf", &csrf)]),
        )
        .await;
    assert_eq!(status, 303, "{body}");

    // At the provider: follow its redirects, sign in on its login page and continue on
    // its consent page, until it sends the browser back to the relying tenant.
    let mut op_browser = Browser::new();
    let mut next = headers["location"].clone();
    let mut steps = 0;
    while !next.starts_with(&server.base) {
        steps += 1;
        assert!(steps < 12, "the provider's pages lead back within a few steps");
        let url = if next.starts_with('/') {
            format!("{issuer}{next}")
        } else {
            next.clone()
        };
        let (status, headers, page) = op_browser.send(Method::GET, &url, None).await;
        if (300..400).contains(&status) {
            next = headers["location"].clone();
            continue;
        }
        assert_eq!(status, 200, "{page}");
        let action = form_actions(&page)
            .into_iter()
            .next()
            .expect("a form on the provider's page");
        let form: Vec<(&str, &str)> = if page.contains("name=\"login\"") {
            vec![("prompt", "login"), ("login", "opal"), ("password", "any")]
        } else {
            vec![("prompt", "consent")]
        };
        let (status, headers, page) = op_browser.send(Method::POST, &action, Some(&form)).await;
        assert!((300..400).contains(&status), "{status} {page}");
        next = headers["location"].clone();
    }
    assert!(next.contains("/t/rp/federation/callback?"), "{next}");
    assert!(
        query_param(&next, "iss").as_deref() == Some(issuer.as_str()),
        "RFC 9207 iss: {next}"
    );

    let (status, headers, body) = rp.send(Method::GET, &next, None).await;
    assert_eq!(status, 303, "{body}");
    let location = headers["location"].clone();
    assert!(location.starts_with(REDIRECT), "{location}");
    let tokens = exchange(&client, query_param(&location, "code").unwrap(), verifier).await;
    let id_token = tokens.id_token().unwrap();
    id_token.claims(&client.id_token_verifier(), &nonce).unwrap();
    let raw = payload(&id_token.to_string());
    assert_eq!(raw["idp"], "op");
    assert_eq!(raw["amr"], json!(["fed"]));
    assert_eq!(raw["email"], "opal@op.example");
    assert_eq!(raw["given_name"], "Opal");
    let ctx = server.ctx("rp");
    let db = ctx.db().await.unwrap();
    assert_eq!(
        db.identity("op", "opal").await.unwrap().map(|i| i.provider),
        Some("op".to_owned())
    );
}
