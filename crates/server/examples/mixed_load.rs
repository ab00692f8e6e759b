//! A mixed workload against one tenant of a running server, in the proportions an
//! identity provider sees (per 1,000 requests): 300 introspections, 250
//! `client_credentials` tokens, 240 refresh rotations, 195 JWKS fetches, 10 headless
//! password logins and 5 authorization-code flows through the hosted login form (each
//! one authorize, one login form with Argon2id, one code exchange).
//!
//! Two phases: closed loop with `connections` workers (each sends its next request when
//! the last is answered) gives the saturated throughput; then an open loop at 80 % of it
//! (requests leave on a fixed schedule; latency counts from the scheduled time) gives
//! the latencies a server near its capacity serves. Each phase prints throughput, p50 and
//! p99 per kind, and the server's CPU time per request (all its threads, ended ones
//! included: `support::server_cpu_ns`).
//!
//! `mixed_load <base> <admin token> <slug> <server pid> <connections> <seconds per phase>`
//!
//! The clients and the user are made by this program on the tenant `slug` (which must
//! exist, with a user database); the tenant is switched to EdDSA tokens and its
//! per-address login limit is lifted (all the load comes from one address).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

mod support;

const PASSWORD: &str = "mixed load password 1";
/// Per-mille weights of each kind.
const MIX: [(Kind, u32); 6] = [
    (Kind::Introspection, 300),
    (Kind::ClientCredentials, 250),
    (Kind::Refresh, 240),
    (Kind::Jwks, 195),
    (Kind::Login, 10),
    (Kind::CodeFlow, 5),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Introspection,
    ClientCredentials,
    Refresh,
    Jwks,
    Login,
    CodeFlow,
}

struct Setup {
    base: String,
    slug: String,
    cc_secret: String,
    access_token: String,
    /// Refresh tokens not in flight: a rotation takes one and puts its successor back.
    refresh_pool: Mutex<Vec<String>>,
}

fn pick(seed: &mut u64) -> Kind {
    // xorshift: deterministic, so every run sends the same sequence.
    *seed ^= *seed << 13;
    *seed ^= *seed >> 7;
    *seed ^= *seed << 17;
    let mut roll = (*seed % 1000) as u32;
    for (kind, weight) in MIX {
        if roll < weight {
            return kind;
        }
        roll -= weight;
    }
    Kind::Jwks
}

/// Sends one request of `kind`; answers whether it succeeded.
async fn send(http: &reqwest::Client, setup: &Setup, kind: Kind) -> bool {
    let (base, slug) = (&setup.base, &setup.slug);
    let token_url = format!("{base}/t/{slug}/token");
    let response = match kind {
        Kind::Jwks => http.get(format!("{base}/t/{slug}/jwks.json")).send().await,
        Kind::ClientCredentials => {
            http.post(&token_url)
                .basic_auth("mixed-cc", Some(&setup.cc_secret))
                .form(&[("grant_type", "client_credentials")])
                .send()
                .await
        }
        Kind::Introspection => {
            http.post(format!("{base}/t/{slug}/introspect"))
                .basic_auth("mixed-cc", Some(&setup.cc_secret))
                .form(&[("token", setup.access_token.as_str())])
                .send()
                .await
        }
        Kind::Refresh => {
            let Some(refresh) = setup.refresh_pool.lock().unwrap().pop() else {
                return false;
            };
            let response = http
                .post(&token_url)
                .form(&[
                    ("grant_type", "refresh_token"),
                    ("refresh_token", refresh.as_str()),
                    ("client_id", "mixed-spa"),
                ])
                .send()
                .await;
            let Ok(response) = response else { return false };
            let ok = response.status() == 200;
            let body: Value = response.json().await.unwrap_or(Value::Null);
            if let Some(next) = body["refresh_token"].as_str() {
                setup.refresh_pool.lock().unwrap().push(next.to_owned());
            }
            return ok;
        }
        Kind::Login => {
            http.post(format!("{base}/v1/auth/login"))
                .header("X-Tenant-Slug", slug)
                .json(&json!({"email": "mixed@example.com", "password": PASSWORD, "client_id": "mixed-spa", "scope": "openid"}))
                .send()
                .await
        }
        Kind::CodeFlow => {
            let tokens = support::code_flow(http, base, slug, "mixed-spa", "mixed@example.com", PASSWORD).await;
            return tokens.is_ok_and(|t| t["access_token"].is_string());
        }
    };
    match response {
        Ok(r) => {
            let ok = r.status().is_success();
            let _ = r.bytes().await;
            ok
        }
        Err(_) => false,
    }
}

