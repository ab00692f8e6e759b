//! The second factor: TOTP (RFC 6238) and recovery codes, shared by the hosted pages and
//! the headless API.
//!
//! A TOTP secret is 160 random bits, sealed at rest for (tenant, `totp.<user>`). Codes are
//! 6 digits over 30-second steps, accepted one step either side of now; the matched step
//! is recorded in the same statement that checks it, so a code (or any earlier one) can
//! be used only once. Recovery codes are 80-bit random strings, shown once, stored as
//! hashes, each usable once.

use chrono::Utc;
use tenantry_crypto::{SealContext, SecretBox, constant_time_eq, hash_token};
use tenantry_dataplane::{MfaRepository, TenantDb};
use totp_rs::{Algorithm, Secret, Totp};
use uuid::Uuid;

use tenantry_errors::ApiError;

/// How many recovery codes a user holds.
pub const RECOVERY_CODE_COUNT: usize = 10;
const DIGITS: u8 = 6;
const STEP_SECS: u64 = 30;
/// Steps accepted either side of the current one (clock drift, slow typing).
const SKEW_STEPS: u64 = 1;

/// What a user needs to add the account to an authenticator app.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct Enrolment {
    /// The secret in base32, for manual entry.
    pub secret: String,
    /// `otpauth://totp/...` (Key Uri Format).
    pub otpauth_uri: String,
    /// The URI as a QR code, an SVG document.
    pub qr_svg: String,
}

/// The name authenticator apps show for the tenant: its brand, else its display name.
pub fn issuer_name(ctx: &tenantry_tenancy::TenantContext) -> &str {
    let tenant = &ctx.entry.tenant;
    tenant.settings.branding.name.as_deref().unwrap_or(&tenant.display_name)
}

fn seal_context(tenant: Uuid, user: Uuid) -> (String, String) {
    (tenant.to_string(), format!("totp.{user}"))
}

/// `:` separates issuer and account in the otpauth label, so it may appear in neither.
fn label_part(text: &str) -> String {
    text.replace(':', " ")
}

fn totp(secret: Vec<u8>, issuer: &str, account: &str) -> Result<Totp, ApiError> {
    totp_rs::Builder::new()
        .with_algorithm(Algorithm::SHA1)
        .with_digits(DIGITS)
        .with_skew(SKEW_STEPS as u16)
        .with_step_duration(STEP_SECS)
        .with_secret(secret)
        .with_issuer(Some(label_part(issuer)))
        .with_account_name(label_part(account))
        .build()
        .map_err(|e| {
            tracing::error!(error = %e, "TOTP parameters refused");
            ApiError::internal()
        })
}

/// Starts (or restarts) enrolment: a fresh secret, stored unconfirmed until a code from
/// it is presented to [`confirm`].
pub async fn enrol(
    secrets: &SecretBox,
    db: &TenantDb,
    tenant: Uuid,
    issuer_name: &str,
    user: Uuid,
    email: &str,
) -> Result<Enrolment, ApiError> {
    let encoded = Secret::generate().to_base32();
    let enrolment = enrolment_of(&encoded, issuer_name, email)?;
    let (owner, field) = seal_context(tenant, user);
    let sealed = secrets.seal(SealContext::new(&owner, &field), &encoded);
    if !db.put_totp(user, &sealed, Utc::now()).await? {
        return Err(ApiError::new(
            tenantry_errors::ErrorCode::MfaAlreadyEnabled,
            "TOTP is already enabled; disable it first to enrol a new authenticator",
        ));
    }
    Ok(enrolment)
}

/// A fresh TOTP secret (base32) for a credential kept outside a tenant database (an
/// installation admin's, in the control plane).
pub fn new_secret() -> zeroize::Zeroizing<String> {
    zeroize::Zeroizing::new(Secret::generate().to_base32())
}

/// What an authenticator app needs for the secret `encoded`.
pub fn enrolment_for(encoded: &str, issuer_name: &str, account: &str) -> Result<Enrolment, ApiError> {
    enrolment_of(encoded, issuer_name, account)
}

/// The time step at which `code` is valid for the secret `encoded` (one step either side
/// of `now`), or `None`. The caller spends the step, so a code is used once.
pub fn code_step(encoded: &str, code: &str, now: i64) -> Result<Option<i64>, ApiError> {
    let code: String = code.chars().filter(|c| !c.is_whitespace()).collect();
    if code.len() != DIGITS as usize || !code.bytes().all(|b| b.is_ascii_digit()) {
        return Ok(None);
    }
    let totp = totp(decode_secret(encoded)?, "-", "-")?;
    Ok(matching_step(&totp, &code, now.max(0) as u64).map(|step| step as i64))
}

