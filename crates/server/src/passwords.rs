//! Password hashing (Argon2id, PHC strings) and the tenant password policy.
//!
//! Hashing is CPU- and memory-heavy on purpose, so it runs on the blocking pool, never on
//! the async workers. Input is capped before hashing, so a huge "password" cannot turn
//! into a hashing denial of service.

use argon2::{Algorithm, Argon2, Params, PasswordHasher, PasswordVerifier, Version};
use tenantry_controlplane::model::SecurityPolicy;
use tenantry_controlplane::{FieldError, ValidationErrors};

use crate::error::ApiError;

/// Longest password accepted, in bytes.
pub const MAX_PASSWORD_BYTES: usize = 1024;

/// OWASP's Argon2id recommendation: 19 MiB, 2 passes, 1 lane.
const MEMORY_KIB: u32 = 19 * 1024;
const PASSES: u32 = 2;
const LANES: u32 = 1;

fn hasher() -> Argon2<'static> {
    let params = Params::new(MEMORY_KIB, PASSES, LANES, None).expect("valid Argon2 parameters");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// Hashes `password` into a PHC string (`$argon2id$v=19$m=...`) with a fresh salt.
pub async fn hash(password: String) -> Result<String, ApiError> {
    let password = zeroize::Zeroizing::new(password);
    tokio::task::spawn_blocking(move || hasher().hash_password(password.as_bytes()).map(|h| h.to_string()))
        .await
        .map_err(|_| ApiError::internal())?
        .map_err(|e| {
            tracing::error!(error = %e, "password hashing failed");
            ApiError::internal()
        })
}

/// Checks `password` against a stored PHC string (any Argon2 parameters).
pub async fn verify(phc: String, password: String) -> bool {
    let password = zeroize::Zeroizing::new(password);
    if password.len() > MAX_PASSWORD_BYTES {
        return false;
    }
    tokio::task::spawn_blocking(move || hasher().verify_password(password.as_bytes(), phc.as_str()).is_ok())
        .await
        .unwrap_or(false)
}

/// Checks a new password against the tenant's policy; every failed rule is one message
/// on `field`.
pub fn check_policy(policy: &SecurityPolicy, email: &str, password: &str, field: &str) -> Result<(), ApiError> {
    let mut problems = Vec::new();
    let chars = password.chars().count();
    if password.len() > MAX_PASSWORD_BYTES {
        problems.push(format!("must be at most {MAX_PASSWORD_BYTES} bytes"));
    }
    if chars < policy.password_min_length as usize {
        problems.push(format!("must be at least {} characters", policy.password_min_length));
    }
    let rules = [
        (
            policy.password_require_lowercase,
            password.chars().any(char::is_lowercase),
            "a lowercase letter",
        ),
        (
            policy.password_require_uppercase,
            password.chars().any(char::is_uppercase),
            "an uppercase letter",
        ),
        (
            policy.password_require_digit,
            password.chars().any(|c| c.is_ascii_digit()),
            "a digit",
        ),
        (
            policy.password_require_symbol,
            password.chars().any(|c| !c.is_alphanumeric() && !c.is_whitespace()),
            "a symbol",
        ),
    ];
    for (required, present, what) in rules {
        if required && !present {
            problems.push(format!("must contain {what}"));
        }
    }
    if !email.is_empty() && password.trim().eq_ignore_ascii_case(email.trim()) {
        problems.push("must not be the email address".to_owned());
    }
    if problems.is_empty() {
        return Ok(());
    }
    Err(ApiError::validation(ValidationErrors(
        problems
            .into_iter()
            .map(|message| FieldError {
                field: field.to_owned(),
                message,
            })
            .collect(),
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_are_argon2id_phc_strings_that_verify() {
        let phc = hash("correct horse battery".into()).await.unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
        assert!(verify(phc.clone(), "correct horse battery".into()).await);
        assert!(!verify(phc.clone(), "correct horse batterY".into()).await);
        assert!(!verify("not a phc".into(), "x".into()).await);
        assert_ne!(phc, hash("correct horse battery".into()).await.unwrap(), "fresh salt");
    }

    #[test]
    fn policy_lists_every_broken_rule() {
        let policy = SecurityPolicy {
            password_min_length: 10,
            password_require_uppercase: true,
            password_require_digit: true,
            ..SecurityPolicy::default()
        };
        let e = check_policy(&policy, "a@b.c", "short", "password").unwrap_err();
        assert_eq!(e.errors.len(), 3, "{:?}", e.errors);
        assert!(check_policy(&policy, "a@b.c", "Longenough1", "password").is_ok());
        let same = SecurityPolicy::default();
        assert!(check_policy(&same, "ada@example.com", "ADA@example.com", "password").is_err());
        assert!(check_policy(&same, "a@b.c", &"x".repeat(2000), "password").is_err());
    }
}
