//! The authorizer: every path the Worker does not own. Authentication, AccessPolicy evaluation,
//! forwarding with identity headers, the demo origin, and refusals.

use base64::Engine;
use edge_authorizer::context::Outcome;
use edge_authorizer::testing::{TestApp, TestResponse};
use serde_json::{json, Value};

fn respond(o: Outcome) -> TestResponse {
    match o {
        Outcome::Respond(r) => TestResponse(r),
        Outcome::Forward(f) => panic!("unexpected forward to {}", f.uri()),
        Outcome::Asset { path, .. } => panic!("unexpected asset {path}"),
    }
}

fn b64(s: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s)
}

/// The tutorial: a Basic client, a policy for it, `GET /Patient`.
fn tutorial() -> TestApp {
    let t = TestApp::new();
    t.admin_put(
        "/Client/basic",
        json!({"secret": "s3cret", "grant_types": ["basic"]}),
    );
    t
}

/// A Worker forwarding to `https://origin.internal`, with the Basic client `basic` (`s3cret`)
/// and an `allow` policy linked to it.
fn basic_client_with_origin() -> TestApp {
    let t = TestApp::with_config(|c| c.origin_url = Some("https://origin.internal".into()));
    t.admin_put(
        "/Client/basic",
        json!({"secret": "s3cret", "grant_types": ["basic"]}),
    );
    t.admin_put(
        "/AccessPolicy/p",
        json!({"engine": "allow", "link": [{"id": "basic", "resourceType": "Client"}]}),
    );
    t
}

#[test]
fn basic_auth_needs_a_policy() {
    let t = tutorial();
    let basic = TestApp::basic("basic", "s3cret");
    let r = respond(t.get_with("/Patient", &basic));
    assert_eq!(r.status(), 403);
    assert_eq!(r.json()["error"], "forbidden");

    t.admin_put(
        "/AccessPolicy/basic-policy",
        json!({"engine": "allow", "link": [{"id": "basic", "resourceType": "Client"}]}),
    );
    let r = respond(t.get_with("/Patient", &basic));
    assert_eq!(r.status(), 200, "{}", r.text());
    assert_eq!(r.json()["resourceType"], "Bundle");
    assert_eq!(r.json()["total"], 3);
    let one = respond(t.get_with("/Patient/pt-2", &basic));
    assert_eq!(one.json()["name"][0]["family"], "Windsor");
    assert_eq!(respond(t.get_with("/Patient/nope", &basic)).status(), 404);
}

#[test]
fn bad_or_missing_credentials_are_401_with_a_challenge() {
    let t = tutorial();
    let none = respond(t.send(TestApp::req("GET", "/Patient").body(vec![]).unwrap()));
    assert_eq!(none.status(), 401);
    assert_eq!(
        none.header("www-authenticate"),
        Some(
            "Bearer realm=\"edge-authorizer\", \
             resource_metadata=\"https://auth.example.test/.well-known/oauth-protected-resource\""
        )
    );
    // A global policy that allows makes the path public (Aidbox, issue 13)...
    t.admin_put("/AccessPolicy/p", json!({"engine": "allow"}));
    let public = respond(t.send(TestApp::req("GET", "/Patient").body(vec![]).unwrap()));
    assert_eq!(public.status(), 200, "{}", public.text());
    // ...but bad credentials never fall back to anonymous: still 401.

    for bad in [
        TestApp::basic("basic", "wrong"),
        TestApp::basic("nobody", "x"),
        "Basic %%%".to_string(),
        "Basic Zm9v".to_string(),                // "foo": no colon
        "Basic OnNlY3JldA==".to_string(),        // ":secret": empty id
        format!("Basic {}", "A".repeat(20_000)), // huge
    ] {
        let r = respond(t.get_with("/Patient", &bad));
        assert_eq!(r.status(), 401, "{bad:.40}: {}", r.text());
        assert!(
            r.header("www-authenticate")
                .unwrap()
                .starts_with("Basic realm="),
            "{bad:.40}"
        );
    }
    let r = respond(t.get_with("/Patient", "Digest abc"));
    assert_eq!(r.status(), 401);
    // A client without the basic grant cannot use Basic on the API, even with the right secret.
    t.admin_put(
        "/Client/cc",
        json!({"secret": "s", "grant_types": ["client_credentials"]}),
    );
    assert_eq!(
        respond(t.get_with("/Patient", &TestApp::basic("cc", "s"))).status(),
        401
    );
}

fn cc_token(t: &TestApp) -> String {
    t.admin_put(
        "/Client/api-client",
        json!({"secret": "verysecret", "grant_types": ["client_credentials"]}),
    );
    t.admin_put(
        "/AccessPolicy/api",
        json!({"engine": "allow", "link": [{"id": "api-client", "resourceType": "Client"}]}),
    );
    let r = t.token(
        Some(&TestApp::basic("api-client", "verysecret")),
        &[("grant_type", "client_credentials")],
    );
    r.json()["access_token"].as_str().unwrap().to_string()
}

