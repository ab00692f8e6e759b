//! The account mail flows end to end over a real SMTP server (Python `aiosmtpd`, see
//! `common::smtp`), on SQLite and on PostgreSQL: the verification mail sent on
//! registration and confirmed through the hosted page (GET shows a form, POST with the
//! CSRF token spends the link), resend and forgot-password answering the same for every
//! address, a reset through the API and through the hosted page (sessions and refresh
//! tokens end, the link works once), the password-changed and account-locked notices;
//! and, without SMTP or with a mail that does not leave, no account left behind. Also the
//! hosted forgot-password page (linked from the login page and the notices), the limit of
//! mails per recipient, and a reset that kills the links of older mails.
//!
//! The tests skip (recorded, see `tenantry_testkit`) when `TENANTRY_TEST_SMTP_PYTHON` is
//! unset; CI sets it.

use std::time::Duration;

use crate::common;
use crate::common::api::Api;
use crate::common::browser::{Browser, form_action, hidden, query_param};
use crate::common::smtp::{ReceivedMail, SmtpServer};
use crate::common::{TestServer, start, start_with_config};
use reqwest::Method;
use serde_json::{Value, json};
use tenantry_dataplane::UserRepository;

const WAIT: Duration = Duration::from_secs(15);
const PASSWORD: &str = "correct horse battery";

impl Api<'_> {
    async fn register(&self, email: &str) -> (u16, Value) {
        self.post(
            "/v1/auth/register",
            json!({"email": email, "password": PASSWORD, "client_id": "demo-spa"}),
        )
        .await
    }

    async fn forgot(&self, email: &str) -> (u16, Value) {
        self.post("/v1/auth/password/forgot", json!({ "email": email })).await
    }

    async fn resend(&self, email: &str) -> (u16, Value) {
        self.post("/v1/auth/verify-email/resend", json!({ "email": email }))
            .await
    }

    /// Whether the tenant database has an account for `email`.
    async fn exists(&self, email: &str) -> bool {
        let ctx = self.server.ctx(self.slug);
        let db = ctx.db().await.unwrap();
        db.user_by_email(email, &ctx.custom_fields()).await.unwrap().is_some()
    }
}

fn access(tokens: &Value) -> &str {
    tokens["access_token"].as_str().expect("an access token")
}

/// An address no other test uses.
fn unique(name: &str) -> String {
    format!(
        "{name}-{}@example.com",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    )
}

/// The messages to `to` whose subject starts with `subject`.
fn mails(smtp: &SmtpServer, to: &str, subject: &str) -> Vec<ReceivedMail> {
    smtp.messages()
        .into_iter()
        .filter(|m| m.rcpt_to.iter().any(|r| r.eq_ignore_ascii_case(to)) && m.subject.starts_with(subject))
        .collect()
}

