//! Hosted pages rendered on the server: login, consent, error, the `form_post`
//! response, the "forgot password" form, and the pages behind the links of account mails
//! (verify an email address, reset a password), and the account page. Templates are minijinja with HTML
//! auto-escaping, kept in `templates/pages/` and compiled in (`include_str!`); their texts
//! (English and Spanish) come from the message catalogue (`tenantry_messages`) as `t`;
//! branding (name, logo, colors) comes from the tenant's settings.
//! No page needs JavaScript but for WebAuthn (passkeys); the form_post page submits
//! itself with a nonce-allowed script and also shows a button.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use minijinja::{Environment, context};
use tenantry_controlplane::model::{Branding, Language};
use tenantry_messages::{Catalogue, Key};

/// The page templates, compiled in from `templates/pages/`.
macro_rules! pages {
    ($($name:literal),* $(,)?) => {
        [$(($name, include_str!(concat!("../templates/pages/", $name)))),*]
    };
}

const PAGES: [(&str, &str); 17] = pages![
    "layout.html",
    "account.html",
    "passkey.js",
    "login.html",
    "signup.html",
    "consent.html",
    "error.html",
    "form_post.html",
    "logout_confirm.html",
    "logged_out.html",
    "mfa.html",
    "passkey_signup.html",
    "recovery_codes.html",
    "verify_email.html",
    "reset_password.html",
    "forgot_password.html",
    "done.html",
];

static TEMPLATES: LazyLock<Environment<'static>> = LazyLock::new(|| {
    let mut env = Environment::new();
    for (name, source) in PAGES {
        env.add_template(name, source).expect("built-in templates parse");
    }
    env
});

fn texts(lang: Language) -> &'static Catalogue {
    tenantry_messages::catalogue(lang)
}

/// The text of `key` in `lang`.
pub fn text(lang: Language, key: Key) -> &'static str {
    texts(lang).get(key)
}

/// The message for wrong credentials, in `lang`.
pub fn bad_credentials(lang: Language) -> &'static str {
    texts(lang).get(Key::BadCredentials)
}

/// The message for a wrong second-factor code, in `lang`.
pub fn bad_code(lang: Language) -> &'static str {
    texts(lang).get(Key::BadCode)
}

/// What the second-factor page shows ([`PageContext::mfa`]).
pub struct MfaPage<'a> {
    pub action: &'a str,
    pub interaction: &'a str,
    pub csrf: &'a str,
    /// A TOTP secret being set up: its QR code and key.
    pub enrolment: Option<&'a tenantry_accounts::mfa::Enrolment>,
    /// Days a trusted device skips the step (0: not offered).
    pub remember_days: u32,
    /// WebAuthn request options for the passkey button.
    pub passkey: Option<&'a serde_json::Value>,
    /// The code form: a TOTP authenticator (or one being set up) to take a code of, or
    /// no passkey to offer instead.
    pub code: bool,
}

/// JSON to place inside a `<script type="application/json">` element: `<`, `>` and `&`
/// (which JSON allows only inside strings) as `\u` escapes, so no value can end the
/// element or start markup.
fn json_in_script(value: &serde_json::Value) -> String {
    value
        .to_string()
        .replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
}

/// The message for a passkey that was not accepted, in `lang`.
pub fn passkey_refused(lang: Language) -> &'static str {
    texts(lang).get(Key::PasskeyRefused)
}

/// The message for a passkey refused on the login page, in `lang`.
pub fn passkey_login_refused(lang: Language) -> &'static str {
    texts(lang).get(Key::PasskeyLoginRefused)
}

/// The message for a new passkey that did not verify, in `lang`.
pub fn passkey_create_failed(lang: Language) -> &'static str {
    texts(lang).get(Key::PasskeyCreateFailed)
}

/// The message for a login refused until the email is verified, in `lang`.
pub fn email_not_verified(lang: Language) -> &'static str {
    texts(lang).get(Key::EmailNotVerified)
}

/// "Too many attempts" with the wait (whole minutes, rounded up), in `lang`.
pub fn try_later(lang: Language, wait: std::time::Duration) -> String {
    let minutes = wait.as_secs().div_ceil(60).max(1);
    texts(lang)
        .get(Key::TryLater)
        .replace("{minutes}", &minutes.to_string())
}

