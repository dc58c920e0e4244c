//! The cases shared by the native criterion benches (`benches/native.rs`) and the wasm build of
//! the same verify (`benches/wasm-verify`), so that both sides run the same code on the same
//! token: fixed keys, a fixed token and a fixed clock.
#![allow(dead_code)] // each user takes what it needs

use edge_authorizer::crypto::{hmac_sha256_verify, RustCrypto};
use edge_authorizer::http_util::b64url;
use edge_authorizer::jwt::{self, keys::KeySet, Expectations};
use edge_authorizer::platform::Crypto;
use edge_authorizer::policy::CompiledPolicy;
use serde_json::{json, Value};

pub const ISSUER: &str = "https://auth.bench";
pub const AUDIENCE: &str = "https://api.bench";
pub const NOW: i64 = 1_800_000_000;
pub const HMAC_SECRET: &[u8] = b"bench-shared-secret-of-32-bytes!";

/// A private Ed25519 JWK from a fixed seed.
pub fn ed25519_jwk() -> String {
    let seed = [7u8; 32];
    let x = edge_authorizer::crypto::ed25519_public_from_seed(&seed);
    json!({"kty": "OKP", "crv": "Ed25519", "kid": "bench-ed", "d": b64url(&seed), "x": b64url(&x)})
        .to_string()
}

/// A private P-256 JWK from a fixed scalar.
pub fn p256_jwk() -> String {
    let d: [u8; 32] = std::array::from_fn(|i| i as u8 + 1);
    let (x, y) = edge_authorizer::crypto::p256_public_from_scalar(&d).expect("valid scalar");
    json!({"kty": "EC", "crv": "P-256", "kid": "bench-p256", "d": b64url(&d), "x": b64url(&x), "y": b64url(&y)})
        .to_string()
}

pub fn keyset(jwk: &str) -> KeySet {
    KeySet::from_config(Some(jwk), None).expect("bench key")
}

/// The claims of a client_credentials access token, as our Worker issues them.
pub fn claims() -> Value {
    json!({
        "iss": ISSUER, "aud": AUDIENCE, "sub": "bench", "client_id": "bench", "scope": "read",
        "iat": NOW, "exp": NOW + 3600, "jti": "0123456789abcdef0123456789abcdef",
    })
}

pub fn expectations() -> Expectations<'static> {
    Expectations {
        issuer: ISSUER,
        audience: Some(AUDIENCE),
        typ: Some(jwt::ACCESS_TOKEN_TYP),
        leeway: 30,
        now: NOW,
    }
}

/// Signs the bench claims with the key set's signing key (pure Rust).
pub fn sign(keys: &KeySet) -> String {
    sign_with(&RustCrypto, keys)
}

/// Signs the bench claims through `crypto` (`jwt::sign`, as the token endpoint does).
pub fn sign_with(crypto: &dyn Crypto, keys: &KeySet) -> String {
    let key = keys.signing.as_ref().expect("signing key");
    futures::executor::block_on(jwt::sign(crypto, key, jwt::ACCESS_TOKEN_TYP, &claims()))
        .expect("sign")
}

/// An HS256 token over the bench claims (what an external issuer with a shared secret sends).
pub fn hs256_token() -> String {
    use hmac::Mac;
    let header = json!({"alg": "HS256", "typ": "at+jwt"});
    let input = format!(
        "{}.{}",
        b64url(header.to_string().as_bytes()),
        b64url(claims().to_string().as_bytes())
    );
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(HMAC_SECRET).expect("key");
    mac.update(input.as_bytes());
    let sig = mac.finalize().into_bytes();
    debug_assert!(hmac_sha256_verify(HMAC_SECRET, input.as_bytes(), &sig));
    format!("{input}.{}", b64url(&sig))
}

/// One full `jwt::verify` (parse, header checks, signature, claims); true when the token passes.
pub fn verify(crypto: &dyn Crypto, keys: &KeySet, token: &str) -> bool {
    futures::executor::block_on(jwt::verify(crypto, keys, token, &expectations())).is_ok()
}

pub fn verify_rust(keys: &KeySet, token: &str) -> bool {
    verify(&RustCrypto, keys, token)
}

/// The policy request the authorizer builds for `GET /Patient/pt-1` by client `bench`.
pub fn policy_request() -> Value {
    json!({
        "request-method": "get", "scheme": "https", "uri": "/Patient/pt-1", "query-string": "",
        "params": {"resource/type": "Patient", "resource/id": "pt-1"},
        "headers": {"accept": "application/json", "user-agent": "bench"},
        "remote-addr": "127.0.0.1",
        "client": {"id": "bench", "grant_types": ["client_credentials"]},
        "jwt": claims(),
    })
}

/// The one matcho policy of the micro-bench: method, a uri regex and the client.
pub fn matcho_policy() -> CompiledPolicy {
    CompiledPolicy::compile(&json!({
        "engine": "matcho",
        "matcho": {"request-method": "get", "uri": "#^/Patient", "client": {"id": "bench"}},
    }))
    .expect("policy compiles")
}

/// `n` global matcho policies of which only the last allows the request, so all `n` run.
pub fn policies(n: usize) -> Vec<CompiledPolicy> {
    (0..n)
        .map(|i| {
            if i + 1 == n {
                matcho_policy()
            } else {
                CompiledPolicy::compile(&json!({
                    "engine": "matcho",
                    "matcho": {"request-method": "get", "uri": format!("#^/Observation{i}"), "client": {"id": "bench"}},
                }))
                .expect("policy compiles")
            }
        })
        .collect()
}