/// Waits until `count` messages to `to` with `subject` arrived; answers the last one.
async fn wait_for(smtp: &SmtpServer, to: &str, subject: &str, count: usize) -> ReceivedMail {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let found = mails(smtp, to, subject);
        if found.len() >= count {
            assert_eq!(found.len(), count, "more `{subject}` mails to {to} than expected");
            return found.last().unwrap().clone();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no mail #{count} `{subject}` to {to} within {WAIT:?}; got {:?}",
            smtp.messages()
                .iter()
                .map(|m| (&m.rcpt_to, &m.subject))
                .collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

fn none_to(smtp: &SmtpServer, to: &str) {
    let sent: Vec<_> = smtp
        .messages()
        .into_iter()
        .filter(|m| m.rcpt_to.iter().any(|r| r.eq_ignore_ascii_case(to)))
        .map(|m| m.subject)
        .collect();
    assert!(sent.is_empty(), "mail to {to}: {sent:?}");
}

const VERIFY_SUBJECT: &str = "Verify your email address";
const RESET_SUBJECT: &str = "Reset your ";
const CHANGED_SUBJECT: &str = "Your ";
const LOCKED_SUBJECT: &str = "Your ";

fn changed(smtp: &SmtpServer, to: &str) -> usize {
    mails(smtp, to, CHANGED_SUBJECT)
        .iter()
        .filter(|m| m.subject.ends_with("password was changed"))
        .count()
}

fn locked(smtp: &SmtpServer, to: &str) -> usize {
    mails(smtp, to, LOCKED_SUBJECT)
        .iter()
        .filter(|m| m.subject.ends_with("account was locked"))
        .count()
}

/// Waits until `to` has `count` mails `matching`.
async fn wait_count(smtp: &SmtpServer, to: &str, count: usize, matching: fn(&SmtpServer, &str) -> usize) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while matching(smtp, to) < count {
        assert!(
            tokio::time::Instant::now() < deadline,
            "mail #{count} to {to} did not arrive"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(matching(smtp, to), count);
}

/// The single link of a mail, after checking the mail has both parts and the HTML part
/// carries the same link.
fn the_link(mail: &ReceivedMail, path: &str, server: &TestServer, slug: &str) -> String {
    assert_eq!(mail.content_type, "multipart/alternative");
    let links = mail.links();
    assert_eq!(links.len(), 1, "{:?}", mail.text);
    let link = links[0].clone();
    let prefix = format!("{}/t/{slug}/{path}?token=", server.base);
    assert!(link.starts_with(&prefix), "{link} is not under {prefix}");
    let token = query_param(&link, "token").expect("a token");
    assert!(token.len() >= 43, "a 256-bit token: {token}");
    let html = mail.html.as_deref().expect("an html part");
    assert!(html.contains(&token), "the html part has the link: {html}");
    link
}

/// An active account with a verified address and [`PASSWORD`], made by the admin API.
async fn make_user(server: &TestServer, slug: &str, email: &str) {
    let (status, body) = server
        .admin(
            Method::POST,
            &format!("/v1/admin/tenants/{slug}/users"),
            Some(json!({"email": email, "password": PASSWORD, "email_verified": true})),
        )
        .await;
    assert_eq!(status, 201, "{body}");
}

/// An authorization request of the demo SPA; its GET shows the hosted login page.
fn authorize_url(server: &TestServer, slug: &str, lang: &str) -> String {
    format!(
        "{}/t/{slug}/authorize?client_id=demo-spa&response_type=code&scope=openid&redirect_uri=http%3A%2F%2Flocalhost%3A3000%2Fcallback&code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM&code_challenge_method=S256&ui_locales={lang}",
        server.base
    )
}

/// The `href` of every link in a hosted page, unescaped.
fn hrefs(html: &str) -> Vec<String> {
    html.split("<a href=\"")
        .skip(1)
        .filter_map(|rest| rest.split_once('"'))
        .map(|(href, _)| href.replace("&#x2f;", "/").replace("&amp;", "&"))
        .collect()
}

/// A page without its per-response CSP nonces, to compare two answers.
fn without_nonces(html: &str) -> String {
    let mut parts = html.split("nonce=\"");
    let mut out = parts.next().unwrap_or("").to_owned();
    for part in parts {
        out.push_str(part.split_once('"').map_or("", |(_, rest)| rest));
    }
    out
}

/// The fields of the forgot-password form.
fn forgot_form<'a>(csrf: &'a str, email: &'a str) -> [(&'a str, &'a str); 3] {
    [("csrf", csrf), ("ui_locales", "en"), ("email", email)]
}

/// The hosted forgot-password page's URL in `lang`, as the login page and notices link it.
fn forgot_url(server: &TestServer, slug: &str, lang: &str) -> String {
    format!("{}/t/{slug}/forgot-password?ui_locales={lang}", server.base)
}

async fn configure(server: &TestServer, smtp: &SmtpServer, slug: &str) {
    smtp.configure_tenant(server, slug).await;
    let (status, body) = server
        .admin(
            Method::PATCH,
            &format!("/v1/admin/tenants/{slug}"),
            Some(json!({"settings": {"security": {
                "registration_enabled": true, "registration_auto_login": true, "require_verified_email": true,
                "max_login_attempts": 3, "lockout_duration_secs": 300}}})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
}

/// Submits a hosted link page's form with `extra` fields; answers status and page.
async fn submit(browser: &mut Browser, page: &str, extra: &[(&str, &str)]) -> (u16, String) {
    let mut form = vec![
        ("token", hidden(page, "token")),
        ("csrf", hidden(page, "csrf")),
        ("ui_locales", hidden(page, "ui_locales")),
    ];
    form.extend(extra.iter().map(|(k, v)| (*k, (*v).to_owned())));
    let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (status, _, body) = browser.send(Method::POST, &form_action(page), Some(&form)).await;
    (status, body)
}

#[tokio::test]
async fn account_mail_flows_on_sqlite() {
    let Some(smtp) = SmtpServer::start() else { return };
    let server = start().await;
    account_mail_flows(&server, &smtp, "local").await;
}

#[tokio::test]
async fn account_mail_flows_on_postgres() {
    let Some(smtp) = SmtpServer::start() else { return };
    let server = start().await;
    let client = common::postgres::spa_client(&["openid", "email", "offline_access"]);
    let Some(database) = common::postgres::postgres_tenant(&server, "pg", client).await else {
        return;
    };
    account_mail_flows(&server, &smtp, "pg").await;
    drop(server);
    database.drop_database().await;
}

async fn account_mail_flows(server: &TestServer, smtp: &SmtpServer, slug: &str) {
    configure(server, smtp, slug).await;
    let api = Api { server, slug };
    let ada = unique("ada");
    let nobody = unique("nobody");

    // Registration sends the verification mail; no tokens before the address is verified.
    let (status, body) = api.register(&ada).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["user"]["email_verified"], json!(false));
    assert!(body["tokens"].is_null(), "{body}");
    let mail = wait_for(smtp, &ada, VERIFY_SUBJECT, 1).await;
    let text = mail.text.as_deref().expect("a text part");
    assert!(text.contains(&ada) && text.contains("48 hours"), "{text}");
    let link = the_link(&mail, "verify-email", server, slug);
    let token = query_param(&link, "token").unwrap();
    let (status, body) = api.login(&ada, PASSWORD).await;
    assert_eq!((status, body["code"].as_str()), (403, Some("email_not_verified")));

    // The hosted page: a GET (a mail scanner's prefetch, say) spends nothing.
    let mut scanner = Browser::new();
    let (status, _, page) = scanner.send(Method::GET, &link, None).await;
    assert_eq!(status, 200, "{page}");
    let mut browser = Browser::new();
    let (status, headers, page) = browser.send(Method::GET, &link, None).await;
    assert_eq!(status, 200, "{page}");
    assert!(
        page.contains("Verify your email address") && page.contains(&ada),
        "{page}"
    );
    assert_eq!(form_action(&page), format!("{}/t/{slug}/verify-email", server.base));
    assert!(
        headers["set-cookie"].starts_with("tenantry_csrf=")
            && headers["set-cookie"].contains(&format!("Path=/t/{slug}"))
    );
    assert_eq!(browser.cookies["tenantry_csrf"], hidden(&page, "csrf"));
    let (_, _, spanish) = Browser::new()
        .send(Method::GET, &format!("{link}&ui_locales=es"), None)
        .await;
    assert!(spanish.contains("Verifica tu dirección de correo"), "{spanish}");
    // A form without the matching cookie (another site, another browser) is refused and
    // the link still works.
    let (status, body) = submit(&mut scanner, &page, &[]).await;
    assert_eq!(status, 400, "the scanner's cookie is not this page's: {body}");
    assert!(body.contains("Open the link from the email again"), "{body}");
    let (status, _) = submit(&mut Browser::new(), &page, &[]).await;
    assert_eq!(status, 400, "no cookie at all");
    let (status, body) = submit(&mut browser, &page, &[]).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("Email address verified"), "{body}");
    let (status, tokens) = api.login(&ada, PASSWORD).await;
    assert_eq!(status, 200, "verified, so the login goes through: {tokens}");

    // The link works once, on either front door.
    let (status, body) = api
        .post("/v1/auth/verify-email/confirm", json!({ "token": token }))
        .await;
    assert_eq!((status, body["code"].as_str()), (400, Some("invalid_grant")), "{body}");
    let (status, _, page) = browser.send(Method::GET, &link, None).await;
    assert_eq!(status, 400);
    assert!(page.contains("This link is not valid"), "{page}");
    let csrf = browser.cookies["tenantry_csrf"].clone();
    let form = [("token", token.as_str()), ("csrf", csrf.as_str())];
    let verify_url = format!("{}/t/{slug}/verify-email", server.base);
    let (status, _, page) = browser.send(Method::POST, &verify_url, Some(&form)).await;
    assert_eq!(status, 400, "{page}");
    assert!(page.contains("This link is not valid"), "{page}");
    let (status, body) = api
        .post("/v1/auth/verify-email/confirm", json!({"token": "forged"}))
        .await;
    assert_eq!((status, body["code"].as_str()), (400, Some("invalid_grant")), "{body}");

    // Resend answers the same for an unknown, a verified and an unverified address; only
    // the unverified one gets a new link, which the API confirms.
    let bob = unique("bob");
    assert_eq!(api.register(&bob).await.0, 201);
    wait_for(smtp, &bob, VERIFY_SUBJECT, 1).await;
    let (status, for_nobody) = api.resend(&nobody).await;
    assert_eq!(status, 202, "{for_nobody}");
    let (status, for_ada) = api.resend(&ada).await;
    assert_eq!((status, &for_ada), (202, &for_nobody));
    let (status, for_bob) = api.resend(&bob).await;
    assert_eq!((status, &for_bob), (202, &for_nobody));
    let mail = wait_for(smtp, &bob, VERIFY_SUBJECT, 2).await;
    let bob_token = query_param(&the_link(&mail, "verify-email", server, slug), "token").unwrap();
    assert_eq!(mails(smtp, &ada, VERIFY_SUBJECT).len(), 1, "ada is verified already");
    let (status, body) = api
        .post("/v1/auth/verify-email/confirm", json!({ "token": bob_token }))
        .await;
    assert_eq!((status, body), (200, json!({"email_verified": true})));
    assert_eq!(api.login(&bob, PASSWORD).await.0, 200);
    let (status, body) = api.resend("not an address").await;
    assert_eq!((status, body["code"].as_str()), (422, Some("validation_failed")));

    // Forgot: the same answer for an unknown address; a link for a known one.
    let (_, first) = api.login(&ada, PASSWORD).await;
    let (_, second) = api.login(&ada, PASSWORD).await;
    assert_eq!(
        api.call(Method::GET, "/v1/auth/me", Some(access(&first)), None).await.0,
        200
    );
    let (status, for_nobody) = api.forgot(&nobody).await;
    assert_eq!(status, 202, "{for_nobody}");
    let (status, for_ada) = api.forgot(&ada).await;
    assert_eq!((status, &for_ada), (202, &for_nobody));
    let mail = wait_for(smtp, &ada, RESET_SUBJECT, 1).await;
    assert!(mail.text.as_deref().unwrap().contains("1 hour"), "{:?}", mail.text);
    let reset_token = query_param(&the_link(&mail, "reset-password", server, slug), "token").unwrap();

    // A password the policy refuses leaves the link usable; a bad token changes nothing.
    let (status, body) = api
        .post(
            "/v1/auth/password/reset",
            json!({"token": reset_token, "new_password": "short"}),
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (422, Some("validation_failed")),
        "{body}"
    );
    assert_eq!(body["errors"][0]["field"], "new_password");
    let new_password = "a fresh passphrase for ada";
    let (status, body) = api
        .post(
            "/v1/auth/password/reset",
            json!({"token": "forged", "new_password": new_password}),
        )
        .await;
    assert_eq!((status, body["code"].as_str()), (400, Some("invalid_grant")));
    let (status, _) = api
        .post(
            "/v1/auth/password/reset",
            json!({"token": token, "new_password": new_password}),
        )
        .await;
    assert_eq!(status, 400, "a verification token is no reset token");
    assert_eq!(api.login(&ada, PASSWORD).await.0, 200, "nothing changed so far");
    assert_eq!(changed(smtp, &ada), 0);

    let (status, body) = api
        .post(
            "/v1/auth/password/reset",
            json!({"token": reset_token, "new_password": new_password}),
        )
        .await;
    assert_eq!(status, 204, "{body}");
    // Every session and refresh token of the account is dead.
    for tokens in [&first, &second] {
        assert_eq!(
            api.call(Method::GET, "/v1/auth/me", Some(access(tokens)), None).await.0,
            401
        );
        let (status, body) = api
            .post(
                "/v1/auth/refresh",
                json!({"refresh_token": tokens["refresh_token"], "client_id": "demo-spa"}),
            )
            .await;
        assert_eq!((status, body["code"].as_str()), (400, Some("invalid_grant")), "{body}");
    }
    assert_eq!(api.login(&ada, PASSWORD).await.0, 401, "the old password is gone");
    let (status, tokens) = api.login(&ada, new_password).await;
    assert_eq!(status, 200, "{tokens}");
    let (status, body) = api
        .post(
            "/v1/auth/password/reset",
            json!({"token": reset_token, "new_password": "yet another passphrase"}),
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("invalid_grant")),
        "single use"
    );
    assert_eq!(api.login(&ada, new_password).await.0, 200);
    wait_count(smtp, &ada, 1, changed).await;
    let notice = mails(smtp, &ada, CHANGED_SUBJECT).pop().unwrap();
    assert!(notice.text.as_deref().unwrap().contains(&ada) && notice.html.is_some());

    // A password change through the API sends the notice too.
    let changed_password = "changed through the api";
    let (status, body) = api
        .call(
            Method::POST,
            "/v1/auth/password",
            Some(access(&tokens)),
            Some(json!({"current_password": new_password, "new_password": changed_password})),
        )
        .await;
    assert_eq!(status, 204, "{body}");
    wait_count(smtp, &ada, 2, changed).await;

    // A reset through the hosted page: the form, a refused password, then the new one.
    assert_eq!(api.forgot(&ada).await.0, 202);
    let mail = wait_for(smtp, &ada, RESET_SUBJECT, 2).await;
    let link = the_link(&mail, "reset-password", server, slug);
    let mut browser = Browser::new();
    let (status, _, page) = browser.send(Method::GET, &link, None).await;
    assert_eq!(status, 200, "{page}");
    assert!(
        page.contains("<label for=\"new_password\">New password</label>"),
        "{page}"
    );
    assert!(page.contains("id=\"new_password\" name=\"new_password\" type=\"password\""));
    let (status, page) = submit(&mut browser, &page, &[("new_password", "short")]).await;
    assert_eq!(status, 422, "{page}");
    assert!(page.contains("This password cannot be used"), "{page}");
    let hosted_password = "chosen on the hosted page";
    let (status, page) = submit(&mut browser, &page, &[("new_password", hosted_password)]).await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("Password changed"), "{page}");
    assert_eq!(api.login(&ada, changed_password).await.0, 401);
    assert_eq!(api.login(&ada, hosted_password).await.0, 200);
    let (status, _, page) = browser.send(Method::GET, &link, None).await;
    assert_eq!(status, 400, "used: {page}");
    wait_count(smtp, &ada, 3, changed).await;

    // Locking the account tells its owner, once per lock; an unknown address gets nothing.
    for attempt in 1..=2 {
        let (status, body) = api.login(&ada, "wrong password").await;
        assert_eq!(status, 401, "attempt {attempt}: {body}");
    }
    // The last failures race: several pass the lock check before any of them counts,
    // and all of them then find the account locked; its owner still hears of it once.
    let racing = tokio::join!(
        api.login(&ada, "wrong 3"),
        api.login(&ada, "wrong 4"),
        api.login(&ada, "wrong 5"),
        api.login(&ada, "wrong 6"),
    );
    for (status, body) in [racing.0, racing.1, racing.2, racing.3] {
        assert_eq!((status, body["code"].as_str()), (429, Some("account_locked")), "{body}");
    }
    wait_count(smtp, &ada, 1, locked).await;
    let notice = mails(smtp, &ada, LOCKED_SUBJECT)
        .into_iter()
        .find(|m| m.subject.ends_with("account was locked"))
        .unwrap();
    assert!(
        notice.text.as_deref().unwrap().contains("5 minutes"),
        "{:?}",
        notice.text
    );
    let (status, body) = api.login(&ada, "wrong again").await;
    assert_eq!((status, body["code"].as_str()), (429, Some("account_locked")));
    for _ in 0..3 {
        api.login(&nobody, "wrong password").await;
    }
    assert_eq!(
        api.login(&nobody, "wrong password").await.0,
        429,
        "unknown addresses lock too"
    );
    // A reset ends the lock at once (and the mail it sends marks that the notices above
    // had their chance to arrive).
    assert_eq!(api.login(&ada, hosted_password).await.0, 429, "locked");
    assert_eq!(api.forgot(&ada).await.0, 202);
    let mail = wait_for(smtp, &ada, RESET_SUBJECT, 3).await;
    let reset_token = query_param(&the_link(&mail, "reset-password", server, slug), "token").unwrap();
    let (status, _) = api
        .post(
            "/v1/auth/password/reset",
            json!({"token": reset_token, "new_password": new_password}),
        )
        .await;
    assert_eq!(status, 204);
    assert_eq!(api.login(&ada, new_password).await.0, 200, "unlocked by the reset");
    wait_count(smtp, &ada, 4, changed).await;
    assert_eq!(locked(smtp, &ada), 1, "one notice per lock");
    none_to(smtp, &nobody);

    // The mail flows are in the tenant's security events.
    let (status, trail) = server
        .admin(Method::GET, &format!("/v1/admin/tenants/{slug}/audit?limit=1000"), None)
        .await;
    assert_eq!(status, 200, "{trail}");
    let events = trail["events"].as_array().unwrap();
    for action in ["email_verified", "password_reset", "account_locked"] {
        let event = events.iter().find(|e| e["action"] == action);
        let event = event.unwrap_or_else(|| panic!("{action} is recorded"));
        assert!(event["request_id"].as_str().is_some_and(|id| !id.is_empty()), "{event}");
    }
}

