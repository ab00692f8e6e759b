//! The pool manager: lazy opens, the LRU bound, reopening on settings changes, error kinds
//! without DSNs, and isolation between tenants on different drivers.

use crate::common;

use std::sync::Arc;

use chrono::Utc;
use tenantry_controlplane::model::*;
use tenantry_controlplane::{Change, Command, Snapshot, Subscriber, TenantEntry};
use tenantry_crypto::{MasterKey, SealContext, SecretBox};
use tenantry_dataplane::*;
use uuid::Uuid;

fn secrets() -> Arc<SecretBox> {
    Arc::new(SecretBox::new(MasterKey::generate(), vec![]))
}

fn entry(slug: &str, driver: DbDriver, dsn: Option<&str>, sb: &SecretBox) -> TenantEntry {
    let id = Uuid::new_v4();
    let sealed = dsn.map(|d| SealedSecret(sb.seal(SealContext::new(&id.to_string(), "user_db.dsn"), d)));
    let now = Utc::now();
    TenantEntry {
        tenant: Tenant {
            id,
            slug: slug.into(),
            display_name: slug.into(),
            created_at: now,
            updated_at: now,
            settings: TenantSettings {
                user_db: Some(UserDbSettings { driver, dsn: sealed }),
                ..Default::default()
            },
        },
        ..Default::default()
    }
}

fn manager(dir: &std::path::Path, sb: Arc<SecretBox>, max_pools: usize) -> Arc<TenantDbManager> {
    let mut config = ManagerConfig::new(dir);
    config.max_pools = max_pools;
    config.close_grace = std::time::Duration::from_millis(50);
    config.acquire_timeout = std::time::Duration::from_secs(3);
    TenantDbManager::new(config, sb)
}

#[tokio::test]
async fn pools_open_lazily_and_stay_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let sb = secrets();
    let m = manager(dir.path(), sb.clone(), 2);
    let tenants: Vec<_> = (0..4)
        .map(|i| entry(&format!("t{i}"), DbDriver::Sqlite, None, &sb))
        .collect();
    assert_eq!(m.open_pools(), 0, "nothing opens before first use");
    for t in &tenants {
        let db = m.get(t).await.unwrap();
        db.create_user(
            model::NewUser {
                email: format!("{}@example.com", t.tenant.slug),
                ..Default::default()
            },
            &CustomFieldSet::default(),
        )
        .await
        .unwrap();
        assert!(m.open_pools() <= 2, "at most max_pools open");
    }
    // An evicted tenant reopens on demand with its data intact.
    let db = m.get(&tenants[0]).await.unwrap();
    assert_eq!(db.count_users().await.unwrap(), 1);
    assert!(m.sqlite_path(tenants[0].tenant.id).exists());

    let none = TenantEntry {
        tenant: Tenant {
            settings: TenantSettings::default(),
            ..tenants[0].tenant.clone()
        },
        ..Default::default()
    };
    assert_eq!(m.get(&none).await.unwrap_err(), DbError::NotConfigured);
}

#[tokio::test]
async fn a_settings_change_reopens_the_pool() {
    let dir = tempfile::tempdir().unwrap();
    let sb = secrets();
    let m = manager(dir.path(), sb.clone(), 8);
    let mut t = entry("acme", DbDriver::Sqlite, None, &sb);
    let db = m.get(&t).await.unwrap();
    db.create_user(
        model::NewUser {
            email: "a@example.com".into(),
            ..Default::default()
        },
        &CustomFieldSet::default(),
    )
    .await
    .unwrap();

    // A new custom field arrives with an UpdateTenant command: the next get syncs it.
    t.tenant.settings.custom_fields.push(CustomField {
        name: "team".into(),
        field_type: CustomFieldType::Text,
        required: false,
        unique: false,
        indexed: true,
        scope: None,
    });
    t.tenant.updated_at = Utc::now() + chrono::Duration::seconds(1);
    m.on_change(
        &Change::Applied(&Command::UpdateTenant {
            tenant: t.tenant.clone(),
            expected_updated_at: None,
        }),
        &Arc::new(Snapshot::default()),
    );
    let db = m.get(&t).await.unwrap();
    assert!(
        db.stored_custom_fields()
            .await
            .unwrap()
            .iter()
            .any(|f| f.name == "team" && f.active)
    );
}

