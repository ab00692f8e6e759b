//! Secrets inside tenant settings: sealing what the admin API receives, redacting what
//! it returns, and re-sealing everything under a new master key.
//!
//! Secret fields are found by one walker ([`visit_secrets`]) over the settings JSON, so
//! sealing, redaction and re-sealing cannot disagree about which fields are secret.
//! Each secret is sealed for (tenant id, field path): a value copied to another tenant or
//! field does not open.

use std::collections::BTreeMap;

use serde_json::Value;
use tenantry_controlplane::model::{KeyRing, SealedSecret, SystemSecrets, Tenant, TenantSettings};
use tenantry_controlplane::validate::validate_settings;
use tenantry_controlplane::{Command, Snapshot};
use tenantry_crypto::{SealContext, SecretBox};

use tenantry_errors::ApiError;

/// What a read API shows in place of a secret (`{"set": true}`); sent back unchanged, it
/// keeps the secret. Secrets are write-only: no read ever shows a value.
pub fn redacted_secret() -> Value {
    serde_json::json!({ "set": true })
}

fn keeps_secret(value: &Value) -> bool {
    value == &redacted_secret()
}

/// Calls `f(field_path, value)` for every secret slot present in settings JSON.
pub fn visit_secrets(settings: &mut Value, f: &mut dyn FnMut(&str, &mut Value)) {
    if let Some(v) = settings.pointer_mut("/smtp/password") {
        f("smtp.password", v);
    }
    if let Some(v) = settings.pointer_mut("/user_db/dsn") {
        f("user_db.dsn", v);
    }
    if let Some(Value::Array(providers)) = settings.get_mut("social_providers") {
        for provider in providers {
            let id = provider.get("id").and_then(Value::as_str).unwrap_or("").to_owned();
            if let Some(v) = provider.get_mut("client_secret") {
                f(&format!("social_providers.{id}.client_secret"), v);
            }
        }
    }
}

/// The settings as an admin may see them: every secret replaced by [`redacted_secret`].
pub fn redacted(settings: &TenantSettings) -> Value {
    let mut value = serde_json::to_value(settings).expect("settings serialize");
    visit_secrets(&mut value, &mut |_, v| {
        if !v.is_null() {
            *v = redacted_secret();
        }
    });
    value
}

/// Builds settings from admin input for the tenant `owner` (its id): plaintext secrets are
/// checked and sealed, [`redacted_secret`] keeps the current sealed value, then the whole value is
/// parsed and validated. Nothing is stored here.
pub fn settings_from_input(
    mut input: Value,
    current: Option<&TenantSettings>,
    owner: &str,
    secrets: &SecretBox,
) -> Result<TenantSettings, ApiError> {
    if !input.is_object() {
        return Err(ApiError::field("settings", "must be a JSON object"));
    }
    let mut kept = BTreeMap::new();
    if let Some(current) = current {
        let mut current = serde_json::to_value(current).expect("settings serialize");
        visit_secrets(&mut current, &mut |field, v| {
            kept.insert(field.to_owned(), v.clone());
        });
    }
    let driver = input
        .pointer("/user_db/driver")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let mut problem = None;
    visit_secrets(&mut input, &mut |field, v| {
        if keeps_secret(v) {
            match kept.get(field) {
                Some(sealed) => *v = sealed.clone(),
                None => {
                    problem = Some(ApiError::field(
                        &format!("settings.{field}"),
                        "has no current value to keep",
                    ))
                }
            }
            return;
        }
        let Value::String(text) = v else {
            if !v.is_null() {
                problem = Some(ApiError::field(
                    &format!("settings.{field}"),
                    "write the secret as a string, {\"set\": true} to keep it, or null to remove it",
                ));
            }
            return;
        };
        if field == "user_db.dsn"
            && let Err(message) = check_dsn(driver.as_deref(), text)
        {
            problem = Some(ApiError::field("settings.user_db.dsn", message));
            return;
        }
        *v = Value::String(secrets.seal(SealContext::new(owner, field), text));
    });
    if let Some(problem) = problem {
        return Err(problem);
    }
    if current.is_none() {
        // A new tenant starts from today's defaults; what the input names replaces them.
        let mut defaults = serde_json::to_value(TenantSettings::for_new_tenant()).expect("settings serialize");
        merge_patch(&mut defaults, &input);
        input = defaults;
    }
    let settings: TenantSettings =
        serde_path_to_error::deserialize(input).map_err(|e| tenantry_errors::json_shape_error("settings", &e))?;
    validate_settings(&settings).map_err(ApiError::validation)?;
    tenantry_mail::check_settings(&settings)?;
    Ok(settings)
}