#[tokio::test]
async fn without_smtp_nothing_is_sent_and_no_account_is_made() {
    let server = start().await;
    let api = Api {
        server: &server,
        slug: "local",
    };
    let (status, body) = server
        .admin(
            Method::PATCH,
            "/v1/admin/tenants/local",
            Some(json!({"settings": {"security": {"registration_enabled": true, "require_verified_email": true}}})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let ada = unique("ada");
    let (status, body) = api.register(&ada).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (501, Some("email_not_configured")),
        "{body}"
    );
    assert!(!api.exists(&ada).await, "refused before anything was made");
    for path in ["/v1/auth/verify-email/resend", "/v1/auth/password/forgot"] {
        let (status, body) = api.post(path, json!({ "email": ada })).await;
        assert_eq!(
            (status, body["code"].as_str()),
            (501, Some("email_not_configured")),
            "{path}"
        );
    }
    // Without the requirement an account is made, with nothing to send.
    let (status, _) = server
        .admin(
            Method::PATCH,
            "/v1/admin/tenants/local",
            Some(json!({"settings": {"security": {"require_verified_email": false}}})),
        )
        .await;
    assert_eq!(status, 200);
    let (status, body) = api.register(&ada).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(api.login(&ada, PASSWORD).await.0, 200);
}

#[tokio::test]
async fn a_verification_mail_that_does_not_leave_undoes_the_registration() {
    let Some(smtp) = SmtpServer::start() else { return };
    let server = start().await;
    configure(&server, &smtp, "local").await;
    let api = Api {
        server: &server,
        slug: "local",
    };
    // The transport works (and is cached) before the server goes away.
    let warm = unique("warm");
    assert_eq!(api.register(&warm).await.0, 201);
    wait_for(&smtp, &warm, VERIFY_SUBJECT, 1).await;
    smtp.stop();

    let ada = unique("ada");
    let (status, body) = api.register(&ada).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (502, Some("email_send_failed")),
        "{body}"
    );
    assert!(!api.exists(&ada).await, "no account left behind");
    // The same for an account an administrator makes with a verification mail.
    let grace = unique("grace");
    let (status, body) = server
        .admin(
            Method::POST,
            "/v1/admin/tenants/local/users",
            Some(json!({"email": grace, "send_verification_email": true})),
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (502, Some("email_send_failed")),
        "{body}"
    );
    assert!(!api.exists(&grace).await, "no account left behind by the admin either");
    let (status, body) = api.login(&ada, PASSWORD).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (401, Some("invalid_credentials")),
        "not `email_not_verified`: there is no account"
    );

    // With a working server again, the same address registers afresh.
    let Some(smtp) = SmtpServer::start() else { return };
    smtp.configure_tenant(&server, "local").await;
    let (status, body) = api.register(&ada).await;
    assert_eq!(status, 201, "not email_taken: {body}");
    let mail = wait_for(&smtp, &ada, VERIFY_SUBJECT, 1).await;
    let token = query_param(&the_link(&mail, "verify-email", &server, "local"), "token").unwrap();
    let (status, _) = api
        .post("/v1/auth/verify-email/confirm", json!({ "token": token }))
        .await;
    assert_eq!(status, 200);
    assert_eq!(api.login(&ada, PASSWORD).await.0, 200);
}