#[tokio::test]
async fn failures_report_a_kind_never_the_dsn_and_back_off() {
    let dir = tempfile::tempdir().unwrap();
    let sb = secrets();
    let m = manager(dir.path(), sb.clone(), 8);
    let secret = "s3cr3t-pw";
    let unreachable = entry(
        "down",
        DbDriver::Postgres,
        Some(&format!("postgres://u:{secret}@127.0.0.1:1/db")),
        &sb,
    );
    let err = m.get(&unreachable).await.unwrap_err();
    assert_eq!(err, DbError::Unavailable(ErrorKind::Unreachable));
    assert!(!format!("{err} {err:?}").contains(secret));
    // Within the backoff window the same kind comes back at once.
    let started = std::time::Instant::now();
    assert_eq!(
        m.get(&unreachable).await.unwrap_err(),
        DbError::Unavailable(ErrorKind::Unreachable)
    );
    assert!(started.elapsed() < std::time::Duration::from_millis(100));
    let status = m.status();
    assert_eq!(status.failing.len(), 1);
    assert_eq!(status.failing[0].slug, "down");
    assert!(!serde_json::to_string(&status).unwrap().contains(secret));

    let malformed = entry("bad", DbDriver::Mysql, Some("mysql://[broken"), &sb);
    assert_eq!(
        m.get(&malformed).await.unwrap_err(),
        DbError::Unavailable(ErrorKind::InvalidDsn)
    );

    // A value sealed for another tenant does not open.
    let mut moved = entry("moved", DbDriver::Postgres, Some("postgres://u:p@127.0.0.1:1/db"), &sb);
    moved.tenant.id = Uuid::new_v4();
    assert_eq!(
        m.get(&moved).await.unwrap_err(),
        DbError::Unavailable(ErrorKind::SecretUnreadable)
    );
}

#[tokio::test]
async fn wrong_passwords_are_auth_failures() {
    let sb = secrets();
    let dir = tempfile::tempdir().unwrap();
    let m = manager(dir.path(), sb.clone(), 8);
    if let Some(pg) = common::server_url(DbDriver::Postgres) {
        // Trust auth accepts any password, so use a user that does not exist.
        let mut url = url::Url::parse(&pg).unwrap();
        url.set_username("no_such_user_x").unwrap();
        url.set_password(Some("wrong")).unwrap();
        let err = m
            .get(&entry("pg-auth", DbDriver::Postgres, Some(url.as_str()), &sb))
            .await
            .unwrap_err();
        assert_eq!(err, DbError::Unavailable(ErrorKind::AuthFailed));
    }
    if let Some(my) = common::server_url(DbDriver::Mysql) {
        let mut url = url::Url::parse(&my).unwrap();
        url.set_password(Some("definitely-wrong")).unwrap();
        let err = m
            .get(&entry("my-auth", DbDriver::Mysql, Some(url.as_str()), &sb))
            .await
            .unwrap_err();
        assert_eq!(err, DbError::Unavailable(ErrorKind::AuthFailed));
    }
}

/// Two tenants on two different drivers in one process never see each other's rows.
#[tokio::test]
async fn tenants_on_different_drivers_are_isolated() {
    let dir = tempfile::tempdir().unwrap();
    let sb = secrets();
    let m = manager(dir.path(), sb.clone(), 8);
    let mut cleanup = Vec::new();
    let mut tenants = vec![entry("lite", DbDriver::Sqlite, None, &sb)];
    for driver in [DbDriver::Postgres, DbDriver::Mysql] {
        if let Some((admin, name, dsn)) = common::create_database(driver).await {
            tenants.push(entry(&format!("{driver:?}").to_lowercase(), driver, Some(&dsn), &sb));
            cleanup.push((driver, admin, name));
        }
    }
    if tenants.len() == 1 {
        tenants.push(entry("lite2", DbDriver::Sqlite, None, &sb));
    }
    let fields = CustomFieldSet::default();
    for t in &tenants {
        let db = m.get(t).await.unwrap();
        db.create_user(
            model::NewUser {
                email: "same@example.com".into(),
                name: Some(t.tenant.slug.clone()),
                ..Default::default()
            },
            &fields,
        )
        .await
        .unwrap();
    }
    for t in &tenants {
        let db = m.get(t).await.unwrap();
        assert_eq!(
            db.count_users().await.unwrap(),
            1,
            "{} sees only its own rows",
            t.tenant.slug
        );
        let user = db.user_by_email("same@example.com", &fields).await.unwrap().unwrap();
        assert_eq!(user.name.as_deref(), Some(t.tenant.slug.as_str()));
    }
    for t in &tenants {
        m.forget(&t.tenant.slug);
    }
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    for (driver, admin, name) in cleanup {
        common::drop_database(driver, &admin, &name).await;
    }
}

