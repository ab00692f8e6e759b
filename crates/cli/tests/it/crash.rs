//! Durability: control-plane writes with the real process killed (SIGKILL) at random
//! moments always leave a tree that loads without error, and every acknowledged write
//! survives; a tenant database migration (PostgreSQL, MariaDB/MySQL) killed midway is
//! finished by the next open.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::common::*;
use rand::Rng;
use reqwest::Method;
use serde_json::{Value, json};

/// What a slug should look like after a restart.
#[derive(Debug, Clone, PartialEq)]
enum Expect {
    Absent,
    Present(String),
    /// A write was in flight when the process died: either state is fine.
    Either(Box<Expect>, Box<Expect>),
}

impl Expect {
    fn allows(&self, actual: &Option<String>) -> bool {
        match (self, actual) {
            (Expect::Absent, None) => true,
            (Expect::Present(name), Some(actual)) => name == actual,
            (Expect::Either(a, b), _) => a.allows(actual) || b.allows(actual),
            _ => false,
        }
    }

    fn current(&self) -> Option<String> {
        match self {
            Expect::Present(n) => Some(n.clone()),
            Expect::Absent => None,
            Expect::Either(..) => unreachable!("resolved after each restart"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_writes_with_random_sigkills_leave_a_loadable_tree() {
    const TARGET_WRITES: usize = 1000;
    const WORKERS: usize = 4;
    const SLUGS_PER_WORKER: usize = 8;

    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let mut expected: HashMap<String, Expect> = (0..WORKERS)
        .flat_map(|w| (0..SLUGS_PER_WORKER).map(move |s| (format!("w{w}-s{s}"), Expect::Absent)))
        .collect();
    let acknowledged = Arc::new(Mutex::new(0usize));
    let mut rounds = 0;

    while *acknowledged.lock().unwrap() < TARGET_WRITES {
        rounds += 1;
        let server = Server::start_dev(&root, &[]);
        let admin = Arc::new(Admin::of(&server));
        verify(&admin, &mut expected).await;

        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let mut tasks = Vec::new();
        for w in 0..WORKERS {
            let admin = admin.clone();
            let stop = stop.clone();
            let acknowledged = acknowledged.clone();
            let mut mine: HashMap<String, Expect> = expected
                .iter()
                .filter(|(k, _)| k.starts_with(&format!("w{w}-")))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            tasks.push(tokio::spawn(async move {
                let mut n = 0u64;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    n += 1;
                    let slug = format!("w{w}-s{}", rand::rng().random_range(0..SLUGS_PER_WORKER));
                    let before = mine[&slug].clone();
                    let (method, path, body, after) = match before.current() {
                        None => (Method::POST, "/v1/admin/tenants".to_owned(), Some(json!({"slug": slug, "display_name": format!("{slug} v{n}")})), Expect::Present(format!("{slug} v{n}"))),
                        Some(_) if n.is_multiple_of(3) => (Method::DELETE, format!("/v1/admin/tenants/{slug}"), None, Expect::Absent),
                        Some(_) => (
                            Method::PATCH,
                            format!("/v1/admin/tenants/{slug}"),
                            Some(json!({"display_name": format!("{slug} v{n}"), "settings": {"branding": {"name": format!("n{n}")}}})),
                            Expect::Present(format!("{slug} v{n}")),
                        ),
                    };
                    // Until the answer arrives, either outcome is possible.
                    mine.insert(slug.clone(), Expect::Either(Box::new(before.clone()), Box::new(after.clone())));
                    let mut req = admin.http.request(method, format!("{}{path}", admin.base)).bearer_auth(&admin.token);
                    if let Some(body) = body {
                        req = req.json(&body);
                    }
                    match req.send().await {
                        Ok(resp) if resp.status().is_success() => {
                            mine.insert(slug, after);
                            *acknowledged.lock().unwrap() += 1;
                        }
                        Ok(resp) => panic!("write refused: {} {}", resp.status(), resp.text().await.unwrap_or_default()),
                        Err(_) => break, // the server is gone
                    }
                }
                mine
            }));
        }
        let delay = rand::rng().random_range(50..400);
        tokio::time::sleep(Duration::from_millis(delay)).await;
        server.kill9();
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        for task in tasks {
            expected.extend(task.await.unwrap());
        }
    }

    // A last start: the tree loads, nothing is degraded, acknowledged writes are there.
    let server = Server::start_dev(&root, &[]);
    let admin = Admin::of(&server);
    verify(&admin, &mut expected).await;
    let leftovers: Vec<_> = files_under(&root)
        .into_iter()
        .filter(|p| {
            p.strip_prefix(&root)
                .unwrap()
                .components()
                .any(|c| c.as_os_str().to_string_lossy().starts_with('.'))
        })
        .collect();
    assert!(leftovers.is_empty(), "temp files are cleaned at load: {leftovers:?}");
    eprintln!(
        "{} acknowledged writes over {rounds} kill -9 rounds",
        acknowledged.lock().unwrap()
    );
    assert!(rounds >= 2, "the process must have been killed at least once");
}

/// Checks readiness and that every slug is in an allowed state; then pins the state seen.
async fn verify(admin: &Admin, expected: &mut HashMap<String, Expect>) {
    let ready: Value = admin
        .http
        .get(format!("{}/readyz", admin.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        ready["status"], "ready",
        "the tree must load without a degraded tenant: {ready}"
    );
    let (status, list) = admin.send(Method::GET, "/v1/admin/tenants?limit=1000", None).await;
    assert_eq!(status, 200);
    let actual: HashMap<String, String> = list["tenants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["slug"].as_str().unwrap().to_owned(),
                t["display_name"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    for (slug, expect) in expected.iter_mut() {
        let seen = actual.get(slug).cloned();
        assert!(expect.allows(&seen), "{slug}: expected {expect:?}, found {seen:?}");
        *expect = match seen {
            Some(name) => Expect::Present(name),
            None => Expect::Absent,
        };
    }
}

/// A tenant database server, and what the migration test does differently on each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Driver {
    Postgres,
    Mysql,
}

impl Driver {
    fn service(self) -> tenantry_testkit::Service {
        match self {
            Driver::Postgres => tenantry_testkit::Service::Postgres,
            Driver::Mysql => tenantry_testkit::Service::Mysql,
        }
    }

    /// As named in `settings.user_db.driver`.
    fn setting(self) -> &'static str {
        match self {
            Driver::Postgres => "postgres",
            Driver::Mysql => "mysql",
        }
    }

    fn create_database(self, name: &str) -> String {
        match self {
            Driver::Postgres => format!("CREATE DATABASE {name}"),
            Driver::Mysql => format!("CREATE DATABASE {name} CHARACTER SET utf8mb4"),
        }
    }

    fn drop_database(self, name: &str) -> String {
        match self {
            Driver::Postgres => format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
            Driver::Mysql => format!("DROP DATABASE IF EXISTS {name}"),
        }
    }

    /// Takes the table the last migration alters (until `release`), so the migration
    /// waits inside.
    fn hold(self) -> &'static [&'static str] {
        match self {
            Driver::Postgres => &["BEGIN", "LOCK TABLE audit_events IN ACCESS EXCLUSIVE MODE"],
            Driver::Mysql => &["LOCK TABLES audit_events WRITE"],
        }
    }

    fn release(self) -> &'static str {
        match self {
            Driver::Postgres => "ROLLBACK",
            Driver::Mysql => "UNLOCK TABLES",
        }
    }

    /// Counts the sessions of database `name` waiting for a table lock.
    fn waiting(self, name: &str) -> String {
        match self {
            Driver::Postgres => {
                format!("SELECT count(*) FROM pg_stat_activity WHERE datname = '{name}' AND wait_event_type = 'Lock'")
            }
            Driver::Mysql => format!(
                "SELECT count(*) FROM information_schema.processlist WHERE db = '{name}' \
                 AND state = 'Waiting for table metadata lock'"
            ),
        }
    }

    /// The schema the connected database's tables are in.
    fn this_schema(self) -> &'static str {
        match self {
            Driver::Postgres => "current_schema()",
            Driver::Mysql => "DATABASE()",
        }
    }
}

/// One connection to either server.
enum Conn {
    Postgres(sqlx::PgConnection),
    Mysql(sqlx::MySqlConnection),
}

impl Conn {
    async fn open(driver: Driver, url: &str) -> Conn {
        use sqlx::Connection;
        match driver {
            Driver::Postgres => Conn::Postgres(sqlx::PgConnection::connect(url).await.unwrap()),
            Driver::Mysql => Conn::Mysql(sqlx::MySqlConnection::connect(url).await.unwrap()),
        }
    }

