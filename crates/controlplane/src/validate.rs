//! Validation of control-plane values. Every write goes through here before a command
//! is built, and `apply` checks again, so nothing invalid reaches the files.

use std::collections::BTreeSet;
use std::sync::LazyLock;

use regex::Regex;
use serde::Serialize;

use crate::model::*;

/// Longest slug: one DNS label.
pub const MAX_SLUG_LEN: usize = 63;

static SLUG: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"^[a-z0-9](?:-?[a-z0-9])*$").expect("slug regex"));
static IDENT: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$").expect("ident regex"));
static FIELD_NAME: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"^[a-z][a-z0-9_]{0,59}$").expect("field regex"));
static SCOPE_NAME: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^[\x21\x23-\x5B\x5D-\x7E]{1,128}$").expect("scope regex"));
static COLOR: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"^#[0-9a-fA-F]{6}$").expect("color regex"));

/// One problem with one field, addressed by a dotted path (e.g. `settings.smtp.port`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

/// All problems found in a value; empty means valid.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, thiserror::Error)]
#[error("{}", self.summary())]
pub struct ValidationErrors(pub Vec<FieldError>);

impl ValidationErrors {
    fn push(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.0.push(FieldError {
            field: field.into(),
            message: message.into(),
        });
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn summary(&self) -> String {
        self.0
            .iter()
            .map(|e| format!("{}: {}", e.field, e.message))
            .collect::<Vec<_>>()
            .join("; ")
    }

    fn into_result(self) -> Result<(), ValidationErrors> {
        if self.0.is_empty() { Ok(()) } else { Err(self) }
    }
}

/// Checks a tenant slug: lowercase letters, digits and single inner hyphens, 1–63 chars.
pub fn validate_slug(slug: &str) -> Result<(), ValidationErrors> {
    let mut errors = ValidationErrors::default();
    check_slug(&mut errors, "slug", slug);
    errors.into_result()
}

fn check_slug(errors: &mut ValidationErrors, field: &str, slug: &str) {
    if slug.is_empty() || slug.len() > MAX_SLUG_LEN || !SLUG.is_match(slug) {
        errors.push(
            field,
            "must be 1-63 lowercase letters or digits, with single hyphens between them",
        );
    }
}

/// Most authenticator models a tenant may list in `security.passkey_aaguids`.
const MAX_PASSKEY_AAGUIDS: usize = 100;

/// `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx` in lowercase hex: the form AAGUIDs are compared in.
fn is_lowercase_uuid(value: &str) -> bool {
    value.len() == 36
        && value.char_indices().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => c == '-',
            _ => c.is_ascii_digit() || ('a'..='f').contains(&c),
        })
}

/// Checks a file-system-safe identifier (client ids, scope and role names in paths).
pub fn is_identifier(value: &str) -> bool {
    IDENT.is_match(value)
}

fn check_http_url(errors: &mut ValidationErrors, field: &str, value: &str) {
    match url::Url::parse(value) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {}
        Ok(_) => errors.push(field, "must be an absolute http or https URL"),
        Err(e) => errors.push(field, format!("is not a valid URL: {e}")),
    }
}

fn check_origin(errors: &mut ValidationErrors, field: &str, value: &str) {
    match url::Url::parse(value) {
        Ok(u)
            if matches!(u.scheme(), "http" | "https")
                && u.host().is_some()
                && u.path() == "/"
                && u.query().is_none()
                && u.fragment().is_none()
                && !value.ends_with('/') => {}
        _ => errors.push(field, "must be an origin such as https://app.example.com (no path)"),
    }
}

fn check_redirect_uri(errors: &mut ValidationErrors, field: &str, value: &str) {
    match url::Url::parse(value) {
        Ok(u) if u.fragment().is_some() => errors.push(field, "must not contain a fragment"),
        Ok(u) if u.cannot_be_a_base() && u.scheme() != "urn" => errors.push(field, "must be an absolute URI"),
        Ok(_) => {}
        Err(e) => errors.push(field, format!("is not a valid URI: {e}")),
    }
}

fn check_text(errors: &mut ValidationErrors, field: &str, value: &str, max: usize) {
    if value.trim().is_empty() {
        errors.push(field, "must not be empty");
    } else if value.chars().count() > max {
        errors.push(field, format!("must be at most {max} characters"));
    }
}

