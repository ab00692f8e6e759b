//! Signing keys end to end, in-process on an ephemeral port: tokens issued by the server's
//! own issuance code verify against the JWKS it publishes (checked with `jsonwebtoken`,
//! not our verifier), rotation keeps old tokens valid until retirement, and the verifier
//! behind UserInfo refuses other tenants' tokens and every forgery.

use crate::common::start;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{Duration, Utc};
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde_json::{Value, json};
use tenantry_controlplane::Command;
use tenantry_controlplane::model::{Client, KeyRing, SigningAlg, Tenant, TenantSettings};
use tenantry_dataplane::TokenRepository;
use tenantry_dataplane::model::User;
use tenantry_oidc::key_rotation;
use tenantry_oidc::tokens::{self, AccessGrant, IdGrant};
use tenantry_tenancy::TenantContext;

fn demo_client(ctx: &TenantContext, alg: Option<SigningAlg>) -> Client {
    let mut client = ctx.entry.clients["demo-spa"].clone();
    client.access_token_signed_response_alg = alg;
    client.id_token_signed_response_alg = alg;
    client
}

fn access_token(ctx: &TenantContext, client: &Client, user: &User, scope: &str) -> String {
    let subject = user.id.to_string();
    let grant = AccessGrant {
        client,
        subject: &subject,
        scope,
        audience: vec!["https://api.example.com".into()],
        auth_time: Some(Utc::now()),
        acr: Some("1"),
        amr: Some(vec!["pwd".into()]),
        // No login session: userinfo would refuse a `sid` naming none.
        sid: None,
        jti: None,
        roles: None,
    };
    tokens::issue_access_token(ctx, &grant, Utc::now()).unwrap().token
}

fn jose(alg: SigningAlg) -> Algorithm {
    match alg {
        SigningAlg::Rs256 => Algorithm::RS256,
        SigningAlg::Es256 => Algorithm::ES256,
        SigningAlg::EdDsa => Algorithm::EdDSA,
    }
}

/// Verifies with `jsonwebtoken` against the JWKS fetched over HTTP.
fn verify_independently(set: &JwkSet, token: &str, alg: SigningAlg, iss: &str, aud: &str) -> (Header, Value) {
    let header = jsonwebtoken::decode_header(token).unwrap();
    assert_eq!(header.alg, jose(alg));
    let jwk = set.find(header.kid.as_deref().unwrap()).expect("the kid is published");
    let mut validation = Validation::new(jose(alg));
    validation.set_issuer(&[iss]);
    validation.set_audience(&[aud]);
    let data = jsonwebtoken::decode::<Value>(token, &DecodingKey::from_jwk(jwk).unwrap(), &validation).unwrap();
    (header, data.claims)
}

