//! OAuth clients from admin input: the writable fields, the client they describe, and the
//! secret a confidential client is given (shown once; only a keyed digest is stored).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tenantry_controlplane::model::{
    Client, ClientQuotas, ClientType, GrantType, SigningAlg, SystemSecrets, TokenEndpointAuthMethod,
};
use tenantry_errors::{ApiError, ErrorCode};
use tenantry_tenancy::keystore::KeyStore;

/// The writable fields of a client. Everything but `name` has a default.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClientInput {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    pub name: String,
    #[serde(default = "default_client_type")]
    pub client_type: ClientType,
    #[serde(default)]
    pub redirect_uris: Vec<String>,
    #[serde(default)]
    pub post_logout_redirect_uris: Vec<String>,
    #[serde(default)]
    pub allowed_origins: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grant_types: Option<Vec<GrantType>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scopes: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_endpoint_auth_method: Option<TokenEndpointAuthMethod>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_token_secs: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id_token_secs: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token_secs: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backchannel_logout_uri: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verify_email_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reset_password_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id_token_signed_response_alg: Option<SigningAlg>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_token_signed_response_alg: Option<SigningAlg>,
    #[serde(default)]
    pub first_party: bool,
    /// This client's own request limits (see the tenant's `quotas.per_client`).
    #[serde(default, skip_serializing_if = "ClientQuotas::is_unlimited")]
    pub quotas: ClientQuotas,
}

fn default_client_type() -> ClientType {
    ClientType::Confidential
}

impl ClientInput {
    pub fn from_client(c: &Client) -> Self {
        Self {
            client_id: Some(c.client_id.clone()),
            name: c.name.clone(),
            client_type: c.client_type,
            redirect_uris: c.redirect_uris.clone(),
            post_logout_redirect_uris: c.post_logout_redirect_uris.clone(),
            allowed_origins: c.allowed_origins.clone(),
            grant_types: Some(c.grant_types.clone()),
            scopes: Some(c.scopes.clone()),
            token_endpoint_auth_method: Some(c.token_endpoint_auth_method),
            access_token_secs: c.access_token_secs,
            id_token_secs: c.id_token_secs,
            refresh_token_secs: c.refresh_token_secs,
            jwks: c.jwks.clone(),
            backchannel_logout_uri: c.backchannel_logout_uri.clone(),
            verify_email_url: c.verify_email_url.clone(),
            reset_password_url: c.reset_password_url.clone(),
            id_token_signed_response_alg: c.id_token_signed_response_alg,
            access_token_signed_response_alg: c.access_token_signed_response_alg,
            first_party: c.first_party,
            quotas: c.quotas,
        }
    }

    /// The client this input describes (defaults filled), keeping `previous`'s secret and
    /// creation time when there is one.
    pub fn into_client(self, client_id: String, previous: Option<&Client>, now: DateTime<Utc>) -> Client {
        let confidential = self.client_type == ClientType::Confidential;
        Client {
            client_id,
            name: self.name,
            client_type: self.client_type,
            redirect_uris: self.redirect_uris,
            post_logout_redirect_uris: self.post_logout_redirect_uris,
            allowed_origins: self.allowed_origins,
            grant_types: self
                .grant_types
                .unwrap_or_else(|| vec![GrantType::AuthorizationCode, GrantType::RefreshToken]),
            scopes: self
                .scopes
                .unwrap_or_else(|| ["openid", "profile", "email"].map(String::from).to_vec()),
            token_endpoint_auth_method: self.token_endpoint_auth_method.unwrap_or(if confidential {
                TokenEndpointAuthMethod::ClientSecretBasic
            } else {
                TokenEndpointAuthMethod::None
            }),
            secret_hash: previous.and_then(|p| p.secret_hash.clone()).filter(|_| confidential),
            previous_secret: previous
                .and_then(|p| p.previous_secret.clone())
                .filter(|_| confidential),
            access_token_secs: self.access_token_secs,
            id_token_secs: self.id_token_secs,
            refresh_token_secs: self.refresh_token_secs,
            jwks: self.jwks,
            backchannel_logout_uri: self.backchannel_logout_uri,
            verify_email_url: self.verify_email_url,
            reset_password_url: self.reset_password_url,
            id_token_signed_response_alg: self.id_token_signed_response_alg,
            access_token_signed_response_alg: self.access_token_signed_response_alg,
            first_party: self.first_party,
            quotas: self.quotas,
            created_at: previous.map_or(now, |p| p.created_at),
            updated_at: now,
        }
    }
}

/// Makes a secret for a confidential client that has none; returns it (once).
pub fn ensure_secret(
    keystore: &KeyStore,
    system_secrets: &SystemSecrets,
    client: &mut Client,
) -> Result<Option<String>, ApiError> {
    let uses_secret = matches!(
        client.token_endpoint_auth_method,
        TokenEndpointAuthMethod::ClientSecretBasic | TokenEndpointAuthMethod::ClientSecretPost
    );
    if client.client_type != ClientType::Confidential || client.secret_hash.is_some() || !uses_secret {
        return Ok(None);
    }
    let key = keystore.client_secret_key(system_secrets)?;
    let secret = tenantry_crypto::random_token(32);
    client.secret_hash = Some(tenantry_crypto::keyed_digest(&key, &secret));
    Ok(Some(secret))
}

/// The input of `previous` with an RFC 7396 merge patch applied; `client_id` cannot
/// change.
pub fn patched_input(previous: &Client, patch: &Value) -> Result<ClientInput, ApiError> {
    let mut current = serde_json::to_value(ClientInput::from_client(previous)).map_err(|_| ApiError::internal())?;
    crate::settings::merge_patch(&mut current, patch);
    let input: ClientInput =
        serde_json::from_value(current).map_err(|e| ApiError::new(ErrorCode::InvalidJson, e.to_string()))?;
    if input.client_id.as_deref() != Some(previous.client_id.as_str()) {
        return Err(ApiError::field("client_id", "cannot be changed"));
    }
    Ok(input)
}