/// Checks a key ring: unique, well-formed kids and public keys that are JSON objects.
pub fn validate_key_ring(ring: &KeyRing) -> Result<(), ValidationErrors> {
    let mut errors = ValidationErrors::default();
    for (i, key) in ring.keys.iter().enumerate() {
        let well_formed = !key.kid.is_empty()
            && key.kid.len() <= 128
            && key
                .kid
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !well_formed {
            errors.push(format!("keys[{i}].kid"), "must be 1-128 base64url characters");
        }
        if ring.keys[..i].iter().any(|k| k.kid == key.kid) {
            errors.push(format!("keys[{i}].kid"), "is used twice");
        }
        if !serde_json::from_str::<serde_json::Value>(&key.public_jwk).is_ok_and(|v| v.is_object()) {
            errors.push(format!("keys[{i}].public_jwk"), "must be a JWK object");
        }
        if !key.private_key.0.starts_with("tsb1.") {
            errors.push(format!("keys[{i}].private_key"), "must be a sealed secret");
        }
    }
    errors.into_result()
}

/// Checks a whole tenant, settings included.
pub fn validate_tenant(tenant: &Tenant) -> Result<(), ValidationErrors> {
    let mut errors = ValidationErrors::default();
    check_slug(&mut errors, "slug", &tenant.slug);
    check_text(&mut errors, "display_name", &tenant.display_name, 200);
    check_settings(&mut errors, "settings", &tenant.settings);
    errors.into_result()
}

/// Checks tenant settings on their own (paths are prefixed with `settings.`).
pub fn validate_settings(settings: &TenantSettings) -> Result<(), ValidationErrors> {
    let mut errors = ValidationErrors::default();
    check_settings(&mut errors, "settings", settings);
    errors.into_result()
}