    async fn execute(&mut self, sql: &str) {
        use sqlx::Executor;
        let sql = sqlx::AssertSqlSafe(sql.to_owned());
        match self {
            Conn::Postgres(c) => c.execute(sql).await.map(drop),
            Conn::Mysql(c) => c.execute(sql).await.map(drop),
        }
        .unwrap_or_else(|e| panic!("{e}"));
    }

    /// What a `SELECT count(*) ...` answers.
    async fn count(&mut self, sql: &str) -> i64 {
        let sql = sqlx::AssertSqlSafe(sql.to_owned());
        match self {
            Conn::Postgres(c) => sqlx::query_scalar(sql).fetch_one(c).await,
            Conn::Mysql(c) => sqlx::query_scalar(sql).fetch_one(c).await,
        }
        .unwrap_or_else(|e| panic!("{e}"))
    }
}

/// SIGKILL while a tenant's database is being migrated: nothing of the migration is left
/// done, and the next open of the tenant finishes it. The migration is held in the middle
/// by a lock the test takes on the table it alters, so the kill lands inside it.
async fn migration_killed_midway(driver: Driver) {
    use futures_util::FutureExt;
    let Some(admin_url) = tenantry_testkit::configured(driver.service()) else {
        return;
    };
    let name = format!("tenantry_kill_{}", uuid::Uuid::new_v4().simple());
    let mut admin_db = Conn::open(driver, &admin_url).await;
    admin_db.execute(&driver.create_database(&name)).await;
    let mut dsn = url::Url::parse(&admin_url).unwrap();
    dsn.set_path(&format!("/{name}"));
    // A failed run leaves no database behind either.
    let outcome = std::panic::AssertUnwindSafe(kill_during_migration(driver, &name, dsn.as_str(), &mut admin_db))
        .catch_unwind()
        .await;
    admin_db.execute(&driver.drop_database(&name)).await;
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

/// The migration the kill lands in: it alters `audit_events`, which the test locks.
const HELD: i64 = 6;

async fn kill_during_migration(driver: Driver, name: &str, dsn: &str, admin_db: &mut Conn) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let server = Server::start_dev(&root, &[]);
    let admin = Admin::of(&server);
    let tenant = json!({"slug": "mig", "settings": {"user_db": {"driver": driver.setting(), "dsn": dsn}}});
    let (status, body) = admin.send(Method::POST, "/v1/admin/tenants", Some(tenant)).await;
    assert_eq!(status, 201, "{body}");
    let (status, schema) = admin.send(Method::GET, "/v1/admin/tenants/mig/database", None).await;
    assert_eq!(status, 200, "{schema}");
    let latest = schema["schema"]["latest_known"].as_i64().unwrap();
    server.kill9();

    // The database goes back to before the audit-trail columns (migration 6, which only
    // adds columns to a table the test can lock), undoing what came after it too.
    let mut tenant_db = Conn::open(driver, dsn).await;
    // Every table of a later migration goes (7: upstream states, 8: passkeys).
    for table in [
        "spent_upstream_states",
        "webauthn_challenges",
        "passkey_credentials",
        "passkey_user_handles",
    ] {
        tenant_db.execute(&format!("DROP TABLE {table}")).await;
    }
    tenant_db
        .execute(
            "ALTER TABLE audit_events DROP COLUMN target, DROP COLUMN user_agent, DROP COLUMN request_id, \
             DROP COLUMN outcome",
        )
        .await;
    tenant_db
        .execute(&format!("DELETE FROM _sqlx_migrations WHERE version >= {HELD}"))
        .await;
    let mut holder = Conn::open(driver, dsn).await;
    for statement in driver.hold() {
        holder.execute(statement).await;
    }

    let server = Server::start_dev(&root, &[]);
    let admin = Admin::of(&server);
    let opening = tokio::spawn(async move { admin.send(Method::GET, "/v1/admin/tenants/mig/database", None).await });
    let waiting = driver.waiting(name);
    let mut waits = 0;
    for _ in 0..100 {
        waits = admin_db.count(&waiting).await;
        if waits > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(waits > 0, "the migration is waiting inside");
    server.kill9();
    opening.abort();
    if driver == Driver::Mysql {
        // MariaDB looks every second whether a client waiting for a lock is still there;
        // released before that, the orphaned DDL would run (and, committing itself, stay).
        for _ in 0..100 {
            if admin_db.count(&waiting).await == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(admin_db.count(&waiting).await, 0, "the killed session is gone");
    }
    holder.execute(driver.release()).await;

    // Nothing half-applied: no column of the held migration, and it is not recorded as
    // done (MySQL records the attempt first and its DDL commits that; PostgreSQL runs it
    // all in one transaction, so not even the attempt is left).
    let recorded = tenant_db
        .count(&format!(
            "SELECT count(*) FROM _sqlx_migrations WHERE version >= {HELD}"
        ))
        .await;
    let done = tenant_db
        .count(&format!(
            "SELECT count(*) FROM _sqlx_migrations WHERE version >= {HELD} AND success = TRUE"
        ))
        .await;
    assert_eq!(done, 0);
    if driver == Driver::Postgres {
        assert_eq!(recorded, 0);
    }
    let columns = tenant_db
        .count(&format!(
            "SELECT count(*) FROM information_schema.columns WHERE table_schema = {} \
             AND table_name = 'audit_events' AND column_name = 'target'",
            driver.this_schema()
        ))
        .await;
    assert_eq!(columns, 0);

    // The next open finishes it.
    let server = Server::start_dev(&root, &[]);
    let admin = Admin::of(&server);
    let (status, schema) = admin.send(Method::GET, "/v1/admin/tenants/mig/database", None).await;
    assert_eq!(status, 200, "{schema}\n{}", server.stderr());
    assert_eq!(
        (
            schema["schema"]["version"].as_i64(),
            schema["schema"]["pending"].as_i64()
        ),
        (Some(latest), Some(0))
    );
}

#[tokio::test]
async fn a_postgres_migration_killed_midway_is_finished_by_the_next_open() {
    migration_killed_midway(Driver::Postgres).await;
}

#[tokio::test]
async fn a_mariadb_migration_killed_midway_is_finished_by_the_next_open() {
    migration_killed_midway(Driver::Mysql).await;
}
