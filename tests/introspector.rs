//! TokenIntrospector: JWTs of external issuers (HS256 secret, inline JWKS, jwks_uri with cache
//! and refetch, RS256) and opaque tokens through RFC 7662, plus the refusals RFC 8725 asks for.

use base64::Engine;
use edge_authorizer::app::Outcome;
use edge_authorizer::testing::{ed25519_jwk, TestApp, TestResponse, T0};
use jwt_compact::alg::{Hs256, Hs256Key, Rsa, RsaPrivateKey};
use jwt_compact::{AlgorithmExt, Claims, Header, TimeOptions};
use serde_json::{json, Map, Value};

const IDP: &str = "https://idp.example";
const SECRET: &str = "0123456789abcdef0123456789abcdef-shared";

fn b64(s: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s)
}

fn claims(extra: Value) -> Claims<Map<String, Value>> {
    let mut m: Map<String, Value> =
        serde_json::from_value(json!({"iss": IDP, "sub": "john"})).unwrap();
    if let Value::Object(e) = extra {
        m.extend(e);
    }
    let now = chrono::DateTime::from_timestamp(T0, 0).unwrap();
    Claims::new(m).set_duration_and_issuance(
        &TimeOptions::new(chrono::Duration::zero(), move || now),
        chrono::Duration::seconds(600),
    )
}

fn hs256(extra: Value) -> String {
    Hs256
        .token(&Header::empty(), &claims(extra), &Hs256Key::new(SECRET))
        .unwrap()
}

fn api(t: &TestApp, token: &str) -> TestResponse {
    match t.get_with("/Patient", &format!("Bearer {token}")) {
        Outcome::Respond(r) => TestResponse(r),
        _ => panic!("not a response"),
    }
}

fn setup(introspector: Value) -> TestApp {
    let t = TestApp::new();
    let r = t.admin_put("/TokenIntrospector/idp", introspector);
    assert_eq!(r.status(), 201, "{}", r.text());
    t.admin_put("/User/john", json!({"email": "john@example.com"}));
    t.admin_put(
        "/AccessPolicy/idp-users",
        json!({"engine": "matcho", "matcho": {"jwt": {"iss": IDP}, "user": {"id": "john"}}}),
    );
    t
}

