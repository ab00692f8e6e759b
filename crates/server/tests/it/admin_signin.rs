//! Installation admins signing in with password and TOTP: a one-time password replaced at
//! the first sign-in, TOTP set up and confirmed by its first code, admin access tokens that
//! the admin gate accepts within the admin's reach, refresh rotation with replay detection,
//! sign-out, and every step in the audit trail.

use std::str::FromStr;

use reqwest::Method;
use serde_json::{Value, json};

use crate::common::{TestServer, start_with_config};
use tenantry_testkit::totp::{current_step, totp_at_step};

async fn post(server: &TestServer, path: &str, body: Value) -> (u16, Value) {
    let response = server
        .http
        .post(format!("{}{path}", server.base))
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn get(server: &TestServer, path: &str, token: &str) -> (u16, Value) {
    let response = server
        .http
        .get(format!("{}{path}", server.base))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// A code for a step not used yet by this admin (a code is single use).
fn code(secret: &str, step: u64) -> String {
    totp_at_step(secret, step)
}

#[tokio::test]
async fn an_admin_signs_in_with_password_and_totp_and_acts_within_reach() {
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        "global_db_url = \"sqlite://{}\"\n",
        dir.path().join("global.db").display()
    );
    let server = start_with_config(Some(&config)).await;
    for slug in ["alpha", "beta"] {
        let (status, body) = server
            .admin(Method::POST, "/v1/admin/tenants", Some(json!({ "slug": slug })))
            .await;
        assert_eq!(status, 201, "{body}");
    }
    let (status, made) = server
        .admin(
            Method::POST,
            "/v1/admin/admins",
            Some(json!({"email": "Ops@Example.com", "reach": {"tenants": ["alpha"]}, "access": "read_write"})),
        )
        .await;
    assert_eq!(status, 201, "{made}");
    assert_eq!(made["email"], "ops@example.com");
    assert_eq!(made["password_temporary"], true);
    assert!(made.get("password_hash").is_none());
    let one_time = made["one_time_password"].as_str().unwrap().to_owned();
    let admin_id = made["id"].as_str().unwrap().to_owned();

    // Wrong password, then the one-time password without a new one.
    let (status, body) = post(
        &server,
        "/v1/admin/auth/login",
        json!({"email": "ops@example.com", "password": "nope-nope-nope"}),
    )
    .await;
    assert_eq!((status, body["code"].as_str()), (401, Some("invalid_credentials")));
    let (status, body) = post(
        &server,
        "/v1/admin/auth/login",
        json!({"email": "nobody@example.com", "password": "nope"}),
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (401, Some("invalid_credentials")),
        "an unknown email looks the same"
    );
    let login = json!({"email": "ops@example.com", "password": one_time});
    let (status, body) = post(&server, "/v1/admin/auth/login", login.clone()).await;
    assert_eq!((status, body["code"].as_str()), (403, Some("password_change_required")));
    let new_password = "a long new admin password";
    let with_new = json!({"email": "ops@example.com", "password": one_time, "new_password": new_password});
    let (status, body) = post(&server, "/v1/admin/auth/login", with_new.clone()).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (403, Some("mfa_enrollment_required")),
        "{body}"
    );

    // TOTP: enrol (shown again until confirmed), then a code is needed and confirms it.
    let (status, enrolment) = post(&server, "/v1/admin/auth/totp", login.clone()).await;
    assert_eq!(status, 200, "{enrolment}");
    let secret = enrolment["secret"].as_str().unwrap().to_owned();
    assert!(
        enrolment["otpauth_uri"]
            .as_str()
            .unwrap()
            .starts_with("otpauth://totp/")
    );
    let (_, again) = post(&server, "/v1/admin/auth/totp", login.clone()).await;
    assert_eq!(again["secret"], secret.as_str(), "the pending secret is shown again");
    let (status, body) = post(&server, "/v1/admin/auth/login", with_new.clone()).await;
    assert_eq!((status, body["code"].as_str()), (401, Some("mfa_required")));
    let step = current_step();
    let mut first = with_new.clone();
    first["code"] = json!(code(&secret, step));
    let (status, tokens) = post(&server, "/v1/admin/auth/login", first.clone()).await;
    assert_eq!(status, 200, "{tokens}");
    assert_eq!(tokens["token_type"], "Bearer");
    assert!(tokens["expires_in"].as_i64().unwrap() <= 300);
    let access = tokens["access_token"].as_str().unwrap().to_owned();
    let refresh = tokens["refresh_token"].as_str().unwrap().to_owned();

    // The same code again is refused; the one-time password no longer works.
    let mut replay = json!({"email": "ops@example.com", "password": new_password});
    replay["code"] = first["code"].clone();
    let (status, body) = post(&server, "/v1/admin/auth/login", replay).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (401, Some("invalid_mfa_code")),
        "{body}"
    );
    let (status, _) = post(&server, "/v1/admin/auth/login", login.clone()).await;
    assert_eq!(status, 401);
    let (status, body) = post(
        &server,
        "/v1/admin/auth/totp",
        json!({"email": "ops@example.com", "password": new_password}),
    )
    .await;
    assert_eq!((status, body["code"].as_str()), (409, Some("mfa_already_enabled")));

    // The access token: an at+jwt for the admin audience, from the installation's issuer.
    let header: Value = serde_json::from_slice(
        &base64::Engine::decode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            access.split('.').next().unwrap(),
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(header["typ"], "at+jwt");
    // Anyone can check it against the installation's published keys, independently.
    let jwks: jsonwebtoken::jwk::JwkSet = server
        .http
        .get(format!("{}/jwks.json", server.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let kid = header["kid"].as_str().unwrap();
    let jwk = jwks.find(kid).expect("the signing key is published");
    let mut validation =
        jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::from_str(header["alg"].as_str().unwrap()).unwrap());
    validation.set_audience(&["tenantry-admin"]);
    validation.set_issuer(&[server.base.as_str()]);
    let verified =
        jsonwebtoken::decode::<Value>(&access, &jsonwebtoken::DecodingKey::from_jwk(jwk).unwrap(), &validation)
            .expect("the admin access token verifies");
    assert_eq!(verified.claims["sub"], admin_id.as_str());
    let (status, me) = get(&server, "/v1/admin/me", &access).await;
    assert_eq!(status, 200, "{me}");
    assert_eq!(
        (me["id"].as_str(), me["kind"].as_str()),
        (Some(admin_id.as_str()), Some("admin"))
    );
    let (status, _) = get(&server, "/v1/admin/tenants/alpha", &access).await;
    assert_eq!(status, 200);
    let (status, body) = get(&server, "/v1/admin/tenants/beta", &access).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (403, Some("forbidden")),
        "outside the admin's reach"
    );
    let (status, _) = get(&server, "/v1/admin/audit", &access).await;
    assert_eq!(status, 403, "the audit trail is the installation's");
    // A tenant admin cannot make a global admin.
    let response = server
        .http
        .post(format!("{}/v1/admin/admins", server.base))
        .bearer_auth(&access)
        .json(&json!({"email": "evil@example.com", "reach": "global"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);
    // A token of a tenant issuer is not an admin token.
    let (status, _) = get(&server, "/v1/admin/me", "eyJhbGciOiJub25lIn0.e30.").await;
    assert_eq!(status, 401);

    // Refresh rotates; the replaced token presented again ends the session.
    let (status, rotated) = post(&server, "/v1/admin/auth/refresh", json!({"refresh_token": refresh})).await;
    assert_eq!(status, 200, "{rotated}");
    let second_access = rotated["access_token"].as_str().unwrap().to_owned();
    let second_refresh = rotated["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(second_refresh, refresh);
    let (status, _) = get(&server, "/v1/admin/me", &second_access).await;
    assert_eq!(status, 200);
    let (status, body) = post(&server, "/v1/admin/auth/refresh", json!({"refresh_token": refresh})).await;
    assert_eq!((status, body["code"].as_str()), (400, Some("invalid_grant")));
    let (status, _) = post(
        &server,
        "/v1/admin/auth/refresh",
        json!({"refresh_token": second_refresh}),
    )
    .await;
    assert_eq!(status, 400, "the replay ended the whole session");
    let (status, _) = get(&server, "/v1/admin/me", &second_access).await;
    assert_eq!(status, 401, "and every access token it issued");

    // A new session, then sign-out ends it.
    let mut next = json!({"email": "ops@example.com", "password": new_password});
    next["code"] = json!(code(&secret, step + 1));
    let (status, tokens) = post(&server, "/v1/admin/auth/login", next).await;
    assert_eq!(status, 200, "{tokens}");
    let access = tokens["access_token"].as_str().unwrap();
    let response = server
        .http
        .post(format!("{}/v1/admin/auth/logout", server.base))
        .json(&json!({"refresh_token": tokens["refresh_token"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    let (status, _) = get(&server, "/v1/admin/me", access).await;
    assert_eq!(status, 401);

    // Reset: a new one-time password, TOTP cleared.
    let (status, reset) = server
        .admin(
            Method::POST,
            &format!("/v1/admin/admins/{admin_id}/reset-credentials"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{reset}");
    let fresh = json!({"email": "ops@example.com", "password": reset["one_time_password"], "new_password": "another long password"});
    let (status, body) = post(&server, "/v1/admin/auth/login", fresh).await;
    assert_eq!((status, body["code"].as_str()), (403, Some("mfa_enrollment_required")));

    // The trail: sign-ins, failures (with their reason), the replay, sign-out, the reset.
    let (status, audit) = server.admin(Method::GET, "/v1/admin/audit?limit=1000", None).await;
    assert_eq!(status, 200, "{audit}");
    let events = audit["events"].as_array().unwrap();
    let has = |action: &str, reason: Option<&str>| {
        events.iter().any(|e| {
            e["action"] == action
                && reason.is_none_or(|r| e["details"]["reason"] == r)
                && e["request_id"].as_str().is_some_and(|id| !id.is_empty())
        })
    };
    for (action, reason) in [
        ("create_admin", None),
        ("admin_sign_in_failed", Some("bad_password")),
        ("admin_sign_in_failed", Some("password_change_required")),
        ("admin_sign_in_failed", Some("code_reused")),
        ("admin_totp_enrolment", None),
        ("admin_sign_in", None),
        ("admin_refresh_failed", Some("refresh_token_reused")),
        ("admin_sign_out", None),
        ("reset_admin_credentials", None),
    ] {
        assert!(has(action, reason), "{action} {reason:?} is recorded: {audit}");
    }
    assert!(!audit.to_string().contains(new_password), "no password in the trail");
    // Read by target: everything done to (or by the sign-ins of) this admin.
    let (status, mine) = server
        .admin(
            Method::GET,
            &format!("/v1/admin/audit?target=admin:{admin_id}&limit=1000"),
            None,
        )
        .await;
    assert_eq!(status, 200);
    let mine = mine["events"].as_array().unwrap();
    assert!(mine.len() >= 5 && mine.iter().all(|e| e["target"] == format!("admin:{admin_id}")));
    assert!(mine.iter().any(|e| e["action"] == "create_admin"));
    assert!(mine.iter().any(|e| e["action"] == "admin_sign_in"));
}

#[tokio::test]
async fn the_last_global_admin_stays_and_admins_do_not_leak_credentials() {
    let server = start_with_config(None).await;
    let (status, list) = server.admin(Method::GET, "/v1/admin/admins", None).await;
    assert_eq!(status, 200);
    let admins = list["admins"].as_array().unwrap();
    assert_eq!(admins.len(), 1);
    assert_eq!(admins[0]["credential"], "token");
    let bootstrap = admins[0]["id"].as_str().unwrap().to_owned();
    let (status, body) = server
        .admin(Method::DELETE, &format!("/v1/admin/admins/{bootstrap}"), None)
        .await;
    assert_eq!((status, body["code"].as_str()), (409, Some("last_global_admin")));
    let (status, body) = server
        .admin(
            Method::PATCH,
            &format!("/v1/admin/admins/{bootstrap}"),
            Some(json!({"access": "read_only"})),
        )
        .await;
    assert_eq!((status, body["code"].as_str()), (409, Some("last_global_admin")));
    let (status, body) = server
        .admin(
            Method::POST,
            "/v1/admin/admins",
            Some(json!({"email": "a@example.com", "password": "short"})),
        )
        .await;
    assert_eq!((status, body["errors"][0]["field"].as_str()), (422, Some("password")));
    let (status, made) = server
        .admin(
            Method::POST,
            "/v1/admin/admins",
            Some(json!({"email": "a@example.com", "password": "a long chosen password"})),
        )
        .await;
    assert_eq!(status, 201, "{made}");
    assert!(made.get("one_time_password").is_none());
    let (status, body) = server
        .admin(
            Method::POST,
            "/v1/admin/admins",
            Some(json!({"email": "A@example.com"})),
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (409, Some("already_exists")),
        "emails are unique"
    );
    let stored = std::fs::read_dir(server.state.config.fs_root.join("system/admins")).unwrap();
    for file in stored {
        let text = std::fs::read_to_string(file.unwrap().path()).unwrap();
        assert!(!text.contains("a long chosen password"));
    }

    // Without a global database the installation's events go to a JSON-lines file.
    let (status, _) = post(
        &server,
        "/v1/admin/auth/login",
        json!({"email": "a@example.com", "password": "wrong password!"}),
    )
    .await;
    assert_eq!(status, 401);
    let file = server.state.config.fs_root.join(tenantry_server::ADMIN_EVENTS_FILE);
    let text = std::fs::read_to_string(&file).unwrap();
    let events: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert!(events.iter().any(|e| e["action"] == "create_admin"));
    let failed = events.iter().find(|e| e["action"] == "admin_sign_in_failed").unwrap();
    assert_eq!(failed["details"]["reason"], "bad_password");
    assert!(failed["request_id"].as_str().is_some_and(|id| !id.is_empty()));
    assert!(!text.contains("wrong password!"));
}