#[tokio::test]
async fn mail_requests_are_limited_per_address_of_the_caller() {
    let Some(smtp) = SmtpServer::start() else { return };
    let server = start().await;
    configure(&server, &smtp, "local").await;
    let api = Api {
        server: &server,
        slug: "local",
    };
    for path in ["/v1/auth/password/forgot", "/v1/auth/verify-email/resend"] {
        // A malformed address is refused, and counts as an attempt like any other.
        let (status, body) = api.post(path, json!({"email": "not an address"})).await;
        assert_eq!((status, body["code"].as_str()), (422, Some("validation_failed")));
        for n in 1..5 {
            let (status, body) = api.post(path, json!({ "email": unique(&format!("n{n}")) })).await;
            assert_eq!(status, 202, "{path} #{n}: {body}");
        }
        let response = server
            .http
            .post(format!("{}{path}", server.base))
            .header("X-Tenant-Slug", "local")
            .json(&json!({ "email": unique("over") }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 429, "{path}");
        assert!(response.headers().contains_key("retry-after"));
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["code"], "rate_limited");
    }
}

#[tokio::test]
async fn the_hosted_forgot_password_page_end_to_end() {
    let Some(smtp) = SmtpServer::start() else { return };
    let server = start().await;
    configure(&server, &smtp, "local").await;
    let api = Api {
        server: &server,
        slug: "local",
    };
    let (ada, nobody) = (unique("ada"), unique("nobody"));
    make_user(&server, "local", &ada).await;

    // The login page links to the form, in the page's language.
    let mut browser = Browser::new();
    let (status, _, login_page) = browser
        .send(Method::GET, &authorize_url(&server, "local", "en"), None)
        .await;
    assert_eq!(status, 200, "{login_page}");
    assert!(login_page.contains("Forgot password?"), "{login_page}");
    let forgot = forgot_url(&server, "local", "en");
    assert_eq!(hrefs(&login_page), [forgot.as_str()]);
    let (_, _, spanish_login) = Browser::new()
        .send(Method::GET, &authorize_url(&server, "local", "es"), None)
        .await;
    assert!(
        spanish_login.contains("¿Has olvidado tu contraseña?"),
        "{spanish_login}"
    );
    assert_eq!(hrefs(&spanish_login), [forgot_url(&server, "local", "es")]);

    // The form keeps the browser's CSRF cookie (a fresh browser gets one).
    let (status, _, page) = browser.send(Method::GET, &forgot, None).await;
    assert_eq!(status, 200, "{page}");
    assert!(
        page.contains("<label for=\"email\">Email</label>") && page.contains("name=\"email\" type=\"email\""),
        "{page}"
    );
    let action = form_action(&page);
    assert_eq!(action, format!("{}/t/local/forgot-password", server.base));
    assert_eq!(browser.cookies["tenantry_csrf"], hidden(&page, "csrf"));
    let (status, headers, spanish) = Browser::new()
        .send(Method::GET, &forgot_url(&server, "local", "es"), None)
        .await;
    assert_eq!(status, 200);
    assert!(
        spanish.contains("Restablece tu contraseña") && spanish.contains("Enviar enlace"),
        "{spanish}"
    );
    assert!(
        headers["set-cookie"].starts_with("tenantry_csrf=") && headers["set-cookie"].contains("Path=/t/local"),
        "{headers:?}"
    );

    // Without the cookie's token nothing happens: no cookie, a wrong token, no token, a
    // repeated field, an empty body.
    let csrf = hidden(&page, "csrf");
    let refused: [(bool, &[(&str, &str)]); 5] = [
        (false, &[("csrf", &csrf), ("email", &ada)]),
        (true, &[("csrf", "guess"), ("email", &ada)]),
        (true, &[("email", &ada)]),
        (true, &[("csrf", &csrf), ("email", &ada), ("email", &nobody)]),
        (true, &[]),
    ];
    for (with_cookie, form) in refused {
        let mut stranger = Browser::new();
        let who = if with_cookie { &mut browser } else { &mut stranger };
        let (status, _, body) = who.send(Method::POST, &action, Some(form)).await;
        assert_eq!(status, 400, "{form:?}: {body}");
        assert!(body.contains("This page has expired"), "{body}");
    }
    let ui_locales = hidden(&page, "ui_locales");
    assert_eq!(ui_locales, "en");
    let form = |email| forgot_form(&csrf, email);

    // A malformed address: the form again, with what is wrong.
    let (status, _, body) = browser.send(Method::POST, &action, Some(&form("not an address"))).await;
    assert_eq!(status, 422, "{body}");
    assert!(body.contains("Enter an email address such as"), "{body}");
    assert!(body.contains("value=\"not an address\""), "{body}");

    // Unknown and known addresses get the very same page.
    let (status, _, for_nobody) = browser.send(Method::POST, &action, Some(&form(&nobody))).await;
    assert_eq!(status, 200, "{for_nobody}");
    assert!(
        for_nobody.contains("If an account exists for this address"),
        "{for_nobody}"
    );
    let (status, _, for_ada) = browser.send(Method::POST, &action, Some(&form(&ada))).await;
    assert_eq!(status, 200);
    assert_eq!(without_nonces(&for_ada), without_nonces(&for_nobody));

    // The mail's link, followed in the same browser, sets the new password.
    let mail = wait_for(&smtp, &ada, RESET_SUBJECT, 1).await;
    let link = the_link(&mail, "reset-password", &server, "local");
    let (status, _, page) = browser.send(Method::GET, &link, None).await;
    assert_eq!(status, 200, "{page}");
    let new_password = "found again through the hosted page";
    let (status, page) = submit(&mut browser, &page, &[("new_password", new_password)]).await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("Password changed"), "{page}");

    // The hosted login takes the new password and not the old one.
    let login = |password: &'static str| {
        let (server, ada) = (&server, ada.clone());
        async move {
            let mut browser = Browser::new();
            let (_, _, page) = browser
                .send(Method::GET, &authorize_url(server, "local", "en"), None)
                .await;
            let form = [
                ("interaction", hidden(&page, "interaction")),
                ("csrf", hidden(&page, "csrf")),
                ("email", ada),
                ("password", password.to_owned()),
            ];
            let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
            let (status, headers, _) = browser.send(Method::POST, &form_action(&page), Some(&form)).await;
            (status, headers.get("location").cloned().unwrap_or_default())
        }
    };
    let (status, location) = login(new_password).await;
    assert_eq!(status, 303);
    assert!(
        location.starts_with("http://localhost:3000/callback?code="),
        "{location}"
    );
    assert_eq!(login(PASSWORD).await.0, 401, "the old password is gone");

    // The notices link to the form, which works from a mail.
    wait_count(&smtp, &ada, 1, changed).await;
    let notice = mails(&smtp, &ada, CHANGED_SUBJECT).pop().unwrap();
    assert_eq!(notice.links(), [forgot.as_str()]);
    assert!(
        notice
            .html
            .as_deref()
            .unwrap()
            .contains("forgot-password?ui_locales=en"),
        "{:?}",
        notice.html
    );
    for attempt in 1..=3 {
        api.login(&ada, &format!("wrong {attempt}")).await;
    }
    wait_count(&smtp, &ada, 1, locked).await;
    let notice = mails(&smtp, &ada, LOCKED_SUBJECT)
        .into_iter()
        .find(|m| m.subject.ends_with("account was locked"))
        .unwrap();
    assert_eq!(notice.links(), [forgot.as_str()]);
    let (status, _, page) = Browser::new().send(Method::GET, &notice.links()[0], None).await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("Reset your password"), "{page}");

    // The page and the API share one per-IP limit (5 per 15 minutes; the page used 3):
    // two API calls use it up, and the page then asks to wait.
    for n in 1..=2 {
        assert_eq!(api.forgot(&unique(&format!("n{n}"))).await.0, 202);
    }
    let (status, headers, page) = browser.send(Method::POST, &action, Some(&form(&nobody))).await;
    assert_eq!(status, 429, "{page}");
    assert!(headers.contains_key("retry-after"), "{headers:?}");
    assert!(page.contains("Too many attempts. Try again in 15 min."), "{page}");

    assert_eq!(
        mails(&smtp, &ada, RESET_SUBJECT).len(),
        1,
        "the refused forms sent nothing"
    );
    none_to(&smtp, &nobody);
}

