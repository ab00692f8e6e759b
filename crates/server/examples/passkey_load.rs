//! Passkey sign-in load against a running server, beside a password login and the floor
//! of the HTTP stack, all measured by this one client in the same run.
//!
//! `passkey_load <base> <slug> <client_id> <email> <password> <origin> <connections> <seconds> [floor URL]`
//!
//! Registers a passkey for the user (password login, registration options, a software
//! authenticator written here: ES256 on aws-lc-rs, attestation "none", a synced passkey
//! whose counter stays 0), then runs three closed loops of `connections` for `seconds`
//! each: passkey sign-ins (`/v1/auth/passkeys/login/options`, the assertion signed here,
//! `/v1/auth/passkeys/login`: a session and tokens), password logins (`/v1/auth/login`:
//! an Argon2id verification, a session and tokens), and `GET` of the floor URL. The
//! options are limited per client address, so each sign-in names a different address in
//! `X-Forwarded-For` (the server must trust this client as a proxy).

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use serde_json::{Value, json};

/// The passkey the software authenticator holds.
struct Passkey {
    id: Vec<u8>,
    handle: Vec<u8>,
    key: EcdsaKeyPair,
    origin: String,
}

fn sha256(data: &[u8]) -> Vec<u8> {
    aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, data)
        .as_ref()
        .to_vec()
}

fn client_data(kind: &str, challenge: &str, origin: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({"type": kind, "challenge": challenge, "origin": origin, "crossOrigin": false})).unwrap()
}

/// UP, UV, BE and BS (a synced passkey), counter 0 (as synced passkeys send).
const FLAGS: u8 = 0x01 | 0x04 | 0x08 | 0x10;

/// `navigator.credentials.create()` for registration options.
fn create(options: &Value, origin: &str) -> (Passkey, Value) {
    use ciborium::Value as C;
    let o = &options["publicKey"];
    let data = client_data("webauthn.create", o["challenge"].as_str().unwrap(), origin);
    let id = tenantry_crypto::random_key::<16>().to_vec();
    let key = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_ASN1_SIGNING).unwrap();
    let public = key.public_key().as_ref();
    let (x, y) = public[1..].split_at(32);
    let cose = C::Map(vec![
        (C::Integer(1.into()), C::Integer(2.into())),
        (C::Integer(3.into()), C::Integer((-7).into())),
        (C::Integer((-1).into()), C::Integer(1.into())),
        (C::Integer((-2).into()), C::Bytes(x.to_vec())),
        (C::Integer((-3).into()), C::Bytes(y.to_vec())),
    ]);
    let mut auth_data = sha256(o["rp"]["id"].as_str().unwrap().as_bytes());
    auth_data.push(FLAGS | 0x40);
    auth_data.extend_from_slice(&0u32.to_be_bytes());
    auth_data.extend_from_slice(&[0; 16]);
    auth_data.extend_from_slice(&(id.len() as u16).to_be_bytes());
    auth_data.extend_from_slice(&id);
    ciborium::into_writer(&cose, &mut auth_data).unwrap();
    let object = C::Map(vec![
        (C::Text("fmt".into()), C::Text("none".into())),
        (C::Text("attStmt".into()), C::Map(vec![])),
        (C::Text("authData".into()), C::Bytes(auth_data)),
    ]);
    let mut attestation = Vec::new();
    ciborium::into_writer(&object, &mut attestation).unwrap();
    let credential = json!({
        "id": B64.encode(&id), "rawId": B64.encode(&id), "type": "public-key",
        "response": {"clientDataJSON": B64.encode(&data), "attestationObject": B64.encode(&attestation),
            "transports": ["internal"]},
        "clientExtensionResults": {"credProps": {"rk": true}},
    });
    let handle = B64.decode(o["user"]["id"].as_str().unwrap()).unwrap();
    (
        Passkey {
            id,
            handle,
            key,
            origin: origin.to_owned(),
        },
        credential,
    )
}

impl Passkey {
    /// `navigator.credentials.get()` for sign-in options.
    fn get(&self, options: &Value) -> Value {
        let o = &options["publicKey"];
        let data = client_data("webauthn.get", o["challenge"].as_str().unwrap(), &self.origin);
        let mut auth_data = sha256(o["rpId"].as_str().unwrap().as_bytes());
        auth_data.push(FLAGS);
        auth_data.extend_from_slice(&0u32.to_be_bytes());
        let mut signed = auth_data.clone();
        signed.extend_from_slice(&sha256(&data));
        let signature = self.key.sign(&SystemRandom::new(), &signed).unwrap();
        json!({
            "id": B64.encode(&self.id), "rawId": B64.encode(&self.id), "type": "public-key",
            "response": {"clientDataJSON": B64.encode(&data), "authenticatorData": B64.encode(&auth_data),
                "signature": B64.encode(signature.as_ref()), "userHandle": B64.encode(&self.handle)},
            "clientExtensionResults": {},
        })
    }
}

struct Client {
    http: reqwest::Client,
    base: String,
    slug: String,
}

