//! Request quotas per tenant and per client over HTTP: the token, revocation,
//! introspection, authorization, UserInfo, headless and admin endpoints count, refuse
//! with 429 and `Retry-After`, and report where the caller stands in `RateLimit` headers;
//! one tenant's quota never touches another's. The tenant flows run on SQLite and on
//! PostgreSQL; the shared counters on Redis.

use reqwest::Method;
use reqwest::header::HeaderMap;
use serde_json::{Value, json};

use tenantry_testkit::relay::Relay;

use crate::common::api::Api;
use crate::common::postgres::{postgres_tenant, spa_client};
use crate::common::{TestServer, start, start_with_config};

const PASSWORD: &str = "correct horse battery";

async fn form(
    server: &TestServer,
    slug: &str,
    endpoint: &str,
    basic: (&str, &str),
    form: &[(&str, &str)],
) -> (u16, HeaderMap, Value) {
    let response = server
        .http
        .post(format!("{}/t/{slug}/{endpoint}", server.base))
        .basic_auth(basic.0, Some(basic.1))
        .form(form)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    (status, headers, response.json().await.unwrap_or(Value::Null))
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).map(|v| v.to_str().unwrap())
}

async fn patch_settings(server: &TestServer, slug: &str, settings: Value) {
    let (status, body) = server
        .admin(
            Method::PATCH,
            &format!("/v1/admin/tenants/{slug}"),
            Some(json!({ "settings": settings })),
        )
        .await;
    assert_eq!(status, 200, "{body}");
}

async fn service_client(server: &TestServer, slug: &str, id: &str, quotas: Value) -> String {
    let (status, created) = server
        .admin(
            Method::POST,
            &format!("/v1/admin/tenants/{slug}/clients"),
            Some(
                json!({"client_id": id, "name": id, "grant_types": ["client_credentials"],
                "scopes": ["api"], "quotas": quotas}),
            ),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let shown = created.get("quotas").cloned().unwrap_or(json!({}));
    assert_eq!(shown, quotas, "the client shows its own quotas");
    created["client_secret"].as_str().unwrap().to_owned()
}

/// Every kind of quota on the tenant `slug` (which has the first-party `demo-spa`).
async fn quotas_hold_on_every_endpoint(server: &TestServer, slug: &str) {
    let (status, body) = server
        .admin(
            Method::POST,
            &format!("/v1/admin/tenants/{slug}/users"),
            Some(json!({"email": "ada@example.com", "password": PASSWORD, "email_verified": true})),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let small = service_client(server, slug, "small", json!({})).await;
    let big = service_client(server, slug, "big", json!({"token": 4})).await;
    // Before any quota: no headers, nothing counted.
    let (status, headers, _) = form(
        server,
        slug,
        "token",
        ("small", &small),
        &[("grant_type", "client_credentials")],
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(header(&headers, "ratelimit-limit"), None);

    patch_settings(
        server,
        slug,
        json!({"quotas": {"window_secs": 120, "tenant": {"introspection": 2, "auth_api": 3},
            "per_client": {"token": 2, "userinfo": 1, "authorize": 1}}}),
    )
    .await;

    // Per client, on the token endpoint: the tenant's per-client limit...
    let cc = [("grant_type", "client_credentials")];
    let mut access_token = String::new();
    for left in ["1", "0"] {
        let (status, headers, body) = form(server, slug, "token", ("small", &small), &cc).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(header(&headers, "ratelimit-limit"), Some("2"));
        assert_eq!(header(&headers, "ratelimit-remaining"), Some(left));
        assert_eq!(header(&headers, "ratelimit-policy"), Some("\"client\";q=2;w=120"));
        access_token = body["access_token"].as_str().unwrap().to_owned();
    }
    let (status, headers, body) = form(server, slug, "token", ("small", &small), &cc).await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["error"], "quota_exceeded", "an RFC 6749 error: {body}");
    let retry: u64 = header(&headers, "retry-after").unwrap().parse().unwrap();
    assert!((1..=120).contains(&retry), "{retry}");
    assert_eq!(header(&headers, "ratelimit-remaining"), Some("0"));
    assert!(header(&headers, "ratelimit").unwrap().starts_with("\"client\";r=0;t="));
    // ...revocation is a token-endpoint request of the same client.
    let (status, _, _) = form(server, slug, "revoke", ("small", &small), &[("token", "x")]).await;
    assert_eq!(status, 429);

    // A client's own limit replaces the per-client one, and only an authenticated request
    // counts: a wrong secret cannot spend the quota of the client it names.
    for _ in 0..5 {
        let (status, _, _) = form(server, slug, "token", ("big", "wrong secret"), &cc).await;
        assert_eq!(status, 401);
    }
    for _ in 0..4 {
        let (status, _, body) = form(server, slug, "token", ("big", &big), &cc).await;
        assert_eq!(status, 200, "{body}");
    }
    assert_eq!(form(server, slug, "token", ("big", &big), &cc).await.0, 429);

    // Per tenant, on introspection: every client together.
    for _ in 0..2 {
        let (status, headers, body) =
            form(server, slug, "introspect", ("big", &big), &[("token", &access_token)]).await;
        assert_eq!((status, &body["active"]), (200, &json!(true)), "{body}");
        assert!(
            header(&headers, "ratelimit-policy")
                .unwrap()
                .starts_with("\"tenant\";q=2;")
        );
    }
    let (status, headers, body) = form(
        server,
        slug,
        "introspect",
        ("small", &small),
        &[("token", &access_token)],
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (429, Some("quota_exceeded")),
        "{body}"
    );
    assert!(header(&headers, "retry-after").is_some());

    // The headless API, per tenant: problem+json.
    let api = Api { server, slug };
    let (status, tokens) = api.login("ada@example.com", PASSWORD).await;
    assert_eq!(status, 200, "{tokens}");
    let user_token = tokens["access_token"].as_str().unwrap().to_owned();
    for _ in 0..2 {
        assert_eq!(api.call(Method::GET, "/v1/tenant", None, None).await.0, 200);
    }
    let (status, problem) = api.call(Method::GET, "/v1/tenant", None, None).await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (429, Some("quota_exceeded")),
        "{problem}"
    );

    // UserInfo, per client: counted for the client the token was issued to.
    let (status, _, claims) = server.userinfo(slug, &user_token).await;
    assert_eq!(status, 200, "{claims}");
    let (status, _, problem) = server.userinfo(slug, &user_token).await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (429, Some("quota_exceeded")),
        "{problem}"
    );

    // Authorization, per client: once the client is known, a refusal goes back to it.
    let authorize = format!(
        "{}/t/{slug}/authorize?response_type=code&client_id=demo-spa&redirect_uri=http%3A%2F%2Flocalhost%3A3000%2Fcallback&scope=openid&state=s1&code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGYSKaGqtQ&code_challenge_method=S256",
        server.base
    );
    let no_redirects = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let first = no_redirects.get(&authorize).send().await.unwrap();
    assert_eq!(first.status(), 200, "the login page");
    assert_eq!(header(first.headers(), "ratelimit-remaining"), Some("0"));
    let second = no_redirects.get(&authorize).send().await.unwrap();
    assert!(second.status().is_redirection(), "{}", second.status());
    let location = header(second.headers(), "location").unwrap();
    assert!(
        location.starts_with("http://localhost:3000/callback?") && location.contains("error=temporarily_unavailable"),
        "{location}"
    );
    assert!(location.contains("state=s1"), "{location}");
}

