//! The hosted account page (`/t/{slug}/account`), driven over HTTP as a browser would:
//! its sign-in through the tenant's own code flow (the built-in `tenantry-account`
//! client), and each of its forms — profile and custom fields, password, authenticator
//! app and recovery codes, address change by mailed link, sessions, sign-out — with the
//! refusals a user or an attacker meets (CSRF, a wrong password, a stale or foreign token).

use reqwest::Method;
use serde_json::{Value, json};
use tenantry_testkit::totp::{current_step, totp_at_step};

use crate::common::browser::{Browser, code_elements, hidden, query_param};
use crate::common::smtp::SmtpServer;
use crate::common::{TestServer, start};

const PASSWORD: &str = "correct horse battery";

/// An active, verified account of tenant `local`.
pub(crate) async fn create_user(server: &TestServer, email: &str, extra: Value) {
    let mut user = json!({"email": email, "password": PASSWORD, "email_verified": true});
    user.as_object_mut()
        .unwrap()
        .extend(extra.as_object().cloned().unwrap_or_default());
    let (status, body) = server
        .admin(Method::POST, "/v1/admin/tenants/local/users", Some(user))
        .await;
    assert_eq!(status, 201, "{body}");
}

/// The server's public URL (its issuers' base), which may name `localhost` while the
/// server listens on 127.0.0.1.
pub(crate) fn public_base(server: &TestServer) -> String {
    server.state.public_url.as_str().trim_end_matches('/').to_owned()
}

pub(crate) fn account_url(server: &TestServer) -> String {
    format!("{}/t/local/account", public_base(server))
}

/// Opens the account page in `browser`, signing in with the password on the hosted login
/// it is sent to; answers the page.
pub(crate) async fn open_signed_in(server: &TestServer, browser: &mut Browser, email: &str) -> String {
    let (status, headers, _) = browser.send(Method::GET, &account_url(server), None).await;
    assert_eq!(status, 303);
    let authorize = headers["location"].clone();
    assert!(
        authorize.starts_with(&format!("{}/t/local/authorize?", public_base(server))),
        "{authorize}"
    );
    assert_eq!(
        query_param(&authorize, "client_id").as_deref(),
        Some("tenantry-account")
    );
    assert_eq!(
        query_param(&authorize, "code_challenge_method").as_deref(),
        Some("S256")
    );
    let (status, _, login) = browser.send(Method::GET, &authorize, None).await;
    assert_eq!(status, 200, "{login}");
    let (status, headers, body) = browser
        .submit(&login, &[("email", email), ("password", PASSWORD)])
        .await;
    assert_eq!(status, 303, "{body}");
    let callback = headers["location"].clone();
    assert!(
        callback.starts_with(&format!(
            "{}/account/callback?",
            account_url(server).trim_end_matches("/account")
        )),
        "{callback}"
    );
    let (status, headers, body) = browser.send(Method::GET, &callback, None).await;
    assert_eq!(status, 303, "{body}");
    assert_eq!(headers["location"], account_url(server));
    let (status, _, page) = browser.send(Method::GET, &account_url(server), None).await;
    assert_eq!(status, 200, "{page}");
    page
}

/// Posts one of the page's forms (`{account}/{path}`) with the page's CSRF token.
pub(crate) async fn post(
    server: &TestServer,
    browser: &mut Browser,
    page: &str,
    path: &str,
    fields: &[(&str, &str)],
) -> (u16, String, String) {
    let csrf = hidden(page, "csrf");
    let mut form = vec![("csrf", csrf.as_str())];
    form.extend_from_slice(fields);
    let url = format!("{}/{path}", account_url(server));
    let (status, headers, body) = browser.send(Method::POST, &url, Some(&form)).await;
    (status, headers.get("location").cloned().unwrap_or_default(), body)
}

