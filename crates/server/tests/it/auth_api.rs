//! The headless authentication API end to end, on SQLite and on PostgreSQL: login,
//! "me", refresh rotation, sessions, password change, logout, TOTP enrolment and the MFA
//! login step (codes from an independent TOTP implementation), registration, lockout.

use crate::common;
use crate::common::api::Api;
use crate::common::{TestServer, start};
use reqwest::Method;
use serde_json::{Value, json};
use tenantry_testkit::totp::{current_step, totp_at_step};

const PASSWORD: &str = "correct horse battery";

fn access(tokens: &Value) -> &str {
    tokens["access_token"].as_str().expect("an access token")
}

#[tokio::test]
async fn headless_api_on_sqlite() {
    let server = start().await;
    headless_api(&server, "local").await;
}

#[tokio::test]
async fn headless_api_on_postgres() {
    let server = start().await;
    let client = common::postgres::spa_client(&["openid", "email", "offline_access"]);
    let Some(database) = common::postgres::postgres_tenant(&server, "pg", client).await else {
        return;
    };
    headless_api(&server, "pg").await;
    drop(server);
    database.drop_database().await;
}

async fn headless_api(server: &TestServer, slug: &str) {
    let api = Api { server, slug };
    let (status, body) = server
        .admin(
            Method::POST,
            &format!("/v1/admin/tenants/{slug}/users"),
            Some(json!({"email": "ada@example.com", "password": PASSWORD, "email_verified": true})),
        )
        .await;
    assert_eq!(status, 201, "{body}");

    // Login: problems for mistakes, tokens for the right password.
    let (status, body) = api
        .call(
            Method::POST,
            "/v1/auth/login",
            None,
            Some(json!({"email": "ada@example.com", "password": PASSWORD, "client_id": "nope"})),
        )
        .await;
    assert_eq!((status, body["code"].as_str()), (400, Some("invalid_client")));
    let (status, body) = api.login("ada@example.com", "wrong password").await;
    assert_eq!(
        (status, body["code"].as_str()),
        (401, Some("invalid_credentials")),
        "{body}"
    );
    let (status, unknown) = api.login("nobody@example.com", "wrong password").await;
    assert_eq!(
        (status, &unknown["detail"]),
        (401, &body["detail"]),
        "one answer for both"
    );
    let (status, first) = api.login("ada@example.com", PASSWORD).await;
    assert_eq!(status, 200, "{first}");
    assert!(
        first["id_token"].is_string() && first["refresh_token"].is_string(),
        "{first}"
    );

    // Me.
    let (status, me) = api.call(Method::GET, "/v1/auth/me", Some(access(&first)), None).await;
    assert_eq!(
        (status, me["email"].as_str(), &me["mfa_enabled"]),
        (200, Some("ada@example.com"), &json!(false))
    );
    let (status, _) = api.call(Method::GET, "/v1/auth/me", None, None).await;
    assert_eq!(status, 401);
    let (status, me) = api
        .call(
            Method::PATCH,
            "/v1/auth/me",
            Some(access(&first)),
            Some(json!({"given_name": "Ada"})),
        )
        .await;
    assert_eq!((status, me["given_name"].as_str()), (200, Some("Ada")), "{me}");
    let (status, _) = api
        .call(
            Method::PATCH,
            "/v1/auth/me",
            Some(access(&first)),
            Some(json!({"email_verified": true})),
        )
        .await;
    assert_eq!(status, 422, "a user cannot mark their own email verified");

    // Refresh rotates; the spent token is refused and revokes the family.
    let (status, refreshed) = api
        .call(
            Method::POST,
            "/v1/auth/refresh",
            None,
            Some(json!({"refresh_token": first["refresh_token"], "client_id": "demo-spa"})),
        )
        .await;
    assert_eq!(status, 200, "{refreshed}");
    let (status, body) = api
        .call(
            Method::POST,
            "/v1/auth/refresh",
            None,
            Some(json!({"refresh_token": first["refresh_token"], "client_id": "demo-spa"})),
        )
        .await;
    assert_eq!((status, body["code"].as_str()), (400, Some("invalid_grant")));

    // Two sessions; the other one can be ended from this one.
    let (_, second) = api.login("ada@example.com", PASSWORD).await;
    let (status, list) = api
        .call(Method::GET, "/v1/auth/sessions", Some(access(&second)), None)
        .await;
    assert_eq!(status, 200);
    let sessions = list["sessions"].as_array().unwrap();
    assert_eq!(sessions.len(), 2, "{list}");
    // Each session says where it was opened from.
    for session in sessions {
        assert_eq!(session["ip"], "127.0.0.1", "{list}");
    }
    let other = sessions.iter().find(|s| s["current"] == json!(false)).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, _) = api
        .call(
            Method::DELETE,
            &format!("/v1/auth/sessions/{other}"),
            Some(access(&second)),
            None,
        )
        .await;
    assert_eq!(status, 204);
    let (status, _) = api
        .call(Method::GET, "/v1/auth/me", Some(access(&refreshed)), None)
        .await;
    assert_eq!(status, 401, "the first session has ended");

    // Password change: needs the current one, ends every other session.
    let (_, third) = api.login("ada@example.com", PASSWORD).await;
    let (status, body) = api
        .call(
            Method::POST,
            "/v1/auth/password",
            Some(access(&second)),
            Some(json!({"current_password": "guess", "new_password": "a brand new passphrase"})),
        )
        .await;
    assert_eq!((status, body["code"].as_str()), (401, Some("invalid_credentials")));
    let (status, body) = api
        .call(
            Method::POST,
            "/v1/auth/password",
            Some(access(&second)),
            Some(json!({"current_password": PASSWORD, "new_password": "short"})),
        )
        .await;
    assert_eq!((status, body["code"].as_str()), (422, Some("validation_failed")));
    let (status, _) = api
        .call(
            Method::POST,
            "/v1/auth/password",
            Some(access(&second)),
            Some(json!({"current_password": PASSWORD, "new_password": "a brand new passphrase"})),
        )
        .await;
    assert_eq!(status, 204);
    let (status, _) = api.call(Method::GET, "/v1/auth/me", Some(access(&third)), None).await;
    assert_eq!(status, 401, "other sessions end with a password change");
    let (status, body) = api
        .call(
            Method::POST,
            "/v1/auth/refresh",
            None,
            Some(json!({"refresh_token": third["refresh_token"], "client_id": "demo-spa"})),
        )
        .await;
    assert_eq!(status, 400, "and so do their refresh tokens: {body}");
    let (status, _) = api.call(Method::GET, "/v1/auth/me", Some(access(&second)), None).await;
    assert_eq!(status, 200, "the caller's session stays");
    assert_eq!(api.login("ada@example.com", PASSWORD).await.0, 401);
    let new_password = "a brand new passphrase";

    // TOTP enrolment through the API, then the MFA login step. Adding a factor needs a
    // fresh re-authentication: a bearer token alone (a stolen one) cannot install an
    // authenticator.
    let (_, fresh) = api.login("ada@example.com", new_password).await;
    let (status, body) = api
        .call(Method::POST, "/v1/auth/mfa/totp", Some(access(&fresh)), None)
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (403, Some("reauthentication_required")),
        "{body}"
    );
    let (status, body) = api
        .call(
            Method::POST,
            "/v1/auth/mfa/totp",
            Some(access(&fresh)),
            Some(json!({"current_password": "a guess"})),
        )
        .await;
    assert_eq!((status, body["code"].as_str()), (401, Some("invalid_credentials")));
    let (status, enrolment) = api
        .call(
            Method::POST,
            "/v1/auth/mfa/totp",
            Some(access(&fresh)),
            Some(json!({"current_password": new_password})),
        )
        .await;
    assert_eq!(status, 200, "{enrolment}");
    // Confirming needs one too: another session's proof does not count (the pending
    // enrolment is the account's; the proof is the session's).
    let secret = enrolment["secret"].as_str().unwrap().to_owned();
    let (_, unproven) = api.login("ada@example.com", new_password).await;
    let (status, body) = api
        .call(
            Method::POST,
            "/v1/auth/mfa/totp/confirm",
            Some(access(&unproven)),
            Some(json!({"code": totp_at_step(&secret, current_step())})),
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (403, Some("reauthentication_required")),
        "{body}"
    );
    assert!(
        enrolment["otpauth_uri"]
            .as_str()
            .unwrap()
            .starts_with("otpauth://totp/")
    );
    assert!(enrolment["qr_svg"].as_str().unwrap().contains("<svg"));
    let secret = enrolment["secret"].as_str().unwrap().to_owned();
    let step = current_step();
    // Within minutes of the proof, the same session confirms without repeating it.
    let (status, body) = api
        .call(
            Method::POST,
            "/v1/auth/mfa/totp/confirm",
            Some(access(&fresh)),
            Some(json!({"code": totp_at_step(&secret, step)})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let recovery: Vec<String> = serde_json::from_value(body["recovery_codes"].clone()).unwrap();
    assert_eq!(recovery.len(), 10);
    let (status, body) = api
        .call(
            Method::POST,
            "/v1/auth/mfa/totp",
            Some(access(&second)),
            Some(json!({"current_password": new_password})),
        )
        .await;
    assert_eq!((status, body["code"].as_str()), (409, Some("mfa_already_enabled")));

    let (status, challenge) = api.login("ada@example.com", new_password).await;
    assert_eq!((status, &challenge["mfa_required"]), (200, &json!(true)), "{challenge}");
    assert!(
        challenge["access_token"].is_null(),
        "no tokens before the second factor"
    );
    let mfa_token = challenge["mfa_token"].as_str().unwrap();
    let (status, body) = api
        .call(
            Method::POST,
            "/v1/auth/mfa",
            None,
            Some(json!({"mfa_token": mfa_token, "code": totp_at_step(&secret, step)})),
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (401, Some("invalid_mfa_code")),
        "a used step is refused"
    );
    let (status, tokens) = api
        .call(
            Method::POST,
            "/v1/auth/mfa",
            None,
            Some(json!({"mfa_token": mfa_token, "code": totp_at_step(&secret, step + 1)})),
        )
        .await;
    assert_eq!(status, 200, "{tokens}");
    let (status, body) = api
        .call(
            Method::POST,
            "/v1/auth/mfa",
            None,
            Some(json!({"mfa_token": mfa_token, "code": recovery[9]})),
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("invalid_grant")),
        "an mfa_token works once"
    );
    let (status, me) = api.call(Method::GET, "/v1/auth/me", Some(access(&tokens)), None).await;
    assert_eq!((status, &me["mfa_enabled"]), (200, &json!(true)));
    let (status, _) = api
        .call(
            Method::POST,
            "/v1/auth/mfa",
            None,
            Some(json!({"mfa_token": "forged", "code": "123456"})),
        )
        .await;
    assert_eq!(status, 400);

    // "Don't ask again on this device" (when the tenant offers it): a device token skips
    // the second factor until logout-all or a password change forgets it.
    let (status, _) = server
        .admin(
            Method::PATCH,
            &format!("/v1/admin/tenants/{slug}"),
            Some(json!({"settings": {"security": {"mfa_remember_device_days": 30}}})),
        )
        .await;
    assert_eq!(status, 200);
    let (_, challenge) = api.login("ada@example.com", new_password).await;
    let (status, remembered) = api
        .call(
            Method::POST,
            "/v1/auth/mfa",
            None,
            Some(json!({"mfa_token": challenge["mfa_token"], "code": recovery[5], "remember_device": true})),
        )
        .await;
    assert_eq!(status, 200, "{remembered}");
    let device = remembered["device_token"].as_str().expect("a device token").to_owned();
    let login_with_device = |device: String| json!({"email": "ada@example.com", "password": new_password, "client_id": "demo-spa", "device_token": device});
    let (status, body) = api
        .call(
            Method::POST,
            "/v1/auth/login",
            None,
            Some(login_with_device(device.clone())),
        )
        .await;
    assert!(
        status == 200 && body["access_token"].is_string(),
        "no second factor: {body}"
    );
    let (_, body) = api
        .call(
            Method::POST,
            "/v1/auth/login",
            None,
            Some(login_with_device("forged".into())),
        )
        .await;
    assert_eq!(body["mfa_required"], json!(true));

    // A recovery code logs in once.
    let (_, challenge) = api.login("ada@example.com", new_password).await;
    let body = json!({"mfa_token": challenge["mfa_token"], "code": recovery[0]});
    let (status, _) = api.call(Method::POST, "/v1/auth/mfa", None, Some(body.clone())).await;
    assert_eq!(status, 200);
    let (status, _) = api.call(Method::POST, "/v1/auth/mfa", None, Some(body)).await;
    assert_eq!(status, 400, "the mfa_token is spent");
    let (_, challenge) = api.login("ada@example.com", new_password).await;
    let body = json!({"mfa_token": challenge["mfa_token"], "code": recovery[0]});
    let (status, _) = api.call(Method::POST, "/v1/auth/mfa", None, Some(body)).await;
    assert_eq!(status, 401, "and so is the recovery code");

    // New recovery codes need a current code, not the bearer token alone.
    let (status, body) = api
        .call(
            Method::POST,
            "/v1/auth/mfa/recovery-codes",
            Some(access(&tokens)),
            Some(json!({"code": "000000"})),
        )
        .await;
    assert_eq!((status, body["code"].as_str()), (401, Some("invalid_mfa_code")));
    let (status, body) = api
        .call(
            Method::POST,
            "/v1/auth/mfa/recovery-codes",
            Some(access(&tokens)),
            Some(json!({"code": recovery[2]})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let recovery: Vec<String> = serde_json::from_value(body["recovery_codes"].clone()).unwrap();

    // Disabling needs the password and a code.
    let (status, _) = api
        .call(
            Method::DELETE,
            "/v1/auth/mfa/totp",
            Some(access(&tokens)),
            Some(json!({"current_password": "wrong", "code": recovery[1]})),
        )
        .await;
    assert_eq!(status, 401);
    let (status, _) = api
        .call(
            Method::DELETE,
            "/v1/auth/mfa/totp",
            Some(access(&tokens)),
            Some(json!({"current_password": new_password, "code": recovery[1]})),
        )
        .await;
    assert_eq!(status, 204);
    let (status, tokens) = api.login("ada@example.com", new_password).await;
    assert!(status == 200 && tokens["access_token"].is_string(), "{tokens}");

    // Logout ends this session; logout-all every one. Userinfo follows the same rule as
    // the API: a token of an ended session is refused by both.
    let (_, other) = api.login("ada@example.com", new_password).await;
    assert_eq!(server.userinfo(slug, access(&tokens)).await.0, 200);
    let (status, _) = api
        .call(Method::POST, "/v1/auth/logout", Some(access(&tokens)), None)
        .await;
    assert_eq!(status, 204);
    assert_eq!(
        api.call(Method::GET, "/v1/auth/me", Some(access(&tokens)), None)
            .await
            .0,
        401
    );
    let (status, challenge, _) = server.userinfo(slug, access(&tokens)).await;
    assert_eq!(status, 401, "userinfo refuses a token of an ended session");
    assert!(challenge.unwrap().contains("invalid_token"));
    let (status, created) = server
        .admin(
            Method::POST,
            &format!("/v1/admin/tenants/{slug}/clients"),
            Some(json!({"name": "Resource server", "grant_types": ["client_credentials"], "scopes": ["api"]})),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let introspect = |token: String| {
        server
            .http
            .post(format!("{}/t/{slug}/introspect", server.base))
            .basic_auth(
                created["client_id"].as_str().unwrap(),
                created["client_secret"].as_str(),
            )
            .form(&[("token", token)])
            .send()
    };
    let ended: Value = introspect(access(&tokens).to_owned())
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ended, json!({"active": false}), "and so does introspection");
    let live: Value = introspect(access(&other).to_owned())
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(live["active"], json!(true));
    assert_eq!(server.userinfo(slug, access(&other)).await.0, 200);
    assert_eq!(
        api.call(Method::GET, "/v1/auth/me", Some(access(&other)), None).await.0,
        200
    );
    let (status, _) = api
        .call(Method::POST, "/v1/auth/logout-all", Some(access(&other)), None)
        .await;
    assert_eq!(status, 204);
    assert_eq!(
        api.call(Method::GET, "/v1/auth/me", Some(access(&other)), None).await.0,
        401
    );
    let (status, _) = api
        .call(
            Method::POST,
            "/v1/auth/refresh",
            None,
            Some(json!({"refresh_token": other["refresh_token"], "client_id": "demo-spa"})),
        )
        .await;
    assert_eq!(status, 400);

    // Every security event of the flows above is in the tenant's trail, with the request
    // it happened in, where it came from, and its outcome.
    let events = security_events(server, slug, "").await;
    for (action, outcome) in [
        ("login", "failure"),
        ("login", "success"),
        ("refresh_token_reused", "failure"),
        ("password_changed", "success"),
        ("mfa_enabled", "success"),
        ("second_factor", "failure"),
        ("second_factor", "success"),
    ] {
        let found = events.iter().find(|e| e["action"] == action && e["outcome"] == outcome);
        let event = found.unwrap_or_else(|| panic!("{action} {outcome} is recorded: {events:?}"));
        assert!(event["request_id"].as_str().is_some_and(|id| !id.is_empty()), "{event}");
        assert!(event["ip"].as_str().is_some(), "{event}");
    }
    let failed = events
        .iter()
        .find(|e| e["action"] == "login" && e["outcome"] == "failure")
        .unwrap();
    assert_eq!(failed["actor"], "ada@example.com");
    assert_eq!(failed["details"]["reason"], "bad_credentials");
    assert!(!format!("{events:?}").contains(PASSWORD), "no password in the trail");
    // Filters and pages.
    let logins = security_events(server, slug, "action=login").await;
    assert!(logins.len() >= 2 && logins.iter().all(|e| e["action"] == "login"));
    let (status, page) = server
        .admin(Method::GET, &format!("/v1/admin/tenants/{slug}/audit?limit=2"), None)
        .await;
    assert_eq!(status, 200);
    let after = page["next_after"].as_str().unwrap();
    let (_, next) = server
        .admin(
            Method::GET,
            &format!("/v1/admin/tenants/{slug}/audit?limit=2&after={after}"),
            None,
        )
        .await;
    assert_ne!(next["events"][0]["id"], page["events"][0]["id"]);
    assert_ne!(next["events"][0]["id"], page["events"][1]["id"]);
}

/// The tenant's security events (`query` is the query string).
async fn security_events(server: &TestServer, slug: &str, query: &str) -> Vec<Value> {
    let (status, page) = server
        .admin(
            Method::GET,
            &format!("/v1/admin/tenants/{slug}/audit?limit=1000&{query}"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{page}");
    page["events"].as_array().unwrap().clone()
}

#[tokio::test]
async fn registration_and_lockout_over_the_api() {
    let server = start().await;
    let api = Api {
        server: &server,
        slug: "local",
    };
    let register =
        json!({"email": "new@example.com", "password": PASSWORD, "client_id": "demo-spa", "given_name": "New"});
    let (status, body) = api
        .call(Method::POST, "/v1/auth/register", None, Some(register.clone()))
        .await;
    assert_eq!((status, body["code"].as_str()), (403, Some("registration_disabled")));

    let (status, _) = server
        .admin(
            Method::PATCH,
            "/v1/admin/tenants/local",
            Some(
                json!({"settings": {"security": {"registration_enabled": true, "registration_auto_login": true,
                "max_login_attempts": 2, "lockout_duration_secs": 60}}}),
            ),
        )
        .await;
    assert_eq!(status, 200);
    let weak = json!({"email": "weak@example.com", "password": "short"});
    let (status, body) = api.call(Method::POST, "/v1/auth/register", None, Some(weak)).await;
    assert_eq!((status, body["code"].as_str()), (422, Some("validation_failed")));
    let (status, body) = api
        .call(Method::POST, "/v1/auth/register", None, Some(register.clone()))
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["user"]["email_verified"], json!(false));
    let tokens = &body["tokens"];
    let (status, me) = api.call(Method::GET, "/v1/auth/me", Some(access(tokens)), None).await;
    assert_eq!((status, me["given_name"].as_str()), (200, Some("New")));
    let (status, body) = api.call(Method::POST, "/v1/auth/register", None, Some(register)).await;
    assert_eq!((status, body["code"].as_str()), (409, Some("email_taken")));

    // Two failures lock the account, with the time until it unlocks.
    api.login("new@example.com", "wrong one").await;
    let response = server
        .http
        .post(format!("{}/v1/auth/login", server.base))
        .header("X-Tenant-Slug", "local")
        .json(&json!({"email": "new@example.com", "password": "wrong two", "client_id": "demo-spa"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 429);
    assert!(response.headers().contains_key("retry-after"));
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["code"], "account_locked");
    let (status, _) = api.login("new@example.com", PASSWORD).await;
    assert_eq!(status, 429, "locked even for the right password");

    // Re-entering the password while signed in counts against the same lockout.
    let api = Api {
        server: &server,
        slug: "local",
    };
    let (status, _) = api
        .call(
            Method::POST,
            "/v1/auth/password",
            Some(access(tokens)),
            Some(json!({"current_password": PASSWORD, "new_password": "another long passphrase"})),
        )
        .await;
    assert_eq!(status, 429, "a locked account cannot re-check its password either");
    let locked = security_events(&server, "local", "action=account_locked").await;
    assert_eq!(locked.len(), 1, "{locked:?}");
    assert_eq!(locked[0]["actor"], "new@example.com");
    let refused = security_events(&server, "local", "action=login").await;
    assert!(refused.iter().any(|e| e["details"]["reason"] == "locked"));
}

/// "Me" calls act on the account only for tokens of the tenant's first-party apps: a
/// token issued to a third-party client for the same live session is refused.
#[tokio::test]
async fn account_calls_refuse_tokens_of_third_party_clients() {
    let server = start().await;
    let api = Api {
        server: &server,
        slug: "local",
    };
    let (status, _) = server
        .admin(
            Method::POST,
            "/v1/admin/tenants/local/users",
            Some(json!({"email": "ada@example.com", "password": PASSWORD, "email_verified": true})),
        )
        .await;
    assert_eq!(status, 201);
    let (status, body) = server
        .admin(
            Method::POST,
            "/v1/admin/tenants/local/clients",
            Some(
                json!({"client_id": "partner", "name": "Partner", "client_type": "public", "first_party": false,
                "redirect_uris": ["http://partner.example/cb"], "scopes": ["openid"]}),
            ),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let (_, tokens) = api.login("ada@example.com", PASSWORD).await;
    let claims: Value = {
        use base64::Engine;
        let payload = access(&tokens).split('.').nth(1).unwrap();
        serde_json::from_slice(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(payload)
                .unwrap(),
        )
        .unwrap()
    };
    let ctx = server.ctx("local");
    let partner = ctx.entry.clients.get("partner").unwrap().clone();
    let grant = tenantry_oidc::tokens::AccessGrant {
        client: &partner,
        subject: claims["sub"].as_str().unwrap(),
        scope: "openid",
        audience: vec!["partner".into()],
        auth_time: None,
        acr: None,
        amr: None,
        sid: claims["sid"].as_str(),
        jti: None,
        roles: None,
    };
    let foreign = tenantry_oidc::tokens::issue_access_token(&ctx, &grant, chrono::Utc::now()).unwrap();
    let (status, _) = api.call(Method::GET, "/v1/auth/me", Some(&foreign.token), None).await;
    assert_eq!(status, 401);
    let (status, _) = api
        .call(Method::POST, "/v1/auth/mfa/totp", Some(&foreign.token), None)
        .await;
    assert_eq!(status, 401);
    let (status, _) = api.call(Method::GET, "/v1/auth/me", Some(access(&tokens)), None).await;
    assert_eq!(status, 200, "the first-party token of the same session works");
    // A public third-party client cannot log users in through the headless API either.
    let (status, body) = api
        .call(
            Method::POST,
            "/v1/auth/login",
            None,
            Some(json!({"email": "ada@example.com", "password": PASSWORD, "client_id": "partner"})),
        )
        .await;
    assert_eq!((status, body["code"].as_str()), (400, Some("invalid_client")));
}

#[tokio::test]
async fn profile_values_are_checked_on_every_write_path_on_sqlite() {
    let server = start().await;
    profile_values_are_checked(&server, "local").await;
}

#[tokio::test]
async fn profile_values_are_checked_on_every_write_path_on_postgres() {
    let server = start().await;
    let client = common::postgres::spa_client(&["openid", "profile", "email", "offline_access"]);
    let Some(database) = common::postgres::postgres_tenant(&server, "pg", client).await else {
        return;
    };
    profile_values_are_checked(&server, "pg").await;
    drop(server);
    database.drop_database().await;
}

/// Values a profile cannot hold are 422 `validation_failed` naming the field, before the
/// database (PostgreSQL once answered NUL or an over-long locale as 503
/// `tenant_db_unavailable`, SQLite stored a 900 KB name and a `javascript:` picture).
async fn profile_values_are_checked(server: &TestServer, slug: &str) {
    let api = Api { server, slug };
    let refused = |(status, body): (u16, Value), field: &str| {
        assert_eq!(
            (status, body["code"].as_str()),
            (422, Some("validation_failed")),
            "{field}: {body}"
        );
        let fields: Vec<&str> = body["errors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["field"].as_str().unwrap())
            .collect();
        assert!(fields.contains(&field), "{field} is named: {body}");
    };
    let (status, _) = server
        .admin(
            Method::PATCH,
            &format!("/v1/admin/tenants/{slug}"),
            Some(json!({"settings": {"security": {"registration_enabled": true}}})),
        )
        .await;
    assert_eq!(status, 200);

    // Registration.
    let register = |extra: Value| {
        let mut body = json!({"email": "reg@example.com", "password": PASSWORD});
        body.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        api.call(Method::POST, "/v1/auth/register", None, Some(body))
    };
    refused(register(json!({"email": "reg\u{0}@example.com"})).await, "email");
    refused(
        register(json!({"email": format!("{}@example.com", "a".repeat(250))})).await,
        "email",
    );
    refused(register(json!({"locale": "x".repeat(36)})).await, "locale");
    refused(register(json!({"given_name": "g".repeat(256)})).await, "given_name");
    refused(register(json!({"family_name": "Love\u{0}lace"})).await, "family_name");
    refused(register(json!({"phone_number": "call me maybe"})).await, "phone_number");
    // A NUL in a login's email is an unknown account, not an outage.
    let (status, body) = api.login("ada\u{0}@example.com", PASSWORD).await;
    assert_eq!((status, body["code"].as_str()), (401, Some("invalid_credentials")));

    // The caller's own profile.
    let (status, _) = server
        .admin(
            Method::POST,
            &format!("/v1/admin/tenants/{slug}/users"),
            Some(
                json!({"email": "ada@example.com", "password": PASSWORD, "email_verified": true, "given_name": "Ada"}),
            ),
        )
        .await;
    assert_eq!(status, 201);
    let (_, tokens) = api.login("ada@example.com", PASSWORD).await;
    let patch = |body: Value| api.call(Method::PATCH, "/v1/auth/me", Some(access(&tokens)), Some(body));
    refused(patch(json!({"name": "n".repeat(300)})).await, "name");
    refused(
        patch(json!({"picture": "javascript:alert(document.cookie)"})).await,
        "picture",
    );
    refused(patch(json!({"picture": "http://example.com/a.png"})).await, "picture");
    refused(
        patch(json!({"locale": "en-US-x-way-too-long-for-a-locale-tag"})).await,
        "locale",
    );
    refused(
        patch(json!({"given_name": "A\u{0}da", "family_name": "ok"})).await,
        "given_name",
    );
    let (status, me) = patch(json!({"picture": "https://cdn.example.com/ada.png", "locale": "es-ES"})).await;
    assert_eq!(
        (status, me["picture"].as_str()),
        (200, Some("https://cdn.example.com/ada.png"))
    );
    let (_, me) = api.call(Method::GET, "/v1/auth/me", Some(access(&tokens)), None).await;
    assert_eq!(
        (me["given_name"].as_str(), me["family_name"].as_str()),
        (Some("Ada"), None),
        "a refused change writes nothing"
    );

    // The admin API.
    let users = format!("/v1/admin/tenants/{slug}/users");
    refused(
        server
            .admin(
                Method::POST,
                &users,
                Some(json!({"email": "x@example.com", "picture": "javascript:x"})),
            )
            .await,
        "picture",
    );
    refused(
        server
            .admin(
                Method::POST,
                &users,
                Some(json!({"email": "x@example.com", "name": "a\u{7}b"})),
            )
            .await,
        "name",
    );
    let id = me["id"].as_str().unwrap();
    refused(
        server
            .admin(
                Method::PATCH,
                &format!("{users}/{id}"),
                Some(json!({"locale": "x".repeat(40)})),
            )
            .await,
        "locale",
    );
    refused(
        server
            .admin(
                Method::PATCH,
                &format!("{users}/{id}"),
                Some(json!({"email": "ada\u{0}@example.com"})),
            )
            .await,
        "email",
    );
}

/// One `Authorization: Bearer` rule for every caller (RFC 6750 2.1, scheme
/// case-insensitive): `/v1/auth/me`, UserInfo and the admin API accept `bearer` and
/// `BEARER` alike, and refuse a malformed header alike (400 with
/// `error="invalid_request"`), and a header of another scheme as no token (401, bare
/// challenge).
#[tokio::test]
async fn bearer_scheme_is_case_insensitive_everywhere() {
    let server = start().await;
    let api = Api {
        server: &server,
        slug: "local",
    };
    let (status, body) = server
        .admin(
            Method::POST,
            "/v1/admin/tenants/local/users",
            Some(json!({"email": "case@example.com", "password": PASSWORD, "email_verified": true})),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let (status, tokens) = api.login("case@example.com", PASSWORD).await;
    assert_eq!(status, 200, "{tokens}");
    let token = access(&tokens);

    let me = format!("{}/v1/auth/me", server.base);
    let userinfo = format!("{}/t/local/userinfo", server.base);
    let admin = format!("{}/v1/admin/tenants", server.base);
    let send = |url: &str, authorization: String| {
        server
            .http
            .get(url)
            .header("X-Tenant-Slug", "local")
            .header("authorization", authorization)
            .send()
    };
    for scheme in ["Bearer", "bearer", "BEARER"] {
        for url in [&me, &userinfo] {
            let response = send(url, format!("{scheme} {token}")).await.unwrap();
            assert_eq!(response.status(), 200, "{scheme} at {url}");
        }
        let response = send(&admin, format!("{scheme} {}", server.admin_token)).await.unwrap();
        assert_eq!(response.status(), 200, "{scheme} at {admin}");
    }

    // Malformed: the same refusal at every door.
    for header in [
        "Bearer".to_owned(),
        "bearer   ".to_owned(),
        format!("Bearer {token} extra"),
    ] {
        for url in [&me, &userinfo, &admin] {
            let response = send(url, header.clone()).await.unwrap();
            assert_eq!(response.status(), 400, "{header:?} at {url}");
            let challenge = response.headers()["www-authenticate"].to_str().unwrap().to_owned();
            assert!(
                challenge.starts_with("Bearer") && challenge.contains("error=\"invalid_request\""),
                "{header:?} at {url}: {challenge}"
            );
        }
    }
    // Another scheme is no bearer token: 401 with a bare challenge (no error code).
    for url in [&me, &userinfo, &admin] {
        let response = send(url, "Basic YTpi".to_owned()).await.unwrap();
        assert_eq!(response.status(), 401, "Basic at {url}");
        let challenge = response.headers()["www-authenticate"].to_str().unwrap().to_owned();
        assert!(
            challenge.starts_with("Bearer") && !challenge.contains("error="),
            "Basic at {url}: {challenge}"
        );
    }
}