fn check_settings(errors: &mut ValidationErrors, p: &str, s: &TenantSettings) {
    if let IssuerMode::Custom { .. } = &s.issuer {
        // No route answers on a custom issuer's host yet and cookies are scoped to
        // `/t/{slug}`: advertising one would hand clients an issuer nothing serves.
        errors.push(
            format!("{p}.issuer.mode"),
            "`custom` issuers are not served yet; use `path` ({public_url}/t/{slug})",
        );
    }
    if let Some(name) = &s.branding.name {
        check_text(errors, &format!("{p}.branding.name"), name, 200);
    }
    if let Some(logo) = &s.branding.logo_url {
        check_http_url(errors, &format!("{p}.branding.logo_url"), logo);
    }
    for (key, color) in [
        ("primary_color", &s.branding.primary_color),
        ("background_color", &s.branding.background_color),
    ] {
        if let Some(c) = color
            && !COLOR.is_match(c)
        {
            errors.push(format!("{p}.branding.{key}"), "must be a #rrggbb color");
        }
    }
    let lt = &s.token_lifetimes;
    for (key, value, max) in [
        ("session_secs", lt.session_secs, 365 * 86400),
        ("access_token_secs", lt.access_token_secs, 86400),
        ("id_token_secs", lt.id_token_secs, 86400),
        ("refresh_token_secs", lt.refresh_token_secs, 365 * 86400),
    ] {
        if value == 0 || value > max {
            errors.push(
                format!("{p}.token_lifetimes.{key}"),
                format!("must be between 1 and {max}"),
            );
        }
    }
    if s.signing.rotation_days > 3650 {
        errors.push(format!("{p}.signing.rotation_days"), "must be between 0 (off) and 3650");
    }
    let sec = &s.security;
    if !(6..=256).contains(&sec.password_min_length) {
        errors.push(format!("{p}.security.password_min_length"), "must be between 6 and 256");
    }
    if sec.max_login_attempts == 0 || sec.max_login_attempts > 1000 {
        errors.push(format!("{p}.security.max_login_attempts"), "must be between 1 and 1000");
    }
    if sec.login_attempts_per_ip_per_minute > 100_000 {
        errors.push(
            format!("{p}.security.login_attempts_per_ip_per_minute"),
            "must be at most 100000 (0 turns the limit off)",
        );
    }
    if !(1..=3650).contains(&sec.audit_retention_days) {
        errors.push(format!("{p}.security.audit_retention_days"), "must be 1-3650");
    }
    if sec.passkey_aaguids.len() > MAX_PASSKEY_AAGUIDS {
        errors.push(
            format!("{p}.security.passkey_aaguids"),
            format!("at most {MAX_PASSKEY_AAGUIDS} authenticator models"),
        );
    }
    for (i, aaguid) in sec.passkey_aaguids.iter().enumerate() {
        if !is_lowercase_uuid(aaguid) {
            errors.push(
                format!("{p}.security.passkey_aaguids[{i}]"),
                "must be a UUID in lowercase hyphenated form",
            );
        }
    }
    if sec.mfa_remember_device_days > 365 {
        errors.push(format!("{p}.security.mfa_remember_device_days"), "must be at most 365");
    }
    if sec.lockout_duration_secs > 30 * 86400 {
        errors.push(format!("{p}.security.lockout_duration_secs"), "must be at most 30 days");
    }
    // Bounds keep one hash between "too cheap to matter" and "one login eats a GiB or
    // seconds of CPU"; Argon2 itself accepts far more.
    let ph = &sec.password_hash;
    for (key, value, min, max) in [
        ("memory_kib", ph.memory_kib, 1024, 1024 * 1024),
        ("iterations", ph.iterations, 1, 20),
        ("parallelism", ph.parallelism, 1, 16),
    ] {
        if !(min..=max).contains(&value) {
            errors.push(
                format!("{p}.security.password_hash.{key}"),
                format!("must be between {min} and {max}"),
            );
        }
    }
    if let Some(smtp) = &s.smtp {
        check_text(errors, &format!("{p}.smtp.host"), &smtp.host, 253);
        if smtp.host.contains(['/', ':', ' ']) {
            errors.push(format!("{p}.smtp.host"), "must be a host name or IP address");
        }
        if smtp.port == 0 {
            errors.push(format!("{p}.smtp.port"), "must be between 1 and 65535");
        }
        if !looks_like_email(&smtp.from_address) {
            errors.push(format!("{p}.smtp.from_address"), "must be an email address");
        }
        if smtp.password.is_some() && smtp.username.is_none() {
            errors.push(format!("{p}.smtp.username"), "is required when a password is set");
        }
    }
    if let Some(db) = &s.user_db {
        match (db.driver, &db.dsn) {
            (DbDriver::Sqlite, Some(_)) => errors.push(
                format!("{p}.user_db.dsn"),
                "must be absent for sqlite (the file lives in the tenant folder)",
            ),
            (DbDriver::Postgres | DbDriver::Mysql, None) => {
                errors.push(format!("{p}.user_db.dsn"), "is required for postgres and mysql")
            }
            _ => {}
        }
    }
    for (lang, templates) in &s.mail_templates {
        for (kind, t) in templates {
            let base = format!("{p}.mail_templates.{}.{}", lang.as_str(), kind.as_str());
            check_text(errors, &format!("{base}.subject"), &t.subject, 500);
            if t.html.len() > 256 * 1024 || t.text.len() > 256 * 1024 {
                errors.push(base, "template bodies must be at most 256 KiB");
            }
        }
    }
    let mut provider_ids = BTreeSet::new();
    for (i, sp) in s.social_providers.iter().enumerate() {
        let base = format!("{p}.social_providers[{i}]");
        if !is_identifier(&sp.id) {
            errors.push(format!("{base}.id"), "must be a simple identifier");
        }
        if !provider_ids.insert(sp.id.as_str()) {
            errors.push(format!("{base}.id"), "is duplicated");
        }
        check_text(errors, &format!("{base}.client_id"), &sp.client_id, 512);
        match (&sp.kind, &sp.issuer_url) {
            (SocialProviderKind::Oidc, None) => {
                errors.push(format!("{base}.issuer_url"), "is required for generic OIDC")
            }
            (_, Some(u)) => check_http_url(errors, &format!("{base}.issuer_url"), u),
            _ => {}
        }
        if let Some(icon) = &sp.icon_url {
            check_http_url(errors, &format!("{base}.icon_url"), icon);
        }
        if let Some(name) = &sp.display_name {
            check_text(errors, &format!("{base}.display_name"), name, 100);
        }
        if sp.scopes.len() > 20 || sp.scopes.iter().any(|scope| !SCOPE_NAME.is_match(scope)) {
            errors.push(format!("{base}.scopes"), "must be at most 20 valid scope names");
        }
        match (sp.client_auth, &sp.client_secret) {
            (Some(UpstreamClientAuth::PrivateKeyJwt), Some(_)) => errors.push(
                format!("{base}.client_secret"),
                "is not used with private_key_jwt (the tenant's own key signs); remove it",
            ),
            (Some(UpstreamClientAuth::ClientSecretBasic | UpstreamClientAuth::ClientSecretPost), None) => {
                errors.push(format!("{base}.client_secret"), "is required by this client_auth")
            }
            _ => {}
        }
        if sp.kind == SocialProviderKind::Github {
            if sp.client_secret.is_none() {
                errors.push(format!("{base}.client_secret"), "is required by GitHub");
            }
            if sp.client_auth == Some(UpstreamClientAuth::PrivateKeyJwt) || sp.fetch_userinfo {
                errors.push(
                    format!("{base}.client_auth"),
                    "GitHub takes only a client secret, and its user API is always read",
                );
            }
        }
        if !sp.allowed_tenants.is_empty() && sp.kind != SocialProviderKind::Microsoft {
            errors.push(format!("{base}.allowed_tenants"), "applies to the microsoft kind only");
        }
        if sp.allowed_tenants.len() > 100
            || sp.allowed_tenants.iter().any(|t| {
                t.is_empty() || t.len() > 64 || !t.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
            })
        {
            errors.push(
                format!("{base}.allowed_tenants"),
                "must be at most 100 directory ids (letters, digits, '-' and '.')",
            );
        }
        if sp.claim_mapping.len() > 32 {
            errors.push(format!("{base}.claim_mapping"), "may map at most 32 fields");
        }
        for (field, claim) in &sp.claim_mapping {
            let known = match field.strip_prefix("custom.") {
                Some(custom) => s.custom_fields.iter().any(|f| f.name == custom),
                None => MAPPABLE_PROFILE_FIELDS.contains(&field.as_str()),
            };
            if !known {
                errors.push(
                    format!("{base}.claim_mapping.{field}"),
                    "is not a profile field or a declared custom field (custom.<name>)",
                );
            }
            if claim.is_empty() || claim.len() > 128 || !claim.bytes().all(|b| b.is_ascii_graphic()) {
                errors.push(
                    format!("{base}.claim_mapping.{field}"),
                    "must name a claim (1-128 visible ASCII characters)",
                );
            }
        }
    }
    let mut field_names = BTreeSet::new();
    for (i, f) in s.custom_fields.iter().enumerate() {
        let base = format!("{p}.custom_fields[{i}]");
        if !FIELD_NAME.is_match(&f.name) {
            errors.push(
                format!("{base}.name"),
                "must start with a lowercase letter and hold only a-z, 0-9 and _ (max 60)",
            );
        }
        if !field_names.insert(f.name.as_str()) {
            errors.push(format!("{base}.name"), "is duplicated");
        }
        if let Some(scope) = &f.scope
            && !SCOPE_NAME.is_match(scope)
        {
            errors.push(format!("{base}.scope"), "is not a valid scope name");
        }
    }
    for (i, origin) in s.cors_allowed_origins.iter().enumerate() {
        check_origin(errors, &format!("{p}.cors_allowed_origins[{i}]"), origin);
    }
    check_quotas(errors, &format!("{p}.quotas"), &s.quotas);
}

