//! Outgoing mail: one SMTP transport per tenant, built from its `settings.smtp`, and the
//! mail templates (built-in English and Spanish, tenant overrides first).
//!
//! This crate owns the mailer ([`Mailer`]), template rendering ([`render`]), the check of
//! the mail settings an admin stores ([`check_settings`]) and the language rule pages and
//! mails share ([`language`]). It never reads a request or writes a response (no axum),
//! never decides who gets a mail or why (the account flows in `tenantry-accounts` do), and
//! never logs an address, link or token.
//!
//! - A tenant without `settings.smtp` answers 501 `email_not_configured`; there is no
//!   global SMTP server to fall back to.
//! - TLS: `none` (plain SMTP), `starttls` (STARTTLS is required: a server that does not
//!   offer it fails the send, never a silent downgrade) or `tls` (implicit TLS). Server
//!   certificates are checked against the platform's roots (rustls).
//! - The password is sealed in the settings and opened only to build the transport; it is
//!   never logged (lettre's `tracing` feature, which logs the SMTP dialog, stays off).
//! - Transports (and their pooled connections) are cached per tenant under a fingerprint
//!   of the tenant id and its SMTP settings, so changed settings build a new transport at
//!   the next send; a control-plane subscriber drops transports of changed or deleted
//!   tenants.
//! - A message the server does not take answers 502 `email_send_failed`. Logs name the
//!   tenant, the template and the recipient's domain, never the address, link or token.
//!
//! Every mail is `multipart/alternative` with a text and an HTML part. Templates are
//! minijinja; the built-in ones are files under `templates/mail/` (`layout.html`, and
//! `<lang>/<kind>.subject|txt|html`), compiled in with `include_str!`. The HTML part is
//! auto-escaped, the subject and text are not (they are not HTML) and the subject is
//! folded onto one line. Variables: `tenant_name` (branding name, else display name),
//! `issuer`, `user_email`, `link` (built by the caller), `expires_minutes`,
//! `expires_hours` (rounded up), `expires_text` ("2 hours", "30 minutos"; the units come
//! from the message catalogue, `tenantry_messages`) and `primary_color`. A tenant override
//! (`settings.mail_templates.<lang>.<kind>`) replaces all three parts; its HTML may
//! `{% extends "layout.html" %}` and fill `{% block content %}`.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::PoolConfig;
use lettre::transport::smtp::authentication::Credentials;
use lettre::{Address, AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use minijinja::{AutoEscape, Environment, context};
use tenantry_controlplane::model::{
    Language, MailTemplate, MailTemplateKind, SmtpSettings, SmtpTls, Tenant, TenantSettings,
};
use tenantry_controlplane::writer::{Change, Subscriber};
use tenantry_controlplane::{Command, Snapshot};
use tenantry_crypto::{SealContext, SecretBox};
use tenantry_messages::Key;
use uuid::Uuid;

use tenantry_errors::{ApiError, ErrorCode};
use tenantry_tenancy::{Capability, TenantContext};

/// Default for `limits.smtp_timeout_secs`: how long one whole SMTP conversation
/// (connect, greeting, STARTTLS, authentication, the message) may take before the send
/// fails. lettre's own timeout does not cover every step (a server that accepts and never
/// greets waits on it forever), so the whole send runs under this deadline.
pub const SMTP_TIMEOUT: Duration = Duration::from_secs(15);

/// Every template kind, in catalogue order.
pub const KINDS: [MailTemplateKind; 5] = [
    MailTemplateKind::VerifyEmail,
    MailTemplateKind::ResetPassword,
    MailTemplateKind::PasswordChanged,
    MailTemplateKind::AccountLocked,
    MailTemplateKind::Test,
];

/// Every language with built-in templates.
pub const LANGUAGES: [Language; 2] = [Language::En, Language::Es];

/// What the caller knows about one mail; the tenant's name and issuer come from its context.
#[derive(Debug, Clone, Default)]
pub struct MailVars {
    /// The user's address as the user knows it (usually the recipient).
    pub user_email: String,
    /// The action link (verification, reset), built by the caller. Never logged.
    pub link: Option<String>,
    /// How long the link stays valid, or (account locked) how long the lock lasts.
    pub expires_in: Option<Duration>,
}

/// A rendered mail: a one-line subject, a text part and an HTML part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderedMail {
    pub subject: String,
    pub text: String,
    pub html: String,
}

