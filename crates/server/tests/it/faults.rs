//! Fault injection with real services: a tenant's database server (PostgreSQL, MariaDB)
//! stops under login and token traffic and comes back on the same address (a TCP relay
//! in the test cuts and restores it). While it is down every request that needs it answers
//! fast with 503 and `Retry-After`; afterwards Tenantry serves again without a restart, and
//! a write refused during the outage left nothing behind. Redis, the attempt counters'
//! store, likewise: while it is away a login is refused (503), never let through uncounted.
//! An FS_ROOT that is full or read-only refuses control-plane writes cleanly (503, nothing
//! torn) while tokens keep being issued.

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};
use tenantry_testkit::relay::Relay;

use crate::common::postgres::spa_client;
use crate::common::{TestServer, start, start_with_config};
use crate::tenant_db::{database, drop_database};

const PASSWORD: &str = "a password for outages";

async fn login(server: &TestServer, email: &str) -> (u16, Option<String>, Value) {
    login_at(server, "flaky", email).await
}

async fn login_at(server: &TestServer, slug: &str, email: &str) -> (u16, Option<String>, Value) {
    let response = server
        .http
        .post(format!("{}/v1/auth/login", server.base))
        .header("x-tenant-slug", slug)
        .json(&json!({"email": email, "password": PASSWORD, "client_id": "demo-spa"}))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_owned());
    (status, retry_after, response.json().await.unwrap_or(Value::Null))
}

async fn token(server: &TestServer, secret: &str) -> u16 {
    token_at(server, "flaky", secret).await
}