fn check_quotas(errors: &mut ValidationErrors, p: &str, q: &Quotas) {
    if !(1..=3600).contains(&q.window_secs) {
        errors.push(format!("{p}.window_secs"), "must be between 1 and 3600");
    }
    let t = &q.tenant;
    for (name, limit) in [
        ("token", t.token),
        ("introspection", t.introspection),
        ("authorize", t.authorize),
        ("userinfo", t.userinfo),
        ("auth_api", t.auth_api),
        ("admin_api", t.admin_api),
    ] {
        check_quota(errors, &format!("{p}.tenant.{name}"), limit);
    }
    check_client_quotas(errors, &format!("{p}.per_client"), &q.per_client);
}

fn check_client_quotas(errors: &mut ValidationErrors, p: &str, q: &ClientQuotas) {
    for (name, limit) in [
        ("token", q.token),
        ("introspection", q.introspection),
        ("authorize", q.authorize),
        ("userinfo", q.userinfo),
    ] {
        check_quota(errors, &format!("{p}.{name}"), limit);
    }
}

/// A limit is at least 1 (leave it out for none; 0 would lock every caller out).
fn check_quota(errors: &mut ValidationErrors, field: &str, limit: Option<u32>) {
    if limit == Some(0) {
        errors.push(field.to_owned(), "must be at least 1 (leave it out for no limit)");
    }
}

