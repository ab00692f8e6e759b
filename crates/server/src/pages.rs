//! Hosted pages rendered on the server: login, consent, error, the `form_post`
//! response, the "forgot password" form, and the pages behind the links of account mails
//! (verify an email address, reset a password). Templates are minijinja with HTML
//! auto-escaping; texts come in English and Spanish; branding (name, logo, colors) comes
//! from the tenant's settings.
//! No page needs JavaScript; the form_post page submits itself with a nonce-allowed
//! script and also shows a button.

use std::sync::LazyLock;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use minijinja::{Environment, context};
use tenantry_controlplane::model::{Branding, Language};

const LAYOUT: &str = r#"<!doctype html>
<html lang="{{ lang }}">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{ title }} · {{ brand }}</title>
<style nonce="{{ style_nonce }}">
body{font-family:system-ui,sans-serif;background:{{ background }};margin:0;padding:2rem 1rem;color:#1d1d1f}
main{max-width:26rem;margin:0 auto;background:#fff;border-radius:.5rem;padding:2rem;box-shadow:0 1px 4px #0002}
h1{font-size:1.4rem;margin-top:0}label{display:block;margin:.8rem 0 .2rem;font-weight:600}
input[type=email],input[type=password],input[type=text]{width:100%;box-sizing:border-box;padding:.6rem;border:1px solid #999;border-radius:.3rem;font-size:1rem}
button{margin-top:1.2rem;padding:.6rem 1.2rem;border:0;border-radius:.3rem;background:{{ primary }};color:#fff;font-size:1rem;cursor:pointer}
button.secondary{background:#666}.error{color:#b00020;font-weight:600}img.logo{max-height:3rem;display:block;margin-bottom:1rem}
</style>
</head>
<body><main>
{% if logo %}<img class="logo" src="{{ logo }}" alt="{{ brand }}">{% endif %}
{% block content %}{% endblock %}
</main></body></html>"#;

const LOGIN: &str = r#"{% extends "layout.html" %}{% block content %}
<h1>{{ t.sign_in }}</h1>
<p>{{ t.continue_to }} <strong>{{ client_name }}</strong></p>
{% if error %}<p class="error" role="alert">{{ error }}</p>{% endif %}
<form method="post" action="{{ action }}">
<input type="hidden" name="interaction" value="{{ interaction }}">
<input type="hidden" name="csrf" value="{{ csrf }}">
<label for="email">{{ t.email }}</label>
<input id="email" name="email" type="email" autocomplete="username" required value="{{ email }}">
<label for="password">{{ t.password }}</label>
<input id="password" name="password" type="password" autocomplete="current-password" required>
<button type="submit">{{ t.sign_in }}</button>
</form>
{% if forgot %}<p><a href="{{ forgot }}">{{ t.forgot_link }}</a></p>{% endif %}
{% endblock %}"#;

const CONSENT: &str = r#"{% extends "layout.html" %}{% block content %}
<h1>{{ t.consent_title }}</h1>
<p><strong>{{ client_name }}</strong> {{ t.consent_asks }}</p>
<ul>{% for scope in scopes %}<li>{{ scope }}</li>{% endfor %}</ul>
<form method="post" action="{{ action }}">
<input type="hidden" name="interaction" value="{{ interaction }}">
<input type="hidden" name="csrf" value="{{ csrf }}">
<button type="submit" name="decision" value="allow">{{ t.allow }}</button>
<button type="submit" name="decision" value="deny" class="secondary">{{ t.deny }}</button>
</form>
{% endblock %}"#;

const ERROR: &str = r#"{% extends "layout.html" %}{% block content %}
<h1>{{ t.error_title }}</h1>
<p class="error" role="alert">{{ message }}</p>
<p><code>{{ code }}</code></p>
{% endblock %}"#;

const FORM_POST: &str = r#"{% extends "layout.html" %}{% block content %}
<h1>{{ t.redirecting }}</h1>
<form method="post" action="{{ action }}">
{% for name, value in fields %}<input type="hidden" name="{{ name }}" value="{{ value }}">
{% endfor %}<button type="submit">{{ t.continue }}</button>
</form>
<script nonce="{{ script_nonce }}">document.forms[0].submit()</script>
{% endblock %}"#;

const LOGOUT_CONFIRM: &str = r#"{% extends "layout.html" %}{% block content %}
<h1>{{ t.logout_title }}</h1>
<p>{{ t.logout_question }}</p>
<form method="post" action="{{ action }}">
{% for name, value in fields %}<input type="hidden" name="{{ name }}" value="{{ value }}">
{% endfor %}<button type="submit">{{ t.logout_button }}</button>
</form>
{% endblock %}"#;

const MFA: &str = r#"{% extends "layout.html" %}{% block content %}
<h1>{{ t.mfa_title }}</h1>
{% if enrolment %}<p>{{ t.mfa_enrol_prompt }}</p>
<img src="data:image/svg+xml;base64,{{ enrolment.qr }}" alt="{{ t.mfa_qr_alt }}" width="200" height="200">
<p>{{ t.mfa_secret }} <code>{{ enrolment.secret }}</code></p>
{% else %}<p>{{ t.mfa_prompt }}</p>{% endif %}
{% if error %}<p class="error" role="alert">{{ error }}</p>{% endif %}
<form method="post" action="{{ action }}">
<input type="hidden" name="interaction" value="{{ interaction }}">
<input type="hidden" name="csrf" value="{{ csrf }}">
<label for="code">{{ t.mfa_code }}</label>
<input id="code" name="code" type="text" inputmode="numeric" autocomplete="one-time-code" required>
{% if remember_days %}<label for="remember"><input id="remember" name="remember" type="checkbox" value="1"> {{ remember_label }}</label>{% endif %}
<button type="submit">{{ t.mfa_verify }}</button>
</form>
{% endblock %}"#;

const RECOVERY_CODES: &str = r#"{% extends "layout.html" %}{% block content %}
<h1>{{ t.recovery_title }}</h1>
<p>{{ t.recovery_prompt }}</p>
<ul>{% for code in codes %}<li><code>{{ code }}</code></li>{% endfor %}</ul>
<form method="post" action="{{ action }}">
<input type="hidden" name="interaction" value="{{ interaction }}">
<input type="hidden" name="csrf" value="{{ csrf }}">
<button type="submit">{{ t.continue }}</button>
</form>
{% endblock %}"#;

const LOGGED_OUT: &str = r#"{% extends "layout.html" %}{% block content %}
<h1>{{ t.logged_out }}</h1>
{% endblock %}"#;

const VERIFY_EMAIL: &str = r#"{% extends "layout.html" %}{% block content %}
<h1>{{ t.verify_title }}</h1>
<p>{{ t.verify_prompt }} <strong>{{ email }}</strong></p>
<form method="post" action="{{ action }}">
<input type="hidden" name="token" value="{{ token }}">
<input type="hidden" name="csrf" value="{{ csrf }}">
<input type="hidden" name="ui_locales" value="{{ lang }}">
<button type="submit">{{ t.verify_button }}</button>
</form>
{% endblock %}"#;

const RESET_PASSWORD: &str = r#"{% extends "layout.html" %}{% block content %}
<h1>{{ t.reset_title }}</h1>
<p>{{ t.reset_prompt }} <strong>{{ email }}</strong></p>
{% if error %}<p class="error" role="alert">{{ error }}</p>{% endif %}
<form method="post" action="{{ action }}">
<input type="hidden" name="token" value="{{ token }}">
<input type="hidden" name="csrf" value="{{ csrf }}">
<input type="hidden" name="ui_locales" value="{{ lang }}">
<input type="text" name="username" autocomplete="username" value="{{ email }}" hidden>
<label for="new_password">{{ t.new_password }}</label>
<input id="new_password" name="new_password" type="password" autocomplete="new-password" required>
<button type="submit">{{ t.reset_button }}</button>
</form>
{% endblock %}"#;

const FORGOT_PASSWORD: &str = r#"{% extends "layout.html" %}{% block content %}
<h1>{{ t.forgot_title }}</h1>
<p>{{ t.forgot_prompt }}</p>
{% if error %}<p class="error" role="alert">{{ error }}</p>{% endif %}
<form method="post" action="{{ action }}">
<input type="hidden" name="csrf" value="{{ csrf }}">
<input type="hidden" name="ui_locales" value="{{ lang }}">
<label for="email">{{ t.email }}</label>
<input id="email" name="email" type="email" autocomplete="username" required value="{{ email }}">
<button type="submit">{{ t.forgot_button }}</button>
</form>
{% endblock %}"#;

const DONE: &str = r#"{% extends "layout.html" %}{% block content %}
<h1>{{ title }}</h1>
<p role="status">{{ message }}</p>
{% endblock %}"#;

static TEMPLATES: LazyLock<Environment<'static>> = LazyLock::new(|| {
    let mut env = Environment::new();
    for (name, source) in [
        ("layout.html", LAYOUT),
        ("login.html", LOGIN),
        ("consent.html", CONSENT),
        ("error.html", ERROR),
        ("form_post.html", FORM_POST),
        ("logout_confirm.html", LOGOUT_CONFIRM),
        ("logged_out.html", LOGGED_OUT),
        ("mfa.html", MFA),
        ("recovery_codes.html", RECOVERY_CODES),
        ("verify_email.html", VERIFY_EMAIL),
        ("reset_password.html", RESET_PASSWORD),
        ("forgot_password.html", FORGOT_PASSWORD),
        ("done.html", DONE),
    ] {
        env.add_template(name, source).expect("built-in templates parse");
    }
    env
});

/// The texts of the hosted pages in one language.
#[derive(serde::Serialize)]
struct Texts {
    sign_in: &'static str,
    continue_to: &'static str,
    email: &'static str,
    password: &'static str,
    consent_title: &'static str,
    consent_asks: &'static str,
    allow: &'static str,
    deny: &'static str,
    error_title: &'static str,
    redirecting: &'static str,
    #[serde(rename = "continue")]
    continue_: &'static str,
    logout_title: &'static str,
    logout_question: &'static str,
    logout_button: &'static str,
    logged_out: &'static str,
    mfa_title: &'static str,
    mfa_prompt: &'static str,
    mfa_enrol_prompt: &'static str,
    mfa_qr_alt: &'static str,
    mfa_secret: &'static str,
    mfa_code: &'static str,
    mfa_verify: &'static str,
    /// "Remember this device", with `{days}`.
    mfa_remember: &'static str,
    recovery_title: &'static str,
    recovery_prompt: &'static str,
    pub bad_code: &'static str,
    email_not_verified: &'static str,
    /// "Too many attempts", with `{minutes}` for the wait.
    try_later: &'static str,
    pub bad_credentials: &'static str,
    pub expired: &'static str,
    verify_title: &'static str,
    verify_prompt: &'static str,
    verify_button: &'static str,
    verified_title: &'static str,
    verified_message: &'static str,
    reset_title: &'static str,
    reset_prompt: &'static str,
    new_password: &'static str,
    reset_button: &'static str,
    password_changed_title: &'static str,
    password_changed_message: &'static str,
    /// Before the policy's reasons for refusing a new password.
    password_refused: &'static str,
    /// A verification or reset link that is unknown, used or expired.
    link_invalid: &'static str,
    /// A link page whose form lost its CSRF cookie (another browser, cookies cleared).
    link_page_expired: &'static str,
    /// The login page's link to the forgot-password page.
    forgot_link: &'static str,
    forgot_title: &'static str,
    forgot_prompt: &'static str,
    forgot_button: &'static str,
    forgot_sent_title: &'static str,
    /// The same whether or not the address is an account's.
    forgot_sent_message: &'static str,
    bad_email: &'static str,
    /// The forgot-password form without its CSRF cookie.
    form_expired: &'static str,
    /// The forgot-password page of a tenant that cannot send mail.
    email_not_configured: &'static str,
}

const EN: Texts = Texts {
    sign_in: "Sign in",
    continue_to: "to continue to",
    email: "Email",
    password: "Password",
    consent_title: "Allow access?",
    consent_asks: "asks for access to:",
    allow: "Allow",
    deny: "Deny",
    error_title: "Something went wrong",
    redirecting: "Returning to the application…",
    continue_: "Continue",
    logout_title: "Sign out?",
    logout_question: "Do you want to sign out of this account on this device?",
    logout_button: "Sign out",
    logged_out: "You are signed out.",
    mfa_title: "Two-step verification",
    mfa_prompt: "Enter the 6-digit code from your authenticator app, or one of your recovery codes.",
    mfa_enrol_prompt: "This account needs two-step verification. Scan the code with an authenticator app, then enter the 6-digit code it shows.",
    mfa_qr_alt: "QR code to add this account to an authenticator app",
    mfa_secret: "Or enter this key by hand:",
    mfa_code: "Code",
    mfa_verify: "Verify",
    mfa_remember: "Don't ask again on this device for {days} days",
    recovery_title: "Save your recovery codes",
    recovery_prompt: "Each code signs you in once if you lose your authenticator. They are shown only now: keep them somewhere safe.",
    bad_code: "That code is not valid. Try the current one.",
    email_not_verified: "Verify your email address before signing in: follow the link we sent you.",
    try_later: "Too many attempts. Try again in {minutes} min.",
    bad_credentials: "The email or password is not correct.",
    expired: "This sign-in page has expired or was opened in another browser. Start again from the application.",
    verify_title: "Verify your email address",
    verify_prompt: "Confirm that this is your email address:",
    verify_button: "Verify email address",
    verified_title: "Email address verified",
    verified_message: "Your email address is verified. You can close this page and sign in.",
    reset_title: "Choose a new password",
    reset_prompt: "Choose a new password for",
    new_password: "New password",
    reset_button: "Change password",
    password_changed_title: "Password changed",
    password_changed_message: "Your password was changed and every session of this account was signed out. Sign in with the new password.",
    password_refused: "This password cannot be used:",
    link_invalid: "This link is not valid: it has expired or was already used. Ask for a new one.",
    link_page_expired: "This page has expired or was opened in another browser. Open the link from the email again.",
    forgot_link: "Forgot password?",
    forgot_title: "Reset your password",
    forgot_prompt: "Enter the email address of your account and we will send you a link to choose a new password.",
    forgot_button: "Send link",
    forgot_sent_title: "Check your email",
    forgot_sent_message: "If an account exists for this address, we have sent it a link to choose a new password. The link works once, for a limited time.",
    bad_email: "Enter an email address such as name@example.com.",
    form_expired: "This page has expired or was opened in another browser. Open it again and retry.",
    email_not_configured: "This service cannot send email, so the password cannot be reset here. Contact its administrator.",
};

const ES: Texts = Texts {
    sign_in: "Iniciar sesión",
    continue_to: "para continuar en",
    email: "Correo electrónico",
    password: "Contraseña",
    consent_title: "¿Permitir el acceso?",
    consent_asks: "solicita acceso a:",
    allow: "Permitir",
    deny: "Denegar",
    error_title: "Algo salió mal",
    redirecting: "Volviendo a la aplicación…",
    continue_: "Continuar",
    logout_title: "¿Cerrar sesión?",
    logout_question: "¿Quieres cerrar la sesión de esta cuenta en este dispositivo?",
    logout_button: "Cerrar sesión",
    logged_out: "Has cerrado la sesión.",
    mfa_title: "Verificación en dos pasos",
    mfa_prompt: "Introduce el código de 6 dígitos de tu aplicación de autenticación o uno de tus códigos de recuperación.",
    mfa_enrol_prompt: "Esta cuenta necesita verificación en dos pasos. Escanea el código con una aplicación de autenticación e introduce el código de 6 dígitos que muestra.",
    mfa_qr_alt: "Código QR para añadir esta cuenta a una aplicación de autenticación",
    mfa_secret: "O introduce esta clave a mano:",
    mfa_code: "Código",
    mfa_verify: "Verificar",
    mfa_remember: "No volver a preguntar en este dispositivo durante {days} días",
    recovery_title: "Guarda tus códigos de recuperación",
    recovery_prompt: "Cada código te permite iniciar sesión una vez si pierdes tu autenticador. Solo se muestran ahora: guárdalos en un lugar seguro.",
    bad_code: "Ese código no es válido. Prueba con el actual.",
    email_not_verified: "Verifica tu dirección de correo antes de iniciar sesión: sigue el enlace que te enviamos.",
    try_later: "Demasiados intentos. Vuelve a intentarlo dentro de {minutes} min.",
    bad_credentials: "El correo electrónico o la contraseña no son correctos.",
    expired: "Esta página de inicio de sesión ha caducado o se abrió en otro navegador. Vuelve a empezar desde la aplicación.",
    verify_title: "Verifica tu dirección de correo",
    verify_prompt: "Confirma que esta es tu dirección de correo:",
    verify_button: "Verificar dirección",
    verified_title: "Dirección de correo verificada",
    verified_message: "Tu dirección de correo está verificada. Puedes cerrar esta página e iniciar sesión.",
    reset_title: "Elige una contraseña nueva",
    reset_prompt: "Elige una contraseña nueva para",
    new_password: "Contraseña nueva",
    reset_button: "Cambiar contraseña",
    password_changed_title: "Contraseña cambiada",
    password_changed_message: "Tu contraseña ha cambiado y se han cerrado todas las sesiones de esta cuenta. Inicia sesión con la contraseña nueva.",
    password_refused: "Esta contraseña no se puede usar:",
    link_invalid: "Este enlace no es válido: ha caducado o ya se usó. Pide uno nuevo.",
    link_page_expired: "Esta página ha caducado o se abrió en otro navegador. Vuelve a abrir el enlace del correo.",
    forgot_link: "¿Has olvidado tu contraseña?",
    forgot_title: "Restablece tu contraseña",
    forgot_prompt: "Introduce la dirección de correo de tu cuenta y te enviaremos un enlace para elegir una contraseña nueva.",
    forgot_button: "Enviar enlace",
    forgot_sent_title: "Revisa tu correo",
    forgot_sent_message: "Si existe una cuenta con esta dirección, le hemos enviado un enlace para elegir una contraseña nueva. El enlace sirve una vez y durante un tiempo limitado.",
    bad_email: "Introduce una dirección de correo como nombre@example.com.",
    form_expired: "Esta página ha caducado o se abrió en otro navegador. Vuelve a abrirla e inténtalo de nuevo.",
    email_not_configured: "Este servicio no puede enviar correos, así que aquí no se puede restablecer la contraseña. Contacta con su administrador.",
};

fn texts(lang: Language) -> &'static Texts {
    match lang {
        Language::En => &EN,
        Language::Es => &ES,
    }
}

/// The message for wrong credentials, in `lang`.
pub fn bad_credentials(lang: Language) -> &'static str {
    texts(lang).bad_credentials
}

/// The message for a wrong second-factor code, in `lang`.
pub fn bad_code(lang: Language) -> &'static str {
    texts(lang).bad_code
}