fn with_id(mut e: TenantEntry, slug: &str, dsn: Option<&str>, sb: &SecretBox) -> TenantEntry {
    // Same database, another tenant (fresh id; the DSN sealed for it).
    let again = entry(slug, e.tenant.settings.user_db.as_ref().unwrap().driver, dsn, sb);
    e.tenant = again.tenant;
    e
}

/// Every database carries its tenant's id; another tenant (or the same slug re-created,
/// which gets a new id) is refused until an admin adopts the database.
async fn stamp_on(driver: DbDriver) {
    let dir = tempfile::tempdir().unwrap();
    let sb = secrets();
    let m = manager(dir.path(), sb.clone(), 8);
    let created = match driver {
        DbDriver::Sqlite => None,
        _ => match common::create_database(driver).await {
            Some(created) => Some(created),
            None => return,
        },
    };
    let dsn = created.as_ref().map(|(_, _, dsn)| dsn.clone());
    let a = entry("pga", driver, dsn.as_deref(), &sb);
    let db = m.get(&a).await.unwrap();
    assert_eq!(
        db.owner().await.unwrap(),
        Some(a.tenant.id.to_string()),
        "stamped at first open"
    );
    db.create_user(
        model::NewUser {
            email: "a@example.com".into(),
            ..Default::default()
        },
        &CustomFieldSet::default(),
    )
    .await
    .unwrap();

    let b = with_id(a.clone(), "pgb", dsn.as_deref(), &sb);
    if driver == DbDriver::Sqlite {
        // Two tenants never name one SQLite file; a copied file is refused all the same.
        let to = m.sqlite_path(b.tenant.id);
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        m.forget("pga");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        std::fs::copy(m.sqlite_path(a.tenant.id), &to).unwrap();
    }
    assert_eq!(
        m.owner_of(b.tenant.id, b.tenant.settings.user_db.as_ref().unwrap())
            .await
            .unwrap(),
        Some(a.tenant.id.to_string()),
        "the owner can be read before settings are saved"
    );
    assert_eq!(
        m.get(&b).await.unwrap_err(),
        DbError::Unavailable(ErrorKind::OwnedByOtherTenant)
    );
    assert_eq!(m.status().failing[0].error, ErrorKind::OwnedByOtherTenant);
    // The same slug re-created: a new id, refused too.
    let again = with_id(a.clone(), "pga", dsn.as_deref(), &sb);
    if driver != DbDriver::Sqlite {
        assert_eq!(
            m.get(&again).await.unwrap_err(),
            DbError::Unavailable(ErrorKind::OwnedByOtherTenant)
        );
    }

    // The explicit adopt re-stamps it; the data is there; the old owner is refused now.
    let a_before = if driver == DbDriver::Sqlite {
        None
    } else {
        Some(m.get(&a).await.unwrap())
    };
    assert_eq!(m.adopt(&b).await.unwrap(), Some(a.tenant.id.to_string()));
    let db = m.get(&b).await.unwrap();
    assert_eq!(db.count_users().await.unwrap(), 1);
    assert_eq!(db.owner().await.unwrap(), Some(b.tenant.id.to_string()));
    if let Some(_old_pool) = a_before {
        assert_eq!(
            m.get(&a).await.unwrap_err(),
            DbError::Unavailable(ErrorKind::OwnedByOtherTenant),
            "a pool the old owner had open is refused after the adopt"
        );
    }
    m.forget("pga");
    m.forget("pgb");
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    if let Some((admin, name, _)) = created {
        common::drop_database(driver, &admin, &name).await;
    }
}

#[tokio::test]
async fn stamp_sqlite() {
    stamp_on(DbDriver::Sqlite).await;
}

#[tokio::test]
async fn stamp_postgres() {
    stamp_on(DbDriver::Postgres).await;
}

#[tokio::test]
async fn stamp_mysql() {
    stamp_on(DbDriver::Mysql).await;
}

