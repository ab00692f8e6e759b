//! Admin user search on a 10,000-user tenant: one page (50 users) per query, for the
//! searches the admin API offers (a text part, an email part, a custom field, the status,
//! a later page). SQLite always; PostgreSQL and MariaDB when the test services are
//! configured (`tenantry_testkit::configured`; a fresh database is made and dropped). Each figure is beside its floor: the same pool answering `SELECT 1`.
//!
//!     cargo run --release -p tenantry-dataplane --example user_search_bench

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::json;
use sqlx::Connection;
use tenantry_controlplane::model::{CustomField, CustomFieldType, DbDriver};
use tenantry_dataplane::db::{OpenSpec, Pool, Schema};
use tenantry_dataplane::model::{NewUser, UserStatus};
use tenantry_dataplane::{CustomFieldSet, TenantDb, UserRepository, UserSearch};

const USERS: usize = 10_000;
const RUNS: usize = 200;

fn spec(driver: DbDriver, sqlite_path: Option<std::path::PathBuf>, dsn: Option<String>) -> OpenSpec {
    OpenSpec {
        driver,
        sqlite_path,
        dsn: dsn.map(zeroize::Zeroizing::new),
        max_connections: 4,
        acquire_timeout: Duration::from_secs(5),
        connect_timeout: Duration::from_secs(3),
        idle_timeout: Duration::from_secs(60),
    }
}

fn median_p95(mut samples: Vec<Duration>) -> (Duration, Duration) {
    samples.sort();
    (samples[samples.len() / 2], samples[samples.len() * 95 / 100])
}

async fn time<F, Fut>(mut run: F) -> (Duration, Duration)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    run().await; // warm
    let mut samples = Vec::with_capacity(RUNS);
    for _ in 0..RUNS {
        let start = Instant::now();
        run().await;
        samples.push(start.elapsed());
    }
    median_p95(samples)
}

async fn select_one(db: &TenantDb) {
    match db.pool() {
        Pool::Sqlite(p) => sqlx::query("SELECT 1").execute(p).await.map(|_| ()),
        Pool::Postgres(p) => sqlx::query("SELECT 1").execute(p).await.map(|_| ()),
        Pool::MySql(p) => sqlx::query("SELECT 1").execute(p).await.map(|_| ()),
    }
    .unwrap();
}

async fn bench(label: &str, db: TenantDb) {
    let declared = vec![CustomField {
        name: "team".into(),
        field_type: CustomFieldType::Text,
        required: false,
        unique: false,
        indexed: false,
        scope: None,
    }];
    db.sync_custom_fields(&declared).await.unwrap();
    let fields = CustomFieldSet::new(&declared);
    let seeding = Instant::now();
    for i in 0..USERS {
        let user = NewUser {
            email: format!("user{i:05}@example{}.com", i % 50),
            name: Some(format!("Person {i:05} Surname{}", i % 997)),
            custom: BTreeMap::from([("team".to_owned(), json!(format!("team-{}", i % 100)))]),
            ..Default::default()
        };
        db.create_user(user, &fields).await.unwrap();
    }
    let seeded = seeding.elapsed();
    let some = db.list_users(None, 1, &fields).await.unwrap();
    db.disable_user(some[0].id, None, None).await.unwrap();
    let middle = db.list_users(None, 1000, &fields).await.unwrap()[499].id;

    let floor = time(|| select_one(&db)).await;
    println!("{label}: {USERS} users seeded in {:.1} s", seeded.as_secs_f64());
    println!(
        "  floor (SELECT 1)            median {:>8.2?}  p95 {:>8.2?}",
        floor.0, floor.1
    );
    let cases: Vec<(&str, UserSearch)> = vec![
        ("first page, no filter", UserSearch::default()),
        (
            "page after the 500th user",
            UserSearch {
                after: Some(middle),
                ..UserSearch::default()
            },
        ),
        (
            "q=surname42 (text part)",
            UserSearch {
                text: Some("surname42".into()),
                ..UserSearch::default()
            },
        ),
        (
            "q=zzz (no match: full scan)",
            UserSearch {
                text: Some("zzz".into()),
                ..UserSearch::default()
            },
        ),
        (
            "email=example7.com",
            UserSearch {
                email: Some("example7.com".into()),
                ..UserSearch::default()
            },
        ),
        (
            "field.team=team-42",
            UserSearch {
                custom: vec![("team".into(), "team-42".into())],
                ..UserSearch::default()
            },
        ),
        (
            "status=disabled",
            UserSearch {
                status: Some(UserStatus::Disabled),
                ..UserSearch::default()
            },
        ),
    ];
    for (name, search) in cases {
        let search = UserSearch { limit: 51, ..search };
        let (median, p95) = time(|| async {
            db.search_users(&search, &fields).await.unwrap();
        })
        .await;
        println!("  {name:<28} median {median:>8.2?}  p95 {p95:>8.2?}");
    }
}

#[tokio::main]
async fn main() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tenant.db");
    let db = TenantDb::connect(&spec(DbDriver::Sqlite, Some(path.clone()), None))
        .await
        .unwrap();
    db.migrate(Schema::Tenant, Some(&path)).await.unwrap();
    bench("SQLite", db).await;

    if let Some(admin) = tenantry_testkit::configured(tenantry_testkit::Service::Postgres) {
        let name = format!("tenantry_bench_{}", uuid::Uuid::new_v4().simple());
        let mut conn = sqlx::PgConnection::connect(&admin).await.unwrap();
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut conn)
            .await
            .unwrap();
        let mut dsn = url::Url::parse(&admin).unwrap();
        dsn.set_path(&format!("/{name}"));
        let db = TenantDb::connect(&spec(DbDriver::Postgres, None, Some(dsn.to_string())))
            .await
            .unwrap();
        db.migrate(Schema::Tenant, None).await.unwrap();
        bench("PostgreSQL", db.clone()).await;
        db.close().await;
        sqlx::query(sqlx::AssertSqlSafe(format!("DROP DATABASE {name} WITH (FORCE)")))
            .execute(&mut conn)
            .await
            .unwrap();
    }
    if let Some(admin) = tenantry_testkit::configured(tenantry_testkit::Service::Mysql) {
        let name = format!("tenantry_bench_{}", uuid::Uuid::new_v4().simple());
        let mut conn = sqlx::MySqlConnection::connect(&admin).await.unwrap();
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "CREATE DATABASE `{name}` CHARACTER SET utf8mb4"
        )))
        .execute(&mut conn)
        .await
        .unwrap();
        let mut dsn = url::Url::parse(&admin).unwrap();
        dsn.set_path(&format!("/{name}"));
        let db = TenantDb::connect(&spec(DbDriver::Mysql, None, Some(dsn.to_string())))
            .await
            .unwrap();
        db.migrate(Schema::Tenant, None).await.unwrap();
        bench("MariaDB", db.clone()).await;
        db.close().await;
        sqlx::query(sqlx::AssertSqlSafe(format!("DROP DATABASE `{name}`")))
            .execute(&mut conn)
            .await
            .unwrap();
    }
}
