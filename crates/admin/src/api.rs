//! The admin API's request bodies, in one place: the server reads them and describes them
//! in its OpenAPI document, and the CLI builds them, so neither writes the other's JSON by
//! hand. (Bodies with rules of their own live beside those rules: `users::CreateUser`,
//! `clients::ClientInput`, `access::NewApiKey`, `admins::NewAdmin`, `signin::SignIn`.)
//!
//! Every body refuses unknown fields; optional fields a client leaves out are not sent.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tenantry_controlplane::model::{AdminAccess, AdminReach, Language, SigningAlg};
use utoipa::ToSchema;

/// `POST /v1/admin/tenants`: a new tenant; `settings` are merged onto a new tenant's
/// defaults.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTenant {
    /// Lowercase letters, digits and `-`; the tenant's issuer is `{public_url}/t/{slug}`.
    pub slug: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<tenantry_controlplane::model::TenantSettings>)]
    pub settings: Option<Value>,
}

/// `PATCH /v1/admin/tenants/{slug}`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchTenant {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// An RFC 7396 merge patch over the (redacted) settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub settings: Option<Value>,
}

/// `POST /v1/admin/tenants/{slug}/database/adopt` (the body is optional).
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AdoptDatabase {
    /// New `settings.user_db` to store first (as in the tenant settings); without it the
    /// database already configured is adopted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<tenantry_controlplane::model::UserDbSettings>)]
    pub user_db: Option<Value>,
}

/// `PATCH /v1/admin/admins/{id}`: absent fields stay as they are.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AdminChange {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reach: Option<AdminReach>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access: Option<AdminAccess>,
}

/// `POST /v1/admin/auth/refresh` and `/logout`: a refresh token of an admin session.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AdminRefreshBody {
    pub refresh_token: String,
}

/// `POST /v1/admin/tenants/{slug}/clients/{client_id}/secret` (the body is optional).
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SecretRotation {
    /// Seconds the replaced secret keeps working (default 0: it stops at once; at most
    /// 30 days).
    #[serde(default)]
    #[schema(maximum = 2592000)]
    pub overlap_secs: u32,
}

/// `PUT /v1/admin/tenants/{slug}/roles/{name}`: a role's definition; its name is in the
/// path.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RoleInput {
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub permissions: Vec<String>,
}

/// `PUT /v1/admin/tenants/{slug}/scopes/{name}`: a scope's definition; its name is in the
/// path.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ScopeInput {
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub claims: Vec<String>,
}

/// `PUT /v1/admin/tenants/{slug}/users/{id}/password`: the new password; the tenant's
/// password policy applies.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetPassword {
    pub password: String,
}

/// `POST /v1/admin/tenants/{slug}/users/{id}/disable`: why and until when (both optional:
/// `{}` disables until enabled).
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DisableUser {
    /// Why, for other administrators (at most 500 characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(max_length = 500)]
    pub reason: Option<String>,
    /// When the suspension ends by itself (RFC 3339, in the future); without it the user
    /// stays disabled until enabled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<DateTime<Utc>>,
}

/// `POST /v1/admin/tenants/{slug}/keys/rotate` (the body is optional).
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RotateKeysRequest {
    /// Algorithms to rotate (each at most once); all when absent or empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schema(value_type = std::collections::BTreeSet<SigningAlg>)]
    pub algorithms: Vec<SigningAlg>,
}

/// `POST /v1/admin/tenants/{slug}/email/test`: where to send the test message, and in
/// which language.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TestMail {
    /// The recipient's address.
    pub to: String,
    /// Defaults to the tenant's `settings.language`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<Language>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_a_client_leaves_out_is_not_sent_and_unknown_fields_are_refused() {
        let body = serde_json::to_value(PatchTenant {
            display_name: Some("Acme".into()),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(body, serde_json::json!({"display_name": "Acme"}));
        let wrong: Result<RoleInput, _> = serde_json::from_str(r#"{"permissions": [], "admin": true}"#);
        assert!(wrong.unwrap_err().to_string().contains("admin"));
        let round: CreateTenant = serde_json::from_value(
            serde_json::to_value(CreateTenant {
                slug: "acme".into(),
                ..Default::default()
            })
            .unwrap(),
        )
        .unwrap();
        assert_eq!(round.slug, "acme");
    }
}