/// A refused connection answers at once, not after the pool's acquire timeout: at the
/// first open, and for an open pool whose server went away.
#[tokio::test]
async fn a_refused_connection_fails_fast() {
    let dir = tempfile::tempdir().unwrap();
    let sb = secrets();
    let mut config = ManagerConfig::new(dir.path());
    config.acquire_timeout = std::time::Duration::from_secs(5);
    config.close_grace = std::time::Duration::from_millis(50);
    let m = TenantDbManager::new(config, sb.clone());
    let closed = entry("closed", DbDriver::Postgres, Some("postgres://u:p@127.0.0.1:1/db"), &sb);
    let started = std::time::Instant::now();
    assert_eq!(
        m.get(&closed).await.unwrap_err(),
        DbError::Unavailable(ErrorKind::Unreachable)
    );
    assert!(
        started.elapsed() < std::time::Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );

    for driver in [DbDriver::Postgres, DbDriver::Mysql] {
        let Some((admin, name, dsn)) = common::create_database(driver).await else {
            continue;
        };
        let proxy = tenantry_testkit::relay::Relay::start(&dsn).await;
        let t = entry(
            &format!("away-{driver:?}").to_lowercase(),
            driver,
            Some(&proxy.url(&dsn)),
            &sb,
        );
        let db = m.get(&t).await.unwrap();
        db.count_users().await.unwrap();
        proxy.kill().await;
        let started = std::time::Instant::now();
        let failed = match m.get(&t).await {
            Ok(db) => db.count_users().await.map(|_| ()),
            Err(e) => Err(e),
        };
        assert!(
            matches!(failed, Err(DbError::Unavailable(ErrorKind::Unreachable))),
            "{driver:?}: {failed:?}"
        );
        assert!(
            started.elapsed() < std::time::Duration::from_secs(2),
            "{driver:?}: {:?}",
            started.elapsed()
        );
        // Readiness pings the open pools; the tenant is reported and fails fast from now.
        let failing = m.check_open(32, std::time::Duration::from_secs(1)).await;
        let status = m.status();
        assert!(
            failing
                .iter()
                .chain(status.failing.iter())
                .any(|f| f.slug == t.tenant.slug),
            "{driver:?}: {failing:?} {status:?}"
        );
        let started = std::time::Instant::now();
        assert!(m.get(&t).await.is_err());
        assert!(started.elapsed() < std::time::Duration::from_secs(1));
        assert!(m.retry_after(&t.tenant.slug).is_some());
        m.forget(&t.tenant.slug);
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        common::drop_database(driver, &admin, &name).await;
    }
}

/// Idle SQLite connections (three descriptors each) are closed, not kept for good.
#[tokio::test]
async fn idle_connections_are_closed() {
    let dir = tempfile::tempdir().unwrap();
    let sb = secrets();
    let mut config = ManagerConfig::new(dir.path());
    config.idle_timeout = std::time::Duration::from_millis(500);
    let m = TenantDbManager::new(config, sb.clone());
    let t = entry("idle", DbDriver::Sqlite, None, &sb);
    let db = m.get(&t).await.unwrap();
    let mut reads = tokio::task::JoinSet::new();
    for _ in 0..6 {
        let db = db.clone();
        reads.spawn(async move { db.count_users().await.unwrap() });
    }
    while reads.join_next().await.is_some() {}
    assert!(db.size() >= 1);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while db.size() > 0 && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(db.size(), 0, "idle connections are closed");
    // And the pool still serves.
    assert_eq!(m.get(&t).await.unwrap().count_users().await.unwrap(), 0);
}

/// MySQL commits each DDL statement by itself: a process stopped between the statements of
/// a migration leaves some applied and the migration's row unfinished. The next migrate
/// finishes it instead of refusing the tenant for good.
#[tokio::test]
async fn a_mysql_migration_left_half_applied_is_finished_by_the_next_migrate() {
    use sqlx::Connection;
    let Some(fixture) = common::Fixture::new(DbDriver::Mysql).await else {
        return;
    };
    let dsn = fixture.spec_dsn.clone().unwrap();
    let mut conn = sqlx::MySqlConnection::connect(&dsn).await.unwrap();
    // Migration 6 adds four columns; undo two and mark it unfinished.
    sqlx::raw_sql("ALTER TABLE audit_events DROP COLUMN request_id, DROP COLUMN outcome")
        .execute(&mut conn)
        .await
        .unwrap();
    sqlx::query("UPDATE _sqlx_migrations SET success = FALSE WHERE version = 6")
        .execute(&mut conn)
        .await
        .unwrap();
    assert!(fixture.db.schema_status(Schema::Tenant).await.unwrap().pending > 0);

    let status = fixture.db.migrate(Schema::Tenant, None).await.unwrap();
    assert_eq!((status.version, status.pending), (status.latest_known, 0), "{status:?}");
    sqlx::raw_sql("SELECT target, user_agent, request_id, outcome FROM audit_events")
        .execute(&mut conn)
        .await
        .expect("every column of the migration is there");
    // And a second open finds nothing left to do.
    let again = fixture.db.migrate(Schema::Tenant, None).await.unwrap();
    assert_eq!(again.pending, 0);
    conn.close().await.unwrap();
    fixture.cleanup().await;
}
