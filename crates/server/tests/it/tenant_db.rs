//! Tenant databases through the admin API on a real server: the SQLite default for new
//! tenants, one owner per database (stamp, 422 on save, 503 on open, the explicit adopt),
//! unique custom fields over repeating values, and what `/readyz` and `/metrics` report.
//! PostgreSQL and MariaDB run when `TENANTRY_TEST_POSTGRES_URL` / `TENANTRY_TEST_MYSQL_URL`
//! are set; the Redis outage when `TENANTRY_TEST_REDIS_URL` is (unset: a recorded skip).

use std::time::{Duration, Instant};

use crate::common::{TestServer, start, start_with_config};
use reqwest::Method;
use serde_json::{Value, json};
use sqlx::Connection;
use tenantry_testkit::Service;
use tenantry_testkit::relay::Relay;

/// A fresh database on the configured server of `driver` ("postgres" / "mysql"): its
/// DSN, and how to drop it. `None` (a recorded skip) when that server is not configured.
pub(crate) async fn database(driver: &str) -> Option<(String, String, String)> {
    let service = match driver {
        "postgres" => Service::Postgres,
        _ => Service::Mysql,
    };
    let admin = tenantry_testkit::configured(service)?;
    let name = format!("tenantry_s_{}", uuid::Uuid::new_v4().simple());
    match driver {
        "postgres" => {
            let mut conn = sqlx::PgConnection::connect(&admin).await.unwrap();
            sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                .execute(&mut conn)
                .await
                .unwrap();
        }
        _ => {
            let mut conn = sqlx::MySqlConnection::connect(&admin).await.unwrap();
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "CREATE DATABASE {name} CHARACTER SET utf8mb4"
            )))
            .execute(&mut conn)
            .await
            .unwrap();
        }
    }
    let mut dsn = url::Url::parse(&admin).unwrap();
    dsn.set_path(&format!("/{name}"));
    Some((admin, name, dsn.to_string()))
}

pub(crate) async fn drop_database(driver: &str, admin: &str, name: &str) {
    if driver == "postgres" {
        let mut conn = sqlx::PgConnection::connect(admin).await.unwrap();
        let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
        )))
        .execute(&mut conn)
        .await;
    } else {
        let mut conn = sqlx::MySqlConnection::connect(admin).await.unwrap();
        let _ = sqlx::query(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS {name}")))
            .execute(&mut conn)
            .await;
    }
}

async fn readyz(server: &TestServer, admin: bool) -> (u16, Value) {
    let mut request = server.http.get(format!("{}/readyz", server.base));
    if admin {
        request = request.bearer_auth(&server.admin_token);
    }
    let response = request.send().await.unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

#[tokio::test]
async fn new_tenants_get_the_embedded_sqlite_database_unless_told_otherwise() {
    let server = start().await;
    let (status, body) = server
        .admin(Method::POST, "/v1/admin/tenants", Some(json!({"slug": "fresh"})))
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["settings"]["user_db"], json!({"driver": "sqlite"}));
    let (status, body) = server
        .admin(
            Method::POST,
            "/v1/admin/tenants/fresh/users",
            Some(json!({"email": "first@example.com"})),
        )
        .await;
    assert_eq!(status, 201, "the first user of a new tenant is stored: {body}");
    // Settings without user_db get it too; an explicit null still means "none".
    let (status, body) = server
        .admin(
            Method::POST,
            "/v1/admin/tenants",
            Some(json!({"slug": "styled", "settings": {"issuer": {"mode": "path"}}})),
        )
        .await;
    assert_eq!(
        (status, &body["settings"]["user_db"]["driver"]),
        (201, &json!("sqlite")),
        "{body}"
    );
    let (status, _) = server
        .admin(
            Method::POST,
            "/v1/admin/tenants",
            Some(json!({"slug": "nodb", "settings": {"user_db": null}})),
        )
        .await;
    assert_eq!(status, 201);
    let (status, body) = server.admin(Method::GET, "/v1/admin/tenants/nodb/database", None).await;
    assert_eq!((status, body["code"].as_str()), (409, Some("tenant_db_not_configured")));
}