/// Picks a language: the first tag of `preferred` (space-separated, as OIDC's
/// `ui_locales`, or a user's locale) that we speak, else `fallback` (the tenant's). The
/// one rule for hosted pages and mails.
pub fn language(preferred: Option<&str>, fallback: Language) -> Language {
    preferred
        .unwrap_or("")
        .split(' ')
        .find_map(
            |tag| match tag.split('-').next().unwrap_or("").to_ascii_lowercase().as_str() {
                "es" => Some(Language::Es),
                "en" => Some(Language::En),
                _ => None,
            },
        )
        .unwrap_or(fallback)
}

/// Parses a recipient address: 422 `validation_failed` on field `to` when malformed.
pub fn parse_recipient(to: &str) -> Result<Address, ApiError> {
    to.parse::<Address>()
        .map_err(|_| ApiError::field("to", "must be an email address (local@domain)"))
}

/// The part of an address after the last `@`: all that logs may say about a recipient.
pub fn recipient_domain(to: &str) -> &str {
    to.rsplit_once('@').map(|(_, domain)| domain).unwrap_or("")
}

/// Per-tenant SMTP transports. Cheap to clone (shared cache).
#[derive(Clone)]
pub struct Mailer {
    transports: Arc<Mutex<HashMap<Uuid, CachedTransport>>>,
    /// Deadline of one whole send (`limits.smtp_timeout_secs`).
    timeout: Duration,
}

impl Default for Mailer {
    fn default() -> Self {
        Self::with_timeout(SMTP_TIMEOUT)
    }
}

struct CachedTransport {
    fingerprint: [u8; 32],
    transport: AsyncSmtpTransport<Tokio1Executor>,
}

impl std::fmt::Debug for Mailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Transports hold opened credentials: never print them.
        f.debug_struct("Mailer")
            .field("cached_transports", &self.cached_transports())
            .finish()
    }
}

impl Mailer {
    pub fn new() -> Self {
        Self::default()
    }

    /// A mailer whose sends each end within `timeout`.
    pub fn with_timeout(timeout: Duration) -> Self {
        Self {
            transports: Arc::default(),
            timeout,
        }
    }

    /// How many tenant transports are cached.
    pub fn cached_transports(&self) -> usize {
        self.transports.lock().expect("mailer cache poisoned").len()
    }

    /// Renders `kind` in `lang` (tenant override first) and sends it to `to` through the
    /// tenant's SMTP server.
    ///
    /// Errors: 501 `email_not_configured` without `settings.smtp`; 422 `validation_failed`
    /// (field `to`) for a malformed address; 500 when a tenant override does not render;
    /// 502 `email_send_failed` when the SMTP server cannot be reached, refuses TLS or the
    /// credentials, or does not accept the message (the detail names which, without the
    /// server's text). Nothing is retried.
    pub async fn send(
        &self,
        secrets: &SecretBox,
        ctx: &TenantContext,
        to: &str,
        kind: MailTemplateKind,
        lang: Language,
        vars: &MailVars,
    ) -> Result<(), ApiError> {
        ctx.require(Capability::Email)?;
        let tenant = &ctx.entry.tenant;
        let smtp = tenant.settings.smtp.as_ref().ok_or_else(ApiError::internal)?;
        let recipient = parse_recipient(to)?;
        let mail = render(tenant, &ctx.issuer, kind, lang, vars)?;
        let message = build_message(tenant, smtp, recipient, mail)?;
        let transport = self.transport(secrets, tenant, smtp)?;
        let kind_name = kind.as_str();
        let domain = recipient_domain(to);
        let sent = match tokio::time::timeout(self.timeout, transport.send(message)).await {
            Ok(sent) => sent.map_err(|e| SendFailure::of(&e)),
            Err(_) => Err(SendFailure::timed_out()),
        };
        match sent {
            Ok(_) => {
                metrics::counter!("mail_sent_total", "kind" => kind_name, "outcome" => "sent").increment(1);
                tracing::info!(tenant = %tenant.slug, kind = kind_name, recipient_domain = domain, "mail sent");
                Ok(())
            }
            Err(failure) => {
                metrics::counter!("mail_sent_total", "kind" => kind_name, "outcome" => "failed").increment(1);
                // The server's reply text may quote the recipient: log the code only.
                tracing::warn!(
                    tenant = %tenant.slug,
                    kind = kind_name,
                    recipient_domain = domain,
                    failure = failure.what,
                    smtp_code = failure.code.as_deref().unwrap_or("-"),
                    cause = failure.cause.as_deref().unwrap_or("-"),
                    "mail not sent"
                );
                Err(ApiError::new(ErrorCode::EmailSendFailed, failure.detail()))
            }
        }
    }

