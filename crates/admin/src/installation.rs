//! What an installation must contain before it serves: the system issuer's keys, the
//! key client-secret digests are made with, a first admin, the default tenant, and (with
//! `--dev`) the demo client and demo user. Every change is a command through the `Writer`.

use base64::Engine;
use chrono::Utc;
use tenantry_controlplane::model::*;
use tenantry_controlplane::{Command, ControlPlane, Writer};
use tenantry_crypto::files::write_private;
use tenantry_crypto::{SealContext, SecretBox, hash_token, random_key, random_token};
use uuid::Uuid;

/// File that holds the bootstrap admin token created by `--dev`.
pub const DEV_ADMIN_TOKEN_FILE: &str = "dev-admin-token";
/// Client id of the demo public client created in the default tenant by `--dev`.
pub const DEMO_CLIENT_ID: &str = "demo-spa";

/// How the first admin of an installation signs in.
#[derive(Debug, Clone, Copy)]
pub enum FirstAdmin<'a> {
    /// `--dev`: a bootstrap bearer token, also written to `FS_ROOT/dev-admin-token`; the
    /// default tenant also gets the demo client.
    DevToken,
    /// Production: the admin `email` with a one-time password (shown once, replaced at
    /// the first sign-in, which also sets up TOTP).
    OneTimePassword { email: &'a str },
}

/// What `ensure_installation` created, to tell the operator once.
#[derive(Debug, Default)]
pub struct Installed {
    /// A new bootstrap admin token (`--dev`; shown once).
    pub admin_token: Option<String>,
    /// The first admin's email and one-time password (production; shown once).
    pub admin_password: Option<(String, String)>,
    pub default_tenant_created: bool,
    pub demo_client_created: bool,
    /// The demo user's email and password (shown once), when `--dev` just made it.
    pub demo_user: Option<(String, String)>,
}

/// Email of the demo user `--dev` creates in the default tenant.
pub const DEMO_USER_EMAIL: &str = "demo@example.com";

/// With `--dev`, when the demo client was just made, also makes the demo user with a
/// random password (returned to be printed once). Needs the tenant database, so it runs
/// after the server state exists.
pub async fn ensure_demo_user(ctx: &tenantry_tenancy::TenantContext) -> anyhow::Result<(String, String)> {
    use tenantry_dataplane::UserRepository;
    let password = random_token(12);
    let db = ctx.db().await.map_err(|e| anyhow::anyhow!("{}", e.detail))?;
    let new = tenantry_dataplane::model::NewUser {
        email: DEMO_USER_EMAIL.into(),
        email_verified: true,
        given_name: Some("Demo".into()),
        family_name: Some("User".into()),
        name: Some("Demo User".into()),
        ..Default::default()
    };
    let user = db.create_user(new, &ctx.custom_fields()).await?;
    let phc = tenantry_accounts::passwords::hash(password.clone())
        .await
        .map_err(|e| anyhow::anyhow!("{}", e.detail))?;
    db.set_password(user.id, &phc).await?;
    Ok((DEMO_USER_EMAIL.into(), password))
}

/// Makes sure the installation has a first admin, the system issuer's keys and the
/// default tenant.
///
/// * No admin yet → the first one is created ([`FirstAdmin`]); its token or one-time
///   password is returned to be shown once.
/// * No system key ring yet → one is made (one key per algorithm); likewise the key that
///   client-secret digests are made with.
/// * The default tenant is missing → it is created with a SQLite user database.
/// * With `dev`, the default tenant gets the demo public client.
///
/// Runs before the node serves; every change is a command through `writer`, like any
/// write (`cp` is read for what exists).
pub async fn ensure_installation(
    cp: &ControlPlane,
    writer: &dyn Writer,
    secrets: &SecretBox,
    default_tenant: Option<&str>,
    first_admin: FirstAdmin<'_>,
) -> anyhow::Result<Installed> {
    let dev = matches!(first_admin, FirstAdmin::DevToken);
    let mut installed = Installed::default();
    if cp.snapshot().system_keys.keys.is_empty() {
        let ring = tenantry_keys::generate_ring(secrets, tenantry_tenancy::keystore::SYSTEM_OWNER, Utc::now())?;
        writer
            .write(Command::PutKeyRing {
                slug: None,
                ring,
                expected: None,
            })
            .await?;
    }
    if cp.snapshot().system_secrets.client_secret_key.is_none() {
        let key = base64::engine::general_purpose::STANDARD.encode(random_key::<32>().as_slice());
        let sealed = secrets.seal(
            SealContext::new(
                tenantry_tenancy::keystore::SYSTEM_OWNER,
                tenantry_tenancy::keystore::CLIENT_SECRET_KEY_FIELD,
            ),
            &key,
        );
        let secrets = SystemSecrets {
            client_secret_key: Some(SealedSecret(sealed)),
        };
        writer.write(Command::PutSystemSecrets { secrets }).await?;
    }
    let snapshot = cp.snapshot();
    if snapshot.admins.is_empty()
        && let FirstAdmin::OneTimePassword { email } = first_admin
    {
        let input = crate::admins::NewAdmin {
            email: email.to_owned(),
            name: None,
            password: None,
            reach: AdminReach::Global,
            access: AdminAccess::ReadWrite,
        };
        let (admin, password) = crate::admins::make_admin(input, Utc::now())
            .await
            .map_err(|e| anyhow::anyhow!("the first admin: {} {:?}", e.detail, e.errors))?;
        let email = admin.email.clone().unwrap_or_default();
        writer.write(Command::PutAdmin { admin }).await?;
        installed.admin_password = password.map(|p| (email, p));
    } else if dev && !snapshot.admins.values().any(|a| a.token_hash.is_some()) {
        let token = format!("tnt_{}", random_token(32));
        // A file without a matching admin is a leftover of an interrupted first start.
        let path = cp.store().root().join(DEV_ADMIN_TOKEN_FILE);
        let _ = std::fs::remove_file(&path);
        write_private(&path, token.as_bytes())?;
        let admin = Admin {
            token_hash: Some(hash_token(&token)),
            ..Admin::new(Uuid::new_v4(), "bootstrap".into(), Utc::now())
        };
        writer.write(Command::PutAdmin { admin }).await?;
        installed.admin_token = Some(token);
    }
    if let Some(slug) = default_tenant {
        if !cp.snapshot().slug_taken(slug) {
            let now = Utc::now();
            let settings = TenantSettings::for_new_tenant();
            let id = Uuid::new_v4();
            let tenant = Tenant {
                id,
                slug: slug.into(),
                display_name: slug.into(),
                created_at: now,
                updated_at: now,
                settings,
            };
            let key_ring = tenantry_keys::generate_ring(secrets, &id.to_string(), now)?;
            writer.write(Command::CreateTenant { tenant, key_ring }).await?;
            installed.default_tenant_created = true;
        }
        let has_demo = cp
            .snapshot()
            .tenant(slug)
            .is_some_and(|e| e.clients.contains_key(DEMO_CLIENT_ID));
        if dev && !has_demo && cp.snapshot().tenant(slug).is_some() {
            writer
                .write(Command::CreateClient {
                    slug: slug.into(),
                    client: demo_client(),
                })
                .await?;
            installed.demo_client_created = true;
        }
    }
    Ok(installed)
}

