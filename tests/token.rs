//! `POST /auth/token`: client credentials and password grants, client authentication, errors.

use base64::Engine;
use edge_authorizer::testing::{TestApp, TestResponse, ISSUER, T0};
use serde_json::{json, Value};

fn part(token: &str, i: usize) -> Value {
    let seg = token.split('.').nth(i).unwrap();
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(seg)
            .unwrap(),
    )
    .unwrap()
}

fn setup() -> TestApp {
    let t = TestApp::new();
    assert_eq!(
        t.admin_put(
            "/Client/api-client",
            json!({"secret": "verysecret", "grant_types": ["client_credentials"]})
        )
        .status(),
        201
    );
    assert_eq!(
        t.admin_put(
            "/Client/myapp",
            json!({"secret": "appsecret", "grant_types": ["password"]})
        )
        .status(),
        201
    );
    assert_eq!(
        t.admin_put(
            "/User/john",
            json!({"email": "john@example.com", "password": "pass123",
                "name": {"givenName": "John"}, "data": {"ssn": "123-45-6789"}})
        )
        .status(),
        201
    );
    t
}

fn assert_error(r: &TestResponse, status: u16, error: &str) {
    assert_eq!(r.status(), status, "{}", r.text());
    assert_eq!(r.json()["error"], error, "{}", r.text());
    assert!(r.json()["error_description"].is_string());
    assert_eq!(r.header("cache-control"), Some("no-store"));
}

#[test]
fn client_credentials_with_basic_issues_an_rfc9068_token() {
    let t = setup();
    let r = t.token(
        Some(&TestApp::basic("api-client", "verysecret")),
        &[("grant_type", "client_credentials")],
    );
    assert_eq!(r.status(), 200, "{}", r.text());
    assert_eq!(r.header("cache-control"), Some("no-store"));
    assert_eq!(r.header("pragma"), Some("no-cache"));
    let b = r.json();
    assert_eq!(b["token_type"], "Bearer");
    assert_eq!(b["expires_in"], 3600);
    assert!(b.get("refresh_token").is_none() && b.get("userinfo").is_none());
    let tok = b["access_token"].as_str().unwrap();
    let h = part(tok, 0);
    assert_eq!(
        h,
        json!({"alg": "EdDSA", "typ": "at+jwt", "kid": "test-key-1"})
    );
    let c = part(tok, 1);
    assert_eq!(c["iss"], ISSUER);
    assert_eq!(c["sub"], "api-client");
    assert_eq!(c["aud"], ISSUER);
    assert_eq!(c["client_id"], "api-client");
    assert_eq!(c["iat"], T0);
    assert_eq!(c["exp"], T0 + 3600);
    assert_eq!(c["jti"].as_str().unwrap().len(), 22);
    let again = t.token(
        Some(&TestApp::basic("api-client", "verysecret")),
        &[("grant_type", "client_credentials")],
    );
    assert_ne!(
        part(again.json()["access_token"].as_str().unwrap(), 1)["jti"],
        c["jti"],
        "jti must be unique"
    );
}

#[test]
fn client_secret_post_in_a_form_and_in_json() {
    let t = setup();
    let r = t.token(
        None,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", "api-client"),
            ("client_secret", "verysecret"),
        ],
    );
    assert_eq!(r.status(), 200, "{}", r.text());
    let r = t.call(
        TestApp::req("POST", "/auth/token")
            .header("content-type", "application/json; charset=utf-8")
            .body(json!({"grant_type": "client_credentials", "client_id": "api-client", "client_secret": "verysecret"}).to_string().into_bytes())
            .unwrap(),
    );
    assert_eq!(r.status(), 200, "{}", r.text());
}