    /// The tenant's cached transport, or a new one when there is none or its settings changed.
    fn transport(
        &self,
        secrets: &SecretBox,
        tenant: &Tenant,
        smtp: &SmtpSettings,
    ) -> Result<AsyncSmtpTransport<Tokio1Executor>, ApiError> {
        let fingerprint = fingerprint(tenant.id, smtp);
        let mut cache = self.transports.lock().expect("mailer cache poisoned");
        if let Some(cached) = cache.get(&tenant.id)
            && cached.fingerprint == fingerprint
        {
            return Ok(cached.transport.clone());
        }
        let transport = build_transport(secrets, tenant.id, smtp, self.timeout)?;
        cache.insert(
            tenant.id,
            CachedTransport {
                fingerprint,
                transport: transport.clone(),
            },
        );
        Ok(transport)
    }

    /// Drops transports whose tenant is gone or whose SMTP settings differ in `snapshot`.
    fn prune(&self, snapshot: &Snapshot) {
        let current: HashMap<Uuid, [u8; 32]> = snapshot
            .tenants
            .values()
            .filter_map(|e| Some((e.tenant.id, fingerprint(e.tenant.id, e.tenant.settings.smtp.as_ref()?))))
            .collect();
        self.transports
            .lock()
            .expect("mailer cache poisoned")
            .retain(|id, cached| current.get(id) == Some(&cached.fingerprint));
    }
}

impl Subscriber for Mailer {
    fn on_change(&self, change: &Change<'_>, snapshot: &Arc<Snapshot>) {
        match change {
            Change::Applied(Command::UpdateTenant { .. } | Command::DeleteTenant { .. }) | Change::Reloaded => {
                self.prune(snapshot)
            }
            Change::Applied(_) => {}
        }
    }
}

/// SHA-256 over the tenant id and its SMTP settings (the sealed password included, which
/// changes whenever the password is set again).
fn fingerprint(tenant: Uuid, smtp: &SmtpSettings) -> [u8; 32] {
    let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    ctx.update(tenant.as_bytes());
    ctx.update(&serde_json::to_vec(smtp).expect("smtp settings serialize"));
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}

fn build_transport(
    secrets: &SecretBox,
    tenant: Uuid,
    smtp: &SmtpSettings,
    timeout: Duration,
) -> Result<AsyncSmtpTransport<Tokio1Executor>, ApiError> {
    let tls_failed = |e: lettre::transport::smtp::Error| {
        tracing::warn!(tenant = %tenant, error = %e, "SMTP TLS parameters cannot be built");
        ApiError::new(
            ErrorCode::EmailSendFailed,
            "the TLS parameters for the mail server cannot be built (check settings.smtp.host)",
        )
    };
    let builder = match smtp.tls {
        SmtpTls::None => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(smtp.host.as_str()),
        SmtpTls::Starttls => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&smtp.host).map_err(tls_failed)?,
        SmtpTls::Tls => AsyncSmtpTransport::<Tokio1Executor>::relay(&smtp.host).map_err(tls_failed)?,
    };
    let mut builder = builder
        .port(smtp.port)
        .timeout(Some(timeout))
        .pool_config(PoolConfig::new().max_size(4).idle_timeout(Duration::from_secs(60)));
    if let (Some(username), Some(sealed)) = (&smtp.username, &smtp.password) {
        let password = secrets
            .open(SealContext::new(&tenant.to_string(), "smtp.password"), &sealed.0)
            .map_err(|e| {
                tracing::error!(tenant = %tenant, error = %e, "settings.smtp.password does not open");
                ApiError::new(
                    ErrorCode::EmailSendFailed,
                    "the SMTP password cannot be opened (secret_unreadable): set it again or reseal",
                )
            })?;
        builder = builder.credentials(Credentials::new(username.clone(), password.as_str().to_owned()));
    }
    Ok(builder.build())
}

