//! Writing a tenant's export document: the header first, then the users page by page, so
//! memory stays flat however many users there are.

use serde_json::Value;
use tenantry_controlplane::model::Client;
use tenantry_crypto::SealContext;
use tenantry_crypto::secretbox::SecretBox;
use tenantry_crypto::transfer::{Sealer, TransferPublicKey};
use tenantry_dataplane::transfer::{EXPORT_PAGE, UserRecord};
use tenantry_dataplane::{CustomFieldSet, TenantDb};
use tenantry_errors::ApiError;
use tenantry_tenancy::TenantContext;
use tokio::sync::mpsc;
use uuid::Uuid;

use super::document::*;
use crate::settings;

/// What an export carries.
#[derive(Debug, Clone, Default)]
pub struct ExportOptions {
    /// Password hashes, TOTP secrets and settings secrets, sealed for `recipient`.
    pub credentials: bool,
    /// The importing installation's transfer key; this installation's own by default.
    pub recipient: Option<TransferPublicKey>,
}

/// An export whose header is ready: nothing has been sent yet, so a problem found so far
/// is still an error status rather than a cut document.
pub struct Export {
    header: Vec<u8>,
    sealer: Option<Sealer>,
    db: TenantDb,
    fields: CustomFieldSet,
    tenant_id: Uuid,
}

impl Export {
    /// Reads the tenant's configuration and opens its database.
    pub async fn begin(ctx: &TenantContext, secrets: &SecretBox, options: ExportOptions) -> Result<Export, ApiError> {
        let tenant = &ctx.entry.tenant;
        let db = ctx.db().await?;
        let sealer = options.credentials.then(|| {
            let recipient = options.recipient.unwrap_or_else(|| secrets.transfer_key().public());
            Sealer::new(&recipient)
        });
        let mut settings = serde_json::to_value(&tenant.settings).map_err(|_| ApiError::internal())?;
        if let Some(object) = settings.as_object_mut() {
            object.remove("user_db");
        }
        let owner = tenant.id.to_string();
        let mut broken = None;
        settings::visit_secrets(&mut settings, &mut |field, value| {
            let Some(stored) = value.as_str() else { return };
            *value = match &sealer {
                Some(sealer) => match secrets.open(SealContext::new(&owner, field), stored) {
                    Ok(plain) => {
                        serde_json::json!({ "sealed": sealer.seal(&format!("settings/{field}"), plain.as_bytes()) })
                    }
                    Err(_) => {
                        broken = Some(field.to_owned());
                        Value::Null
                    }
                },
                None => Value::Null,
            };
        });
        if let Some(field) = broken {
            tracing::error!(tenant = %tenant.slug, field, "a settings secret does not open; re-seal the installation's secrets");
            return Err(ApiError::internal());
        }
        drop_omitted_secrets(&mut settings);
        let header = Header {
            format: FORMAT.to_owned(),
            version: VERSION,
            volatile: VOLATILE.iter().map(|v| v.to_string()).collect(),
            exported_at: chrono::Utc::now(),
            source: Source {
                tenant_id: tenant.id,
                slug: tenant.slug.clone(),
                issuer: ctx.issuer.clone(),
            },
            credentials: sealer.is_some(),
            transfer: sealer.as_ref().map(|s| {
                let header = s.header();
                Transfer {
                    recipient: header.recipient,
                    ephemeral: header.ephemeral,
                }
            }),
            tenant: TenantPart {
                display_name: tenant.display_name.clone(),
                settings,
            },
            clients: ctx.entry.clients.values().map(without_secret).collect(),
            scopes: ctx.entry.scopes.values().cloned().collect(),
            roles: ctx.entry.roles.values().cloned().collect(),
        };
        let mut text = serde_json::to_vec(&header).map_err(|_| ApiError::internal())?;
        // The header object stays open for the users that follow.
        text.pop();
        text.extend_from_slice(b",\"users\":[\n");
        Ok(Export {
            header: text,
            sealer,
            db,
            fields: CustomFieldSet::new(&tenant.settings.custom_fields),
            tenant_id: tenant.id,
        })
    }