/// The enrolment still waiting for its first code, to show it again.
pub async fn pending_enrolment(
    secrets: &SecretBox,
    db: &TenantDb,
    tenant: Uuid,
    issuer_name: &str,
    user: Uuid,
    email: &str,
) -> Result<Option<Enrolment>, ApiError> {
    match db.totp(user).await? {
        Some(credential) if credential.confirmed_at.is_none() => {
            let encoded = open_secret(secrets, tenant, user, &credential.secret_sealed)?;
            Ok(Some(enrolment_of(&encoded, issuer_name, email)?))
        }
        _ => Ok(None),
    }
}

fn enrolment_of(encoded: &str, issuer_name: &str, email: &str) -> Result<Enrolment, ApiError> {
    let totp = totp(decode_secret(encoded)?, issuer_name, email)?;
    let uri = totp.to_url().map_err(|_| ApiError::internal())?;
    let qr = qrcode::QrCode::new(uri.as_bytes()).map_err(|_| ApiError::internal())?;
    let qr_svg = qr
        .render::<qrcode::render::svg::Color<'_>>()
        .min_dimensions(200, 200)
        .build();
    Ok(Enrolment {
        secret: encoded.to_owned(),
        otpauth_uri: uri,
        qr_svg,
    })
}

fn open_secret(
    secrets: &SecretBox,
    tenant: Uuid,
    user: Uuid,
    sealed: &str,
) -> Result<zeroize::Zeroizing<String>, ApiError> {
    let (owner, field) = seal_context(tenant, user);
    secrets.open(SealContext::new(&owner, &field), sealed).map_err(|e| {
        tracing::error!(%user, error = %e, "TOTP secret does not open");
        ApiError::internal()
    })
}

fn decode_secret(encoded: &str) -> Result<Vec<u8>, ApiError> {
    Ok(Secret::try_from_base32(encoded)
        .map_err(|_| ApiError::internal())?
        .as_bytes()
        .to_vec())
}

/// Whether the user has a confirmed TOTP credential.
pub async fn enrolled(db: &TenantDb, user: Uuid) -> Result<bool, ApiError> {
    Ok(db.totp(user).await?.is_some_and(|t| t.confirmed_at.is_some()))
}

/// Checks `code` against the user's secret (confirmed or, with `pending`, the one being
/// enrolled) and spends its time step. False for a wrong, stale or replayed code.
pub async fn check_code(
    secrets: &SecretBox,
    db: &TenantDb,
    tenant: Uuid,
    user: Uuid,
    code: &str,
    pending: bool,
) -> Result<bool, ApiError> {
    let Some(credential) = db.totp(user).await? else {
        return Ok(false);
    };
    code_matches(secrets, db, tenant, &credential, code, pending).await
}

/// Checks `code` against one stored credential and spends its step.
async fn code_matches(
    secrets: &SecretBox,
    db: &TenantDb,
    tenant: Uuid,
    credential: &tenantry_dataplane::model::TotpCredential,
    code: &str,
    pending: bool,
) -> Result<bool, ApiError> {
    let user = credential.user_id;
    if credential.confirmed_at.is_some() == pending {
        return Ok(false);
    }
    let code: String = code.chars().filter(|c| !c.is_whitespace()).collect();
    if code.len() != DIGITS as usize || !code.bytes().all(|b| b.is_ascii_digit()) {
        return Ok(false);
    }
    let encoded = open_secret(secrets, tenant, user, &credential.secret_sealed)?;
    let totp = totp(decode_secret(&encoded)?, "-", "-")?;
    let Some(step) = matching_step(&totp, &code, Utc::now().timestamp().max(0) as u64) else {
        return Ok(false);
    };
    Ok(db.use_totp_step(user, step as i64).await?)
}

/// A second factor from an enrolled user: six digits are a TOTP code, anything else is
/// taken as a recovery code. False when it is neither (or already used).
pub async fn check_second_factor(
    secrets: &SecretBox,
    db: &TenantDb,
    tenant: Uuid,
    user: Uuid,
    code: &str,
) -> Result<bool, ApiError> {
    if code.trim().len() == DIGITS as usize {
        check_code(secrets, db, tenant, user, code, false).await
    } else {
        use_recovery_code(db, user, code).await
    }
}

/// The step within the skew window whose code equals `code` (compared in constant time).
fn matching_step(totp: &Totp, code: &str, now: u64) -> Option<u64> {
    let current = now / STEP_SECS;
    (current.saturating_sub(SKEW_STEPS)..=current + SKEW_STEPS)
        .find(|step| constant_time_eq(totp.generate(step * STEP_SECS).to_string().as_bytes(), code.as_bytes()))
}

