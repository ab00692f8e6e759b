//! `tenantry dev cluster`: a local cluster for a newcomer — N members of this binary on
//! loopback ports sharing one control plane through Raft, with a tenant `local` whose users
//! live in PostgreSQL (a database `tenantry_dev_cluster`, created when missing). Ctrl-C
//! stops every member. Development only: the master key and cluster secret are generated
//! into `<dir>/dev-cluster.json`.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, bail};
use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::process::{Child, Command};

#[derive(clap::Args)]
pub struct DevCluster {
    /// How many members (1 to 7).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u16).range(1..=7))]
    nodes: u16,
    /// Where the members' FS_ROOTs (`node1`, `node2`, …) and logs live.
    #[arg(long, value_name = "DIR", default_value = "./data-cluster")]
    dir: PathBuf,
    /// API port of the first member; member i listens on base + i - 1, and its cluster
    /// listener on base + 100 + i - 1.
    #[arg(long, value_name = "PORT", default_value_t = 8081)]
    base_port: u16,
    /// PostgreSQL server for the tenant's users (any database on it; the cluster's own is
    /// created beside it).
    #[arg(
        long,
        env = "TENANTRY_DEV_POSTGRES_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/postgres"
    )]
    postgres_url: String,
    /// Redis, which cluster mode needs for shared attempt counters.
    #[arg(long, env = "TENANTRY_DEV_REDIS_URL", default_value = "redis://127.0.0.1:6379")]
    redis_url: String,
}

#[derive(Serialize, Deserialize)]
struct DevSecrets {
    master_key: String,
    cluster_secret: String,
}

const TENANT_DB: &str = "tenantry_dev_cluster";

struct Member {
    id: u16,
    api: String,
    cluster: String,
    fs_root: PathBuf,
    child: Child,
}

pub async fn cluster(args: DevCluster) -> anyhow::Result<()> {
    std::fs::create_dir_all(&args.dir).with_context(|| format!("creating {}", args.dir.display()))?;
    let secrets = dev_secrets(&args.dir)?;
    let public_url = format!("http://127.0.0.1:{}", args.base_port);
    let first_run = !tenantry_cluster::fs_root_is_clustered(&args.dir.join("node1"));
    let mut members = Vec::new();
    for id in 1..=args.nodes {
        let member = spawn(&args, id, &secrets, &public_url, first_run && id == 1)
            .with_context(|| format!("starting member {id}"))?;
        members.push(member);
    }
    let result = form_and_serve(&args, &mut members, &secrets, first_run, &public_url).await;
    for member in &mut members {
        stop(&mut member.child).await;
    }
    result
}

async fn form_and_serve(
    args: &DevCluster,
    members: &mut [Member],
    secrets: &DevSecrets,
    first_run: bool,
    public_url: &str,
) -> anyhow::Result<()> {
    let http = reqwest::Client::builder().timeout(Duration::from_secs(180)).build()?;
    for member in members.iter_mut() {
        wait_healthy(&http, member, &args.dir).await?;
    }
    let cluster_call = |member: &Member, path: &str, body: Value| {
        http.post(format!("{}{path}", member.cluster))
            .bearer_auth(&secrets.cluster_secret)
            .json(&body)
    };
    if first_run {
        let answer = cluster_call(&members[0], "/cluster/init", json!({})).send().await?;
        ensure_ok(answer, "cluster init").await?;
        let via = members[0].cluster.clone();
        for member in members.iter().skip(1) {
            let answer = cluster_call(member, "/cluster/join", json!({"via": via}))
                .send()
                .await?;
            ensure_ok(answer, &format!("member {} joining", member.id)).await?;
        }
    }
    let token = std::fs::read_to_string(members[0].fs_root.join("dev-admin-token"))
        .context("reading the first member's dev-admin-token")?;
    let demo = ensure_tenant(&http, &members[0].api, token.trim(), &args.postgres_url).await?;

    println!("Tenantry dev cluster: {} members", members.len());
    for member in members.iter() {
        println!(
            "  member {}: {} (cluster listener {}; FS_ROOT {})",
            member.id,
            member.api,
            member.cluster,
            member.fs_root.display()
        );
    }
    println!("  issuer of tenant `local`: {public_url}/t/local (users in PostgreSQL database {TENANT_DB})");
    println!(
        "  admin token: in {}",
        members[0].fs_root.join("dev-admin-token").display()
    );
    println!("  demo public client: demo-spa (authorization code + PKCE S256)");
    if let Some((email, password)) = demo {
        println!("  demo user (password shown once): {email} / {password}");
    }
    println!(
        "  status: TENANTRY_CLUSTER_SECRET={} tenantry cluster status --node {}",
        secrets.cluster_secret, members[0].cluster
    );
    println!("Ctrl-C stops every member.");

    let mut exits: Vec<_> = members.iter_mut().map(|m| Box::pin(m.child.wait())).collect();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => Ok(()),
        (exit, index, _) = futures_util::future::select_all(exits.iter_mut()) => {
            bail!("member {} stopped ({:?}); see {}", index + 1, exit, args.dir.join(format!("node{}.log", index + 1)).display())
        }
    }
}

