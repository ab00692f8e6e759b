//! The hosted sign-up step inside an authorization request: from the login page's
//! "Create an account" button to a code for the client, with the tenant's password policy
//! and custom fields, checked by an independent OIDC client (`openidconnect`).

use openidconnect::core::{CoreAuthenticationFlow, CoreClient, CoreProviderMetadata};
use openidconnect::{
    AuthorizationCode, ClientId, CsrfToken, IssuerUrl, Nonce, PkceCodeChallenge, RedirectUrl, Scope, TokenResponse,
};
use reqwest::Method;
use serde_json::{Value, json};
use tenantry_dataplane::UserRepository;

use crate::common::browser::{Browser, form_actions, hidden, query_param};
use crate::common::{TestServer, start};
use crate::oidc_flow::http;

const REDIRECT: &str = "http://localhost:3000/callback";

async fn shop(server: &TestServer, settings: Value) {
    server.tenant_with_spa("shop", settings).await;
}

async fn count_users(server: &TestServer) -> i64 {
    server.ctx("shop").db().await.unwrap().count_users().await.unwrap()
}

#[tokio::test]
async fn a_visitor_creates_an_account_inside_the_flow_and_the_client_gets_a_code() {
    let server = start().await;
    shop(
        &server,
        json!({"security": {"registration_enabled": true, "password_min_length": 12},
            "custom_fields": [{"name": "cost_center", "type": "text", "required": true},
                {"name": "seats", "type": "integer"}]}),
    )
    .await;
    let issuer = IssuerUrl::new(format!("{}/t/shop", server.base)).unwrap();
    let metadata = CoreProviderMetadata::discover_async(issuer, &http).await.unwrap();
    let client = CoreClient::from_provider_metadata(metadata, ClientId::new("demo-spa".into()), None)
        .set_redirect_uri(RedirectUrl::new(REDIRECT.into()).unwrap());
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (auth_url, _, nonce) = client
        .authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .add_scope(Scope::new("email".into()))
        .set_pkce_challenge(challenge)
        .url();

    let mut browser = Browser::new();
    let (status, _, page) = browser.send(Method::GET, auth_url.as_str(), None).await;
    assert_eq!(status, 200);
    assert!(page.contains("Create an account"), "{page}");
    let signup = form_actions(&page)
        .into_iter()
        .find(|a| a.ends_with("/signup"))
        .unwrap();
    let (interaction, csrf) = (hidden(&page, "interaction"), hidden(&page, "csrf"));
    let (status, _, page) = browser
        .send(
            Method::POST,
            &signup,
            Some(&[("interaction", &interaction), ("csrf", &csrf)]),
        )
        .await;
    assert_eq!(status, 200, "{page}");
    assert!(
        page.contains("name=\"custom.cost_center\"") && page.contains("type=\"number\""),
        "{page}"
    );
    assert!(page.contains("minlength=\"12\""), "{page}");

    let submit = |password: &'static str, cost_center: &'static str, page: &str| {
        let form = vec![
            ("interaction", hidden(page, "interaction")),
            ("csrf", hidden(page, "csrf")),
            ("create", "1".to_owned()),
            ("email", "grace@example.com".to_owned()),
            ("password", password.to_owned()),
            ("given_name", "Grace".to_owned()),
            ("custom.cost_center", cost_center.to_owned()),
            ("custom.seats", "3".to_owned()),
        ];
        form
    };
    // Refused, the form shown again with what was sent: a short password, a missing
    // required field. Nothing is made.
    let form = submit("short", "CC-1", &page);
    let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (status, _, page) = browser.send(Method::POST, &signup, Some(&form)).await;
    assert!((400..500).contains(&status), "{status} {page}");
    assert!(
        page.contains("role=\"alert\"") && page.contains("value=\"grace@example.com\""),
        "{page}"
    );
    let form = submit("a long enough password", "", &page);
    let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (status, _, page) = browser.send(Method::POST, &signup, Some(&form)).await;
    assert!((400..500).contains(&status), "{status} {page}");
    assert!(page.contains("cost_center"), "{page}");
    assert_eq!(count_users(&server).await, 0);

    let form = submit("a long enough password", "CC-1", &page);
    let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (status, headers, body) = browser.send(Method::POST, &signup, Some(&form)).await;
    assert_eq!(status, 303, "{body}");
    let location = headers["location"].clone();
    assert!(location.starts_with(REDIRECT), "{location}");
    let tokens = client
        .exchange_code(AuthorizationCode::new(query_param(&location, "code").unwrap()))
        .unwrap()
        .set_pkce_verifier(verifier)
        .request_async(&http)
        .await
        .unwrap();
    let claims = tokens
        .id_token()
        .unwrap()
        .claims(&client.id_token_verifier(), &nonce)
        .unwrap();
    assert_eq!(claims.email().map(|e| e.as_str()), Some("grace@example.com"));
    let ctx = server.ctx("shop");
    let user = ctx
        .db()
        .await
        .unwrap()
        .user_by_email("grace@example.com", &ctx.custom_fields())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(user.given_name.as_deref(), Some("Grace"));
    assert_eq!(user.custom["cost_center"], "CC-1");
    assert_eq!(user.custom["seats"], 3);

    // The same address again: refused, nothing new.
    let mut browser = Browser::new();
    let (_, _, page) = browser.send(Method::GET, auth_url.as_str(), None).await;
    let (interaction, csrf) = (hidden(&page, "interaction"), hidden(&page, "csrf"));
    let (_, _, page) = browser
        .send(
            Method::POST,
            &signup,
            Some(&[("interaction", &interaction), ("csrf", &csrf)]),
        )
        .await;
    let form = submit("another long password", "CC-2", &page);
    let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (status, _, page) = browser.send(Method::POST, &signup, Some(&form)).await;
    assert_eq!(status, 409, "{page}");
    assert_eq!(count_users(&server).await, 1);
}

#[tokio::test]
async fn without_registration_there_is_no_sign_up() {
    let server = start().await;
    shop(&server, json!({})).await;
    let auth_url = format!(
        "{}/t/shop/authorize?response_type=code&client_id=demo-spa&redirect_uri={}&scope=openid&code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM&code_challenge_method=S256&ui_locales=es",
        server.base,
        url::form_urlencoded::byte_serialize(REDIRECT.as_bytes()).collect::<String>()
    );
    let mut browser = Browser::new();
    let (status, _, page) = browser.send(Method::GET, &auth_url, None).await;
    assert_eq!(status, 200);
    assert!(
        page.contains("Iniciar sesión") && !page.contains("Crear una cuenta"),
        "{page}"
    );
    let (interaction, csrf) = (hidden(&page, "interaction"), hidden(&page, "csrf"));
    let signup = format!("{}/t/shop/signup", server.base);
    let form = [
        ("interaction", interaction.as_str()),
        ("csrf", csrf.as_str()),
        ("create", "1"),
        ("email", "mallory@example.com"),
        ("password", "a long enough password"),
    ];
    let (status, _, page) = browser.send(Method::POST, &signup, Some(&form)).await;
    assert_eq!(status, 403, "{page}");
    assert!(page.contains("registration_disabled"), "{page}");
    assert_eq!(count_users(&server).await, 0);
    // Without the flow's CSRF cookie, nothing either.
    let (status, _, _) = Browser::new().send(Method::POST, &signup, Some(&form)).await;
    assert_eq!(status, 400);
}