type Results = BTreeMap<Kind, (Vec<Duration>, u64)>;

fn report(title: &str, results: Results, elapsed: Duration, cpu_ns: u64) -> f64 {
    let total: usize = results.values().map(|(l, _)| l.len()).sum();
    let rate = total as f64 / elapsed.as_secs_f64();
    println!(
        "{title}: {total} requests in {elapsed:.1?} = {rate:.0}/s; server CPU {:.1} µs per request",
        cpu_ns as f64 / 1000.0 / total.max(1) as f64
    );
    println!(
        "  {:<18} {:>7} {:>8} {:>10} {:>10}",
        "kind", "count", "failed", "p50", "p99"
    );
    for (kind, (mut latencies, failed)) in results {
        latencies.sort();
        let pct = |p: f64| latencies[((latencies.len() as f64 * p) as usize).min(latencies.len() - 1)];
        println!(
            "  {:<18} {:>7} {:>8} {:>10.2?} {:>10.2?}",
            format!("{kind:?}"),
            latencies.len(),
            failed,
            pct(0.50),
            pct(0.99)
        );
    }
    rate
}

fn record(results: &Mutex<Results>, kind: Kind, latency: Duration, ok: bool) {
    let mut results = results.lock().unwrap();
    let entry = results.entry(kind).or_default();
    entry.0.push(latency);
    if !ok {
        entry.1 += 1;
    }
}

async fn closed(
    http: &reqwest::Client,
    setup: &Arc<Setup>,
    connections: usize,
    length: Duration,
) -> (Results, Duration) {
    let results = Arc::new(Mutex::new(Results::new()));
    let start = Instant::now();
    let mut workers = Vec::new();
    for worker in 0..connections {
        let (http, setup, results) = (http.clone(), setup.clone(), results.clone());
        workers.push(tokio::spawn(async move {
            let mut seed = 0x9E37_79B9_7F4A_7C15 ^ (worker as u64 + 1);
            while start.elapsed() < length {
                let kind = pick(&mut seed);
                let sent = Instant::now();
                let ok = send(&http, &setup, kind).await;
                record(&results, kind, sent.elapsed(), ok);
            }
        }));
    }
    for w in workers {
        w.await.unwrap();
    }
    let elapsed = start.elapsed();
    (Arc::try_unwrap(results).ok().unwrap().into_inner().unwrap(), elapsed)
}

