//! The file store: lossless round trip of every field, degraded tenants, atomic layout.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, TimeZone, Utc};
use proptest::collection::{btree_map, vec};
use proptest::option;
use proptest::prelude::*;
use tenantry_controlplane::model::*;
use tenantry_controlplane::{ApplyError, Command, ControlPlane, FsStore, Rejection};
use uuid::Uuid;

fn time() -> impl Strategy<Value = DateTime<Utc>> {
    (0i64..4_000_000_000, 0u32..1_000_000_000).prop_map(|(s, n)| Utc.timestamp_opt(s, n).unwrap())
}

fn uuid() -> impl Strategy<Value = Uuid> {
    any::<u128>().prop_map(Uuid::from_u128)
}

fn text() -> impl Strategy<Value = String> {
    "\\PC{0,24}"
}

fn ident() -> impl Strategy<Value = String> {
    "[a-z][a-z0-9_.-]{0,20}"
}

fn sealed() -> impl Strategy<Value = SealedSecret> {
    "tsb1\\.[A-Za-z0-9_-]{8}\\.[A-Za-z0-9_-]{40}".prop_map(SealedSecret)
}

fn settings() -> impl Strategy<Value = TenantSettings> {
    let issuer = prop_oneof![
        Just(IssuerMode::Path),
        text().prop_map(|url| IssuerMode::Custom { url })
    ];
    let branding = (
        option::of(text()),
        option::of(text()),
        option::of(text()),
        option::of(text()),
    )
        .prop_map(|(name, logo_url, primary_color, background_color)| Branding {
            name,
            logo_url,
            primary_color,
            background_color,
        });
    let language = prop_oneof![Just(Language::En), Just(Language::Es)];
    let lifetimes = any::<(u64, u64, u64, u64)>().prop_map(|(a, b, c, d)| TokenLifetimes {
        session_secs: a,
        access_token_secs: b,
        id_token_secs: c,
        refresh_token_secs: d,
    });
    let security = (
        any::<u32>(),
        any::<[bool; 9]>(),
        0u32..=365,
        any::<u32>(),
        any::<u64>(),
        any::<[u32; 3]>(),
    )
        .prop_map(|(min, b, remember, attempts, lock, hash)| SecurityPolicy {
            password_min_length: min,
            password_require_lowercase: b[0],
            password_require_uppercase: b[1],
            password_require_digit: b[2],
            password_require_symbol: b[3],
            max_login_attempts: attempts,
            lockout_duration_secs: lock,
            login_attempts_per_ip_per_minute: attempts / 2,
            mfa_required: b[4],
            password_deny_list: b[4] && b[5],
            require_verified_email: b[5],
            registration_enabled: b[6],
            registration_auto_login: b[7],
            mfa_remember_device_days: remember,
            password_hash: PasswordHashParams {
                memory_kib: hash[0],
                iterations: hash[1],
                parallelism: hash[2],
            },
            require_pkce_for_confidential_clients: b[8],
            audit_retention_days: remember + 1,
            // Empty lists are left out of the file: both forms must round-trip.
            passkey_aaguids: if b[0] {
                vec!["cb69481e-8ff7-4039-93ec-0a2729a154a8".into()]
            } else {
                Vec::new()
            },
        });
    let tls = prop_oneof![Just(SmtpTls::None), Just(SmtpTls::Starttls), Just(SmtpTls::Tls)];
    let smtp = option::of(
        (
            text(),
            any::<u16>(),
            tls,
            option::of(text()),
            option::of(sealed()),
            text(),
        )
            .prop_map(|(host, port, tls, username, password, from_address)| SmtpSettings {
                host,
                port,
                tls,
                username,
                password,
                from_address,
            }),
    );
    let driver = prop_oneof![Just(DbDriver::Sqlite), Just(DbDriver::Postgres), Just(DbDriver::Mysql)];
    let user_db = option::of((driver, option::of(sealed())).prop_map(|(driver, dsn)| UserDbSettings { driver, dsn }));
    let kind = prop_oneof![
        Just(MailTemplateKind::VerifyEmail),
        Just(MailTemplateKind::ResetPassword),
        Just(MailTemplateKind::PasswordChanged),
        Just(MailTemplateKind::AccountLocked),
        Just(MailTemplateKind::Test)
    ];
    let template = (text(), text(), text()).prop_map(|(subject, html, text)| MailTemplate { subject, html, text });
    let templates = btree_map(
        prop_oneof![Just(Language::En), Just(Language::Es)],
        btree_map(kind, template, 0..3),
        0..3,
    );
    let consent = (any::<bool>(), any::<u64>()).prop_map(|(required, remember_secs)| ConsentPolicy {
        required,
        remember_secs,
    });
    let sp_kind = prop_oneof![
        Just(SocialProviderKind::Google),
        Just(SocialProviderKind::Github),
        Just(SocialProviderKind::Microsoft),
        Just(SocialProviderKind::Oidc)
    ];
    let social = vec(
        (
            ident(),
            sp_kind,
            option::of(text()),
            text(),
            option::of(sealed()),
            option::of(text()),
            vec(text(), 0..3),
            any::<bool>(),
        )
            .prop_map(
                |(id, kind, display_name, client_id, client_secret, issuer_url, scopes, enabled)| SocialProvider {
                    id,
                    kind,
                    display_name,
                    client_id,
                    client_secret,
                    issuer_url,
                    scopes,
                    enabled,
                    icon_url: None,
                    link_verified_email: false,
                    trust_upstream_mfa: false,
                    claim_mapping: Default::default(),
                    client_auth: None,
                    fetch_userinfo: false,
                    allowed_tenants: vec![],
                },
            ),
        0..3,
    );
    let ftype = prop_oneof![
        Just(CustomFieldType::Text),
        Just(CustomFieldType::Integer),
        Just(CustomFieldType::Boolean),
        Just(CustomFieldType::Date),
        Just(CustomFieldType::Timestamp)
    ];
    let fields = vec(
        (ident(), ftype, any::<[bool; 3]>(), option::of(ident())).prop_map(|(name, field_type, b, scope)| {
            CustomField {
                name,
                field_type,
                required: b[0],
                unique: b[1],
                indexed: b[2],
                scope,
            }
        }),
        0..3,
    );
    (
        issuer,
        branding,
        language,
        lifetimes,
        security,
        smtp,
        user_db,
        templates,
        consent,
        social,
        fields,
        (
            vec(text(), 0..3),
            (alg(), alg(), any::<u32>()).prop_map(|(id_token_alg, access_token_alg, rotation_days)| SigningSettings {
                id_token_alg,
                access_token_alg,
                rotation_days,
            }),
            quotas(),
        ),
    )
        .prop_map(
            |(
                issuer,
                branding,
                language,
                token_lifetimes,
                security,
                smtp,
                user_db,
                mail_templates,
                consent,
                social_providers,
                custom_fields,
                (cors_allowed_origins, signing, quotas),
            )| {
                TenantSettings {
                    signing,
                    issuer,
                    branding,
                    language,
                    token_lifetimes,
                    security,
                    smtp,
                    user_db,
                    mail_templates,
                    consent,
                    social_providers,
                    custom_fields,
                    cors_allowed_origins,
                    quotas,
                }
            },
        )
}

