//! Noisy-neighbour measurement against a running server: tenant `quiet` sends
//! `client_credentials` token requests at a steady rate while tenant `noisy` floods its
//! token endpoint at 10× its quota. Both are open-loop: requests leave on a fixed schedule
//! whatever the answers, so a slow server cannot slow the load down. Latency counts from
//! the moment a request leaves (tokio's timer fires up to 1 ms late, which would
//! otherwise swamp sub-millisecond answers). Runs alternate quiet-alone and quiet-with-flood phases and print the quiet
//! tenant's latency percentiles for each, and what the flood got back.
//!
//! `noisy_neighbour <base> <admin token> <quiet req/s> <noisy quota req/s> <seconds per phase> <rounds>`
//!
//! The tenants are made by this program (slugs `quiet-N`, `noisy-N`, N its process id).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

mod support;

struct Tenant {
    token_url: String,
    client_id: String,
    secret: String,
}

async fn tenant(http: &reqwest::Client, base: &str, token: &str, slug: &str, settings: Value) -> Tenant {
    let path = "/v1/admin/tenants";
    support::admin(
        http,
        base,
        token,
        reqwest::Method::POST,
        path,
        json!({"slug": slug, "settings": settings}),
    )
    .await;
    let client = support::admin(
        http,
        base,
        token,
        reqwest::Method::POST,
        &format!("/v1/admin/tenants/{slug}/clients"),
        json!({"client_id": "svc", "name": "svc", "grant_types": ["client_credentials"], "scopes": ["api"]}),
    )
    .await;
    Tenant {
        token_url: format!("{base}/t/{slug}/token"),
        client_id: "svc".into(),
        secret: client["client_secret"].as_str().unwrap().to_owned(),
    }
}

/// Sends `rate` requests per second for `length`, each leaving at its scheduled time;
/// returns the latencies and the count per status.
async fn paced(
    http: reqwest::Client,
    tenant: Arc<Tenant>,
    rate: u64,
    length: Duration,
) -> (Vec<Duration>, Vec<(u16, u64)>) {
    let interval = Duration::from_secs_f64(1.0 / rate as f64);
    let start = tokio::time::Instant::now();
    let total = (length.as_secs_f64() * rate as f64) as u64;
    let statuses: Arc<[AtomicU64; 6]> = Arc::new(Default::default());
    let mut tasks = Vec::with_capacity(total as usize);
    for i in 0..total {
        let scheduled = start + interval * i as u32;
        tokio::time::sleep_until(scheduled).await;
        let (http, tenant, statuses) = (http.clone(), tenant.clone(), statuses.clone());
        tasks.push(tokio::spawn(async move {
            let sent = Instant::now();
            let response = http
                .post(&tenant.token_url)
                .basic_auth(&tenant.client_id, Some(&tenant.secret))
                .form(&[("grant_type", "client_credentials")])
                .send()
                .await;
            let status = match response {
                Ok(r) => {
                    let status = r.status().as_u16();
                    let _ = r.bytes().await;
                    status
                }
                Err(_) => 0,
            };
            let slot = match status {
                200 => 0,
                429 => 1,
                503 => 2,
                0 => 3,
                s if s >= 500 => 4,
                _ => 5,
            };
            statuses[slot].fetch_add(1, Ordering::Relaxed);
            sent.elapsed()
        }));
    }
    let mut latencies = Vec::with_capacity(tasks.len());
    for task in tasks {
        latencies.push(task.await.unwrap());
    }
    let counts = [200, 429, 503, 0, 500, 400]
        .into_iter()
        .zip(statuses.iter().map(|c| c.load(Ordering::Relaxed)))
        .filter(|(_, n)| *n > 0)
        .collect();
    (latencies, counts)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 * p) as usize).min(sorted.len() - 1)]
}