/// A `client_credentials` token of the client `backend`: the status.
async fn token_at(server: &TestServer, slug: &str, secret: &str) -> u16 {
    server
        .http
        .post(format!("{}/t/{slug}/token", server.base))
        .basic_auth("backend", Some(secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

async fn outage_and_recovery(driver: &str) {
    let server = start().await;
    let Some((admin, name, dsn)) = database(driver).await else {
        return;
    };
    let relay = Relay::start(&dsn).await;
    let (status, body) = server
        .admin(
            Method::POST,
            "/v1/admin/tenants",
            Some(json!({"slug": "flaky", "settings": {"user_db": {"driver": driver, "dsn": relay.url(&dsn)}}})),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = server
        .admin(
            Method::POST,
            "/v1/admin/tenants/flaky/clients",
            Some(spa_client(&["openid"])),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let backend =
        json!({"client_id": "backend", "name": "Backend", "grant_types": ["client_credentials"], "scopes": ["api"]});
    let (status, made) = server
        .admin(Method::POST, "/v1/admin/tenants/flaky/clients", Some(backend))
        .await;
    assert_eq!(status, 201, "{made}");
    let secret = made["client_secret"].as_str().unwrap().to_owned();
    let (status, body) = server
        .admin(
            Method::POST,
            "/v1/admin/tenants/flaky/users",
            Some(json!({"email": "ada@example.com", "password": PASSWORD, "email_verified": true})),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(login(&server, "ada@example.com").await.0, 200);
    assert_eq!(token(&server, &secret).await, 200);

    // The server stops.
    relay.cut().await;
    for _ in 0..4 {
        let started = Instant::now();
        let (status, retry_after, body) = login(&server, "ada@example.com").await;
        assert_eq!(
            (status, body["code"].as_str()),
            (503, Some("tenant_db_unavailable")),
            "{body}"
        );
        assert!(retry_after.is_some(), "503 says when to come back");
        assert!(started.elapsed() < Duration::from_secs(3), "{:?}", started.elapsed());
        // Tokens that need no user database keep coming.
        let started = Instant::now();
        let status = token(&server, &secret).await;
        assert!(status == 200 || status == 503, "{status}");
        assert!(started.elapsed() < Duration::from_secs(3), "{:?}", started.elapsed());
    }
    let (status, body) = server
        .admin(
            Method::POST,
            "/v1/admin/tenants/flaky/users",
            Some(json!({"email": "grace@example.com", "password": PASSWORD, "email_verified": true})),
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (503, Some("tenant_db_unavailable")),
        "{body}"
    );

    // It comes back on the same address: served again without restarting Tenantry.
    relay.restore();
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let (status, _, body) = login(&server, "ada@example.com").await;
        if status == 200 {
            break;
        }
        assert_eq!(status, 503, "{body}");
        assert!(Instant::now() < deadline, "no recovery after the server came back");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(token(&server, &secret).await, 200);
    // The refused write left nothing: the same user is made now, once.
    let (status, body) = server
        .admin(
            Method::POST,
            "/v1/admin/tenants/flaky/users",
            Some(json!({"email": "grace@example.com", "password": PASSWORD, "email_verified": true})),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let (_, page) = server
        .admin(Method::GET, "/v1/admin/tenants/flaky/users?email=grace", None)
        .await;
    assert_eq!(page["users"].as_array().unwrap().len(), 1, "{page}");
    assert_eq!(login(&server, "grace@example.com").await.0, 200);

    drop(server);
    relay.kill().await;
    drop_database(driver, &admin, &name).await;
}

#[tokio::test]
async fn postgres_stops_and_comes_back_under_traffic() {
    outage_and_recovery("postgres").await;
}

#[tokio::test]
async fn mariadb_stops_and_comes_back_under_traffic() {
    outage_and_recovery("mysql").await;
}

#[tokio::test]
async fn redis_stops_and_comes_back_and_no_login_goes_uncounted() {
    let Some(url) = tenantry_testkit::configured(tenantry_testkit::Service::Redis) else {
        return;
    };
    if !url.starts_with("redis://") {
        tenantry_testkit::skip(tenantry_testkit::Service::Redis, "the outage needs a redis:// URL");
        return;
    }
    let relay = Relay::start(&url).await;
    let server = start_with_config(Some(&format!("redis_url = \"{}\"\n", relay.url(&url)))).await;
    let (status, body) = server
        .admin(
            Method::POST,
            "/v1/admin/tenants/local/users",
            Some(json!({"email": "ada@example.com", "password": PASSWORD, "email_verified": true})),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(login_at(&server, "local", "ada@example.com").await.0, 200);

    relay.cut().await;
    for _ in 0..3 {
        let started = Instant::now();
        let (status, retry_after, body) = login_at(&server, "local", "ada@example.com").await;
        assert_eq!(
            (status, body["code"].as_str()),
            (503, Some("rate_limiter_unavailable")),
            "{body}"
        );
        assert!(retry_after.is_some());
        assert!(started.elapsed() < Duration::from_secs(4), "{:?}", started.elapsed());
    }

    relay.restore();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (status, _, body) = login_at(&server, "local", "ada@example.com").await;
        if status == 200 {
            break;
        }
        assert_eq!(status, 503, "{body}");
        assert!(Instant::now() < deadline, "no recovery after Redis came back");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    drop(server);
    relay.kill().await;
}

/// A server on FS_ROOT `root` whose tenant `local` has the client `backend`, already
/// issuing it tokens; answers the server and the client's secret.
async fn serving_tokens_on(root: std::path::PathBuf) -> (TestServer, String) {
    let server = crate::common::start_in(None, Some(root)).await;
    let backend =
        json!({"client_id": "backend", "name": "Backend", "grant_types": ["client_credentials"], "scopes": ["api"]});
    let (status, made) = server
        .admin(Method::POST, "/v1/admin/tenants/local/clients", Some(backend))
        .await;
    assert_eq!(status, 201, "{made}");
    let secret = made["client_secret"].as_str().unwrap().to_owned();
    assert_eq!(token_at(&server, "local", &secret).await, 200);
    (server, secret)
}

/// A small filesystem mounted for one test, unmounted when dropped.
struct SmallDisk {
    mount: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl SmallDisk {
    fn mount(size: &str) -> SmallDisk {
        let dir = tempfile::tempdir().unwrap();
        let mount = dir.path().join("disk");
        std::fs::create_dir(&mount).unwrap();
        let status = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&mount)
            .status()
            .expect("mount runs");
        assert!(status.success(), "mounting a tmpfs needs root (CI runs as root)");
        SmallDisk { mount, _dir: dir }
    }

    /// Writes a file until the disk is full.
    fn fill(&self) {
        use std::io::Write;
        let mut file = std::fs::File::create(self.mount.join("filler")).unwrap();
        let block = vec![0u8; 64 * 1024];
        while file.write_all(&block).is_ok() {}
        let _ = file.sync_all();
    }

    fn free(&self) {
        std::fs::remove_file(self.mount.join("filler")).unwrap();
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg("-l").arg(&self.mount).status();
    }
}

/// FS_ROOT full during control-plane writes: each write is refused with a clear error and
/// nothing torn is left (no half-made tenant folder, the loaded state as before), the
/// running server keeps issuing tokens, and writes work again once there is room.
#[tokio::test]
async fn a_full_fs_root_refuses_writes_cleanly_and_tokens_keep_flowing() {
    let disk = SmallDisk::mount("24m");
    let root = disk.mount.join("root");
    let (server, secret) = serving_tokens_on(root.clone()).await;
    let before = server.state.control_plane.snapshot();

    disk.fill();
    let (status, body) = server
        .admin(Method::POST, "/v1/admin/tenants", Some(json!({"slug": "more"})))
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (503, Some("control_plane_unavailable")),
        "{body}"
    );
    let scope = json!({"description": "Orders", "claims": []});
    let (status, body) = server
        .admin(
            Method::PUT,
            "/v1/admin/tenants/local/scopes/orders",
            Some(scope.clone()),
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (503, Some("control_plane_unavailable")),
        "{body}"
    );
    // Nothing torn: no folder of the refused tenant, no leftover staging folder, the scope
    // file absent, and the state in memory as it was.
    let names: Vec<String> = std::fs::read_dir(root.join("tenants"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(!names.iter().any(|n| n.contains("more")), "{names:?}");
    assert!(!root.join("tenants/local/scopes/orders.json").exists());
    let after = server.state.control_plane.snapshot();
    assert_eq!(after.revision, before.revision);
    assert!(after.tenant("more").is_none() && !after.tenants["local"].scopes.contains_key("orders"));
    // Tokens and keys keep being served.
    assert_eq!(token_at(&server, "local", &secret).await, 200);
    let jwks = server
        .http
        .get(format!("{}/t/local/jwks.json", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(jwks.status(), 200);

    // Room again: the same writes go through.
    disk.free();
    let (status, body) = server
        .admin(Method::PUT, "/v1/admin/tenants/local/scopes/orders", Some(scope))
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = server
        .admin(Method::POST, "/v1/admin/tenants", Some(json!({"slug": "more"})))
        .await;
    assert_eq!(status, 201, "{body}");
    drop(server);
}

/// Folders made read-only for one test by read-only bind mounts over themselves (a tmpfs
/// refuses `remount,ro` while the tenant's SQLite database under FS_ROOT is open);
/// writable again when dropped.
struct ReadOnly(Vec<std::path::PathBuf>);

impl ReadOnly {
    fn mount(dirs: &[std::path::PathBuf]) -> ReadOnly {
        let mut mounted = ReadOnly(Vec::new());
        for dir in dirs {
            let bound = std::process::Command::new("mount")
                .arg("--bind")
                .arg(dir)
                .arg(dir)
                .status()
                .expect("mount runs");
            assert!(bound.success(), "a bind mount needs root (CI runs as root)");
            mounted.0.push(dir.clone());
            let read_only = std::process::Command::new("mount")
                .args(["-o", "remount,bind,ro"])
                .arg(dir)
                .status()
                .expect("mount runs");
            assert!(read_only.success(), "remounting {} read-only", dir.display());
        }
        mounted
    }
}

impl Drop for ReadOnly {
    fn drop(&mut self) {
        for dir in self.0.iter().rev() {
            let _ = std::process::Command::new("umount").arg("-l").arg(dir).status();
        }
    }
}

/// FS_ROOT's control-plane tree read-only under a running server (as when a disk error
/// remounts it): admin writes are refused with a clear 503, the server keeps serving
/// tokens, keys and discovery, and once writable again the tree loads without a trace of
/// the refused writes, which then go through.
#[tokio::test]
async fn fs_root_read_only_refuses_writes_and_keeps_serving_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let (server, secret) = serving_tokens_on(root.clone()).await;
    let (status, tenant) = server.admin(Method::GET, "/v1/admin/tenants/local", None).await;
    assert_eq!(status, 200, "{tenant}");
    let before = server.state.control_plane.snapshot();

    // The control-plane tree only: the tenant databases beside it stay writable.
    let read_only = ReadOnly::mount(&[root.join("tenants"), root.join("system")]);
    assert!(std::fs::write(root.join("tenants/probe"), b"").is_err(), "read-only");
    let reports =
        json!({"client_id": "reports", "name": "Reports", "grant_types": ["client_credentials"], "scopes": ["api"]});
    let (status, body) = server
        .admin(Method::POST, "/v1/admin/tenants/local/clients", Some(reports.clone()))
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (503, Some("control_plane_unavailable")),
        "{body}"
    );
    let rename = json!({"display_name": "Renamed while read-only"});
    let (status, body) = server
        .admin(Method::PATCH, "/v1/admin/tenants/local", Some(rename.clone()))
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (503, Some("control_plane_unavailable")),
        "{body}"
    );
    assert_eq!(server.state.control_plane.snapshot().revision, before.revision);
    // Tokens, keys and discovery keep being served.
    for _ in 0..3 {
        assert_eq!(token_at(&server, "local", &secret).await, 200);
    }
    for path in ["/t/local/jwks.json", "/t/local/.well-known/openid-configuration"] {
        let response = server.http.get(format!("{}{path}", server.base)).send().await.unwrap();
        assert_eq!(response.status(), 200, "{path}");
    }

    // Writable again: the tree on disk loads whole, without the refused writes or a
    // leftover temporary file...
    drop(read_only);
    let loaded = tenantry_controlplane::FsStore::new(&root).load().unwrap();
    assert!(loaded.degraded.is_empty(), "{:?}", loaded.degraded);
    let local = &loaded.tenants["local"];
    assert!(local.clients.contains_key("backend") && !local.clients.contains_key("reports"));
    assert_eq!(local.tenant.display_name, tenant["display_name"].as_str().unwrap());
    let mut pending = vec![root.join("tenants"), root.join("system")];
    while let Some(folder) = pending.pop() {
        for entry in std::fs::read_dir(&folder).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy();
            assert!(!name.starts_with('.'), "a leftover: {}", path.display());
            if path.is_dir() {
                pending.push(path);
            }
        }
    }
    let (status, body) = server
        .admin(Method::GET, "/v1/admin/tenants/local/clients/reports", None)
        .await;
    assert_eq!((status, body["code"].as_str()), (404, Some("not_found")), "{body}");
    // ...and the same writes go through.
    let (status, body) = server
        .admin(Method::POST, "/v1/admin/tenants/local/clients", Some(reports))
        .await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = server
        .admin(Method::PATCH, "/v1/admin/tenants/local", Some(rename))
        .await;
    assert_eq!(status, 200, "{body}");
    let (_, tenant) = server.admin(Method::GET, "/v1/admin/tenants/local", None).await;
    assert_eq!(tenant["display_name"], "Renamed while read-only", "{tenant}");
    assert_eq!(token_at(&server, "local", &secret).await, 200);
    drop(server);
}

/// How a scripted mail server misbehaves.
#[derive(Clone, Copy, Debug)]
enum BadSmtp {
    /// Accepts the connection and never says a word.
    Stalls,
    /// Takes the message up to DATA, then drops the connection mid-message.
    DropsInData,
    /// Answers `451` (try again later) to the sender.
    TemporaryFailure,
}

/// A mail server on a loopback port that speaks just enough SMTP to misbehave as told.
async fn bad_smtp(behaviour: BadSmtp) -> u16 {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (read, mut write) = socket.into_split();
                if let BadSmtp::Stalls = behaviour {
                    tokio::time::sleep(Duration::from_secs(600)).await;
                    return;
                }
                let _ = write.write_all(b"220 bad.example ESMTP\r\n").await;
                let mut lines = BufReader::new(read).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    let verb = line.get(..4).unwrap_or("").to_ascii_uppercase();
                    let answer: &[u8] = match (verb.as_str(), behaviour) {
                        ("EHLO" | "HELO", _) => b"250 bad.example\r\n",
                        ("MAIL", BadSmtp::TemporaryFailure) => b"451 4.3.0 try again later\r\n",
                        ("MAIL" | "RCPT", _) => b"250 OK\r\n",
                        ("DATA", _) => b"354 go ahead\r\n",
                        ("QUIT", _) => b"221 bye\r\n",
                        ("RSET" | "NOOP", _) => b"250 OK\r\n",
                        _ => b"",
                    };
                    if verb == "DATA" {
                        let _ = write.write_all(answer).await;
                        // One line of the message, then the connection is gone.
                        let _ = lines.next_line().await;
                        return;
                    }
                    if !answer.is_empty() && write.write_all(answer).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    port
}

/// A mail server that stalls, drops the message mid-DATA or answers 4xx: a user made with
/// a verification mail is refused within the mail timeout with a clean 502, and no account
/// is left behind (the same email is free afterwards).
#[tokio::test]
async fn a_misbehaving_mail_server_leaves_no_orphaned_account() {
    let server = start_with_config(Some("[limits]\nsmtp_timeout_secs = 2\n")).await;
    for (n, behaviour) in [BadSmtp::Stalls, BadSmtp::DropsInData, BadSmtp::TemporaryFailure]
        .into_iter()
        .enumerate()
    {
        let port = bad_smtp(behaviour).await;
        let smtp = json!({"host": "127.0.0.1", "port": port, "tls": "none", "from_address": "no-reply@tenantry.test"});
        let (status, body) = server
            .admin(
                Method::PATCH,
                "/v1/admin/tenants/local",
                Some(json!({"settings": {"smtp": smtp}})),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        let email = format!("new{n}@example.com");
        let started = Instant::now();
        let (status, body) = server
            .admin(
                Method::POST,
                "/v1/admin/tenants/local/users",
                Some(json!({"email": email, "send_verification_email": true})),
            )
            .await;
        assert_eq!(
            (status, body["code"].as_str()),
            (502, Some("email_send_failed")),
            "{behaviour:?}: {body}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{behaviour:?} took {:?}",
            started.elapsed()
        );
        let (_, page) = server
            .admin(
                Method::GET,
                &format!("/v1/admin/tenants/local/users?email={email}"),
                None,
            )
            .await;
        assert_eq!(
            page["users"].as_array().unwrap().len(),
            0,
            "{behaviour:?}: an orphan: {page}"
        );
        let (status, body) = server
            .admin(
                Method::POST,
                "/v1/admin/tenants/local/users",
                Some(json!({"email": email})),
            )
            .await;
        assert_eq!(status, 201, "{behaviour:?}: the email is free: {body}");
    }
}
