//! Failover measured on a real three-member cluster of the release binary on loopback:
//! the leader is SIGKILLed `KILLS` times (default 20) while clients keep writing; for each
//! kill, the time until a write is acknowledged again; token requests (client_credentials)
//! run against the surviving members the whole time and their errors are counted; before
//! the kills, control-plane write latency through the leader and through a follower.
//!
//! `cargo build --release && cargo run --release -p tenantry-cli --example cluster_failover [-- KILLS]`
//! (env `TENANTRY_BIN`, default `target/release/tenantry` under `CARGO_TARGET_DIR`;
//! `TENANTRY_BENCH_REDIS`, default `redis://127.0.0.1:6379`). With `TENANTRY_CLUSTER_TLS_CERT`,
//! `_KEY` and `_CA` set (docs/cluster.md shows how to make them), members talk mutual TLS
//! and this program presents the same certificate to their cluster listeners.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

const SECRET: &str = "bench-cluster-secret-0123456789abcdef";
const KEY: &str = "ERERERERERERERERERERERERERERERERERERERERERE=";

struct Member {
    api: String,
    cluster: String,
    fs_root: PathBuf,
    env: Vec<(String, String)>,
    child: Option<Child>,
}

fn free_port() -> u16 {
    loop {
        let port = 10_000 + rand::random::<u16>() % 10_000;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

impl Member {
    fn start(&mut self, bin: &Path, dev: bool) {
        let mut cmd = Command::new(bin);
        cmd.args(["serve", "--listen", self.api.trim_start_matches("http://"), "--fs-root"])
            .arg(&self.fs_root);
        if dev {
            cmd.arg("--dev");
        }
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        cmd.env("RUST_LOG", "warn").stdout(Stdio::null()).stderr(Stdio::null());
        self.child = Some(cmd.spawn().expect("the tenantry binary starts"));
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

async fn status(http: &reqwest::Client, member: &Member) -> Option<Value> {
    http.get(format!("{}/cluster/status", member.cluster))
        .bearer_auth(SECRET)
        .timeout(Duration::from_millis(500))
        .send()
        .await
        .ok()?
        .json()
        .await
        .ok()
}

async fn wait_for(what: &str, limit: Duration, mut check: impl AsyncFnMut() -> bool) {
    let start = Instant::now();
    while !check().await {
        assert!(start.elapsed() < limit, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn post(http: &reqwest::Client, url: &str, token: &str, body: Value) -> u16 {
    match http
        .post(url)
        .bearer_auth(token)
        .json(&body)
        .timeout(Duration::from_secs(10))
        .send()
        .await
    {
        Ok(r) => r.status().as_u16(),
        Err(_) => 0,
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn summary(name: &str, mut samples: Vec<Duration>) {
    samples.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "{name}: n={} min {:.1} ms, p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        samples.len(),
        ms(samples[0]),
        ms(percentile(&samples, 0.5)),
        ms(percentile(&samples, 0.9)),
        ms(percentile(&samples, 0.99)),
        ms(*samples.last().unwrap())
    );
}

#[tokio::main]
async fn main() {
    let kills: usize = std::env::args().nth(1).and_then(|n| n.parse().ok()).unwrap_or(20);
    let bin = std::env::var_os("TENANTRY_BIN").map(PathBuf::from).unwrap_or_else(|| {
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or("target".into());
        target.join("release/tenantry")
    });
    let redis = std::env::var("TENANTRY_BENCH_REDIS").unwrap_or("redis://127.0.0.1:6379".into());
    let dir = tempfile::tempdir().unwrap();
    let api_ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let public = format!("http://127.0.0.1:{}", api_ports[0]);
    let tls = match (
        std::env::var("TENANTRY_CLUSTER_TLS_CERT"),
        std::env::var("TENANTRY_CLUSTER_TLS_KEY"),
        std::env::var("TENANTRY_CLUSTER_TLS_CA"),
    ) {
        (Ok(cert), Ok(key), Ok(ca)) => {
            Some(tenantry_cluster::MutualTls::load(cert.as_ref(), key.as_ref(), ca.as_ref()).expect("the TLS files"))
        }
        _ => None,
    };
    let scheme = if tls.is_some() { "https" } else { "http" };
    println!("cluster listeners: {scheme}");
    let mut members: Vec<Member> = (0..3)
        .map(|i| {
            let cluster_port = free_port();
            Member {
                api: format!("http://127.0.0.1:{}", api_ports[i]),
                cluster: format!("{scheme}://127.0.0.1:{cluster_port}"),
                fs_root: dir.path().join(format!("node{}", i + 1)),
                env: vec![
                    ("SECRETBOX_MASTER_KEY".into(), KEY.into()),
                    ("TENANTRY_CLUSTER_NODE_ID".into(), (i + 1).to_string()),
                    ("TENANTRY_CLUSTER_LISTEN".into(), format!("127.0.0.1:{cluster_port}")),
                    ("TENANTRY_CLUSTER_SECRET".into(), SECRET.into()),
                    ("TENANTRY_PUBLIC_URL".into(), public.clone()),
                    ("TENANTRY_REDIS_URL".into(), redis.clone()),
                    ("TENANTRY_DEFAULT_TENANT".into(), "none".into()),
                ],
                child: None,
            }
        })
        .collect();
    // Plain HTTP to the APIs; the member certificate for the cluster listeners under TLS.
    let mut http = reqwest::Client::builder();
    if let Some(tls) = &tls {
        http = http.tls_backend_preconfigured(tls.client.clone());
    }
    let http = http.build().unwrap();
    members[0].start(&bin, true);
    let healthy = async |m: &Member| {
        reqwest::get(format!("{}/healthz", m.api))
            .await
            .is_ok_and(|r| r.status().is_success())
    };
    wait_for("member 1", Duration::from_secs(30), async || healthy(&members[0]).await).await;
    let token = std::fs::read_to_string(members[0].fs_root.join("dev-admin-token"))
        .unwrap()
        .trim()
        .to_owned();
    let init = http
        .post(format!("{}/cluster/init", members[0].cluster))
        .bearer_auth(SECRET)
        .send()
        .await
        .unwrap();
    assert!(init.status().is_success());
    for i in 1..3 {
        members[i].start(&bin, false);
        wait_for("member up", Duration::from_secs(30), async || {
            healthy(&members[i]).await
        })
        .await;
        let joined = http
            .post(format!("{}/cluster/join", members[i].cluster))
            .bearer_auth(SECRET)
            .json(&json!({"via": members[0].cluster}))
            .send()
            .await
            .unwrap();
        assert!(joined.status().is_success(), "join: {}", joined.text().await.unwrap());
    }
    let tenants_url = |m: &Member| format!("{}/v1/admin/tenants", m.api);
    assert_eq!(
        post(
            &http,
            &tenants_url(&members[0]),
            &token,
            json!({"slug": "bench", "settings": {"user_db": null}})
        )
        .await,
        201
    );
    let made: Value = http
        .post(format!("{}/v1/admin/tenants/bench/clients", members[0].api))
        .bearer_auth(&token)
        .json(&json!({"client_id": "backend", "name": "Backend", "grant_types": ["client_credentials"], "scopes": ["api"]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let secret = made["client_secret"].as_str().unwrap().to_owned();

    // Write latency, one writer: a tenant's display name changed (a small command; creating
    // a tenant would time its key generation), through the leader, through a follower, and
    // on a standalone node of the same binary (the floor: the same write without Raft).
    let mut standalone = Member {
        api: format!("http://127.0.0.1:{}", free_port()),
        cluster: String::new(),
        fs_root: dir.path().join("standalone"),
        env: vec![
            ("SECRETBOX_MASTER_KEY".into(), KEY.into()),
            ("TENANTRY_DEFAULT_TENANT".into(), "none".into()),
        ],
        child: None,
    };
    standalone.start(&bin, true);
    wait_for("the standalone node", Duration::from_secs(30), async || {
        healthy(&standalone).await
    })
    .await;
    let standalone_token = std::fs::read_to_string(standalone.fs_root.join("dev-admin-token"))
        .unwrap()
        .trim()
        .to_owned();
    let bench = json!({"slug": "bench", "settings": {"user_db": null}});
    assert_eq!(
        post(&http, &tenants_url(&standalone), &standalone_token, bench).await,
        201
    );
    let leader = status(&http, &members[0]).await.unwrap()["leader_id"].as_u64().unwrap() as usize - 1;
    let follower = (leader + 1) % 3;
    let mut serial = 0;
    for (name, api, token) in [
        (
            "write latency, standalone (floor)",
            standalone.api.clone(),
            standalone_token.clone(),
        ),
        (
            "write latency via the leader",
            members[leader].api.clone(),
            token.clone(),
        ),
        (
            "write latency via a follower",
            members[follower].api.clone(),
            token.clone(),
        ),
    ] {
        let mut samples = Vec::new();
        for _ in 0..300 {
            serial += 1;
            let started = Instant::now();
            let code = http
                .patch(format!("{api}/v1/admin/tenants/bench"))
                .bearer_auth(&token)
                .json(&json!({"display_name": format!("Bench {serial}")}))
                .send()
                .await
                .unwrap()
                .status();
            assert!(code.is_success(), "{code}");
            samples.push(started.elapsed());
        }
        summary(name, samples);
    }
    standalone.kill();

    // Token traffic against the surviving members, all through the kills.
    let targets: Arc<Mutex<Vec<String>>> = Arc::new(Mutex::new(members.iter().map(|m| m.api.clone()).collect()));
    let (sent, failed, stop) = (
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicBool::new(false)),
    );
    let mut load = Vec::new();
    for worker in 0..4 {
        let (targets, sent, failed, stop, secret) = (
            targets.clone(),
            sent.clone(),
            failed.clone(),
            stop.clone(),
            secret.clone(),
        );
        load.push(tokio::spawn(async move {
            let http = reqwest::Client::new();
            let mut n = worker;
            while !stop.load(Ordering::Relaxed) {
                let target = {
                    let t = targets.lock().unwrap();
                    t[n % t.len()].clone()
                };
                n += 1;
                let ok = http
                    .post(format!("{target}/t/bench/token"))
                    .basic_auth("backend", Some(&secret))
                    .form(&[("grant_type", "client_credentials")])
                    .timeout(Duration::from_secs(5))
                    .send()
                    .await
                    .is_ok_and(|r| r.status().is_success());
                sent.fetch_add(1, Ordering::Relaxed);
                if !ok {
                    failed.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }

    let mut failovers = Vec::new();
    for _ in 0..kills {
        let leader = loop {
            if let Some(s) = status(&http, &members[(failovers.len() + 1) % 3]).await
                && let Some(l) = s["leader_id"].as_u64()
            {
                break l as usize - 1;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let survivors: Vec<usize> = (0..3).filter(|i| *i != leader).collect();
        *targets.lock().unwrap() = survivors.iter().map(|i| members[*i].api.clone()).collect();
        tokio::time::sleep(Duration::from_millis(300)).await;
        let killed_at = Instant::now();
        members[leader].kill();
        let mut attempt = 0;
        loop {
            serial += 1;
            attempt += 1;
            let at = &members[survivors[attempt % 2]];
            if post(
                &http,
                &tenants_url(at),
                &token,
                json!({"slug": format!("f-{serial}"), "settings": {"user_db": null}}),
            )
            .await
                == 201
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        failovers.push(killed_at.elapsed());
        members[leader].start(&bin, false);
        let target = status(&http, &members[survivors[0]]).await.unwrap()["applied_index"]
            .as_u64()
            .unwrap();
        let restarted = &members[leader];
        wait_for(
            "the restarted member to catch up",
            Duration::from_secs(60),
            async || {
                status(&http, restarted)
                    .await
                    .is_some_and(|s| s["applied_index"].as_u64().is_some_and(|a| a >= target))
            },
        )
        .await;
        *targets.lock().unwrap() = members.iter().map(|m| m.api.clone()).collect();
    }
    stop.store(true, Ordering::Relaxed);
    for task in load {
        let _ = task.await;
    }
    summary(
        &format!("failover over {kills} leader kills (until a write is acknowledged)"),
        failovers,
    );
    let (sent, failed) = (sent.load(Ordering::Relaxed), failed.load(Ordering::Relaxed));
    println!(
        "token requests on surviving members: {sent} sent, {failed} failed ({:.3} %)",
        failed as f64 * 100.0 / sent.max(1) as f64
    );
    for member in &mut members {
        member.kill();
    }
}
