//! Roles and permissions end to end: defined and assigned through the admin API, released
//! by the `roles` scope in the ID token, the access token and userinfo of a code flow that
//! an independent OIDC client library drives, and gone from tokens once the role is.

use base64::Engine;
use openidconnect::core::{CoreAuthenticationFlow, CoreClient, CoreProviderMetadata};
use openidconnect::{
    AuthorizationCode, ClientId, CsrfToken, IssuerUrl, Nonce, OAuth2TokenResponse, PkceCodeChallenge, RedirectUrl,
    Scope, TokenResponse,
};
use reqwest::Method;
use serde_json::{Value, json};

use crate::common::browser::{Browser, query_param};
use crate::common::postgres::{postgres_tenant, spa_client};
use crate::common::{TestServer, start};
use crate::oidc_flow::{http, login, make_user};

const REDIRECT: &str = "http://localhost:3000/callback";

fn payload(jwt: &str) -> Value {
    let part = jwt.split('.').nth(1).unwrap();
    serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
}

#[tokio::test]
async fn roles_reach_tokens_through_a_code_flow_on_sqlite() {
    let server = start().await;
    let (status, body) = server
        .admin(Method::POST, "/v1/admin/tenants", Some(json!({"slug": "shop"})))
        .await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = server
        .admin(
            Method::POST,
            "/v1/admin/tenants/shop/clients",
            Some(spa_client(&["openid", "profile", "roles"])),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    roles_in_a_code_flow(&server, "shop").await;
}

#[tokio::test]
async fn roles_reach_tokens_through_a_code_flow_on_postgres() {
    let server = start().await;
    let Some(database) = postgres_tenant(&server, "pgshop", spa_client(&["openid", "profile", "roles"])).await else {
        return;
    };
    roles_in_a_code_flow(&server, "pgshop").await;
    drop(server);
    database.drop_database().await;
}

async fn roles_in_a_code_flow(server: &TestServer, slug: &str) {
    let base = format!("/v1/admin/tenants/{slug}");
    for (name, permissions) in [
        ("billing-admin", json!(["invoices:read", "invoices:write"])),
        ("viewer", json!(["invoices:read"])),
    ] {
        let (status, body) = server
            .admin(
                Method::PUT,
                &format!("{base}/roles/{name}"),
                Some(json!({"description": name, "permissions": permissions})),
            )
            .await;
        assert_eq!(status, 200, "{body}");
    }
    // Bad input: a permission with a space, an unknown field, an unknown role or user.
    let (status, body) = server
        .admin(
            Method::PUT,
            &format!("{base}/roles/bad"),
            Some(json!({"permissions": ["a b"]})),
        )
        .await;
    assert_eq!(
        (status, body["errors"][0]["field"].as_str()),
        (422, Some("permissions[0]"))
    );
    let (status, _) = server
        .admin(Method::PUT, &format!("{base}/roles/bad"), Some(json!({"perms": []})))
        .await;
    assert_eq!(status, 422);
    make_user(server, slug).await;
    let (_, users) = server.admin(Method::GET, &format!("{base}/users"), None).await;
    let user_id = users["users"][0]["id"].as_str().unwrap().to_owned();
    let (status, _) = server
        .admin(Method::PUT, &format!("{base}/users/{user_id}/roles/ghost"), None)
        .await;
    assert_eq!(status, 404, "an undefined role cannot be assigned");
    let nobody = uuid::Uuid::new_v4();
    let (status, _) = server
        .admin(Method::PUT, &format!("{base}/users/{nobody}/roles/viewer"), None)
        .await;
    assert_eq!(status, 404);
    for role in ["viewer", "billing-admin", "viewer"] {
        let (status, body) = server
            .admin(Method::PUT, &format!("{base}/users/{user_id}/roles/{role}"), None)
            .await;
        assert_eq!(status, 204, "{body}");
    }
    let (status, held) = server
        .admin(Method::GET, &format!("{base}/users/{user_id}/roles"), None)
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        held,
        json!({"roles": ["billing-admin", "viewer"], "permissions": ["invoices:read", "invoices:write"]})
    );

    // A code flow asking for `roles`, by an independent client library.
    let issuer = IssuerUrl::new(format!("{}/t/{slug}", server.base)).unwrap();
    let metadata = CoreProviderMetadata::discover_async(issuer, &http).await.unwrap();
    let supported: Vec<String> = metadata
        .scopes_supported()
        .unwrap()
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert!(
        supported.contains(&"roles".to_owned()),
        "discovery lists the roles scope"
    );
    let client = CoreClient::from_provider_metadata(metadata, ClientId::new("demo-spa".into()), None)
        .set_redirect_uri(RedirectUrl::new(REDIRECT.into()).unwrap());
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (auth_url, _, nonce) = client
        .authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .add_scope(Scope::new("roles".into()))
        .set_pkce_challenge(challenge)
        .url();
    let mut browser = Browser::new();
    let (status, location, _) = login(&mut browser, auth_url.as_str(), "correct horse battery").await;
    assert_eq!(status, 303);
    let code = query_param(&location, "code").unwrap();
    let tokens = client
        .exchange_code(AuthorizationCode::new(code))
        .unwrap()
        .set_pkce_verifier(verifier)
        .request_async(&http)
        .await
        .unwrap();
    let id_token = tokens.id_token().unwrap();
    id_token
        .claims(&client.id_token_verifier(), &nonce)
        .expect("the library accepts the ID token");
    let id_claims = payload(&id_token.to_string());
    assert_eq!(id_claims["roles"], json!(["billing-admin", "viewer"]));
    assert!(id_claims.get("permissions").is_none(), "permissions are for APIs");
    let access = tokens.access_token().secret().clone();
    let access_claims = payload(&access);
    assert_eq!(access_claims["roles"], json!(["billing-admin", "viewer"]));
    assert_eq!(access_claims["permissions"], json!(["invoices:read", "invoices:write"]));
    let (status, _, userinfo) = server.userinfo(slug, &access).await;
    assert_eq!(status, 200);
    assert_eq!(userinfo["roles"], json!(["billing-admin", "viewer"]));

    // A role deleted, another unassigned: the next tokens (refresh) carry what is left.
    let (status, _) = server
        .admin(Method::DELETE, &format!("{base}/roles/viewer"), None)
        .await;
    assert_eq!(status, 204);
    let refreshed = client
        .exchange_refresh_token(tokens.refresh_token().unwrap())
        .unwrap()
        .request_async(&http)
        .await
        .unwrap();
    let claims = payload(refreshed.access_token().secret());
    assert_eq!(claims["roles"], json!(["billing-admin"]));
    assert_eq!(claims["permissions"], json!(["invoices:read", "invoices:write"]));
    let (status, _) = server
        .admin(
            Method::DELETE,
            &format!("{base}/users/{user_id}/roles/billing-admin"),
            None,
        )
        .await;
    assert_eq!(status, 204);
    let (status, _) = server
        .admin(
            Method::DELETE,
            &format!("{base}/users/{user_id}/roles/billing-admin"),
            None,
        )
        .await;
    assert_eq!(status, 404, "not held any more");
    let again = client
        .exchange_refresh_token(refreshed.refresh_token().unwrap())
        .unwrap()
        .request_async(&http)
        .await
        .unwrap();
    let claims = payload(again.access_token().secret());
    assert_eq!(
        (claims["roles"].clone(), claims["permissions"].clone()),
        (json!([]), json!([]))
    );

    // Without the scope, no role claims at all.
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (auth_url, _, _) = client
        .authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .add_scope(Scope::new("profile".into()))
        .set_pkce_challenge(challenge)
        .url();
    let (status, headers, _) = browser.send(Method::GET, auth_url.as_str(), None).await;
    assert_eq!(status, 303, "the session is reused");
    let code = query_param(headers.get("location").unwrap(), "code").unwrap();
    let plain = client
        .exchange_code(AuthorizationCode::new(code))
        .unwrap()
        .set_pkce_verifier(verifier)
        .request_async(&http)
        .await
        .unwrap();
    let claims = payload(plain.access_token().secret());
    assert!(
        claims.get("roles").is_none() && claims.get("permissions").is_none(),
        "{claims}"
    );
    assert!(payload(&plain.id_token().unwrap().to_string()).get("roles").is_none());
}
