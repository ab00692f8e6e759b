//! The repositories on every driver, run on SQLite always and on PostgreSQL and MariaDB
//! when their test URLs are set (CI sets both): migrations, users, sessions, codes and
//! refresh tokens, second factors, roles, mailed links. Custom fields, user search and
//! security events have suites of their own beside this one.

use std::collections::BTreeMap;

use chrono::{Duration, Utc};
use serde_json::json;
use tenantry_controlplane::model::CustomFieldType;
use tenantry_dataplane::custom_fields::CustomFieldSet;
use tenantry_dataplane::db::Schema;
use tenantry_dataplane::model::*;
use tenantry_dataplane::*;
use uuid::Uuid;

use crate::common;
use crate::common::Fixture;
use crate::custom_fields::field;

pub(crate) fn no_fields() -> CustomFieldSet {
    CustomFieldSet::default()
}

pub(crate) fn new_user(email: &str) -> NewUser {
    NewUser {
        email: email.into(),
        name: Some("Ada".into()),
        ..Default::default()
    }
}

async fn migrations(fx: &Fixture) {
    let status = fx.db.schema_status(Schema::Tenant).await.unwrap();
    assert_eq!(status.version, status.latest_known);
    assert!(status.version >= 1);
    assert_eq!(status.pending, 0);
    // Applying again is a no-op.
    assert_eq!(
        fx.db.migrate(Schema::Tenant, fx.sqlite_path.as_deref()).await.unwrap(),
        status
    );
}
on_every_driver!(migrations_apply_once_and_report_their_version, migrations);

async fn newer_schema(fx: &Fixture) {
    let sql = fx.db.sql(
        "INSERT INTO _sqlx_migrations (version, description, installed_on, success, checksum, execution_time) VALUES (?, ?, CURRENT_TIMESTAMP, ?, ?, ?)",
    );
    let checksum = vec![0u8; 48];
    on_pool!(fx.db, p => sqlx::query(sql).bind(99_999_i64).bind("from the future").bind(true).bind(checksum).bind(1_i64).execute(p).await.map(|_| ())).unwrap();
    let err = fx
        .db
        .migrate(Schema::Tenant, fx.sqlite_path.as_deref())
        .await
        .unwrap_err();
    assert_eq!(err, DbError::Unavailable(ErrorKind::SchemaTooNew));
    assert_eq!(fx.db.schema_status(Schema::Tenant).await.unwrap().unknown_applied, 1);
}
on_every_driver!(a_database_with_a_newer_schema_is_refused, newer_schema);

async fn bad_values(fx: &Fixture) {
    let db = &fx.db;
    let f = no_fields();
    let user = db.create_user(new_user("ada@example.com"), &f).await.unwrap();
    // Every user write checks the profile before any statement, on every driver.
    let refused = |r: Result<(), DbError>| match r {
        Err(DbError::InvalidFields(e)) => e[0].field.clone(),
        other => panic!("expected a refusal, got {other:?}"),
    };
    let update = |u: ProfileUpdate| db.update_profile(user.id, u);
    let long_locale = ProfileUpdate {
        locale: Some("x".repeat(36)),
        ..Default::default()
    };
    assert_eq!(refused(update(long_locale).await), "locale");
    let nul_name = ProfileUpdate {
        given_name: Some("A\0da".into()),
        ..Default::default()
    };
    assert_eq!(refused(update(nul_name).await), "given_name");
    let mut nul_email = new_user("a\0@example.com");
    nul_email.name = None;
    assert!(matches!(
        db.create_user(nul_email, &f).await,
        Err(DbError::InvalidFields(_))
    ));
    // Looking up an address no account can have finds nobody instead of failing.
    assert!(db.user_by_email("a\0@example.com", &f).await.unwrap().is_none());
    assert!(db.login_account("a\0@example.com", &f).await.unwrap().is_none());
    let loaded = db.user_by_id(user.id, &f).await.unwrap().unwrap();
    assert_eq!((loaded.locale, loaded.given_name), (None, None), "nothing was written");

    // A value the database itself refuses (a write without a check of its own) is the
    // caller's mistake, not an outage: `Invalid`, never `Query`/`Unavailable`.
    let too_long = db.link_identity(user.id, &"p".repeat(100), "sub", None).await;
    let with_nul = db.link_identity(user.id, "google", "s\0b", None).await;
    match fx.driver {
        // SQLite keeps any length and NUL in TEXT.
        tenantry_controlplane::model::DbDriver::Sqlite => {
            too_long.unwrap();
            with_nul.unwrap();
        }
        tenantry_controlplane::model::DbDriver::Postgres => {
            assert!(matches!(too_long, Err(DbError::Invalid(_))), "{too_long:?}");
            assert!(matches!(with_nul, Err(DbError::Invalid(_))), "{with_nul:?}");
        }
        _ => {
            assert!(matches!(too_long, Err(DbError::Invalid(_))), "{too_long:?}");
            with_nul.unwrap();
        }
    }
}
on_every_driver!(bad_values_are_refused_as_input_not_as_an_outage, bad_values);

