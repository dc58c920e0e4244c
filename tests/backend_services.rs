//! SMART Backend Services (RFC 7523 private_key_jwt): `client_credentials` with a client
//! assertion signed by the client's own key (RS384, ES384), registered as `jwks` or `jwks_uri`.

use base64::Engine;
use edge_authorizer::testing::{TestApp, TestResponse, ISSUER, T0};
use jwt_compact::alg::{Rsa, RsaPrivateKey};
use jwt_compact::{AlgorithmExt, Claims, Header};
use serde_json::{json, Map, Value};

const ASSERTION: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

fn b64(s: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s)
}

fn assertion_claims(extra: Value) -> Map<String, Value> {
    let mut m: Map<String, Value> = serde_json::from_value(json!({
        "iss": "bulk-export", "sub": "bulk-export", "aud": format!("{ISSUER}/auth/token"),
        "exp": T0 + 240, "jti": format!("jti-{}", rand::random::<u64>()),
    }))
    .unwrap();
    if let Value::Object(e) = extra {
        m.extend(e);
    }
    m
}

/// An ES384 assertion signed with p384 (JWS: base64url(header).base64url(claims).r||s).
fn es384(key: &p384::ecdsa::SigningKey, kid: &str, claims: &Map<String, Value>) -> String {
    use p384::ecdsa::signature::Signer;
    let input = format!(
        "{}.{}",
        b64(json!({"alg": "ES384", "kid": kid, "typ": "JWT"})
            .to_string()
            .as_bytes()),
        b64(Value::Object(claims.clone()).to_string().as_bytes())
    );
    let sig: p384::ecdsa::Signature = key.sign(input.as_bytes());
    format!("{input}.{}", b64(&sig.to_bytes()))
}

fn token(t: &TestApp, assertion: &str, scope: &str) -> TestResponse {
    t.token(
        None,
        &[
            ("grant_type", "client_credentials"),
            ("client_assertion_type", ASSERTION),
            ("client_assertion", assertion),
            ("scope", scope),
        ],
    )
}

fn es384_setup() -> (TestApp, p384::ecdsa::SigningKey) {
    let sk = p384::ecdsa::SigningKey::random(&mut rand::rngs::OsRng);
    let point = sk.verifying_key().to_encoded_point(false);
    let jwk = json!({"kty": "EC", "crv": "P-384", "kid": "ec-1", "x": b64(point.x().unwrap()), "y": b64(point.y().unwrap())});
    let t = TestApp::new();
    let r = t.admin_put("/Client/bulk-export", json!({"grant_types": ["client_credentials"], "allowed-scopes": ["system/*.rs"], "jwks": {"keys": [jwk]}}));
    assert_eq!(r.status(), 201, "{}", r.text());
    t.admin_put(
        "/AccessPolicy/bulk",
        json!({"engine": "allow", "link": [{"id": "bulk-export", "resourceType": "Client"}]}),
    );
    (t, sk)
}

#[test]
fn es384_assertion_gets_a_system_token_once_per_jti() {
    let (t, sk) = es384_setup();
    let claims = assertion_claims(json!({}));
    let a = es384(&sk, "ec-1", &claims);
    let r = token(&t, &a, "system/*.rs");
    assert_eq!(r.status(), 200, "{}", r.text());
    assert_eq!(r.json()["scope"], "system/*.rs");
    let at = r.json()["access_token"].as_str().unwrap().to_string();
    assert!(
        matches!(t.get_with("/Patient", &format!("Bearer {at}")), edge_authorizer::context::Outcome::Respond(ref x) if x.status() == 200)
    );
    // The same assertion again: its jti was used.
    let again = token(&t, &a, "system/*.rs");
    assert_eq!(again.status(), 401);
    assert_eq!(again.json()["error"], "invalid_client");
}

/// RFC 7523 3: `aud` identifies the authorization server; besides the token endpoint URL (SMART),
/// our issuer identifier (draft-ietf-oauth-rfc7523bis, oauth4webapi's PrivateKeyJwt), also
/// inside an array. Another issuer's identifier stays refused (in assertion_refusals too).
#[test]
fn assertion_aud_may_be_the_issuer_identifier() {
    let (t, sk) = es384_setup();
    for aud in [json!(ISSUER), json!(["https://other.example", ISSUER])] {
        let a = es384(&sk, "ec-1", &assertion_claims(json!({ "aud": aud })));
        let r = token(&t, &a, "system/*.rs");
        assert_eq!(r.status(), 200, "aud {aud}: {}", r.text());
    }
    let a = es384(
        &sk,
        "ec-1",
        &assertion_claims(json!({"aud": format!("{ISSUER}/")})),
    );
    let r = token(&t, &a, "system/*.rs");
    assert_eq!(r.status(), 401, "{}", r.text());
    assert_eq!(r.json()["error"], "invalid_client");
}