/// Confirms a pending enrolment with a code from it; returns fresh recovery codes.
pub async fn confirm(
    secrets: &SecretBox,
    db: &TenantDb,
    tenant: Uuid,
    user: Uuid,
    code: &str,
) -> Result<Option<Vec<String>>, ApiError> {
    let Some(pending) = db.totp(user).await?.filter(|c| c.confirmed_at.is_none()) else {
        return Ok(None);
    };
    // The secret confirmed is the one the code was checked against, even if another
    // enrolment replaced it in between (then nothing is confirmed).
    if !code_matches(secrets, db, tenant, &pending, code, true).await?
        || !db.confirm_totp(user, &pending.secret_sealed, Utc::now()).await?
    {
        return Ok(None);
    }
    Ok(Some(regenerate_recovery_codes(db, user).await?))
}

/// Replaces the user's recovery codes; the new ones are returned once.
pub async fn regenerate_recovery_codes(db: &TenantDb, user: Uuid) -> Result<Vec<String>, ApiError> {
    let codes: Vec<String> = (0..RECOVERY_CODE_COUNT).map(|_| new_recovery_code()).collect();
    let hashes: Vec<String> = codes.iter().map(|c| hash_token(&normalize_recovery_code(c))).collect();
    db.replace_recovery_codes(user, &hashes, Utc::now()).await?;
    Ok(codes)
}

/// Spends one recovery code; false when unknown or already used.
pub async fn use_recovery_code(db: &TenantDb, user: Uuid, code: &str) -> Result<bool, ApiError> {
    let normalized = normalize_recovery_code(code);
    if normalized.len() != 16 {
        return Ok(false);
    }
    Ok(db.use_recovery_code(user, &hash_token(&normalized), Utc::now()).await?)
}

/// Removes the second factor: the TOTP secret, recovery codes and remembered devices.
pub async fn disable(db: &TenantDb, user: Uuid) -> Result<(), ApiError> {
    db.delete_totp(user).await?;
    db.replace_recovery_codes(user, &[], Utc::now()).await?;
    db.forget_devices(user, Utc::now()).await?;
    Ok(())
}

/// Trusts this device for `days` after a second factor: answers the token the device
/// keeps (a cookie or the app's storage); only its hash is stored.
pub async fn remember_device(
    db: &TenantDb,
    user: Uuid,
    days: u32,
    user_agent: Option<String>,
) -> Result<String, ApiError> {
    let token = tenantry_crypto::random_token(32);
    let now = Utc::now();
    db.trust_device(&tenantry_dataplane::model::TrustedDevice {
        token_hash: hash_token(&token),
        user_id: user,
        user_agent,
        created_at: now,
        expires_at: now + chrono::Duration::days(i64::from(days)),
        revoked_at: None,
    })
    .await?;
    Ok(token)
}

/// Whether `token` is a live trusted-device token of `user`.
pub async fn device_trusted(db: &TenantDb, user: Uuid, token: &str) -> Result<bool, ApiError> {
    Ok(db.trusted_device(&hash_token(token), user, Utc::now()).await?.is_some())
}

/// 16 base32 characters (80 bits) shown as `xxxx-xxxx-xxxx-xxxx`.
fn new_recovery_code() -> String {
    let secret = Secret::generate();
    let chars: Vec<char> = secret.to_base32().to_lowercase().chars().take(16).collect();
    chars
        .chunks(4)
        .map(|c| c.iter().collect::<String>())
        .collect::<Vec<_>>()
        .join("-")
}

/// Case, dashes and spaces do not matter when a recovery code is typed back.
fn normalize_recovery_code(code: &str) -> String {
    code.chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

/// The code an authenticator app shows now for the base32 secret of an enrolment.
#[cfg(test)]
pub(crate) fn code_now(encoded: &str) -> String {
    let totp = totp(decode_secret(encoded).unwrap(), "Acme", "a@example.com").unwrap();
    totp.generate(Utc::now().timestamp() as u64).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_match_within_one_step_and_no_further() {
        // RFC 6238 appendix B secret (SHA-1): 59 s → 94287082 with 8 digits; we use 6.
        let totp = totp(b"12345678901234567890".to_vec(), "Acme", "a@example.com").unwrap();
        assert_eq!(totp.generate(59).to_string(), "287082");
        assert_eq!(matching_step(&totp, "287082", 59), Some(1));
        assert_eq!(matching_step(&totp, "287082", 89), Some(1), "one step late");
        assert_eq!(matching_step(&totp, "287082", 125), None, "two steps late");
        assert_eq!(matching_step(&totp, "000000", 59), None);
    }

    #[test]
    fn recovery_codes_are_long_and_normalized() {
        let code = new_recovery_code();
        assert_eq!(code.len(), 19);
        assert_eq!(
            normalize_recovery_code(&code.to_uppercase().replace('-', " ")),
            code.replace('-', "")
        );
        assert_ne!(new_recovery_code(), code);
    }

    #[test]
    fn labels_cannot_break_the_otpauth_uri() {
        let totp = totp(vec![7; 20], "Acme: Corp", "a:b@example.com").unwrap();
        let uri = totp.to_url().unwrap();
        assert!(uri.starts_with("otpauth://totp/"), "{uri}");
    }
}