#[test]
fn per_client_lifetime_scope_and_audience() {
    let t = TestApp::new();
    t.admin_put("/Client/svc", json!({"secret": "s", "grant_types": ["client_credentials"], "allowed-scopes": ["read", "write"], "audience": "#^https://api\\.example\\.com/", "auth": {"client_credentials": {"access_token_expiration": 120}}}));
    let basic = TestApp::basic("svc", "s");
    let r = t.token(
        Some(&basic),
        &[
            ("grant_type", "client_credentials"),
            ("scope", "read read write"),
            ("audience", "https://api.example.com/fhir"),
        ],
    );
    assert_eq!(r.status(), 200, "{}", r.text());
    assert_eq!(r.json()["expires_in"], 120);
    assert_eq!(r.json()["scope"], "read write");
    let c = part(r.json()["access_token"].as_str().unwrap(), 1);
    assert_eq!(c["scope"], "read write");
    assert_eq!(c["aud"], "https://api.example.com/fhir");
    assert_eq!(c["exp"], T0 + 120);
    assert_error(
        &t.token(
            Some(&basic),
            &[("grant_type", "client_credentials"), ("scope", "admin")],
        ),
        400,
        "invalid_scope",
    );
    assert_error(
        &t.token(
            Some(&basic),
            &[("grant_type", "client_credentials"), ("scope", "re\"ad")],
        ),
        400,
        "invalid_scope",
    );
    assert_error(
        &t.token(
            Some(&basic),
            &[
                ("grant_type", "client_credentials"),
                ("audience", "https://evil.example"),
            ],
        ),
        400,
        "invalid_target",
    );
}

#[test]
fn password_grant_by_id_and_by_email_returns_userinfo() {
    let t = setup();
    let app = TestApp::basic("myapp", "appsecret");
    for username in ["john", "john@example.com", "JOHN@example.com"] {
        let r = t.token(
            Some(&app),
            &[
                ("grant_type", "password"),
                ("username", username),
                ("password", "pass123"),
            ],
        );
        assert_eq!(r.status(), 200, "{username}: {}", r.text());
        let b = r.json();
        // Without scopes: only who the user is (the full User was the hole of issue 11).
        assert_eq!(
            b["userinfo"],
            json!({"resourceType": "User", "id": "john"}),
            "{username}"
        );
        assert!(b["userinfo"].get("password_hash").is_none() && !r.text().contains("pbkdf2"));
        let c = part(b["access_token"].as_str().unwrap(), 1);
        assert_eq!(c["sub"], "john");
        assert_eq!(c["client_id"], "myapp");
        assert_eq!(c["sub_kind"], "user");
    }
}

#[test]
fn password_grant_userinfo_follows_the_granted_scopes() {
    let t = setup();
    let app = TestApp::basic("myapp", "appsecret");
    let grant = |scope: &str| {
        let r = t.token(
            Some(&app),
            &[
                ("grant_type", "password"),
                ("username", "john"),
                ("password", "pass123"),
                ("scope", scope),
            ],
        );
        assert_eq!(r.status(), 200, "{scope}: {}", r.text());
        r.json()["userinfo"].clone()
    };
    assert_eq!(
        grant("openid"),
        json!({"resourceType": "User", "id": "john"})
    );
    assert_eq!(
        grant("openid email"),
        json!({"resourceType": "User", "id": "john", "email": "john@example.com"})
    );
    let all = grant("openid profile email");
    assert_eq!(all["name"]["givenName"], "John");
    assert!(
        all.get("data").is_none(),
        "data is never in userinfo: {all}"
    );
}

#[test]
fn password_grant_refusals() {
    let t = setup();
    let app = TestApp::basic("myapp", "appsecret");
    let wrong = t.token(
        Some(&app),
        &[
            ("grant_type", "password"),
            ("username", "john"),
            ("password", "nope"),
        ],
    );
    assert_error(&wrong, 400, "invalid_grant");
    let unknown = t.token(
        Some(&app),
        &[
            ("grant_type", "password"),
            ("username", "nobody"),
            ("password", "nope"),
        ],
    );
    assert_error(&unknown, 400, "invalid_grant");
    assert_eq!(
        wrong.json()["error_description"],
        unknown.json()["error_description"],
        "no user enumeration"
    );
    assert_error(
        &t.token(
            Some(&app),
            &[("grant_type", "password"), ("username", "john")],
        ),
        400,
        "invalid_request",
    );
    // A client that does not list the password grant.
    let r = t.token(
        Some(&TestApp::basic("api-client", "verysecret")),
        &[
            ("grant_type", "password"),
            ("username", "john"),
            ("password", "pass123"),
        ],
    );
    assert_error(&r, 400, "unauthorized_client");
    // A deactivated user.
    t.admin_put(
        "/User/john",
        json!({"email": "john@example.com", "active": false}),
    );
    assert_error(
        &t.token(
            Some(&app),
            &[
                ("grant_type", "password"),
                ("username", "john"),
                ("password", "pass123"),
            ],
        ),
        400,
        "invalid_grant",
    );
}