#[tokio::test]
async fn without_smtp_the_forgot_page_says_so_and_the_login_page_does_not_link_it() {
    let server = start().await;
    let mut browser = Browser::new();
    let (status, _, login_page) = browser
        .send(Method::GET, &authorize_url(&server, "local", "en"), None)
        .await;
    assert_eq!(status, 200, "{login_page}");
    assert!(
        !login_page.contains("forgot-password") && !login_page.contains("Forgot password?"),
        "{login_page}"
    );
    let forgot = forgot_url(&server, "local", "en");
    let (status, _, page) = browser.send(Method::GET, &forgot, None).await;
    assert_eq!(status, 501, "{page}");
    assert!(
        page.contains("<code>email_not_configured</code>") && page.contains("This service cannot send email"),
        "{page}"
    );
    let csrf = browser.cookies["tenantry_csrf"].clone();
    let form = [("csrf", csrf.as_str()), ("email", "ada@example.com")];
    let action = format!("{}/t/local/forgot-password", server.base);
    let (status, _, page) = browser.send(Method::POST, &action, Some(&form)).await;
    assert_eq!(status, 501, "{page}");
    assert!(page.contains("<code>email_not_configured</code>"), "{page}");
    let (_, _, spanish) = browser
        .send(Method::GET, &forgot_url(&server, "local", "es"), None)
        .await;
    assert!(spanish.contains("Este servicio no puede enviar correos"), "{spanish}");
}