/// The stamp of a SQLite tenant is written and checked: a file stamped for another id
/// (copied, restored from elsewhere) is refused with 503 until it is adopted.
#[tokio::test]
async fn a_sqlite_database_stamped_for_another_tenant_is_refused_until_adopted() {
    let server = start().await;
    let (status, _) = server
        .admin(Method::GET, "/v1/admin/tenants/local/database", None)
        .await;
    assert_eq!(status, 200);
    let ctx = server.ctx("local");
    let db = ctx.db().await.unwrap();
    assert_eq!(db.owner().await.unwrap(), Some(ctx.entry.tenant.id.to_string()));
    let other = uuid::Uuid::new_v4().to_string();
    let tenantry_dataplane::db::Pool::Sqlite(pool) = db.pool() else {
        panic!("the dev tenant is on SQLite")
    };
    sqlx::query("UPDATE tenant_owner SET tenant_id = ?")
        .bind(&other)
        .execute(pool)
        .await
        .unwrap();

    let (status, body) = server
        .admin(Method::POST, "/v1/admin/tenants/local/database/migrate", None)
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (503, Some("tenant_db_owned_by_other_tenant")),
        "{body}"
    );
    let (status, _) = server.admin(Method::GET, "/v1/admin/tenants/local/users", None).await;
    assert_eq!(status, 503, "requests are refused too");

    let (status, body) = server
        .admin(Method::POST, "/v1/admin/tenants/local/database/adopt", None)
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["previous_owner"], json!(other));
    let (status, _) = server.admin(Method::GET, "/v1/admin/tenants/local/users", None).await;
    assert_eq!(status, 200);
}