fn quotas() -> impl Strategy<Value = Quotas> {
    (
        1..3600u32,
        option::of(1..u32::MAX),
        option::of(1..u32::MAX),
        client_quotas(),
    )
        .prop_map(|(window_secs, token, admin_api, per_client)| Quotas {
            window_secs,
            tenant: TenantQuotas {
                token,
                admin_api,
                ..TenantQuotas::default()
            },
            per_client,
        })
}

fn client_quotas() -> impl Strategy<Value = ClientQuotas> {
    (option::of(1..u32::MAX), option::of(1..u32::MAX)).prop_map(|(token, userinfo)| ClientQuotas {
        token,
        userinfo,
        ..ClientQuotas::default()
    })
}

fn client(id: String) -> impl Strategy<Value = Client> {
    let ctype = prop_oneof![Just(ClientType::Public), Just(ClientType::Confidential)];
    let grant = prop_oneof![
        Just(GrantType::AuthorizationCode),
        Just(GrantType::RefreshToken),
        Just(GrantType::ClientCredentials)
    ];
    let method = prop_oneof![
        Just(TokenEndpointAuthMethod::None),
        Just(TokenEndpointAuthMethod::ClientSecretBasic),
        Just(TokenEndpointAuthMethod::ClientSecretPost),
        Just(TokenEndpointAuthMethod::PrivateKeyJwt)
    ];
    (
        (
            text(),
            ctype,
            vec(text(), 0..3),
            vec(text(), 0..2),
            vec(text(), 0..2),
            vec(grant, 0..3),
            vec(ident(), 0..3),
            method,
        ),
        (
            option::of(text()),
            option::of(any::<u64>()),
            option::of(any::<u64>()),
            option::of(any::<u64>()),
            any::<bool>(),
            time(),
            time(),
        ),
        (option::of(alg()), option::of(alg()), client_quotas()),
    )
        .prop_map(
            move |(
                (
                    name,
                    client_type,
                    redirect_uris,
                    post_logout_redirect_uris,
                    allowed_origins,
                    grant_types,
                    scopes,
                    token_endpoint_auth_method,
                ),
                (secret_hash, at, it, rt, first_party, created_at, updated_at),
                (id_alg, access_alg, quotas),
            )| Client {
                client_id: id.clone(),
                name,
                client_type,
                redirect_uris,
                post_logout_redirect_uris,
                allowed_origins,
                grant_types,
                scopes,
                token_endpoint_auth_method,
                secret_hash,
                previous_secret: None,
                access_token_secs: at,
                id_token_secs: it,
                refresh_token_secs: rt,
                jwks: None,
                backchannel_logout_uri: None,
                verify_email_url: None,
                reset_password_url: None,
                id_token_signed_response_alg: id_alg,
                access_token_signed_response_alg: access_alg,
                first_party,
                quotas,
                created_at,
                updated_at,
            },
        )
}