#[tokio::test]
async fn mails_per_recipient_are_limited_in_memory() {
    let Some(smtp) = SmtpServer::start() else { return };
    let server = start().await;
    assert_eq!(server.state.accounts.rate_limiter.backend_name(), "memory");
    mails_per_recipient_are_limited(&server, &smtp).await;
}

#[tokio::test]
async fn mails_per_recipient_are_limited_in_redis() {
    let Some(smtp) = SmtpServer::start() else { return };
    let Some(url) = tenantry_testkit::configured(tenantry_testkit::Service::Redis) else {
        return;
    };
    let server = start_with_config(Some(&format!("redis_url = \"{url}\"\n"))).await;
    assert_eq!(server.state.accounts.rate_limiter.backend_name(), "redis");
    mails_per_recipient_are_limited(&server, &smtp).await;
}

/// Three mails of a flow per address and window; the fourth request is answered the same
/// and sends nothing. Counted by the normalized address, not as typed.
async fn mails_per_recipient_are_limited(server: &TestServer, smtp: &SmtpServer) {
    configure(server, smtp, "local").await;
    let api = Api { server, slug: "local" };
    let (ada, carol) = (unique("ada"), unique("carol"));
    make_user(server, "local", &ada).await;
    make_user(server, "local", &carol).await;
    let (bob, dave) = (unique("bob"), unique("dave"));
    for unverified in [&bob, &dave] {
        assert_eq!(api.register(unverified).await.0, 201);
        wait_for(smtp, unverified, VERIFY_SUBJECT, 1).await;
    }

    // (the request, the account, another account whose mail marks that the requests
    // before it were handled, subject, mails both accounts had before: registration's)
    for (path, who, marker, subject, before) in [
        ("/v1/auth/password/forgot", &ada, &carol, RESET_SUBJECT, 0),
        ("/v1/auth/verify-email/resend", &bob, &dave, VERIFY_SUBJECT, 1),
    ] {
        let ask = |email: &str| api.post(path, json!({ "email": email }));
        let (status, first) = ask(who).await;
        assert_eq!(status, 202, "{first}");
        wait_for(smtp, who, subject, before + 1).await;
        for n in 2..=3 {
            assert_eq!(ask(who).await, (202, first.clone()));
            wait_for(smtp, who, subject, before + n).await;
        }
        // The fourth, typed otherwise: the same answer, no mail.
        assert_eq!(ask(&who.to_uppercase()).await, (202, first.clone()));
        assert_eq!(ask(marker).await.0, 202);
        wait_for(smtp, marker, subject, before + 1).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(
            mails(smtp, who, subject).len(),
            before + 3,
            "the fourth request sent nothing"
        );
    }
}

#[tokio::test]
async fn a_reset_kills_the_links_of_older_mails_on_sqlite() {
    let Some(smtp) = SmtpServer::start() else { return };
    let server = start().await;
    a_reset_kills_the_links_of_older_mails(&server, &smtp, "local").await;
}

#[tokio::test]
async fn a_reset_kills_the_links_of_older_mails_on_postgres() {
    let Some(smtp) = SmtpServer::start() else { return };
    let server = start().await;
    let client = common::postgres::spa_client(&["openid", "email", "offline_access"]);
    let Some(database) = common::postgres::postgres_tenant(&server, "pg", client).await else {
        return;
    };
    a_reset_kills_the_links_of_older_mails(&server, &smtp, "pg").await;
    drop(server);
    database.drop_database().await;
}

