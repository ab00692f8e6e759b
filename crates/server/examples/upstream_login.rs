//! What a sign-in through an upstream provider costs on Tenantry's side, against a running
//! server. The upstream is an in-process stand-in OpenID provider (Microsoft-shaped:
//! `support/standin.rs`) that answers from memory, so the time is the server's: the login
//! page, the provider button (`start`: the sealed cookie and the authorization URL) and the
//! callback (state spent in the tenant database, the code exchange with the stand-in, the
//! ID token verified, the account found or made, the session and our code).
//!
//! `upstream_login <base> <admin token> <returning|new> <concurrency> <sign-ins> [server pid]`
//!
//! Sets up a tenant `fed-<n>` (registration on, a `microsoft` provider at the stand-in,
//! the SPA client), then runs the sign-ins with `concurrency` in flight: `returning` signs
//! the same upstream account in each time (its linked account), `new` a new person each
//! time (an account made just in time). Reports p50/p99 of each leg and of our side in
//! all, the stand-in's discovery documents and JWKS served (the server's cache: one each),
//! and, given the server's pid, its CPU time per sign-in. The server must allow private
//! networks for outbound calls (`TENANTRY_OUTBOUND_ALLOW_PRIVATE_NETWORKS=true`).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::json;

#[path = "support/standin.rs"]
mod standin;
mod support;

const REDIRECT: &str = "http://localhost:3000/callback";

/// The time of each leg of one sign-in.
struct Legs {
    page: Duration,
    start: Duration,
    upstream: Duration,
    callback: Duration,
}