fn alg() -> impl Strategy<Value = SigningAlg> {
    prop_oneof![
        Just(SigningAlg::Rs256),
        Just(SigningAlg::Es256),
        Just(SigningAlg::EdDsa)
    ]
}

fn key_ring() -> impl Strategy<Value = KeyRing> {
    let state = prop_oneof![Just(KeyState::Active), Just(KeyState::Retiring)];
    vec(
        (ident(), alg(), state, text(), sealed(), time(), option::of(time())).prop_map(
            |(kid, alg, state, public_jwk, private_key, created_at, retire_after)| SigningKey {
                kid,
                alg,
                state,
                public_jwk,
                private_key,
                created_at,
                retire_after,
            },
        ),
        0..3,
    )
    .prop_map(|keys| KeyRing { keys })
}

fn entry() -> impl Strategy<Value = (Tenant, KeyRing, Vec<Client>, Vec<Scope>, Vec<Role>)> {
    let tenant = (uuid(), text(), time(), time(), settings()).prop_map(
        |(id, display_name, created_at, updated_at, settings)| Tenant {
            id,
            slug: "acme".into(),
            display_name,
            created_at,
            updated_at,
            settings,
        },
    );
    let clients = vec(ident(), 0..3).prop_flat_map(|ids| ids.into_iter().map(client).collect::<Vec<_>>());
    let scopes = vec(
        (ident(), text(), vec(text(), 0..3)).prop_map(|(name, description, claims)| Scope {
            name,
            description,
            claims,
        }),
        0..3,
    );
    let roles = vec(
        (ident(), text(), vec(text(), 0..3)).prop_map(|(name, description, permissions)| Role {
            name,
            description,
            permissions,
        }),
        0..3,
    );
    (tenant, key_ring(), clients, scopes, roles)
}