#[tokio::test]
async fn quotas_hold_on_every_endpoint_on_sqlite() {
    let server = start().await;
    quotas_hold_on_every_endpoint(&server, "local").await;

    // Another tenant of the same server counts on its own.
    let (status, body) = server
        .admin(Method::POST, "/v1/admin/tenants", Some(json!({"slug": "other"})))
        .await;
    assert_eq!(status, 201, "{body}");
    let secret = service_client(&server, "other", "small", json!({})).await;
    for _ in 0..5 {
        let (status, headers, _) = form(
            &server,
            "other",
            "token",
            ("small", &secret),
            &[("grant_type", "client_credentials")],
        )
        .await;
        assert_eq!(status, 200);
        assert_eq!(header(&headers, "ratelimit-limit"), None);
    }
}

#[tokio::test]
async fn quotas_hold_on_every_endpoint_on_postgres() {
    let server = start().await;
    let Some(pg) = postgres_tenant(&server, "pg", spa_client(&["openid", "email", "offline_access"])).await else {
        return;
    };
    quotas_hold_on_every_endpoint(&server, "pg").await;
    drop(server);
    pg.drop_database().await;
}

#[tokio::test]
async fn the_admin_api_counts_per_tenant_and_installation_routes_do_not() {
    let server = start().await;
    let (status, body) = server
        .admin(Method::POST, "/v1/admin/tenants", Some(json!({"slug": "busy"})))
        .await;
    assert_eq!(status, 201, "{body}");
    patch_settings(&server, "busy", json!({"quotas": {"tenant": {"admin_api": 3}}})).await;
    for _ in 0..3 {
        let (status, body) = server.admin(Method::GET, "/v1/admin/tenants/busy/clients", None).await;
        assert_eq!(status, 200, "{body}");
    }
    let (status, problem) = server.admin(Method::GET, "/v1/admin/tenants/busy/users", None).await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (429, Some("quota_exceeded")),
        "{problem}"
    );
    // Not the installation's routes, nor another tenant's.
    assert_eq!(server.admin(Method::GET, "/v1/admin/tenants", None).await.0, 200);
    assert_eq!(
        server
            .admin(Method::GET, "/v1/admin/tenants/local/clients", None)
            .await
            .0,
        200
    );
}

