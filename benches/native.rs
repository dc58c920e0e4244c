//! Native micro-benchmarks (criterion): sign and verify per algorithm, one matcho policy, and
//! 1/10/100 policies evaluated. `make bench` runs them and reads criterion's estimates;
//! alone: `cargo bench --bench native`.
//!
//! They run in the release profile, i.e. with the Worker's own settings (opt-level "z", LTO).

#[path = "common/cases.rs"]
mod cases;

use criterion::{criterion_group, criterion_main, Criterion};
use edge_authorizer::jwt::keys::KeySet;
use edge_authorizer::policy::evaluate;
use std::hint::black_box;

fn jwt(c: &mut Criterion) {
    let ed = cases::keyset(&cases::ed25519_jwk());
    let p256 = cases::keyset(&cases::p256_jwk());
    let hs = KeySet::hmac(cases::HMAC_SECRET);
    let ed_token = cases::sign(&ed);
    let p256_token = cases::sign(&p256);
    let hs_token = cases::hs256_token();
    // A bench of a token that does not verify would measure an early exit.
    assert!(cases::verify_rust(&ed, &ed_token));
    assert!(cases::verify_rust(&p256, &p256_token));
    assert!(cases::verify_rust(&hs, &hs_token));

    let mut sign = c.benchmark_group("sign");
    sign.bench_function("EdDSA", |b| b.iter(|| cases::sign(black_box(&ed))));
    sign.bench_function("ES256", |b| b.iter(|| cases::sign(black_box(&p256))));
    sign.finish();

    let mut verify = c.benchmark_group("verify");
    verify.bench_function("EdDSA", |b| {
        b.iter(|| assert!(cases::verify_rust(&ed, black_box(&ed_token))))
    });
    verify.bench_function("ES256", |b| {
        b.iter(|| assert!(cases::verify_rust(&p256, black_box(&p256_token))))
    });
    verify.bench_function("HS256", |b| {
        b.iter(|| assert!(cases::verify_rust(&hs, black_box(&hs_token))))
    });
    verify.finish();
}

fn policy(c: &mut Criterion) {
    let request = cases::policy_request();
    let one = cases::matcho_policy();
    assert!(one.allows(&request));
    let mut group = c.benchmark_group("policy");
    group.bench_function("matcho", |b| {
        b.iter(|| assert!(one.allows(black_box(&request))))
    });
    for n in [1usize, 10, 100] {
        let list = cases::policies(n);
        assert_eq!(
            evaluate(&list, &request, Some("bench"), None, None),
            Some(n - 1)
        );
        group.bench_function(format!("evaluate-{n}"), |b| {
            b.iter(|| {
                evaluate(
                    black_box(&list),
                    black_box(&request),
                    Some("bench"),
                    None,
                    None,
                )
            })
        });
    }
    group.finish();
}

criterion_group!(benches, jwt, policy);
criterion_main!(benches);