/// The message for a login refused until the email is verified, in `lang`.
pub fn email_not_verified(lang: Language) -> &'static str {
    texts(lang).email_not_verified
}

/// "Too many attempts" with the wait (whole minutes, rounded up), in `lang`.
pub fn try_later(lang: Language, wait: std::time::Duration) -> String {
    let minutes = wait.as_secs().div_ceil(60).max(1);
    texts(lang).try_later.replace("{minutes}", &minutes.to_string())
}

/// The message for an expired or foreign interaction, in `lang`.
pub fn expired(lang: Language) -> &'static str {
    texts(lang).expired
}

/// The message for a verification or reset link that is unknown, used or expired, in `lang`.
pub fn link_invalid(lang: Language) -> &'static str {
    texts(lang).link_invalid
}

/// A refused new password with the policy's reasons, in `lang`.
pub fn password_refused(lang: Language, reasons: &str) -> String {
    format!("{} {reasons}", texts(lang).password_refused)
}

/// The message for a link page whose form does not match its CSRF cookie, in `lang`.
pub fn link_page_expired(lang: Language) -> &'static str {
    texts(lang).link_page_expired
}

/// The message for a malformed email address, in `lang`.
pub fn bad_email(lang: Language) -> &'static str {
    texts(lang).bad_email
}