impl Client {
    async fn post(&self, path: &str, body: &Value, token: Option<&str>, from: Option<&str>) -> (u16, Value) {
        let mut request = self
            .http
            .post(format!("{}{path}", self.base))
            .header("X-Tenant-Slug", &self.slug)
            .json(body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(address) = from {
            request = request.header("X-Forwarded-For", address);
        }
        match request.send().await {
            Ok(response) => {
                let status = response.status().as_u16();
                (status, response.json().await.unwrap_or(Value::Null))
            }
            Err(_) => (0, Value::Null),
        }
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn report(name: &str, mut latencies: Vec<Duration>, failures: usize, elapsed: Duration) {
    latencies.sort_unstable();
    println!(
        "{name}: {} in {:.1}s = {:.1}/s, p50 {:.2?}, p99 {:.2?}, failures {failures}",
        latencies.len(),
        elapsed.as_secs_f64(),
        latencies.len() as f64 / elapsed.as_secs_f64(),
        percentile(&latencies, 0.50),
        percentile(&latencies, 0.99),
    );
}

/// Runs `one` on `connections` loops for `seconds`; answers the latencies of the passes
/// (`true`) and the count of failures.
async fn closed_loop<F, Fut>(connections: usize, seconds: u64, one: F) -> (Vec<Duration>, usize, Duration)
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = bool> + Send,
{
    let one = Arc::new(one);
    let started = Instant::now();
    let until = started + Duration::from_secs(seconds);
    let mut loops = Vec::new();
    for _ in 0..connections {
        let one = one.clone();
        loops.push(tokio::spawn(async move {
            let (mut passed, mut failed) = (Vec::new(), 0);
            while Instant::now() < until {
                let begun = Instant::now();
                if one().await {
                    passed.push(begun.elapsed());
                } else {
                    failed += 1;
                }
            }
            (passed, failed)
        }));
    }
    let (mut latencies, mut failures) = (Vec::new(), 0);
    for handle in loops {
        let (passed, failed) = handle.await.unwrap();
        latencies.extend(passed);
        failures += failed;
    }
    (latencies, failures, started.elapsed())
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 9 {
        eprintln!(
            "usage: passkey_load <base> <slug> <client_id> <email> <password> <origin> <connections> <seconds> [floor URL]"
        );
        std::process::exit(2);
    }
    let (client_id, email, password, origin) = (&args[3], &args[4], &args[5], &args[6]);
    let connections: usize = args[7].parse().unwrap();
    let seconds: u64 = args[8].parse().unwrap();
    let client = Arc::new(Client {
        http: reqwest::Client::builder()
            .pool_max_idle_per_host(connections)
            .build()
            .unwrap(),
        base: args[1].clone(),
        slug: args[2].clone(),
    });

    // The passkey, registered once.
    let login = json!({"email": email, "password": password, "client_id": client_id, "scope": "openid"});
    let (status, tokens) = client.post("/v1/auth/login", &login, None, None).await;
    assert_eq!(status, 200, "password login: {tokens}");
    let token = tokens["access_token"].as_str().unwrap().to_owned();
    let proof = json!({"current_password": password});
    let (status, options) = client
        .post("/v1/auth/passkeys/register/options", &proof, Some(&token), None)
        .await;
    assert_eq!(status, 200, "registration options: {options}");
    let (passkey, credential) = create(&options, origin);
    let (status, added) = client
        .post(
            "/v1/auth/passkeys/register",
            &json!({"credential": credential, "name": "load"}),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(status, 201, "registration: {added}");
    let passkey = Arc::new(passkey);

    let next_address = Arc::new(AtomicU32::new(0));
    let options_body = Arc::new(json!({"client_id": client_id, "scope": "openid"}));
    let (latencies, failures, elapsed) = {
        let (client, passkey) = (client.clone(), passkey.clone());
        closed_loop(connections, seconds, move || {
            let (client, passkey, options_body) = (client.clone(), passkey.clone(), options_body.clone());
            let n = next_address.fetch_add(1, Ordering::Relaxed);
            async move {
                let from = format!("10.{}.{}.{}", (n >> 16) & 255, (n >> 8) & 255, n & 255);
                let (status, options) = client
                    .post("/v1/auth/passkeys/login/options", &options_body, None, Some(&from))
                    .await;
                if status != 200 {
                    return false;
                }
                let assertion = passkey.get(&options);
                let (status, _) = client
                    .post(
                        "/v1/auth/passkeys/login",
                        &json!({"credential": assertion}),
                        None,
                        Some(&from),
                    )
                    .await;
                status == 200
            }
        })
        .await
    };
    report(
        "passkey sign-in (options + verify + session + tokens)",
        latencies,
        failures,
        elapsed,
    );

    let login = Arc::new(login);
    let (latencies, failures, elapsed) = {
        let client = client.clone();
        closed_loop(connections, seconds, move || {
            let (client, login) = (client.clone(), login.clone());
            async move { client.post("/v1/auth/login", &login, None, None).await.0 == 200 }
        })
        .await
    };
    report(
        "password login (Argon2id + session + tokens)",
        latencies,
        failures,
        elapsed,
    );

    if let Some(floor) = args.get(9).cloned() {
        let http = client.http.clone();
        let (latencies, failures, elapsed) = closed_loop(connections, seconds, move || {
            let (http, floor) = (http.clone(), floor.clone());
            async move {
                match http.get(&floor).send().await {
                    Ok(answer) => answer.bytes().await.is_ok(),
                    Err(_) => false,
                }
            }
        })
        .await;
        report("floor: bare axum hello", latencies, failures, elapsed);
    }
}