async fn user_json(server: &TestServer, email: &str) -> Value {
    let (status, body) = server
        .admin(
            Method::GET,
            &format!("/v1/admin/tenants/local/users?email={email}"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    body["users"][0].clone()
}

/// Signs in through the code flow, changes the profile and a custom field, refuses a form
/// without the CSRF token, lists the session, and signs out: the page's token and the
/// login session end together.
#[tokio::test]
async fn the_account_page_signs_in_through_the_code_flow_and_edits_the_profile() {
    let server = start().await;
    let (status, body) = server
        .admin(
            Method::PATCH,
            "/v1/admin/tenants/local",
            Some(json!({"settings": {"custom_fields": [{"name": "employee_number", "type": "integer"}]}})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    create_user(&server, "ada@example.com", json!({"given_name": "Ada"})).await;
    let mut browser = Browser::new();
    let page = open_signed_in(&server, &mut browser, "ada@example.com").await;
    assert!(
        page.contains("ada@example.com") && page.contains("value=\"Ada\""),
        "{page}"
    );
    assert!(page.contains("name=\"custom.employee_number\""), "{page}");
    assert!(
        page.contains("(this session)"),
        "the page lists its own session: {page}"
    );
    assert!(browser.cookies.contains_key("tenantry_account"));
    assert!(
        !browser.cookies.contains_key("tenantry_account_flow") || browser.cookies["tenantry_account_flow"].is_empty()
    );

    let fields = [
        ("given_name", "Augusta Ada"),
        ("family_name", "King"),
        ("name", ""),
        ("phone_number", ""),
        ("custom.employee_number", "1815"),
    ];
    let (status, location, _) = post(&server, &mut browser, &page, "profile", &fields).await;
    assert_eq!(
        (status, location.as_str()),
        (303, format!("{}?done=saved", account_url(&server)).as_str())
    );
    let (_, _, page) = browser.send(Method::GET, &location, None).await;
    assert!(
        page.contains("Your changes are saved.") && page.contains("value=\"Augusta Ada\""),
        "{page}"
    );
    let user = user_json(&server, "ada@example.com").await;
    assert_eq!(user["given_name"], "Augusta Ada");
    assert_eq!(user["family_name"], "King");
    assert_eq!(user["custom"]["employee_number"], 1815);

    // A bad value is refused with the page, and nothing changes.
    let bad = [("given_name", "Eve"), ("custom.employee_number", "many")];
    let (status, _, body) = post(&server, &mut browser, &page, "profile", &bad).await;
    assert_eq!(status, 422, "{body}");
    assert!(body.contains("custom.employee_number"), "{body}");
    assert_eq!(user_json(&server, "ada@example.com").await["given_name"], "Augusta Ada");

    // Another site's form (no matching CSRF token) changes nothing.
    let url = format!("{}/profile", account_url(&server));
    let form = [("csrf", "forged"), ("given_name", "Mallory")];
    let (status, _, body) = browser.send(Method::POST, &url, Some(&form)).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(user_json(&server, "ada@example.com").await["given_name"], "Augusta Ada");

    // A form posted without the page's sign-in goes to the page (and so to sign in).
    let mut stranger = Browser::new();
    let (status, headers, _) = stranger.send(Method::POST, &url, Some(&[("csrf", "x")])).await;
    assert_eq!(
        (status, headers["location"].as_str()),
        (303, account_url(&server).as_str())
    );

    // Sign out: the page's token stops working with its session, even if kept.
    let kept = browser.cookies["tenantry_account"].clone();
    let (status, _, body) = post(&server, &mut browser, &page, "sign-out", &[]).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("You are signed out."), "{body}");
    browser.cookies.insert("tenantry_account".into(), kept);
    let (status, headers, _) = browser.send(Method::GET, &account_url(&server), None).await;
    assert_eq!(status, 303);
    assert!(
        headers["location"].contains("/t/local/authorize?"),
        "signs in again: {headers:?}"
    );
}

/// The sign-in is this browser's: a callback with another `state`, or a token of another
/// client in the cookie, is not the page's sign-in; the built-in client's id cannot be
/// registered, and it sends codes nowhere else.
#[tokio::test]
async fn the_account_sign_in_refuses_foreign_state_tokens_and_redirects() {
    let server = start().await;
    create_user(&server, "ada@example.com", json!({})).await;
    let mut browser = Browser::new();
    let (_, headers, _) = browser.send(Method::GET, &account_url(&server), None).await;
    let authorize = headers["location"].clone();
    let (_, _, login) = browser.send(Method::GET, &authorize, None).await;
    let (_, headers, _) = browser
        .submit(&login, &[("email", "ada@example.com"), ("password", PASSWORD)])
        .await;
    let callback = headers["location"].clone();
    let forged = callback.replace(&query_param(&callback, "state").unwrap(), "someone-elses-state");
    let (status, _, body) = browser.send(Method::GET, &forged, None).await;
    assert_eq!(status, 400, "{body}");
    assert!(!browser.cookies.contains_key("tenantry_account"));
    // In another browser (no sign-in under way) the real callback is refused too.
    let (status, _, _) = Browser::new().send(Method::GET, &callback, None).await;
    assert_eq!(status, 400);
    // The code itself still works once, here.
    let (status, _, _) = browser.send(Method::GET, &callback, None).await;
    assert_eq!(status, 303);
    let (status, _, _) = browser.send(Method::GET, &callback, None).await;
    assert_eq!(status, 400, "the sign-in's state is spent");

    // A first-party app's own access token is not the page's sign-in.
    let api = crate::common::api::Api {
        server: &server,
        slug: "local",
    };
    let (_, tokens) = api.login("ada@example.com", PASSWORD).await;
    let mut other = Browser::new();
    other.cookies.insert(
        "tenantry_account".into(),
        tokens["access_token"].as_str().unwrap().into(),
    );
    let (status, headers, _) = other.send(Method::GET, &account_url(&server), None).await;
    assert_eq!(status, 303);
    assert!(headers["location"].contains("/authorize?"), "{headers:?}");

    // The built-in client only sends codes to its own callback.
    let evil = authorize.replace(
        &url::form_urlencoded::byte_serialize(format!("{}/t/local/account/callback", public_base(&server)).as_bytes())
            .collect::<String>(),
        "https%3A%2F%2Fevil.example%2Fcb",
    );
    assert_ne!(evil, authorize);
    let (status, headers, body) = Browser::new().send(Method::GET, &evil, None).await;
    assert_eq!(status, 400, "{body}");
    assert!(!headers.contains_key("location"));

    // No registered client may take the built-in id.
    let client = json!({"client_id": "tenantry-account", "name": "Imposter", "client_type": "public",
        "redirect_uris": ["https://evil.example/cb"], "grant_types": ["authorization_code"],
        "scopes": ["openid"], "token_endpoint_auth_method": "none"});
    let (status, body) = server
        .admin(Method::POST, "/v1/admin/tenants/local/clients", Some(client))
        .await;
    assert_eq!(status, 422, "{body}");
}

/// Password change (the current one is the proof; a wrong one is refused and counted),
/// an authenticator app set up with a code computed here, new recovery codes, and the
/// app turned off again.
#[tokio::test]
async fn password_and_authenticator_app_on_the_account_page() {
    let server = start().await;
    create_user(&server, "ada@example.com", json!({"locale": "es"})).await;
    let mut browser = Browser::new();
    let page = open_signed_in(&server, &mut browser, "ada@example.com").await;
    assert!(
        page.contains("<html lang=\"es\">") && page.contains("Tu cuenta"),
        "the account's language: {page}"
    );
    let (status, _, body) = post(
        &server,
        &mut browser,
        &page,
        "profile",
        &[("given_name", "Ada"), ("locale", "es")],
    )
    .await;
    assert_eq!(status, 303, "{body}");
    let (status, _, page) = browser.send(Method::GET, &account_url(&server), None).await;
    assert_eq!(status, 200);
    // The language is the account's own choice.
    let (status, _, english) = post(
        &server,
        &mut browser,
        &page,
        "profile",
        &[("given_name", "Ada"), ("locale", "en")],
    )
    .await;
    assert_eq!(status, 303, "{english}");
    let (_, _, english) = browser.send(Method::GET, &account_url(&server), None).await;
    assert!(
        english.contains("Your account") && english.contains("<option value=\"en\" selected>"),
        "{english}"
    );
    let (status, _, _) = post(&server, &mut browser, &english, "profile", &[("locale", "xx-!!")]).await;
    assert_eq!(status, 422, "a malformed language is refused");
    let (status, _, _) = post(
        &server,
        &mut browser,
        &english,
        "profile",
        &[("given_name", "Ada"), ("locale", "es")],
    )
    .await;
    assert_eq!(status, 303);
    let (_, _, page) = browser.send(Method::GET, &account_url(&server), None).await;

    let wrong = [
        ("current_password", "not it"),
        ("new_password", "a brand new passphrase"),
    ];
    let (status, _, body) = post(&server, &mut browser, &page, "password", &wrong).await;
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("La contraseña actual no es correcta."), "{body}");
    let weak = [("current_password", PASSWORD), ("new_password", "short")];
    let (status, _, body) = post(&server, &mut browser, &page, "password", &weak).await;
    assert_eq!(status, 422, "{body}");
    let good = [
        ("current_password", PASSWORD),
        ("new_password", "a brand new passphrase"),
    ];
    let (status, location, _) = post(&server, &mut browser, &page, "password", &good).await;
    assert_eq!((status, location.ends_with("?done=password")), (303, true));
    let api = crate::common::api::Api {
        server: &server,
        slug: "local",
    };
    let (status, _) = api.login("ada@example.com", "a brand new passphrase").await;
    assert_eq!(status, 200);
    let (status, _) = api.login("ada@example.com", PASSWORD).await;
    assert_eq!(status, 401);

    // The sign-in just made is the proof TOTP enrolment needs: no password asked.
    let (_, _, page) = browser.send(Method::GET, &account_url(&server), None).await;
    let (status, _, page) = post(&server, &mut browser, &page, "totp", &[]).await;
    assert_eq!(status, 200, "{page}");
    let secret = code_elements(&page).into_iter().next().expect("the key to type");
    let (status, _, again) = post(&server, &mut browser, &page, "totp/confirm", &[("code", "000000")]).await;
    assert_eq!(status, 401, "{again}");
    assert!(again.contains(&secret), "the set-up is shown again: {again}");
    let code = totp_at_step(&secret, current_step());
    let (status, _, page) = post(&server, &mut browser, &page, "totp/confirm", &[("code", &code)]).await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("id=\"recovery-codes\""), "{page}");
    let codes_shown = page.matches("<li>").count();
    assert!(codes_shown >= 8, "{page}");

    // New recovery codes need a current code (a recovery code works once as one).
    let (status, _, body) = post(&server, &mut browser, &page, "recovery-codes", &[("code", "123")]).await;
    assert_eq!(status, 401, "{body}");
    let next = totp_at_step(&secret, current_step() + 1);
    let (status, _, body) = post(&server, &mut browser, &page, "recovery-codes", &[("code", &next)]).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("id=\"recovery-codes\""), "{body}");

    // Turning it off needs both the password and a code (here one of the new recovery codes).
    let recovery = body
        .split("class=\"codes\"><li>")
        .nth(1)
        .and_then(|rest| rest.split_once("</li>"))
        .map(|(code, _)| code.to_owned())
        .expect("a recovery code");
    let off = [
        ("current_password", "a brand new passphrase"),
        ("code", recovery.as_str()),
    ];
    let (status, location, body) = post(&server, &mut browser, &page, "totp/disable", &off).await;
    assert_eq!((status, location.ends_with("?done=totp_off")), (303, true), "{body}");
}

