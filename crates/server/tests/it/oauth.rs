//! Admin client provisioning and the client-authenticated OAuth endpoints (token with
//! `client_credentials`, introspection, revocation), driven over HTTP in-process.

use crate::common::{TestServer, start};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use reqwest::Method;
use serde_json::{Value, json};

const API: &str = "/v1/admin/tenants/local/clients";

async fn confidential_client(server: &TestServer, slug: &str, body: Value) -> (String, String) {
    let (status, created) = server
        .admin(Method::POST, &format!("/v1/admin/tenants/{slug}/clients"), Some(body))
        .await;
    assert_eq!(status, 201, "{created}");
    (
        created["client_id"].as_str().unwrap().to_owned(),
        created["client_secret"].as_str().unwrap().to_owned(),
    )
}

async fn post_form(
    server: &TestServer,
    slug: &str,
    endpoint: &str,
    basic: Option<(&str, &str)>,
    form: &[(&str, &str)],
) -> (u16, reqwest::header::HeaderMap, Value) {
    let mut request = server
        .http
        .post(format!("{}/t/{slug}/{endpoint}", server.base))
        .form(form);
    if let Some((id, secret)) = basic {
        request = request.basic_auth(id, Some(secret));
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    (status, headers, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn admins_provision_clients_and_secrets_are_shown_once() {
    let server = start().await;
    let (status, created) = server
        .admin(
            Method::POST,
            API,
            Some(json!({"client_id": "billing", "name": "Billing", "grant_types": ["client_credentials"], "scopes": ["invoices.read"]})),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let secret = created["client_secret"].as_str().unwrap().to_owned();
    assert!(secret.len() >= 43);
    assert_eq!(created["token_endpoint_auth_method"], "client_secret_basic");
    assert_eq!(created["has_secret"], true);

    let (_, shown) = server.admin(Method::GET, &format!("{API}/billing"), None).await;
    assert!(shown.get("client_secret").is_none() && shown.get("secret_hash").is_none());
    let file = std::fs::read_to_string(
        server
            .state
            .control_plane
            .store()
            .root()
            .join("tenants/local/clients/billing.json"),
    )
    .unwrap();
    assert!(!file.contains(&secret), "the secret is not stored");
    assert!(file.contains("hmac-sha256:"), "a keyed digest is stored");

    let (status, body) = server
        .admin(
            Method::POST,
            API,
            Some(json!({"client_id": "billing", "name": "Again"})),
        )
        .await;
    assert_eq!((status, body["code"].as_str()), (409, Some("client_exists")));
    let (status, body) = server
        .admin(
            Method::POST,
            API,
            Some(json!({"name": "Bad", "client_type": "public", "grant_types": ["client_credentials"]})),
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (422, Some("validation_failed")),
        "{body}"
    );
    let (status, body) = server
        .admin(Method::POST, API, Some(json!({"name": "x", "secret_hash": "y"})))
        .await;
    assert_eq!(
        (status, body["errors"][0]["field"].as_str()),
        (422, Some("secret_hash")),
        "a stored field cannot be sent: {body}"
    );

    // Merge-patch; the id is immutable.
    let (status, patched) = server
        .admin(
            Method::PATCH,
            &format!("{API}/billing"),
            Some(json!({"name": "Billing v2", "access_token_secs": 120})),
        )
        .await;
    assert_eq!(status, 200, "{patched}");
    assert_eq!(
        (patched["name"].as_str(), patched["access_token_secs"].as_u64()),
        (Some("Billing v2"), Some(120))
    );
    assert!(patched.get("client_secret").is_none(), "the secret is kept, not shown");
    let (status, _) = server
        .admin(
            Method::PATCH,
            &format!("{API}/billing"),
            Some(json!({"client_id": "other"})),
        )
        .await;
    assert_eq!(status, 422);

    // Rotating the secret: the old one stops working, the new one works.
    let (status, rotated) = server.admin(Method::POST, &format!("{API}/billing/secret"), None).await;
    assert_eq!(status, 200);
    let new_secret = rotated["client_secret"].as_str().unwrap();
    let form = [("grant_type", "client_credentials")];
    assert_eq!(
        post_form(&server, "local", "token", Some(("billing", &secret)), &form)
            .await
            .0,
        401
    );
    assert_eq!(
        post_form(&server, "local", "token", Some(("billing", new_secret)), &form)
            .await
            .0,
        200
    );

    // With an overlap window the replaced secret keeps working until the window ends.
    let rotate_path = format!("{API}/billing/secret");
    let rotate = |body: Value| server.admin(Method::POST, &rotate_path, Some(body));
    let (status, body) = rotate(json!({"overlap_secs": 31 * 24 * 3600})).await;
    assert_eq!(
        (status, body["errors"][0]["field"].as_str()),
        (422, Some("overlap_secs"))
    );
    let (status, overlapping) = rotate(json!({"overlap_secs": 2})).await;
    assert_eq!(status, 200, "{overlapping}");
    assert!(overlapping["previous_secret_expires_at"].is_string());
    let newest = overlapping["client_secret"].as_str().unwrap().to_owned();
    for secret in [new_secret, newest.as_str()] {
        let (status, _, body) = post_form(&server, "local", "token", Some(("billing", secret)), &form).await;
        assert_eq!(status, 200, "both secrets work in the window: {body}");
    }
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    assert_eq!(
        post_form(&server, "local", "token", Some(("billing", new_secret)), &form)
            .await
            .0,
        401,
        "the window is over"
    );
    let (status, rotated) = rotate(json!({})).await;
    assert_eq!(status, 200);
    assert!(
        rotated.get("previous_secret_expires_at").is_none(),
        "no overlap asked: none kept"
    );
    assert_eq!(
        post_form(&server, "local", "token", Some(("billing", &newest)), &form)
            .await
            .0,
        401
    );
    let new_secret = rotated["client_secret"].as_str().unwrap();

    let (_, list) = server.admin(Method::GET, API, None).await;
    let ids: Vec<&str> = list["clients"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["client_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["billing", "demo-spa"]);
    assert!(list["next_after"].is_null());
    // Pages: one client, then the one after it.
    let (_, first) = server.admin(Method::GET, &format!("{API}?limit=1"), None).await;
    assert_eq!(first["clients"][0]["client_id"], "billing");
    assert_eq!(first["next_after"], "billing");
    let (_, second) = server
        .admin(Method::GET, &format!("{API}?limit=1&after=billing"), None)
        .await;
    assert_eq!(second["clients"][0]["client_id"], "demo-spa");
    assert!(second["next_after"].is_null());
    for bad in ["limit=0", "limit=1001", "colour=red"] {
        let (status, body) = server.admin(Method::GET, &format!("{API}?{bad}"), None).await;
        assert_eq!(status, 422, "{bad}: {body}");
    }
    assert_eq!(
        server.admin(Method::DELETE, &format!("{API}/billing"), None).await.0,
        204
    );
    assert_eq!(server.admin(Method::GET, &format!("{API}/billing"), None).await.0, 404);
    assert_eq!(
        post_form(&server, "local", "token", Some(("billing", new_secret)), &form)
            .await
            .0,
        401
    );
}

#[tokio::test]
async fn client_credentials_issues_a_jwt_that_verifies_against_the_jwks() {
    let server = start().await;
    let (id, secret) = confidential_client(
        &server,
        "local",
        json!({"name": "Reports", "grant_types": ["client_credentials"], "scopes": ["reports.read", "reports.write", "openid"],
               "access_token_signed_response_alg": "ES256"}),
    )
    .await;
    let (status, headers, body) = post_form(
        &server,
        "local",
        "token",
        Some((&id, &secret)),
        &[
            ("grant_type", "client_credentials"),
            ("scope", "reports.read"),
            ("resource", "https://api.example.com/"),
        ],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(headers["cache-control"], "no-store");
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["scope"], "reports.read");
    assert!(body.get("refresh_token").is_none());
    let token = body["access_token"].as_str().unwrap();

    let (set, _) = server.jwks("local").await;
    let header = jsonwebtoken::decode_header(token).unwrap();
    assert_eq!(header.alg, Algorithm::ES256);
    let mut validation = Validation::new(Algorithm::ES256);
    validation.set_audience(&["https://api.example.com/"]);
    validation.set_issuer(&[format!("{}/t/local", server.base)]);
    let jwk = set.find(header.kid.as_deref().unwrap()).unwrap();
    let claims = jsonwebtoken::decode::<Value>(token, &DecodingKey::from_jwk(jwk).unwrap(), &validation)
        .unwrap()
        .claims;
    assert_eq!(
        (claims["sub"].as_str(), claims["client_id"].as_str()),
        (Some(id.as_str()), Some(id.as_str()))
    );
    assert_eq!(claims["tid"], "local");

    // Default scopes leave out the user-only ones; asking for them is refused.
    let (_, _, body) = post_form(
        &server,
        "local",
        "token",
        Some((&id, &secret)),
        &[("grant_type", "client_credentials")],
    )
    .await;
    assert_eq!(body["scope"], "reports.read reports.write");
    for (form, error) in [
        (
            vec![("grant_type", "client_credentials"), ("scope", "openid")],
            "invalid_scope",
        ),
        (
            vec![("grant_type", "client_credentials"), ("scope", "admin")],
            "invalid_scope",
        ),
        (
            vec![("grant_type", "client_credentials"), ("resource", "not a uri")],
            "invalid_target",
        ),
        (vec![("grant_type", "password")], "unsupported_grant_type"),
        (vec![("scope", "x")], "invalid_request"),
        (
            vec![
                ("grant_type", "client_credentials"),
                ("grant_type", "client_credentials"),
            ],
            "invalid_request",
        ),
    ] {
        let (status, _, body) = post_form(&server, "local", "token", Some((&id, &secret)), &form).await;
        assert_eq!((status, body["error"].as_str()), (400, Some(error)), "{form:?}");
    }
}

#[tokio::test]
async fn client_authentication_failures_and_other_tenants() {
    let server = start().await;
    let (id, secret) = confidential_client(
        &server,
        "local",
        json!({"name": "Svc", "grant_types": ["client_credentials"], "scopes": ["a"]}),
    )
    .await;
    let form = [("grant_type", "client_credentials")];

    // Wrong secret, unknown client: 401 invalid_client with a Basic challenge.
    for (who, pass) in [(id.as_str(), "wrong"), ("ghost", secret.as_str())] {
        let (status, headers, body) = post_form(&server, "local", "token", Some((who, pass)), &form).await;
        assert_eq!((status, body["error"].as_str()), (401, Some("invalid_client")));
        assert!(
            headers["www-authenticate"]
                .to_str()
                .unwrap()
                .starts_with("Basic realm=")
        );
    }
    // The registered method is enforced (basic, not post).
    let post = [
        ("grant_type", "client_credentials"),
        ("client_id", id.as_str()),
        ("client_secret", secret.as_str()),
    ];
    let (status, headers, _) = post_form(&server, "local", "token", None, &post).await;
    assert_eq!(status, 401);
    assert!(
        !headers.contains_key("www-authenticate"),
        "no Basic challenge when Basic was not tried"
    );
    // Both methods at once.
    let (status, _, body) = post_form(&server, "local", "token", Some((&id, &secret)), &post).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_request")));
    // A public client cannot use client_credentials.
    let public = [("grant_type", "client_credentials"), ("client_id", "demo-spa")];
    let (status, _, body) = post_form(&server, "local", "token", None, &public).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("unauthorized_client")));
    // Not a form.
    let response = server
        .http
        .post(format!("{}/t/local/token", server.base))
        .json(&json!({"grant_type": "client_credentials"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);

    // Another tenant: the client does not exist there, and its tokens are inactive there.
    let (status, body) = server
        .admin(
            Method::POST,
            "/v1/admin/tenants",
            Some(json!({"slug": "beta", "settings": {"user_db": {"driver": "sqlite"}}})),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let (beta_id, beta_secret) = confidential_client(
        &server,
        "beta",
        json!({"name": "Beta svc", "grant_types": ["client_credentials"], "scopes": ["a"]}),
    )
    .await;
    let (status, _, body) = post_form(&server, "beta", "token", Some((&id, &secret)), &form).await;
    assert_eq!((status, body["error"].as_str()), (401, Some("invalid_client")));
    let (_, _, issued) = post_form(&server, "local", "token", Some((&id, &secret)), &form).await;
    let local_token = issued["access_token"].as_str().unwrap();
    let (status, _, body) = post_form(
        &server,
        "beta",
        "introspect",
        Some((&beta_id, &beta_secret)),
        &[("token", local_token)],
    )
    .await;
    assert_eq!((status, body), (200, json!({"active": false})));
}

#[tokio::test]
async fn introspection_and_revocation() {
    let server = start().await;
    let (id, secret) = confidential_client(
        &server,
        "local",
        json!({"name": "Svc", "grant_types": ["client_credentials"], "scopes": ["a", "b"], "token_endpoint_auth_method": "client_secret_post"}),
    )
    .await;
    let (rs, rs_secret) = confidential_client(
        &server,
        "local",
        json!({"name": "Resource server", "grant_types": ["client_credentials"], "scopes": ["a"]}),
    )
    .await;
    let creds = [("client_id", id.as_str()), ("client_secret", secret.as_str())];
    let token_form = [creds[0], creds[1], ("grant_type", "client_credentials")];
    let (status, _, issued) = post_form(&server, "local", "token", None, &token_form).await;
    assert_eq!(status, 200, "{issued}");
    let token = issued["access_token"].as_str().unwrap().to_owned();

    // The resource server introspects a token issued to another client of the tenant.
    let (status, headers, body) = post_form(
        &server,
        "local",
        "introspect",
        Some((&rs, &rs_secret)),
        &[("token", &token)],
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(headers["cache-control"], "no-store");
    assert_eq!(body["active"], true);
    assert_eq!(body["client_id"], id.as_str());
    assert_eq!(body["scope"], "a b");
    assert_eq!(body["token_type"], "Bearer");
    assert!(body["exp"].as_i64().unwrap() > body["iat"].as_i64().unwrap());
    for junk in ["garbage", "a.b.c", ""] {
        let (status, _, body) = post_form(
            &server,
            "local",
            "introspect",
            Some((&rs, &rs_secret)),
            &[("token", junk)],
        )
        .await;
        if junk.is_empty() {
            assert_eq!((status, body["error"].as_str()), (400, Some("invalid_request")));
        } else {
            assert_eq!((status, body), (200, json!({"active": false})), "{junk}");
        }
    }
    // Introspection needs client authentication.
    let (status, _, body) = post_form(&server, "local", "introspect", None, &[("token", &token)]).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_request")));
    let (status, _, _) = post_form(
        &server,
        "local",
        "introspect",
        Some((&rs, "wrong")),
        &[("token", &token)],
    )
    .await;
    assert_eq!(status, 401);

    // Another client may not revoke it; its own client may; then it is inactive.
    let (status, _, body) = post_form(
        &server,
        "local",
        "revoke",
        Some((&rs, &rs_secret)),
        &[("token", &token)],
    )
    .await;
    assert_eq!((status, body["error"].as_str()), (400, Some("unauthorized_client")));
    let revoke_form = [
        creds[0],
        creds[1],
        ("token", token.as_str()),
        ("token_type_hint", "access_token"),
    ];
    let (status, _, _) = post_form(&server, "local", "revoke", None, &revoke_form).await;
    assert_eq!(status, 200);
    let (_, _, body) = post_form(
        &server,
        "local",
        "introspect",
        Some((&rs, &rs_secret)),
        &[("token", &token)],
    )
    .await;
    assert_eq!(body, json!({"active": false}));
    // Revoking again, or revoking garbage, is still 200 (RFC 7009 2.2).
    assert_eq!(post_form(&server, "local", "revoke", None, &revoke_form).await.0, 200);
    let junk = [creds[0], creds[1], ("token", "no-such-token")];
    assert_eq!(post_form(&server, "local", "revoke", None, &junk).await.0, 200);
}

#[tokio::test]
async fn private_key_jwt_clients_authenticate_with_single_use_assertions() {
    use tenantry_controlplane::model::SigningAlg;
    let server = start().await;
    // The client's own key pair (made with our key code, used here only as the client's).
    let sb = tenantry_crypto::SecretBox::new(tenantry_crypto::MasterKey::generate(), vec![]);
    let now = chrono::Utc::now();
    let key = tenantry_keys::generate_key(SigningAlg::Es256, &sb, "client", now).unwrap();
    let ring = tenantry_controlplane::model::KeyRing {
        keys: vec![key.clone()],
    };
    let client_keys = tenantry_keys::IssuerKeys::open(&ring, &sb, "client").unwrap();
    let other_ring = tenantry_keys::generate_ring(&sb, "client", now).unwrap();
    let other_keys = tenantry_keys::IssuerKeys::open(&other_ring, &sb, "client").unwrap();
    let public: Value = serde_json::from_str(&key.public_jwk).unwrap();

    let (status, created) = server
        .admin(
            Method::POST,
            "/v1/admin/tenants/local/clients",
            Some(
                json!({"client_id": "signer", "name": "Signer", "token_endpoint_auth_method": "private_key_jwt",
                "jwks": {"keys": [public]}, "grant_types": ["client_credentials"], "scopes": ["a"]}),
            ),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    assert!(
        created.get("client_secret").is_none(),
        "no secret for a key-based client"
    );
    let (status, _) = server
        .admin(
            Method::POST,
            "/v1/admin/tenants/local/clients",
            Some(json!({"name": "Leaky", "token_endpoint_auth_method": "private_key_jwt",
                "jwks": {"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}})),
        )
        .await;
    assert_eq!(status, 422, "a JWK Set with private or symmetric keys is refused");

    let token_url = format!("{}/t/local/token", server.base);
    let issuer = format!("{}/t/local", server.base);
    // Claims of an assertion; `extra` replaces or adds claims.
    let assertion_with = |keys: &tenantry_keys::IssuerKeys, exp_in: i64, jti: Option<&str>, extra: Value| {
        let now = chrono::Utc::now().timestamp();
        let mut claims = json!({"iss": "signer", "sub": "signer", "aud": issuer, "iat": now, "exp": now + exp_in});
        if let Some(jti) = jti {
            claims["jti"] = json!(jti);
        }
        for (name, value) in extra.as_object().unwrap() {
            claims[name] = value.clone();
        }
        keys.sign(SigningAlg::Es256, "JWT", &claims).unwrap()
    };
    let assertion = |keys: &tenantry_keys::IssuerKeys, aud: &str, exp_in: i64, jti: Option<&str>| {
        assertion_with(keys, exp_in, jti, json!({"aud": aud}))
    };
    let call = |assertion: String| {
        let url = token_url.clone();
        let http = server.http.clone();
        async move {
            let response = http
                .post(url)
                .form(&[
                    ("grant_type", "client_credentials"),
                    (
                        "client_assertion_type",
                        "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                    ),
                    ("client_assertion", assertion.as_str()),
                ])
                .send()
                .await
                .unwrap();
            let status = response.status().as_u16();
            (status, response.json::<Value>().await.unwrap())
        }
    };

    let good = assertion(&client_keys, &issuer, 60, Some("jti-1"));
    let (status, body) = call(good.clone()).await;
    assert_eq!(status, 200, "{body}");
    assert!(body["access_token"].is_string());
    let (status, body) = call(good).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("invalid_client")),
        "a replayed assertion"
    );

    let (status, body) = call(assertion_with(
        &client_keys,
        60,
        Some("jti-2"),
        json!({"aud": [issuer]}),
    ))
    .await;
    assert_eq!(status, 200, "an array holding only the issuer: {body}");
    let in_an_hour = chrono::Utc::now().timestamp() + 3600;
    for (what, bad) in [
        ("another key", assertion(&other_keys, &issuer, 60, Some("jti-3"))),
        (
            "another audience",
            assertion(&client_keys, "https://elsewhere.example/token", 60, Some("jti-4")),
        ),
        (
            "the token endpoint as audience",
            assertion(&client_keys, &token_url, 60, Some("jti-4b")),
        ),
        (
            "another tenant's issuer beside ours",
            assertion_with(
                &client_keys,
                60,
                Some("jti-4c"),
                json!({"aud": [issuer, format!("{}/t/other", server.base)]}),
            ),
        ),
        (
            "iat an hour ahead",
            assertion_with(&client_keys, 60, Some("jti-4d"), json!({"iat": in_an_hour})),
        ),
        (
            "nbf an hour ahead",
            assertion_with(&client_keys, 60, Some("jti-4e"), json!({"nbf": in_an_hour})),
        ),
        ("too long-lived", assertion(&client_keys, &issuer, 3600, Some("jti-5"))),
        ("expired", assertion(&client_keys, &issuer, -120, Some("jti-6"))),
        ("no jti", assertion(&client_keys, &issuer, 60, None)),
    ] {
        let (status, body) = call(bad).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (401, Some("invalid_client")),
            "{what}"
        );
    }
    // The key-based client cannot fall back to a secret.
    let (status, _, _) = post_form(
        &server,
        "local",
        "token",
        Some(("signer", "guess")),
        &[("grant_type", "client_credentials")],
    )
    .await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn a_registered_spa_origin_may_call_the_token_endpoint_from_the_browser() {
    let server = start().await;
    let preflight = |origin: &'static str| {
        let url = format!("{}/t/local/token", server.base);
        let http = server.http.clone();
        async move {
            http.request(Method::OPTIONS, url)
                .header("origin", origin)
                .header("access-control-request-method", "POST")
                .send()
                .await
                .unwrap()
        }
    };
    // demo-spa registers http://localhost:3000 as a web origin.
    let allowed = preflight("http://localhost:3000").await;
    assert_eq!(
        allowed.headers()["access-control-allow-origin"],
        "http://localhost:3000"
    );
    let refused = preflight("https://evil.example").await;
    assert!(!refused.headers().contains_key("access-control-allow-origin"));
}