async fn a_reset_kills_the_links_of_older_mails(server: &TestServer, smtp: &SmtpServer, slug: &str) {
    configure(server, smtp, slug).await;
    let api = Api { server, slug };
    let ada = unique("ada");
    make_user(server, slug, &ada).await;
    assert_eq!(api.forgot(&ada).await.0, 202);
    wait_for(smtp, &ada, RESET_SUBJECT, 1).await;
    assert_eq!(api.forgot(&ada).await.0, 202);
    wait_for(smtp, &ada, RESET_SUBJECT, 2).await;
    let links: Vec<String> = mails(smtp, &ada, RESET_SUBJECT)
        .iter()
        .map(|m| the_link(m, "reset-password", server, slug))
        .collect();
    assert_ne!(links[0], links[1]);
    for link in &links {
        let (status, _, page) = Browser::new().send(Method::GET, link, None).await;
        assert_eq!(status, 200, "both links work until one is used: {page}");
    }

    let token = |link: &str| query_param(link, "token").unwrap();
    let second = "set with the second link";
    let (status, body) = api
        .post(
            "/v1/auth/password/reset",
            json!({"token": token(&links[1]), "new_password": second}),
        )
        .await;
    assert_eq!(status, 204, "{body}");

    // The first mail's link is dead on both front doors and changes nothing.
    let (status, _, page) = Browser::new().send(Method::GET, &links[0], None).await;
    assert_eq!(status, 400, "{page}");
    assert!(page.contains("This link is not valid"), "{page}");
    let first = "set with the first link";
    let (status, body) = api
        .post(
            "/v1/auth/password/reset",
            json!({"token": token(&links[0]), "new_password": first}),
        )
        .await;
    assert_eq!((status, body["code"].as_str()), (400, Some("invalid_grant")), "{body}");
    assert_eq!(api.login(&ada, first).await.0, 401);
    let (status, tokens) = api.login(&ada, second).await;
    assert_eq!(status, 200, "{tokens}");

    // A password changed by its owner kills the reset links mailed before the change too.
    assert_eq!(api.forgot(&ada).await.0, 202);
    wait_for(smtp, &ada, RESET_SUBJECT, 3).await;
    let third = the_link(&mails(smtp, &ada, RESET_SUBJECT)[2], "reset-password", server, slug);
    let changed = "changed while signed in";
    let bearer = tokens["access_token"].as_str().unwrap();
    let (status, body) = api
        .call(
            Method::POST,
            "/v1/auth/password",
            Some(bearer),
            Some(json!({"current_password": second, "new_password": changed})),
        )
        .await;
    assert_eq!(status, 204, "{body}");
    let (status, body) = api
        .post(
            "/v1/auth/password/reset",
            json!({"token": token(&third), "new_password": first}),
        )
        .await;
    assert_eq!((status, body["code"].as_str()), (400, Some("invalid_grant")), "{body}");
    assert_eq!(api.login(&ada, changed).await.0, 200);
}

/// An administrator's mails: a user made without a password gets a verification link at
/// creation and a reset link on demand, and both links work end to end.
#[tokio::test]
async fn an_administrator_mails_verification_and_reset_links() {
    let Some(smtp) = SmtpServer::start() else { return };
    let server = start().await;
    configure(&server, &smtp, "local").await;
    let api = Api {
        server: &server,
        slug: "local",
    };
    let ada = unique("ada");
    let (status, user) = server
        .admin(
            Method::POST,
            "/v1/admin/tenants/local/users",
            Some(json!({"email": ada, "send_verification_email": true})),
        )
        .await;
    assert_eq!(status, 201, "{user}");
    let id = user["id"].as_str().unwrap();
    let mail = wait_for(&smtp, &ada, VERIFY_SUBJECT, 1).await;
    let verify = the_link(&mail, "verify-email", &server, "local");
    let (status, body) = api
        .post(
            "/v1/auth/verify-email/confirm",
            json!({"token": query_param(&verify, "token").unwrap()}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let send_verification = format!("/v1/admin/tenants/local/users/{id}/send-verification-email");
    let (status, body) = server.admin(Method::POST, &send_verification, None).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (409, Some("email_already_verified")),
        "{body}"
    );

    // No password yet: the reset link is how the user sets one.
    let (status, body) = server
        .admin(
            Method::POST,
            &format!("/v1/admin/tenants/local/users/{id}/send-reset-email"),
            None,
        )
        .await;
    assert_eq!(status, 204, "{body}");
    let mail = wait_for(&smtp, &ada, RESET_SUBJECT, 1).await;
    let reset = the_link(&mail, "reset-password", &server, "local");
    let (status, body) = api
        .post(
            "/v1/auth/password/reset",
            json!({"token": query_param(&reset, "token").unwrap(), "new_password": PASSWORD}),
        )
        .await;
    assert_eq!(status, 204, "{body}");
    let (status, tokens) = api.login(&ada, PASSWORD).await;
    assert_eq!(status, 200, "{tokens}");

    // Disabled users are 409 and unknown users 404; nothing is sent.
    let (status, body) = server
        .admin(
            Method::POST,
            &format!("/v1/admin/tenants/local/users/{id}/disable"),
            Some(json!({"reason": "left the company"})),
        )
        .await;
    assert_eq!((status, body["status"].as_str()), (200, Some("disabled")), "{body}");
    assert_eq!(api.login(&ada, PASSWORD).await.0, 401, "a disabled user cannot sign in");
    let (status, _) = api.call(Method::GET, "/v1/auth/me", Some(access(&tokens)), None).await;
    assert_eq!(status, 401, "the sessions ended");
    let (status, body) = api
        .post(
            "/v1/auth/refresh",
            json!({"refresh_token": tokens["refresh_token"], "client_id": "demo-spa"}),
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("invalid_grant")),
        "the refresh tokens ended: {body}"
    );
    let (status, body) = server
        .admin(
            Method::POST,
            &format!("/v1/admin/tenants/local/users/{id}/send-reset-email"),
            None,
        )
        .await;
    assert_eq!((status, body["code"].as_str()), (409, Some("user_disabled")), "{body}");
    let unknown = format!(
        "/v1/admin/tenants/local/users/{}/send-reset-email",
        uuid::Uuid::now_v7()
    );
    assert_eq!(server.admin(Method::POST, &unknown, None).await.0, 404);
    assert_eq!(mails(&smtp, &ada, RESET_SUBJECT).len(), 1);
    let (status, body) = server
        .admin(
            Method::POST,
            &format!("/v1/admin/tenants/local/users/{id}/enable"),
            None,
        )
        .await;
    assert_eq!((status, body["status"].as_str()), (200, Some("active")), "{body}");
    assert_eq!(api.login(&ada, PASSWORD).await.0, 200);
}

