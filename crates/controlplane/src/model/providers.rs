//! A tenant's upstream identity providers (`settings.social_providers`): whom its users
//! may sign in through (federation, the `tenantry-federation` crate), with which client
//! credentials, and what the first sign-in fills in.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::SealedSecret;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SocialProvider {
    /// Stable id inside the tenant, e.g. `google`.
    pub id: String,
    pub kind: SocialProviderKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    pub client_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<SealedSecret>,
    /// Issuer URL for generic OIDC providers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer_url: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scopes: Vec<String>,
    #[serde(default = "yes")]
    pub enabled: bool,
    /// The image on the provider's button of the hosted pages (an http(s) URL).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub icon_url: Option<String>,
    /// An upstream identity seen for the first time whose email the upstream asserts as
    /// verified is linked to the account with that address without asking for the
    /// account's password. Off: the user proves the existing account first.
    #[serde(default)]
    pub link_verified_email: bool,
    /// The tenant's second factor is not asked again when the upstream's ID token says it
    /// did multi-factor authentication (`amr` holds `mfa`).
    #[serde(default)]
    pub trust_upstream_mfa: bool,
    /// Profile and custom fields filled from the upstream's claims when an account is
    /// created at its first sign-in: field (`given_name`, `family_name`, `name`,
    /// `picture`, `locale`, `phone_number`, `username`, or `custom.<field>`) → claim name.
    /// Without an entry, the standard profile claims fill their own fields.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub claim_mapping: BTreeMap<String, String>,
    /// How Tenantry authenticates at the provider's token endpoint. Unset: with a client
    /// secret, `client_secret_basic` (or `client_secret_post` when the provider supports
    /// only that); without one, as a public client (PKCE only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_auth: Option<UpstreamClientAuth>,
    /// Read the provider's userinfo endpoint after the code exchange and add its claims
    /// (for providers that put only `sub` in the ID token).
    #[serde(default)]
    pub fetch_userinfo: bool,
    /// `microsoft` signing in at a multi-tenant issuer (`common`, `organizations`): the
    /// directory ids (`tid`) whose users may sign in. Empty: any directory.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_tenants: Vec<String>,
}

/// How Tenantry authenticates to an upstream's token endpoint (RFC 6749 section 2.3,
/// OpenID Connect Core section 9).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum UpstreamClientAuth {
    ClientSecretBasic,
    ClientSecretPost,
    /// A JWT signed with the tenant's own active signing key (RFC 7523), audience the
    /// provider's issuer: register the tenant's JWKS (`{issuer}/jwks.json`) at the provider.
    PrivateKeyJwt,
}

/// The account fields an upstream claim can fill ([`SocialProvider::claim_mapping`]),
/// besides `custom.<field>`.
pub const MAPPABLE_PROFILE_FIELDS: &[&str] = &[
    "given_name",
    "family_name",
    "name",
    "picture",
    "locale",
    "phone_number",
    "username",
];

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum SocialProviderKind {
    Google,
    Github,
    Microsoft,
    Oidc,
}