#[tokio::test]
async fn issued_tokens_verify_against_the_published_jwks_for_every_algorithm() {
    let server = start().await;
    let ctx = server.ctx("local");
    let user = server.user("local", "ada@example.com").await;
    let (set, _) = server.jwks("local").await;
    assert_eq!(set.keys.len(), 3, "one active key per algorithm");

    for alg in SigningAlg::ALL {
        let client = demo_client(&ctx, Some(alg));
        let at = access_token(&ctx, &client, &user, "openid profile email phone address");
        let (header, claims) = verify_independently(&set, &at, alg, &ctx.issuer, "https://api.example.com");
        assert_eq!(header.typ.as_deref(), Some("at+jwt"));
        assert_eq!(claims["client_id"], "demo-spa");
        assert_eq!(claims["sub"], user.id.to_string());
        assert_eq!(claims["tid"], "local");
        assert_eq!(claims["scope"], "openid profile email phone address");
        assert_eq!(claims["amr"], json!(["pwd"]));
        assert!(claims.get("sid").is_none());
        assert!(claims["jti"].as_str().unwrap().len() >= 16);
        assert_eq!(
            claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
            ctx.entry.tenant.settings.token_lifetimes.access_token_secs as i64
        );

        let scopes = ["openid", "profile", "email"];
        let id_grant = IdGrant {
            client: &client,
            user: &user,
            scopes: &scopes,
            nonce: Some("n-0S6_WzA2Mj"),
            auth_time: Some(Utc::now()),
            acr: None,
            amr: Some(vec!["pwd".into()]),
            sid: Some("session-1"),
            access_token: Some(&at),
            code: None,
            roles: None,
        };
        let id = tokens::issue_id_token(&ctx, &id_grant, Utc::now()).unwrap();
        let (_, id_claims) = verify_independently(&set, &id, alg, &ctx.issuer, "demo-spa");
        assert_eq!(id_claims["nonce"], "n-0S6_WzA2Mj");
        assert_eq!(id_claims["azp"], "demo-spa");
        assert_eq!(id_claims["email"], "ada@example.com");
        assert_eq!(id_claims["given_name"], "Ada");
        assert!(id_claims.get("phone_number").is_none(), "phone scope not granted");
        // at_hash, computed here from the spec: left half of the alg's hash.
        let digest = match alg {
            SigningAlg::EdDsa => aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA512, at.as_bytes()),
            _ => aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, at.as_bytes()),
        };
        let half = &digest.as_ref()[..digest.as_ref().len() / 2];
        assert_eq!(id_claims["at_hash"], URL_SAFE_NO_PAD.encode(half));

        // UserInfo accepts the access token (header and form body) and releases by scope.
        let (status, _, info) = server.userinfo("local", &at).await;
        assert_eq!(status, 200, "{info}");
        assert_eq!(info["sub"], user.id.to_string());
        assert_eq!(info["phone_number"], "+34600000000");
        assert_eq!(info["address"], json!({"country": "ES"}));
        let form = server
            .http
            .post(format!("{}/t/local/userinfo", server.base))
            .form(&[("access_token", at.as_str())])
            .send()
            .await
            .unwrap();
        assert_eq!(form.status(), 200);
        // An ID token is not an access token.
        let (status, challenge, _) = server.userinfo("local", &id).await;
        assert_eq!(status, 401);
        assert!(challenge.unwrap().contains("error=\"invalid_token\""));
    }
}

#[tokio::test]
async fn rotation_keeps_old_tokens_valid_until_retirement_and_changes_the_etag() {
    let server = start().await;
    let ctx = server.ctx("local");
    let user = server.user("local", "grace@example.com").await;
    let client = demo_client(&ctx, None);
    let old_token = access_token(&ctx, &client, &user, "openid");
    let old_kid = jsonwebtoken::decode_header(&old_token).unwrap().kid.unwrap();

    let (_, etag) = server.jwks("local").await;
    let cached = server
        .http
        .get(format!("{}/t/local/jwks.json", server.base))
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(cached.status(), 304);
    assert_eq!(cached.headers()["etag"], etag.as_str());
    assert!(
        cached.headers()["cache-control"]
            .to_str()
            .unwrap()
            .starts_with("public, max-age=")
    );

    let (status, body) = server
        .admin(reqwest::Method::POST, "/v1/admin/tenants/local/keys/rotate", None)
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["keys"].as_array().unwrap().len(), 6);
    assert!(!body.to_string().contains("private_key") && !body.to_string().contains("tsb1."));
    let (set, new_etag) = server.jwks("local").await;
    assert_ne!(etag, new_etag);
    assert_eq!(set.keys.len(), 6, "replaced keys stay published");
    let refetch = server
        .http
        .get(format!("{}/t/local/jwks.json", server.base))
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(refetch.status(), 200, "the old ETag no longer matches");

    // During the grace period the old token still works; new tokens use the new key.
    let ctx = server.ctx("local");
    assert_eq!(server.userinfo("local", &old_token).await.0, 200);
    let new_token = access_token(&ctx, &client, &user, "openid");
    assert_ne!(jsonwebtoken::decode_header(&new_token).unwrap().kid.unwrap(), old_kid);
    let retiring = ctx.entry.key_ring.keys.iter().find(|k| k.kid == old_kid).unwrap();
    let grace = retiring.retire_after.unwrap() - Utc::now();
    assert!(grace >= Duration::seconds(ctx.entry.tenant.settings.token_lifetimes.id_token_secs as i64));

    // An active key cannot be retired; an unknown one is 404.
    let active = ctx.entry.key_ring.active(SigningAlg::Rs256).unwrap().kid.clone();
    let (status, body) = server
        .admin(
            reqwest::Method::POST,
            &format!("/v1/admin/tenants/local/keys/{active}/retire"),
            None,
        )
        .await;
    assert_eq!((status, body["code"].as_str()), (409, Some("key_active")));
    let (status, _) = server
        .admin(reqwest::Method::POST, "/v1/admin/tenants/local/keys/nope/retire", None)
        .await;
    assert_eq!(status, 404);

    // The timer retires keys whose grace has ended; then the old token fails.
    let writer = server.state.writer.clone();
    let snapshot = server.state.control_plane.snapshot();
    let done = key_rotation::maintain_once(
        snapshot,
        writer.as_ref(),
        &server.state.secrets,
        retiring.retire_after.unwrap() + Duration::seconds(1),
    )
    .await;
    assert!(done >= 1);
    let (status, challenge, _) = server.userinfo("local", &old_token).await;
    assert_eq!(status, 401);
    assert!(challenge.unwrap().contains("invalid_token"));
    assert_eq!(server.userinfo("local", &new_token).await.0, 200);
    assert_eq!(server.jwks("local").await.0.keys.len(), 3);

    // And rotates keys older than the tenant's period.
    let before = server.ctx("local").entry.key_ring.clone();
    key_rotation::maintain_once(
        server.state.control_plane.snapshot(),
        writer.as_ref(),
        &server.state.secrets,
        Utc::now() + Duration::days(91),
    )
    .await;
    let after = server.ctx("local").entry.key_ring.clone();
    for alg in SigningAlg::ALL {
        assert_ne!(before.active(alg).unwrap().kid, after.active(alg).unwrap().kid);
    }
}