/// Ends another session from the list; "sign out everywhere" ends all of them.
#[tokio::test]
async fn sessions_are_listed_and_signed_out_from_the_account_page() {
    let server = start().await;
    create_user(&server, "ada@example.com", json!({})).await;
    let api = crate::common::api::Api {
        server: &server,
        slug: "local",
    };
    let (_, phone) = api.login("ada@example.com", PASSWORD).await;
    let phone_token = phone["access_token"].as_str().unwrap().to_owned();
    let mut browser = Browser::new();
    let page = open_signed_in(&server, &mut browser, "ada@example.com").await;
    let ends: Vec<&str> = page
        .split("/sessions/")
        .skip(1)
        .filter_map(|rest| rest.split_once("/end\"").map(|(sid, _)| sid))
        .collect();
    assert_eq!(ends.len(), 1, "one other session to end (not this one): {page}");
    let (status, location, _) = post(&server, &mut browser, &page, &format!("sessions/{}/end", ends[0]), &[]).await;
    assert_eq!((status, location.ends_with("?done=session_ended")), (303, true));
    let (status, _) = api.call(Method::GET, "/v1/auth/me", Some(&phone_token), None).await;
    assert_eq!(status, 401, "the ended session's token stops working");
    let (status, _, page) = browser.send(Method::GET, &account_url(&server), None).await;
    assert_eq!(status, 200, "this session lives on");

    let (_, again) = api.login("ada@example.com", PASSWORD).await;
    let (status, _, body) = post(&server, &mut browser, &page, "sign-out-everywhere", &[]).await;
    assert_eq!(status, 200, "{body}");
    let token = again["access_token"].as_str().unwrap();
    let (status, _) = api.call(Method::GET, "/v1/auth/me", Some(token), None).await;
    assert_eq!(status, 401);
    let (status, _, _) = browser.send(Method::GET, &account_url(&server), None).await;
    assert_eq!(status, 303, "signed out here too");
}

