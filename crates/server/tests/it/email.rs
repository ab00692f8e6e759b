//! Mail over a real SMTP server (Python `aiosmtpd`, see `common::smtp`): the admin test
//! mail in the tenant's language with a text and an HTML part, tenant overrides, a new
//! transport after a settings change, 501 without SMTP, 502 for every kind of failed send
//! (nothing delivered), and the SMTP password, links and addresses kept out of responses,
//! files and logs.
//!
//! The tests that need the SMTP server skip (recorded, see `tenantry_testkit`) when
//! `TENANTRY_TEST_SMTP_PYTHON` is unset; CI sets it, and then a server that cannot start
//! fails them.

use std::time::Duration;

use crate::common;
use crate::common::smtp::{FROM_ADDRESS, SmtpOptions, SmtpServer};
use crate::common::{TestServer, start};
use reqwest::Method;
use serde_json::{Value, json};
use tenantry_controlplane::model::{Language, MailTemplateKind};
use tenantry_mail::MailVars;
use tenantry_server::error::ErrorCode;

const WAIT: Duration = Duration::from_secs(15);

/// What the process logged while a test held a capture (every test here takes one
/// before it starts its server: `let _logs = common::logs::capture();`).
fn logs() -> String {
    common::logs::captured()
}

/// The mail lines of the log (for failure messages).
fn mail_log() -> String {
    logs()
        .lines()
        .filter(|l| l.contains("mail "))
        .collect::<Vec<_>>()
        .join("\n")
}

async fn create_tenant(server: &TestServer, slug: &str, settings: Value) -> Value {
    let (status, body) = server
        .admin(
            Method::POST,
            "/v1/admin/tenants",
            Some(json!({"slug": slug, "display_name": format!("Tenant {slug}"), "settings": settings})),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    body
}

async fn patch_settings(server: &TestServer, slug: &str, settings: Value) -> (u16, Value) {
    server
        .admin(
            Method::PATCH,
            &format!("/v1/admin/tenants/{slug}"),
            Some(json!({ "settings": settings })),
        )
        .await
}

async fn test_mail(server: &TestServer, slug: &str, body: Value) -> (u16, Value) {
    server
        .admin(
            Method::POST,
            &format!("/v1/admin/tenants/{slug}/email/test"),
            Some(body),
        )
        .await
}

#[tokio::test]
async fn the_test_mail_arrives_in_the_tenant_language_with_text_and_html() {
    let _logs = common::logs::capture();
    let Some(smtp) = SmtpServer::start_with(SmtpOptions {
        auth: Some(("mailer".into(), "s3cret-pw".into())),
        ..Default::default()
    }) else {
        return;
    };
    let server = start().await;
    create_tenant(
        &server,
        "correo",
        json!({"language": "es", "branding": {"name": "Acme & Ibérica"}, "smtp": smtp.smtp_settings()}),
    )
    .await;

    let (status, body) = test_mail(&server, "correo", json!({"to": "ada@example.com"})).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body, json!({"to": "ada@example.com", "language": "es"}));
    let mail = smtp.wait_for_message(WAIT).await;
    assert_eq!(mail.content_type, "multipart/alternative");
    assert_eq!(mail.subject, "Mensaje de prueba de Acme & Ibérica");
    assert_eq!(mail.rcpt_to, ["ada@example.com"]);
    assert_eq!(mail.mail_from, FROM_ADDRESS);
    assert_eq!(
        mail.auth_login.as_deref(),
        Some("mailer"),
        "logged in with the opened password"
    );
    assert!(
        mail.from.contains("Acme & Ibérica") && mail.from.contains(FROM_ADDRESS),
        "{}",
        mail.from
    );
    assert!(mail.to.contains("ada@example.com"));
    let text = mail.text.as_deref().expect("a text part");
    assert!(text.contains("ha llegado a ada@example.com"), "{text}");
    assert!(
        text.contains("http://") && text.contains("/t/correo"),
        "names the issuer: {text}"
    );
    let html = mail.html.as_deref().expect("an html part");
    assert!(html.contains("<strong>ada@example.com</strong>"), "{html}");
    assert!(
        html.contains("Acme &amp; Ibérica") && !html.contains("Acme & Ibérica"),
        "escaped: {html}"
    );
    assert!(html.contains("<html lang=\"es\">"));

    // Another language on request.
    let (status, _) = test_mail(&server, "correo", json!({"to": "ada@example.com", "language": "en"})).await;
    assert_eq!(status, 202);
    let mail = smtp.wait_for_message(WAIT).await;
    assert_eq!(mail.subject, "Test message from Acme & Ibérica");
    assert!(mail.text.unwrap().contains("this message reached ada@example.com"));

    // The tenant's override wins for its language; its HTML is auto-escaped.
    let override_es = json!({"mail_templates": {"es": {"test": {
        "subject": "Prueba propia de {{ tenant_name }}",
        "text": "Texto propio para {{ user_email }}",
        "html": "<p>HTML propio para {{ user_email }} de {{ tenant_name }}</p>",
    }}}});
    let (status, body) = patch_settings(&server, "correo", override_es).await;
    assert_eq!(status, 200, "{body}");
    let (status, _) = test_mail(&server, "correo", json!({"to": "bob@example.com"})).await;
    assert_eq!(status, 202);
    let mail = smtp.wait_for_message(WAIT).await;
    assert_eq!(mail.subject, "Prueba propia de Acme & Ibérica");
    assert_eq!(
        mail.text.as_deref().map(str::trim),
        Some("Texto propio para bob@example.com")
    );
    assert_eq!(
        mail.html.as_deref().map(str::trim),
        Some("<p>HTML propio para bob@example.com de Acme &amp; Ibérica</p>")
    );
    assert_eq!(mail.content_type, "multipart/alternative");
    // English has no override: the built-in one.
    let (status, _) = test_mail(&server, "correo", json!({"to": "bob@example.com", "language": "en"})).await;
    assert_eq!(status, 202);
    assert_eq!(
        smtp.wait_for_message(WAIT).await.subject,
        "Test message from Acme & Ibérica"
    );

    // An override that does not render is refused when saved; the stored one stays.
    let broken = json!({"mail_templates": {"es": {"test": {"subject": "x", "text": "x", "html": "{% if %}"}}}});
    let (status, body) = patch_settings(&server, "correo", broken).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["errors"][0]["field"], "settings.mail_templates.es.test.html");
    let (_, tenant) = server.admin(Method::GET, "/v1/admin/tenants/correo", None).await;
    assert_eq!(
        tenant["settings"]["mail_templates"]["es"]["test"]["subject"],
        "Prueba propia de {{ tenant_name }}"
    );
    assert_eq!(smtp.messages().len(), 4, "one message per accepted request");
}

