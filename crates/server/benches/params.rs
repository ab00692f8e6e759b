//! The protocol-parameter parser on the worst bodies an unauthenticated caller can send
//! (1 MiB, the default body limit), beside its floor: one pass over the same bytes looking
//! for `&`, which any parser must make. The review's body (distinct short names) took 87 s
//! with the old pairwise duplicate check.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use tenantry_oidc::params::Params;

const MIB: usize = 1 << 20;

fn bodies() -> Vec<(&'static str, Vec<u8>)> {
    let mut distinct = Vec::with_capacity(MIB);
    let mut i = 0u32;
    while distinct.len() < MIB - 16 {
        distinct.extend_from_slice(format!("{i:x}&").as_bytes());
        i += 1;
    }
    let one_value = format!("token={}", "%41".repeat((MIB - 6) / 3)).into_bytes();
    let ampersands = vec![b'&'; MIB];
    let repeated = "resource=x&".repeat(MIB / 11).into_bytes();
    vec![
        ("distinct names", distinct),
        ("one encoded value", one_value),
        ("only ampersands", ampersands),
        ("a repeatable name", repeated),
    ]
}

fn parse(c: &mut Criterion) {
    let mut group = c.benchmark_group("params 1 MiB");
    group.throughput(Throughput::Bytes(MIB as u64));
    for (name, body) in bodies() {
        group.bench_function(format!("floor: count '&' ({name})"), |b| {
            b.iter(|| std::hint::black_box(&body).iter().filter(|c| **c == b'&').count())
        });
        group.bench_function(format!("Params::parse ({name})"), |b| {
            b.iter(|| Params::parse(std::hint::black_box(&body), &["resource"]).is_err())
        });
    }
    group.finish();
}

criterion_group!(benches, parse);
criterion_main!(benches);