fn build_message(
    tenant: &Tenant,
    smtp: &SmtpSettings,
    recipient: Address,
    mail: RenderedMail,
) -> Result<Message, ApiError> {
    let from: Address = smtp.from_address.parse().map_err(|_| {
        ApiError::new(
            ErrorCode::EmailSendFailed,
            "settings.smtp.from_address is not a usable address",
        )
    })?;
    let name = one_line(tenant_name(tenant));
    Message::builder()
        .from(Mailbox::new(Some(name), from))
        .to(Mailbox::new(None, recipient))
        .subject(mail.subject)
        .multipart(MultiPart::alternative_plain_html(mail.text, mail.html))
        .map_err(|e| {
            tracing::error!(tenant = %tenant.slug, error = %e, "mail message cannot be built");
            ApiError::internal()
        })
}

/// Why a send failed, without the server's reply text.
struct SendFailure {
    what: &'static str,
    code: Option<String>,
    /// The lower-level cause for network and TLS failures (no addresses in those).
    cause: Option<String>,
}

impl SendFailure {
    /// The whole send outlived the mailer's deadline.
    fn timed_out() -> Self {
        Self {
            what: "timeout",
            code: None,
            cause: Some("no answer within the SMTP deadline".to_owned()),
        }
    }

    fn of(e: &lettre::transport::smtp::Error) -> Self {
        let code = e.status().map(|c| c.to_string());
        let what = if e.is_timeout() {
            "timeout"
        } else if e.is_tls() {
            "tls"
        } else if e.is_permanent() {
            "rejected"
        } else if e.is_transient() {
            "deferred"
        } else if e.is_response() {
            "protocol"
        } else if e.is_client() {
            "refused"
        } else {
            "connection"
        };
        let cause = matches!(what, "timeout" | "tls" | "connection" | "refused").then(|| {
            let mut text = String::new();
            let mut source = std::error::Error::source(e);
            while let Some(s) = source {
                text = s.to_string();
                source = s.source();
            }
            tenantry_errors::printable(&text)
        });
        Self { what, code, cause }
    }

    fn detail(&self) -> String {
        let base = match self.what {
            "timeout" => "the mail server did not answer in time",
            "tls" => "the TLS connection to the mail server failed",
            "rejected" => "the mail server rejected the message or the credentials",
            "deferred" => "the mail server temporarily refused the message",
            "protocol" => "the mail server's answer could not be understood",
            "refused" => "the mail server does not offer what the settings require (STARTTLS or authentication)",
            _ => "the mail server cannot be reached",
        };
        match &self.code {
            Some(code) => format!("{base} (SMTP {code})"),
            None => base.to_owned(),
        }
    }
}

// ---------------------------------------------------------------------------------------
// Templates

fn tenant_name(tenant: &Tenant) -> &str {
    tenant
        .settings
        .branding
        .name
        .as_deref()
        .filter(|n| !n.trim().is_empty())
        .unwrap_or(&tenant.display_name)
}

/// Control characters (line breaks included) become spaces; runs of spaces collapse.
fn one_line(value: &str) -> String {
    value
        .split(|c: char| c.is_whitespace() || c.is_control())
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// A link's lifetime in whole hours when it is some, else in minutes ("2 hours", "90 minutes").
fn expires_text(lang: Language, minutes: u64) -> String {
    let (n, one, many) = if minutes >= 60 && minutes.is_multiple_of(60) {
        (minutes / 60, Key::Hour, Key::Hours)
    } else {
        (minutes, Key::Minute, Key::Minutes)
    };
    let word = tenantry_messages::catalogue(lang).get(if n == 1 { one } else { many });
    format!("{n} {word}")
}

fn template_context(tenant: &Tenant, issuer: &str, lang: Language, vars: &MailVars) -> minijinja::Value {
    let minutes = vars.expires_in.map(|d| d.as_secs().div_ceil(60).max(1));
    context! {
        tenant_name => tenant_name(tenant),
        issuer => issuer,
        user_email => vars.user_email,
        link => vars.link,
        expires_minutes => minutes,
        expires_hours => minutes.map(|m| m.div_ceil(60)),
        expires_text => minutes.map(|m| expires_text(lang, m)),
        primary_color => tenant.settings.branding.primary_color.as_deref().unwrap_or("#1f5fbf"),
        language => lang.as_str(),
    }
}

/// Renders `kind` in `lang`: the tenant's override for that language and kind when it has
/// one, else the built-in template. A broken override is an error (500), not a fallback.
pub fn render(
    tenant: &Tenant,
    issuer: &str,
    kind: MailTemplateKind,
    lang: Language,
    vars: &MailVars,
) -> Result<RenderedMail, ApiError> {
    let ctx = template_context(tenant, issuer, lang, vars);
    let over = tenant
        .settings
        .mail_templates
        .get(&lang)
        .and_then(|templates| templates.get(&kind));
    match over {
        Some(template) => render_override(template, &ctx).map_err(|(part, e)| {
            tracing::error!(
                tenant = %tenant.slug,
                template = format!("{}.{}.{part}", lang.as_str(), kind.as_str()),
                error = %e,
                "mail template override does not render"
            );
            ApiError::new(
                ErrorCode::InternalError,
                format!(
                    "the tenant's mail template {}.{}.{part} does not render; fix settings.mail_templates",
                    lang.as_str(),
                    kind.as_str()
                ),
            )
        }),
        None => {
            let name = format!("{}/{}", lang.as_str(), kind.as_str());
            let part = |ext: &str| {
                BUILTIN
                    .get_template(&format!("{name}.{ext}"))
                    .and_then(|t| t.render(&ctx))
                    .expect("built-in mail templates render")
            };
            Ok(RenderedMail {
                subject: one_line(&part("subject")),
                text: part("txt"),
                html: part("html"),
            })
        }
    }
}

fn render_override(
    template: &MailTemplate,
    ctx: &minijinja::Value,
) -> Result<RenderedMail, (&'static str, minijinja::Error)> {
    let part = |name: &'static str, source: &str| {
        BUILTIN
            .render_named_str(&format!("override.{name}"), source, ctx)
            .map_err(|e| (name, e))
    };
    Ok(RenderedMail {
        subject: one_line(&part("subject", &template.subject)?),
        text: part("txt", &template.text)?,
        html: part("html", &template.html)?,
    })
}