#[tokio::test]
async fn meaningless_quotas_are_refused_and_change_nothing() {
    let server = start().await;
    for (settings, field) in [
        (json!({"quotas": {"window_secs": 0}}), "settings.quotas.window_secs"),
        (json!({"quotas": {"window_secs": 3601}}), "settings.quotas.window_secs"),
        (
            json!({"quotas": {"tenant": {"token": 0}}}),
            "settings.quotas.tenant.token",
        ),
        (
            json!({"quotas": {"per_client": {"userinfo": 0}}}),
            "settings.quotas.per_client.userinfo",
        ),
    ] {
        let (status, problem) = server
            .admin(
                Method::PATCH,
                "/v1/admin/tenants/local",
                Some(json!({"settings": settings})),
            )
            .await;
        assert_eq!(
            (status, problem["code"].as_str()),
            (422, Some("validation_failed")),
            "{problem}"
        );
        assert_eq!(problem["errors"][0]["field"], field, "{problem}");
    }
    let (status, problem) = server
        .admin(
            Method::PATCH,
            "/v1/admin/tenants/local",
            Some(json!({"settings": {"quotas": {"tenant": {"tokens": 5}}}})),
        )
        .await;
    assert!(
        status == 400 || status == 422,
        "an unknown quota is refused: {status} {problem}"
    );
    let (status, problem) = server
        .admin(
            Method::POST,
            "/v1/admin/tenants/local/clients",
            Some(json!({"client_id": "zero", "name": "zero", "grant_types": ["client_credentials"], "quotas": {"token": 0}})),
        )
        .await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (422, Some("validation_failed")),
        "{problem}"
    );
    let (_, tenant) = server.admin(Method::GET, "/v1/admin/tenants/local", None).await;
    assert!(tenant["settings"].get("quotas").is_none(), "{tenant}");
}

#[tokio::test]
async fn quotas_on_redis_are_shared_and_never_open_when_redis_is_gone() {
    let Some(url) = tenantry_testkit::configured(tenantry_testkit::Service::Redis) else {
        return;
    };
    if !url.starts_with("redis://") {
        tenantry_testkit::skip(tenantry_testkit::Service::Redis, "the outage needs a redis:// URL");
        return;
    }
    let relay = Relay::start(&url).await;
    let server = start_with_config(Some(&format!("redis_url = \"{}\"\n", relay.url(&url)))).await;
    let secret = service_client(&server, "local", "svc", json!({})).await;
    patch_settings(&server, "local", json!({"quotas": {"tenant": {"token": 2}}})).await;
    let cc = [("grant_type", "client_credentials")];
    for _ in 0..2 {
        assert_eq!(form(&server, "local", "token", ("svc", &secret), &cc).await.0, 200);
    }
    assert_eq!(form(&server, "local", "token", ("svc", &secret), &cc).await.0, 429);
    // Another node on the same Redis sees the same count.
    let other_node = tenantry_accounts::ratelimit::RateLimiter::redis(&url).await.unwrap();
    let tenant = server.ctx("local").entry.tenant.clone();
    let refused =
        tenantry_accounts::quotas::admit_tenant(&other_node, &tenant, tenantry_accounts::quotas::Endpoint::Token).await;
    assert!(
        matches!(refused, Err(tenantry_accounts::quotas::QuotaError::Exceeded(_))),
        "{refused:?}"
    );

    // Without its store a quota is never "allowed": 503, then counting again once it is back.
    patch_settings(&server, "local", json!({"quotas": {"tenant": {"token": 1000}}})).await;
    relay.cut().await;
    let (status, headers, problem) = form(&server, "local", "token", ("svc", &secret), &cc).await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (503, Some("rate_limiter_unavailable")),
        "{problem}"
    );
    assert!(header(&headers, "retry-after").is_some());
    relay.restore();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while form(&server, "local", "token", ("svc", &secret), &cc).await.0 != 200 {
        assert!(
            std::time::Instant::now() < deadline,
            "no recovery after Redis came back"
        );
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    }
    drop(server);
    relay.kill().await;
}

/// A browser app can read where it stands: CORS exposes the quota headers.
#[tokio::test]
async fn browsers_may_read_the_quota_headers() {
    let server = start().await;
    let response = server
        .http
        .get(format!("{}/t/local/jwks.json", server.base))
        .header("Origin", "https://app.example")
        .send()
        .await
        .unwrap();
    let exposed = header(response.headers(), "access-control-expose-headers")
        .unwrap()
        .to_ascii_lowercase();
    for name in [
        "ratelimit",
        "ratelimit-policy",
        "ratelimit-remaining",
        "ratelimit-reset",
        "retry-after",
    ] {
        assert!(exposed.split(',').any(|h| h.trim() == name), "{name} not in {exposed}");
    }
}
