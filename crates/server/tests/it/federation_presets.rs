//! The provider presets the tests cannot reach for real (GitHub, Microsoft's multi-tenant
//! issuer, against the stand-ins of `federation_standin`), the tenant authenticating to
//! its upstream with its own key (`private_key_jwt`) and reading userinfo, and a
//! signed-in account linking an identity from its own browser.

use reqwest::Method;
use serde_json::{Value, json};
use tenantry_dataplane::UserRepository;

use crate::common::browser::{Browser, form_actions, hidden, query_param};
use crate::common::{TestServer, start_with_config};
use crate::federation::{
    ALLOW_LOOPBACK, REDIRECT, RpClient, Tabs, authorization, exchange, me, payload, rp_client, setup, through_upstream,
    upstream_login,
};
use crate::federation_standin::{CLIENT_ID, CLIENT_SECRET, StandIn};

/// The answer of the relying tenant's callback after `provider`'s button, with the
/// stand-in signing its person in at once; and the callback URL it answered.
async fn through_standin(client: &RpClient, provider: &str) -> (u16, String, String, String) {
    let (auth_url, _, _) = authorization(client);
    let mut browser = Browser::new();
    let (status, _, page) = browser.send(Method::GET, &auth_url, None).await;
    assert_eq!(status, 200, "{page}");
    let start = form_actions(&page)
        .into_iter()
        .find(|a| a.ends_with(&format!("/federation/{provider}/start")))
        .expect("the provider's button");
    let (interaction, csrf) = (hidden(&page, "interaction"), hidden(&page, "csrf"));
    let form = [("interaction", interaction.as_str()), ("csrf", csrf.as_str())];
    let (status, headers, body) = browser.send(Method::POST, &start, Some(&form)).await;
    assert_eq!(status, 303, "{body}");
    let (status, headers, body) = Browser::new().send(Method::GET, &headers["location"], None).await;
    assert_eq!(status, 303, "the stand-in signs in at once: {body}");
    let callback = headers["location"].clone();
    let (status, headers, body) = browser.send(Method::GET, &callback, None).await;
    let location = headers.get("location").cloned().unwrap_or_default();
    (status, location, body, callback)
}

/// The relying tenant's account with `email`.
async fn account(server: &TestServer, email: &str) -> tenantry_dataplane::model::User {
    let ctx = server.ctx("rp");
    let db = ctx.db().await.unwrap();
    db.user_by_email(email, &ctx.custom_fields())
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("an account for {email}"))
}