/// An address change: a link to the new address (nothing changes until it is opened
/// there), then the address is the account's, verified; a stale link, or an address
/// another account took meanwhile, changes nothing.
#[tokio::test]
async fn the_address_changes_only_from_the_new_inbox() {
    let Some(smtp) = SmtpServer::start() else { return };
    let server = start().await;
    smtp.configure_tenant(&server, "local").await;
    create_user(&server, "ada@example.com", json!({})).await;
    create_user(&server, "bob@example.com", json!({})).await;
    let mut browser = Browser::new();
    let page = open_signed_in(&server, &mut browser, "ada@example.com").await;
    assert!(page.contains("id=\"new_email\""), "{page}");

    let (status, _, body) = post(&server, &mut browser, &page, "email", &[("email", "not an address")]).await;
    assert_eq!(status, 422, "{body}");
    let (status, location, body) = post(&server, &mut browser, &page, "email", &[("email", "ada@new.example")]).await;
    assert_eq!((status, location.ends_with("?done=email_sent")), (303, true), "{body}");
    let mail = smtp
        .wait_for_message_to("ada@new.example", std::time::Duration::from_secs(10))
        .await;
    let earlier = mail
        .links()
        .into_iter()
        .find(|l| l.contains("/change-email?token="))
        .expect("a change link");
    let (status, _, _) = post(&server, &mut browser, &page, "email", &[("email", "ada@newer.example")]).await;
    assert_eq!(status, 303);
    let mail = smtp
        .wait_for_message_to("ada@newer.example", std::time::Duration::from_secs(10))
        .await;
    let link = mail
        .links()
        .into_iter()
        .find(|l| l.contains("/change-email?token="))
        .expect("a change link");
    assert_eq!(user_json(&server, "ada@example.com").await["email"], "ada@example.com");

    // The link's page shows the new address and spends nothing; its form does.
    let mut inbox = Browser::new();
    let (status, _, confirm) = inbox.send(Method::GET, &link, None).await;
    assert_eq!(status, 200, "{confirm}");
    assert!(confirm.contains("ada@newer.example"), "{confirm}");
    let token = hidden(&confirm, "token");
    let csrf = hidden(&confirm, "csrf");
    let url = format!("{}/t/local/change-email", public_base(&server));
    let form = [("token", token.as_str()), ("csrf", csrf.as_str())];
    let (status, _, done) = inbox.send(Method::POST, &url, Some(&form)).await;
    assert_eq!(status, 200, "{done}");
    let user = user_json(&server, "ada@newer.example").await;
    assert_eq!(
        (user["email"].as_str(), user["email_verified"].as_bool()),
        (Some("ada@newer.example"), Some(true))
    );
    let (status, _, _) = inbox.send(Method::POST, &url, Some(&form)).await;
    assert_eq!(status, 400, "a link works once");
    // The link of an earlier request (asked for before this one was confirmed) is spent too.
    let (_, _, confirm) = inbox.send(Method::GET, &earlier, None).await;
    assert!(confirm.contains("invalid_grant"), "{confirm}");

    // An address another account has by the time the link is opened: refused.
    let (_, _, page) = browser.send(Method::GET, &account_url(&server), None).await;
    let (status, _, _) = post(&server, &mut browser, &page, "email", &[("email", "bob@example.com")]).await;
    assert_eq!(status, 303);
    let mail = smtp
        .wait_for_message_to("bob@example.com", std::time::Duration::from_secs(10))
        .await;
    let link = mail
        .links()
        .into_iter()
        .find(|l| l.contains("/change-email?token="))
        .unwrap();
    let (_, _, confirm) = inbox.send(Method::GET, &link, None).await;
    let form = [("token", hidden(&confirm, "token")), ("csrf", hidden(&confirm, "csrf"))];
    let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (status, _, body) = inbox.send(Method::POST, &url, Some(&form)).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(user_json(&server, "bob@example.com").await["email"], "bob@example.com");
    assert_eq!(
        user_json(&server, "ada@newer.example").await["email"],
        "ada@newer.example"
    );
}