/// A request with `cookies`, keeping what the answer sets; answers the status, the
/// `Location` and the body.
async fn send(request: reqwest::RequestBuilder, cookies: &mut HashMap<String, String>) -> (u16, String, String) {
    let jar = cookies
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("; ");
    let request = if jar.is_empty() {
        request
    } else {
        request.header("cookie", jar)
    };
    let response = request.send().await.expect("the server answers");
    for value in response.headers().get_all("set-cookie") {
        if let Some((name, value)) = value.to_str().unwrap().split(';').next().unwrap().split_once('=') {
            cookies.insert(name.to_owned(), value.to_owned());
        }
    }
    let status = response.status().as_u16();
    let location = response
        .headers()
        .get("location")
        .map(|l| l.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (status, location, response.text().await.unwrap_or_default())
}

fn field(html: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html.find(&marker).expect("hidden field") + marker.len();
    html[start..start + html[start..].find('"').unwrap()].replace("&#x2f;", "/")
}

async fn sign_in(http: &reqwest::Client, base: &str, slug: &str) -> Legs {
    let verifier = tenantry_crypto::random_token(32);
    let challenge = URL_SAFE_NO_PAD.encode(aws_lc_rs::digest::digest(
        &aws_lc_rs::digest::SHA256,
        verifier.as_bytes(),
    ));
    let authorize = format!(
        "{base}/t/{slug}/authorize?client_id=demo-spa&response_type=code&scope=openid&redirect_uri={}&code_challenge={challenge}&code_challenge_method=S256",
        url::form_urlencoded::byte_serialize(REDIRECT.as_bytes()).collect::<String>()
    );
    let mut cookies = HashMap::new();
    let clock = Instant::now();
    let (status, _, page) = send(http.get(&authorize), &mut cookies).await;
    assert_eq!(status, 200, "the login page: {page}");
    let page_time = clock.elapsed();
    let form = [
        ("interaction", field(&page, "interaction")),
        ("csrf", field(&page, "csrf")),
    ];
    let clock = Instant::now();
    let start = http.post(format!("{base}/t/{slug}/federation/ms/start")).form(&form);
    let (status, at_upstream, body) = send(start, &mut cookies).await;
    assert_eq!(status, 303, "the provider button: {body}");
    let start_time = clock.elapsed();
    let clock = Instant::now();
    let (status, callback, _) = send(http.get(&at_upstream), &mut HashMap::new()).await;
    assert_eq!(status, 303, "the stand-in signs in at once");
    let upstream_time = clock.elapsed();
    let clock = Instant::now();
    let (status, back, body) = send(http.get(&callback), &mut cookies).await;
    assert!(
        status == 303 && back.starts_with(REDIRECT),
        "the callback: {status} {body}"
    );
    Legs {
        page: page_time,
        start: start_time,
        upstream: upstream_time,
        callback: clock.elapsed(),
    }
}

fn percentiles(mut times: Vec<Duration>) -> String {
    times.sort();
    let at = |p: f64| times[((times.len() as f64 * p) as usize).min(times.len() - 1)];
    format!(
        "p50 {:>7.3} ms  p99 {:>7.3} ms",
        at(0.50).as_secs_f64() * 1e3,
        at(0.99).as_secs_f64() * 1e3
    )
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 6 {
        eprintln!("upstream_login <base> <admin token> <returning|new> <concurrency> <sign-ins> [server pid]");
        std::process::exit(2);
    }
    let (base, token, mode) = (&args[1], &args[2], args[3].as_str());
    let concurrency: usize = args[4].parse().expect("concurrency");
    let count: usize = args[5].parse().expect("sign-ins");
    let pid: Option<u32> = args.get(6).map(|p| p.parse().expect("pid"));
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .pool_max_idle_per_host(concurrency)
        .build()
        .unwrap();

    let stand_in = standin::StandIn::start().await;
    let slug = format!("fed-{}", std::process::id());
    let settings = json!({"security": {"registration_enabled": true}, "social_providers": [{
        "id": "ms", "kind": "microsoft", "client_id": standin::CLIENT_ID, "client_secret": standin::CLIENT_SECRET,
        "issuer_url": format!("{}/common/v2.0", stand_in.base)}]});
    let post = reqwest::Method::POST;
    support::admin(
        &http,
        base,
        token,
        post.clone(),
        "/v1/admin/tenants",
        json!({"slug": slug, "settings": settings}),
    )
    .await;
    let client = json!({"client_id": "demo-spa", "name": "SPA", "client_type": "public", "first_party": true,
        "redirect_uris": [REDIRECT], "scopes": ["openid"]});
    support::admin(
        &http,
        base,
        token,
        post,
        &format!("/v1/admin/tenants/{slug}/clients"),
        client,
    )
    .await;
    let person = json!({"sub": "load", "tid": "contoso-tid", "email": "load@contoso.example", "unique": mode == "new"});
    stand_in.sign_in_as(person);
    // The first sign-in fetches the provider's documents (and, returning, makes the account).
    sign_in(&http, base, &slug).await;

    let cpu_before = pid.map(support::server_cpu_ns);
    let began = Instant::now();
    let legs: Vec<Legs> = futures_util::StreamExt::collect(futures_util::StreamExt::buffer_unordered(
        futures_util::stream::iter((0..count).map(|_| sign_in(&http, base, &slug))),
        concurrency,
    ))
    .await;
    let wall = began.elapsed();
    let cpu = pid.map(|pid| support::server_cpu_ns(pid) - cpu_before.unwrap_or_default());

    println!(
        "{count} sign-ins ({mode}), {concurrency} at a time, in {:.2} s: {:.0}/s",
        wall.as_secs_f64(),
        count as f64 / wall.as_secs_f64()
    );
    println!(
        "  login page      {}",
        percentiles(legs.iter().map(|l| l.page).collect())
    );
    println!(
        "  provider button {}",
        percentiles(legs.iter().map(|l| l.start).collect())
    );
    println!(
        "  callback        {}",
        percentiles(legs.iter().map(|l| l.callback).collect())
    );
    println!(
        "  ours in all     {}",
        percentiles(legs.iter().map(|l| l.page + l.start + l.callback).collect())
    );
    println!(
        "  (stand-in leg   {})",
        percentiles(legs.iter().map(|l| l.upstream).collect())
    );
    let (discoveries, jwks) = stand_in.documents_served();
    println!("  provider documents fetched by the server: {discoveries} discovery, {jwks} JWKS");
    if let Some(cpu) = cpu {
        println!("  server CPU per sign-in: {:.0} µs", cpu as f64 / 1e3 / count as f64);
    }
}