/// The message for an expired or foreign interaction, in `lang`.
pub fn expired(lang: Language) -> &'static str {
    texts(lang).get(Key::Expired)
}

/// The message for a verification or reset link that is unknown, used or expired, in `lang`.
pub fn link_invalid(lang: Language) -> &'static str {
    texts(lang).get(Key::LinkInvalid)
}

/// A refused new password with the policy's reasons, in `lang`.
pub fn password_refused(lang: Language, reasons: &str) -> String {
    format!("{} {reasons}", texts(lang).get(Key::PasswordRefused))
}

/// The message for a link page whose form does not match its CSRF cookie, in `lang`.
pub fn link_page_expired(lang: Language) -> &'static str {
    texts(lang).get(Key::LinkPageExpired)
}

/// The message for a malformed email address, in `lang`.
pub fn bad_email(lang: Language) -> &'static str {
    texts(lang).get(Key::BadEmail)
}

/// The message for a form whose CSRF token does not match its cookie, in `lang`.
pub fn form_expired(lang: Language) -> &'static str {
    texts(lang).get(Key::FormExpired)
}

/// The message for a page that needs mail on a tenant without SMTP settings, in `lang`.
pub fn email_not_configured(lang: Language) -> &'static str {
    texts(lang).get(Key::EmailNotConfigured)
}

/// The error page's message for an upstream sign-in that failed (before the detail).
pub fn upstream_failed(lang: Language) -> &'static str {
    texts(lang).get(Key::UpstreamFailed)
}

/// The login page's notice after an upstream sign-in whose email is an existing account's.
pub fn link_prove_account(lang: Language, provider: &str) -> String {
    texts(lang).get(Key::LinkProveAccount).replace("{provider}", provider)
}

/// Picks the page language: the first of `ui_locales` we speak, else the tenant's (the rule
/// mails follow too).
pub use tenantry_mail::language;

/// Branding and language shared by every page of one request.
/// What the login page shows.
#[derive(Debug, Default)]
pub struct LoginForm<'a> {
    pub client_name: &'a str,
    pub action: &'a str,
    pub interaction: &'a str,
    pub csrf: &'a str,
    /// The email field's value.
    pub email: &'a str,
    /// Why the last attempt failed.
    pub error: Option<&'a str>,
    /// Why the user is asked to sign in (linking an upstream identity).
    pub notice: Option<&'a str>,
    /// The forgot-password page's URL, when the tenant can send mail.
    pub forgot: Option<&'a str>,
    /// The sign-up step's URL, when the tenant allows registration.
    pub signup: Option<&'a str>,
    /// One button per enabled upstream identity provider.
    pub providers: Vec<ProviderButton>,
    /// Where the page's script asks for passkey options (the passkey button and the
    /// email field's autofill).
    pub passkey_options: Option<&'a str>,
}

/// What the sign-up page shows.
#[derive(Debug, Default)]
pub struct SignUpForm<'a> {
    pub client_name: &'a str,
    pub action: &'a str,
    pub interaction: &'a str,
    pub csrf: &'a str,
    /// The values to show again (`email`, `given_name`, `family_name`).
    pub values: BTreeMap<&'static str, String>,
    /// The tenant's custom fields, as inputs.
    pub fields: Vec<CustomFieldInput>,
    /// The password policy's minimum length.
    pub min_length: u32,
    /// Why the last attempt failed, and the problems of its fields.
    pub error: Option<&'a str>,
    pub problems: Vec<String>,
    pub providers: Vec<ProviderButton>,
    /// A button that makes the account with a passkey instead of a password.
    pub passkey: bool,
}

/// The step of a sign-up with a passkey that makes it ([`PageContext::passkey_signup`]).
pub struct PasskeySignUpPage<'a> {
    pub action: &'a str,
    pub interaction: &'a str,
    pub csrf: &'a str,
    pub email: &'a str,
    /// WebAuthn creation options.
    pub options: &'a serde_json::Value,
    /// The sign-up form's values, posted again so a refusal (the sign-up form, shown
    /// again) can show them.
    pub kept: Vec<(String, String)>,
}

