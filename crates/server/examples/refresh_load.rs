//! Refresh-token rotation load against a running server: each connection logs in once
//! through the hosted form (authorization code + PKCE), then rotates its own refresh
//! token as fast as the server answers, so every request is one rotation (one commit).
//!
//! `refresh_load <base> <slug> <client_id> <email> <password> <connections> <seconds>`

use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

fn field(html: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html.find(&marker).expect("hidden field") + marker.len();
    html[start..start + html[start..].find('"').unwrap()].replace("&#x2f;", "/")
}

async fn login(http: &reqwest::Client, base: &str, slug: &str, client: &str, email: &str, password: &str) -> String {
    let verifier = tenantry_crypto::random_token(32);
    let challenge = URL_SAFE_NO_PAD.encode(aws_lc_rs::digest::digest(
        &aws_lc_rs::digest::SHA256,
        verifier.as_bytes(),
    ));
    let redirect = "http://localhost:3000/callback";
    let auth = format!(
        "{base}/t/{slug}/authorize?client_id={client}&response_type=code&scope=openid&redirect_uri={}&code_challenge={challenge}&code_challenge_method=S256",
        url::form_urlencoded::byte_serialize(redirect.as_bytes()).collect::<String>()
    );
    let page = http.get(&auth).send().await.unwrap();
    let csrf_cookie = page
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_owned())
        .collect::<Vec<_>>()
        .join("; ");
    let html = page.text().await.unwrap();
    let form = [
        ("interaction", field(&html, "interaction")),
        ("csrf", field(&html, "csrf")),
        ("email", email.to_owned()),
        ("password", password.to_owned()),
    ];
    let done = http
        .post(format!("{base}/t/{slug}/login"))
        .header("cookie", csrf_cookie)
        .form(&form)
        .send()
        .await
        .unwrap();
    let location = done.headers()["location"].to_str().unwrap().to_owned();
    let code = url::Url::parse(&location)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "code")
        .expect("a code")
        .1
        .into_owned();
    let tokens: serde_json::Value = http
        .post(format!("{base}/t/{slug}/token"))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", redirect),
            ("client_id", client),
            ("code_verifier", verifier.as_str()),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    tokens["refresh_token"].as_str().expect("a refresh token").to_owned()
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, base, slug, client, email, password, connections, seconds] = args.as_slice() else {
        eprintln!("usage: refresh_load <base> <slug> <client_id> <email> <password> <connections> <seconds>");
        std::process::exit(2);
    };
    let connections: usize = connections.parse().unwrap();
    let duration = Duration::from_secs(seconds.parse().unwrap());
    let mut tasks = Vec::new();
    for _ in 0..connections {
        let (base, slug, client, email, password) = (
            base.clone(),
            slug.clone(),
            client.clone(),
            email.clone(),
            password.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let http = reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .pool_max_idle_per_host(1)
                .build()
                .unwrap();
            let mut refresh = login(&http, &base, &slug, &client, &email, &password).await;
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
    all.sort();
    let pct = |p: f64| all[((all.len() as f64 * p) as usize).min(all.len() - 1)];
    println!(
        "refresh rotations: {} in {:?} = {:.0}/s, p50 {:?}, p99 {:?}",
        all.len(),
        duration,
        all.len() as f64 / duration.as_secs_f64(),
        pct(0.50),
        pct(0.99)
    );
}