async fn open(http: &reqwest::Client, setup: &Arc<Setup>, rate: f64, length: Duration) -> (Results, Duration) {
    let results = Arc::new(Mutex::new(Results::new()));
    let interval = Duration::from_secs_f64(1.0 / rate);
    let start = tokio::time::Instant::now();
    let total = (length.as_secs_f64() * rate) as u64;
    let mut seed = 0x2545_F491_4F6C_DD1D;
    let mut tasks = Vec::with_capacity(total as usize);
    for i in 0..total {
        let scheduled = start + interval.mul_f64(i as f64);
        tokio::time::sleep_until(scheduled).await;
        let kind = pick(&mut seed);
        let (http, setup, results) = (http.clone(), setup.clone(), results.clone());
        tasks.push(tokio::spawn(async move {
            let ok = send(&http, &setup, kind).await;
            record(&results, kind, Instant::now() - scheduled.into_std(), ok);
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let elapsed = start.elapsed();
    (Arc::try_unwrap(results).ok().unwrap().into_inner().unwrap(), elapsed)
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, base, token, slug, pid, connections, seconds] = &args[..] else {
        eprintln!("usage: mixed_load <base> <admin token> <slug> <server pid> <connections> <seconds per phase>");
        std::process::exit(2);
    };
    let pid: u32 = pid.parse().unwrap();
    let connections: usize = connections.parse().unwrap();
    let length = Duration::from_secs(seconds.parse().unwrap());
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .pool_max_idle_per_host(1024)
        .build()
        .unwrap();
    let tenant = format!("/v1/admin/tenants/{slug}");
    use reqwest::Method;
    support::admin(
        &http,
        base,
        token,
        Method::PATCH,
        &tenant,
        json!({"settings": {"signing": {"id_token_alg": "EdDSA", "access_token_alg": "EdDSA"},
        // Every request comes from one address: no per-address login limit.
        "security": {"login_attempts_per_ip_per_minute": 0}}}),
    )
    .await;
    let cc = support::admin(
        &http,
        base,
        token,
        Method::POST,
        &format!("{tenant}/clients"),
        json!({"client_id": "mixed-cc", "name": "mixed-cc", "grant_types": ["client_credentials"], "scopes": ["api"]}),
    )
    .await;
    support::admin(
        &http,
        base,
        token,
        Method::POST,
        &format!("{tenant}/clients"),
        json!({"client_id": "mixed-spa", "name": "mixed-spa", "client_type": "public", "first_party": true,
            "grant_types": ["authorization_code", "refresh_token"], "redirect_uris": ["http://localhost:3000/callback"],
            "scopes": ["openid", "offline_access"]}),
    )
    .await;
    support::admin(
        &http,
        base,
        token,
        Method::POST,
        &format!("{tenant}/users"),
        json!({"email": "mixed@example.com", "password": PASSWORD, "email_verified": true}),
    )
    .await;
    let cc_secret = cc["client_secret"].as_str().unwrap().to_owned();
    let access: Value = http
        .post(format!("{base}/t/{slug}/token"))
        .basic_auth("mixed-cc", Some(&cc_secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    // Refresh chains: more than the connections, so a rotation never waits for one.
    let mut pool = Vec::new();
    for _ in 0..(connections * 2).max(16) {
        let body = headless_login(&http, base, slug).await;
        pool.push(body["refresh_token"].as_str().expect("a refresh token").to_owned());
    }
    let setup = Arc::new(Setup {
        base: base.clone(),
        slug: slug.clone(),
        cc_secret,
        access_token: access["access_token"].as_str().unwrap().to_owned(),
        refresh_pool: Mutex::new(pool),
    });
    // Warm-up.
    closed(&http, &setup, connections, Duration::from_secs(2)).await;

    let cpu = support::server_cpu_ns(pid);
    let (results, elapsed) = closed(&http, &setup, connections, length).await;
    let saturated = report(
        &format!("closed loop, {connections} connections (saturation)"),
        results,
        elapsed,
        support::server_cpu_ns(pid) - cpu,
    );
    let rate = saturated * 0.8;
    let cpu = support::server_cpu_ns(pid);
    let (results, elapsed) = open(&http, &setup, rate, length).await;
    report(
        &format!("open loop at 80 % of saturation ({rate:.0}/s)"),
        results,
        elapsed,
        support::server_cpu_ns(pid) - cpu,
    );
}

async fn headless_login(http: &reqwest::Client, base: &str, slug: &str) -> Value {
    http.post(format!("{base}/v1/auth/login"))
        .header("X-Tenant-Slug", slug)
        .json(&json!({"email": "mixed@example.com", "password": PASSWORD, "client_id": "mixed-spa", "scope": "openid offline_access"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}
