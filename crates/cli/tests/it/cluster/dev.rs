//! `tenantry dev cluster` end to end.

use std::time::{Duration, Instant};

use serde_json::Value;

use super::*;

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