/// What the account page shows ([`PageContext::account`]). Form actions are `{base}/…`.
pub struct AccountPage<'a> {
    pub base: &'a str,
    pub csrf: &'a str,
    pub email: &'a str,
    pub email_verified: bool,
    /// Profile inputs: `given_name`, `family_name`, `name`, `phone_number`.
    pub profile: Vec<(&'static str, &'a str)>,
    /// The account's language (`en`, `es`), or empty for the tenant's.
    pub locale: &'a str,
    pub fields: Vec<CustomFieldInput>,
    /// Whether the tenant can mail (an address change needs a link).
    pub can_mail: bool,
    pub has_password: bool,
    pub min_length: u32,
    /// A TOTP authenticator is confirmed.
    pub totp: bool,
    /// A TOTP secret being set up: its QR code, key and confirm form.
    pub enrolment: Option<&'a tenantry_accounts::mfa::Enrolment>,
    /// Recovery codes to show once.
    pub recovery_codes: Option<&'a [String]>,
    pub passkeys: Vec<AccountRow>,
    /// Whether this issuer can make passkeys (its host is a domain name).
    pub passkeys_offered: bool,
    pub identities: Vec<AccountRow>,
    pub sessions: Vec<AccountRow>,
    pub notice: Option<&'a str>,
    pub error: Option<&'a str>,
    /// With an error that asks for a fresh sign-in: where to get one.
    pub reauth: Option<&'a str>,
}

/// One passkey, linked identity or session on the account page: what identifies it in
/// a form (`id`), its title, and what to show under it.
#[derive(Debug, serde::Serialize)]
pub struct AccountRow {
    pub id: String,
    pub title: String,
    pub detail: String,
    /// The session of this very page (it has no "sign out" of its own).
    pub current: bool,
}

/// One custom field of a hosted form (sign-up, account).
#[derive(Debug, serde::Serialize)]
pub struct CustomFieldInput {
    pub name: String,
    pub label: String,
    /// The input type: `text`, `number`, `date`, `datetime-local` or `checkbox`.
    pub input: &'static str,
    pub required: bool,
    pub value: String,
}

/// An upstream identity provider's button on the login page: a form posting the
/// interaction to the provider's start URL.
#[derive(Debug, serde::Serialize)]
pub struct ProviderButton {
    pub action: String,
    pub name: String,
    pub icon: Option<String>,
}

pub struct PageContext<'a> {
    pub lang: Language,
    pub branding: &'a Branding,
    pub tenant_name: &'a str,
}

impl<'a> PageContext<'a> {
    /// The pages of `ctx`'s tenant (its branding and name) in `lang`.
    pub fn of(ctx: &'a tenantry_tenancy::TenantContext, lang: Language) -> Self {
        PageContext {
            lang,
            branding: &ctx.entry.tenant.settings.branding,
            tenant_name: &ctx.entry.tenant.display_name,
        }
    }
}