fn looks_like_email(value: &str) -> bool {
    let Some((local, domain)) = value.rsplit_once('@') else {
        return false;
    };
    !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !value.chars().any(|c| c.is_whitespace() || c == '<' || c == '>')
}

/// Checks a client registration.
pub fn validate_client(client: &Client) -> Result<(), ValidationErrors> {
    let mut errors = ValidationErrors::default();
    if !is_identifier(&client.client_id) {
        errors.push(
            "client_id",
            "must be 1-128 characters of A-Z, a-z, 0-9, '.', '_' or '-'",
        );
    }
    if client.client_id == crate::model::ACCOUNT_CLIENT_ID {
        errors.push("client_id", "is the built-in account page's; choose another");
    }
    check_text(&mut errors, "name", &client.name, 200);
    check_client_quotas(&mut errors, "quotas", &client.quotas);
    for (i, uri) in client.redirect_uris.iter().enumerate() {
        check_redirect_uri(&mut errors, &format!("redirect_uris[{i}]"), uri);
    }
    if client.token_endpoint_auth_method == TokenEndpointAuthMethod::PrivateKeyJwt {
        let keys = client
            .jwks
            .as_ref()
            .and_then(|j| j.get("keys"))
            .and_then(|k| k.as_array());
        if keys.is_none_or(|k| k.is_empty()) {
            errors.push("jwks", "private_key_jwt needs a JWK Set with at least one public key");
        }
    }
    if let Some(jwks) = &client.jwks {
        let private = jwks
            .get("keys")
            .and_then(|k| k.as_array())
            .is_some_and(|keys| keys.iter().any(|k| k.get("d").is_some() || k.get("k").is_some()));
        if private || !jwks.is_object() {
            errors.push("jwks", "must be a JWK Set of public keys only");
        }
    }
    if let Some(uri) = &client.backchannel_logout_uri {
        check_http_url(&mut errors, "backchannel_logout_uri", uri);
        if url::Url::parse(uri).is_ok_and(|u| u.fragment().is_some()) {
            errors.push("backchannel_logout_uri", "must not contain a fragment");
        }
    }
    for (field, url) in [
        ("verify_email_url", &client.verify_email_url),
        ("reset_password_url", &client.reset_password_url),
    ] {
        if let Some(url) = url {
            check_redirect_uri(&mut errors, field, url);
            if !client.first_party {
                errors.push(field, "only a first-party client may receive account links");
            }
        }
    }
    for (i, uri) in client.post_logout_redirect_uris.iter().enumerate() {
        check_redirect_uri(&mut errors, &format!("post_logout_redirect_uris[{i}]"), uri);
    }
    for (i, origin) in client.allowed_origins.iter().enumerate() {
        check_origin(&mut errors, &format!("allowed_origins[{i}]"), origin);
    }
    if client.grant_types.is_empty() {
        errors.push("grant_types", "must name at least one grant type");
    }
    if client.grant_types.contains(&GrantType::AuthorizationCode) && client.redirect_uris.is_empty() {
        errors.push("redirect_uris", "are required for the authorization_code grant");
    }
    for (i, scope) in client.scopes.iter().enumerate() {
        if !SCOPE_NAME.is_match(scope) {
            errors.push(format!("scopes[{i}]"), "is not a valid scope name");
        }
    }
    match client.client_type {
        ClientType::Public => {
            if client.token_endpoint_auth_method != TokenEndpointAuthMethod::None {
                errors.push("token_endpoint_auth_method", "must be none for a public client");
            }
            if client.grant_types.contains(&GrantType::ClientCredentials) {
                errors.push("grant_types", "client_credentials needs a confidential client");
            }
            if client.secret_hash.is_some() || client.previous_secret.is_some() {
                errors.push("secret_hash", "a public client has no secret");
            }
        }
        ClientType::Confidential => {
            if client.token_endpoint_auth_method == TokenEndpointAuthMethod::None {
                errors.push("token_endpoint_auth_method", "a confidential client must authenticate");
            }
        }
    }
    errors.into_result()
}