/// Without SMTP settings the administrator's mails are 501 and a user that was to get a
/// verification link is not made.
#[tokio::test]
async fn without_smtp_an_administrator_cannot_mail_users() {
    let server = start().await;
    let api = Api {
        server: &server,
        slug: "local",
    };
    let ada = unique("ada");
    let (status, body) = server
        .admin(
            Method::POST,
            "/v1/admin/tenants/local/users",
            Some(json!({"email": ada, "password": PASSWORD, "send_verification_email": true})),
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (501, Some("email_not_configured")),
        "{body}"
    );
    assert!(!api.exists(&ada).await, "refused before anything was made");
    let (status, user) = server
        .admin(
            Method::POST,
            "/v1/admin/tenants/local/users",
            Some(json!({"email": ada, "password": PASSWORD})),
        )
        .await;
    assert_eq!(status, 201, "{user}");
    let id = user["id"].as_str().unwrap();
    for action in ["send-verification-email", "send-reset-email"] {
        let path = format!("/v1/admin/tenants/local/users/{id}/{action}");
        let (status, body) = server.admin(Method::POST, &path, None).await;
        assert_eq!(
            (status, body["code"].as_str()),
            (501, Some("email_not_configured")),
            "{action}: {body}"
        );
    }
}

/// Token checks are limited per address of the caller, on the API and the link pages alike
/// (one budget): past it, 429 with `Retry-After` before any token is looked up.
#[tokio::test]
async fn token_checks_are_limited_per_address_of_the_caller() {
    let server = start().await;
    let api = Api {
        server: &server,
        slug: "local",
    };
    for i in 0..29 {
        let (status, body) = api
            .post("/v1/auth/verify-email/confirm", json!({"token": format!("guess-{i}")}))
            .await;
        assert_eq!((status, body["code"].as_str()), (400, Some("invalid_grant")), "{body}");
    }
    let page = format!("{}/t/local/reset-password?token=guess", server.base);
    let (status, _, html) = Browser::new().send(Method::GET, &page, None).await;
    assert_eq!(status, 400, "the 30th check is still looked up: {html}");
    let (status, body) = api
        .post(
            "/v1/auth/password/reset",
            json!({"token": "guess", "new_password": "a long new password"}),
        )
        .await;
    assert_eq!((status, body["code"].as_str()), (429, Some("rate_limited")), "{body}");
    let (status, headers, html) = Browser::new().send(Method::GET, &page, None).await;
    assert_eq!(status, 429, "{html}");
    assert!(
        headers
            .get("retry-after")
            .is_some_and(|s| s.parse::<u64>().unwrap() > 0)
    );
    assert!(html.contains("rate_limited"), "the hosted error page: {html}");
}

/// A first-party app with its own verify and reset pages: headless calls that name it get
/// links to those pages (with the token added to their query), which the app completes
/// through the API; calls that do not name it keep the hosted pages.
#[tokio::test]
async fn links_open_the_named_first_party_apps_own_pages() {
    let Some(smtp) = SmtpServer::start() else { return };
    let server = start().await;
    configure(&server, &smtp, "local").await;
    let api = Api {
        server: &server,
        slug: "local",
    };
    let app = |client_id: &str, first_party: bool| {
        json!({"client_id": client_id, "name": "Links app", "client_type": "public", "first_party": first_party,
            "redirect_uris": ["http://localhost:3000/cb"], "scopes": ["openid", "email"],
            "verify_email_url": "https://app.example.com/verify?from=mail",
            "reset_password_url": "https://app.example.com/auth/reset"})
    };
    let (status, body) = server
        .admin(
            Method::POST,
            "/v1/admin/tenants/local/clients",
            Some(app("third-party", false)),
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (422, Some("validation_failed")),
        "{body}"
    );
    let (status, body) = server
        .admin(
            Method::POST,
            "/v1/admin/tenants/local/clients",
            Some(app("links-app", true)),
        )
        .await;
    assert_eq!(status, 201, "{body}");

    let ada = unique("ada");
    let (status, body) = api
        .post(
            "/v1/auth/register",
            json!({"email": ada, "password": PASSWORD, "client_id": "links-app"}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let mail = wait_for(&smtp, &ada, VERIFY_SUBJECT, 1).await;
    let links = mail.links();
    assert_eq!(links.len(), 1, "{:?}", mail.text);
    assert!(
        links[0].starts_with("https://app.example.com/verify?from=mail&token="),
        "{}",
        links[0]
    );
    let token = query_param(&links[0], "token").unwrap();
    assert!(mail.html.as_deref().unwrap().contains(&token));
    let (status, body) = api.post("/v1/auth/verify-email/confirm", json!({"token": token})).await;
    assert_eq!((status, body["email_verified"].as_bool()), (200, Some(true)), "{body}");

    assert_eq!(
        api.post(
            "/v1/auth/password/forgot",
            json!({"email": ada, "client_id": "links-app"})
        )
        .await
        .0,
        202
    );
    let mail = wait_for(&smtp, &ada, RESET_SUBJECT, 1).await;
    let link = &mail.links()[0];
    assert!(link.starts_with("https://app.example.com/auth/reset?token="), "{link}");
    let changed = "set through the app's page";
    let (status, body) = api
        .post(
            "/v1/auth/password/reset",
            json!({"token": query_param(link, "token").unwrap(), "new_password": changed}),
        )
        .await;
    assert_eq!(status, 204, "{body}");
    assert_eq!(api.login(&ada, changed).await.0, 200);

    // Without a client the hosted page; a client that may not use these calls is refused.
    assert_eq!(api.forgot(&ada).await.0, 202);
    let mail = wait_for(&smtp, &ada, RESET_SUBJECT, 2).await;
    the_link(&mail, "reset-password", &server, "local");
    let (status, body) = api
        .post("/v1/auth/password/forgot", json!({"email": ada, "client_id": "nope"}))
        .await;
    assert_eq!((status, body["code"].as_str()), (400, Some("invalid_client")), "{body}");
}