fn demo_client() -> Client {
    let now = Utc::now();
    Client {
        client_id: DEMO_CLIENT_ID.into(),
        name: "Demo single-page app".into(),
        client_type: ClientType::Public,
        redirect_uris: vec![
            "http://localhost:3000/callback".into(),
            "http://127.0.0.1:3000/callback".into(),
        ],
        post_logout_redirect_uris: vec!["http://localhost:3000/".into(), "http://127.0.0.1:3000/".into()],
        allowed_origins: vec!["http://localhost:3000".into(), "http://127.0.0.1:3000".into()],
        grant_types: vec![GrantType::AuthorizationCode, GrantType::RefreshToken],
        scopes: ["openid", "profile", "email", "offline_access"]
            .map(String::from)
            .to_vec(),
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
        first_party: true,
        quotas: Default::default(),
        created_at: now,
        updated_at: now,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tenantry_crypto::MasterKey;

    #[tokio::test]
    async fn installation_is_created_once() {
        let dir = tempfile::tempdir().unwrap();
        let cp = std::sync::Arc::new(ControlPlane::open(tenantry_controlplane::FsStore::new(dir.path())).unwrap());
        let writer = tenantry_controlplane::StandaloneWriter::new(cp.clone());
        let secrets = SecretBox::new(MasterKey::generate(), vec![]);
        let first = ensure_installation(&cp, &writer, &secrets, Some("local"), FirstAdmin::DevToken)
            .await
            .unwrap();
        assert!(first.admin_token.is_some() && first.default_tenant_created && first.demo_client_created);
        let token = std::fs::read_to_string(dir.path().join(DEV_ADMIN_TOKEN_FILE)).unwrap();
        assert_eq!(Some(token), first.admin_token);
        let snapshot = cp.snapshot();
        assert_eq!(snapshot.system_keys.algorithms(), SigningAlg::ALL.to_vec());
        assert_eq!(
            snapshot.tenant("local").unwrap().key_ring.algorithms(),
            SigningAlg::ALL.to_vec()
        );
        let second = ensure_installation(&cp, &writer, &secrets, Some("local"), FirstAdmin::DevToken)
            .await
            .unwrap();
        assert!(second.admin_token.is_none() && !second.default_tenant_created && !second.demo_client_created);
        assert_eq!(
            cp.snapshot().system_keys,
            snapshot.system_keys,
            "the system ring is made once"
        );
    }

    #[tokio::test]
    async fn production_gets_an_admin_with_a_one_time_password_and_no_token() {
        let dir = tempfile::tempdir().unwrap();
        let cp = std::sync::Arc::new(ControlPlane::open(tenantry_controlplane::FsStore::new(dir.path())).unwrap());
        let writer = tenantry_controlplane::StandaloneWriter::new(cp.clone());
        let secrets = SecretBox::new(MasterKey::generate(), vec![]);
        let first_admin = FirstAdmin::OneTimePassword {
            email: "Root@Example.com",
        };
        let first = ensure_installation(&cp, &writer, &secrets, None, first_admin)
            .await
            .unwrap();
        let (email, password) = first.admin_password.expect("a one-time password is shown");
        assert_eq!(email, "root@example.com");
        assert!(first.admin_token.is_none());
        assert!(!dir.path().join(DEV_ADMIN_TOKEN_FILE).exists());
        let admin = cp.snapshot().admins.values().next().cloned().unwrap();
        assert!(admin.password_temporary && admin.token_hash.is_none());
        assert!(tenantry_accounts::passwords::verify(admin.password_hash.unwrap(), password).await);
        let again = ensure_installation(&cp, &writer, &secrets, None, first_admin)
            .await
            .unwrap();
        assert!(again.admin_password.is_none() && cp.snapshot().admins.len() == 1);
    }
}
