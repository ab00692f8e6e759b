//! Refresh-token rotation load against a running server: each connection logs in once
//! through the hosted form (authorization code + PKCE; the logins are staggered), then
//! rotates its own refresh token as fast as the server answers, so every request is one
//! rotation (one commit). Given the server's pid, it also reports the server's CPU time
//! per rotation, counted over the rotations only (not the Argon2id logins before them).
//!
//! `refresh_load <base> <slug> <client_id> <email> <password> <connections> <seconds> [server pid]`

use std::time::{Duration, Instant};

mod support;

async fn login(http: &reqwest::Client, base: &str, slug: &str, client: &str, email: &str, password: &str) -> String {
    let tokens = support::code_flow(http, base, slug, client, email, password)
        .await
        .unwrap_or_else(|status| panic!("the login form answered {status} instead of a redirect"));
    tokens["refresh_token"].as_str().expect("a refresh token").to_owned()
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (args, pid) = match args.as_slice() {
        [args @ .., pid] if args.len() == 8 => (args, pid.parse::<u32>().ok()),
        args => (args, None),
    };
    let [_, base, slug, client, email, password, connections, seconds] = args else {
        eprintln!(
            "usage: refresh_load <base> <slug> <client_id> <email> <password> <connections> <seconds> [server pid]"
        );
        std::process::exit(2);
    };
    let connections: usize = connections.parse().unwrap();
    let duration = Duration::from_secs(seconds.parse().unwrap());
    // Logins one after another (each is an Argon2id verification; 64 at once would be
    // shed by the server's hashing admission control), each on its own connection.
    let mut sessions = Vec::new();
    for _ in 0..connections {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .pool_max_idle_per_host(1)
            .build()
            .unwrap();
        let refresh = login(&http, base, slug, client, email, password).await;
        sessions.push((http, refresh));
    }
    let cpu_before = pid.map(support::server_cpu_ns);
    let mut tasks = Vec::new();
    for (http, mut refresh) in sessions {
        let (base, slug, client) = (base.clone(), slug.clone(), client.clone());
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let start = Instant::now();
            while start.elapsed() < duration {
                let t = Instant::now();
                let response = http
                    .post(format!("{base}/t/{slug}/token"))
                    .form(&[
                        ("grant_type", "refresh_token"),
                        ("refresh_token", refresh.as_str()),
                        ("client_id", client.as_str()),
                    ])
                    .send()
                    .await
                    .unwrap();
                assert_eq!(response.status(), 200, "rotation failed");
                let body: serde_json::Value = response.json().await.unwrap();
                refresh = body["refresh_token"].as_str().unwrap().to_owned();
                latencies.push(t.elapsed());
            }
            latencies
        }));
    }
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await.unwrap());
    }
    let cpu_ns = pid
        .zip(cpu_before)
        .map(|(pid, before)| support::server_cpu_ns(pid) - before);
    all.sort();
    let pct = |p: f64| all[((all.len() as f64 * p) as usize).min(all.len() - 1)];
    println!(
        "refresh rotations: {} in {:?} = {:.0}/s, p50 {:?}, p99 {:?}, server CPU {} µs per rotation",
        all.len(),
        duration,
        all.len() as f64 / duration.as_secs_f64(),
        pct(0.50),
        pct(0.99),
        cpu_ns.map_or("?".to_owned(), |ns| format!(
            "{:.1}",
            ns as f64 / 1000.0 / all.len() as f64
        ))
    );
}