async fn concurrent_migrations(fx: &Fixture) {
    // A fresh database (the fixture's is already migrated): two pools migrate at once.
    let driver = fx.driver;
    let dir = tempfile::tempdir().unwrap();
    let (created, dsn, path) = match driver {
        tenantry_controlplane::model::DbDriver::Sqlite => (None, None, Some(dir.path().join("race.db"))),
        _ => {
            let (admin, name, dsn) = common::create_database(driver).await.unwrap();
            (Some((admin, name)), Some(dsn), None)
        }
    };
    let a = TenantDb::connect(&common::spec(driver, path.clone(), dsn.as_deref()))
        .await
        .unwrap();
    let b = TenantDb::connect(&common::spec(driver, path.clone(), dsn.as_deref()))
        .await
        .unwrap();
    let (ra, rb) = tokio::join!(
        a.migrate(Schema::Tenant, path.as_deref()),
        b.migrate(Schema::Tenant, path.as_deref())
    );
    assert_eq!(ra.unwrap().pending, 0);
    assert_eq!(rb.unwrap().pending, 0);
    a.close().await;
    b.close().await;
    if let Some((admin, name)) = created {
        common::drop_database(driver, &admin, &name).await;
    }
}
on_every_driver!(two_pools_migrating_at_once_do_not_race, concurrent_migrations);