impl PageContext<'_> {
    fn render(&self, template: &str, title: &str, extra: minijinja::Value, script_nonce: Option<&str>) -> Response {
        let style_nonce = tenantry_crypto::random_token(16);
        let t = texts(self.lang);
        let page = TEMPLATES.get_template(template).and_then(|tpl| {
            tpl.render(context! {
                lang => self.lang.as_str(),
                title => title,
                brand => self.branding.name.as_deref().unwrap_or(self.tenant_name),
                logo => self.branding.logo_url.as_deref(),
                primary => self.branding.primary_color.as_deref().unwrap_or("#1a56db"),
                background => self.branding.background_color.as_deref().unwrap_or("#f3f4f6"),
                style_nonce => &style_nonce,
                t => t,
                ..extra
            })
        });
        let html = match page {
            Ok(html) => html,
            Err(e) => {
                tracing::error!(error = %e, template, "page rendering failed");
                return crate::error::ApiError::internal().into_response();
            }
        };
        let mut csp = format!(
            "default-src 'none'; style-src 'nonce-{style_nonce}'; img-src https: data:; form-action *; frame-ancestors 'none'; base-uri 'none'"
        );
        if let Some(nonce) = script_nonce {
            // The page's own script, and its calls back to this origin (passkey options).
            csp.push_str(&format!("; script-src 'nonce-{nonce}'; connect-src 'self'"));
        }
        let mut response = Html(html).into_response();
        if let Ok(value) = HeaderValue::from_str(&csp) {
            response.headers_mut().insert(header::CONTENT_SECURITY_POLICY, value);
        }
        response
    }

    /// The login form; `forgot` is the forgot-password page's URL when the tenant can
    /// send mail.
    #[allow(clippy::too_many_arguments)]
    pub fn login(&self, form: &LoginForm<'_>) -> Response {
        let t = texts(self.lang);
        // The passkey script needs a nonce: only then does the page get one.
        let nonce = form.passkey_options.map(|_| tenantry_crypto::random_token(16));
        let extra = context! {
            client_name => form.client_name,
            action => form.action,
            interaction => form.interaction,
            csrf => form.csrf,
            email => form.email,
            error => form.error,
            notice => form.notice,
            forgot => form.forgot,
            signup => form.signup,
            providers => form.providers,
            passkey_options => form.passkey_options,
            script_nonce => &nonce,
        };
        let mut response = self.render("login.html", t.get(Key::SignIn), extra, nonce.as_deref());
        if form.error.is_some() {
            *response.status_mut() = StatusCode::UNAUTHORIZED;
        }
        response
    }

    /// The sign-up form; with `form.error`, answered with `status`.
    pub fn signup(&self, form: &SignUpForm<'_>, status: StatusCode) -> Response {
        let t = texts(self.lang);
        let password_hint = t.get(Key::PasswordHint).replace("{min}", &form.min_length.to_string());
        let nonce = form.passkey.then(|| tenantry_crypto::random_token(16));
        let extra = context! {
            client_name => form.client_name,
            action => form.action,
            interaction => form.interaction,
            csrf => form.csrf,
            values => form.values,
            fields => form.fields,
            min_length => form.min_length,
            password_hint,
            error => form.error,
            problems => form.problems,
            providers => form.providers,
            passkey => form.passkey,
            script_nonce => &nonce,
        };
        let mut response = self.render("signup.html", t.get(Key::SignUpTitle), extra, nonce.as_deref());
        *response.status_mut() = status;
        response
    }

    /// The passkey of a sign-up without a password: a button that makes it with `options`
    /// and posts it as `passkey`.
    pub fn passkey_signup(&self, page: PasskeySignUpPage<'_>) -> Response {
        let t = texts(self.lang);
        let nonce = tenantry_crypto::random_token(16);
        let extra = context! {
            action => page.action,
            interaction => page.interaction,
            csrf => page.csrf,
            prompt => t.get(Key::PasskeyCreatePrompt).replace("{email}", page.email),
            passkey => minijinja::Value::from_safe_string(json_in_script(page.options)),
            kept => page.kept,
            script_nonce => &nonce,
        };
        self.render(
            "passkey_signup.html",
            t.get(Key::PasskeyCreateTitle),
            extra,
            Some(&nonce),
        )
    }

    /// The account page, answered with `status`.
    pub fn account(&self, page: &AccountPage<'_>, status: StatusCode) -> Response {
        use base64::Engine;
        let t = texts(self.lang);
        let password_hint = t.get(Key::PasswordHint).replace("{min}", &page.min_length.to_string());
        let enrolment = page.enrolment.map(|e| {
            context! {
                qr => base64::engine::general_purpose::STANDARD.encode(e.qr_svg.as_bytes()),
                secret => &e.secret,
            }
        });
        // Only adding a passkey needs a script.
        let nonce = page.passkeys_offered.then(|| tenantry_crypto::random_token(16));
        let extra = context! {
            base => page.base,
            csrf => page.csrf,
            email => page.email,
            email_verified => page.email_verified,
            profile => page.profile,
            locale => page.locale,
            fields => page.fields,
            can_mail => page.can_mail,
            has_password => page.has_password,
            password_hint,
            totp => page.totp,
            enrolment,
            recovery_codes => page.recovery_codes,
            passkeys => page.passkeys,
            passkeys_offered => page.passkeys_offered,
            identities => page.identities,
            sessions => page.sessions,
            notice => page.notice,
            error => page.error,
            reauth => page.reauth,
            script_nonce => &nonce,
        };
        let mut response = self.render("account.html", t.get(Key::AccountTitle), extra, nonce.as_deref());
        *response.status_mut() = status;
        response
            .headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        response
    }

    /// After a sign-up whose email must be verified before the account signs in.
    pub fn signup_sent(&self) -> Response {
        let t = texts(self.lang);
        let extra = context! { title => t.get(Key::ForgotSentTitle), message => t.get(Key::SignUpSentMessage) };
        self.render("done.html", t.get(Key::ForgotSentTitle), extra, None)
    }

    pub fn consent(
        &self,
        client_name: &str,
        action: &str,
        interaction: &str,
        csrf: &str,
        scopes: &[String],
    ) -> Response {
        let t = texts(self.lang);
        self.render(
            "consent.html",
            t.get(Key::ConsentTitle),
            context! { client_name, action, interaction, csrf, scopes },
            None,
        )
    }

    /// The second-factor step: a code (or recovery code) for an enrolled user, or, with
    /// `enrolment`, the QR code and key of a secret being set up; with `passkey` (WebAuthn
    /// request options), also a button that signs them with a passkey and posts the
    /// credential as `passkey`.
    pub fn mfa(&self, page: MfaPage<'_>, error: Option<&str>) -> Response {
        use base64::Engine;
        let MfaPage {
            action,
            interaction,
            csrf,
            enrolment,
            remember_days,
            passkey,
            code,
        } = page;
        let t = texts(self.lang);
        let remember_label = t.get(Key::MfaRemember).replace("{days}", &remember_days.to_string());
        let enrolment = enrolment.map(|e| {
            context! {
                qr => base64::engine::general_purpose::STANDARD.encode(e.qr_svg.as_bytes()),
                secret => &e.secret,
            }
        });
        // The passkey button needs a script: only then does the page get a nonce.
        let nonce = passkey.map(|_| tenantry_crypto::random_token(16));
        let passkey = passkey.map(|options| minijinja::Value::from_safe_string(json_in_script(options)));
        let extra = context! {
            action, interaction, csrf, enrolment, error, remember_days, remember_label, passkey, code,
            script_nonce => &nonce,
        };
        let mut response = self.render("mfa.html", t.get(Key::MfaTitle), extra, nonce.as_deref());
        if error.is_some() {
            *response.status_mut() = StatusCode::UNAUTHORIZED;
        }
        response
    }

    /// The recovery codes of a new enrolment, shown once, with a form to go on.
    pub fn recovery_codes(&self, action: &str, interaction: &str, csrf: &str, codes: &[String]) -> Response {
        let t = texts(self.lang);
        self.render(
            "recovery_codes.html",
            t.get(Key::RecoveryTitle),
            context! { action, interaction, csrf, codes },
            None,
        )
    }

    /// The verification link's page: a button that confirms the address (a POST, so a
    /// link prefetched by a mail scanner spends nothing).
    pub fn verify_email(&self, action: &str, token: &str, csrf: &str, email: &str) -> Response {
        let t = texts(self.lang);
        self.render(
            "verify_email.html",
            t.get(Key::VerifyTitle),
            context! { action, token, csrf, email },
            None,
        )
    }

    /// The reset link's page: a labelled new-password field (with `error`, the policy's
    /// complaint about the last attempt, answered 422).
    pub fn reset_password(&self, action: &str, token: &str, csrf: &str, email: &str, error: Option<&str>) -> Response {
        let t = texts(self.lang);
        let extra = context! { action, token, csrf, email, error };
        let mut response = self.render("reset_password.html", t.get(Key::ResetTitle), extra, None);
        if error.is_some() {
            *response.status_mut() = StatusCode::UNPROCESSABLE_ENTITY;
        }
        response
    }

    /// The forgot-password form (with `error`, what was wrong with the last attempt,
    /// answered with `status`).
    pub fn forgot_password(
        &self,
        action: &str,
        csrf: &str,
        email: &str,
        error: Option<(StatusCode, &str)>,
    ) -> Response {
        let t = texts(self.lang);
        let (status, error) = error.unzip();
        let extra = context! { action, csrf, email, error };
        let mut response = self.render("forgot_password.html", t.get(Key::ForgotTitle), extra, None);
        if let Some(status) = status {
            *response.status_mut() = status;
        }
        response
    }

    /// "If an account exists for this address, we sent it a link": one page for every
    /// address, so it tells no accounts apart.
    pub fn forgot_sent(&self) -> Response {
        let t = texts(self.lang);
        let extra = context! { title => t.get(Key::ForgotSentTitle), message => t.get(Key::ForgotSentMessage) };
        self.render("done.html", t.get(Key::ForgotSentTitle), extra, None)
    }

    /// "Your email address is verified."
    pub fn email_verified(&self) -> Response {
        let t = texts(self.lang);
        let extra = context! { title => t.get(Key::VerifiedTitle), message => t.get(Key::VerifiedMessage) };
        self.render("done.html", t.get(Key::VerifiedTitle), extra, None)
    }

    /// "Your account now uses this address."
    pub fn email_changed(&self) -> Response {
        let t = texts(self.lang);
        let extra = context! { title => t.get(Key::EmailChangedTitle), message => t.get(Key::EmailChangedMessage) };
        self.render("done.html", t.get(Key::EmailChangedTitle), extra, None)
    }

    /// "Your password was changed."
    pub fn password_changed(&self) -> Response {
        let t = texts(self.lang);
        let extra =
            context! { title => t.get(Key::PasswordChangedTitle), message => t.get(Key::PasswordChangedMessage) };
        self.render("done.html", t.get(Key::PasswordChangedTitle), extra, None)
    }

    /// An error shown to the user (never redirected: the client or redirect URI is not
    /// trusted, or the interaction is broken).
    pub fn error(&self, status: StatusCode, code: &str, message: &str) -> Response {
        let t = texts(self.lang);
        let mut response = self.render("error.html", t.get(Key::ErrorTitle), context! { code, message }, None);
        *response.status_mut() = status;
        response
    }

    /// Asks the user to confirm a logout (the form repeats the request with a CSRF token).
    pub fn logout_confirm(&self, action: &str, fields: &[(String, String)]) -> Response {
        let t = texts(self.lang);
        self.render(
            "logout_confirm.html",
            t.get(Key::LogoutTitle),
            context! { action, fields },
            None,
        )
    }

    pub fn logged_out(&self) -> Response {
        let t = texts(self.lang);
        self.render("logged_out.html", t.get(Key::LoggedOut), context! {}, None)
    }

    /// OAuth 2.0 Form Post Response Mode: a self-submitting form to the redirect URI.
    pub fn form_post(&self, action: &str, fields: &[(String, String)]) -> Response {
        let t = texts(self.lang);
        let nonce = tenantry_crypto::random_token(16);
        let extra = context! { action, fields, script_nonce => &nonce };
        self.render("form_post.html", t.get(Key::Redirecting), extra, Some(&nonce))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_in_a_script_element_cannot_close_it() {
        let value = serde_json::json!({"name": "</script><img src=x onerror=alert(1)> & co"});
        let text = json_in_script(&value);
        assert!(
            !text.contains('<') && !text.contains('>') && !text.contains('&'),
            "{text}"
        );
        assert_eq!(serde_json::from_str::<serde_json::Value>(&text).unwrap(), value);
    }

    /// The names after `t.` in a template: the catalogue keys it reads.
    fn keys_read(source: &str) -> Vec<&str> {
        source
            .match_indices("t.")
            .filter(|(at, _)| !source[..*at].ends_with(|c: char| c.is_alphanumeric() || c == '_' || c == '.'))
            .map(|(at, _)| {
                let rest = &source[at + 2..];
                let end = rest
                    .find(|c: char| !(c.is_alphanumeric() || c == '_'))
                    .unwrap_or(rest.len());
                &rest[..end]
            })
            .collect()
    }

    #[test]
    fn every_text_a_template_reads_is_in_the_catalogue() {
        let mut read = 0;
        for (name, source) in PAGES {
            for key in keys_read(source) {
                assert!(
                    Key::from_name(key).is_some(),
                    "{name} reads t.{key}, which is no message key"
                );
                read += 1;
            }
        }
        assert!(read >= 38, "the scan finds the templates' texts ({read})");
        assert_eq!(
            keys_read("{{ t.sign_in }} {{ at.x }} {{ t.continue }}"),
            ["sign_in", "continue"]
        );
    }

    #[test]
    fn every_page_template_parses() {
        for (name, _) in PAGES {
            TEMPLATES.get_template(name).unwrap_or_else(|e| panic!("{name}: {e}"));
        }
    }
}