#[tokio::test]
async fn a_settings_change_sends_through_a_new_transport() {
    let _logs = common::logs::capture();
    let (Some(first), Some(second)) = (SmtpServer::start(), SmtpServer::start()) else {
        return;
    };
    let server = start().await;
    first.configure_tenant(&server, "local").await;
    let (status, body) = test_mail(&server, "local", json!({"to": "ada@example.com"})).await;
    assert_eq!(status, 202, "{body}");
    first.wait_for_message(WAIT).await;
    assert_eq!(server.state.accounts.mailer.cached_transports(), 1);

    second.configure_tenant(&server, "local").await;
    let (status, body) = test_mail(&server, "local", json!({"to": "ada@example.com"})).await;
    assert_eq!(status, 202, "{body}");
    second.wait_for_message(WAIT).await;
    assert_eq!(first.messages().len(), 1, "the old server got nothing more");
    assert_eq!(
        server.state.accounts.mailer.cached_transports(),
        1,
        "the old transport was dropped"
    );

    // Removing the SMTP settings removes the capability and the cached transport.
    let (status, body) = patch_settings(&server, "local", json!({"smtp": null})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(server.state.accounts.mailer.cached_transports(), 0);
    let (status, body) = test_mail(&server, "local", json!({"to": "ada@example.com"})).await;
    assert_eq!((status, body["code"].as_str()), (501, Some("email_not_configured")));
    assert_eq!(second.messages().len(), 1);
}

/// Needs no SMTP server: runs everywhere.
#[tokio::test]
async fn the_test_mail_needs_smtp_settings_an_address_and_an_admin() {
    let _logs = common::logs::capture();
    let server = start().await;
    let (status, body) = test_mail(&server, "local", json!({"to": "ada@example.com"})).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (501, Some("email_not_configured")),
        "{body}"
    );
    assert_eq!(body["status"], 501);

    let (status, body) = test_mail(&server, "nope", json!({"to": "ada@example.com"})).await;
    assert_eq!((status, body["code"].as_str()), (404, Some("tenant_not_found")));
    let response = server
        .http
        .post(format!("{}/v1/admin/tenants/local/email/test", server.base))
        .json(&json!({"to": "ada@example.com"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);

    // With SMTP settings (nothing listens on port 9: these requests never get that far).
    let smtp = json!({"host": "127.0.0.1", "port": 9, "tls": "none", "from_address": "no-reply@tenantry.test"});
    let (status, body) = patch_settings(&server, "local", json!({ "smtp": smtp })).await;
    assert_eq!(status, 200, "{body}");
    for bad in ["not-an-address", "ada@", "ada@example.com\r\nBcc: eve@example.com", ""] {
        let (status, body) = test_mail(&server, "local", json!({ "to": bad })).await;
        assert_eq!(
            (status, body["code"].as_str()),
            (422, Some("validation_failed")),
            "{bad:?}: {body}"
        );
        assert_eq!(body["errors"][0]["field"], "to");
    }
    let (status, body) = test_mail(&server, "local", json!({"to": "ada@example.com", "cc": "x@y.z"})).await;
    assert_eq!(
        (status, body["errors"][0]["field"].as_str()),
        (422, Some("cc")),
        "{body}"
    );
    let (status, body) = test_mail(&server, "local", json!({"to": "ada@example.com", "language": "fr"})).await;
    assert_eq!(
        (status, body["errors"][0]["field"].as_str()),
        (422, Some("language")),
        "{body}"
    );

    // A sender address the mail library would not accept is refused when saved.
    let (status, body) = patch_settings(
        &server,
        "local",
        json!({"smtp": {"from_address": "ada,bob@example.com"}}),
    )
    .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["errors"][0]["field"], "settings.smtp.from_address");
}

#[tokio::test]
async fn a_send_the_server_does_not_take_is_502_and_delivers_nothing() {
    let _logs = common::logs::capture();
    let Some(smtp) = SmtpServer::start() else { return };
    let server = start().await;
    smtp.configure_tenant(&server, "local").await;
    let (status, _) = test_mail(&server, "local", json!({"to": "ada@example.com"})).await;
    assert_eq!(status, 202);
    smtp.wait_for_message(WAIT).await;

    // The server goes away; the cached transport's pooled connection is dead too.
    let (_, before) = server.admin(Method::GET, "/v1/admin/tenants/local", None).await;
    smtp.stop();
    let (status, body) = test_mail(&server, "local", json!({"to": "ada@example.com"})).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (502, Some("email_send_failed")),
        "{body}"
    );
    assert_eq!(body["title"], "The mail server did not accept the message");
    assert!(body["detail"].as_str().unwrap().contains("cannot be reached"), "{body}");
    let (_, after) = server.admin(Method::GET, "/v1/admin/tenants/local", None).await;
    assert_eq!(before, after, "the tenant is unchanged");

    // Wrong credentials: refused by the server (535), nothing delivered.
    let Some(guarded) = SmtpServer::start_with(SmtpOptions {
        auth: Some(("mailer".into(), "right-pw".into())),
        ..Default::default()
    }) else {
        return;
    };
    let mut settings = guarded.smtp_settings();
    settings["password"] = json!("wrong-pw");
    let (status, body) = patch_settings(&server, "local", json!({ "smtp": settings })).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = test_mail(&server, "local", json!({"to": "ada@example.com"})).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (502, Some("email_send_failed")),
        "{body}"
    );
    assert!(body["detail"].as_str().unwrap().contains("535"), "{body}");
    assert!(guarded.messages().is_empty());
    // The right password then works (a new transport for the new settings).
    guarded.configure_tenant(&server, "local").await;
    let (status, _) = test_mail(&server, "local", json!({"to": "ada@example.com"})).await;
    assert_eq!(status, 202);
    assert_eq!(
        guarded.wait_for_message(WAIT).await.auth_login.as_deref(),
        Some("mailer")
    );

    // A recipient the server refuses (550).
    let Some(picky) = SmtpServer::start_with(SmtpOptions {
        reject_domains: vec!["blocked.example".into()],
        ..Default::default()
    }) else {
        return;
    };
    picky.configure_tenant(&server, "local").await;
    let (status, body) = test_mail(&server, "local", json!({"to": "eve@blocked.example"})).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (502, Some("email_send_failed")),
        "{body}"
    );
    assert!(
        body["detail"].as_str().unwrap().contains("550"),
        "{body}\n{}",
        mail_log()
    );
    assert!(
        !body.to_string().contains("eve@"),
        "the detail does not echo the address: {body}"
    );
    assert!(picky.messages().is_empty());

    // `starttls` is required, never downgraded: a server without STARTTLS gets nothing.
    let mut settings = picky.smtp_settings();
    settings["tls"] = json!("starttls");
    let (status, body) = patch_settings(&server, "local", json!({ "smtp": settings })).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = test_mail(&server, "local", json!({"to": "ada@example.com"})).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (502, Some("email_send_failed")),
        "{body}"
    );
    assert!(body["detail"].as_str().unwrap().contains("STARTTLS"), "{body}");
    // Implicit TLS against a plain server fails the handshake.
    settings["tls"] = json!("tls");
    let (status, body) = patch_settings(&server, "local", json!({ "smtp": settings })).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = test_mail(&server, "local", json!({"to": "ada@example.com"})).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (502, Some("email_send_failed")),
        "{body}"
    );
    assert!(picky.messages().is_empty(), "nothing was delivered in plaintext");
}

