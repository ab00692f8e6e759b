//! Cluster mode with real processes: three members of the `tenantry` binary on loopback
//! ports, joined with `tenantry cluster init|join`, writes through any member, the leader
//! killed with SIGKILL under a stream of writes, a member restarted after compaction (it
//! catches up from a snapshot), and at the end the control-plane trees of all members
//! hash the same. Cluster mode needs Redis (shared attempt counters): the suite runs when
//! `TENANTRY_TEST_REDIS_URL` is set.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};

use crate::common::*;

const SECRET: &str = "cluster-secret-for-tests-0123456789abcdef";

/// A port that is free now, below the ephemeral range: a port the kernel handed out for
/// `:0` could be taken by any outbound connection before a member (re)binds it.
fn free_port() -> u16 {
    loop {
        let port = 10_000 + rand::random::<u16>() % 10_000;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok()
            && std::net::TcpListener::bind(("127.0.0.11", port)).is_ok()
            && std::net::TcpListener::bind(("127.0.0.12", port)).is_ok()
            && std::net::TcpListener::bind(("127.0.0.13", port)).is_ok()
        {
            return port;
        }
    }
}

/// One member: its process (when running), addresses and environment.
struct Node {
    id: u64,
    fs_root: PathBuf,
    api_port: u16,
    /// The advertised cluster address (a relay's, in the partition test).
    cluster_url: String,
    /// The cluster listener itself.
    direct_url: String,
    env: Vec<(String, String)>,
    server: Option<Server>,
}

impl Node {
    fn new(
        dir: &Path,
        id: u64,
        public_url: &str,
        redis: &str,
        api_port: u16,
        cluster: (std::net::SocketAddr, String),
        extra: &[(&str, &str)],
    ) -> Node {
        let (listen, cluster_url) = cluster;
        let mut env: Vec<(String, String)> = vec![
            ("SECRETBOX_MASTER_KEY".into(), KEY_A.into()),
            ("TENANTRY_CLUSTER_NODE_ID".into(), id.to_string()),
            ("TENANTRY_CLUSTER_LISTEN".into(), listen.to_string()),
            ("TENANTRY_CLUSTER_ADVERTISE_URL".into(), cluster_url.clone()),
            ("TENANTRY_CLUSTER_SECRET".into(), SECRET.into()),
            ("TENANTRY_PUBLIC_URL".into(), public_url.into()),
            ("TENANTRY_REDIS_URL".into(), redis.into()),
            ("TENANTRY_DEFAULT_TENANT".into(), "none".into()),
            ("TENANTRY_CLUSTER_HEARTBEAT_MS".into(), "100".into()),
            ("TENANTRY_CLUSTER_ELECTION_TIMEOUT_MS".into(), "600".into()),
        ];
        env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        Node {
            id,
            fs_root: dir.join(format!("node{id}")),
            api_port,
            cluster_url,
            direct_url: format!("http://{listen}"),
            env,
            server: None,
        }
    }

    fn start(&mut self, dev: bool) {
        let env: Vec<(&str, &str)> = self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let flags: &[&str] = if dev { &["--dev"] } else { &[] };
        let listen = format!("127.0.0.1:{}", self.api_port);
        self.server = Some(Server::start_at(&self.fs_root, &listen, flags, &env));
    }

    fn api(&self) -> String {
        format!("http://127.0.0.1:{}", self.api_port)
    }

    fn kill(&mut self) {
        if let Some(server) = self.server.take() {
            server.kill9();
        }
    }

    /// Runs `tenantry cluster <args>` with this node's configuration.
    fn cluster(&self, args: &[&str]) -> (bool, String) {
        let mut cmd = tenantry(self.fs_root.parent().unwrap());
        cmd.arg("cluster").args(["--node", &self.direct_url]).args(args);
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        let out = cmd.output().unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), text)
    }

    async fn status(&self) -> Option<Value> {
        let response = reqwest::Client::new()
            .get(format!("{}/cluster/status", self.direct_url))
            .bearer_auth(SECRET)
            .timeout(Duration::from_secs(2))
            .send()
            .await
            .ok()?;
        response.json().await.ok()
    }
}

