//! Login load against a running server (`POST /v1/auth/login`, correct password, so each
//! request is one Argon2id verification plus a session and tokens).
//!
//! `login_load <base> <slug> <client_id> <email> <password> closed <connections> <seconds>`
//!   — every connection sends its next login as soon as the last one is answered: the
//!   saturated throughput.
//! `login_load <base> <slug> <client_id> <email> <password> open <per_second> <seconds>`
//!   — logins are sent at a fixed rate whatever the answers (an open loop, as real
//!   clients do): how admitted and refused requests fare beyond saturation.

use std::time::{Duration, Instant};

struct Outcome {
    status: u16,
    latency: Duration,
}

async fn login(http: &reqwest::Client, url: &str, slug: &str, body: &serde_json::Value) -> Outcome {
    let started = Instant::now();
    let status = match http.post(url).header("X-Tenant-Slug", slug).json(body).send().await {
        Ok(response) => {
            let status = response.status().as_u16();
            let _ = response.bytes().await;
            status
        }
        Err(_) => 0,
    };
    Outcome {
        status,
        latency: started.elapsed(),
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn report(outcomes: &[Outcome], elapsed: Duration) {
    let mut statuses: Vec<u16> = outcomes.iter().map(|o| o.status).collect();
    statuses.sort_unstable();
    statuses.dedup();
    for status in statuses {
        let mut latencies: Vec<Duration> = outcomes
            .iter()
            .filter(|o| o.status == status)
            .map(|o| o.latency)
            .collect();
        latencies.sort_unstable();
        println!(
            "status {status}: {} in {:.1}s = {:.1}/s, p50 {:?}, p99 {:?}, max {:?}",
            latencies.len(),
            elapsed.as_secs_f64(),
            latencies.len() as f64 / elapsed.as_secs_f64(),
            percentile(&latencies, 0.50),
            percentile(&latencies, 0.99),
            latencies.last().copied().unwrap_or_default(),
        );
    }
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, base, slug, client, email, password, mode, amount, seconds] = &args[..] else {
        eprintln!(
            "usage: login_load <base> <slug> <client_id> <email> <password> closed|open <connections|per_second> <seconds>"
        );
        std::process::exit(2);
    };
    let amount: u32 = amount.parse().expect("a number");
    let duration = Duration::from_secs(seconds.parse().expect("seconds"));
    let url = format!("{base}/v1/auth/login");
    let body = serde_json::json!({"email": email, "password": password, "client_id": client});
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(1024)
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let started = Instant::now();
    let mut tasks = Vec::new();
    match mode.as_str() {
        "closed" => {
            for _ in 0..amount {
                let (http, url, slug, body) = (http.clone(), url.clone(), slug.clone(), body.clone());
                tasks.push(tokio::spawn(async move {
                    let mut outcomes = Vec::new();
                    while started.elapsed() < duration {
                        outcomes.push(login(&http, &url, &slug, &body).await);
                    }
                    outcomes
                }));
            }
        }
        "open" => {
            let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / f64::from(amount.max(1))));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
            while started.elapsed() < duration {
                tick.tick().await;
                let (http, url, slug, body) = (http.clone(), url.clone(), slug.clone(), body.clone());
                tasks.push(tokio::spawn(
                    async move { vec![login(&http, &url, &slug, &body).await] },
                ));
            }
        }
        other => panic!("unknown mode {other}"),
    }
    let mut outcomes = Vec::new();
    for task in tasks {
        outcomes.extend(task.await.unwrap());
    }
    report(&outcomes, duration);
}