/// The message for a form whose CSRF token does not match its cookie, in `lang`.
pub fn form_expired(lang: Language) -> &'static str {
    texts(lang).form_expired
}

/// The message for a page that needs mail on a tenant without SMTP settings, in `lang`.
pub fn email_not_configured(lang: Language) -> &'static str {
    texts(lang).email_not_configured
}

/// Picks the page language: the first of `ui_locales` we speak, else the tenant's (the rule
/// mails follow too).
pub use tenantry_mail::language;

/// Branding and language shared by every page of one request.
pub struct PageContext<'a> {
    pub lang: Language,
    pub branding: &'a Branding,
    pub tenant_name: &'a str,
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
            csp.push_str(&format!("; script-src 'nonce-{nonce}'"));
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
    pub fn login(
        &self,
        client_name: &str,
        action: &str,
        interaction: &str,
        csrf: &str,
        email: &str,
        error: Option<&str>,
        forgot: Option<&str>,
    ) -> Response {
        let t = texts(self.lang);
        let extra = context! { client_name, action, interaction, csrf, email, error, forgot };
        let mut response = self.render("login.html", t.sign_in, extra, None);
        if error.is_some() {
            *response.status_mut() = StatusCode::UNAUTHORIZED;
        }
        response
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
            t.consent_title,
            context! { client_name, action, interaction, csrf, scopes },
            None,
        )
    }

    /// The second-factor step: a code (or recovery code) for an enrolled user, or, with
    /// `enrolment`, the QR code and key of a secret being set up.
    pub fn mfa(
        &self,
        action: &str,
        interaction: &str,
        csrf: &str,
        enrolment: Option<&crate::mfa::Enrolment>,
        remember_days: u32,
        error: Option<&str>,
    ) -> Response {
        use base64::Engine;
        let t = texts(self.lang);
        let remember_label = t.mfa_remember.replace("{days}", &remember_days.to_string());
        let enrolment = enrolment.map(|e| {
            context! {
                qr => base64::engine::general_purpose::STANDARD.encode(e.qr_svg.as_bytes()),
                secret => &e.secret,
            }
        });
        let extra = context! { action, interaction, csrf, enrolment, error, remember_days, remember_label };
        let mut response = self.render("mfa.html", t.mfa_title, extra, None);
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
            t.recovery_title,
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
            t.verify_title,
            context! { action, token, csrf, email },
            None,
        )
    }

    /// The reset link's page: a labelled new-password field (with `error`, the policy's
    /// complaint about the last attempt, answered 422).
    pub fn reset_password(&self, action: &str, token: &str, csrf: &str, email: &str, error: Option<&str>) -> Response {
        let t = texts(self.lang);
        let extra = context! { action, token, csrf, email, error };
        let mut response = self.render("reset_password.html", t.reset_title, extra, None);
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
        let mut response = self.render("forgot_password.html", t.forgot_title, extra, None);
        if let Some(status) = status {
            *response.status_mut() = status;
        }
        response
    }

    /// "If an account exists for this address, we sent it a link": one page for every
    /// address, so it tells no accounts apart.
    pub fn forgot_sent(&self) -> Response {
        let t = texts(self.lang);
        let extra = context! { title => t.forgot_sent_title, message => t.forgot_sent_message };
        self.render("done.html", t.forgot_sent_title, extra, None)
    }

    /// "Your email address is verified."
    pub fn email_verified(&self) -> Response {
        let t = texts(self.lang);
        let extra = context! { title => t.verified_title, message => t.verified_message };
        self.render("done.html", t.verified_title, extra, None)
    }

    /// "Your password was changed."
    pub fn password_changed(&self) -> Response {
        let t = texts(self.lang);
        let extra = context! { title => t.password_changed_title, message => t.password_changed_message };
        self.render("done.html", t.password_changed_title, extra, None)
    }

    /// An error shown to the user (never redirected: the client or redirect URI is not
    /// trusted, or the interaction is broken).
    pub fn error(&self, status: StatusCode, code: &str, message: &str) -> Response {
        let t = texts(self.lang);
        let mut response = self.render("error.html", t.error_title, context! { code, message }, None);
        *response.status_mut() = status;
        response
    }

    /// Asks the user to confirm a logout (the form repeats the request with a CSRF token).
    pub fn logout_confirm(&self, action: &str, fields: &[(String, String)]) -> Response {
        let t = texts(self.lang);
        self.render("logout_confirm.html", t.logout_title, context! { action, fields }, None)
    }

    pub fn logged_out(&self) -> Response {
        let t = texts(self.lang);
        self.render("logged_out.html", t.logged_out, context! {}, None)
    }

    /// OAuth 2.0 Form Post Response Mode: a self-submitting form to the redirect URI.
    pub fn form_post(&self, action: &str, fields: &[(String, String)]) -> Response {
        let t = texts(self.lang);
        let nonce = tenantry_crypto::random_token(16);
        let extra = context! { action, fields, script_nonce => &nonce };
        self.render("form_post.html", t.redirecting, extra, Some(&nonce))
    }
}