/// Polls `check` every 100 ms until it holds or `limit` passes.
async fn eventually<F, Fut>(limit: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while !check().await {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// SHA-free fingerprint of the replicated folders: every path and its bytes, in order.
fn tree_of(fs_root: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    for top in ["tenants", "system"] {
        for file in files_under(&fs_root.join(top)) {
            let name = file.file_name().unwrap().to_string_lossy().to_string();
            if name.starts_with('.') {
                continue;
            }
            let rel = file.strip_prefix(fs_root).unwrap().to_string_lossy().to_string();
            out.insert(rel, std::fs::read(&file).unwrap());
        }
    }
    out
}

/// An admin API call; status 0 when the member cannot be reached or the connection is
/// cut (it was killed).
async fn admin_call(token: &str, base: &str, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    let mut request = http.request(method, format!("{base}{path}")).bearer_auth(token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    match request.send().await {
        Ok(response) => {
            let status = response.status().as_u16();
            let text = response.text().await.unwrap_or_default();
            (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
        }
        // Refused, or cut while in flight (the member was killed); callers check statuses.
        Err(_) => (0, Value::Null),
    }
}

/// Starts a three-member cluster: node 1 prepared with `--dev` (system keys, an admin
/// token; no default tenant) and initialised, nodes 2 and 3 joined through node 1.
async fn three_members(dir: &Path, redis: &str, extra: &[(&str, &str)]) -> (Vec<Node>, String) {
    let addresses = (0..3)
        .map(|_| {
            let listen: std::net::SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
            (listen, format!("http://{listen}"))
        })
        .collect();
    three_members_at(dir, redis, extra, addresses).await
}

/// [`three_members`] with each member's cluster listener and advertised address given.
async fn three_members_at(
    dir: &Path,
    redis: &str,
    extra: &[(&str, &str)],
    cluster: Vec<(std::net::SocketAddr, String)>,
) -> (Vec<Node>, String) {
    let ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let public_url = format!("http://127.0.0.1:{}", ports[0]);
    let mut nodes: Vec<Node> = cluster
        .into_iter()
        .enumerate()
        .map(|(i, addresses)| Node::new(dir, i as u64 + 1, &public_url, redis, ports[i], addresses, extra))
        .collect();
    nodes[0].start(true);
    let token = std::fs::read_to_string(nodes[0].fs_root.join("dev-admin-token")).unwrap();
    let (ok, out) = nodes[0].cluster(&["init"]);
    assert!(ok, "cluster init: {out}");
    let via = nodes[0].cluster_url.clone();
    for node in nodes.iter_mut().skip(1) {
        node.start(false);
        let (ok, out) = node.cluster(&["join", &via]);
        assert!(ok, "cluster join: {out}");
    }
    for node in &nodes {
        eventually(Duration::from_secs(20), "three voters seen by every member", || async {
            node.status().await.is_some_and(|s| {
                s["leader_id"].is_u64()
                    && s["members"]
                        .as_array()
                        .is_some_and(|m| m.iter().filter(|m| m["voter"] == true).count() == 3)
            })
        })
        .await;
    }
    (nodes, token.trim().to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_through_any_member_reach_all_and_survive_a_leader_kill() {
    let Some(redis) = tenantry_testkit::configured(tenantry_testkit::Service::Redis) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (mut nodes, token) = three_members(dir.path(), &redis, &[("TENANTRY_CLUSTER_SNAPSHOT_EVERY", "20")]).await;

    // A write through a follower is forwarded and answered as if local.
    let leader = nodes[0].status().await.unwrap()["leader_id"].as_u64().unwrap();
    let follower = nodes.iter().find(|n| n.id != leader).unwrap();
    let (status, body) = admin_call(
        &token,
        &follower.api(),
        Method::POST,
        "/v1/admin/tenants",
        Some(json!({"slug": "via-follower", "settings": {"user_db": null}})),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    // Read back at once on the member that took it, then everywhere.
    let (status, _) = admin_call(
        &token,
        &follower.api(),
        Method::GET,
        "/v1/admin/tenants/via-follower",
        None,
    )
    .await;
    assert_eq!(status, 200);
    for node in &nodes {
        let api = node.api();
        eventually(Duration::from_secs(5), "the tenant on every member", || {
            let (api, token) = (api.clone(), token.clone());
            async move {
                admin_call(
                    &token,
                    &api,
                    Method::GET,
                    "/t/via-follower/.well-known/openid-configuration",
                    None,
                )
                .await
                .0 == 200
            }
        })
        .await;
    }
    // A refusal comes back the same way: the slug is taken.
    let (status, body) = admin_call(
        &token,
        &nodes.iter().find(|n| n.id != leader).unwrap().api(),
        Method::POST,
        "/v1/admin/tenants",
        Some(json!({"slug": "via-follower", "settings": {"user_db": null}})),
    )
    .await;
    assert_eq!(status, 409, "{body}");
    // A SQLite tenant database would diverge per node: refused in cluster mode.
    let (status, body) = admin_call(
        &token,
        &nodes[0].api(),
        Method::POST,
        "/v1/admin/tenants",
        Some(json!({"slug": "local-file"})),
    )
    .await;
    assert_eq!(status, 422, "{body}");
    assert!(body.to_string().contains("settings.user_db"), "{body}");

    // Writes stream through every member while the leader is killed.
    let apis: Vec<String> = nodes.iter().map(Node::api).collect();
    let writer = {
        let (apis, token) = (apis.clone(), token.clone());
        tokio::spawn(async move {
            let mut acknowledged = Vec::new();
            let mut unsure = Vec::new();
            for i in 0..60 {
                let slug = format!("w-{i}");
                let api = &apis[i % apis.len()];
                let (status, _) = admin_call(
                    &token,
                    api,
                    Method::POST,
                    "/v1/admin/tenants",
                    Some(json!({"slug": slug, "settings": {"user_db": null}})),
                )
                .await;
                match status {
                    201 => acknowledged.push(slug),
                    _ => unsure.push((slug, status)),
                }
                tokio::time::sleep(Duration::from_millis(30)).await;
            }
            (acknowledged, unsure)
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    let killed_at = Instant::now();
    let leader_index = nodes.iter().position(|n| n.id == leader).unwrap();
    nodes[leader_index].kill();
    let survivors: Vec<usize> = (0..3).filter(|i| *i != leader_index).collect();
    eventually(Duration::from_secs(10), "a new leader", || {
        let node = &nodes[survivors[0]];
        async move {
            node.status()
                .await
                .is_some_and(|s| s["leader_id"].as_u64().is_some_and(|l| l != leader))
        }
    })
    .await;
    let failover = killed_at.elapsed();
    let (acknowledged, unsure) = writer.await.unwrap();
    assert!(
        acknowledged.len() >= 30,
        "most writes acknowledged: {acknowledged:?} / {unsure:?}"
    );
    for status in unsure.iter().map(|(_, s)| *s) {
        // The killed member refuses connections (0); the others answer 503 while no
        // leader is known or a write's fate is unknown — never 500.
        assert!(matches!(status, 0 | 503), "{unsure:?}");
    }
    // Every acknowledged write is on every survivor.
    for i in &survivors {
        let api = nodes[*i].api();
        for slug in &acknowledged {
            let (status, _) = admin_call(&token, &api, Method::GET, &format!("/v1/admin/tenants/{slug}"), None).await;
            assert_eq!(status, 200, "{slug} on node {}", nodes[*i].id);
        }
    }
    eprintln!("failover: writes acknowledged again after {failover:?}");

    // More writes, enough to pass a snapshot and purge the log the killed member missed.
    let live = nodes[survivors[0]].api();
    for i in 0..40 {
        let (status, body) = admin_call(
            &token,
            &live,
            Method::POST,
            "/v1/admin/tenants",
            Some(json!({"slug": format!("after-{i}"), "settings": {"user_db": null}})),
        )
        .await;
        assert_eq!(status, 201, "{body}");
    }
    let purged = nodes[survivors[0]].status().await.unwrap()["purged_index"].as_u64();
    assert!(purged.is_some(), "the log was compacted");

    // The killed member restarts and catches up (from a snapshot: its entries are purged).
    nodes[leader_index].start(false);
    let target = nodes[survivors[0]].status().await.unwrap()["applied_index"]
        .as_u64()
        .unwrap();
    let restarted = &nodes[leader_index];
    eventually(
        Duration::from_secs(30),
        "the restarted member to catch up",
        || async move {
            restarted
                .status()
                .await
                .is_some_and(|s| s["applied_index"].as_u64().is_some_and(|a| a >= target))
        },
    )
    .await;
    let (status, _) = admin_call(
        &token,
        &restarted.api(),
        Method::GET,
        "/v1/admin/tenants/after-39",
        None,
    )
    .await;
    assert_eq!(status, 200);

    // All trees are identical.
    let reference = tree_of(&nodes[0].fs_root);
    assert!(reference.keys().any(|k| k.contains("after-39")));
    for node in &nodes[1..] {
        let tree = tree_of(&node.fs_root);
        let differing: Vec<_> = reference
            .keys()
            .chain(tree.keys())
            .filter(|k| reference.get(*k) != tree.get(*k))
            .collect();
        assert!(differing.is_empty(), "node {} differs in {differing:?}", node.id);
    }
    // Readiness names the role and the leader.
    let (status, body) = admin_call(&token, &restarted.api(), Method::GET, "/readyz", None).await;
    assert_eq!(status, 200);
    assert_eq!(body["components"]["control_plane"]["mode"], "cluster", "{body}");
    assert!(body["components"]["cluster"]["leader_id"].is_u64(), "{body}");
}

/// A fresh PostgreSQL database for a tenant every member shares: (admin URL, its DSN, name).
async fn fresh_postgres(base: &str) -> (String, String) {
    use sqlx::Connection;
    let name = format!("cluster_{}", rand::random::<u32>());
    let mut admin = sqlx::PgConnection::connect(base)
        .await
        .expect("PostgreSQL is configured but unreachable");
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut admin)
        .await
        .unwrap();
    let (prefix, _) = base.rsplit_once('/').unwrap();
    (format!("{prefix}/{name}"), name)
}

async fn drop_postgres(base: &str, name: &str) {
    use sqlx::Connection;
    if let Ok(mut admin) = sqlx::PgConnection::connect(base).await {
        let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
        )))
        .execute(&mut admin)
        .await;
    }
}

async fn form(url: &str, auth: Option<(&str, &str)>, fields: &[(&str, &str)]) -> (u16, Value) {
    let mut request = reqwest::Client::new().post(url).form(fields);
    if let Some((user, password)) = auth {
        request = request.basic_auth(user, Some(password));
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

fn kid_of(jwt: &str) -> String {
    use base64::Engine;
    let header = jwt.split('.').next().unwrap();
    let header: Value =
        serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(header).unwrap()).unwrap();
    header["kid"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_issued_by_one_member_work_on_the_others() {
    let Some(redis) = tenantry_testkit::configured(tenantry_testkit::Service::Redis) else {
        return;
    };
    let Some(pg) = tenantry_testkit::configured(tenantry_testkit::Service::Postgres) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (nodes, token) = three_members(dir.path(), &redis, &[]).await;
    let (dsn, db_name) = fresh_postgres(&pg).await;
    let api = |i: usize| nodes[i].api();

    // Tenant, clients and a user, each through a different member.
    let (status, body) = admin_call(
        &token,
        &api(1),
        Method::POST,
        "/v1/admin/tenants",
        Some(json!({"slug": "pg", "settings": {"user_db": {"driver": "postgres", "dsn": dsn}}})),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let spa = json!({"client_id": "demo-spa", "name": "SPA", "client_type": "public", "first_party": true,
        "grant_types": ["authorization_code", "refresh_token"],
        "redirect_uris": ["http://localhost:3000/callback"], "scopes": ["openid", "email", "offline_access"]});
    let (status, body) = admin_call(&token, &api(2), Method::POST, "/v1/admin/tenants/pg/clients", Some(spa)).await;
    assert_eq!(status, 201, "{body}");
    let backend =
        json!({"client_id": "backend", "name": "Backend", "grant_types": ["client_credentials"], "scopes": ["api"]});
    let (status, made) = admin_call(
        &token,
        &api(0),
        Method::POST,
        "/v1/admin/tenants/pg/clients",
        Some(backend),
    )
    .await;
    assert_eq!(status, 201, "{made}");
    let secret = made["client_secret"].as_str().unwrap().to_owned();
    let (status, body) = admin_call(
        &token,
        &api(2),
        Method::POST,
        "/v1/admin/tenants/pg/users",
        Some(json!({"email": "ada@example.com", "password": "a cluster password", "email_verified": true})),
    )
    .await;
    assert_eq!(status, 201, "{body}");

    // Signed in on member 1; the access token introspects on member 2 and reads userinfo on 3.
    let response = reqwest::Client::new()
        .post(format!("{}/v1/auth/login", api(0)))
        .header("x-tenant-slug", "pg")
        .json(
            &json!({"email": "ada@example.com", "password": "a cluster password", "client_id": "demo-spa",
            "scope": "openid email offline_access"}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let tokens: Value = response.json().await.unwrap();
    let access = tokens["access_token"].as_str().unwrap();
    let refresh = tokens["refresh_token"].as_str().unwrap();
    let (status, body) = form(
        &format!("{}/t/pg/introspect", api(1)),
        Some(("backend", &secret)),
        &[("token", access)],
    )
    .await;
    assert_eq!((status, &body["active"]), (200, &json!(true)), "{body}");
    let response = reqwest::Client::new()
        .get(format!("{}/t/pg/userinfo", api(2)))
        .bearer_auth(access)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let issuer = format!("{}/t/pg", api(0));
    for i in 0..3 {
        let (status, body) = admin_call(
            &token,
            &api(i),
            Method::GET,
            "/t/pg/.well-known/openid-configuration",
            None,
        )
        .await;
        assert_eq!(
            (status, body["issuer"].as_str()),
            (200, Some(issuer.as_str())),
            "one issuer on every member"
        );
    }

    // Refreshed on member 2; the spent refresh token replayed on member 3 revokes the family
    // for all: the new one no longer works on member 1.
    let (status, rotated) = form(
        &format!("{}/t/pg/token", api(1)),
        None,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh),
            ("client_id", "demo-spa"),
        ],
    )
    .await;
    assert_eq!(status, 200, "{rotated}");
    let (status, body) = form(
        &format!("{}/t/pg/token", api(2)),
        None,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh),
            ("client_id", "demo-spa"),
        ],
    )
    .await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_grant")), "{body}");
    let (status, body) = form(
        &format!("{}/t/pg/token", api(0)),
        None,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", rotated["refresh_token"].as_str().unwrap()),
            ("client_id", "demo-spa"),
        ],
    )
    .await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_grant")), "{body}");

    // A key rotation through member 3: every member serves the same JWKS at once after it
    // is acknowledged there, and signs with the new key.
    let (status, body) = admin_call(&token, &api(2), Method::POST, "/v1/admin/tenants/pg/keys/rotate", None).await;
    assert_eq!(status, 200, "{body}");
    let mut bodies = Vec::new();
    for i in 0..3 {
        let api = api(i);
        let start = Instant::now();
        let jwks = loop {
            let body: Value = reqwest::get(format!("{api}/t/pg/jwks.json"))
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            if body["keys"].as_array().is_some_and(|k| k.len() >= 2) {
                break body;
            }
            assert!(
                start.elapsed() < Duration::from_secs(5),
                "the rotated key on member {}",
                i + 1
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        bodies.push(jwks);
    }
    assert!(bodies.iter().all(|b| *b == bodies[0]), "one JWKS: {bodies:?}");
    for i in 0..3 {
        let (status, issued) = form(
            &format!("{}/t/pg/token", api(i)),
            Some(("backend", &secret)),
            &[("grant_type", "client_credentials")],
        )
        .await;
        assert_eq!(status, 200, "{issued}");
        let kid = kid_of(issued["access_token"].as_str().unwrap());
        assert!(
            bodies[0]["keys"]
                .as_array()
                .unwrap()
                .iter()
                .any(|k| k["kid"] == kid.as_str()),
            "member {} signs with a published key",
            i + 1
        );
        let (status, body) = form(
            &format!("{}/t/pg/introspect", api((i + 1) % 3)),
            Some(("backend", &secret)),
            &[("token", issued["access_token"].as_str().unwrap())],
        )
        .await;
        assert_eq!((status, &body["active"]), (200, &json!(true)), "{body}");
    }
    drop(nodes);
    drop_postgres(&pg, &db_name).await;
}

/// A TCP relay in front of one member's cluster listener that can refuse, and cut, the
/// connections of chosen source addresses (each member calls from its own loopback address).
struct Relay {
    addr: std::net::SocketAddr,
    blocked: std::sync::Arc<std::sync::Mutex<std::collections::HashSet<std::net::IpAddr>>>,
    open: std::sync::Arc<std::sync::Mutex<Vec<(std::net::IpAddr, tokio::task::AbortHandle)>>>,
}

impl Relay {
    async fn start(target: std::net::SocketAddr) -> Relay {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let relay = Relay {
            addr: listener.local_addr().unwrap(),
            blocked: Default::default(),
            open: Default::default(),
        };
        let (blocked, open) = (relay.blocked.clone(), relay.open.clone());
        tokio::spawn(async move {
            while let Ok((mut inbound, peer)) = listener.accept().await {
                if blocked.lock().unwrap().contains(&peer.ip()) {
                    continue;
                }
                let task = tokio::spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                open.lock().unwrap().push((peer.ip(), task.abort_handle()));
            }
        });
        relay
    }

    /// Refuses new connections from `sources` and cuts theirs that are open.
    fn block(&self, sources: &[std::net::IpAddr]) {
        self.blocked.lock().unwrap().extend(sources);
        for (ip, task) in self.open.lock().unwrap().iter() {
            if sources.contains(ip) {
                task.abort();
            }
        }
    }

    fn heal(&self) {
        self.blocked.lock().unwrap().clear();
    }
}

/// Member `i`'s own loopback address: its listener and the source of its calls.
fn member_ip(i: usize) -> std::net::IpAddr {
    std::net::IpAddr::from([127, 0, 0, 11 + i as u8])
}

/// Cuts member `cut` off from the others (both ways), through the relays.
fn isolate(relays: &[Relay], cut: usize) {
    let others: Vec<_> = (0..relays.len()).filter(|i| *i != cut).map(member_ip).collect();
    relays[cut].block(&others);
    for (i, relay) in relays.iter().enumerate() {
        if i != cut {
            relay.block(&[member_ip(cut)]);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partitioned_leader_acknowledges_nothing_and_a_cut_off_follower_still_serves_tokens() {
    let Some(redis) = tenantry_testkit::configured(tenantry_testkit::Service::Redis) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mut relays = Vec::new();
    let mut addresses = Vec::new();
    for i in 0..3 {
        let listen = std::net::SocketAddr::new(member_ip(i), free_port());
        let relay = Relay::start(listen).await;
        addresses.push((listen, format!("http://{}", relay.addr)));
        relays.push(relay);
    }
    let (nodes, token) = three_members_at(
        dir.path(),
        &redis,
        &[("TENANTRY_CLUSTER_SNAPSHOT_EVERY", "20")],
        addresses,
    )
    .await;
    let (status, body) = admin_call(
        &token,
        &nodes[1].api(),
        Method::POST,
        "/v1/admin/tenants",
        Some(json!({"slug": "served", "settings": {"user_db": null}})),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let backend =
        json!({"client_id": "backend", "name": "Backend", "grant_types": ["client_credentials"], "scopes": ["api"]});
    let (status, made) = admin_call(
        &token,
        &nodes[2].api(),
        Method::POST,
        "/v1/admin/tenants/served/clients",
        Some(backend),
    )
    .await;
    assert_eq!(status, 201, "{made}");
    let secret = made["client_secret"].as_str().unwrap().to_owned();

    // The leader is cut off: it acknowledges no write from then on.
    let leader = nodes[0].status().await.unwrap()["leader_id"].as_u64().unwrap() as usize - 1;
    isolate(&relays, leader);
    let (status, body) = admin_call(
        &token,
        &nodes[leader].api(),
        Method::POST,
        "/v1/admin/tenants",
        Some(json!({"slug": "on-the-old-leader", "settings": {"user_db": null}})),
    )
    .await;
    assert_eq!(status, 503, "an isolated leader commits nothing: {body}");
    // The majority elects a new leader and takes writes.
    let majority: Vec<usize> = (0..3).filter(|i| *i != leader).collect();
    let first = &nodes[majority[0]];
    eventually(Duration::from_secs(15), "a new leader in the majority", || async move {
        first
            .status()
            .await
            .is_some_and(|s| s["leader_id"].as_u64().is_some_and(|l| l as usize - 1 != leader))
    })
    .await;
    let (status, body) = admin_call(
        &token,
        &nodes[majority[1]].api(),
        Method::POST,
        "/v1/admin/tenants",
        Some(json!({"slug": "on-the-majority", "settings": {"user_db": null}})),
    )
    .await;
    assert_eq!(status, 201, "{body}");

    // Healed: the old leader follows, drops what it never committed, and matches.
    for relay in &relays {
        relay.heal();
    }
    let target = first.status().await.unwrap()["applied_index"].as_u64().unwrap();
    let old = &nodes[leader];
    eventually(Duration::from_secs(20), "the old leader to catch up", || async move {
        old.status()
            .await
            .is_some_and(|s| s["applied_index"].as_u64().is_some_and(|a| a >= target) && s["role"] != "leader")
    })
    .await;
    let (status, _) = admin_call(
        &token,
        &old.api(),
        Method::GET,
        "/v1/admin/tenants/on-the-old-leader",
        None,
    )
    .await;
    assert_eq!(status, 404, "the uncommitted write is gone");
    let reference = tree_of(&nodes[majority[0]].fs_root);
    assert_eq!(tree_of(&old.fs_root), reference, "the old leader's tree matches");

    // A follower cut off from the leader reports `degraded` and still serves discovery,
    // JWKS, authorize and tokens.
    let leader = first.status().await.unwrap()["leader_id"].as_u64().unwrap() as usize - 1;
    let follower = (0..3).find(|i| *i != leader).unwrap();
    isolate(&relays, follower);
    let api = nodes[follower].api();
    eventually(
        Duration::from_secs(15),
        "the cut-off follower to report degraded",
        || {
            let api = api.clone();
            async move {
                let body: Value = reqwest::get(format!("{api}/readyz"))
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                body["status"] == "degraded" && body["components"]["cluster"]["status"] == "degraded"
            }
        },
    )
    .await;
    for path in ["/t/served/.well-known/openid-configuration", "/t/served/jwks.json"] {
        let response = reqwest::get(format!("{api}{path}")).await.unwrap();
        assert_eq!(response.status(), 200, "{path}");
    }
    let (status, issued) = form(
        &format!("{api}/t/served/token"),
        Some(("backend", &secret)),
        &[("grant_type", "client_credentials")],
    )
    .await;
    assert_eq!(status, 200, "{issued}");
    let authorize = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(format!(
            "{api}/t/served/authorize?response_type=code&client_id=backend&redirect_uri=https%3A%2F%2Fapp.example%2Fcb"
        ))
        .send()
        .await
        .unwrap();
    assert!(
        authorize.status().as_u16() < 500,
        "authorize answers: {}",
        authorize.status()
    );
    // Writes there wait for a leader and then say so.
    let (status, body) = admin_call(
        &token,
        &api,
        Method::POST,
        "/v1/admin/tenants",
        Some(json!({"slug": "while-cut-off", "settings": {"user_db": null}})),
    )
    .await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["code"], "no_leader", "{body}");

    // Meanwhile the majority rotates the tenant's keys and the client's secret, and writes
    // past a snapshot and a purge: the cut-off member must install a snapshot, and every
    // cache it keeps (opened key rings, JWKS bodies, client secrets) must follow at once.
    let leader_api = nodes[leader].api();
    let (status, body) = admin_call(
        &token,
        &leader_api,
        Method::POST,
        "/v1/admin/tenants/served/keys/rotate",
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, rotated) = admin_call(
        &token,
        &leader_api,
        Method::POST,
        "/v1/admin/tenants/served/clients/backend/secret",
        Some(json!({"overlap_secs": 0})),
    )
    .await;
    assert_eq!(status, 200, "{rotated}");
    let new_secret = rotated["client_secret"].as_str().unwrap().to_owned();
    for i in 0..60 {
        let (status, body) = admin_call(
            &token,
            &leader_api,
            Method::POST,
            "/v1/admin/tenants",
            Some(json!({"slug": format!("during-{i}"), "settings": {"user_db": null}})),
        )
        .await;
        assert_eq!(status, 201, "{body}");
    }
    let leader_status = nodes[leader].status().await.unwrap();
    let follower_applied = nodes[follower].status().await.unwrap()["applied_index"]
        .as_u64()
        .unwrap();
    assert!(
        leader_status["purged_index"].as_u64().unwrap() > follower_applied,
        "the cut-off member's next entries are purged: {leader_status}"
    );
    for relay in &relays {
        relay.heal();
    }
    let target = leader_status["applied_index"].as_u64().unwrap();
    let cut_off = &nodes[follower];
    eventually(
        Duration::from_secs(30),
        "the cut-off member to install a snapshot",
        || async move {
            cut_off
                .status()
                .await
                .is_some_and(|s| s["applied_index"].as_u64().is_some_and(|a| a >= target))
        },
    )
    .await;
    let jwks = |api: String| async move {
        reqwest::get(format!("{api}/t/served/jwks.json"))
            .await
            .unwrap()
            .json::<Value>()
            .await
            .unwrap()
    };
    assert_eq!(
        jwks(api.clone()).await,
        jwks(leader_api.clone()).await,
        "the rotated JWKS at once"
    );
    let (status, body) = form(
        &format!("{api}/t/served/token"),
        Some(("backend", &secret)),
        &[("grant_type", "client_credentials")],
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("invalid_client")),
        "the old secret: {body}"
    );
    let (status, issued) = form(
        &format!("{api}/t/served/token"),
        Some(("backend", &new_secret)),
        &[("grant_type", "client_credentials")],
    )
    .await;
    assert_eq!(status, 200, "the new secret: {issued}");
    let kid = kid_of(issued["access_token"].as_str().unwrap());
    let leader_jwks = jwks(leader_api).await;
    assert!(
        leader_jwks["keys"]
            .as_array()
            .unwrap()
            .iter()
            .any(|k| k["kid"] == kid.as_str())
    );
    assert_eq!(tree_of(&cut_off.fs_root), tree_of(&nodes[leader].fs_root));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dev_cluster_starts_members_with_a_postgres_tenant_and_stops_them_on_ctrl_c() {
    let Some(redis) = tenantry_testkit::configured(tenantry_testkit::Service::Redis) else {
        return;
    };
    let Some(pg) = tenantry_testkit::configured(tenantry_testkit::Service::Postgres) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    // A random base well away from ephemeral ports; its +0..2 and +100..102 must be free.
    let base: u16 = 20_000 + (rand::random::<u16>() % 10_000);
    let mut child = tenantry(dir.path())
        .args(["dev", "cluster", "--nodes", "3", "--base-port", &base.to_string()])
        .env("TENANTRY_DEV_POSTGRES_URL", &pg)
        .env("TENANTRY_DEV_REDIS_URL", &redis)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let lines = tokio::task::spawn_blocking(move || {
        use std::io::BufRead;
        let mut lines = Vec::new();
        for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
            let done = line.starts_with("Ctrl-C stops");
            lines.push(line);
            if done {
                break;
            }
        }
        lines
    });
    let lines = tokio::time::timeout(Duration::from_secs(120), lines)
        .await
        .unwrap()
        .unwrap();
    let text = lines.join("\n");
    assert!(
        text.contains(&format!("member 3: http://127.0.0.1:{}", base + 2)),
        "{text}"
    );
    let issuer = format!("http://127.0.0.1:{base}/t/local");
    assert!(text.contains(&issuer), "{text}");
    assert!(text.contains("demo user"), "{text}");
    // Every member serves the tenant, whose users are in PostgreSQL.
    for port in base..base + 3 {
        let body: Value = reqwest::get(format!(
            "http://127.0.0.1:{port}/t/local/.well-known/openid-configuration"
        ))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
        assert_eq!(body["issuer"], issuer.as_str());
    }
    std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        assert!(start.elapsed() < Duration::from_secs(30), "dev cluster stops on Ctrl-C");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for port in base..base + 3 {
        assert!(
            std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
            "member on {port} stopped"
        );
    }
    use sqlx::Connection;
    if let Ok(mut admin) = sqlx::PgConnection::connect(&pg).await {
        let _ = sqlx::query("DROP DATABASE IF EXISTS tenantry_dev_cluster WITH (FORCE)")
            .execute(&mut admin)
            .await;
    }
}