#[test]
fn assertion_refusals() {
    let (t, sk) = es384_setup();
    let other = p384::ecdsa::SigningKey::random(&mut rand::rngs::OsRng);
    let cases = vec![
        (
            "signed by another key",
            es384(&other, "ec-1", &assertion_claims(json!({}))),
        ),
        (
            "exp too far ahead",
            es384(&sk, "ec-1", &assertion_claims(json!({"exp": T0 + 600}))),
        ),
        (
            "expired",
            es384(&sk, "ec-1", &assertion_claims(json!({"exp": T0 - 120}))),
        ),
        (
            "wrong aud",
            es384(
                &sk,
                "ec-1",
                &assertion_claims(json!({"aud": "https://other/token"})),
            ),
        ),
        (
            "sub differs",
            es384(&sk, "ec-1", &assertion_claims(json!({"sub": "someone"}))),
        ),
        ("no jti", {
            let mut c = assertion_claims(json!({}));
            c.remove("jti");
            es384(&sk, "ec-1", &c)
        }),
        (
            "unknown client",
            es384(
                &sk,
                "ec-1",
                &assertion_claims(json!({"iss": "nobody", "sub": "nobody"})),
            ),
        ),
        (
            "alg none",
            format!(
                "{}.{}.",
                b64(br#"{"alg":"none","kid":"ec-1"}"#),
                b64(Value::Object(assertion_claims(json!({})))
                    .to_string()
                    .as_bytes())
            ),
        ),
    ];
    for (name, a) in cases {
        let r = token(&t, &a, "system/*.rs");
        assert_eq!(r.status(), 401, "{name}: {}", r.text());
        assert_eq!(r.json()["error"], "invalid_client", "{name}");
    }
    // Scopes outside allowed-scopes.
    assert_eq!(
        token(
            &t,
            &es384(&sk, "ec-1", &assertion_claims(json!({}))),
            "system/*.cruds"
        )
        .json()["error"],
        "invalid_scope"
    );
    // A wrong assertion type, and mixing methods.
    let r = t.token(
        None,
        &[
            ("grant_type", "client_credentials"),
            ("client_assertion_type", "urn:other"),
            ("client_assertion", "x"),
        ],
    );
    assert_eq!(r.status(), 401);
    let r = t.token(
        Some(&TestApp::basic("bulk-export", "x")),
        &[
            ("grant_type", "client_credentials"),
            ("client_assertion_type", ASSERTION),
            ("client_assertion", "x"),
        ],
    );
    assert_eq!(r.json()["error"], "invalid_request");
}

#[test]
fn rs384_assertion_with_jwks_uri() {
    use rsa::traits::PublicKeyParts;
    let sk = RsaPrivateKey::new(&mut rand::thread_rng(), 2048).unwrap();
    let pk = sk.to_public_key();
    let url = "https://bulk.example/jwks.json";
    let t = TestApp::new();
    t.http.route(url, 200, &json!({"keys": [{"kty": "RSA", "alg": "RS384", "kid": "rsa-1", "n": b64(&pk.n().to_bytes_be()), "e": b64(&pk.e().to_bytes_be())}]}).to_string());
    assert_eq!(
        t.admin_put(
            "/Client/bulk-export",
            // Issue 11: registered for what it asks (no list: no clinical scope).
            json!({"grant_types": ["client_credentials"], "jwks_uri": url, "scope": ["system/Patient.rs"]})
        )
        .status(),
        201
    );
    let claims = Claims::new(assertion_claims(json!({})));
    let a = Rsa::rs384()
        .token(&Header::empty().with_key_id("rsa-1"), &claims, &sk)
        .unwrap();
    let r = token(&t, &a, "system/Patient.rs");
    assert_eq!(r.status(), 200, "{}", r.text());
    // RS256 with the same key is not what the key is registered for.
    let rs256 = Rsa::rs256()
        .token(
            &Header::empty().with_key_id("rsa-1"),
            &Claims::new(assertion_claims(json!({}))),
            &sk,
        )
        .unwrap();
    assert_eq!(token(&t, &rs256, "system/Patient.rs").status(), 401);
    assert_eq!(
        t.admin_put("/Client/bad", json!({"jwks_uri": "ftp://x"}))
            .json()["field"],
        "jwks_uri"
    );
}

#[test]
fn system_scopes_only_through_client_credentials() {
    let t = TestApp::new();
    t.admin_put(
        "/Client/svc",
        json!({"secret": "s", "grant_types": ["client_credentials", "password"],
        "scope": ["system/*.rs", "patient/*.rs", "user/*.rs"]}),
    );
    t.admin_put(
        "/Client/bare",
        json!({"secret": "b", "grant_types": ["client_credentials"]}),
    );
    t.admin_put(
        "/User/dr",
        json!({"password": "pass123", "fhirUser": "Practitioner/p1"}),
    );
    let svc = TestApp::basic("svc", "s");
    let cc = |auth: &str, scope: &str| {
        t.token(
            Some(auth),
            &[("grant_type", "client_credentials"), ("scope", scope)],
        )
    };
    assert_eq!(cc(&svc, "system/*.rs").status(), 200);
    assert_eq!(cc(&svc, "system/Patient.read").status(), 200);
    for scope in ["user/*.rs", "patient/*.rs", "system/*.cruds"] {
        let r = cc(&svc, scope);
        assert_eq!(r.json()["error"], "invalid_scope", "{scope}: {}", r.text());
    }
    // Without a registered list: no clinical scope at all.
    let r = cc(&TestApp::basic("bare", "b"), "system/*.rs");
    assert_eq!(r.json()["error"], "invalid_scope", "{}", r.text());
    // system/ through the password grant.
    let r = t.token(
        Some(&svc),
        &[
            ("grant_type", "password"),
            ("username", "dr"),
            ("password", "pass123"),
            ("scope", "system/*.rs"),
        ],
    );
    assert_eq!(r.json()["error"], "invalid_scope", "{}", r.text());
    assert!(r.json()["error_description"]
        .as_str()
        .unwrap()
        .contains("client_credentials"));
    // The same user gets user/ through the password grant.
    let r = t.token(
        Some(&svc),
        &[
            ("grant_type", "password"),
            ("username", "dr"),
            ("password", "pass123"),
            ("scope", "user/*.rs"),
        ],
    );
    assert_eq!(r.status(), 200, "{}", r.text());
}

#[test]
fn a_keyed_client_without_an_assertion_is_not_public() {
    // Keys and no secret: confidential. Only client_id was enough for the password grant (a
    // token of this client, with its linked policies, for anyone with a user's password).
    let sk = p384::ecdsa::SigningKey::random(&mut rand::rngs::OsRng);
    let point = sk.verifying_key().to_encoded_point(false);
    let jwk = json!({"kty": "EC", "crv": "P-384", "kid": "ec-1", "x": b64(point.x().unwrap()), "y": b64(point.y().unwrap())});
    let t = TestApp::new();
    let client = |auth: Value| {
        json!({"grant_types": ["client_credentials", "password"], "allowed-scopes": ["system/*.rs"],
        "jwks": {"keys": [jwk.clone()]}, "auth": auth})
    };
    assert_eq!(
        t.admin_put("/Client/keyed", client(json!({}))).status(),
        201
    );
    t.admin_put("/User/u", json!({"password": "pass123"}));
    let pw = [
        ("grant_type", "password"),
        ("client_id", "keyed"),
        ("username", "u"),
        ("password", "pass123"),
    ];
    let cc = [("grant_type", "client_credentials"), ("client_id", "keyed")];
    let r = t.token(None, &pw);
    assert_eq!(r.status(), 401, "{}", r.text());
    assert_eq!(r.json()["error"], "invalid_client");
    assert_eq!(t.token(None, &cc).status(), 401);
    // Control: secret_required: false opens that flow only.
    let open = client(json!({"password": {"secret_required": false}}));
    assert_eq!(t.admin_put("/Client/keyed", open).status(), 200);
    assert_eq!(t.token(None, &pw).status(), 200);
    assert_eq!(t.token(None, &cc).status(), 401);
}