#[tokio::test]
async fn the_smtp_password_links_and_addresses_stay_out_of_responses_files_and_logs() {
    let _logs = common::logs::capture();
    let password = format!("canary-pw-{}", uuid::Uuid::new_v4().simple());
    let Some(smtp) = SmtpServer::start_with(SmtpOptions {
        auth: Some(("mailer".into(), password.clone())),
        ..Default::default()
    }) else {
        return;
    };
    let server = start().await;
    let created = create_tenant(&server, "secreto", json!({ "smtp": smtp.smtp_settings() })).await;
    assert_eq!(
        created["settings"]["smtp"]["password"],
        serde_json::json!({"set": true})
    );
    assert!(!created.to_string().contains(&password));
    let (status, shown) = server.admin(Method::GET, "/v1/admin/tenants/secreto", None).await;
    assert_eq!(status, 200);
    assert_eq!(shown["settings"]["smtp"]["password"], serde_json::json!({"set": true}));
    assert!(!shown.to_string().contains(&password));
    let file = server.state.config.fs_root.join("tenants/secreto/tenant.json");
    let stored = std::fs::read_to_string(&file).unwrap();
    assert!(
        stored.contains("\"password\": \"tsb1.") || stored.contains("\"password\":\"tsb1."),
        "{stored}"
    );
    assert!(!stored.contains(&password));

    // A verification mail through the library API, as the account flows send it.
    let token = format!("tok{}", uuid::Uuid::new_v4().simple());
    let link = format!("https://id.example/t/secreto/verify?token={token}&lang=en");
    let local_part = format!("leak-check-{}", uuid::Uuid::new_v4().simple());
    let to = format!("{local_part}@example.com");
    let vars = MailVars {
        user_email: to.clone(),
        link: Some(link.clone()),
        expires_in: Some(Duration::from_secs(24 * 3600)),
    };
    let ctx = server.ctx("secreto");
    server
        .state
        .accounts
        .mailer
        .send(
            &server.state.secrets,
            &ctx,
            &to,
            MailTemplateKind::VerifyEmail,
            Language::En,
            &vars,
        )
        .await
        .unwrap();
    let mail = smtp.wait_for_message_to(&to, WAIT).await;
    assert_eq!(mail.auth_login.as_deref(), Some("mailer"));
    assert_eq!(mail.subject, "Verify your email address for Tenant secreto");
    assert_eq!(mail.links(), std::slice::from_ref(&link));
    assert!(mail.text.as_deref().unwrap().contains("The link expires in 24 hours."));
    // minijinja escapes `&` and `/` in HTML; an href holding entities means the same link.
    let html = mail.html.as_deref().unwrap();
    let escaped = link.replace('&', "&amp;").replace('/', "&#x2f;");
    assert!(html.contains(&format!("href=\"{escaped}\"")), "{html}");
    assert!(!html.contains(&link), "never unescaped in HTML");
    assert!(!mail.raw.contains(&password));

    // The same mail with the server gone: an explicit error naming neither link nor address.
    smtp.stop();
    let err = server
        .state
        .accounts
        .mailer
        .send(
            &server.state.secrets,
            &ctx,
            &to,
            MailTemplateKind::VerifyEmail,
            Language::En,
            &vars,
        )
        .await
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::EmailSendFailed);
    assert!(
        !err.detail.contains(&token) && !err.detail.contains(&local_part),
        "{}",
        err.detail
    );
    assert!(!format!("{:?}", server.state.accounts.mailer).contains(&password));

    let logs = logs();
    assert!(
        logs.contains("mail sent") && logs.contains("mail not sent"),
        "both outcomes are logged"
    );
    assert!(logs.contains("recipient_domain=\"example.com\""));
    for secret in [&password, &token, &local_part] {
        assert!(!logs.contains(secret.as_str()), "the log holds {secret}");
    }
}