#[test]
fn client_authentication_failures() {
    let t = setup();
    let r = t.token(
        Some(&TestApp::basic("api-client", "wrong")),
        &[("grant_type", "client_credentials")],
    );
    assert_error(&r, 401, "invalid_client");
    assert!(r
        .header("www-authenticate")
        .unwrap()
        .starts_with("Basic realm="));
    assert_error(
        &t.token(
            Some(&TestApp::basic("ghost", "x")),
            &[("grant_type", "client_credentials")],
        ),
        401,
        "invalid_client",
    );
    assert_error(
        &t.token(None, &[("grant_type", "client_credentials")]),
        401,
        "invalid_client",
    );
    assert_error(
        &t.token(
            None,
            &[
                ("grant_type", "client_credentials"),
                ("client_id", "api-client"),
            ],
        ),
        401,
        "invalid_client",
    );
    assert_error(
        &t.token(
            Some("Basic !!!notbase64"),
            &[("grant_type", "client_credentials")],
        ),
        401,
        "invalid_client",
    );
    assert_error(
        &t.token(
            Some("Basic bm9jb2xvbg=="),
            &[("grant_type", "client_credentials")],
        ),
        401,
        "invalid_client",
    );
    assert_error(
        &t.token(
            Some(&TestApp::root()),
            &[("grant_type", "client_credentials")],
        ),
        401,
        "invalid_client",
    );
    // Two methods at once.
    assert_error(
        &t.token(
            Some(&TestApp::basic("api-client", "verysecret")),
            &[
                ("grant_type", "client_credentials"),
                ("client_secret", "verysecret"),
            ],
        ),
        400,
        "invalid_request",
    );
}

#[test]
fn basic_credentials_may_be_form_urlencoded() {
    let t = TestApp::new();
    t.admin_put(
        "/Client/odd",
        json!({"secret": "a b+c%d:e", "grant_types": ["client_credentials"]}),
    );
    // As sent raw...
    assert_eq!(
        t.token(
            Some(&TestApp::basic("odd", "a b+c%d:e")),
            &[("grant_type", "client_credentials")]
        )
        .status(),
        200
    );
    // ...and form-urlencoded as RFC 6749 2.3.1 asks.
    assert_eq!(
        t.token(
            Some(&TestApp::basic("odd", "a+b%2Bc%25d%3Ae")),
            &[("grant_type", "client_credentials")]
        )
        .status(),
        200
    );
}

