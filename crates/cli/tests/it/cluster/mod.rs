//! Cluster mode with real processes: three members of the `tenantry` binary on loopback
//! ports, joined with `tenantry cluster init|join`. `replication`: writes through any
//! member, the leader killed under a stream of writes, snapshot catch-up, identical trees,
//! tokens across members. `partition`: members cut apart through TCP relays. `dev`:
//! `tenantry dev cluster`. `failover`: the leader killed again and again under writes.
//! `tls`: members under mutual TLS. This module holds what they share. Cluster mode needs
//! Redis (shared attempt counters): the suites run when `TENANTRY_TEST_REDIS_URL` is set.

mod dev;
mod failover;
mod partition;
mod replication;
mod tls;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::Value;

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
    /// For calls to the cluster listener (with this member's certificate under TLS).
    http: reqwest::Client,
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
        let setting = |name: &str| env.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
        let mut http = reqwest::Client::builder().timeout(Duration::from_secs(2));
        let scheme = match (
            setting("TENANTRY_CLUSTER_TLS_CERT"),
            setting("TENANTRY_CLUSTER_TLS_KEY"),
            setting("TENANTRY_CLUSTER_TLS_CA"),
        ) {
            (Some(cert), Some(key), Some(ca)) => {
                let tls = tenantry_cluster::MutualTls::load(cert.as_ref(), key.as_ref(), ca.as_ref()).unwrap();
                http = http.tls_backend_preconfigured(tls.client);
                "https"
            }
            _ => "http",
        };
        Node {
            id,
            fs_root: dir.join(format!("node{id}")),
            api_port,
            cluster_url,
            direct_url: format!("{scheme}://{listen}"),
            env,
            server: None,
            http: http.build().unwrap(),
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
        let response = self
            .http
            .get(format!("{}/cluster/status", self.direct_url))
            .bearer_auth(SECRET)
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

/// Asserts that every member's replicated tree is byte-identical to the first one's.
fn assert_same_trees(nodes: &[Node]) {
    let reference = tree_of(&nodes[0].fs_root);
    for node in &nodes[1..] {
        let tree = tree_of(&node.fs_root);
        let differing: Vec<_> = reference
            .keys()
            .chain(tree.keys())
            .filter(|k| reference.get(*k) != tree.get(*k))
            .collect();
        assert!(
            differing.is_empty(),
            "node {} differs from node {} in {differing:?}",
            node.id,
            nodes[0].id
        );
    }
}

/// Waits until every running member has applied what the leader had committed when asked.
async fn all_caught_up(nodes: &[Node]) {
    let start = Instant::now();
    let target = 'found: loop {
        for node in nodes.iter().filter(|n| n.server.is_some()) {
            if let Some(s) = node.status().await
                && s["role"] == "leader"
                && let Some(committed) = s["committed_index"].as_u64()
            {
                break 'found committed;
            }
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "timed out waiting for a leader"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    for node in nodes.iter().filter(|n| n.server.is_some()) {
        eventually(
            Duration::from_secs(30),
            "every member to apply the commit index",
            || async move {
                node.status()
                    .await
                    .is_some_and(|s| s["applied_index"].as_u64().is_some_and(|a| a >= target))
            },
        )
        .await;
    }
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

/// Creates tenant `slug` with no user database through the member at `api`.
async fn create_tenant(token: &str, api: &str, slug: &str) -> (u16, Value) {
    admin_call(
        token,
        api,
        Method::POST,
        "/v1/admin/tenants",
        Some(serde_json::json!({"slug": slug, "settings": {"user_db": null}})),
    )
    .await
}

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