fn report(label: &str, mut latencies: Vec<Duration>, counts: &[(u16, u64)]) -> Duration {
    latencies.sort();
    let p99 = percentile(&latencies, 0.99);
    println!(
        "{label:<24} n={:<6} p50={:>8.3?} p90={:>8.3?} p99={:>8.3?} max={:>8.3?} statuses={counts:?}",
        latencies.len(),
        percentile(&latencies, 0.50),
        percentile(&latencies, 0.90),
        p99,
        latencies.last().unwrap(),
    );
    p99
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, base, token, quiet_rate, noisy_quota, seconds, rounds] = &args[..] else {
        eprintln!(
            "usage: noisy_neighbour <base> <admin token> <quiet req/s> <noisy quota req/s> <seconds per phase> <rounds>"
        );
        std::process::exit(2);
    };
    let quiet_rate: u64 = quiet_rate.parse().unwrap();
    let noisy_quota: u64 = noisy_quota.parse().unwrap();
    let phase = Duration::from_secs(seconds.parse().unwrap());
    let rounds: u32 = rounds.parse().unwrap();
    let http = reqwest::Client::builder().pool_max_idle_per_host(512).build().unwrap();
    let id = std::process::id();
    let eddsa = json!({"id_token_alg": "EdDSA", "access_token_alg": "EdDSA"});
    let quiet = Arc::new(tenant(&http, base, token, &format!("quiet-{id}"), json!({"signing": eddsa})).await);
    let noisy = Arc::new(
        tenant(
            &http,
            base,
            token,
            &format!("noisy-{id}"),
            json!({"signing": eddsa, "quotas": {"window_secs": 1, "tenant": {"token": noisy_quota}}}),
        )
        .await,
    );
    let flood_rate = noisy_quota * 10;
    println!(
        "quiet tenant: {quiet_rate} req/s; noisy tenant: quota {noisy_quota} req/s, flood {flood_rate} req/s; {} s phases",
        phase.as_secs()
    );
    // Warm-up: connections, keys, caches.
    paced(http.clone(), quiet.clone(), quiet_rate, Duration::from_secs(2)).await;
    let (mut alone, mut flooded) = (Vec::new(), Vec::new());
    let (mut all_alone, mut all_flooded) = (Vec::new(), Vec::new());
    for round in 1..=rounds {
        let (latencies, counts) = paced(http.clone(), quiet.clone(), quiet_rate, phase).await;
        all_alone.extend_from_slice(&latencies);
        alone.push(report(&format!("round {round}: quiet alone"), latencies, &counts));
        // The flood runs on a thread and event loop of its own, so its answers never queue
        // the quiet tenant's behind them in the load generator itself.
        let noisy = noisy.clone();
        let flood = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            let http = reqwest::Client::builder().pool_max_idle_per_host(512).build().unwrap();
            runtime.block_on(paced(http, noisy, flood_rate, phase))
        });
        let (latencies, counts) = paced(http.clone(), quiet.clone(), quiet_rate, phase).await;
        all_flooded.extend_from_slice(&latencies);
        flooded.push(report(&format!("round {round}: quiet + flood"), latencies, &counts));
        let (flood_latencies, flood_counts) = flood.join().unwrap();
        report(&format!("round {round}: the flood"), flood_latencies, &flood_counts);
    }
    let median = |mut v: Vec<Duration>| {
        v.sort();
        v[v.len() / 2]
    };
    let alone_all = report("all rounds: quiet alone", all_alone, &[]);
    let flooded_all = report("all rounds: quiet + flood", all_flooded, &[]);
    println!(
        "quiet p99 over all rounds: alone {alone_all:.3?}, with the flood {flooded_all:.3?} ({:+.1} %)",
        (flooded_all.as_secs_f64() / alone_all.as_secs_f64() - 1.0) * 100.0
    );
    let (alone, flooded) = (median(alone), median(flooded));
    println!(
        "quiet p99, median of rounds: alone {alone:.3?}, with the flood {flooded:.3?} ({:+.1} %)",
        (flooded.as_secs_f64() / alone.as_secs_f64() - 1.0) * 100.0
    );
}