/// Checks a tenant-defined scope.
pub fn validate_scope(scope: &Scope) -> Result<(), ValidationErrors> {
    let mut errors = ValidationErrors::default();
    if !is_identifier(&scope.name) || !SCOPE_NAME.is_match(&scope.name) {
        errors.push("name", "must be a scope token made of A-Z, a-z, 0-9, '.', '_' or '-'");
    }
    for (i, claim) in scope.claims.iter().enumerate() {
        check_text(&mut errors, &format!("claims[{i}]"), claim, 128);
    }
    errors.into_result()
}

/// Checks a role.
pub fn validate_role(role: &Role) -> Result<(), ValidationErrors> {
    let mut errors = ValidationErrors::default();
    if !is_identifier(&role.name) {
        errors.push("name", "must be 1-128 characters of A-Z, a-z, 0-9, '.', '_' or '-'");
    }
    if role.description.chars().count() > 1000 {
        errors.push("description", "must be at most 1000 characters");
    }
    if role.permissions.len() > 200 {
        errors.push("permissions", "must hold at most 200 permissions");
    }
    for (i, permission) in role.permissions.iter().enumerate() {
        // A permission is a token an API compares (`invoices:read`): no spaces.
        if permission.is_empty()
            || permission.len() > 128
            || permission.chars().any(|c| c.is_whitespace() || c.is_control())
        {
            errors.push(format!("permissions[{i}]"), "must be 1-128 characters without spaces");
        }
    }
    if role.permissions.iter().collect::<BTreeSet<_>>().len() != role.permissions.len() {
        errors.push("permissions", "must not repeat a permission");
    }
    errors.into_result()
}

/// Checks an admin record.
pub fn validate_admin(admin: &Admin) -> Result<(), ValidationErrors> {
    let mut errors = ValidationErrors::default();
    check_text(&mut errors, "name", &admin.name, 200);
    if admin.token_hash.as_ref().is_some_and(|h| !h.starts_with("sha256:")) {
        errors.push("token_hash", "must be a token hash");
    }
    if admin.password_hash.as_ref().is_some_and(|h| !h.starts_with("$argon2")) {
        errors.push("password_hash", "must be an Argon2 PHC string");
    }
    if let Some(email) = &admin.email {
        check_admin_email(&mut errors, email);
    }
    if admin.token_hash.is_none() && (admin.email.is_none() || admin.password_hash.is_none()) {
        errors.push(
            "email",
            "an admin without a token signs in with an email and a password",
        );
    }
    check_reach(&mut errors, &admin.reach);
    errors.into_result()
}

/// A sign-in identifier: lowercase, no spaces or control characters, one `@` with text on
/// both sides, at most 254 bytes.
fn check_admin_email(errors: &mut ValidationErrors, email: &str) {
    let well_formed = email.len() <= 254
        && !email
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c.is_uppercase())
        && email
            .split_once('@')
            .is_some_and(|(local, domain)| !local.is_empty() && !domain.is_empty() && !domain.contains('@'));
    if !well_formed {
        errors.push("email", "must be a lowercase email address");
    }
}

/// Checks an API key: a name, a digest, and a reach of existing-looking slugs.
pub fn validate_api_key(key: &ApiKey) -> Result<(), ValidationErrors> {
    let mut errors = ValidationErrors::default();
    check_text(&mut errors, "name", &key.name, 200);
    if key.secret_digest.is_empty() {
        errors.push("secret_digest", "must be a digest");
    }
    check_reach(&mut errors, &key.reach);
    if key.expires_at.is_some_and(|at| at <= key.created_at) {
        errors.push("expires_at", "must be after the creation time");
    }
    errors.into_result()
}

