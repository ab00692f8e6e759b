//! Sign and verify a typical access token with each algorithm.
//!
//! `cargo bench -p tenantry-keys --bench jws`

use chrono::Utc;
use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::{Value, json};
use tenantry_controlplane::model::SigningAlg;
use tenantry_crypto::{MasterKey, SecretBox};
use tenantry_keys::{Expect, IssuerKeys, TokenType, generate_ring};

const ISS: &str = "https://id.example.com/t/acme";

fn bench(c: &mut Criterion) {
    let secrets = SecretBox::new(MasterKey::generate(), vec![]);
    let ring = generate_ring(&secrets, "owner", Utc::now()).unwrap();
    let keys = IssuerKeys::open(&ring, &secrets, "owner").unwrap();
    let now = Utc::now().timestamp();
    let claims = json!({
        "iss": ISS, "sub": "0193b5a2-7c1e-7d40-9a55-3f7f1c0e2b11", "aud": "https://api.example.com",
        "client_id": "billing-service", "scope": "openid profile email", "jti": "Qx3nU2y7c0bR1a9T",
        "iat": now, "exp": now + 3600, "tid": "acme",
    });
    let expect = Expect::new(ISS, TokenType::Access);
    for alg in SigningAlg::ALL {
        c.bench_function(&format!("sign/{alg}"), |b| {
            b.iter(|| keys.sign(alg, "at+jwt", &claims).unwrap())
        });
        let token = keys.sign(alg, "at+jwt", &claims).unwrap();
        c.bench_function(&format!("verify/{alg}"), |b| {
            b.iter(|| keys.verify::<Value>(&token, &expect).unwrap())
        });
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