fn dev_secrets(dir: &Path) -> anyhow::Result<DevSecrets> {
    let path = dir.join("dev-cluster.json");
    if let Ok(bytes) = std::fs::read(&path) {
        return serde_json::from_slice(&bytes).with_context(|| format!("reading {}", path.display()));
    }
    let b64 = |bytes: &[u8]| base64::engine::general_purpose::STANDARD.encode(bytes);
    let secrets = DevSecrets {
        master_key: b64(tenantry_crypto::random_key::<32>().as_slice()),
        cluster_secret: b64(tenantry_crypto::random_key::<32>().as_slice()),
    };
    tenantry_crypto::files::write_private(&path, &serde_json::to_vec_pretty(&secrets)?)
        .with_context(|| format!("writing {}", path.display()))?;
    eprintln!(
        "warning: development master key and cluster secret generated into {} — never use them in production",
        path.display()
    );
    Ok(secrets)
}

fn spawn(args: &DevCluster, id: u16, secrets: &DevSecrets, public_url: &str, dev: bool) -> anyhow::Result<Member> {
    let api_port = args.base_port + id - 1;
    let cluster_port = args.base_port + 100 + id - 1;
    let fs_root = args.dir.join(format!("node{id}"));
    let log = std::fs::File::create(args.dir.join(format!("node{id}.log")))?;
    let mut cmd = Command::new(std::env::current_exe()?);
    cmd.args(["serve", "--listen", &format!("127.0.0.1:{api_port}"), "--fs-root"])
        .arg(&fs_root);
    if dev {
        cmd.arg("--dev");
    }
    cmd.env("SECRETBOX_MASTER_KEY", &secrets.master_key)
        .env("TENANTRY_CLUSTER_SECRET", &secrets.cluster_secret)
        .env("TENANTRY_CLUSTER_NODE_ID", id.to_string())
        .env("TENANTRY_CLUSTER_LISTEN", format!("127.0.0.1:{cluster_port}"))
        .env("TENANTRY_PUBLIC_URL", public_url)
        .env("TENANTRY_REDIS_URL", &args.redis_url)
        // The default tenant would be created on SQLite, which members cannot share.
        .env("TENANTRY_DEFAULT_TENANT", "none")
        .stdout(Stdio::null())
        .stderr(Stdio::from(log))
        .kill_on_drop(true);
    let child = cmd.spawn()?;
    Ok(Member {
        id,
        api: format!("http://127.0.0.1:{api_port}"),
        cluster: format!("http://127.0.0.1:{cluster_port}"),
        fs_root,
        child,
    })
}