/// The store is lossless: everything written through commands reads back equal from disk.
/// (Storage does not validate, so arbitrary field values are fair game here.)
#[test]
fn every_field_round_trips_through_the_files() {
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases: 64,
        ..ProptestConfig::default()
    });
    runner
        .run(
            &(entry(), key_ring(), vec((uuid(), text(), time()), 0..3)),
            |((tenant, ring, clients, scopes, roles), system_ring, admins)| {
                let dir = tempfile::tempdir().unwrap();
                let store = FsStore::new(dir.path());
                store.init().unwrap();
                // Bypass validation on purpose: write through the same store functions apply uses.
                let mut expected = tenantry_controlplane::TenantEntry {
                    tenant: tenant.clone(),
                    key_ring: ring.clone(),
                    ..Default::default()
                };
                for c in clients {
                    expected.clients.insert(c.client_id.clone(), c);
                }
                for s in scopes {
                    expected.scopes.insert(s.name.clone(), s);
                }
                for r in roles {
                    expected.roles.insert(r.name.clone(), r);
                }
                store.create_tenant_dir(&expected).unwrap();
                store
                    .write_json(&store.system_dir().join("keys.json"), &system_ring)
                    .unwrap();
                let mut expected_admins = BTreeMap::new();
                for (id, name, created_at) in admins {
                    let admin = Admin {
                        token_hash: Some("sha256:00".into()),
                        ..Admin::new(id, name, created_at)
                    };
                    store
                        .write_json(&store.admins_dir().join(format!("{id}.json")), &admin)
                        .unwrap();
                    expected_admins.insert(id, admin);
                }

                let loaded = store.load().unwrap();
                prop_assert!(loaded.degraded.is_empty(), "{:?}", loaded.degraded);
                prop_assert_eq!(loaded.tenants.get("acme").map(|e| (**e).clone()), Some(expected));
                prop_assert_eq!(loaded.system_keys, system_ring);
                prop_assert_eq!(loaded.admins, expected_admins);
                Ok(())
            },
        )
        .unwrap();
}

fn valid_tenant(slug: &str) -> Tenant {
    let now = Utc::now();
    Tenant {
        id: Uuid::new_v4(),
        slug: slug.into(),
        display_name: slug.to_uppercase(),
        created_at: now,
        updated_at: now,
        settings: TenantSettings::default(),
    }
}

fn create(cp: &ControlPlane, slug: &str) -> Arc<tenantry_controlplane::Snapshot> {
    cp.apply(&Command::CreateTenant {
        tenant: valid_tenant(slug),
        key_ring: KeyRing::default(),
    })
    .unwrap()
}

#[test]
fn a_truncated_file_degrades_only_its_tenant() {
    let dir = tempfile::tempdir().unwrap();
    let cp = ControlPlane::open(FsStore::new(dir.path())).unwrap();
    create(&cp, "alpha");
    create(&cp, "beta");
    let path = dir.path().join("tenants/alpha/tenant.json");
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();

    let reopened = ControlPlane::open(FsStore::new(dir.path())).unwrap();
    let snap = reopened.snapshot();
    assert!(snap.tenants.contains_key("beta"));
    assert!(!snap.tenants.contains_key("alpha"));
    let degraded = &snap.degraded["alpha"];
    assert_eq!(degraded.path, path);
    assert!(!degraded.error.is_empty());

    // The slug stays reserved; deleting the degraded tenant repairs the tree.
    let err = reopened
        .apply(&Command::CreateTenant {
            tenant: valid_tenant("alpha"),
            key_ring: KeyRing::default(),
        })
        .unwrap_err();
    assert!(matches!(err, ApplyError::Rejected(Rejection::TenantDegraded(_))));
    reopened.apply(&Command::DeleteTenant { slug: "alpha".into() }).unwrap();
    assert!(
        ControlPlane::open(FsStore::new(dir.path()))
            .unwrap()
            .snapshot()
            .degraded
            .is_empty()
    );
}