/// Checks a DSN's shape against its driver without ever echoing it.
fn check_dsn(driver: Option<&str>, dsn: &str) -> Result<(), String> {
    let schemes: &[&str] = match driver {
        Some("postgres") => &["postgres", "postgresql"],
        Some("mysql") => &["mysql", "mariadb"],
        Some("sqlite") => return Err("must be absent for sqlite".into()),
        _ => return Ok(()), // an unknown driver is reported by the settings parser
    };
    match url::Url::parse(dsn) {
        Ok(url) if schemes.contains(&url.scheme()) && url.host_str().is_some_and(|h| !h.is_empty()) => Ok(()),
        Ok(_) => Err(format!("must be a URL with scheme {} and a host", schemes.join(" or "))),
        Err(_) => Err("is not a valid connection URL".into()),
    }
}

/// RFC 7396 JSON merge patch.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(patch_map) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Default::default());
    }
    let target_map = target.as_object_mut().expect("made an object above");
    for (key, value) in patch_map {
        if value.is_null() {
            target_map.remove(key);
        } else {
            merge_patch(target_map.entry(key.clone()).or_insert(Value::Null), value);
        }
    }
}

/// One secret that could not be re-sealed.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct ResealFailure {
    pub tenant: String,
    pub field: String,
    pub code: &'static str,
    pub error: String,
}

/// Re-seals secrets under the current master key, collecting what does not open.
pub struct Resealer<'a> {
    pub secrets: &'a SecretBox,
    pub failures: Vec<ResealFailure>,
    /// How many values were sealed again.
    pub resealed: usize,
}

impl<'a> Resealer<'a> {
    pub fn new(secrets: &'a SecretBox) -> Self {
        Self {
            secrets,
            failures: Vec::new(),
            resealed: 0,
        }
    }

    /// The new envelope when `sealed` was under an older key; `None` when it is current
    /// (after proving it opens) or does not open (recorded as a failure).
    fn one(&mut self, owner_label: &str, owner: &str, field: &str, sealed: &str) -> Option<String> {
        let ctx = SealContext::new(owner, field);
        let result = if self.secrets.needs_reseal(sealed) {
            self.secrets.reseal(ctx, sealed).map(Some)
        } else {
            self.secrets.open(ctx, sealed).map(|_| None)
        };
        match result {
            Ok(new) => {
                self.resealed += usize::from(new.is_some());
                new
            }
            Err(e) => {
                self.failures.push(ResealFailure {
                    tenant: owner_label.into(),
                    field: field.into(),
                    code: "secret_unreadable",
                    error: e.to_string(),
                });
                None
            }
        }
    }

    /// Settings with every secret under the current key, if any had to change.
    pub fn settings(&mut self, slug: &str, owner: &str, settings: &TenantSettings) -> Option<TenantSettings> {
        let mut value = serde_json::to_value(settings).expect("settings serialize");
        let mut changed = false;
        visit_secrets(&mut value, &mut |field, v| {
            if let Some(new) = v.as_str().and_then(|sealed| self.one(slug, owner, field, sealed)) {
                *v = Value::String(new);
                changed = true;
            }
        });
        changed.then(|| serde_json::from_value(value).expect("only secret strings changed"))
    }