#[test]
fn validation_names_the_field_and_secrets_are_never_returned() {
    let t = TestApp::new();
    let bad = |body: Value, field: &str| {
        let r = t.admin_put("/TokenIntrospector/x", body);
        assert_eq!(r.status(), 422, "{}", r.text());
        assert_eq!(r.json()["field"], field, "{}", r.text());
    };
    bad(json!({}), "type");
    bad(json!({"type": "saml"}), "type");
    bad(json!({"type": "jwt"}), "jwt");
    bad(json!({"type": "jwt", "jwt": {"secret": SECRET}}), "jwt.iss");
    bad(
        json!({"type": "jwt", "jwt": {"iss": IDP, "secret": "short"}}),
        "jwt.secret",
    );
    bad(json!({"type": "jwt", "jwt": {"iss": IDP}}), "jwt");
    bad(
        json!({"type": "jwt", "jwt": {"iss": IDP, "secret": SECRET}, "jwks_uri": "https://idp.example/jwks"}),
        "jwt",
    );
    bad(
        json!({"type": "jwt", "jwt": {"iss": IDP}, "jwks_uri": "http://idp.example/jwks"}),
        "jwks_uri",
    );
    bad(
        json!({"type": "jwt", "jwt": {"iss": IDP}, "jwks": {"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}}),
        "jwks",
    );
    bad(json!({"type": "opaque"}), "introspection_endpoint");
    bad(
        json!({"type": "opaque", "introspection_endpoint": {"url": "ftp://x"}}),
        "introspection_endpoint.url",
    );
    assert!(t.kv.dump().is_empty());

    let r = t.admin_put(
        "/TokenIntrospector/idp",
        json!({"type": "jwt", "jwt": {"iss": IDP, "secret": SECRET}}),
    );
    assert_eq!(r.status(), 201);
    assert!(!r.text().contains(SECRET));
    let g = t.call(
        TestApp::req("GET", "/TokenIntrospector/idp")
            .header("authorization", TestApp::root())
            .body(vec![])
            .unwrap(),
    );
    assert!(!g.text().contains(SECRET), "{}", g.text());
    // A PUT without the secret keeps it.
    assert_eq!(
        t.admin_put(
            "/TokenIntrospector/idp",
            json!({"type": "jwt", "jwt": {"iss": IDP, "aud": "api"}})
        )
        .status(),
        200
    );
    assert!(t.kv.dump()["TokenIntrospector/idp"].contains(SECRET));
}

#[test]
fn hs256_tokens_of_a_trusted_issuer() {
    let t = setup(json!({"type": "jwt", "jwt": {"iss": IDP, "secret": SECRET}}));
    let r = api(&t, &hs256(json!({})));
    assert_eq!(r.status(), 200, "{}", r.text());
    // Introspectors, policies and the user come from the isolate cache on the next call.
    let kv_calls = t.kv.calls.get();
    assert_eq!(api(&t, &hs256(json!({}))).status(), 200);
    assert_eq!(
        t.kv.calls.get(),
        kv_calls,
        "no KV reads for a repeated external token"
    );
    // The claims reach policies as `jwt`; `sub` names the User.
    t.admin_put("/AccessPolicy/idp-users", json!({"engine": "matcho", "matcho": {"jwt": {"iss": IDP, "role": "doctor"}, "user": {"id": "john"}}}));
    assert_eq!(api(&t, &hs256(json!({}))).status(), 403);
    assert_eq!(api(&t, &hs256(json!({"role": "doctor"}))).status(), 200);
}

#[test]
fn refusals_for_external_tokens() {
    let t = setup(json!({"type": "jwt", "jwt": {"iss": IDP, "secret": SECRET, "aud": "my-api"}}));
    let good = hs256(json!({"aud": "my-api"}));
    assert_eq!(api(&t, &good).status(), 200);
    let parts: Vec<&str> = good.split('.').collect();
    let cases = vec![
        ("wrong aud", hs256(json!({"aud": "other"}))),
        ("no aud", hs256(json!({}))),
        (
            "wrong secret",
            Hs256
                .token(
                    &Header::empty(),
                    &claims(json!({"aud": "my-api"})),
                    &Hs256Key::new("another-secret-another-secret-xx"),
                )
                .unwrap(),
        ),
        (
            "alg none",
            format!("{}.{}.", b64(br#"{"alg":"none"}"#), parts[1]),
        ),
        (
            "alg RS256 with an HS key",
            format!("{}.{}.{}", b64(br#"{"alg":"RS256"}"#), parts[1], parts[2]),
        ),
        (
            "jku",
            format!(
                "{}.{}.{}",
                b64(br#"{"alg":"HS256","jku":"https://evil/jwks"}"#),
                parts[1],
                parts[2]
            ),
        ),
        (
            "embedded jwk",
            format!(
                "{}.{}.{}",
                b64(br#"{"alg":"HS256","jwk":{"kty":"oct","k":"eA"}}"#),
                parts[1],
                parts[2]
            ),
        ),
        (
            "crit",
            format!(
                "{}.{}.{}",
                b64(br#"{"alg":"HS256","crit":["b64"]}"#),
                parts[1],
                parts[2]
            ),
        ),
        (
            "unknown issuer",
            Hs256
                .token(
                    &Header::empty(),
                    &{
                        let mut c = claims(json!({"aud": "my-api"}));
                        c.custom
                            .insert("iss".into(), json!("https://other.example"));
                        c
                    },
                    &Hs256Key::new(SECRET),
                )
                .unwrap(),
        ),
    ];
    for (name, tok) in cases {
        let r = api(&t, &tok);
        assert_eq!(r.status(), 401, "{name}: {}", r.text());
        assert_eq!(r.json()["error"], "invalid_token", "{name}");
    }
    t.clock.advance(600 + 31);
    assert_eq!(api(&t, &good).status(), 401, "expired");
}

fn eddsa_token(seed: [u8; 32], kid: &str) -> String {
    use edge_authorizer::jwt::keys::KeySet;
    let keys = KeySet::from_config(Some(&ed25519_jwk(seed, kid)), None).unwrap();
    let key = keys.signing.unwrap();
    let c = serde_json::to_value(claims(json!({}))).unwrap();
    futures::executor::block_on(edge_authorizer::jwt::sign(
        &edge_authorizer::crypto::RustCrypto,
        &key,
        "JWT",
        &c,
    ))
    .unwrap()
}

fn jwks(keys: &[([u8; 32], &str)]) -> String {
    let list: Vec<Value> = keys
        .iter()
        .map(|(seed, kid)| {
            let mut v: Value = serde_json::from_str(&ed25519_jwk(*seed, kid)).unwrap();
            v.as_object_mut().unwrap().remove("d");
            v
        })
        .collect();
    json!({"keys": list}).to_string()
}

#[test]
fn jwks_uri_is_fetched_cached_and_refetched_on_unknown_kid() {
    let url = "https://idp.example/.well-known/jwks.json";
    let t = setup(json!({"type": "jwt", "jwt": {"iss": IDP}, "jwks_uri": url}));
    t.http.route(url, 200, &jwks(&[([1; 32], "k1")]));
    assert_eq!(api(&t, &eddsa_token([1; 32], "k1")).status(), 200);
    assert_eq!(api(&t, &eddsa_token([1; 32], "k1")).status(), 200);
    assert_eq!(t.http.count(url), 1, "cached");
    // The IdP rotates to k2. Right after a fetch, an unknown kid does not refetch (rate limit)...
    t.http
        .route(url, 200, &jwks(&[([1; 32], "k1"), ([2; 32], "k2")]));
    assert_eq!(api(&t, &eddsa_token([2; 32], "k2")).status(), 401);
    assert_eq!(t.http.count(url), 1);
    // ...after the minimum interval it does, once, and k2 works.
    t.clock.advance(31);
    assert_eq!(api(&t, &eddsa_token([2; 32], "k2")).status(), 200);
    assert_eq!(t.http.count(url), 2);
    // A token signed by a key not in the set, with a known kid: bad signature.
    assert_eq!(api(&t, &eddsa_token([9; 32], "k1")).status(), 401);
}

#[test]
fn a_failing_jwks_host_is_503_until_there_is_a_copy() {
    let url = "https://idp.example/jwks";
    let t = setup(json!({"type": "jwt", "jwt": {"iss": IDP}, "jwks_uri": url}));
    t.http.failing.set(true);
    let r = api(&t, &eddsa_token([1; 32], "k1"));
    assert_eq!(r.status(), 503, "{}", r.text());
    assert!(r.header("retry-after").is_some());
    t.http.failing.set(false);
    t.http.route(url, 500, "oops");
    assert_eq!(api(&t, &eddsa_token([1; 32], "k1")).status(), 503);
    t.http.route(url, 200, &jwks(&[([1; 32], "k1")]));
    assert_eq!(api(&t, &eddsa_token([1; 32], "k1")).status(), 200);
    // Once cached, an outage past the TTL keeps using the stale copy.
    t.http.failing.set(true);
    t.clock.advance(301);
    let r = api(&t, &eddsa_token([1; 32], "k1"));
    assert_eq!(
        r.status(),
        200,
        "the stale copy is used during the outage: {}",
        r.text()
    );
    assert!(t.http.count(url) >= 4, "a refetch was attempted");
}

#[test]
fn inline_jwks_with_rs256() {
    use rsa::traits::PublicKeyParts;
    let mut rng = rand::thread_rng();
    let sk = RsaPrivateKey::new(&mut rng, 2048).unwrap();
    let pk = sk.to_public_key();
    let jwk = json!({"kty": "RSA", "kid": "rsa1", "n": b64(&pk.n().to_bytes_be()), "e": b64(&pk.e().to_bytes_be())});
    let t = setup(json!({"type": "jwt", "jwt": {"iss": IDP}, "jwks": {"keys": [jwk]}}));
    let tok = Rsa::rs256()
        .token(
            &Header::empty().with_key_id("rsa1"),
            &claims(json!({})),
            &sk,
        )
        .unwrap();
    assert_eq!(api(&t, &tok).status(), 200);
    // HS256 signed with the RSA public key's bytes: the key pins RS256, so it is refused.
    let forged = Hs256
        .token(
            &Header::empty().with_key_id("rsa1"),
            &claims(json!({})),
            &Hs256Key::new(pk.n().to_bytes_be()),
        )
        .unwrap();
    assert_eq!(api(&t, &forged).status(), 401);
}

#[test]
fn opaque_tokens_through_rfc7662() {
    let url = "https://idp.example/introspect";
    let t = setup(
        json!({"type": "opaque", "introspection_endpoint": {"url": url, "authorization": "Basic cnM6cnM="}}),
    );
    t.admin_put(
        "/AccessPolicy/idp-users",
        json!({"engine": "matcho", "matcho": {"jwt": {"scope": "#read"}, "user": {"id": "john"}}}),
    );
    t.http.route(
        url,
        200,
        &json!({"active": true, "sub": "john", "scope": "read", "exp": T0 + 600}).to_string(),
    );
    assert_eq!(api(&t, "opaque-token-1").status(), 200);
    let calls = t.http.calls.borrow().clone();
    assert_eq!(calls[0].0, "POST");
    assert_eq!(
        calls[0].2.as_deref(),
        Some("auth=Basic cnM6cnM=;token=opaque-token-1")
    );
    assert_eq!(api(&t, "opaque-token-1").status(), 200);
    assert_eq!(t.http.count(url), 1, "answers are cached briefly");
    t.http.route(url, 200, r#"{"active": false}"#);
    assert_eq!(api(&t, "opaque-token-2").status(), 401);
    t.http.failing.set(true);
    assert_eq!(api(&t, "opaque-token-3").status(), 503);
}