    /// Sends the document into `out`, one chunk per page of users; answers how many users
    /// it holds. When the receiver goes away (the client hung up) it stops quietly.
    pub async fn write(
        self,
        secrets: &SecretBox,
        out: &mpsc::Sender<std::io::Result<Vec<u8>>>,
    ) -> Result<u64, ApiError> {
        if out.send(Ok(self.header.clone())).await.is_err() {
            return Ok(0);
        }
        let mut after = None;
        let mut count = 0u64;
        loop {
            let page = self
                .db
                .export_page(after, EXPORT_PAGE, &self.fields, self.sealer.is_some())
                .await?;
            let Some(last) = page.last() else { break };
            after = Some(last.user.id);
            let mut chunk = Vec::with_capacity(page.len() * 512);
            for record in page {
                if count > 0 {
                    chunk.extend_from_slice(b",\n");
                }
                let doc = self.user_doc(secrets, record)?;
                serde_json::to_writer(&mut chunk, &doc).map_err(|_| ApiError::internal())?;
                count += 1;
            }
            if out.send(Ok(chunk)).await.is_err() {
                return Ok(count);
            }
        }
        let end = format!("\n],\"user_count\":{count}}}\n");
        let _ = out.send(Ok(end.into_bytes())).await;
        Ok(count)
    }

    fn user_doc(&self, secrets: &SecretBox, record: UserRecord) -> Result<UserDoc, ApiError> {
        let UserRecord {
            user,
            roles,
            credentials,
        } = record;
        let (mut password, mut totp, mut passkeys) = (None, None, None);
        if let (Some(sealer), Some(credentials)) = (&self.sealer, credentials) {
            passkeys = credentials.passkeys.map(passkeys_doc);
            password = credentials.password.map(|phc| Sealed {
                sealed: sealer.seal(&format!("users/{}/password", user.id), phc.as_bytes()),
            });
            if let Some(stored) = credentials.totp {
                let (owner, field) = (self.tenant_id.to_string(), format!("totp.{}", user.id));
                let secret = secrets.open(SealContext::new(&owner, &field), &stored.sealed).map_err(|_| {
                    tracing::error!(user = %user.id, "a TOTP secret does not open; re-seal the installation's secrets");
                    ApiError::internal()
                })?;
                totp = Some(TotpDoc {
                    secret: Sealed {
                        sealed: sealer.seal(&format!("users/{}/totp", user.id), secret.as_bytes()),
                    },
                    confirmed: stored.confirmed,
                    last_used_step: stored.last_used_step,
                });
            }
        }
        Ok(UserDoc {
            id: user.id,
            email: user.email,
            email_verified: user.email_verified,
            username: user.username,
            given_name: user.given_name,
            family_name: user.family_name,
            name: user.name,
            picture: user.picture,
            locale: user.locale,
            phone_number: user.phone_number,
            phone_number_verified: user.phone_number_verified,
            status: user.status,
            disabled_at: user.disabled_at,
            disabled_reason: user.disabled_reason,
            disabled_until: user.disabled_until,
            metadata: user.metadata,
            custom: user.custom,
            roles,
            password,
            totp,
            passkeys,
            created_at: user.created_at,
            updated_at: user.updated_at,
        })
    }
}

/// A client as exported: its secret's digest is keyed by this installation and means
/// nothing elsewhere, so it never leaves (an import makes a new secret).
fn without_secret(client: &Client) -> Client {
    Client {
        secret_hash: None,
        previous_secret: None,
        ..client.clone()
    }
}

/// A user's passkeys as the document holds them.
fn passkeys_doc(moved: tenantry_dataplane::transfer::PasskeyCredentials) -> PasskeysDoc {
    use base64::Engine;
    let b64 = |bytes: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    PasskeysDoc {
        handle: b64(&moved.handle),
        credentials: moved
            .passkeys
            .into_iter()
            .map(|k| PasskeyDoc {
                id: k.id,
                credential_id: b64(&k.credential_id),
                public_key: b64(&k.public_key),
                algorithm: k.algorithm,
                sign_count: k.sign_count,
                backup_eligible: k.backup_eligible,
                backup_state: k.backup_state,
                user_verified: k.user_verified,
                discoverable: k.discoverable,
                transports: k.transports,
                aaguid: b64(&k.aaguid),
                attestation: k.attestation,
                name: k.name,
                created_at: k.created_at,
                last_used_at: k.last_used_at,
            })
            .collect(),
    }
}

/// Removes the secrets an export without credentials left as `null`.
fn drop_omitted_secrets(settings: &mut Value) {
    if let Some(smtp) = settings.get_mut("smtp").and_then(Value::as_object_mut)
        && smtp.get("password").is_some_and(Value::is_null)
    {
        smtp.remove("password");
    }
    if let Some(Value::Array(providers)) = settings.get_mut("social_providers") {
        for provider in providers.iter_mut().filter_map(Value::as_object_mut) {
            if provider.get("client_secret").is_some_and(Value::is_null) {
                provider.remove("client_secret");
            }
        }
    }
}