async fn wait_healthy(http: &reqwest::Client, member: &mut Member, dir: &Path) -> anyhow::Result<()> {
    for _ in 0..300 {
        if let Some(exit) = member.child.try_wait()? {
            bail!(
                "member {} exited ({exit}); see {}",
                member.id,
                dir.join(format!("node{}.log", member.id)).display()
            );
        }
        let healthy = http
            .get(format!("{}/healthz", member.api))
            .timeout(Duration::from_millis(500))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success());
        if healthy {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!("member {} did not answer /healthz within 30 s", member.id)
}

async fn ensure_ok(response: reqwest::Response, what: &str) -> anyhow::Result<Value> {
    let status = response.status();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    if !status.is_success() {
        bail!("{what}: {status} {body}");
    }
    Ok(body)
}

/// Creates tenant `local` (users in PostgreSQL), its demo client and demo user on the first
/// run; answers the demo user's one-time credentials then.
async fn ensure_tenant(
    http: &reqwest::Client,
    api: &str,
    token: &str,
    postgres_url: &str,
) -> anyhow::Result<Option<(String, String)>> {
    let exists = http
        .get(format!("{api}/v1/admin/tenants/local"))
        .bearer_auth(token)
        .send()
        .await?
        .status()
        .is_success();
    if exists {
        return Ok(None);
    }
    let dsn = tenant_database(postgres_url).await?;
    let admin = |method: reqwest::Method, path: &str, body: Value| {
        http.request(method, format!("{api}{path}"))
            .bearer_auth(token)
            .json(&body)
    };
    let tenant = json!({"slug": "local", "display_name": "Local (cluster)",
        "settings": {"user_db": {"driver": "postgres", "dsn": dsn}}});
    ensure_ok(
        admin(reqwest::Method::POST, "/v1/admin/tenants", tenant).send().await?,
        "creating tenant local",
    )
    .await?;
    let client = json!({"client_id": "demo-spa", "name": "Demo SPA", "client_type": "public", "first_party": true,
        "grant_types": ["authorization_code", "refresh_token"],
        "redirect_uris": ["http://localhost:3000/callback"],
        "scopes": ["openid", "profile", "email", "offline_access"]});
    ensure_ok(
        admin(reqwest::Method::POST, "/v1/admin/tenants/local/clients", client)
            .send()
            .await?,
        "creating the demo client",
    )
    .await?;
    let password = tenantry_crypto::random_token(18);
    let email = "demo@example.com".to_owned();
    let user = json!({"email": email, "password": password, "email_verified": true});
    ensure_ok(
        admin(reqwest::Method::POST, "/v1/admin/tenants/local/users", user)
            .send()
            .await?,
        "creating the demo user",
    )
    .await?;
    Ok(Some((email, password)))
}

/// The DSN of the cluster's tenant database on the server of `postgres_url`, created there
/// when missing.
async fn tenant_database(postgres_url: &str) -> anyhow::Result<String> {
    use sqlx::Connection;
    let mut url = url::Url::parse(postgres_url).context("--postgres-url is not a URL")?;
    let mut conn = sqlx::PgConnection::connect(postgres_url)
        .await
        .with_context(|| format!("connecting to PostgreSQL at {}", url.host_str().unwrap_or("?")))?;
    let exists: Option<i32> = sqlx::query_scalar("SELECT 1 FROM pg_database WHERE datname = $1")
        .bind(TENANT_DB)
        .fetch_optional(&mut conn)
        .await?;
    // A fresh cluster (this function runs only while tenant `local` does not exist) cannot
    // use a database stamped for an earlier one: development data, started over.
    if exists.is_some() {
        eprintln!("note: dropping the database {TENANT_DB} of an earlier dev cluster");
        sqlx::query(sqlx::AssertSqlSafe(format!("DROP DATABASE {TENANT_DB} WITH (FORCE)")))
            .execute(&mut conn)
            .await
            .context("dropping the earlier dev cluster's tenant database")?;
    }
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {TENANT_DB}")))
        .execute(&mut conn)
        .await
        .context("creating the tenant database")?;
    url.set_path(&format!("/{TENANT_DB}"));
    Ok(url.to_string())
}

/// SIGTERM, a few seconds to drain, then SIGKILL.
async fn stop(child: &mut Child) {
    if let Some(pid) = child.id() {
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status();
        if tokio::time::timeout(Duration::from_secs(10), child.wait())
            .await
            .is_ok()
        {
            return;
        }
    }
    let _ = child.kill().await;
}