async fn users(fx: &Fixture) {
    let db = &fx.db;
    let f = no_fields();
    let user = db.create_user(new_user("Ada@Example.COM"), &f).await.unwrap();
    assert_eq!(user.email, "Ada@Example.COM");
    assert_eq!(user.status, UserStatus::Active);
    let err = db.create_user(new_user("ada@example.com"), &f).await.unwrap_err();
    assert_eq!(err, DbError::Conflict("email_taken"));
    assert_eq!(
        db.user_by_email("ADA@example.com", &f).await.unwrap().unwrap().id,
        user.id
    );
    assert!(matches!(
        db.create_user(new_user("not-an-email"), &f).await,
        Err(DbError::InvalidFields(e)) if e[0].field == "email"
    ));

    db.update_profile(
        user.id,
        ProfileUpdate {
            given_name: Some("Augusta".into()),
            metadata: Some(json!({"plan": "pro"})),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let loaded = db.user_by_id(user.id, &f).await.unwrap().unwrap();
    assert_eq!(loaded.given_name.as_deref(), Some("Augusta"));
    assert_eq!(loaded.name.as_deref(), Some("Ada"));
    assert_eq!(loaded.metadata, json!({"plan": "pro"}));

    db.disable_user(user.id, Some("abuse"), None).await.unwrap();
    assert_eq!(
        db.user_by_id(user.id, &f).await.unwrap().unwrap().status,
        UserStatus::Disabled
    );
    db.enable_user(user.id).await.unwrap();

    db.set_password(user.id, "$argon2id$v=19$m=19456,t=2,p=1$a$b")
        .await
        .unwrap();
    db.set_password(user.id, "$argon2id$v=19$m=19456,t=2,p=1$c$d")
        .await
        .unwrap();
    assert_eq!(
        db.password(user.id).await.unwrap().unwrap(),
        "$argon2id$v=19$m=19456,t=2,p=1$c$d"
    );

    db.link_identity(user.id, "google", "sub-1", Some("ada@gmail.com"))
        .await
        .unwrap();
    assert_eq!(
        db.link_identity(user.id, "google", "sub-1", None).await.unwrap_err(),
        DbError::Conflict("identity_linked")
    );
    assert_eq!(db.identity("google", "sub-1").await.unwrap().unwrap().user_id, user.id);
    assert_eq!(db.identities_of(user.id).await.unwrap().len(), 1);
    assert_eq!(db.unlink_identities(user.id, "github").await.unwrap(), 0);
    assert_eq!(db.unlink_identities(user.id, "google").await.unwrap(), 1);
    assert!(db.identities_of(user.id).await.unwrap().is_empty());
    assert!(db.identity("google", "sub-1").await.unwrap().is_none());

    let second = db.create_user(new_user("bob@example.com"), &f).await.unwrap();
    let page = db.list_users(None, 1, &f).await.unwrap();
    assert_eq!(page.len(), 1);
    let rest = db.list_users(Some(page[0].id), 10, &f).await.unwrap();
    assert_eq!(rest.len(), 1);
    assert_eq!(db.count_users().await.unwrap(), 2);
    assert!(db.delete_user(second.id).await.unwrap());
    assert!(db.password(second.id).await.unwrap().is_none());
}
on_every_driver!(users_credentials_and_identities, users);

async fn codes_and_refresh_tokens(fx: &Fixture) {
    let db = &fx.db;
    let user = db.create_user(new_user("t@example.com"), &no_fields()).await.unwrap();
    let now = Utc::now();
    let session = Session {
        id_hash: "sess-hash".into(),
        user_id: user.id,
        auth_time: now,
        amr: vec!["pwd".into()],
        acr: None,
        ip: Some("127.0.0.1".into()),
        user_agent: Some("test".into()),
        created_at: now,
        last_seen_at: now,
        expires_at: now + Duration::hours(8),
        revoked_at: None,
    };
    db.create_session(&session).await.unwrap();
    assert_eq!(
        db.active_session("sess-hash", now).await.unwrap().unwrap().amr,
        vec!["pwd"]
    );

    let code = AuthorizationCode {
        code_hash: "code-hash".into(),
        client_id: "app".into(),
        user_id: user.id,
        session_id_hash: Some("sess-hash".into()),
        redirect_uri: "https://app.example/cb".into(),
        scope: "openid offline_access".into(),
        nonce: Some("n".into()),
        code_challenge: Some("x".repeat(43)),
        code_challenge_method: Some("S256".into()),
        auth_time: now,
        acr: None,
        amr: vec!["pwd".into()],
        created_at: now,
        expires_at: now + Duration::seconds(60),
        used_at: None,
    };
    db.store_code(&code).await.unwrap();
    assert!(
        matches!(db.redeem_code("code-hash", now).await.unwrap(), CodeRedemption::Redeemed(c) if c.nonce.as_deref() == Some("n"))
    );
    assert!(matches!(
        db.redeem_code("code-hash", now).await.unwrap(),
        CodeRedemption::Replayed(_)
    ));
    assert_eq!(db.redeem_code("nope", now).await.unwrap(), CodeRedemption::NotFound);
    let mut old_code = code.clone();
    old_code.code_hash = "old-code".into();
    old_code.expires_at = now - Duration::seconds(1);
    db.store_code(&old_code).await.unwrap();
    assert_eq!(db.redeem_code("old-code", now).await.unwrap(), CodeRedemption::Expired);

    let new = |hash: &str| NewRefreshToken {
        token_hash: hash.into(),
        client_id: "app".into(),
        user_id: user.id,
        session_id_hash: Some("sess-hash".into()),
        origin_code_hash: Some("code-hash".into()),
        scope: "openid offline_access".into(),
        auth_time: Some(now - Duration::minutes(5)),
        amr: vec!["pwd".into(), "otp".into()],
        expires_at: now + Duration::days(30),
    };
    let rotate = |hash: &str| RotationRequest {
        client_id: "app".into(),
        new_hash: hash.into(),
        scope: None,
        expires_at: now + Duration::days(30),
        user_fields: Default::default(),
    };
    let first = db.issue_refresh(new("rt-1"), now).await.unwrap();

    // Refusals inside the rotation change nothing: the token stays spendable.
    let other_client = RotationRequest {
        client_id: "intruder".into(),
        ..rotate("rt-z")
    };
    assert_eq!(
        db.rotate_refresh("rt-1", other_client, now).await.unwrap(),
        Rotation::WrongClient
    );
    let wider = RotationRequest {
        scope: Some(vec!["openid".into(), "email".into()]),
        ..rotate("rt-z")
    };
    assert_eq!(
        db.rotate_refresh("rt-1", wider, now).await.unwrap(),
        Rotation::ScopeWidened
    );
    assert!(db.refresh_token("rt-z").await.unwrap().is_none());

    let narrower = RotationRequest {
        scope: Some(vec!["openid".into(), "openid".into()]),
        ..rotate("rt-2")
    };
    let Rotation::Rotated {
        old,
        new: second,
        user: owner,
    } = db.rotate_refresh("rt-1", narrower, now).await.unwrap()
    else {
        panic!("rotate")
    };
    assert_eq!(old.token_hash, "rt-1");
    // The token's user comes with it, read in the same statement.
    assert_eq!((owner.id, &owner.email), (user.id, &user.email));
    assert_eq!(second.family_id, first.family_id);
    assert_eq!(second.parent_hash.as_deref(), Some("rt-1"));
    assert_eq!(second.scope, "openid");
    // The login the family started from travels with every rotation.
    assert_eq!(second.auth_time, first.auth_time);
    assert_eq!(second.amr, vec!["pwd".to_owned(), "otp".to_owned()]);
    let stored = db.refresh_token("rt-2").await.unwrap().unwrap();
    assert_eq!(stored.auth_time, first.auth_time);
    assert_eq!(stored.amr, first.amr);
    assert_eq!(stored.scope, "openid");
    // A rotated token presented by another client is refused without revoking anything.
    assert_eq!(
        db.rotate_refresh(
            "rt-1",
            RotationRequest {
                client_id: "intruder".into(),
                ..rotate("rt-z")
            },
            now
        )
        .await
        .unwrap(),
        Rotation::WrongClient
    );

    // Reusing a rotated token revokes the whole family.
    let reuse = db.rotate_refresh("rt-1", rotate("rt-4"), now).await.unwrap();
    let Rotation::ReuseDetected { family_id, revoked } = reuse else {
        panic!("reuse: {reuse:?}")
    };
    assert_eq!(family_id, first.family_id);
    assert_eq!(revoked, 2, "rt-1 and the live rt-2");
    assert_eq!(
        db.rotate_refresh("rt-2", rotate("rt-5"), now).await.unwrap(),
        Rotation::Revoked
    );

    // Concurrent rotations of the same token: exactly one wins, the other is reuse.
    db.issue_refresh(new("rt-r"), now).await.unwrap();
    let (a, b) = tokio::join!(
        db.rotate_refresh("rt-r", rotate("rt-ra"), now),
        db.rotate_refresh("rt-r", rotate("rt-rb"), now)
    );
    let results = [a.unwrap(), b.unwrap()];
    assert_eq!(
        results.iter().filter(|r| matches!(r, Rotation::Rotated { .. })).count(),
        1,
        "{results:?}"
    );
    assert_eq!(
        results
            .iter()
            .filter(|r| matches!(r, Rotation::ReuseDetected { .. }))
            .count(),
        1,
        "{results:?}"
    );
    let successors = [
        db.refresh_token("rt-ra").await.unwrap(),
        db.refresh_token("rt-rb").await.unwrap(),
    ];
    assert_eq!(successors.iter().flatten().count(), 1, "the loser stored no successor");
    // Many at once: still one successor, and the family ends revoked.
    db.issue_refresh(new("rt-m"), now).await.unwrap();
    let many =
        futures_util::future::join_all((0..8).map(|i| db.rotate_refresh("rt-m", rotate(&format!("rt-m{i}")), now)))
            .await;
    let won = many
        .iter()
        .filter(|r| matches!(r, Ok(Rotation::Rotated { .. })))
        .count();
    assert_eq!(won, 1, "{many:?}");
    let mut stored = 0;
    for i in 0..8 {
        stored += usize::from(db.refresh_token(&format!("rt-m{i}")).await.unwrap().is_some());
    }
    assert_eq!(stored, 1);
    assert_eq!(
        db.rotate_refresh("rt-4", rotate("rt-5"), now).await.unwrap(),
        Rotation::NotFound
    );

    let other = db.issue_refresh(new("rt-x"), now).await.unwrap();
    assert_eq!(db.revoke_refresh_by_code("code-hash", now).await.unwrap(), 1);
    assert!(
        db.refresh_token(&other.token_hash)
            .await
            .unwrap()
            .unwrap()
            .revoked_at
            .is_some()
    );
    assert_eq!(
        db.rotate_refresh("rt-x", rotate("rt-y"), now).await.unwrap(),
        Rotation::Revoked
    );
    db.issue_refresh(
        NewRefreshToken {
            origin_code_hash: None,
            ..new("rt-s")
        },
        now,
    )
    .await
    .unwrap();
    assert_eq!(db.revoke_refresh_by_session("sess-hash", now).await.unwrap(), 1);
    let expired = db
        .issue_refresh(
            NewRefreshToken {
                expires_at: now - Duration::seconds(1),
                ..new("rt-e")
            },
            now,
        )
        .await
        .unwrap();
    assert_eq!(
        db.rotate_refresh(&expired.token_hash, rotate("rt-f"), now)
            .await
            .unwrap(),
        Rotation::Expired
    );
    // Refused and left unspent, with no successor.
    assert!(db.refresh_token("rt-e").await.unwrap().unwrap().rotated_at.is_none());
    assert!(db.refresh_token("rt-f").await.unwrap().is_none());
    db.issue_refresh(new("rt-u"), now).await.unwrap();
    assert!(db.revoke_refresh_by_user(user.id, now).await.unwrap() >= 1);

    assert!(db.revoke_session("sess-hash", now).await.unwrap());
    assert!(db.active_session("sess-hash", now).await.unwrap().is_none());
    let mut s2 = session.clone();
    s2.id_hash = "s2".into();
    db.create_session(&s2).await.unwrap();
    let mut s3 = session.clone();
    s3.id_hash = "s3".into();
    db.create_session(&s3).await.unwrap();
    assert_eq!(db.revoke_user_sessions(user.id, Some("s3"), now).await.unwrap(), 1);
    assert_eq!(db.sessions_of(user.id, now).await.unwrap().len(), 1);
}
on_every_driver!(
    single_use_codes_and_refresh_rotation_with_reuse_detection,
    codes_and_refresh_tokens
);

async fn access_token_deny_list(fx: &Fixture) {
    let db = &fx.db;
    let now = chrono::Utc::now();
    assert!(!db.access_token_denied("jti-1").await.unwrap());
    db.deny_access_token("jti-1", now + chrono::Duration::minutes(5))
        .await
        .unwrap();
    // Revoking twice is not an error.
    db.deny_access_token("jti-1", now + chrono::Duration::minutes(5))
        .await
        .unwrap();
    db.deny_access_token("jti-2", now - chrono::Duration::minutes(1))
        .await
        .unwrap();
    assert!(db.access_token_denied("jti-1").await.unwrap());
    assert!(!db.access_token_denied("JTI-1").await.unwrap(), "jti compare exactly");
    assert_eq!(db.purge_denied_access_tokens(now).await.unwrap(), 1);
    assert!(db.access_token_denied("jti-1").await.unwrap());
    assert!(!db.access_token_denied("jti-2").await.unwrap());

    // Client assertion jtis are single use per client.
    let later = now + chrono::Duration::minutes(5);
    assert!(db.spend_assertion_jti("client-a", "a-1", later).await.unwrap());
    assert!(
        !db.spend_assertion_jti("client-a", "a-1", later).await.unwrap(),
        "replay"
    );
    assert!(
        db.spend_assertion_jti("client-b", "a-1", later).await.unwrap(),
        "another client's jti"
    );
}
on_every_driver!(
    revoked_access_tokens_stay_denied_until_they_expire,
    access_token_deny_list
);

/// What a password login reads in one statement: the user (with custom fields), the
/// password hash and whether a confirmed authenticator is enrolled.
async fn login_account(fx: &Fixture) {
    let db = &fx.db;
    let declared = vec![field("badge", CustomFieldType::Text, false)];
    db.sync_custom_fields(&declared).await.unwrap();
    let set = CustomFieldSet::new(&declared);
    let custom = BTreeMap::from([("badge".to_owned(), json!("B-7"))]);
    let user = db
        .create_user(
            NewUser {
                custom: custom.clone(),
                ..new_user("Login@Example.com")
            },
            &set,
        )
        .await
        .unwrap();
    let state = |password: Option<&str>, totp_enrolled| users::LoginState {
        password: password.map(str::to_owned),
        totp_enrolled,
    };

    let (found, login) = db.login_account("login@EXAMPLE.com", &set).await.unwrap().unwrap();
    assert_eq!(found, user);
    assert_eq!(found.custom, custom);
    assert_eq!(login, state(None, false));
    assert!(db.login_account("nobody@example.com", &set).await.unwrap().is_none());

    let phc = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo";
    db.set_password(user.id, phc).await.unwrap();
    let now = Utc::now();
    db.put_totp(user.id, "tsb1.k.pending", now).await.unwrap();
    let (_, login) = db.login_account("login@example.com", &set).await.unwrap().unwrap();
    assert_eq!(
        login,
        state(Some(phc), false),
        "an unconfirmed enrolment is no second factor"
    );
    db.confirm_totp(user.id, "tsb1.k.pending", now).await.unwrap();
    let (_, login) = db.login_account("login@example.com", &set).await.unwrap().unwrap();
    assert_eq!(login, state(Some(phc), true));
    db.delete_totp(user.id).await.unwrap();
    let (_, login) = db.login_account("login@example.com", &set).await.unwrap().unwrap();
    assert_eq!(login, state(Some(phc), false));
}
on_every_driver!(a_login_reads_user_password_and_second_factor_at_once, login_account);

async fn mfa_and_consent(fx: &Fixture) {
    let db = &fx.db;
    let user = db.create_user(new_user("m@example.com"), &no_fields()).await.unwrap();
    let now = Utc::now();

    assert!(db.put_totp(user.id, "tsb1.k.first", now).await.unwrap());
    assert!(
        db.put_totp(user.id, "tsb1.k.sealed", now).await.unwrap(),
        "an unconfirmed secret is replaced"
    );
    assert!(
        !db.confirm_totp(user.id, "tsb1.k.first", now).await.unwrap(),
        "only the current secret confirms"
    );
    assert!(db.confirm_totp(user.id, "tsb1.k.sealed", now).await.unwrap());
    assert!(
        !db.put_totp(user.id, "tsb1.k.other", now).await.unwrap(),
        "a confirmed credential stays"
    );
    assert_eq!(db.totp(user.id).await.unwrap().unwrap().secret_sealed, "tsb1.k.sealed");
    assert!(db.use_totp_step(user.id, 1000).await.unwrap());
    assert!(
        !db.use_totp_step(user.id, 1000).await.unwrap(),
        "a time step is usable once"
    );
    assert!(!db.use_totp_step(user.id, 999).await.unwrap());
    assert!(db.use_totp_step(user.id, 1001).await.unwrap());
    assert_eq!(db.totp(user.id).await.unwrap().unwrap().last_used_step, Some(1001));

    let codes: Vec<String> = (0..10).map(|i| format!("rc-{i}")).collect();
    db.replace_recovery_codes(user.id, &codes, now).await.unwrap();
    assert!(db.use_recovery_code(user.id, "rc-3", now).await.unwrap());
    assert!(!db.use_recovery_code(user.id, "rc-3", now).await.unwrap());
    assert_eq!(db.remaining_recovery_codes(user.id).await.unwrap(), 9);

    let device = TrustedDevice {
        token_hash: "dev".into(),
        user_id: user.id,
        user_agent: None,
        created_at: now,
        expires_at: now + Duration::days(30),
        revoked_at: None,
    };
    db.trust_device(&device).await.unwrap();
    assert!(db.trusted_device("dev", user.id, now).await.unwrap().is_some());
    assert_eq!(db.forget_devices(user.id, now).await.unwrap(), 1);
    assert!(db.trusted_device("dev", user.id, now).await.unwrap().is_none());

    let token = EmailToken {
        token_hash: "et".into(),
        user_id: user.id,
        purpose: EmailTokenPurpose::VerifyEmail.as_str().into(),
        email: "m@example.com".into(),
        created_at: now,
        expires_at: now + Duration::hours(48),
        used_at: None,
    };
    db.store_email_token(&token).await.unwrap();
    let found = db
        .email_token("et", EmailTokenPurpose::VerifyEmail, now)
        .await
        .unwrap()
        .expect("an unused token is found");
    assert_eq!(
        (found.user_id, found.email.as_str(), found.used_at),
        (user.id, "m@example.com", None)
    );
    assert!(
        db.email_token("et", EmailTokenPurpose::ResetPassword, now)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        db.email_token("et", EmailTokenPurpose::VerifyEmail, now + Duration::hours(49))
            .await
            .unwrap()
            .is_none(),
        "expired"
    );
    assert!(
        db.use_email_token("et", EmailTokenPurpose::VerifyEmail, now + Duration::hours(49))
            .await
            .unwrap()
            .is_none(),
        "an expired token is not spent"
    );
    assert!(
        db.use_email_token("et", EmailTokenPurpose::ResetPassword, now)
            .await
            .unwrap()
            .is_none(),
        "purpose must match"
    );
    assert!(
        db.use_email_token("et", EmailTokenPurpose::VerifyEmail, now)
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        db.use_email_token("et", EmailTokenPurpose::VerifyEmail, now)
            .await
            .unwrap()
            .is_none(),
        "single use"
    );
    assert!(
        db.email_token("et", EmailTokenPurpose::VerifyEmail, now)
            .await
            .unwrap()
            .is_none(),
        "a spent token is gone"
    );

    db.grant_consent(&Consent {
        user_id: user.id,
        client_id: "app".into(),
        scopes: vec!["openid".into()],
        granted_at: now,
        expires_at: None,
        revoked_at: None,
    })
    .await
    .unwrap();
    db.grant_consent(&Consent {
        user_id: user.id,
        client_id: "app".into(),
        scopes: vec!["openid".into(), "email".into()],
        granted_at: now,
        expires_at: None,
        revoked_at: None,
    })
    .await
    .unwrap();
    assert_eq!(
        db.consent(user.id, "app", now).await.unwrap().unwrap().scopes,
        vec!["openid", "email"]
    );
    assert!(db.revoke_consent(user.id, "app", now).await.unwrap());
    assert!(db.consent(user.id, "app", now).await.unwrap().is_none());
}
on_every_driver!(mfa_and_consents, mfa_and_consent);

async fn role_assignments(fx: &Fixture) {
    let db = &fx.db;
    let now = Utc::now();
    let ada = db.create_user(new_user("ada@example.com"), &no_fields()).await.unwrap();
    let bob = db.create_user(new_user("bob@example.com"), &no_fields()).await.unwrap();
    assert!(db.roles_of(ada.id).await.unwrap().is_empty());

    db.assign_role(ada.id, "admin", now).await.unwrap();
    db.assign_role(ada.id, "admin", now).await.unwrap();
    db.assign_role(ada.id, "auditor", now).await.unwrap();
    db.assign_role(bob.id, "viewer", now).await.unwrap();
    assert_eq!(
        db.roles_of(ada.id).await.unwrap(),
        vec!["admin", "auditor"],
        "assigned twice, held once"
    );
    assert_eq!(db.roles_of(bob.id).await.unwrap(), vec!["viewer"]);

    assert!(db.unassign_role(ada.id, "admin").await.unwrap());
    assert!(!db.unassign_role(ada.id, "admin").await.unwrap(), "no longer held");
    assert!(
        !db.unassign_role(bob.id, "auditor").await.unwrap(),
        "another user's role"
    );
    assert_eq!(db.roles_of(ada.id).await.unwrap(), vec!["auditor"]);

    assert!(db.delete_user(ada.id).await.unwrap());
    assert!(db.roles_of(ada.id).await.unwrap().is_empty(), "deleted with the user");
    assert_eq!(db.roles_of(bob.id).await.unwrap(), vec!["viewer"]);
}
on_every_driver!(roles_assigned_to_users, role_assignments);

async fn email_tokens_spent_together(fx: &Fixture) {
    let db = &fx.db;
    let now = Utc::now();
    let ada = db.create_user(new_user("ada@example.com"), &no_fields()).await.unwrap();
    let bob = db.create_user(new_user("bob@example.com"), &no_fields()).await.unwrap();
    let token = |hash: &str, user: Uuid, purpose: EmailTokenPurpose, expires_at| EmailToken {
        token_hash: hash.into(),
        user_id: user,
        purpose: purpose.as_str().into(),
        email: "x@example.com".into(),
        created_at: now,
        expires_at,
        used_at: None,
    };
    let reset = EmailTokenPurpose::ResetPassword;
    let verify = EmailTokenPurpose::VerifyEmail;
    for t in [
        token("ada-reset-1", ada.id, reset, now + Duration::hours(1)),
        token("ada-reset-2", ada.id, reset, now + Duration::hours(1)),
        token("ada-reset-old", ada.id, reset, now - Duration::minutes(1)),
        token("ada-verify", ada.id, verify, now + Duration::hours(48)),
        token("bob-reset", bob.id, reset, now + Duration::hours(1)),
    ] {
        db.store_email_token(&t).await.unwrap();
    }
    assert!(db.use_email_token("ada-reset-1", reset, now).await.unwrap().is_some());
    assert_eq!(
        db.spend_email_tokens(ada.id, reset, now).await.unwrap(),
        2,
        "the other link and the expired one; the used one stays as it was"
    );
    assert!(db.email_token("ada-reset-2", reset, now).await.unwrap().is_none());
    assert!(
        db.use_email_token("ada-reset-2", reset, now).await.unwrap().is_none(),
        "an older mail's link is dead"
    );
    assert_eq!(db.spend_email_tokens(ada.id, reset, now).await.unwrap(), 0);
    assert!(
        db.email_token("ada-verify", verify, now).await.unwrap().is_some(),
        "another purpose is left alone"
    );
    assert!(
        db.use_email_token("bob-reset", reset, now).await.unwrap().is_some(),
        "another user's link is left alone"
    );
}
on_every_driver!(
    spending_a_users_email_tokens_leaves_others_alone,
    email_tokens_spent_together
);