#[test]
fn rejected_commands_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let cp = ControlPlane::open(FsStore::new(dir.path())).unwrap();
    create(&cp, "alpha");
    let before = cp.snapshot().revision;

    let mut bad = valid_tenant("alpha");
    bad.settings.branding.logo_url = Some("javascript:alert(1)".into());
    bad.id = cp.snapshot().tenants["alpha"].tenant.id;
    bad.created_at = cp.snapshot().tenants["alpha"].tenant.created_at;
    assert!(matches!(
        cp.apply(&Command::UpdateTenant {
            tenant: bad,
            expected_updated_at: None
        }),
        Err(ApplyError::Rejected(Rejection::Invalid(_)))
    ));
    assert!(matches!(
        cp.apply(&Command::CreateTenant {
            tenant: valid_tenant("alpha"),
            key_ring: KeyRing::default()
        }),
        Err(ApplyError::Rejected(Rejection::TenantExists(_)))
    ));
    assert!(matches!(
        cp.apply(&Command::CreateTenant {
            tenant: valid_tenant("Bad_Slug"),
            key_ring: KeyRing::default()
        }),
        Err(ApplyError::Rejected(Rejection::Invalid(_)))
    ));
    assert!(matches!(
        cp.apply(&Command::DeleteTenant { slug: "ghost".into() }),
        Err(ApplyError::Rejected(Rejection::TenantNotFound(_)))
    ));
    assert!(matches!(
        cp.apply(&Command::DeleteClient {
            slug: "alpha".into(),
            client_id: "nope".into()
        }),
        Err(ApplyError::Rejected(Rejection::NotFound { .. }))
    ));
    assert_eq!(cp.snapshot().revision, before);
    let reloaded = FsStore::new(dir.path()).load().unwrap();
    assert_eq!(reloaded.tenants["alpha"].tenant, cp.snapshot().tenants["alpha"].tenant);
    assert!(!dir.path().join("tenants/Bad_Slug").exists());
}

#[test]
fn delete_removes_the_whole_folder_and_leftovers_are_cleaned() {
    let dir = tempfile::tempdir().unwrap();
    let cp = ControlPlane::open(FsStore::new(dir.path())).unwrap();
    create(&cp, "gone");
    cp.apply(&Command::DeleteTenant { slug: "gone".into() }).unwrap();
    assert!(!dir.path().join("tenants/gone").exists());

    // Simulate a crash mid-create and mid-write: staging folder and temp file left behind.
    std::fs::create_dir_all(dir.path().join("tenants/.staging-x-1")).unwrap();
    std::fs::write(dir.path().join("system/admins/.a.json.tmp-1"), b"{").unwrap();
    let snap = FsStore::new(dir.path()).load().unwrap();
    assert!(snap.tenants.is_empty() && snap.degraded.is_empty());
    assert!(!dir.path().join("tenants/.staging-x-1").exists());
    assert!(!dir.path().join("system/admins/.a.json.tmp-1").exists());
}