#[test]
fn request_errors() {
    let t = setup();
    let basic = TestApp::basic("api-client", "verysecret");
    assert_error(
        &t.token(Some(&basic), &[("grant_type", "magic")]),
        400,
        "unsupported_grant_type",
    );
    assert_error(&t.token(Some(&basic), &[]), 400, "invalid_request");
    assert_error(
        &t.token(
            Some(&basic),
            &[
                ("grant_type", "client_credentials"),
                ("grant_type", "client_credentials"),
            ],
        ),
        400,
        "invalid_request",
    );
    let send = |ct: Option<&str>, body: &str| {
        let mut b = TestApp::req("POST", "/auth/token").header("authorization", &basic);
        if let Some(c) = ct {
            b = b.header("content-type", c);
        }
        t.call(b.body(body.as_bytes().to_vec()).unwrap())
    };
    assert_error(
        &send(Some("text/plain"), "grant_type=client_credentials"),
        400,
        "invalid_request",
    );
    assert_error(
        &send(None, "grant_type=client_credentials"),
        400,
        "invalid_request",
    );
    assert_error(
        &send(Some("application/json"), "{not json"),
        400,
        "invalid_request",
    );
    assert_error(
        &send(Some("application/json"), "[1,2]"),
        400,
        "invalid_request",
    );
    assert_error(
        &send(Some("application/json"), r#"{"grant_type": {"x": 1}}"#),
        400,
        "invalid_request",
    );
    assert_error(&send(Some(";;;"), "x"), 400, "invalid_request");
    // A repeated key in a JSON body is a repeated parameter, as in a form (not "last one wins").
    assert_error(
        &send(
            Some("application/json"),
            r#"{"grant_type": "client_credentials", "grant_type": "password"}"#,
        ),
        400,
        "invalid_request",
    );
    let get = t.call(TestApp::req("GET", "/auth/token").body(vec![]).unwrap());
    assert_eq!(get.status(), 405);
    assert_eq!(get.header("allow"), Some("POST"));
}

#[test]
fn huge_bodies_are_413() {
    let t = setup();
    let big = "a".repeat(1024 * 1024 + 1);
    let r = t.call(
        TestApp::req("POST", "/auth/token")
            .header("content-type", "application/x-www-form-urlencoded")
            .body(big.into_bytes())
            .unwrap(),
    );
    assert_eq!(r.status(), 413);
    assert_eq!(r.json()["error"], "payload_too_large");
}

#[test]
fn missing_signing_key_is_a_logged_500_without_detail() {
    let t = TestApp::with_config(|c| c.keys = Default::default());
    t.admin_put(
        "/Client/c",
        json!({"secret": "s", "grant_types": ["client_credentials"]}),
    );
    let r = t.token(
        Some(&TestApp::basic("c", "s")),
        &[("grant_type", "client_credentials")],
    );
    assert_error(&r, 500, "server_error");
    assert!(!r.text().contains("SIGNING_KEY"));
    assert!(t.log.0.borrow().iter().any(|l| l.contains("SIGNING_KEY")));
}

/// Issue 13: Aidbox's `auth.<flow>.audience` sets the `aud` of that flow's tokens. A foreign
/// audience means a token for another API, which our own authorizer refuses; the API's own
/// audience stays available by asking for it.
#[test]
fn flow_audience_sets_aud_and_a_foreign_one_is_not_ours() {
    let t = setup();
    t.admin_put(
        "/Client/aud",
        json!({"secret": "s", "grant_types": ["client_credentials"],
               "auth": {"client_credentials": {"audience": ["https://other.example/api", ISSUER]}}}),
    );
    let cc = |extra: &[(&str, &str)]| {
        let mut form = vec![("grant_type", "client_credentials")];
        form.extend_from_slice(extra);
        t.token(Some(&TestApp::basic("aud", "s")), &form)
    };
    let r = cc(&[]);
    assert_eq!(r.status(), 200, "{}", r.text());
    let at = r.json()["access_token"].as_str().unwrap().to_string();
    assert_eq!(part(&at, 1)["aud"], "https://other.example/api");
    let api = |at: &str| match t.get_with("/Patient", &format!("Bearer {at}")) {
        edge_authorizer::context::Outcome::Respond(r) => r.status().as_u16(),
        _ => 0,
    };
    assert_eq!(api(&at), 401, "a token for another audience is not ours");
    let r = cc(&[("audience", ISSUER)]);
    let own = r.json()["access_token"].as_str().unwrap().to_string();
    assert_eq!(part(&own, 1)["aud"], ISSUER);
    assert_ne!(api(&own), 401);
    assert_error(
        &cc(&[("audience", "https://third.example")]),
        400,
        "invalid_target",
    );
    // Shape: a string or a non-empty list of strings.
    for bad in [json!(""), json!([]), json!([1]), json!({"a": 1})] {
        let r = t.admin_put(
            "/Client/aud2",
            json!({"secret": "s", "grant_types": ["client_credentials"],
                   "auth": {"client_credentials": {"audience": bad}}}),
        );
        assert_eq!(r.status(), 422, "{bad}");
    }
}
