//! Throwaway tenant databases on real servers.
//!
//! SQLite always runs. PostgreSQL and MariaDB/MySQL run when `TENANTRY_TEST_POSTGRES_URL`
//! / `TENANTRY_TEST_MYSQL_URL` name a server (e.g. `postgres://postgres@127.0.0.1:5432/postgres`,
//! `mysql://root@127.0.0.1:3306`); unset, the test records a skip (`tenantry_testkit`),
//! and a configured server that cannot be reached fails the test, never skips it. Each
//! fixture creates its own database and drops it afterwards.

#![allow(dead_code)]

use std::sync::Arc;

use sqlx::Connection;
use tenantry_controlplane::model::DbDriver;
use tenantry_dataplane::db::{OpenSpec, Schema};
use tenantry_dataplane::{DbError, TenantDb};
use tenantry_testkit::Service;
use zeroize::Zeroizing;

pub const POSTGRES_ENV: &str = Service::Postgres.var();
pub const MYSQL_ENV: &str = Service::Mysql.var();

pub struct Fixture {
    pub driver: DbDriver,
    pub db: TenantDb,
    pub spec_dsn: Option<String>,
    pub sqlite_path: Option<std::path::PathBuf>,
    server: Option<(String, String)>,
    _dir: Arc<tempfile::TempDir>,
}

/// The admin URL of a configured server, or `None` when the driver is not configured
/// (the calling test's skip is then recorded).
pub fn server_url(driver: DbDriver) -> Option<String> {
    match driver {
        DbDriver::Sqlite => None,
        DbDriver::Postgres => tenantry_testkit::configured(Service::Postgres),
        DbDriver::Mysql => tenantry_testkit::configured(Service::Mysql),
    }
}

/// A database URL for `name` on the server at `admin_url`.
pub fn with_database(admin_url: &str, name: &str) -> String {
    let mut url = url::Url::parse(admin_url).expect("test server URL");
    url.set_path(&format!("/{name}"));
    url.to_string()
}

/// Creates an empty database and returns its DSN (`None` for SQLite).
pub async fn create_database(driver: DbDriver) -> Option<(String, String, String)> {
    let admin = server_url(driver)?;
    let name = format!("tenantry_t_{}", uuid::Uuid::new_v4().simple());
    match driver {
        DbDriver::Postgres => {
            let mut conn = sqlx::PgConnection::connect(&admin)
                .await
                .unwrap_or_else(|e| panic!("{POSTGRES_ENV} is set but PostgreSQL is unreachable: {e}"));
            sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
                .execute(&mut conn)
                .await
                .unwrap();
        }
        DbDriver::Mysql => {
            let mut conn = sqlx::MySqlConnection::connect(&admin)
                .await
                .unwrap_or_else(|e| panic!("{MYSQL_ENV} is set but MySQL/MariaDB is unreachable: {e}"));
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "CREATE DATABASE `{name}` CHARACTER SET utf8mb4"
            )))
            .execute(&mut conn)
            .await
            .unwrap();
        }
        DbDriver::Sqlite => unreachable!(),
    }
    let dsn = with_database(&admin, &name);
    Some((admin, name, dsn))
}

pub async fn drop_database(driver: DbDriver, admin: &str, name: &str) {
    match driver {
        DbDriver::Postgres => {
            let mut conn = sqlx::PgConnection::connect(admin).await.unwrap();
            let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
            )))
            .execute(&mut conn)
            .await;
        }
        DbDriver::Mysql => {
            let mut conn = sqlx::MySqlConnection::connect(admin).await.unwrap();
            let _ = sqlx::query(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS `{name}`")))
                .execute(&mut conn)
                .await;
        }
        DbDriver::Sqlite => {}
    }
}

pub fn spec(driver: DbDriver, sqlite_path: Option<std::path::PathBuf>, dsn: Option<&str>) -> OpenSpec {
    OpenSpec {
        driver,
        sqlite_path,
        dsn: dsn.map(|d| Zeroizing::new(d.to_owned())),
        max_connections: 5,
        acquire_timeout: std::time::Duration::from_secs(5),
        connect_timeout: std::time::Duration::from_secs(3),
        idle_timeout: std::time::Duration::from_secs(30),
    }
}

impl Fixture {
    /// A migrated, empty tenant database; `None` when the driver is not configured.
    pub async fn new(driver: DbDriver) -> Option<Fixture> {
        let dir = Arc::new(tempfile::tempdir().unwrap());
        let (server, dsn, sqlite_path) = match driver {
            DbDriver::Sqlite => (None, None, Some(dir.path().join("tenant.db"))),
            _ => {
                let (admin, name, dsn) = create_database(driver).await?;
                (Some((admin, name)), Some(dsn), None)
            }
        };
        let db = TenantDb::connect(&spec(driver, sqlite_path.clone(), dsn.as_deref()))
            .await
            .expect("connect");
        db.migrate(Schema::Tenant, sqlite_path.as_deref())
            .await
            .expect("migrate");
        Some(Fixture {
            driver,
            db,
            spec_dsn: dsn,
            sqlite_path,
            server,
            _dir: dir,
        })
    }

    /// Another pool on the same database.
    pub async fn reconnect(&self) -> Result<TenantDb, DbError> {
        TenantDb::connect(&spec(self.driver, self.sqlite_path.clone(), self.spec_dsn.as_deref())).await
    }

    pub async fn cleanup(self) {
        self.db.close().await;
        if let Some((admin, name)) = &self.server {
            drop_database(self.driver, admin, name).await;
        }
    }
}

/// Runs an async test body once per driver: a test each for SQLite, PostgreSQL and
/// MariaDB/MySQL, the last two recording a skip when their server is not configured.
macro_rules! on_every_driver {
    ($name:ident, $body:path) => {
        mod $name {
            use super::*;

            #[tokio::test]
            async fn sqlite() {
                run(tenantry_controlplane::model::DbDriver::Sqlite).await
            }

            #[tokio::test]
            async fn postgres() {
                run(tenantry_controlplane::model::DbDriver::Postgres).await
            }

            #[tokio::test]
            async fn mysql() {
                run(tenantry_controlplane::model::DbDriver::Mysql).await
            }

            async fn run(driver: tenantry_controlplane::model::DbDriver) {
                let Some(fx) = $crate::common::Fixture::new(driver).await else {
                    return;
                };
                $body(&fx).await;
                fx.cleanup().await;
            }
        }
    };
}