#[test]
fn bearer_tokens_are_verified() {
    let t = TestApp::new();
    let tok = cc_token(&t);
    let r = respond(t.get_with("/Patient", &format!("Bearer {tok}")));
    assert_eq!(r.status(), 200, "{}", r.text());

    // Tampered payload, truncated, extra segment, garbage.
    let parts: Vec<&str> = tok.split('.').collect();
    let mut claims: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(parts[1])
            .unwrap(),
    )
    .unwrap();
    claims["client_id"] = json!("someone-else");
    let forged = format!(
        "{}.{}.{}",
        parts[0],
        b64(claims.to_string().as_bytes()),
        parts[2]
    );
    for (name, bad) in [
        ("forged", forged),
        ("truncated", format!("{}.{}", parts[0], parts[1])),
        ("extra", format!("{tok}.x")),
        ("garbage", "not-a-jwt".to_string()),
        ("alg none", format!("{}.{}.", b64(br#"{"alg":"none","typ":"at+jwt","kid":"test-key-1"}"#), parts[1])),
        ("alg NoNe", format!("{}.{}.", b64(br#"{"alg":"NoNe","typ":"at+jwt","kid":"test-key-1"}"#), parts[1])),
        ("hs256", format!("{}.{}.{}", b64(br#"{"alg":"HS256","typ":"at+jwt","kid":"test-key-1"}"#), parts[1], parts[2])),
        ("unknown kid", format!("{}.{}.{}", b64(br#"{"alg":"EdDSA","typ":"at+jwt","kid":"other"}"#), parts[1], parts[2])),
        ("wrong typ", format!("{}.{}.{}", b64(br#"{"alg":"EdDSA","typ":"JWT","kid":"test-key-1"}"#), parts[1], parts[2])),
        ("jku", format!("{}.{}.{}", b64(br#"{"alg":"EdDSA","typ":"at+jwt","kid":"test-key-1","jku":"https://evil/jwks"}"#), parts[1], parts[2])),
        ("crit", format!("{}.{}.{}", b64(br#"{"alg":"EdDSA","typ":"at+jwt","kid":"test-key-1","crit":["exp"]}"#), parts[1], parts[2])),
    ] {
        let r = respond(t.get_with("/Patient", &format!("Bearer {bad}")));
        assert_eq!(r.status(), 401, "{name}: {}", r.text());
        assert_eq!(r.json()["error"], "invalid_token", "{name}");
        let challenge = r.header("www-authenticate").unwrap();
        assert!(challenge.starts_with("Bearer realm=\"edge-authorizer\", error=\"invalid_token\""), "{name}: {challenge}");
    }
}

#[test]
fn expired_tokens_and_deleted_clients_stop_working() {
    let t = TestApp::new();
    let tok = cc_token(&t);
    let bearer = format!("Bearer {tok}");
    t.clock.advance(3600 + 29); // inside the 30 s leeway
    assert_eq!(respond(t.get_with("/Patient", &bearer)).status(), 200);
    t.clock.advance(2);
    let r = respond(t.get_with("/Patient", &bearer));
    assert_eq!(r.status(), 401);
    assert!(r.json()["error_description"]
        .as_str()
        .unwrap()
        .contains("expired"));

    let t = TestApp::new();
    let bearer = format!("Bearer {}", cc_token(&t));
    t.call(
        TestApp::req("DELETE", "/Client/api-client")
            .header("authorization", TestApp::root())
            .body(vec![])
            .unwrap(),
    );
    assert_eq!(respond(t.get_with("/Patient", &bearer)).status(), 401);
}

#[test]
fn tokens_for_another_issuer_or_audience_are_refused() {
    let t = TestApp::new();
    let tok = cc_token(&t);
    let other_host = respond(
        t.send(
            http::Request::builder()
                .uri("https://other.example/Patient")
                .header("authorization", format!("Bearer {tok}"))
                .body(vec![])
                .unwrap(),
        ),
    );
    // Same keys but this App's issuer is fixed by config, so the host does not matter...
    assert_eq!(other_host.status(), 200);
    // ...while an App configured with another audience refuses it.
    let t2 = TestApp::with_config(|c| c.audience = Some("https://api.other".into()));
    let tok2 = cc_token(&t2);
    assert_eq!(
        respond(t2.get_with("/Patient", &format!("Bearer {tok2}"))).status(),
        200
    );
    let r = respond(t2.get_with("/Patient", &format!("Bearer {tok}")));
    assert_eq!(r.status(), 401);
    assert!(r.json()["error_description"]
        .as_str()
        .unwrap()
        .contains("audience"));
}

#[test]
fn user_tokens_bring_the_user_to_policies() {
    let t = TestApp::new();
    t.admin_put(
        "/Client/myapp",
        json!({"secret": "appsecret", "grant_types": ["password"]}),
    );
    t.admin_put(
        "/User/john",
        json!({"email": "john@example.com", "password": "pass123"}),
    );
    t.admin_put("/AccessPolicy/users-read-own", json!({"engine": "matcho", "matcho": {"request-method": "get", "uri": "#^/Patient", "user": {"id": "john"}}}));
    let r = t.token(
        Some(&TestApp::basic("myapp", "appsecret")),
        &[
            ("grant_type", "password"),
            ("username", "john"),
            ("password", "pass123"),
        ],
    );
    let bearer = format!("Bearer {}", r.json()["access_token"].as_str().unwrap());
    assert_eq!(respond(t.get_with("/Patient", &bearer)).status(), 200);
    let post = respond(
        t.send(
            TestApp::req("POST", "/Patient")
                .header("authorization", &bearer)
                .body(vec![])
                .unwrap(),
        ),
    );
    assert_eq!(post.status(), 403);
    // The user is deleted: the token no longer authenticates.
    t.call(
        TestApp::req("DELETE", "/User/john")
            .header("authorization", TestApp::root())
            .body(vec![])
            .unwrap(),
    );
    assert_eq!(respond(t.get_with("/Patient", &bearer)).status(), 401);
}

#[test]
fn matcho_policies_see_the_aidbox_request_shape() {
    let t = tutorial();
    t.admin_put(
        "/AccessPolicy/p",
        json!({"engine": "matcho", "matcho": {
            "request-method": "get",
            "uri": "#^/Patient/[^/]+$",
            "params": {"resource/type": "Patient", "resource/id": "pt-1", "_format": "json"},
            "client": {"id": "basic"},
            "headers": {"x-tenant": "acme"},
        }}),
    );
    let ok = t.send(
        TestApp::req("GET", "/Patient/pt-1?_format=json")
            .header("authorization", TestApp::basic("basic", "s3cret"))
            .header("x-tenant", "acme")
            .body(vec![])
            .unwrap(),
    );
    assert_eq!(respond(ok).status(), 200);
    let wrong_tenant = t.send(
        TestApp::req("GET", "/Patient/pt-1?_format=json")
            .header("authorization", TestApp::basic("basic", "s3cret"))
            .header("x-tenant", "evil")
            .body(vec![])
            .unwrap(),
    );
    assert_eq!(respond(wrong_tenant).status(), 403);
    assert_eq!(
        respond(t.get_with(
            "/Patient/pt-2?_format=json",
            &TestApp::basic("basic", "s3cret")
        ))
        .status(),
        403
    );
}

#[test]
fn policy_request_hides_credentials() {
    use edge_authorizer::authn::Identity;
    let req = TestApp::req("POST", "/Observation?patient=pt-1&code=x")
        .header("authorization", "Basic c2VjcmV0")
        .header("cookie", "session=abc")
        .header("content-type", "application/fhir+json")
        .header("x-custom", "yes")
        .body(br#"{"resourceType":"Observation"}"#.to_vec())
        .unwrap();
    let pr = edge_authorizer::authz::policy_request(&req, &Identity::default());
    assert_eq!(pr["request-method"], "post");
    assert_eq!(pr["uri"], "/Observation");
    assert_eq!(pr["query-string"], "patient=pt-1&code=x");
    assert_eq!(
        pr["params"],
        json!({"patient": "pt-1", "code": "x", "resource/type": "Observation"})
    );
    assert_eq!(pr["body"]["resourceType"], "Observation");
    assert_eq!(pr["headers"]["x-custom"], "yes");
    assert!(pr["headers"].get("authorization").is_none() && pr["headers"].get("cookie").is_none());
    assert_eq!(pr["user"], Value::Null);
}

#[test]
fn allowed_requests_are_forwarded_with_identity_headers_only_ours() {
    let t = basic_client_with_origin();
    let req = TestApp::req("POST", "/Patient?x=1")
        .header("authorization", TestApp::basic("basic", "s3cret"))
        .header("x-client-id", "admin")
        .header("x-user-id", "someone")
        .header("X-Auth-Scope", "everything")
        .header("content-type", "application/json")
        .body(b"{\"a\":1}".to_vec())
        .unwrap();
    match t.send(req) {
        Outcome::Forward(f) => {
            assert_eq!(f.uri().to_string(), "https://origin.internal/Patient?x=1");
            assert_eq!(f.method(), "POST");
            assert_eq!(f.body(), b"{\"a\":1}");
            assert_eq!(f.headers().get("x-client-id").unwrap(), "basic");
            assert!(f.headers().get("x-user-id").is_none());
            assert!(f.headers().get("x-auth-scope").is_none());
            assert!(
                f.headers().get("authorization").is_none(),
                "Basic secret must not reach the origin"
            );
            assert_eq!(f.headers().get("content-type").unwrap(), "application/json");
        }
        other => panic!("not forwarded: {other:?}"),
    }
    // Refused requests are never forwarded.
    assert!(matches!(
        t.get_with("/Patient", &TestApp::basic("basic", "bad")),
        Outcome::Respond(_)
    ));
}

#[test]
fn root_may_call_anything() {
    let t = TestApp::new();
    assert_eq!(
        respond(t.get_with("/Patient", &TestApp::root())).status(),
        200
    );
}

#[test]
fn kv_outage_on_a_protected_path_is_503() {
    let t = tutorial();
    t.kv.failing.set(true);
    let r = respond(t.get_with("/Patient", &TestApp::basic("basic", "s3cret")));
    assert_eq!(r.status(), 503);
    assert_eq!(r.header("retry-after"), Some("5"));
}

#[test]
fn reads_are_cached_and_writes_through_this_isolate_apply_at_once() {
    let t = tutorial();
    let basic = TestApp::basic("basic", "s3cret");
    t.admin_put(
        "/AccessPolicy/basic-policy",
        json!({"engine": "allow", "link": [{"id": "basic", "resourceType": "Client"}]}),
    );
    assert_eq!(respond(t.get_with("/Patient", &basic)).status(), 200);
    let calls = t.kv.calls.get();
    for _ in 0..5 {
        assert_eq!(respond(t.get_with("/Patient", &basic)).status(), 200);
    }
    assert_eq!(
        t.kv.calls.get(),
        calls,
        "repeated requests must be served from the isolate cache"
    );
    t.call(
        TestApp::req("DELETE", "/AccessPolicy/basic-policy")
            .header("authorization", TestApp::root())
            .body(vec![])
            .unwrap(),
    );
    assert_eq!(respond(t.get_with("/Patient", &basic)).status(), 403);
}

/// Counts signature checks, so a test can see the verified-token cache at work.
struct CountingCrypto(std::cell::Cell<u32>);

#[async_trait::async_trait(?Send)]
impl edge_authorizer::platform::Crypto for CountingCrypto {
    async fn pbkdf2_sha256(
        &self,
        password: &[u8],
        salt: &[u8],
        iterations: u32,
    ) -> Result<[u8; 32], edge_authorizer::platform::BackendError> {
        edge_authorizer::crypto::RustCrypto
            .pbkdf2_sha256(password, salt, iterations)
            .await
    }
    async fn sign(
        &self,
        alg: edge_authorizer::platform::SigAlg,
        kid: &str,
        key: &edge_authorizer::platform::PrivateKey,
        message: &[u8],
    ) -> Result<Vec<u8>, edge_authorizer::platform::BackendError> {
        edge_authorizer::crypto::RustCrypto
            .sign(alg, kid, key, message)
            .await
    }
    async fn verify(
        &self,
        alg: edge_authorizer::platform::SigAlg,
        kid: &str,
        key: &edge_authorizer::platform::PublicKey,
        message: &[u8],
        signature: &[u8],
    ) -> Result<bool, edge_authorizer::platform::BackendError> {
        self.0.set(self.0.get() + 1);
        edge_authorizer::crypto::RustCrypto
            .verify(alg, kid, key, message, signature)
            .await
    }
}

#[test]
fn verified_tokens_are_cached_until_exp_and_revocation_still_applies() {
    use edge_authorizer::context::{App, Platform};
    use std::rc::Rc;
    let mut t = TestApp::new();
    let tok = cc_token(&t);
    let counter = Rc::new(CountingCrypto(std::cell::Cell::new(0)));
    let p = &t.app.platform;
    t.app = App::new(
        t.app.config.clone(),
        Platform {
            kv: p.kv.clone(),
            state: p.state.clone(),
            catalog: p.catalog.clone(),
            http: p.http.clone(),
            crypto: counter.clone(),
            clock: p.clock.clone(),
            random: p.random.clone(),
            log: p.log.clone(),
        },
        t.app.cache.clone(),
    );
    let bearer = format!("Bearer {tok}");
    for _ in 0..5 {
        assert_eq!(respond(t.get_with("/Patient", &bearer)).status(), 200);
    }
    assert_eq!(counter.0.get(), 1, "one signature check for five requests");

    // A tampered copy is another cache key: checked, refused, and not remembered.
    // (A character inside the signature: the last one also carries padding bits.)
    let at = tok.len() - 10;
    let flipped = if &tok[at..=at] == "A" { "B" } else { "A" };
    let forged = format!("{}{flipped}{}", &tok[..at], &tok[at + 1..]);
    for _ in 0..2 {
        let r = respond(t.get_with("/Patient", &format!("Bearer {forged}")));
        assert_eq!(r.status(), 401);
    }
    assert_eq!(counter.0.get(), 3);

    // Revoking the cached token takes effect at once.
    let r = t.call(
        TestApp::req("POST", "/auth/revoke")
            .header("authorization", TestApp::basic("api-client", "verysecret"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!("token={tok}").into_bytes())
            .unwrap(),
    );
    assert_eq!(r.status(), 200);
    let r = respond(t.get_with("/Patient", &bearer));
    assert_eq!(r.status(), 401);
    assert!(r.json()["error_description"]
        .as_str()
        .unwrap()
        .contains("revoked"));
}

/// Signs `header.claims` with the TestApp's key (Ed25519 seed [7; 32], kid test-key-1).
fn sign_with_test_key(header: Value, claims: Value) -> String {
    let kp = ed25519_compact::KeyPair::from_seed(ed25519_compact::Seed::new([7u8; 32]));
    let input = format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    );
    let sig = kp.sk.sign(input.as_bytes(), None);
    format!("{input}.{}", b64(sig.as_ref()))
}

#[test]
fn key_carrying_headers_are_refused_even_when_signed_by_our_key() {
    let t = TestApp::new();
    cc_token(&t);
    // The client's credential-generation tag, as the token endpoint would put it (issue 12).
    let client: Value = serde_json::from_str(&t.kv.dump()["Client/api-client"]).unwrap();
    let claims = json!({
        "iss": edge_authorizer::testing::ISSUER, "aud": edge_authorizer::testing::ISSUER,
        "sub": "api-client", "client_id": "api-client", "sub_kind": "client",
        "exp": edge_authorizer::testing::T0 + 600, "iat": edge_authorizer::testing::T0, "jti": "j1",
        "edge_gen": edge_authorizer::model::generation_tag(Some(&client), None),
    });
    let header = json!({"alg": "EdDSA", "typ": "at+jwt", "kid": "test-key-1"});
    let ok = sign_with_test_key(header.clone(), claims.clone());
    let r = respond(t.get_with("/Patient", &format!("Bearer {ok}")));
    assert_eq!(r.status(), 200, "control: {}", r.text());
    for (name, value) in [
        (
            "x5c",
            json!(["MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA"]),
        ),
        ("x5u", json!("https://evil.example/cert.pem")),
        ("jku", json!("https://evil.example/jwks.json")),
    ] {
        let mut h = header.clone();
        h[name] = value;
        let bad = sign_with_test_key(h, claims.clone());
        let r = respond(t.get_with("/Patient", &format!("Bearer {bad}")));
        assert_eq!(r.status(), 401, "{name}: {}", r.text());
        assert_eq!(r.json()["error"], "invalid_token", "{name}");
    }
}

#[test]
fn basic_scheme_without_credentials_gets_a_basic_challenge() {
    let t = tutorial();
    for bad in ["Basic", "basic", "BASIC  "] {
        let r = respond(t.get_with("/Patient", bad));
        assert_eq!(r.status(), 401, "{bad:?}: {}", r.text());
        assert_eq!(r.json()["error"], "invalid_client", "{bad:?}");
        assert!(
            r.header("www-authenticate")
                .unwrap()
                .starts_with("Basic realm="),
            "{bad:?}"
        );
    }
    // A scheme that merely starts with "basic" is not Basic.
    let r = respond(t.get_with("/Patient", "Basicx abc"));
    assert_eq!(r.json()["error"], "invalid_token");
}

#[test]
fn a_secret_with_a_nul_appended_is_not_the_secret() {
    // PBKDF2-HMAC zero-pads the key: "s3cret" and "s3cret\0" derive the same bytes.
    let t = tutorial();
    t.admin_put(
        "/AccessPolicy/basic-policy",
        json!({"engine": "allow", "link": [{"id": "basic", "resourceType": "Client"}]}),
    );
    let ok = respond(t.get_with("/Patient", &TestApp::basic("basic", "s3cret")));
    assert_eq!(ok.status(), 200);
    for bad in ["s3cret\0", "s3cret\0\0"] {
        let r = respond(t.get_with("/Patient", &TestApp::basic("basic", bad)));
        assert_eq!(r.status(), 401, "{bad:?}: {}", r.text());
        assert_eq!(r.json()["error"], "invalid_client");
    }
    // And no such secret can be stored.
    let r = t.admin_put(
        "/Client/nul",
        json!({"secret": "abc\u{0}", "grant_types": ["basic"]}),
    );
    assert_eq!(r.status(), 422, "{}", r.text());
    assert_eq!(r.json()["field"], "secret");
}

// --- issue 11 section 3: what the policy sees is what the origin gets ----------------------------

/// John (a User whose `data.patient` is pt-1) with a password token, and the "read only your own
/// patient" matcho policy: `GET /Patient/{id}` where the route param `resource/id` is his.
fn own_patient_app(origin: Option<&str>) -> (TestApp, String) {
    let origin = origin.map(str::to_string);
    let t = TestApp::with_config(move |c| c.origin_url = origin.clone());
    t.admin_put(
        "/Client/myapp",
        json!({"secret": "appsecret", "grant_types": ["password"]}),
    );
    t.admin_put(
        "/User/john",
        json!({"password": "pass123", "data": {"patient": "pt-1"}}),
    );
    t.admin_put(
        "/AccessPolicy/own-patient",
        json!({"engine": "matcho", "matcho": {
            "request-method": "get",
            "uri": "#^/Patient",
            "params": {"resource/id": ".user.data.patient"},
        }, "link": [{"id": "john", "resourceType": "User"}]}),
    );
    let r = t.token(
        Some(&TestApp::basic("myapp", "appsecret")),
        &[
            ("grant_type", "password"),
            ("username", "john"),
            ("password", "pass123"),
        ],
    );
    let bearer = format!("Bearer {}", r.json()["access_token"].as_str().unwrap());
    (t, bearer)
}

fn get_headers(path: &str, auth: &str, headers: &[(&str, &str)]) -> http::Request<Vec<u8>> {
    let mut b = TestApp::req("GET", path).header("authorization", auth);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    b.body(vec![]).unwrap()
}

#[test]
fn query_params_named_like_route_params_are_refused() {
    let (t, bearer) = own_patient_app(None);
    assert_eq!(respond(t.get_with("/Patient/pt-1", &bearer)).status(), 200);
    assert_eq!(respond(t.get_with("/Patient/pt-2", &bearer)).status(), 403);
    assert_eq!(respond(t.get_with("/Patient", &bearer)).status(), 403);
    for q in [
        "/Patient?resource/id=pt-1",
        "/Patient?resource%2Fid=pt-1",
        "/Patient?resource%2fid=pt-1&x=1",
        "/Patient/pt-2?resource/id=pt-1",
        "/Patient?resource/type=Patient",
        "/Patient?resource/version=1",
        "/Patient?resource/anything=x",
    ] {
        let r = respond(t.get_with(q, &bearer));
        assert_eq!(r.status(), 400, "{q}: {}", r.text());
        assert_eq!(r.json()["error"], "invalid_request", "{q}");
        assert!(r.json()["error_description"]
            .as_str()
            .unwrap()
            .contains("come from the path"));
    }
    // The admin API goes through the same check.
    let r = respond(t.get_with("/User?resource/id=john", &bearer));
    assert_eq!(r.status(), 400, "{}", r.text());
    // A policy request built for any other caller never takes them either.
    let req = TestApp::req("GET", "/Patient?resource/id=pt-1&resource/x=1")
        .body(vec![])
        .unwrap();
    let pr = edge_authorizer::authz::policy_request(&req, &Default::default());
    assert_eq!(pr["params"], json!({"resource/type": "Patient"}));
}

#[test]
fn repeated_query_params_reach_policies_as_arrays_of_every_value() {
    let req = TestApp::req(
        "GET",
        "/Observation?date=ge2020&code=x&date=le2021&date=ne2020-06",
    )
    .body(vec![])
    .unwrap();
    let pr = edge_authorizer::authz::policy_request(&req, &Default::default());
    assert_eq!(
        pr["params"],
        json!({"date": ["ge2020", "le2021", "ne2020-06"], "code": "x", "resource/type": "Observation"})
    );
    // matcho: a string pattern never matches an array value, so a repeated parameter cannot
    // pass a check written for one value.
    let t = TestApp::with_config(|c| c.origin_url = Some("https://origin.internal".into()));
    t.admin_put(
        "/Client/basic",
        json!({"secret": "s3cret", "grant_types": ["basic"]}),
    );
    t.admin_put(
        "/AccessPolicy/p",
        json!({"engine": "matcho", "matcho": {"params": {"patient": "pt-1"}},
               "link": [{"id": "basic", "resourceType": "Client"}]}),
    );
    let basic = TestApp::basic("basic", "s3cret");
    for q in [
        "/Observation?patient=pt-1",
        "/Observation?patient=pt-1&date=ge2020&date=le2021",
    ] {
        match t.get_with(q, &basic) {
            Outcome::Forward(f) => {
                assert_eq!(f.uri().to_string(), format!("https://origin.internal{q}"))
            }
            other => panic!("{q} not forwarded: {other:?}"),
        }
    }
    for q in [
        "/Observation?patient=pt-1&patient=pt-2",
        "/Observation?patient=pt-2&patient=pt-1",
        "/Observation?patient=pt-1&patient=pt-1",
    ] {
        assert_eq!(respond(t.get_with(q, &basic)).status(), 403, "{q}");
    }
}

#[test]
fn smart_checks_hold_for_every_value_of_a_repeated_parameter() {
    use edge_authorizer::policy::CompiledPolicy;
    let p = CompiledPolicy::compile(&json!({"engine": "smart-on-fhir"})).unwrap();
    let ask = |scope: &str, query: &str| {
        let req = TestApp::req("GET", &format!("/Observation?{query}"))
            .body(vec![])
            .unwrap();
        let mut pr = edge_authorizer::authz::policy_request(&req, &Default::default());
        pr["jwt"] = json!({"scope": scope, "patient": "pt-1"});
        p.allows(&pr)
    };
    let compartment = "patient/Observation.rs";
    assert!(ask(compartment, "patient=pt-1"));
    assert!(ask(compartment, "patient=pt-1&date=ge2020&date=le2021"));
    assert!(!ask(compartment, "patient=pt-1&patient=Patient%2Fpt-1"));
    assert!(!ask(compartment, "patient=pt-1&patient=pt-2"));
    assert!(!ask(compartment, "patient=pt-2&patient=pt-1"));
    assert!(ask(compartment, "patient=pt-1&patient=pt-1"));
    assert!(!ask(
        compartment,
        "subject=Patient%2Fpt-1&subject=Patient%2Fpt-2"
    ));
    let restricted = "patient/Observation.rs?category=laboratory";
    assert!(ask(restricted, "patient=pt-1&category=laboratory"));
    assert!(!ask(
        restricted,
        "patient=pt-1&category=laboratory&category=x"
    ));
    assert!(!ask(
        restricted,
        "patient=pt-1&category=x&category=laboratory"
    ));
    let system = "system/Observation.rs?category=laboratory";
    assert!(ask(system, "category=laboratory&date=ge2020&date=le2021"));
    assert!(!ask(system, "category=laboratory&category=social-history"));
}

#[test]
fn method_overrides_are_refused_before_the_policy() {
    let t = TestApp::with_config(|c| c.origin_url = Some("https://origin.internal".into()));
    t.admin_put(
        "/Client/basic",
        json!({"secret": "s3cret", "grant_types": ["basic"]}),
    );
    t.admin_put(
        "/AccessPolicy/p",
        json!({"engine": "matcho", "matcho": {"request-method": "get"},
               "link": [{"id": "basic", "resourceType": "Client"}]}),
    );
    let basic = TestApp::basic("basic", "s3cret");
    assert!(matches!(
        t.get_with("/Patient?name=x", &basic),
        Outcome::Forward(_)
    ));
    for h in [
        "x-http-method-override",
        "X-HTTP-Method",
        "x-method-override",
        "x_http_method_override",
        "X_Http-Method",
    ] {
        let r = respond(t.send(get_headers("/Patient", &basic, &[(h, "DELETE")])));
        assert_eq!(r.status(), 400, "{h}");
        assert!(r.text().contains("method-override"), "{h}: {}", r.text());
    }
    for q in ["/Patient?_method=DELETE", "/Patient?x=1&_METHOD=delete"] {
        let r = respond(t.get_with(q, &basic));
        assert_eq!(r.status(), 400, "{q}");
        assert!(r.text().contains("_method"), "{q}: {}", r.text());
    }
    let form = t.send(
        TestApp::req("POST", "/Patient/_search")
            .header("authorization", &basic)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(b"name=x&_method=DELETE".to_vec())
            .unwrap(),
    );
    assert_eq!(respond(form).status(), 400);
}

#[test]
fn paths_an_origin_may_read_differently_are_refused() {
    use edge_authorizer::authz::check_path;
    for ok in [
        "/",
        "/Patient",
        "/Patient/",
        "/Patient/pt-1",
        "/Patient/a.b-c",
        "/Patient/pt-1/_history/2",
        "/Patient/$everything",
        "/fhir/Patient%20x",
        "/caf%C3%A9",
    ] {
        assert!(check_path(ok).is_ok(), "{ok}");
    }
    for bad in [
        "/Patient/..;/Admin",
        "/Patient;x",
        "/x;jsessionid=1",
        "/Patient/%2F..",
        "/Patient/a%2fb",
        "/Patient/a%5Cb",
        "/Patient/a%5cb",
        "/Patient/%2E%2E/Admin",
        "/Patient/%2e",
        "/Patient/pt-1%00.json",
        "/Patient/a%0Ab",
        "/Patient/a%7f",
        "/Patient/a%252Fb",
        "/Patient/a%3Bb",
        "/Patient/a%zz",
        "/Patient/a%2",
        "/Patient/../Admin",
        "/Patient/./pt-1",
        "/Patient/..",
        "/Patient//pt-1",
        "//Patient",
        "/Patient\\..\\Admin",
    ] {
        let e = check_path(bad).expect_err(bad);
        assert_eq!(e.status(), 400, "{bad}");
    }
    let t = tutorial();
    let basic = TestApp::basic("basic", "s3cret");
    t.admin_put(
        "/AccessPolicy/p",
        json!({"engine": "allow", "link": [{"id": "basic", "resourceType": "Client"}]}),
    );
    for p in ["/Patient/..;/Admin", "/x;jsessionid=1", "/Patient/a%2Fb"] {
        let r = respond(t.get_with(p, &basic));
        assert_eq!(r.status(), 400, "{p}");
        assert_eq!(r.json()["error"], "invalid_request");
    }
    let r = respond(t.get_with("/Patient?a=1;b=2", &basic));
    assert_eq!(r.status(), 400);
    let r = respond(t.get_with("/Patient?a=%00", &basic));
    assert_eq!(r.status(), 400);
}

#[test]
fn forwarded_headers_are_the_ones_we_vouch_for() {
    let t = basic_client_with_origin();
    let spoofed = [
        ("x_user_id", "admin"),
        ("X_Client_Id", "root"),
        ("x-auth_roles", "admin"),
        ("x_auth_scope", "system/*.*"),
        ("proxy-authorization", "Basic cm9vdDpy"),
        ("connection", "keep-alive, X-Secret-Hop, x_other_hop"),
        ("x-secret-hop", "1"),
        ("x-other-hop", "1"),
        ("keep-alive", "timeout=5"),
        ("te", "trailers"),
        ("trailer", "x-t"),
        ("upgrade", "h2c"),
        ("proxy-connection", "keep-alive"),
        ("proxy-authenticate", "Basic"),
        ("x-original-url", "/Admin"),
        ("x-rewrite-url", "/Admin"),
        ("x-forwarded-host", "evil.example"),
        ("x_forwarded_host", "evil.example"),
        ("x-forwarded-prefix", "/evil"),
        ("x-forwarded-proto", "gopher"),
        ("x-forwarded-for", "10.0.0.1"),
        ("x-real-ip", "10.0.0.1"),
        ("forwarded", "for=10.0.0.1;host=evil.example"),
        (
            "cookie",
            "theme=dark; edge_session=s3ss10n; EDGE_csrf=c; edge-session=x; lang=en",
        ),
        ("x-custom", "kept"),
    ];
    let req = get_headers(
        "/Patient",
        &TestApp::basic("basic", "s3cret"),
        &[spoofed.as_slice(), &[("cf-connecting-ip", "203.0.113.9")]].concat(),
    );
    let pr = edge_authorizer::authz::policy_request(&req, &Default::default());
    let f = match t.send(req) {
        Outcome::Forward(f) => f,
        other => panic!("not forwarded: {other:?}"),
    };
    let h = f.headers();
    let got = |n: &str| h.get(n).map(|v| v.to_str().unwrap().to_string());
    let mut names: Vec<&str> = h.keys().map(|k| k.as_str()).collect();
    names.sort();
    assert_eq!(
        names,
        [
            "cf-connecting-ip",
            "cookie",
            "x-client-id",
            "x-custom",
            "x-forwarded-for",
            "x-forwarded-host",
            "x-forwarded-proto",
        ],
        "{h:?}"
    );
    assert_eq!(got("x-client-id").as_deref(), Some("basic"));
    assert_eq!(got("cookie").as_deref(), Some("theme=dark; lang=en"));
    assert_eq!(
        got("x-forwarded-host").as_deref(),
        Some("auth.example.test")
    );
    assert_eq!(got("x-forwarded-proto").as_deref(), Some("https"));
    assert_eq!(got("x-forwarded-for").as_deref(), Some("203.0.113.9"));
    // The policy saw the same forwarding headers, none of the caller's.
    let ph = pr["headers"].as_object().unwrap();
    let mut pnames: Vec<&str> = ph.keys().map(String::as_str).collect();
    pnames.sort();
    assert_eq!(
        pnames,
        [
            "cf-connecting-ip",
            "x-custom",
            "x-forwarded-for",
            "x-forwarded-host",
            "x-forwarded-proto"
        ]
    );
    assert_eq!(ph["x-forwarded-host"], "auth.example.test");
    // Only our cookies in Cookie: the header goes; without cf-connecting-ip, no x-forwarded-for.
    let req = get_headers(
        "/Patient",
        &TestApp::basic("basic", "s3cret"),
        &[("cookie", "edge_session=a"), ("cookie", "edge_csrf=b")],
    );
    let f = match t.send(req) {
        Outcome::Forward(f) => f,
        other => panic!("not forwarded: {other:?}"),
    };
    assert!(f.headers().get("cookie").is_none());
    assert!(f.headers().get("x-forwarded-for").is_none());
}

/// Issue 12: a Client stored before credential generations existed (no `credential_generation`)
/// gets tokens without `edge_gen`; they pass while the client has none, a profile change keeps
/// it so, and the first credential change ends them.
#[test]
fn legacy_tokens_live_until_the_first_credential_change() {
    use edge_authorizer::platform::KvStore;
    let t = TestApp::new();
    t.admin_put(
        "/Client/api-client",
        json!({"secret": "verysecret", "grant_types": ["client_credentials"]}),
    );
    t.admin_put(
        "/AccessPolicy/api",
        json!({"engine": "allow", "link": [{"id": "api-client", "resourceType": "Client"}]}),
    );
    // Make it a pre-upgrade record.
    let mut doc: Value = serde_json::from_str(&t.kv.dump()["Client/api-client"]).unwrap();
    doc.as_object_mut().unwrap().remove("credential_generation");
    futures::executor::block_on(t.kv.put("Client/api-client", &doc.to_string())).unwrap();
    let r = t.token(
        Some(&TestApp::basic("api-client", "verysecret")),
        &[("grant_type", "client_credentials")],
    );
    let tok = r.json()["access_token"].as_str().unwrap().to_string();
    let payload = tok.split('.').nth(1).unwrap();
    let claims: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap();
    assert!(claims.get("edge_gen").is_none(), "{claims}");
    let bearer = format!("Bearer {tok}");
    assert_eq!(respond(t.get_with("/Patient", &bearer)).status(), 200);
    t.admin_put(
        "/Client/api-client",
        json!({"grant_types": ["client_credentials"], "name": "renamed"}),
    );
    assert_eq!(respond(t.get_with("/Patient", &bearer)).status(), 200);
    t.admin_put(
        "/Client/api-client",
        json!({"secret": "rotated", "grant_types": ["client_credentials"]}),
    );
    assert_eq!(respond(t.get_with("/Patient", &bearer)).status(), 401);
}

// --- issue 13: operations, FHIR base paths, public routes, OperationOutcome errors ----------

/// Aidbox's operation id of every FHIR REST request shape, under the root and under `/fhir`;
/// anything unnamed gets none.
#[test]
fn operation_ids_from_method_and_path() {
    use edge_authorizer::authz::operation_id;
    let tx = json!({"resourceType": "Bundle", "type": "transaction", "entry": []});
    let batch = json!({"resourceType": "Bundle", "type": "batch"});
    let none = Value::Null;
    let table: &[(&str, &str, &Value, Option<&str>)] = &[
        ("GET", "/metadata", &none, Some("FhirCapabilities")),
        ("GET", "", &none, Some("FhirSearchSystem")),
        ("GET", "/", &none, Some("FhirSearchSystem")),
        ("POST", "", &tx, Some("FhirTransaction")),
        ("POST", "/", &batch, Some("FhirBatch")),
        ("POST", "", &none, None),
        ("POST", "", &json!({"type": "transaction"}), None),
        (
            "POST",
            "",
            &json!({"resourceType": "Bundle", "type": "searchset"}),
            None,
        ),
        ("GET", "/_history", &none, Some("FhirHistorySystem")),
        ("GET", "/Patient", &none, Some("FhirSearch")),
        ("POST", "/Patient", &none, Some("FhirCreate")),
        ("PUT", "/Patient", &none, Some("FhirConditionalUpdate")),
        ("PATCH", "/Patient", &none, Some("FhirConditionalPatch")),
        ("DELETE", "/Patient", &none, Some("FhirConditionalDelete")),
        ("POST", "/Patient/_search", &none, Some("FhirPostSearch")),
        ("GET", "/Patient/_history", &none, Some("FhirHistoryType")),
        ("GET", "/Patient/pt-1", &none, Some("FhirRead")),
        ("PUT", "/Patient/pt-1", &none, Some("FhirUpdate")),
        ("PATCH", "/Patient/pt-1", &none, Some("FhirPatch")),
        ("DELETE", "/Patient/pt-1", &none, Some("FhirDelete")),
        (
            "GET",
            "/Patient/pt-1/_history",
            &none,
            Some("FhirHistoryInstance"),
        ),
        ("GET", "/Patient/pt-1/_history/2", &none, Some("FhirVRead")),
        (
            "GET",
            "/Patient/pt-1/Observation",
            &none,
            Some("FhirCompartmentSearch"),
        ),
        // No guesses.
        ("HEAD", "/Patient/pt-1", &none, None),
        ("OPTIONS", "/Patient", &none, None),
        ("POST", "/Patient/pt-1", &none, None),
        ("GET", "/Patient/_search", &none, None),
        ("GET", "/Patient/$everything", &none, None),
        ("GET", "/Patient/pt-1/$everything", &none, None),
        ("POST", "/$export", &none, None),
        ("GET", "/patient/pt-1", &none, None),
        ("GET", "/Patient/pt-1/", &none, None),
        ("GET", "/Patient/", &none, None),
        ("GET", "/Patient/pt-1/_history/2/x", &none, None),
        ("GET", "/Patient/pt-1/_history/", &none, None),
        ("GET", "/Patient/pt 1", &none, None),
        ("GET", "/Client/x", &none, None),
        ("GET", "/User", &none, None),
        ("GET", "/Patient/pt-1/User", &none, None),
        (
            "GET",
            "/Patient/x/_history",
            &none,
            Some("FhirHistoryInstance"),
        ),
        ("GET", "relative", &none, None),
        ("GET", "/metadata/x", &none, None),
        ("PUT", "/metadata", &none, None),
    ];
    for (method, rel, body, want) in table {
        assert_eq!(
            operation_id(method, rel, body),
            *want,
            "{method} {rel:?} {body}"
        );
        assert_eq!(
            operation_id(&method.to_ascii_lowercase(), rel, body),
            *want,
            "{method} {rel:?} lowercase"
        );
    }
}

/// The policy request carries `operation` and the route params under every FHIR base; outside
/// every base there is neither.
#[test]
fn policy_request_operation_and_route_params_under_fhir_bases() {
    use edge_authorizer::authz::{policy_request, policy_request_in};
    let pr = |method: &str, path: &str| {
        let req = TestApp::req(method, path).body(vec![]).unwrap();
        policy_request(&req, &Default::default())
    };
    let r = pr("GET", "/fhir/Patient/pt-1");
    assert_eq!(r["operation"], json!({"id": "FhirRead"}));
    assert_eq!(r["params"]["resource/type"], "Patient");
    assert_eq!(r["params"]["resource/id"], "pt-1");
    assert_eq!(r["fhir-base"], "/fhir");
    let r = pr("GET", "/Patient/pt-1/_history/3");
    assert_eq!(r["operation"]["id"], "FhirVRead");
    assert_eq!(r["params"]["resource/version"], "3");
    assert_eq!(r["fhir-base"], "");
    let r = pr("GET", "/fhir/metadata");
    assert_eq!(r["operation"]["id"], "FhirCapabilities");
    let r = pr("GET", "/fhirx/Patient/1");
    assert_eq!(r["operation"], Value::Null);
    assert!(r["params"].get("resource/type").is_none());
    // Only /r4 configured: the root is not FHIR any more.
    let bases = vec!["/r4".to_string()];
    let req = TestApp::req("GET", "/Patient/1").body(vec![]).unwrap();
    let r = policy_request_in(&req, &Default::default(), &bases);
    assert_eq!(r["operation"], Value::Null);
    assert_eq!(r["fhir-base"], Value::Null);
    assert!(r["params"].get("resource/type").is_none());
    let req = TestApp::req("DELETE", "/r4/Observation/o1")
        .body(vec![])
        .unwrap();
    let r = policy_request_in(&req, &Default::default(), &bases);
    assert_eq!(r["operation"]["id"], "FhirDelete");
    assert_eq!(r["params"]["resource/id"], "o1");
}

#[test]
fn fhir_base_paths_setting() {
    use edge_authorizer::config::{fhir_bases, Config};
    assert_eq!(fhir_bases(None).unwrap(), vec!["/fhir", ""]);
    assert_eq!(
        fhir_bases(Some("/, /api/fhir/, /r4".into())).unwrap(),
        vec!["/api/fhir", "/r4", ""]
    );
    for bad in [
        "fhir",
        "/auth",
        "/.well-known",
        "/app/x",
        "/fhir/Client",
        "/a//b",
        "/a/../b",
        "/a b",
        "/a%2F",
        ",",
        "/a?x",
    ] {
        assert!(fhir_bases(Some(bad.into())).is_err(), "{bad}");
    }
    let c = Config::default();
    assert_eq!(c.fhir_base_of("/fhir/Patient"), Some(("/fhir", "/Patient")));
    assert_eq!(c.fhir_base_of("/fhir"), Some(("/fhir", "")));
    assert_eq!(c.fhir_base_of("/fhirx"), Some(("", "/fhirx")));
}

/// Operation links apply: a policy linked to `Operation/FhirRead` allows reads, nothing else.
#[test]
fn operation_links_apply() {
    let t = tutorial();
    t.admin_put(
        "/AccessPolicy/reads",
        json!({"engine": "allow", "link": [{"reference": "Operation/FhirRead"}]}),
    );
    let basic = TestApp::basic("basic", "s3cret");
    assert_eq!(respond(t.get_with("/Patient/pt-2", &basic)).status(), 200);
    // Allowed, and the demo origin serves the patient under `/fhir` too (FHIR_BASE_PATHS).
    let r = respond(t.get_with("/fhir/Patient/pt-2", &basic));
    assert_eq!(r.status(), 200, "{}", r.text());
    assert_eq!(r.json()["id"], "pt-2");
    assert_eq!(respond(t.get_with("/Patient", &basic)).status(), 403);
    // Never the admin API, which has no operation id.
    assert_eq!(respond(t.get_with("/Client/basic", &basic)).status(), 403);
    assert_eq!(
        respond(t.get_with("/fhir/Client/basic", &basic)).status(),
        403
    );
}

/// `/fhir/Client/x` is the admin API (never forwarded); errors there are OperationOutcomes.
#[test]
fn admin_api_under_the_fhir_base_and_operation_outcome_errors() {
    let t = tutorial();
    let r = respond(t.get_with("/fhir/Client/basic", &TestApp::root()));
    assert_eq!(r.status(), 200, "{}", r.text());
    assert_eq!(r.json()["id"], "basic");
    let r = respond(t.get_with("/fhir/Client/nope", &TestApp::root()));
    assert_eq!(r.status(), 404);
    assert_eq!(r.json()["resourceType"], "OperationOutcome");
    assert_eq!(r.json()["issue"][0]["code"], "not-found");
    let r = respond(
        t.send(
            TestApp::req("GET", "/fhir/Client/basic")
                .body(vec![])
                .unwrap(),
        ),
    );
    assert_eq!(r.status(), 401);
    assert_eq!(r.json()["issue"][0]["code"], "login");
    assert!(r.header("www-authenticate").is_some());
    // The OAuth endpoints keep RFC 6749 errors.
    let r = t.token(None, &[("grant_type", "password")]);
    assert!(r.json().get("resourceType").is_none(), "{}", r.text());
    assert!(r.json()["error"].is_string());
}