/// A tenant reach names at most 100 distinct, well-formed slugs (none once every tenant
/// it named is deleted: such a credential reaches nothing).
fn check_reach(errors: &mut ValidationErrors, reach: &AdminReach) {
    if let AdminReach::Tenants(slugs) = reach {
        if slugs.len() > 100 {
            errors.push("reach.tenants", "must name at most 100 tenants");
        }
        for slug in slugs {
            check_slug(errors, "reach.tenants", slug);
        }
        if slugs.iter().collect::<BTreeSet<_>>().len() != slugs.len() {
            errors.push("reach.tenants", "must not repeat a tenant");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs() {
        for ok in ["local", "a", "acme-corp", "a1-b2-c3", &"a".repeat(63)] {
            assert!(validate_slug(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "-a",
            "a-",
            "a--b",
            "Acme",
            "a_b",
            "a.b",
            "../x",
            "é",
            &"a".repeat(64),
        ] {
            assert!(validate_slug(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn settings_with_bad_urls_and_values_are_refused_with_paths() {
        let mut s = TenantSettings::default();
        s.branding.logo_url = Some("not a url".into());
        s.issuer = IssuerMode::Custom {
            url: "https://login.example".into(),
        };
        s.cors_allowed_origins = vec!["https://ok.example".into(), "https://x.example/path".into()];
        s.token_lifetimes.access_token_secs = 0;
        s.custom_fields.push(CustomField {
            name: "x\"; DROP TABLE users; --".into(),
            field_type: CustomFieldType::Text,
            required: false,
            unique: false,
            indexed: false,
            scope: None,
        });
        let errs = validate_settings(&s).unwrap_err();
        let fields: Vec<_> = errs.0.iter().map(|e| e.field.as_str()).collect();
        assert!(fields.contains(&"settings.branding.logo_url"));
        assert!(fields.contains(&"settings.issuer.mode"));
        assert!(fields.contains(&"settings.cors_allowed_origins[1]"));
        assert!(!fields.contains(&"settings.cors_allowed_origins[0]"));
        assert!(fields.contains(&"settings.token_lifetimes.access_token_secs"));
        assert!(fields.contains(&"settings.custom_fields[0].name"));
    }

    #[test]
    fn an_upstream_provider_maps_claims_only_to_fields_that_exist() {
        let mut s = TenantSettings::default();
        s.custom_fields.push(CustomField {
            name: "department".into(),
            field_type: CustomFieldType::Text,
            required: false,
            unique: false,
            indexed: false,
            scope: None,
        });
        let mapping = [
            ("given_name", "given_name"),
            ("custom.department", "dept"),
            ("custom.missing", "x"),
            ("password", "x"),
            ("name", ""),
        ];
        s.social_providers.push(SocialProvider {
            id: "corp".into(),
            kind: SocialProviderKind::Oidc,
            display_name: Some("Corp".into()),
            client_id: "c".into(),
            client_secret: None,
            issuer_url: Some("https://sso.corp.example".into()),
            scopes: vec!["openid".into(), "bad scope".into()],
            enabled: true,
            icon_url: Some("javascript:alert(1)".into()),
            link_verified_email: false,
            trust_upstream_mfa: false,
            claim_mapping: mapping.iter().map(|(f, c)| ((*f).into(), (*c).into())).collect(),
            client_auth: Some(UpstreamClientAuth::ClientSecretPost),
            fetch_userinfo: false,
            allowed_tenants: vec!["a b".into()],
        });
        let errs = validate_settings(&s).unwrap_err();
        let fields: Vec<_> = errs.0.iter().map(|e| e.field.as_str()).collect();
        let base = "settings.social_providers[0]";
        for bad in [
            "claim_mapping.custom.missing",
            "claim_mapping.password",
            "claim_mapping.name",
            "scopes",
            "icon_url",
            "client_secret",
            "allowed_tenants",
        ] {
            assert!(fields.contains(&format!("{base}.{bad}").as_str()), "{bad}: {fields:?}");
        }
        for good in [
            "claim_mapping.given_name",
            "claim_mapping.custom.department",
            "issuer_url",
        ] {
            assert!(
                !fields.contains(&format!("{base}.{good}").as_str()),
                "{good}: {fields:?}"
            );
        }
    }

    #[test]
    fn default_settings_are_valid() {
        validate_settings(&TenantSettings::default()).unwrap();
    }

    #[test]
    fn password_hash_params_are_bounded() {
        let with = |memory_kib, iterations, parallelism| {
            let mut s = TenantSettings::default();
            s.security.password_hash = PasswordHashParams {
                memory_kib,
                iterations,
                parallelism,
            };
            validate_settings(&s).map_err(|e| e.0.into_iter().map(|e| e.field).collect::<Vec<_>>())
        };
        // OWASP (the default), Keycloak's cost, and both ends of every range.
        for ok in [(19456, 2, 1), (7168, 5, 1), (1024, 1, 1), (1024 * 1024, 20, 16)] {
            assert!(with(ok.0, ok.1, ok.2).is_ok(), "{ok:?}");
        }
        let p = "settings.security.password_hash";
        assert_eq!(with(1023, 2, 1).unwrap_err(), [format!("{p}.memory_kib")]);
        assert_eq!(with(1024 * 1024 + 1, 2, 1).unwrap_err(), [format!("{p}.memory_kib")]);
        assert_eq!(with(19456, 0, 1).unwrap_err(), [format!("{p}.iterations")]);
        assert_eq!(with(19456, 21, 1).unwrap_err(), [format!("{p}.iterations")]);
        assert_eq!(with(19456, 2, 0).unwrap_err(), [format!("{p}.parallelism")]);
        assert_eq!(with(19456, 2, 17).unwrap_err(), [format!("{p}.parallelism")]);
    }

    #[test]
    fn security_without_password_hash_loads_with_the_default() {
        // A settings file written before the field existed.
        let old = r#"{"password_min_length": 12, "max_login_attempts": 3}"#;
        let policy: SecurityPolicy = serde_json::from_str(old).unwrap();
        assert_eq!(policy.password_min_length, 12);
        assert_eq!(policy.password_hash, PasswordHashParams::default());
        assert_eq!(
            (
                policy.password_hash.memory_kib,
                policy.password_hash.iterations,
                policy.password_hash.parallelism
            ),
            (19456, 2, 1)
        );
        let partial: SecurityPolicy =
            serde_json::from_str(r#"{"password_hash": {"memory_kib": 7168, "iterations": 5}}"#).unwrap();
        assert_eq!(
            partial.password_hash,
            PasswordHashParams {
                memory_kib: 7168,
                iterations: 5,
                parallelism: 1
            }
        );
        assert!(serde_json::from_str::<SecurityPolicy>(r#"{"password_hash": {"memory": 1}}"#).is_err());
    }

    #[test]
    fn db_driver_and_dsn_must_agree() {
        let mut s = TenantSettings {
            user_db: Some(UserDbSettings {
                driver: DbDriver::Postgres,
                dsn: None,
            }),
            ..Default::default()
        };
        assert!(validate_settings(&s).is_err());
        s.user_db = Some(UserDbSettings {
            driver: DbDriver::Sqlite,
            dsn: None,
        });
        assert!(validate_settings(&s).is_ok());
    }

    #[test]
    fn public_clients_cannot_hold_secrets_or_client_credentials() {
        let now = chrono::Utc::now();
        let mut c = Client {
            client_id: "spa".into(),
            name: "SPA".into(),
            client_type: ClientType::Public,
            redirect_uris: vec!["http://localhost:3000/cb".into()],
            post_logout_redirect_uris: vec![],
            allowed_origins: vec![],
            grant_types: vec![GrantType::AuthorizationCode],
            scopes: vec!["openid".into()],
            token_endpoint_auth_method: TokenEndpointAuthMethod::None,
            secret_hash: None,
            previous_secret: None,
            access_token_secs: None,
            id_token_secs: None,
            refresh_token_secs: None,
            jwks: None,
            backchannel_logout_uri: None,
            verify_email_url: None,
            reset_password_url: None,
            id_token_signed_response_alg: None,
            access_token_signed_response_alg: None,
            first_party: false,
            quotas: Default::default(),
            created_at: now,
            updated_at: now,
        };
        validate_client(&c).unwrap();
        c.grant_types.push(GrantType::ClientCredentials);
        assert!(validate_client(&c).is_err());
        c.grant_types.pop();
        c.redirect_uris = vec!["http://x/cb#frag".into()];
        assert!(validate_client(&c).is_err());
        c.redirect_uris = vec![];
        c.client_id = crate::model::ACCOUNT_CLIENT_ID.into();
        let errs = validate_client(&c).unwrap_err();
        assert!(
            errs.0.iter().any(|e| e.field == "client_id"),
            "the account page's id is reserved"
        );
        c.client_id = "../evil".into();
        let errs = validate_client(&c).unwrap_err();
        assert!(errs.0.iter().any(|e| e.field == "client_id"));
        assert!(errs.0.iter().any(|e| e.field == "redirect_uris"));
    }
}