async fn sharing_on(driver: &str) {
    let Some((admin, name, dsn)) = database(driver).await else {
        return;
    };
    let server = start().await;
    let user_db = json!({"driver": driver, "dsn": dsn});
    let create = |slug: &str| json!({"slug": slug, "settings": {"user_db": user_db.clone()}});
    let (status, body) = server
        .admin(Method::POST, "/v1/admin/tenants", Some(create("pga")))
        .await;
    assert_eq!(status, 201, "{body}");
    let pga_id = body["id"].as_str().unwrap().to_owned();
    let (status, _) = server
        .admin(
            Method::POST,
            "/v1/admin/tenants/pga/users",
            Some(json!({"email": "a@example.com"})),
        )
        .await;
    assert_eq!(status, 201);

    // A second tenant naming the same database is refused when it is saved...
    let (status, body) = server
        .admin(Method::POST, "/v1/admin/tenants", Some(create("pgb")))
        .await;
    assert_eq!(
        (status, body["errors"][0]["field"].as_str()),
        (422, Some("settings.user_db")),
        "{body}"
    );
    let (status, _) = server
        .admin(Method::POST, "/v1/admin/tenants", Some(json!({"slug": "pgb"})))
        .await;
    assert_eq!(status, 201);
    let (status, body) = server
        .admin(
            Method::PATCH,
            "/v1/admin/tenants/pgb",
            Some(json!({"settings": {"user_db": user_db.clone()}})),
        )
        .await;
    assert_eq!(
        (status, body["errors"][0]["field"].as_str()),
        (422, Some("settings.user_db")),
        "{body}"
    );
    let (_, body) = server.admin(Method::GET, "/v1/admin/tenants/pgb", None).await;
    assert_eq!(body["settings"]["user_db"]["driver"], "sqlite", "nothing was stored");

    // ...and so is the same slug re-created (a new id) on its old database.
    let (status, _) = server.admin(Method::DELETE, "/v1/admin/tenants/pga", None).await;
    assert_eq!(status, 204);
    let (status, body) = server
        .admin(Method::POST, "/v1/admin/tenants", Some(create("pga")))
        .await;
    assert_eq!(
        (status, body["errors"][0]["field"].as_str()),
        (422, Some("settings.user_db"))
    );
    let (status, _) = server
        .admin(Method::POST, "/v1/admin/tenants", Some(json!({"slug": "pga"})))
        .await;
    assert_eq!(status, 201);

    // The explicit adopt takes it over: the users are there, old sign-ins are not.
    let (status, body) = server
        .admin(
            Method::POST,
            "/v1/admin/tenants/pga/database/adopt",
            Some(json!({"user_db": user_db.clone()})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["previous_owner"], json!(pga_id));
    let (status, body) = server.admin(Method::GET, "/v1/admin/tenants/pga/users", None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["users"][0]["email"], "a@example.com");

    drop(server);
    tokio::time::sleep(Duration::from_millis(200)).await;
    drop_database(driver, &admin, &name).await;
}

#[tokio::test]
async fn two_tenants_cannot_share_a_postgres_database() {
    sharing_on("postgres").await;
}

#[tokio::test]
async fn two_tenants_cannot_share_a_mysql_database() {
    sharing_on("mysql").await;
}

/// `unique: true` over repeating values answers 409 naming the field and the values and
/// changes nothing; a sync that fails anyway shows in `/readyz` and takes nothing down.
async fn unique_on(driver: &str) {
    let server = start().await;
    let mut cleanup = None;
    let slug = match driver {
        "sqlite" => "local".to_owned(),
        _ => {
            let Some((admin, name, dsn)) = database(driver).await else {
                return;
            };
            cleanup = Some((admin, name));
            let (status, body) = server
                .admin(
                    Method::POST,
                    "/v1/admin/tenants",
                    Some(json!({"slug": "fields", "settings": {"user_db": {"driver": driver, "dsn": dsn}}})),
                )
                .await;
            assert_eq!(status, 201, "{body}");
            "fields".to_owned()
        }
    };
    let tenant = format!("/v1/admin/tenants/{slug}");
    let team = |unique: bool| json!({"name": "team", "type": "text", "unique": unique});
    let (status, body) = server
        .admin(
            Method::PATCH,
            &tenant,
            Some(json!({"settings": {"custom_fields": [team(false)]}})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    for email in ["a@example.com", "b@example.com"] {
        let (status, body) = server
            .admin(
                Method::POST,
                &format!("{tenant}/users"),
                Some(json!({"email": email, "custom": {"team": "red"}})),
            )
            .await;
        assert_eq!(status, 201, "{body}");
    }

    let badge = json!({"name": "badge", "type": "integer"});
    let (status, body) = server
        .admin(
            Method::PATCH,
            &tenant,
            Some(json!({"settings": {"custom_fields": [team(true), badge.clone()]}})),
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (409, Some("custom_field_duplicates")),
        "{body}"
    );
    let detail = body["detail"].as_str().unwrap();
    assert!(detail.contains("team") && detail.contains("\"red\""), "{detail}");
    let (_, body) = server.admin(Method::GET, &tenant, None).await;
    let fields = body["settings"]["custom_fields"].as_array().unwrap();
    assert_eq!(fields.len(), 1, "settings not stored: {body}");
    assert_ne!(fields[0]["unique"], json!(true), "settings not stored: {body}");
    let (_, body) = server.admin(Method::GET, &format!("{tenant}/database"), None).await;
    let stored: Vec<_> = body["custom_fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].clone())
        .collect();
    assert_eq!(stored, vec![json!("team")], "schema not changed");

    // Settings written past the check (another node, a file edit): the tenant stays up,
    // the other field gets its column, and readiness names the tenant and field.
    let ctx = server.ctx(&slug);
    let mut changed = ctx.entry.tenant.clone();
    changed.settings.custom_fields = serde_json::from_value(json!([team(true), badge])).unwrap();
    changed.updated_at = chrono::Utc::now();
    server
        .state
        .writer
        .write(tenantry_controlplane::Command::UpdateTenant {
            tenant: changed,
            expected_updated_at: None,
        })
        .await
        .unwrap();
    let (status, body) = server.admin(Method::GET, &format!("{tenant}/users"), None).await;
    assert_eq!(status, 200, "user queries keep working: {body}");
    let (_, body) = server.admin(Method::GET, &format!("{tenant}/database"), None).await;
    assert!(
        body["custom_fields"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["name"] == "badge"),
        "{body}"
    );
    let (_, ready) = readyz(&server, true).await;
    assert_eq!(ready["status"], "degraded", "{ready}");
    let failing = &ready["components"]["custom_fields"]["failing"][0];
    assert_eq!(
        (failing["slug"].as_str(), failing["field"].as_str()),
        (Some(slug.as_str()), Some("team")),
        "{ready}"
    );
    let (_, public) = readyz(&server, false).await;
    assert_eq!(public["components"]["custom_fields"]["failing_count"], 1);
    assert!(!public.to_string().contains(&format!("\"{slug}\"")), "{public}");

    if let Some((admin, name)) = cleanup {
        drop(server);
        tokio::time::sleep(Duration::from_millis(200)).await;
        drop_database(driver, &admin, &name).await;
    }
}

#[tokio::test]
async fn unique_custom_field_over_duplicates_sqlite() {
    unique_on("sqlite").await;
}

#[tokio::test]
async fn unique_custom_field_over_duplicates_postgres() {
    unique_on("postgres").await;
}

#[tokio::test]
async fn unique_custom_field_over_duplicates_mysql() {
    unique_on("mysql").await;
}

/// Public readiness shows counts only; an admin token shows slugs and errors. A tenant
/// database that went away answers 503 at once with `Retry-After` and shows as degraded.
#[tokio::test]
async fn readiness_details_need_an_admin_and_database_outages_show_fast() {
    let server = start().await;
    let (status, body) = server
        .admin(
            Method::POST,
            "/v1/admin/tenants",
            Some(json!({"slug": "closed", "settings": {"user_db": {"driver": "postgres", "dsn": "postgres://u:p@127.0.0.1:1/x"}}})),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let started = Instant::now();
    let response = server
        .http
        .get(format!("{}/v1/admin/tenants/closed/users", server.base))
        .bearer_auth(&server.admin_token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 503);
    assert!(started.elapsed() < Duration::from_secs(2), "{:?}", started.elapsed());
    assert!(response.headers().contains_key("retry-after"));
    assert_eq!(response.json::<Value>().await.unwrap()["code"], "tenant_db_unavailable");

    let (status, public) = readyz(&server, false).await;
    assert_eq!((status, public["status"].as_str()), (200, Some("degraded")));
    assert_eq!(public["components"]["tenant_databases"]["failing_count"], 1);
    assert!(
        !public.to_string().contains("closed"),
        "no slugs without an admin token: {public}"
    );
    let fds = &public["components"]["file_descriptors"];
    if cfg!(target_os = "linux") {
        assert!(
            fds["open"].as_u64().unwrap() > 0 && fds["limit"].as_u64().unwrap() >= fds["open"].as_u64().unwrap(),
            "{fds}"
        );
    }
    let (_, detailed) = readyz(&server, true).await;
    assert_eq!(
        detailed["components"]["tenant_databases"]["failing"][0]["slug"],
        "closed"
    );

    let metrics = server
        .http
        .get(format!("{}/metrics", server.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for gauge in ["process_open_fds", "process_max_fds", "tenant_db_open_pools"] {
        assert!(metrics.contains(gauge), "{gauge} missing: {metrics}");
    }

    // A PostgreSQL tenant whose server goes away after it was in use.
    let Some((admin, name, dsn)) = database("postgres").await else {
        return;
    };
    let proxy = Relay::start(&dsn).await;
    let (status, body) = server
        .admin(
            Method::POST,
            "/v1/admin/tenants",
            Some(json!({"slug": "away", "settings": {"user_db": {"driver": "postgres", "dsn": proxy.url(&dsn)}}})),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let (status, _) = server.admin(Method::GET, "/v1/admin/tenants/away/users", None).await;
    assert_eq!(status, 200);
    proxy.kill().await;
    for _ in 0..3 {
        let started = Instant::now();
        let (status, body) = server.admin(Method::GET, "/v1/admin/tenants/away/users", None).await;
        assert_eq!(
            (status, body["code"].as_str()),
            (503, Some("tenant_db_unavailable")),
            "{body}"
        );
        assert!(started.elapsed() < Duration::from_secs(2), "{:?}", started.elapsed());
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (_, detailed) = readyz(&server, true).await;
    assert_eq!(detailed["status"], "degraded");
    let failing = detailed["components"]["tenant_databases"]["failing"].to_string();
    assert!(failing.contains("\"away\""), "{detailed}");
    drop(server);
    drop_database("postgres", &admin, &name).await;
}

/// Redis (the rate limiter's store) going away shows in `/readyz`.
#[tokio::test]
async fn readiness_reports_a_redis_outage() {
    let Some(url) = tenantry_testkit::configured(Service::Redis) else {
        return;
    };
    if !url.starts_with("redis://") {
        // The proxy below stands in front of a plain TCP server.
        tenantry_testkit::skip(Service::Redis, "the outage needs a redis:// URL");
        return;
    }
    let proxy = Relay::start(&url).await;
    let server = start_with_config(Some(&format!("redis_url = \"{}\"\n", proxy.url(&url)))).await;
    let (_, ready) = readyz(&server, false).await;
    assert_eq!(ready["components"]["rate_limiter"]["status"], "ok", "{ready}");
    proxy.kill().await;
    let started = Instant::now();
    let (status, ready) = readyz(&server, true).await;
    assert!(started.elapsed() < Duration::from_secs(4), "{:?}", started.elapsed());
    assert_eq!((status, ready["status"].as_str()), (200, Some("degraded")), "{ready}");
    assert_eq!(ready["components"]["rate_limiter"]["status"], "failing");
    assert!(ready["components"]["rate_limiter"]["error"].is_string());
}

/// The installation-wide database going away shows in `/readyz` too.
#[tokio::test]
async fn readiness_reports_a_global_database_outage() {
    let Some((admin, name, dsn)) = database("postgres").await else {
        return;
    };
    let proxy = Relay::start(&dsn).await;
    let server = start_with_config(Some(&format!("global_db_url = \"{}\"\n", proxy.url(&dsn)))).await;
    let (_, ready) = readyz(&server, false).await;
    assert_eq!(ready["components"]["global_db"]["status"], "ok", "{ready}");
    proxy.kill().await;
    let started = Instant::now();
    let (status, ready) = readyz(&server, false).await;
    assert!(started.elapsed() < Duration::from_secs(4), "{:?}", started.elapsed());
    assert_eq!((status, ready["status"].as_str()), (200, Some("degraded")), "{ready}");
    assert_eq!(ready["components"]["global_db"]["status"], "failing");
    drop(server);
    drop_database("postgres", &admin, &name).await;
}
