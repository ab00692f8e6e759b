//! The bare Argon2id cost of one password check at the default (OWASP) parameters, the
//! yardstick of the login benchmark: a login can at best verify as many passwords per
//! second as this allows on the same core.
//!
//! Two measurements: the argon2 crate's own `verify_password` (allocates and zeroes its
//! working memory every time) and `passwords::verify_parsed` with a kept buffer, which is
//! what the server runs; the login ratio is taken against the faster of the two.

use argon2::{Algorithm, Argon2, Params, PasswordHash, PasswordHasher, PasswordVerifier, Version};
use criterion::{Criterion, criterion_group, criterion_main};

fn verify(c: &mut Criterion) {
    let defaults = tenantry_controlplane::model::PasswordHashParams::default();
    let params = Params::new(defaults.memory_kib, defaults.iterations, defaults.parallelism, None).unwrap();
    let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
    let phc = argon.hash_password(b"correct horse battery").unwrap().to_string();
    let parsed = PasswordHash::new(&phc).unwrap();
    let mut group = c.benchmark_group("argon2id");
    group.sample_size(30);
    group.bench_function("verify m=19456 t=2 p=1", |b| {
        b.iter(|| argon.verify_password(b"correct horse battery", &parsed).unwrap())
    });
    let mut memory = Vec::new();
    group.bench_function("verify m=19456 t=2 p=1, kept memory (server)", |b| {
        b.iter(|| {
            assert!(tenantry_accounts::passwords::verify_parsed(
                &parsed,
                b"correct horse battery",
                &mut memory
            ))
        })
    });
    group.finish();
}

criterion_group!(benches, verify);
criterion_main!(benches);
