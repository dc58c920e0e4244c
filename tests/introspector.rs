//! TokenIntrospector: JWTs of external issuers (HS256 secret, inline JWKS, jwks_uri with cache
//! and refetch, RS256) and opaque tokens through RFC 7662, plus the refusals RFC 8725 asks for;
//! the audience rule (ours by default), ID tokens refused, and the opt-in `map_user`.

use base64::Engine;
use edge_authorizer::context::Outcome;
use edge_authorizer::testing::{ed25519_jwk, TestApp, TestResponse, ISSUER, T0};
use jwt_compact::alg::{Hs256, Hs256Key, Rsa, RsaPrivateKey};
use jwt_compact::{AlgorithmExt, Claims, Header, TimeOptions};
use serde_json::{json, Map, Value};

mod common;

const IDP: &str = "https://idp.example";
const SECRET: &str = "0123456789abcdef0123456789abcdef-shared";

fn b64(s: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s)
}

/// The IdP's claims for john, `aud` our audience (the issuer in tests); a `null` in `extra`
/// removes that claim.
fn claims(extra: Value) -> Claims<Map<String, Value>> {
    let mut m: Map<String, Value> =
        serde_json::from_value(json!({"iss": IDP, "sub": "john", "aud": ISSUER})).unwrap();
    if let Value::Object(e) = extra {
        for (k, v) in e {
            if v.is_null() {
                m.remove(&k);
            } else {
                m.insert(k, v);
            }
        }
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
    let t = setup(
        json!({"type": "jwt", "jwt": {"iss": IDP, "secret": SECRET}, "map_user": {"claims": ["sub"]}}),
    );
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
    let t = setup(
        json!({"type": "jwt", "jwt": {"iss": IDP, "secret": SECRET, "aud": "my-api"}, "map_user": {"claims": ["sub"]}}),
    );
    let good = hs256(json!({"aud": "my-api"}));
    assert_eq!(api(&t, &good).status(), 200);
    let parts: Vec<&str> = good.split('.').collect();
    let cases = vec![
        ("wrong aud", hs256(json!({"aud": "other"}))),
        ("our default audience is not my-api", hs256(json!({}))),
        ("no aud", hs256(json!({"aud": null}))),
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
    let t = setup(
        json!({"type": "jwt", "jwt": {"iss": IDP}, "jwks_uri": url, "map_user": {"claims": ["sub"]}}),
    );
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
    let t = setup(
        json!({"type": "jwt", "jwt": {"iss": IDP}, "jwks_uri": url, "map_user": {"claims": ["sub"]}}),
    );
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
    let t = setup(
        json!({"type": "jwt", "jwt": {"iss": IDP}, "jwks": {"keys": [jwk]}, "map_user": {"claims": ["sub"]}}),
    );
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
        json!({"type": "opaque", "introspection_endpoint": {"url": url, "authorization": "Basic cnM6cnM="},
               "map_user": {"claims": ["sub"]}}),
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

/// HS256 with any header (the `typ` games).
fn hs256_with(header: Header, extra: Value) -> String {
    Hs256
        .token(&header, &claims(extra), &Hs256Key::new(SECRET))
        .unwrap()
}

#[test]
fn validation_of_audience_and_map_user() {
    let t = TestApp::new();
    let base = |extra: Value| {
        let mut d = json!({"type": "jwt", "jwt": {"iss": IDP, "secret": SECRET}});
        for (k, v) in extra.as_object().unwrap() {
            if k == "aud" {
                d["jwt"]["aud"] = v.clone();
            } else {
                d[k] = v.clone();
            }
        }
        d
    };
    let bad = |body: Value, field: &str| {
        let r = t.admin_put("/TokenIntrospector/x", body);
        assert_eq!(r.status(), 422, "{}", r.text());
        assert_eq!(r.json()["field"], field, "{}", r.text());
    };
    bad(base(json!({"aud": []})), "jwt.aud");
    bad(base(json!({"aud": [""]})), "jwt.aud");
    bad(base(json!({"aud": 7})), "jwt.aud");
    bad(base(json!({"audience": {"a": 1}})), "audience");
    bad(base(json!({"aud": "a", "audience": "b"})), "audience");
    bad(base(json!({"map_user": true})), "map_user");
    bad(base(json!({"map_user": {}})), "map_user.claims");
    bad(base(json!({"map_user": {"claims": []}})), "map_user.claims");
    bad(
        base(json!({"map_user": {"claims": ["email"]}})),
        "map_user.claims.0",
    );
    bad(
        base(json!({"map_user": {"claims": ["sub", "sub"]}})),
        "map_user.claims.1",
    );
    // `username` is an RFC 7662 answer field, not a JWT claim we map.
    bad(
        base(json!({"map_user": {"claims": ["username"]}})),
        "map_user.claims.0",
    );
    bad(
        base(json!({"map_user": {"claims": ["sub"], "users": ["john"]}})),
        "map_user.users",
    );
    bad(
        base(json!({"map_user": {"claims": ["sub"], "match": {}}})),
        "map_user.match",
    );
    bad(
        json!({"type": "opaque", "introspection_endpoint": {"url": "https://idp.example/i"}, "audience": []}),
        "audience",
    );
    assert!(t.kv.dump().is_empty());
    for ok in [
        base(json!({"aud": ["a", "b"], "map_user": {"claims": ["box_user", "sub"]}})),
        base(
            json!({"audience": "a", "map_user": {"claims": ["sub"], "match": {"data": {"idp": "corp"}}}}),
        ),
        json!({"type": "opaque", "introspection_endpoint": {"url": "https://idp.example/i"},
               "audience": ["a"], "map_user": {"claims": ["username"]}}),
    ] {
        let r = t.admin_put("/TokenIntrospector/x", ok);
        assert!([200, 201].contains(&r.status()), "{}", r.text());
    }
}

#[test]
fn the_audience_is_ours_unless_the_introspector_names_others() {
    let t = setup(json!({"type": "jwt", "jwt": {"iss": IDP, "secret": SECRET}}));
    t.admin_put(
        "/AccessPolicy/idp-users",
        json!({"engine": "matcho", "matcho": {"jwt": {"iss": IDP}}}),
    );
    assert_eq!(api(&t, &hs256(json!({}))).status(), 200, "aud: our issuer");
    assert_eq!(
        api(&t, &hs256(json!({"aud": ["x", ISSUER]}))).status(),
        200,
        "a list naming us"
    );
    for (name, tok) in [
        ("another RP", hs256(json!({"aud": "some-other-rp"}))),
        ("no aud", hs256(json!({"aud": null}))),
        ("a list without us", hs256(json!({"aud": ["a", "b"]}))),
        ("aud not a string", hs256(json!({"aud": 5}))),
    ] {
        let r = api(&t, &tok);
        assert_eq!(r.status(), 401, "{name}: {}", r.text());
        assert_eq!(r.json()["error"], "invalid_token", "{name}");
    }
    // A list in the introspector: any of them.
    t.admin_put(
        "/TokenIntrospector/idp",
        json!({"type": "jwt", "jwt": {"iss": IDP, "secret": SECRET, "aud": ["api-1", "api-2"]}}),
    );
    assert_eq!(api(&t, &hs256(json!({"aud": "api-2"}))).status(), 200);
    assert_eq!(api(&t, &hs256(json!({}))).status(), 401, "ours no longer");
}

#[test]
fn id_tokens_are_not_access_tokens() {
    let t = setup(json!({"type": "jwt", "jwt": {"iss": IDP, "secret": SECRET}}));
    t.admin_put(
        "/AccessPolicy/idp-users",
        json!({"engine": "matcho", "matcho": {"jwt": {"iss": IDP}}}),
    );
    let typ = |v: &str| Header::empty().with_token_type(v);
    for (name, tok) in [
        ("no typ", hs256(json!({}))),
        ("typ JWT", hs256_with(typ("JWT"), json!({}))),
        ("typ at+jwt", hs256_with(typ("at+jwt"), json!({}))),
        (
            "typ application/at+jwt",
            hs256_with(typ("application/at+jwt"), json!({})),
        ),
        ("Keycloak typ claim Bearer", hs256(json!({"typ": "Bearer"}))),
        ("azp alone", hs256(json!({"azp": "spa"}))),
    ] {
        assert_eq!(api(&t, &tok).status(), 200, "{name}");
    }
    for (name, tok, says) in [
        ("nonce", hs256(json!({"nonce": "n-1"})), "nonce"),
        ("at_hash", hs256(json!({"at_hash": "x"})), "at_hash"),
        ("c_hash", hs256(json!({"c_hash": "x"})), "c_hash"),
        ("s_hash", hs256(json!({"s_hash": "x"})), "s_hash"),
        (
            "typ id_token",
            hs256_with(typ("id_token"), json!({})),
            "id_token",
        ),
        ("typ id+jwt", hs256_with(typ("id+jwt"), json!({})), "id+jwt"),
        (
            "typ logout+jwt",
            hs256_with(typ("logout+jwt"), json!({})),
            "logout+jwt",
        ),
        ("Keycloak typ claim ID", hs256(json!({"typ": "ID"})), "ID"),
        (
            "Keycloak typ claim Refresh",
            hs256(json!({"typ": "Refresh"})),
            "Refresh",
        ),
    ] {
        let r = api(&t, &tok);
        assert_eq!(r.status(), 401, "{name}: {}", r.text());
        assert_eq!(r.json()["error"], "invalid_token", "{name}");
        let d = r.json()["error_description"].as_str().unwrap().to_string();
        assert!(
            d.contains(says) && d.contains("not accepted as an access token"),
            "{name}: {d}"
        );
    }
}

#[test]
fn an_external_sub_becomes_a_local_user_only_through_map_user() {
    let t = setup(json!({"type": "jwt", "jwt": {"iss": IDP, "secret": SECRET}}));
    t.admin_put(
        "/User/jane",
        json!({"email": "jane@example.com", "data": {"idp": "corp"}}),
    );
    // Without map_user: the claims are `jwt`, `user` stays null, a user policy does not match.
    assert_eq!(api(&t, &hs256(json!({}))).status(), 403);
    t.admin_put(
        "/AccessPolicy/jwt-only",
        json!({"engine": "matcho", "matcho": {"jwt": {"iss": IDP, "sub": "john"}, "user": "nil?"}}),
    );
    assert_eq!(
        api(&t, &hs256(json!({}))).status(),
        200,
        "policies see jwt, user null"
    );
    t.admin_put(
        "/AccessPolicy/jwt-only",
        json!({"engine": "matcho", "matcho": {"jwt": {"iss": "nobody"}}}),
    );
    // Opted in with Aidbox's order: box_user first, then sub.
    t.admin_put(
        "/TokenIntrospector/idp",
        json!({"type": "jwt", "jwt": {"iss": IDP, "secret": SECRET}, "map_user": {"claims": ["box_user", "sub"]}}),
    );
    assert_eq!(api(&t, &hs256(json!({}))).status(), 200, "sub john");
    assert_eq!(
        api(&t, &hs256(json!({"sub": "ext-1", "box_user": "john"}))).status(),
        200,
        "box_user john"
    );
    assert_eq!(
        api(&t, &hs256(json!({"sub": "john", "box_user": "jane"}))).status(),
        403,
        "box_user wins over sub"
    );
    assert_eq!(
        api(&t, &hs256(json!({"sub": "nobody-here"}))).status(),
        403,
        "an unknown user is no user"
    );
    // Only `sub`: box_user is not read.
    t.admin_put(
        "/TokenIntrospector/idp",
        json!({"type": "jwt", "jwt": {"iss": IDP, "secret": SECRET}, "map_user": {"claims": ["sub"]}}),
    );
    assert_eq!(
        api(&t, &hs256(json!({"sub": "ext-1", "box_user": "john"}))).status(),
        403
    );
    // `match`: the issuer speaks only for users that carry its mark; john does not.
    t.admin_put(
        "/TokenIntrospector/idp",
        json!({"type": "jwt", "jwt": {"iss": IDP, "secret": SECRET},
               "map_user": {"claims": ["sub"], "match": {"data": {"idp": "corp"}}}}),
    );
    let r = api(&t, &hs256(json!({})));
    assert_eq!(r.status(), 401, "{}", r.text());
    assert!(r.json()["error_description"]
        .as_str()
        .unwrap()
        .contains("map_user.match"));
    t.admin_put(
        "/AccessPolicy/idp-users",
        json!({"engine": "matcho", "matcho": {"jwt": {"iss": IDP}, "user": {"id": "jane"}}}),
    );
    assert_eq!(api(&t, &hs256(json!({"sub": "jane"}))).status(), 200);
}

#[test]
fn opaque_answers_meet_the_same_rules() {
    let url = "https://idp.example/introspect";
    let t = setup(json!({"type": "opaque", "introspection_endpoint": {"url": url}}));
    let answer = |extra: Value| {
        let mut a = json!({"active": true, "sub": "john", "scope": "read", "exp": T0 + 600});
        for (k, v) in extra.as_object().unwrap() {
            a[k] = v.clone();
        }
        a.to_string()
    };
    // Unmapped: john's policy does not match; a jwt policy does.
    t.http.route(url, 200, &answer(json!({})));
    assert_eq!(api(&t, "op-1").status(), 403);
    t.admin_put(
        "/AccessPolicy/idp-users",
        json!({"engine": "matcho", "matcho": {"jwt": {"scope": "read"}}}),
    );
    assert_eq!(api(&t, "op-2").status(), 200, "no aud in the answer");
    t.http
        .route(url, 200, &answer(json!({"aud": ["x", ISSUER]})));
    assert_eq!(api(&t, "op-3").status(), 200, "aud naming us");
    for (i, (name, extra)) in [
        (
            "aud of another API",
            json!({"aud": "https://other.example"}),
        ),
        ("a refresh token", json!({"token_type": "refresh_token"})),
        ("an ID token (Keycloak typ ID)", json!({"typ": "ID"})),
        ("an ID token (nonce)", json!({"nonce": "n"})),
    ]
    .into_iter()
    .enumerate()
    {
        t.http.route(url, 200, &answer(extra));
        let r = api(&t, &format!("op-bad-{i}"));
        assert_eq!(r.status(), 401, "{name}: {}", r.text());
        assert_eq!(r.json()["error"], "invalid_token", "{name}");
    }
    t.http
        .route(url, 200, &answer(json!({"token_type": "Bearer"})));
    assert_eq!(api(&t, "op-4").status(), 200, "token_type Bearer");
    // Mapping `username` when opted in.
    t.admin_put(
        "/TokenIntrospector/idp",
        json!({"type": "opaque", "introspection_endpoint": {"url": url}, "map_user": {"claims": ["username"]}}),
    );
    t.admin_put(
        "/AccessPolicy/idp-users",
        json!({"engine": "matcho", "matcho": {"user": {"id": "john"}}}),
    );
    t.http
        .route(url, 200, &answer(json!({"sub": "x-1", "username": "john"})));
    assert_eq!(api(&t, "op-5").status(), 200);
    // A cached answer is checked against the introspector as configured now.
    t.admin_put(
        "/TokenIntrospector/idp",
        json!({"type": "opaque", "introspection_endpoint": {"url": url}}),
    );
    assert_eq!(api(&t, "op-5").status(), 403, "mapping withdrawn");
}

// ---- /auth/introspect and /auth/revoke for our tokens of every audience --------------------

const OTHER: &str = "https://other.example";

fn post_form(t: &TestApp, path: &str, auth: &str, form: &[(&str, &str)]) -> TestResponse {
    let body = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(form)
        .finish();
    t.call(
        TestApp::req("POST", path)
            .header("authorization", auth)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body.into_bytes())
            .unwrap(),
    )
}

fn introspect(t: &TestApp, token: &str) -> Value {
    let r = post_form(
        t,
        "/auth/introspect",
        &TestApp::basic("rs", "rs"),
        &[("token", token)],
    );
    assert_eq!(r.status(), 200, "{}", r.text());
    r.json()
}

fn audience_setup() -> TestApp {
    let t = TestApp::new();
    for (path, body) in [
        (
            "/Client/app",
            json!({"secret": "s", "grant_types": ["password", "client_credentials"],
                   "audience": "#https://other\\.example(/.*)?",
                   "auth": {"password": {"refresh_token": true}}}),
        ),
        (
            "/Client/rs",
            json!({"secret": "rs", "grant_types": ["client_credentials"]}),
        ),
        (
            "/User/john",
            json!({"email": "john@example.com", "password": "pass123"}),
        ),
        ("/AccessPolicy/p", json!({"engine": "allow"})),
    ] {
        let r = t.admin_put(path, body);
        assert!([200, 201].contains(&r.status()), "{path}: {}", r.text());
    }
    t
}

#[test]
fn tokens_for_another_audience_are_introspected_and_revoked() {
    let t = audience_setup();
    let app = TestApp::basic("app", "s");
    let r = t.token(
        Some(&app),
        &[("grant_type", "client_credentials"), ("audience", OTHER)],
    );
    assert_eq!(r.status(), 200, "{}", r.text());
    let at = r.json()["access_token"].as_str().unwrap().to_string();
    let j = introspect(&t, &at);
    assert_eq!(j["active"], true, "{j}");
    assert_eq!(j["aud"], OTHER);
    assert_eq!(j["client_id"], "app");
    // Not an access token for our API, though.
    assert_eq!(api(&t, &at).status(), 401);
    // A wrong hint does not make it inactive (RFC 7662 2.1).
    let hinted = post_form(
        &t,
        "/auth/introspect",
        &TestApp::basic("rs", "rs"),
        &[("token", &at), ("token_type_hint", "refresh_token")],
    );
    assert_eq!(hinted.json()["active"], true);
    // Another client cannot revoke it; its own client can.
    let rv = |auth: &str, tok: &str| post_form(&t, "/auth/revoke", auth, &[("token", tok)]);
    assert_eq!(rv(&TestApp::basic("rs", "rs"), &at).status(), 200);
    assert_eq!(introspect(&t, &at)["active"], true);
    assert_eq!(rv(&app, &at).status(), 200);
    assert_eq!(introspect(&t, &at), json!({"active": false}));

    // The password grant with a refresh token for the other audience.
    let r = t.token(
        Some(&app),
        &[
            ("grant_type", "password"),
            ("username", "john"),
            ("password", "pass123"),
            ("resource", OTHER),
        ],
    );
    assert_eq!(r.status(), 200, "{}", r.text());
    let at = r.json()["access_token"].as_str().unwrap().to_string();
    let rt = r.json()["refresh_token"].as_str().unwrap().to_string();
    let j = introspect(&t, &at);
    assert_eq!(
        (j["active"].clone(), j["aud"].clone()),
        (json!(true), json!(OTHER))
    );
    assert_eq!(j["username"], "john@example.com");
    let f = post_form(&t, "/auth/introspect", &app, &[("token", &rt)]).json();
    assert_eq!(f["active"], true, "{f}");
    assert_eq!(f["aud"], OTHER);
    assert_eq!(f["token_type"], "refresh_token");
    // Revoking the refresh token revokes the family and the access tokens it issued.
    assert_eq!(rv(&app, &rt).status(), 200);
    assert_eq!(introspect(&t, &at), json!({"active": false}));
    assert_eq!(
        post_form(&t, "/auth/introspect", &app, &[("token", &rt)]).json(),
        json!({"active": false})
    );

    // Our own API's tokens: revocation is refused at the API (as before).
    let r = t.token(Some(&app), &[("grant_type", "client_credentials")]);
    let at = r.json()["access_token"].as_str().unwrap().to_string();
    assert_eq!(api(&t, &at).status(), 200);
    assert_eq!(introspect(&t, &at)["aud"], ISSUER);
    assert_eq!(rv(&app, &at).status(), 200);
    assert_eq!(api(&t, &at).status(), 401);
    assert_eq!(introspect(&t, &at), json!({"active": false}));
}

#[test]
fn introspection_answers_only_for_tokens_we_issued() {
    let t = audience_setup();
    t.admin_put(
        "/TokenIntrospector/idp",
        json!({"type": "jwt", "jwt": {"iss": IDP, "secret": SECRET}}),
    );
    let external = hs256(json!({}));
    t.admin_put(
        "/AccessPolicy/p",
        json!({"engine": "matcho", "matcho": {"jwt": {"iss": IDP}}}),
    );
    assert_eq!(api(&t, &external).status(), 200, "valid for our API");
    assert_eq!(introspect(&t, &external), json!({"active": false}));
    // Nor for our own ID tokens.
    t.admin_put(
        "/Client/app",
        json!({"secret": "s", "grant_types": ["password"], "allowed-scopes": ["openid"],
               "scope": ["openid"]}),
    );
    let r = t.token(
        Some(&TestApp::basic("app", "s")),
        &[
            ("grant_type", "password"),
            ("username", "john"),
            ("password", "pass123"),
            ("scope", "openid"),
        ],
    );
    assert_eq!(r.status(), 200, "{}", r.text());
    let id_token = r.json()["id_token"].as_str().unwrap().to_string();
    assert_eq!(introspect(&t, &id_token), json!({"active": false}));
}

#[test]
fn smart_launch_tokens_introspect_with_their_context() {
    use common::{params, redirect, Browser};
    use edge_authorizer::oauth::pkce;
    const CB: &str = "https://smart.example/cb";
    const FHIR: &str = "https://fhir.example/r4";
    const VERIFIER: &str = "smart-verifier-0123456789-0123456789-0123456789";
    let scopes = [
        "launch/patient",
        "openid",
        "fhirUser",
        "offline_access",
        "patient/*.rs",
    ];
    let t = TestApp::new();
    let r = t.admin_put("/Client/chart", json!({
        "type": "smart-app", "fhir-base-url": FHIR, "first_party": true, "secret": "chart-secret",
        "grant_types": ["authorization_code"], "smart": {"launch_uri": "https://smart.example/launch"},
        "scope": scopes, "allowed-scopes": scopes,
        "auth": {"authorization_code": {"redirect_uri": CB, "refresh_token": true}}}));
    assert_eq!(r.status(), 201, "{}", r.text());
    t.admin_put(
        "/Client/rs",
        json!({"secret": "rs", "grant_types": ["client_credentials"]}),
    );
    t.admin_put(
        "/User/anna",
        json!({"password": "pass123", "fhirUser": {"reference": "Patient/pt-2"}}),
    );
    let challenge = pkce::s256(VERIFIER);
    let scope = scopes.join(" ");
    let q = common::query_with(
        vec![
            ("response_type", "code"),
            ("client_id", "chart"),
            ("redirect_uri", CB),
            ("scope", &scope),
            ("state", "s"),
            ("aud", FHIR),
            ("code_challenge", &challenge),
            ("code_challenge_method", "S256"),
        ],
        &[],
    );
    let mut b = Browser::new(&t);
    redirect(b.get(&format!("/auth/authorize?{q}")));
    let cb = redirect(b.login(&q, "anna", "pass123"));
    let code = params(&cb)
        .get("code")
        .cloned()
        .unwrap_or_else(|| panic!("no code: {cb}"));
    let chart = TestApp::basic("chart", "chart-secret");
    let r = t.token(
        Some(&chart),
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", CB),
            ("code_verifier", VERIFIER),
        ],
    );
    assert_eq!(r.status(), 200, "{}", r.text());
    let (at, rt) = (
        r.json()["access_token"].as_str().unwrap().to_string(),
        r.json()["refresh_token"].as_str().unwrap().to_string(),
    );
    let j = introspect(&t, &at);
    assert_eq!(j["active"], true, "{j}");
    assert_eq!(j["patient"], "pt-2");
    assert_eq!(j["fhirUser"], format!("{FHIR}/Patient/pt-2"));
    assert_eq!(j["client_id"], "chart");
    let f = post_form(&t, "/auth/introspect", &chart, &[("token", &rt)]).json();
    assert_eq!(f["active"], true, "{f}");
    assert_eq!(f["patient"], "pt-2");
    assert_eq!(
        post_form(&t, "/auth/revoke", &chart, &[("token", &rt)]).status(),
        200
    );
    assert_eq!(introspect(&t, &at), json!({"active": false}));
}

// ---- issue 12: one opaque introspector per token; a moved introspector loses its secrets ----

#[test]
fn an_opaque_token_goes_to_the_one_introspector_configuration_names() {
    let (a, b, d) = (
        "https://gh.example/i",
        "https://gl.example/i",
        "https://default.example/i",
    );
    let t = setup(json!({"type": "opaque", "token_prefix": "ghp_",
                         "introspection_endpoint": {"url": a}, "map_user": {"claims": ["sub"]}}));
    let r = t.admin_put(
        "/TokenIntrospector/gl",
        json!({"type": "opaque", "token_prefix": "glpat-", "introspection_endpoint": {"url": b}}),
    );
    assert_eq!(r.status(), 201, "{}", r.text());
    let active = json!({"active": true, "sub": "john", "exp": T0 + 600}).to_string();
    for u in [a, b, d] {
        t.http.route(u, 200, &active);
    }
    t.admin_put(
        "/AccessPolicy/idp-users",
        json!({"engine": "matcho", "matcho": {"user": {"id": "john"}}}),
    );
    assert_eq!(api(&t, "ghp_one").status(), 200);
    assert_eq!((t.http.count(a), t.http.count(b)), (1, 0));
    // Accepted (403: no policy for a token without a local user), not 401.
    assert_eq!(api(&t, "glpat-two").status(), 403);
    assert_eq!((t.http.count(a), t.http.count(b)), (1, 1));
    // No prefix matches and there is no default: refused, sent nowhere.
    assert_eq!(api(&t, "plain-three").status(), 401);
    assert_eq!(t.http.calls.borrow().len(), 2);
    // One default (no prefix) takes the rest; a second default or a shared prefix is refused.
    let r = t.admin_put(
        "/TokenIntrospector/default",
        json!({"type": "opaque", "introspection_endpoint": {"url": d}}),
    );
    assert_eq!(r.status(), 201, "{}", r.text());
    assert_eq!(api(&t, "plain-four").status(), 403);
    assert_eq!(
        (t.http.count(a), t.http.count(b), t.http.count(d)),
        (1, 1, 1)
    );
    let r = t.admin_put(
        "/TokenIntrospector/default2",
        json!({"type": "opaque", "introspection_endpoint": {"url": d}}),
    );
    assert_eq!(r.status(), 409, "{}", r.text());
    let r = t.admin_put(
        "/TokenIntrospector/gh2",
        json!({"type": "opaque", "token_prefix": "ghp_", "introspection_endpoint": {"url": d}}),
    );
    assert_eq!(r.status(), 409, "{}", r.text());
    // Re-writing an introspector does not clash with itself.
    let r = t.admin_put(
        "/TokenIntrospector/default",
        json!({"type": "opaque", "introspection_endpoint": {"url": d}, "audience": "x"}),
    );
    assert_eq!(r.status(), 200, "{}", r.text());
    for bad in [json!(""), json!("has space"), json!(7)] {
        let r = t.admin_put(
            "/TokenIntrospector/x",
            json!({"type": "opaque", "token_prefix": bad, "introspection_endpoint": {"url": d}}),
        );
        assert_eq!(r.status(), 422, "{}", r.text());
        assert_eq!(r.json()["field"], "token_prefix");
    }
    let r = t.admin_put(
        "/TokenIntrospector/x",
        json!({"type": "jwt", "token_prefix": "a", "jwt": {"iss": "https://x.example", "secret": SECRET_STR}}),
    );
    assert_eq!(r.status(), 422, "{}", r.text());
}

const SECRET_STR: &str = "0123456789abcdef0123456789abcdef";

#[test]
fn a_put_that_moves_an_introspector_drops_its_stored_secrets() {
    let (a, b) = ("https://real.example/i", "https://elsewhere.example/i");
    let t = setup(json!({"type": "opaque",
                         "introspection_endpoint": {"url": a, "authorization": "Bearer real"}}));
    let stored = |t: &TestApp| -> Value {
        serde_json::from_str(&t.kv.dump()["TokenIntrospector/idp"]).unwrap()
    };
    // Same place: kept.
    t.admin_put(
        "/TokenIntrospector/idp",
        json!({"type": "opaque", "introspection_endpoint": {"url": a}, "audience": "x"}),
    );
    assert_eq!(
        stored(&t)["introspection_endpoint"]["authorization"],
        "Bearer real"
    );
    // Another URL: dropped, and moving back does not bring it back.
    t.admin_put(
        "/TokenIntrospector/idp",
        json!({"type": "opaque", "introspection_endpoint": {"url": b}}),
    );
    assert!(stored(&t)["introspection_endpoint"]
        .get("authorization")
        .is_none());
    t.admin_put(
        "/TokenIntrospector/idp",
        json!({"type": "opaque", "introspection_endpoint": {"url": a}}),
    );
    assert!(stored(&t)["introspection_endpoint"]
        .get("authorization")
        .is_none());
    // A new secret in the body is taken with the move.
    t.admin_put(
        "/TokenIntrospector/idp",
        json!({"type": "opaque", "introspection_endpoint": {"url": b, "authorization": "Bearer new"}}),
    );
    assert_eq!(
        stored(&t)["introspection_endpoint"]["authorization"],
        "Bearer new"
    );
    // HS256: another issuer without the secret has no key source left.
    let r = t.admin_put(
        "/TokenIntrospector/hs",
        json!({"type": "jwt", "jwt": {"iss": "https://a.example", "secret": SECRET_STR}}),
    );
    assert_eq!(r.status(), 201, "{}", r.text());
    let r = t.admin_put(
        "/TokenIntrospector/hs",
        json!({"type": "jwt", "jwt": {"iss": "https://a.example"}}),
    );
    assert_eq!(
        r.status(),
        200,
        "same issuer keeps the secret: {}",
        r.text()
    );
    let r = t.admin_put(
        "/TokenIntrospector/hs",
        json!({"type": "jwt", "jwt": {"iss": "https://b.example"}}),
    );
    assert_eq!(r.status(), 422, "{}", r.text());
}