    /// The installation secrets under the current key, if any had to change.
    pub fn system_secrets(&mut self, secrets: &SystemSecrets) -> Option<SystemSecrets> {
        let sealed = secrets.client_secret_key.as_ref()?;
        let field = tenantry_tenancy::keystore::CLIENT_SECRET_KEY_FIELD;
        let owner = tenantry_tenancy::keystore::SYSTEM_OWNER;
        self.one(owner, owner, field, &sealed.0).map(|new| SystemSecrets {
            client_secret_key: Some(SealedSecret(new)),
        })
    }

    /// A key ring with every private key under the current key, if any had to change.
    pub fn key_ring(&mut self, label: &str, owner: &str, ring: &KeyRing) -> Option<KeyRing> {
        let mut new_ring = ring.clone();
        let mut changed = false;
        for key in &mut new_ring.keys {
            if let Some(new) = self.one(label, owner, &format!("keys.{}", key.kid), &key.private_key.0) {
                key.private_key.0 = new;
                changed = true;
            }
        }
        changed.then_some(new_ring)
    }
}

/// The commands that put every secret of `snapshot` (tenant settings, tenant and system
/// key rings, the installation secrets) under the current master key, each with how many
/// values it seals again; what does not open is left in `resealer.failures` and untouched.
pub fn reseal_commands(resealer: &mut Resealer<'_>, snapshot: &Snapshot) -> Vec<(Command, usize)> {
    let mut commands = Counted::default();
    for entry in snapshot.tenants.values() {
        let tenant = &entry.tenant;
        let owner = tenant.id.to_string();
        if let Some(settings) = resealer.settings(&tenant.slug, &owner, &tenant.settings) {
            commands.push(
                resealer.resealed,
                Command::UpdateTenant {
                    tenant: Tenant {
                        settings,
                        ..tenant.clone()
                    },
                    // A change stored meanwhile is not undone; its secrets are re-sealed next run.
                    expected_updated_at: Some(tenant.updated_at),
                },
            );
        }
        if let Some(ring) = resealer.key_ring(&tenant.slug, &owner, &entry.key_ring) {
            commands.push(
                resealer.resealed,
                Command::PutKeyRing {
                    slug: Some(tenant.slug.clone()),
                    ring,
                    expected: Some(entry.key_ring.clone()),
                },
            );
        }
    }
    let system = tenantry_tenancy::keystore::SYSTEM_OWNER;
    if let Some(ring) = resealer.key_ring(system, system, &snapshot.system_keys) {
        commands.push(
            resealer.resealed,
            Command::PutKeyRing {
                slug: None,
                ring,
                expected: Some(snapshot.system_keys.clone()),
            },
        );
    }
    if let Some(secrets) = resealer.system_secrets(&snapshot.system_secrets) {
        commands.push(resealer.resealed, Command::PutSystemSecrets { secrets });
    }
    commands.0
}

/// Commands, each with the values it re-seals: the resealer's count since the previous one.
#[derive(Default)]
struct Counted(Vec<(Command, usize)>, usize);

impl Counted {
    fn push(&mut self, resealed_so_far: usize, command: Command) {
        self.0.push((command, resealed_so_far - self.1));
        self.1 = resealed_so_far;
    }
}

/// How many times [`reseal_all`] reads again after a change raced it.
const RESEAL_ROUNDS: usize = 5;

/// What [`reseal_all`] did.
#[derive(Debug, Default)]
pub struct ResealOutcome {
    /// Values sealed again, in commands that were stored.
    pub resealed: usize,
    /// Commands stored.
    pub commands: usize,
    /// Values that do not open, left as they are.
    pub failures: Vec<ResealFailure>,
}

