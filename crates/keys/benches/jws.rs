//! Sign and verify a typical access token with each algorithm.
//!
//! `cargo bench -p tenantry-keys --bench jws`

use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED, ED25519, RSA_PKCS1_2048_8192_SHA256, RsaPublicKeyComponents, UnparsedPublicKey,
};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
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
        // The bare signature check of the same token, to show the verifier's own overhead.
        let (message, signature) = token.rsplit_once('.').unwrap();
        let signature = URL_SAFE_NO_PAD.decode(signature).unwrap();
        let jwk: Value = serde_json::from_str(&ring.active(alg).unwrap().public_jwk).unwrap();
        let field = |name: &str| URL_SAFE_NO_PAD.decode(jwk[name].as_str().unwrap()).unwrap();
        match alg {
            SigningAlg::Rs256 => {
                let public = RsaPublicKeyComponents {
                    n: field("n"),
                    e: field("e"),
                };
                c.bench_function("primitive-verify/RS256", |b| {
                    b.iter(|| {
                        public
                            .verify(&RSA_PKCS1_2048_8192_SHA256, message.as_bytes(), &signature)
                            .unwrap()
                    })
                });
            }
            SigningAlg::Es256 => {
                let point = [vec![4], field("x"), field("y")].concat();
                let public = UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, point);
                c.bench_function("primitive-verify/ES256", |b| {
                    b.iter(|| public.verify(message.as_bytes(), &signature).unwrap())
                });
            }
            SigningAlg::EdDsa => {
                let public = UnparsedPublicKey::new(&ED25519, field("x"));
                c.bench_function("primitive-verify/EdDSA", |b| {
                    b.iter(|| public.verify(message.as_bytes(), &signature).unwrap())
                });
            }
        }
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