/// Checks the mail-related settings an admin sends before they are stored: every
/// override parses and renders with sample values, and the sender address is one the mail
/// library accepts. 422 with the dotted field path otherwise.
pub fn check_settings(settings: &TenantSettings) -> Result<(), ApiError> {
    if let Some(smtp) = &settings.smtp
        && smtp.from_address.parse::<Address>().is_err()
    {
        return Err(ApiError::field(
            "settings.smtp.from_address",
            "must be an email address (local@domain)",
        ));
    }
    let sample = Tenant {
        id: Uuid::nil(),
        slug: "sample".into(),
        display_name: "Sample".into(),
        created_at: chrono::DateTime::UNIX_EPOCH,
        updated_at: chrono::DateTime::UNIX_EPOCH,
        settings: TenantSettings::default(),
    };
    let vars = MailVars {
        user_email: "user@example.com".into(),
        link: Some("https://example.com/action?token=sample".into()),
        expires_in: Some(Duration::from_secs(3600)),
    };
    for (lang, templates) in &settings.mail_templates {
        let ctx = template_context(&sample, "https://example.com/t/sample", *lang, &vars);
        for (kind, template) in templates {
            if let Err((part, e)) = render_override(template, &ctx) {
                let field = match part {
                    "txt" => "text",
                    other => other,
                };
                return Err(ApiError::field(
                    &format!("settings.mail_templates.{}.{}.{field}", lang.as_str(), kind.as_str()),
                    format!("does not render: {}", tenantry_errors::printable(&e.to_string())),
                ));
            }
        }
    }
    Ok(())
}

/// The built-in templates, compiled in from `templates/mail/`: per language and kind a
/// subject, a text part and an HTML part (`<lang>/<kind>.subject|txt|html`).
macro_rules! builtin_templates {
    ($($lang:literal: [$($kind:literal),* $(,)?]),* $(,)?) => {
        [$($(
            (
                concat!($lang, "/", $kind, ".subject"),
                include_str!(concat!("../templates/mail/", $lang, "/", $kind, ".subject")),
            ),
            (
                concat!($lang, "/", $kind, ".txt"),
                include_str!(concat!("../templates/mail/", $lang, "/", $kind, ".txt")),
            ),
            (
                concat!($lang, "/", $kind, ".html"),
                include_str!(concat!("../templates/mail/", $lang, "/", $kind, ".html")),
            ),
        )*)*]
    };
}

/// Every built-in template by name; each HTML part extends `layout.html`.
const BUILTIN_TEMPLATES: [(&str, &str); 30] = builtin_templates![
    "en": ["verify_email", "reset_password", "password_changed", "account_locked", "test"],
    "es": ["verify_email", "reset_password", "password_changed", "account_locked", "test"],
];