fn forge(header: Value, claims: &Value, signature: &[u8]) -> String {
    format!(
        "{}.{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string()),
        URL_SAFE_NO_PAD.encode(signature)
    )
}

#[tokio::test]
async fn other_tenants_tokens_and_forgeries_are_refused() {
    let server = start().await;
    let (status, body) = server
        .admin(
            reqwest::Method::POST,
            "/v1/admin/tenants",
            Some(json!({"slug": "beta", "settings": {"user_db": {"driver": "sqlite"}}})),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let local = server.ctx("local");
    let beta = server.ctx("beta");
    assert_ne!(
        local.entry.key_ring.active(SigningAlg::Rs256).unwrap().kid,
        beta.entry.key_ring.active(SigningAlg::Rs256).unwrap().kid
    );
    let user = server.user("local", "eve@example.com").await;
    let client = demo_client(&local, None);
    let good = access_token(&local, &client, &user, "openid");
    assert_eq!(server.userinfo("local", &good).await.0, 200);

    // A token of tenant local at tenant beta.
    let (status, challenge, body) = server.userinfo("beta", &good).await;
    assert_eq!((status, body["error"].as_str()), (401, Some("invalid_token")));
    assert!(challenge.unwrap().starts_with("Bearer realm="));
    // Even with beta's issuer in it, signed by local's key.
    let now = Utc::now().timestamp();
    let claims = json!({"iss": beta.issuer, "sub": user.id.to_string(), "aud": "x", "client_id": "demo-spa",
        "jti": "j-1", "iat": now, "exp": now + 300, "tid": "beta"});
    let cross = local
        .keys()
        .unwrap()
        .sign(SigningAlg::Rs256, "at+jwt", &claims)
        .unwrap();
    assert_eq!(server.userinfo("beta", &cross).await.0, 401);

    let rsa = local.entry.key_ring.active(SigningAlg::Rs256).unwrap();
    let mut claims = json!({"iss": local.issuer, "sub": user.id.to_string(), "aud": "x", "client_id": "demo-spa",
        "scope": "openid", "jti": "j-2", "iat": now, "exp": now + 300, "tid": "local"});
    let keys = local.keys().unwrap();
    let mut forged = vec![
        (
            "alg none",
            forge(json!({"alg": "none", "kid": rsa.kid, "typ": "at+jwt"}), &claims, b""),
        ),
        ("HS256 keyed with the public key", {
            let mut header = Header::new(Algorithm::HS256);
            header.kid = Some(rsa.kid.clone());
            header.typ = Some("at+jwt".into());
            jsonwebtoken::encode(&header, &claims, &EncodingKey::from_secret(rsa.public_jwk.as_bytes())).unwrap()
        }),
        (
            "unknown kid",
            forge(
                json!({"alg": "RS256", "kid": "not-a-kid", "typ": "at+jwt"}),
                &claims,
                &[1; 256],
            ),
        ),
    ];
    claims["exp"] = json!(now - 600);
    forged.push(("expired", keys.sign(SigningAlg::Es256, "at+jwt", &claims).unwrap()));
    claims["exp"] = json!(now + 300);
    claims["nbf"] = json!(now + 600);
    forged.push(("future nbf", keys.sign(SigningAlg::Es256, "at+jwt", &claims).unwrap()));
    claims["nbf"] = json!(now);
    claims["sub"] = json!("demo-spa");
    forged.push(("not a user", keys.sign(SigningAlg::Es256, "at+jwt", &claims).unwrap()));
    forged.push(("garbage", "not.a.jwt".into()));
    for (what, token) in forged {
        let (status, challenge, body) = server.userinfo("local", &token).await;
        assert_eq!(status, 401, "{what}: {body}");
        assert_eq!(body["error"], "invalid_token", "{what}");
        assert!(challenge.unwrap().contains("error=\"invalid_token\""), "{what}");
    }

    // Without the openid scope: 403 insufficient_scope.
    let no_openid = access_token(&local, &client, &user, "email");
    let (status, challenge, _) = server.userinfo("local", &no_openid).await;
    assert_eq!(status, 403);
    assert!(challenge.unwrap().contains("insufficient_scope"));

    // No token at all: 401 with a bare challenge.
    let bare = server
        .http
        .get(format!("{}/t/local/userinfo", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(bare.status(), 401);
    assert!(!bare.headers()["www-authenticate"].to_str().unwrap().contains("error="));

    // A revoked access token (jti on the deny-list) is refused until it expires.
    let revoked = access_token(&local, &client, &user, "openid");
    let jti = jsonwebtoken::dangerous::insecure_decode::<Value>(&revoked)
        .unwrap()
        .claims["jti"]
        .as_str()
        .unwrap()
        .to_owned();
    local
        .db()
        .await
        .unwrap()
        .deny_access_token(&jti, Utc::now() + Duration::minutes(15))
        .await
        .unwrap();
    assert_eq!(server.userinfo("local", &revoked).await.0, 401);
}

#[tokio::test]
async fn a_tenant_without_keys_answers_tenant_keys_missing_and_nothing_makes_one() {
    let server = start().await;
    let now = Utc::now();
    let tenant = Tenant {
        id: uuid::Uuid::new_v4(),
        slug: "bare".into(),
        display_name: "Bare".into(),
        created_at: now,
        updated_at: now,
        settings: TenantSettings::default(),
    };
    server
        .state
        .writer
        .write(Command::CreateTenant {
            tenant,
            key_ring: KeyRing::default(),
        })
        .await
        .unwrap();
    for path in ["/t/bare/jwks.json", "/t/bare/userinfo"] {
        let response = server
            .http
            .get(format!("{}{path}", server.base))
            .bearer_auth("x.y.z")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 503, "{path}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["code"], "tenant_keys_missing");
    }
    assert!(
        server.ctx("bare").entry.key_ring.keys.is_empty(),
        "no key was made on a read path"
    );
    // The timer does not make keys either; only an explicit rotation does.
    key_rotation::maintain_once(
        server.state.control_plane.snapshot(),
        server.state.writer.as_ref(),
        &server.state.secrets,
        now,
    )
    .await;
    assert!(server.ctx("bare").entry.key_ring.keys.is_empty());
    let (status, body) = server
        .admin(reqwest::Method::POST, "/v1/admin/tenants/bare/keys/rotate", None)
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(server.jwks("bare").await.0.keys.len(), 3);

    let (status, ready) = server.admin(reqwest::Method::GET, "/readyz", None).await;
    assert_eq!(status, 200);
    assert_eq!(ready["components"]["keystore"]["status"], "ok", "{ready}");
}