/// Re-seals every secret under the current master key through `writer`. Each command is a
/// compare-and-set against the snapshot it was made from (the tenant's version, the key
/// ring as read), so a rotation or settings change accepted meanwhile is never undone: the
/// refused command is made again from a fresh snapshot (`snapshot()`), up to a few rounds.
pub async fn reseal_all(
    secrets: &SecretBox,
    writer: &dyn tenantry_controlplane::Writer,
    snapshot: impl Fn() -> std::sync::Arc<Snapshot>,
) -> Result<ResealOutcome, tenantry_controlplane::WriteError> {
    use tenantry_controlplane::{Rejection, WriteError};
    let mut outcome = ResealOutcome::default();
    for round in 1..=RESEAL_ROUNDS {
        let current = snapshot();
        let mut resealer = Resealer::new(secrets);
        let commands = reseal_commands(&mut resealer, &current);
        outcome.failures = resealer.failures;
        let mut raced = None;
        for (command, values) in commands {
            match writer.write(command).await {
                Ok(_) => {
                    outcome.commands += 1;
                    outcome.resealed += values;
                }
                Err(WriteError::Rejected(r @ (Rejection::RingChanged(_) | Rejection::TenantChanged(_))))
                    if round < RESEAL_ROUNDS =>
                {
                    raced = Some(r);
                }
                Err(e) => return Err(e),
            }
        }
        if raced.is_none() {
            break;
        }
    }
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use tenantry_crypto::MasterKey;

    fn sb() -> SecretBox {
        SecretBox::new(MasterKey::generate(), vec![])
    }

    /// A writer that lets a key rotation in just before the first re-sealed ring it is
    /// given: the race a re-seal must not lose.
    struct RotationBetween {
        inner: tenantry_controlplane::StandaloneWriter,
        rotation: std::sync::Mutex<Option<Command>>,
    }

    #[async_trait::async_trait]
    impl tenantry_controlplane::Writer for RotationBetween {
        async fn write(&self, cmd: Command) -> Result<std::sync::Arc<Snapshot>, tenantry_controlplane::WriteError> {
            let rotation = match &cmd {
                Command::PutKeyRing { slug: Some(_), .. } => self.rotation.lock().unwrap().take(),
                _ => None,
            };
            if let Some(rotation) = rotation {
                self.inner.write(rotation).await?;
            }
            self.inner.write(cmd).await
        }
    }

    #[tokio::test]
    async fn a_reseal_never_undoes_a_rotation_accepted_between_its_read_and_its_write() {
        use tenantry_controlplane::model::SigningAlg;
        use tenantry_controlplane::{ControlPlane, FsStore, StandaloneWriter};
        let dir = tempfile::tempdir().unwrap();
        let cp = std::sync::Arc::new(ControlPlane::open(FsStore::new(dir.path())).unwrap());
        let old = MasterKey::generate();
        let old_again = MasterKey::from_base64(&old.to_base64()).unwrap();
        let old_box = SecretBox::new(old_again, vec![]);
        let now = chrono::Utc::now();
        let tenant = Tenant {
            id: uuid::Uuid::new_v4(),
            slug: "acme".into(),
            display_name: "Acme".into(),
            created_at: now,
            updated_at: now,
            settings: TenantSettings::default(),
        };
        let owner = tenant.id.to_string();
        let ring = tenantry_keys::generate_ring(&old_box, &owner, now).unwrap();
        cp.apply(&Command::CreateTenant { tenant, key_ring: ring }).unwrap();

        // The master key changes; meanwhile a rotation is accepted with a key sealed under
        // the new one, between the re-seal's read and its write.
        let new_box = SecretBox::new(MasterKey::generate(), vec![old]);
        let rotated = tenantry_keys::generate_key(SigningAlg::EdDsa, &new_box, &owner, now).unwrap();
        let writer = RotationBetween {
            inner: StandaloneWriter::new(cp.clone()),
            rotation: std::sync::Mutex::new(Some(Command::RotateKeys {
                slug: Some("acme".into()),
                keys: vec![rotated.clone()],
                retire_after: now + chrono::Duration::days(1),
            })),
        };
        let outcome = reseal_all(&new_box, &writer, || cp.snapshot()).await.unwrap();

        let ring = &cp.snapshot().tenants["acme"].key_ring;
        assert!(ring.keys.iter().any(|k| k.kid == rotated.kid), "the rotation is kept");
        assert_eq!(ring.keys.len(), 4, "three re-sealed keys and the rotated one");
        assert!(ring.keys.iter().all(|k| !new_box.needs_reseal(&k.private_key.0)));
        assert!(outcome.resealed >= 3 && outcome.failures.is_empty(), "{outcome:?}");
    }

    #[test]
    fn plaintext_is_sealed_redacted_on_read_and_kept_by_the_marker() {
        let sb = sb();
        let input = json!({"smtp": {"host": "smtp.example.com", "port": 587, "username": "u", "password": "canary-pass", "from_address": "no-reply@example.com"}});
        let settings = settings_from_input(input, None, "tenant-1", &sb).unwrap();
        let sealed = settings.smtp.as_ref().unwrap().password.clone().unwrap();
        assert!(!sealed.0.contains("canary-pass"));
        assert_eq!(
            sb.open(SealContext::new("tenant-1", "smtp.password"), &sealed.0)
                .unwrap()
                .as_str(),
            "canary-pass"
        );

        let shown = redacted(&settings);
        assert_eq!(shown["smtp"]["password"], json!({"set": true}));
        let again = settings_from_input(shown, Some(&settings), "tenant-1", &sb).unwrap();
        assert_eq!(again.smtp.unwrap().password, Some(sealed));
    }

    #[test]
    fn the_marker_without_a_current_value_is_refused() {
        let input = json!({"smtp": {"host": "h.example", "port": 25, "username": "u", "password": {"set": true}, "from_address": "a@b.example"}});
        let err = settings_from_input(input, None, "t", &sb()).unwrap_err();
        assert_eq!(err.errors[0].field, "settings.smtp.password");
    }

    #[test]
    fn malformed_dsn_and_unknown_driver_are_refused_without_echo() {
        let input = json!({"user_db": {"driver": "postgres", "dsn": "not a url with secret-pw"}});
        let err = settings_from_input(input, None, "t", &sb()).unwrap_err();
        assert_eq!(err.errors[0].field, "settings.user_db.dsn");
        assert!(!format!("{err:?}").contains("secret-pw"));
        let input = json!({"user_db": {"driver": "oracle", "dsn": "oracle://x"}});
        assert!(settings_from_input(input, None, "t", &sb()).is_err());
        let input = json!({"user_db": {"driver": "postgres", "dsn": "postgres://u:p@db.example/t"}});
        assert!(settings_from_input(input, None, "t", &sb()).is_ok());
    }

    #[test]
    fn merge_patch_follows_rfc7396() {
        let mut target = json!({"a": "b", "c": {"d": "e", "f": "g"}});
        merge_patch(&mut target, &json!({"a": "z", "c": {"f": null}}));
        assert_eq!(target, json!({"a": "z", "c": {"d": "e"}}));
    }

    #[test]
    fn reseal_moves_secrets_to_the_current_key_and_reports_moved_values() {
        let old_key = MasterKey::generate();
        let old = SecretBox::new(MasterKey::from_base64(&old_key.to_base64()).unwrap(), vec![]);
        let input = json!({"smtp": {"host": "h.example", "port": 25, "username": "u", "password": "pw", "from_address": "a@b.example"}});
        let settings = settings_from_input(input, None, "owner-a", &old).unwrap();

        let new = SecretBox::new(MasterKey::generate(), vec![old_key]);
        let mut resealer = Resealer::new(&new);
        let changed = resealer.settings("a", "owner-a", &settings).unwrap();
        assert_eq!(resealer.resealed, 1);
        assert!(resealer.failures.is_empty());
        assert!(!new.needs_reseal(&changed.smtp.as_ref().unwrap().password.as_ref().unwrap().0));
        assert!(resealer.settings("a", "owner-a", &changed).is_none(), "already current");

        // The same sealed value under another tenant's id is reported, never opened.
        assert!(resealer.settings("b", "owner-b", &changed).is_none());
        assert_eq!(resealer.failures.len(), 1);
        assert_eq!(resealer.failures[0].code, "secret_unreadable");
    }
}