/// The mail layout, which built-in and override HTML parts may extend.
const LAYOUT: &str = include_str!("../templates/mail/layout.html");

static BUILTIN: LazyLock<Environment<'static>> = LazyLock::new(|| {
    let mut env = Environment::new();
    env.set_auto_escape_callback(|name| {
        if name.ends_with(".html") {
            AutoEscape::Html
        } else {
            AutoEscape::None
        }
    });
    env.add_template("layout.html", LAYOUT).expect("mail layout parses");
    for (name, source) in BUILTIN_TEMPLATES {
        env.add_template(name, source).expect("built-in mail templates parse");
    }
    env
});

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn tenant() -> Tenant {
        let mut settings = TenantSettings::default();
        settings.branding.name = Some("Acme & Co".into());
        Tenant {
            id: Uuid::new_v4(),
            slug: "acme".into(),
            display_name: "Acme".into(),
            created_at: chrono::Utc::now(),
            updated_at: chrono::Utc::now(),
            settings,
        }
    }

    fn vars() -> MailVars {
        MailVars {
            user_email: "ada@example.com".into(),
            link: Some("https://id.example/t/acme/verify?token=abc&x=<1>".into()),
            expires_in: Some(Duration::from_secs(2 * 3600)),
        }
    }

    #[test]
    fn every_builtin_renders_in_every_language_with_its_variables() {
        let t = tenant();
        for lang in LANGUAGES {
            for kind in KINDS {
                let mail = render(&t, "https://id.example/t/acme", kind, lang, &vars()).unwrap();
                assert!(
                    mail.subject.contains("Acme & Co"),
                    "{lang:?} {kind:?}: {}",
                    mail.subject
                );
                assert!(!mail.subject.contains('\n'));
                assert!(mail.text.contains("ada@example.com"), "{lang:?} {kind:?}");
                assert!(
                    mail.html.contains("Acme &amp; Co"),
                    "html is escaped: {lang:?} {kind:?}"
                );
                assert!(!mail.html.contains("Acme & Co"), "{lang:?} {kind:?}");
                assert!(mail.html.starts_with("<!DOCTYPE html>"));
                if matches!(kind, MailTemplateKind::VerifyEmail | MailTemplateKind::ResetPassword) {
                    assert!(mail.text.contains("https://id.example/t/acme/verify?token=abc&x=<1>"));
                    assert!(mail.html.contains(
                        "https:&#x2f;&#x2f;id.example&#x2f;t&#x2f;acme&#x2f;verify?token=abc&amp;x=&lt;1&gt;"
                    ));
                    let hours = if lang == Language::En { "2 hours" } else { "2 horas" };
                    assert!(mail.text.contains(hours), "{lang:?} {kind:?}: {}", mail.text);
                }
            }
        }
        let es = render(&t, "i", MailTemplateKind::ResetPassword, Language::Es, &vars()).unwrap();
        assert_eq!(es.subject, "Restablece tu contraseña de Acme & Co");
    }

    #[test]
    fn the_language_is_the_first_one_we_speak_else_the_fallback() {
        assert_eq!(language(Some("fr-CA es-MX en"), Language::En), Language::Es);
        assert_eq!(language(Some("EN-gb"), Language::Es), Language::En);
        assert_eq!(language(Some("fr de"), Language::Es), Language::Es);
        assert_eq!(language(None, Language::En), Language::En);
    }

    #[test]
    fn every_language_and_kind_has_its_three_built_in_templates() {
        let mut expected: Vec<String> = Vec::new();
        for lang in LANGUAGES {
            for kind in KINDS {
                for ext in ["subject", "txt", "html"] {
                    expected.push(format!("{}/{}.{ext}", lang.as_str(), kind.as_str()));
                }
            }
        }
        let mut names: Vec<String> = BUILTIN_TEMPLATES.iter().map(|(name, _)| name.to_string()).collect();
        expected.sort();
        names.sort();
        assert_eq!(names, expected);
        for (name, _) in BUILTIN_TEMPLATES.iter().filter(|(name, _)| name.ends_with(".html")) {
            assert!(
                BUILTIN
                    .get_template(name)
                    .unwrap()
                    .render(context! {})
                    .unwrap()
                    .starts_with("<!DOCTYPE html>"),
                "{name} extends the layout"
            );
        }
    }

    #[test]
    fn expiry_reads_as_hours_or_minutes() {
        assert_eq!(expires_text(Language::En, 60), "1 hour");
        assert_eq!(expires_text(Language::En, 90), "90 minutes");
        assert_eq!(expires_text(Language::Es, 1), "1 minuto");
        assert_eq!(expires_text(Language::Es, 1440), "24 horas");
        let mut v = vars();
        v.expires_in = Some(Duration::from_secs(61));
        let mail = render(&tenant(), "i", MailTemplateKind::VerifyEmail, Language::En, &v).unwrap();
        assert!(mail.text.contains("2 minutes"), "rounded up: {}", mail.text);
    }

    #[test]
    fn a_tenant_override_wins_for_its_language_only_and_is_escaped() {
        let mut t = tenant();
        t.settings.mail_templates = BTreeMap::from([(
            Language::Es,
            BTreeMap::from([(
                MailTemplateKind::Test,
                MailTemplate {
                    subject: "Prueba\r\nBcc: x@evil.example {{ tenant_name }}".into(),
                    html: "{% extends \"layout.html\" %}{% block content %}<p>Hola {{ user_email }} {{ '<b>' }}</p>{% endblock %}".into(),
                    text: "Hola {{ user_email }} {{ '<b>' }}".into(),
                },
            )]),
        )]);
        let mut v = vars();
        v.user_email = "a<b>@example.com".into();
        let es = render(&t, "i", MailTemplateKind::Test, Language::Es, &v).unwrap();
        assert_eq!(
            es.subject, "Prueba Bcc: x@evil.example Acme & Co",
            "folded onto one line"
        );
        assert_eq!(es.text, "Hola a<b>@example.com <b>");
        assert!(
            es.html.contains("<p>Hola a&lt;b&gt;@example.com &lt;b&gt;</p>"),
            "{}",
            es.html
        );
        assert!(es.html.starts_with("<!DOCTYPE html>"), "extends the built-in layout");
        let en = render(&t, "i", MailTemplateKind::Test, Language::En, &v).unwrap();
        assert_eq!(en.subject, "Test message from Acme & Co");
    }

    #[test]
    fn overrides_are_checked_before_they_are_stored() {
        let mut settings = TenantSettings {
            mail_templates: BTreeMap::from([(
                Language::En,
                BTreeMap::from([(
                    MailTemplateKind::VerifyEmail,
                    MailTemplate {
                        subject: "ok".into(),
                        html: "{% if %}".into(),
                        text: "ok".into(),
                    },
                )]),
            )]),
            ..Default::default()
        };
        let err = check_settings(&settings).unwrap_err();
        assert_eq!(err.errors[0].field, "settings.mail_templates.en.verify_email.html");
        settings.mail_templates.get_mut(&Language::En).unwrap().insert(
            MailTemplateKind::VerifyEmail,
            MailTemplate {
                subject: "ok".into(),
                html: "ok".into(),
                text: "{{ link | no_such_filter }}".into(),
            },
        );
        let err = check_settings(&settings).unwrap_err();
        assert_eq!(err.errors[0].field, "settings.mail_templates.en.verify_email.text");
        settings.mail_templates.clear();
        assert!(check_settings(&settings).is_ok());
    }

    #[test]
    fn recipients_are_parsed_and_logged_by_domain() {
        assert!(parse_recipient("ada@example.com").is_ok());
        for bad in [
            "",
            "ada",
            "ada@",
            "@example.com",
            "a b@example.com",
            "ada@example.com\r\nBcc: x@y.z",
        ] {
            let err = parse_recipient(bad).unwrap_err();
            assert_eq!(err.code, ErrorCode::ValidationFailed, "{bad:?}");
            assert_eq!(err.errors[0].field, "to");
        }
        assert_eq!(recipient_domain("ada@example.com"), "example.com");
    }

    #[test]
    fn the_fingerprint_follows_the_settings() {
        let smtp = SmtpSettings {
            host: "smtp.example.com".into(),
            port: 587,
            tls: SmtpTls::Starttls,
            username: None,
            password: None,
            from_address: "no-reply@example.com".into(),
        };
        let id = Uuid::new_v4();
        assert_eq!(fingerprint(id, &smtp), fingerprint(id, &smtp));
        assert_ne!(fingerprint(id, &smtp), fingerprint(Uuid::new_v4(), &smtp));
        let mut other = smtp.clone();
        other.port = 2525;
        assert_ne!(fingerprint(id, &smtp), fingerprint(id, &other));
    }
}
