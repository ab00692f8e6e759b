//! The bare Argon2id cost of one password check at the default (OWASP) parameters, the
//! yardstick of the login benchmark: a login can at best verify as many passwords per
//! second as this allows on the same core.

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
    group.finish();
}

criterion_group!(benches, verify);
criterion_main!(benches);
