//! Installation admins as records: making one from operator input (offline from the CLI,
//! or through the admin API), and how the API shows one (never a hash or a secret).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tenantry_controlplane::model::{Admin, AdminAccess, AdminReach};
use tenantry_controlplane::validate::validate_admin;
use tenantry_errors::ApiError;
use uuid::Uuid;

use crate::signin::check_new_password;

/// A new admin (`POST /v1/admin/admins`, `tenantry admin create`).
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewAdmin {
    pub email: String,
    /// Defaults to the email.
    #[serde(default)]
    pub name: Option<String>,
    /// The admin's own password; without one a one-time password is made (shown once),
    /// to be replaced at the first sign-in.
    #[serde(default)]
    pub password: Option<String>,
    #[serde(default)]
    pub reach: AdminReach,
    #[serde(default)]
    pub access: AdminAccess,
}

/// An admin as the API shows it.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AdminView {
    pub id: Uuid,
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    pub reach: AdminReach,
    pub access: AdminAccess,
    /// `password` (signs in with password and TOTP) or `token` (the development
    /// bootstrap token).
    pub credential: &'static str,
    pub totp_enabled: bool,
    pub password_temporary: bool,
    pub created_at: DateTime<Utc>,
}

impl From<&Admin> for AdminView {
    fn from(admin: &Admin) -> Self {
        Self {
            id: admin.id,
            name: admin.name.clone(),
            email: admin.email.clone(),
            reach: admin.reach.clone(),
            access: admin.access,
            credential: if admin.password_hash.is_some() {
                "password"
            } else {
                "token"
            },
            totp_enabled: admin.totp.as_ref().is_some_and(|t| t.confirmed),
            password_temporary: admin.password_temporary,
            created_at: admin.created_at,
        }
    }
}

/// Length of a one-time password (URL-safe base64 of 15 random bytes: 20 characters).
const ONE_TIME_PASSWORD_BYTES: usize = 15;

/// Builds an admin from `input` (the password hashed; a one-time password made when none
/// is given, and answered to be shown once). Nothing is stored here.
pub async fn make_admin(input: NewAdmin, now: DateTime<Utc>) -> Result<(Admin, Option<String>), ApiError> {
    let email = input.email.trim().to_lowercase();
    let (password, temporary) = match input.password {
        Some(password) => {
            check_new_password("password", &password)?;
            (password, false)
        }
        None => (tenantry_crypto::random_token(ONE_TIME_PASSWORD_BYTES), true),
    };
    let admin = Admin {
        email: Some(email.clone()),
        reach: input.reach,
        access: input.access,
        password_hash: Some(tenantry_accounts::passwords::hash(password.clone()).await?),
        password_temporary: temporary,
        ..Admin::new(Uuid::new_v4(), input.name.unwrap_or_else(|| email.clone()), now)
    };
    validate_admin(&admin).map_err(ApiError::validation)?;
    Ok((admin, temporary.then_some(password)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(password: Option<&str>) -> NewAdmin {
        NewAdmin {
            email: " Ops@Example.COM ".into(),
            name: None,
            password: password.map(str::to_owned),
            reach: AdminReach::Tenants(vec!["acme".into()]),
            access: AdminAccess::ReadOnly,
        }
    }

    #[tokio::test]
    async fn an_admin_is_made_with_a_hashed_or_one_time_password() {
        let (admin, shown) = make_admin(input(Some("correct horse battery")), Utc::now())
            .await
            .unwrap();
        assert_eq!(admin.email.as_deref(), Some("ops@example.com"));
        assert_eq!(admin.name, "ops@example.com");
        assert!(shown.is_none() && !admin.password_temporary);
        assert!(
            tenantry_accounts::passwords::verify(admin.password_hash.clone().unwrap(), "correct horse battery".into())
                .await
        );
        assert!(admin.token_hash.is_none() && admin.totp.is_none());

        let (admin, shown) = make_admin(input(None), Utc::now()).await.unwrap();
        let one_time = shown.expect("a one-time password is shown");
        assert!(one_time.len() >= 20 && admin.password_temporary);
        assert!(tenantry_accounts::passwords::verify(admin.password_hash.clone().unwrap(), one_time).await);
        let view = AdminView::from(&admin);
        assert_eq!((view.credential, view.totp_enabled), ("password", false));
        assert!(!serde_json::to_string(&view).unwrap().contains("argon2"));
    }

    #[tokio::test]
    async fn short_passwords_and_bad_emails_are_refused() {
        let err = make_admin(input(Some("short")), Utc::now()).await.unwrap_err();
        assert_eq!(err.errors[0].field, "password");
        let mut bad = input(None);
        bad.email = "not an email".into();
        let err = make_admin(bad, Utc::now()).await.unwrap_err();
        assert_eq!(err.errors[0].field, "email");
    }
}