#[test]
fn subscribers_see_every_applied_command() {
    use std::sync::Mutex;
    struct Log(Mutex<Vec<String>>);
    impl tenantry_controlplane::Subscriber for Log {
        fn on_change(
            &self,
            change: &tenantry_controlplane::Change<'_>,
            snapshot: &Arc<tenantry_controlplane::Snapshot>,
        ) {
            if let tenantry_controlplane::Change::Applied(cmd) = change {
                self.0
                    .lock()
                    .unwrap()
                    .push(format!("{}@{}", cmd.kind(), snapshot.revision));
            }
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let cp = ControlPlane::open(FsStore::new(dir.path())).unwrap();
    let log = Arc::new(Log(Mutex::new(vec![])));
    cp.subscribe(log.clone());
    create(&cp, "a");
    cp.apply(&Command::DeleteTenant { slug: "a".into() }).unwrap();
    assert_eq!(*log.0.lock().unwrap(), vec!["create_tenant@1", "delete_tenant@2"]);
}

fn fake_key(kid: &str, alg: SigningAlg) -> SigningKey {
    SigningKey {
        kid: kid.into(),
        alg,
        state: KeyState::Active,
        public_jwk: format!(r#"{{"kid":"{kid}"}}"#),
        private_key: SealedSecret(format!("tsb1.k.{kid}")),
        created_at: Utc.timestamp_opt(1_700_000_000, 0).unwrap(),
        retire_after: None,
    }
}

#[test]
fn key_rotation_and_retirement_are_deterministic_commands() {
    let dir = tempfile::tempdir().unwrap();
    let cp = ControlPlane::open(FsStore::new(dir.path())).unwrap();
    let ring = KeyRing {
        keys: vec![fake_key("rs-1", SigningAlg::Rs256), fake_key("es-1", SigningAlg::Es256)],
    };
    cp.apply(&Command::CreateTenant {
        tenant: valid_tenant("acme"),
        key_ring: ring,
    })
    .unwrap();
    let retire_after = Utc.timestamp_opt(1_800_000_000, 0).unwrap();
    let snap = cp
        .apply(&Command::RotateKeys {
            slug: Some("acme".into()),
            keys: vec![fake_key("es-2", SigningAlg::Es256)],
            retire_after,
        })
        .unwrap();
    let ring = &snap.tenant("acme").unwrap().key_ring;
    assert_eq!(ring.active(SigningAlg::Es256).unwrap().kid, "es-2");
    assert_eq!(
        ring.active(SigningAlg::Rs256).unwrap().kid,
        "rs-1",
        "other algorithms untouched"
    );
    let old = ring.keys.iter().find(|k| k.kid == "es-1").unwrap();
    assert_eq!((old.state, old.retire_after), (KeyState::Retiring, Some(retire_after)));
    assert_eq!(ring.expired(retire_after), vec!["es-1".to_owned()]);
    assert!(ring.expired(retire_after - chrono::Duration::seconds(1)).is_empty());

    // Refusals change nothing.
    for (bad, expected) in [
        (
            Command::RetireKeys {
                slug: Some("acme".into()),
                kids: vec!["es-2".into()],
            },
            KeyRingError::KeyActive("es-2".into()),
        ),
        (
            Command::RetireKeys {
                slug: Some("acme".into()),
                kids: vec!["nope".into()],
            },
            KeyRingError::UnknownKey("nope".into()),
        ),
        (
            Command::RotateKeys {
                slug: Some("acme".into()),
                keys: vec![fake_key("es-2", SigningAlg::Es256)],
                retire_after,
            },
            KeyRingError::DuplicateKid("es-2".into()),
        ),
    ] {
        assert!(matches!(
            cp.apply(&bad),
            Err(ApplyError::Rejected(Rejection::KeyRing(ref e))) if *e == expected
        ));
    }
    assert_eq!(cp.snapshot().revision, snap.revision);

    cp.apply(&Command::RetireKeys {
        slug: Some("acme".into()),
        kids: vec!["es-1".into()],
    })
    .unwrap();
    // The system ring goes through the same commands.
    cp.apply(&Command::RotateKeys {
        slug: None,
        keys: vec![fake_key("sys-1", SigningAlg::EdDsa)],
        retire_after,
    })
    .unwrap();
    let reopened = ControlPlane::open(FsStore::new(dir.path())).unwrap().snapshot();
    let kids: Vec<_> = reopened
        .tenant("acme")
        .unwrap()
        .key_ring
        .keys
        .iter()
        .map(|k| k.kid.clone())
        .collect();
    assert_eq!(kids, ["rs-1", "es-2"]);
    assert_eq!(reopened.system_keys.keys[0].kid, "sys-1");
    assert_eq!(reopened.system_keys, cp.snapshot().system_keys);
}

#[test]
fn deleting_a_tenant_takes_it_out_of_every_credentials_reach() {
    let dir = tempfile::tempdir().unwrap();
    let cp = ControlPlane::open(FsStore::new(dir.path())).unwrap();
    create(&cp, "acme");
    create(&cp, "beta");
    let admin = Admin {
        email: Some("ops@example.com".into()),
        password_hash: Some("$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into()),
        reach: AdminReach::Tenants(vec!["acme".into(), "beta".into()]),
        ..Admin::new(Uuid::new_v4(), "ops".into(), Utc::now())
    };
    cp.apply(&Command::PutAdmin { admin: admin.clone() }).unwrap();
    let key = ApiKey {
        id: Uuid::new_v4(),
        name: "acme ci".into(),
        secret_digest: "digest".into(),
        reach: AdminReach::Tenants(vec!["acme".into()]),
        access: AdminAccess::ReadWrite,
        created_by: admin.id,
        created_at: Utc::now(),
        expires_at: None,
        revoked_at: None,
        last_used_at: None,
    };
    cp.apply(&Command::CreateApiKey { key: key.clone() }).unwrap();
    cp.apply(&Command::DeleteTenant { slug: "acme".into() }).unwrap();
    // A tenant made again under the old slug is reached by nobody who reached the old one.
    create(&cp, "acme");
    let snapshot = cp.snapshot();
    assert_eq!(
        snapshot.admins[&admin.id].reach,
        AdminReach::Tenants(vec!["beta".into()])
    );
    assert_eq!(snapshot.api_keys[&key.id].reach, AdminReach::Tenants(vec![]));
    assert!(!snapshot.api_keys[&key.id].reach.covers("acme"));
    let reopened = FsStore::new(dir.path()).load().unwrap();
    assert_eq!(
        reopened.api_keys[&key.id].reach,
        AdminReach::Tenants(vec![]),
        "stored, not only in memory"
    );
}

#[test]
fn api_keys_are_created_once_revoked_for_good_and_touched_forward() {
    let dir = tempfile::tempdir().unwrap();
    let cp = ControlPlane::open(FsStore::new(dir.path())).unwrap();
    let at = |secs: i64| Utc.timestamp_opt(1_700_000_000 + secs, 0).unwrap();
    let key = ApiKey {
        id: Uuid::new_v4(),
        name: "ci".into(),
        secret_digest: "digest".into(),
        reach: AdminReach::Tenants(vec!["acme".into()]),
        access: AdminAccess::ReadOnly,
        created_by: Uuid::new_v4(),
        created_at: at(0),
        expires_at: Some(at(86_400)),
        revoked_at: None,
        last_used_at: None,
    };
    cp.apply(&Command::CreateApiKey { key: key.clone() }).unwrap();
    assert!(matches!(
        cp.apply(&Command::CreateApiKey { key: key.clone() }),
        Err(ApplyError::Rejected(Rejection::Exists { .. }))
    ));
    let id = key.id;
    cp.apply(&Command::TouchApiKey { id, at: at(600) }).unwrap();
    cp.apply(&Command::TouchApiKey { id, at: at(300) }).unwrap();
    cp.apply(&Command::RevokeApiKey { id, at: at(700) }).unwrap();
    cp.apply(&Command::RevokeApiKey { id, at: at(900) }).unwrap();
    let stored = cp.snapshot().api_keys[&id].clone();
    assert_eq!(stored.last_used_at, Some(at(600)), "a late touch does not move it back");
    assert_eq!(stored.revoked_at, Some(at(700)), "the first revocation stands");
    assert!(!stored.is_live(at(800)));
    let reopened = ControlPlane::open(FsStore::new(dir.path())).unwrap();
    assert_eq!(reopened.snapshot().api_keys[&id], stored, "keys load from their files");

    let mut bad = key.clone();
    bad.id = Uuid::new_v4();
    bad.reach = AdminReach::Tenants((0..101).map(|i| format!("t{i}")).collect());
    bad.expires_at = Some(at(-1));
    let Err(ApplyError::Rejected(Rejection::Invalid(errors))) = cp.apply(&Command::CreateApiKey { key: bad }) else {
        panic!("a reach of 101 tenants and a past expiry are refused");
    };
    assert_eq!(errors.0.len(), 2, "{errors:?}");
    assert!(matches!(
        cp.apply(&Command::RevokeApiKey {
            id: Uuid::new_v4(),
            at: at(0)
        }),
        Err(ApplyError::Rejected(Rejection::NotFound { .. }))
    ));
}
