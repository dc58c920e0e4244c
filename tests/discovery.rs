//! Discovery documents (RFC 8414, OIDC Discovery), the JWKS, and key rotation.

use edge_authorizer::context::Outcome;
use edge_authorizer::jwt::keys::KeySet;
use edge_authorizer::testing::{ed25519_jwk, TestApp, TestResponse, ISSUER};
use serde_json::{json, Value};

fn get(t: &TestApp, path: &str) -> TestResponse {
    t.call(TestApp::req("GET", path).body(vec![]).unwrap())
}

#[test]
fn metadata_lists_what_is_implemented() {
    let t = TestApp::new();
    for path in [
        "/.well-known/openid-configuration",
        "/.well-known/oauth-authorization-server",
    ] {
        let r = get(&t, path);
        assert_eq!(r.status(), 200);
        let m = r.json();
        assert_eq!(m["issuer"], ISSUER);
        assert_eq!(m["token_endpoint"], format!("{ISSUER}/auth/token"));
        assert_eq!(m["jwks_uri"], format!("{ISSUER}/.well-known/jwks.json"));
        assert_eq!(
            m["authorization_endpoint"],
            format!("{ISSUER}/auth/authorize")
        );
        assert_eq!(m["revocation_endpoint"], format!("{ISSUER}/auth/revoke"));
        assert_eq!(
            m["introspection_endpoint"],
            format!("{ISSUER}/auth/introspect")
        );
        assert_eq!(
            m["grant_types_supported"],
            json!([
                "authorization_code",
                "implicit",
                "client_credentials",
                "password",
                "refresh_token"
            ])
        );
        assert_eq!(m["response_types_supported"], json!(["code", "token"]));
        assert_eq!(m["code_challenge_methods_supported"], json!(["S256"]));
        assert_eq!(
            m["token_endpoint_auth_methods_supported"],
            json!([
                "client_secret_basic",
                "client_secret_post",
                "private_key_jwt",
                "none"
            ])
        );
        assert!(r.header("cache-control").unwrap().contains("max-age"));
    }
    let oidc = get(&t, "/.well-known/openid-configuration").json();
    assert_eq!(oidc["userinfo_endpoint"], format!("{ISSUER}/auth/userinfo"));
    assert_eq!(
        oidc["id_token_signing_alg_values_supported"],
        json!(["EdDSA"])
    );
    assert!(get(&t, "/.well-known/oauth-authorization-server")
        .json()
        .get("userinfo_endpoint")
        .is_none());
    assert_eq!(get(&t, "/.well-known/nothing").status(), 404);
}

#[test]
fn issuer_defaults_to_the_request_origin() {
    let t = TestApp::with_config(|c| c.issuer = None);
    let r = t.call(
        http::Request::builder()
            .uri("http://127.0.0.1:8787/.well-known/openid-configuration")
            .body(vec![])
            .unwrap(),
    );
    assert_eq!(r.json()["issuer"], "http://127.0.0.1:8787");
}

#[test]
fn jwks_publishes_public_keys_only() {
    let t = TestApp::new();
    let r = get(&t, "/.well-known/jwks.json");
    let keys = r.json()["keys"].as_array().unwrap().clone();
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0]["kid"], "test-key-1");
    assert_eq!(keys[0]["kty"], "OKP");
    assert_eq!(keys[0]["crv"], "Ed25519");
    assert_eq!(keys[0]["alg"], "EdDSA");
    assert!(keys[0].get("d").is_none(), "private part published");
}

fn token(t: &TestApp) -> String {
    t.admin_put(
        "/Client/c",
        json!({"secret": "s", "grant_types": ["client_credentials"]}),
    );
    t.admin_put("/AccessPolicy/p", json!({"engine": "allow"}));
    t.token(
        Some(&TestApp::basic("c", "s")),
        &[("grant_type", "client_credentials")],
    )
    .json()["access_token"]
        .as_str()
        .unwrap()
        .to_string()
}

fn status_with(t: &TestApp, tok: &str) -> u16 {
    match t.get_with("/Patient", &format!("Bearer {tok}")) {
        Outcome::Respond(r) => r.status().as_u16(),
        _ => 0,
    }
}

/// Rotation as docs/deploy.md describes it: the new key signs, the old one stays in PUBLISHED_KEYS until
/// its tokens expire, then is dropped.
#[test]
fn keys_rotate_without_breaking_live_tokens() {
    let old = ed25519_jwk([1; 32], "old");
    let new = ed25519_jwk([2; 32], "new");
    let t_old = TestApp::with_config(|c| c.keys = KeySet::from_config(Some(&old), None).unwrap());
    let old_token = token(&t_old);

    let old_public: Value = {
        let mut v: Value = serde_json::from_str(&old).unwrap();
        v.as_object_mut().unwrap().remove("d");
        v
    };
    let published = json!([old_public]).to_string();
    let t_new = TestApp::with_config(|c| {
        c.keys = KeySet::from_config(Some(&new), Some(&published)).unwrap()
    });
    let new_token = token(&t_new);
    assert_eq!(
        status_with(&t_new, &old_token),
        200,
        "old tokens still verify"
    );
    assert_eq!(status_with(&t_new, &new_token), 200);
    let kids: Vec<Value> = get(&t_new, "/.well-known/jwks.json").json()["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].clone())
        .collect();
    assert_eq!(kids, vec![json!("new"), json!("old")]);

    let t_done = TestApp::with_config(|c| c.keys = KeySet::from_config(Some(&new), None).unwrap());
    token(&t_done);
    assert_eq!(
        status_with(&t_done, &old_token),
        401,
        "a dropped key's tokens stop"
    );
}

#[test]
fn bad_key_configuration_is_refused() {
    assert!(KeySet::from_config(Some("not json"), None).is_err());
    // d of one key with x of another.
    let mut mixed: Value = serde_json::from_str(&ed25519_jwk([1; 32], "k")).unwrap();
    let other: Value = serde_json::from_str(&ed25519_jwk([2; 32], "k")).unwrap();
    mixed["x"] = other["x"].clone();
    assert!(KeySet::from_config(Some(&mixed.to_string()), None)
        .unwrap_err()
        .contains("do not belong"));
    // A public key as SIGNING_KEY.
    let mut public: Value = serde_json::from_str(&ed25519_jwk([1; 32], "k")).unwrap();
    public.as_object_mut().unwrap().remove("d");
    assert!(KeySet::from_config(Some(&public.to_string()), None).is_err());
    // alg that does not fit the key type.
    let mut wrong_alg: Value = serde_json::from_str(&ed25519_jwk([1; 32], "k")).unwrap();
    wrong_alg["alg"] = json!("HS256");
    assert!(KeySet::from_config(Some(&wrong_alg.to_string()), None).is_err());
    assert!(KeySet::from_config(Some(r#"{"kty":"oct","k":"c2VjcmV0"}"#), None).is_err());
}