#[tokio::test]
async fn github_signs_in_with_its_verified_primary_email_and_never_links_an_unverified_one() {
    let standin = StandIn::start().await;
    let server = start_with_config(Some(ALLOW_LOOPBACK)).await;
    let settings = json!({"security": {"registration_enabled": true}, "social_providers": [{
        "id": "gh", "kind": "github", "display_name": "GitHub", "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET, "issuer_url": standin.base,
        "link_verified_email": true, "claim_mapping": {"username": "login"}}]});
    server.tenant_with_spa("rp", settings).await;
    let (status, tested) = server
        .admin(Method::POST, "/v1/admin/tenants/rp/providers/gh/test", None)
        .await;
    assert_eq!(status, 200, "{tested}");
    assert_eq!(tested["upstream"]["api"], format!("{}/api/v3", standin.base));

    standin.sign_in_as(json!({
        "user": {"id": 583231, "login": "octocat", "name": "The Octocat",
            "avatar_url": "https://avatars.example/u/583231", "html_url": "https://github.com/octocat",
            "email": null},
        "emails": [
            {"email": "octo-old@example.com", "primary": false, "verified": true, "visibility": null},
            {"email": "octocat@example.com", "primary": true, "verified": true, "visibility": "public"}]}));
    let client = rp_client(&server).await;
    let (auth_url, verifier, nonce) = authorization(&client);
    let mut browser = Browser::new();
    let (_, _, page) = browser.send(Method::GET, &auth_url, None).await;
    let start = form_actions(&page)
        .into_iter()
        .find(|a| a.ends_with("/federation/gh/start"))
        .expect("the GitHub button");
    let (interaction, csrf) = (hidden(&page, "interaction"), hidden(&page, "csrf"));
    let form = [("interaction", interaction.as_str()), ("csrf", csrf.as_str())];
    let (status, headers, _) = browser.send(Method::POST, &start, Some(&form)).await;
    assert_eq!(status, 303);
    let at_github = headers["location"].clone();
    assert!(
        at_github.starts_with(&format!("{}/login/oauth/authorize?", standin.base)),
        "{at_github}"
    );
    assert_eq!(
        query_param(&at_github, "scope").as_deref(),
        Some("read:user user:email")
    );
    assert_eq!(
        query_param(&at_github, "code_challenge_method").as_deref(),
        Some("S256")
    );
    let (_, headers, _) = Browser::new().send(Method::GET, &at_github, None).await;
    let (status, headers, body) = browser.send(Method::GET, &headers["location"], None).await;
    assert_eq!(status, 303, "{body}");
    let location = headers["location"].clone();
    assert!(location.starts_with(REDIRECT), "{location}");
    let tokens = exchange(&client, query_param(&location, "code").unwrap(), verifier).await;
    use openidconnect::TokenResponse;
    let id_token = tokens.id_token().unwrap();
    id_token.claims(&client.id_token_verifier(), &nonce).unwrap();
    let raw = payload(&id_token.to_string());
    assert_eq!((raw["idp"].as_str(), raw["amr"].clone()), (Some("gh"), json!(["fed"])));
    assert_eq!(raw["email"], "octocat@example.com", "the primary address");
    assert_eq!(raw["email_verified"], true);
    assert_eq!(raw["name"], "The Octocat");
    let user = account(&server, "octocat@example.com").await;
    assert_eq!(user.username.as_deref(), Some("octocat"));
    assert_eq!(user.picture.as_deref(), Some("https://avatars.example/u/583231"));
    let db = server.ctx("rp").db().await.unwrap();
    assert_eq!(
        db.identity("gh", "583231").await.unwrap().map(|i| i.user_id),
        Some(user.id),
        "GitHub's numeric id is the subject"
    );
    assert_eq!(
        standin.calls_without_agent(),
        0,
        "GitHub refuses API calls without a User-Agent"
    );

    // A GitHub account whose primary address is unverified names an existing account's
    // address: the owner must prove the account; nothing is linked, even though the
    // provider links verified addresses at once.
    let (status, body) = server
        .admin(
            Method::POST,
            "/v1/admin/tenants/rp/users",
            Some(json!({"email": "victim@example.com", "password": "victim's password 1", "email_verified": true})),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    standin.sign_in_as(json!({
        "user": {"id": 666, "login": "mallory"},
        "emails": [{"email": "victim@example.com", "primary": true, "verified": false}]}));
    let (status, location, page, _) = through_standin(&client, "gh").await;
    assert_eq!((status, location.as_str()), (200, ""), "{page}");
    assert!(
        page.contains("victim@example.com") && page.contains("name=\"password\""),
        "{page}"
    );
    assert!(
        db.identity("gh", "666").await.unwrap().is_none(),
        "no link without proof"
    );

    // GitHub refuses a code with HTTP 200 and an `error` member: a clear refusal.
    standin.sign_in_as(json!({"user": {"id": 7, "login": "seven"}, "emails": []}));
    let (auth_url, _, _) = authorization(&client);
    let mut browser = Browser::new();
    let (_, _, page) = browser.send(Method::GET, &auth_url, None).await;
    let (interaction, csrf) = (hidden(&page, "interaction"), hidden(&page, "csrf"));
    let form = [("interaction", interaction.as_str()), ("csrf", csrf.as_str())];
    let (_, headers, _) = browser
        .send(
            Method::POST,
            &format!("{}/t/rp/federation/gh/start", server.base),
            Some(&form),
        )
        .await;
    let (_, headers, _) = Browser::new().send(Method::GET, &headers["location"], None).await;
    let mut callback = url::Url::parse(&headers["location"]).unwrap();
    let state = query_param(callback.as_str(), "state").unwrap();
    callback
        .query_pairs_mut()
        .clear()
        .append_pair("code", "not-a-code")
        .append_pair("state", &state);
    let (status, _, page) = browser.send(Method::GET, callback.as_str(), None).await;
    assert_eq!(status, 400, "{page}");
    assert!(
        page.contains("upstream_invalid_response") && page.contains("bad_verification_code"),
        "{page}"
    );
}

#[tokio::test]
async fn microsoft_multi_tenant_tokens_must_name_their_own_directory() {
    let standin = StandIn::start().await;
    let server = start_with_config(Some(ALLOW_LOOPBACK)).await;
    let settings = json!({"security": {"registration_enabled": true}, "social_providers": [{
        "id": "ms", "kind": "microsoft", "display_name": "Microsoft", "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET, "issuer_url": format!("{}/common/v2.0", standin.base),
        "allowed_tenants": ["contoso-tid", "fabrikam-tid"]}]});
    server.tenant_with_spa("rp", settings).await;
    let (status, tested) = server
        .admin(Method::POST, "/v1/admin/tenants/rp/providers/ms/test", None)
        .await;
    assert_eq!(status, 200, "{tested}");
    assert_eq!(tested["upstream"]["multi_tenant"], true);
    let client = rp_client(&server).await;

    // A directory's account: signed in; its address is not taken as verified (Entra ID's
    // `email` is whatever the directory holds)...
    standin
        .sign_in_as(json!({"sub": "ms-alex", "tid": "contoso-tid", "email": "alex@contoso.example", "name": "Alex"}));
    let (status, location, body, _) = through_standin(&client, "ms").await;
    assert_eq!(status, 303, "{body}");
    assert!(location.starts_with(REDIRECT), "{location}");
    let alex = account(&server, "alex@contoso.example").await;
    assert!(!alex.email_verified);
    assert_eq!(alex.name.as_deref(), Some("Alex"));
    // ...unless the token says the domain's owner vouches for it.
    standin
        .sign_in_as(json!({"sub": "ms-sam", "tid": "fabrikam-tid", "email": "sam@fabrikam.example", "xms_edov": true}));
    let (status, _, body, _) = through_standin(&client, "ms").await;
    assert_eq!(status, 303, "{body}");
    assert!(account(&server, "sam@fabrikam.example").await.email_verified);

    // A token whose issuer names another directory than its `tid`.
    standin.sign_in_as(
        json!({"sub": "ms-eve", "tid": "contoso-tid", "iss_tid": "fabrikam-tid", "email": "eve@x.example"}),
    );
    let (status, _, page, _) = through_standin(&client, "ms").await;
    assert_eq!(status, 400, "{page}");
    assert!(page.contains("upstream_invalid_response"), "{page}");
    // A directory the tenant does not admit.
    standin.sign_in_as(json!({"sub": "ms-oz", "tid": "other-tid", "email": "oz@other.example"}));
    let (status, _, page, _) = through_standin(&client, "ms").await;
    assert_eq!(status, 403, "{page}");
    assert!(page.contains("upstream_refused"), "{page}");
    let ctx = server.ctx("rp");
    let db = ctx.db().await.unwrap();
    for stranger in ["eve@x.example", "oz@other.example"] {
        assert!(
            db.user_by_email(stranger, &ctx.custom_fields())
                .await
                .unwrap()
                .is_none()
        );
    }
}

/// ID tokens that must not sign anyone in: each refused with `upstream_invalid_response`,
/// and no account is made.
#[tokio::test]
async fn forged_id_tokens_are_refused() {
    let standin = StandIn::start().await;
    let server = start_with_config(Some(ALLOW_LOOPBACK)).await;
    let settings = json!({"security": {"registration_enabled": true}, "social_providers": [{
        "id": "ms", "kind": "microsoft", "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET,
        "issuer_url": format!("{}/common/v2.0", standin.base)}]});
    server.tenant_with_spa("rp", settings).await;
    let client = rp_client(&server).await;
    for (n, (label, forge)) in [
        ("another sign-in's nonce", json!({"nonce": "not-this-sign-ins"})),
        ("another client's audience", json!({"aud": "another-app"})),
        ("expired", json!({"exp": -120})),
        (
            "signed by a key the provider does not publish",
            json!({"signer": "unknown"}),
        ),
        ("alg none", json!({"signer": "none"})),
        ("HMAC with the client secret", json!({"signer": "hs256"})),
    ]
    .into_iter()
    .enumerate()
    {
        let email = format!("forged-{n}@contoso.example");
        standin.sign_in_as(json!({"sub": format!("forged-{n}"), "tid": "contoso-tid", "email": email, "forge": forge}));
        let (status, _, page, _) = through_standin(&client, "ms").await;
        assert_eq!(status, 400, "{label}: {page}");
        assert!(page.contains("upstream_invalid_response"), "{label}: {page}");
        let ctx = server.ctx("rp");
        let db = ctx.db().await.unwrap();
        assert!(
            db.user_by_email(&email, &ctx.custom_fields()).await.unwrap().is_none(),
            "{label}"
        );
    }
    // The same stand-in, unforged: signed in.
    standin.sign_in_as(json!({"sub": "honest", "tid": "contoso-tid", "email": "honest@contoso.example"}));
    let (status, _, page, _) = through_standin(&client, "ms").await;
    assert_eq!(status, 303, "{page}");
}

/// A hundred people signing in at once through a provider whose documents are not cached
/// yet: one discovery document and one JWKS are fetched, not one per sign-in (nor are
/// sign-ins refused by the cap on calls in flight).
#[tokio::test]
async fn concurrent_sign_ins_share_one_fetch_of_the_providers_documents() {
    let standin = StandIn::start().await;
    let server = start_with_config(Some(ALLOW_LOOPBACK)).await;
    let settings = json!({"security": {"registration_enabled": true}, "social_providers": [{
        "id": "ms", "kind": "microsoft", "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET,
        "issuer_url": format!("{}/common/v2.0", standin.base)}]});
    server.tenant_with_spa("rp", settings).await;
    standin.sign_in_as(json!({"unique": true, "sub": "crowd", "tid": "contoso-tid", "email": "crowd@contoso.example"}));
    let client = rp_client(&server).await;
    let sign_ins = (0..100).map(|_| through_standin(&client, "ms"));
    let answers = futures_util::future::join_all(sign_ins).await;
    for (status, location, body, _) in &answers {
        assert_eq!(*status, 303, "{body}");
        assert!(location.starts_with(REDIRECT), "{location}");
    }
    assert_eq!(standin.documents_served(), (1, 1));
}

/// The upstream tenant `up` knows the relying tenant by its public keys only: the code
/// exchange is authenticated by a JWT the relying tenant signs (`private_key_jwt`), and
/// the profile is read from userinfo too.
#[tokio::test]
async fn the_tenant_authenticates_to_its_upstream_with_its_own_key() {
    let server = start_with_config(Some(ALLOW_LOOPBACK)).await;
    let base = server.base.clone();
    let (status, body) = server
        .admin(Method::POST, "/v1/admin/tenants", Some(json!({"slug": "up"})))
        .await;
    assert_eq!(status, 201, "{body}");
    let settings = json!({"security": {"registration_enabled": true}, "social_providers": [{
        "id": "up", "kind": "oidc", "display_name": "Upstream Co", "client_id": "rp",
        "client_auth": "private_key_jwt", "fetch_userinfo": true,
        "issuer_url": format!("{base}/t/up"), "scopes": ["openid", "email", "profile"]}]});
    server.tenant_with_spa("rp", settings).await;
    let rp_jwks: Value = server
        .http
        .get(format!("{base}/t/rp/jwks.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let (status, client) = server
        .admin(
            Method::POST,
            "/v1/admin/tenants/up/clients",
            Some(json!({"client_id": "rp", "name": "Relying tenant", "first_party": true,
                "grant_types": ["authorization_code"],
                "token_endpoint_auth_method": "private_key_jwt", "jwks": rp_jwks,
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
                "email_verified": true}),
            ),
        )
        .await;
    assert_eq!(status, 201, "{body}");

    let client = rp_client(&server).await;
    let (auth_url, _, _) = authorization(&client);
    let mut tabs = Tabs::new();
    let at = through_upstream(&mut tabs, &auth_url).await;
    let (status, headers, body) = tabs.get(&at.callback).await;
    assert_eq!(status, 303, "{body}");
    assert!(headers["location"].starts_with(REDIRECT), "{}", headers["location"]);
    let ada = account(&server, "ada@example.com").await;
    assert_eq!(ada.given_name.as_deref(), Some("Ada"));
}

/// A new account of the relying tenant signed in to the app through the hosted login:
/// its browser (holding the tenant's session cookie) and its access token.
async fn signed_in_account(server: &TestServer, client: &RpClient, email: &str, password: &str) -> (Tabs, String) {
    let (status, body) = server
        .admin(
            Method::POST,
            "/v1/admin/tenants/rp/users",
            Some(json!({"email": email, "password": password, "email_verified": true})),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let (auth_url, verifier, _) = authorization(client);
    let mut tabs = Tabs::new();
    let (status, _, page) = tabs.get(&auth_url).await;
    assert_eq!(status, 200, "{page}");
    let login = form_actions(&page)
        .into_iter()
        .find(|a| a.ends_with("/login"))
        .expect("the password form");
    let (interaction, csrf) = (hidden(&page, "interaction"), hidden(&page, "csrf"));
    let form = [
        ("interaction", interaction.as_str()),
        ("csrf", csrf.as_str()),
        ("email", email),
        ("password", password),
    ];
    let (status, headers, body) = tabs.post(&login, &form).await;
    assert_eq!(status, 303, "{body}");
    let tokens = exchange(client, query_param(&headers["location"], "code").unwrap(), verifier).await;
    use openidconnect::OAuth2TokenResponse;
    (tabs, tokens.access_token().secret().clone())
}

/// `POST /v1/auth/me/identities/up` with `bearer`: the status and body.
async fn start_link(server: &TestServer, bearer: &str, body: Value) -> (u16, Value) {
    let response = server
        .http
        .post(format!("{}/v1/auth/me/identities/up", server.base))
        .bearer_auth(bearer)
        .header("X-Tenant-Slug", "rp")
        .json(&body)
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.json::<Value>().await.unwrap())
}

#[tokio::test]
async fn a_signed_in_account_links_an_identity_in_its_own_browser_only() {
    let server = setup(Some(ALLOW_LOOPBACK), json!({}), json!({})).await;
    let client = rp_client(&server).await;
    // Bob signs in to the app through the tenant's hosted login (his browser holds the
    // tenant's session cookie).
    let (mut tabs, bearer) = signed_in_account(&server, &client, "bob@example.com", "bob's password 1").await;
    let bob = account(&server, "bob@example.com").await;

    let (status, refused) = start_link(
        &server,
        &bearer,
        json!({"redirect_uri": "https://elsewhere.example/cb"}),
    )
    .await;
    assert_eq!(
        (status, refused["code"].as_str()),
        (400, Some("bad_request")),
        "{refused}"
    );
    let (status, started) = start_link(&server, &bearer, json!({"redirect_uri": REDIRECT, "state": "s1"})).await;
    assert_eq!(status, 200, "{started}");
    let link_url = started["link_url"].as_str().unwrap().to_owned();

    // Another browser (a leaked URL, or an attacker's own ticket sent to a victim) links
    // nothing: the ticket names Bob's login session, which only his browser holds.
    let (status, _, page) = Browser::new().send(Method::GET, &link_url, None).await;
    assert_eq!(status, 401, "{page}");

    // Bob's browser: to the upstream, Ada's sign-in there, back to the app.
    let (status, headers, body) = tabs.get(&link_url).await;
    assert_eq!(status, 303, "{body}");
    let callback = upstream_login(&mut tabs, &headers["location"]).await;
    let (status, headers, body) = tabs.get(&callback).await;
    assert_eq!(status, 303, "{body}");
    let back = headers["location"].clone();
    assert!(back.starts_with(REDIRECT), "{back}");
    assert_eq!(
        (
            query_param(&back, "linked").as_deref(),
            query_param(&back, "state").as_deref()
        ),
        (Some("up"), Some("s1")),
        "{back}"
    );
    let (status, listed) = me(&server, &bearer, Method::GET, "/v1/auth/me/identities").await;
    assert_eq!(
        (status, listed["identities"][0]["provider"].as_str()),
        (200, Some("up")),
        "{listed}"
    );
    // The ticket was single use.
    let (status, _, page) = tabs.get(&link_url).await;
    assert_eq!(status, 400, "{page}");
    assert!(page.contains("already used"), "{page}");

    // Signing in through the upstream now reaches Bob's account.
    let (auth_url, verifier, _) = authorization(&client);
    let mut fresh = Tabs::new();
    let at = through_upstream(&mut fresh, &auth_url).await;
    let (status, headers, _) = fresh.get(&at.callback).await;
    assert_eq!(status, 303);
    let tokens = exchange(&client, query_param(&headers["location"], "code").unwrap(), verifier).await;
    use openidconnect::TokenResponse;
    let raw = payload(&tokens.id_token().unwrap().to_string());
    assert_eq!(raw["sub"], bob.id.to_string());

    // A second account cannot take the same identity.
    let (mut carol, carol_bearer) =
        signed_in_account(&server, &client, "carol@example.com", "carol's password 1").await;
    let (status, started) = start_link(&server, &carol_bearer, json!({"redirect_uri": REDIRECT})).await;
    assert_eq!(status, 200, "{started}");
    let link_url = started["link_url"].as_str().unwrap().to_owned();
    let (_, headers, _) = carol.get(&link_url).await;
    let callback = upstream_login(&mut carol, &headers["location"]).await;
    let (status, headers, _) = carol.get(&callback).await;
    assert_eq!(status, 303);
    assert_eq!(
        query_param(&headers["location"], "error").as_deref(),
        Some("already_exists"),
        "{}",
        headers["location"]
    );

    // Bob has a password, so the identity is not his last way in.
    let (status, _) = me(&server, &bearer, Method::DELETE, "/v1/auth/me/identities/up").await;
    assert_eq!(status, 204);
}
