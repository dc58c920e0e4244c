//! CORS: only origins registered by Clients (public clients' redirect URIs, `allowed_origins`),
//! exact origin echoed, `Vary: Origin`, no credentials, preflights answered before
//! authentication, the registered set cached per isolate.

use edge_authorizer::context::Outcome;
use edge_authorizer::cors::ForwardCors;
use edge_authorizer::testing::{TestApp, TestResponse};
use serde_json::json;

const SPA: &str = "https://spa.example";
const EXTRA: &str = "https://other-spa.example:8443";
const EVIL: &str = "https://evil.example";
const CONFIDENTIAL: &str = "https://server-app.example";

fn setup() -> TestApp {
    let t = TestApp::new();
    // A public SPA: its redirect URI's origin is registered.
    let r = t.admin_put(
        "/Client/spa",
        json!({"grant_types": ["authorization_code"],
               "auth": {"authorization_code": {"redirect_uri": format!("{SPA}/app/callback")}}}),
    );
    assert_eq!(r.status(), 201, "{}", r.text());
    // A confidential web app: its redirect origin is not (its secret must not be in a browser)...
    let r = t.admin_put(
        "/Client/web",
        json!({"secret": "web-secret", "grant_types": ["authorization_code", "client_credentials"],
               "auth": {"authorization_code": {"redirect_uri": format!("{CONFIDENTIAL}/cb")}}}),
    );
    assert_eq!(r.status(), 201, "{}", r.text());
    // ...unless listed explicitly.
    let r = t.admin_put(
        "/Client/explicit",
        json!({"grant_types": ["basic"], "secret": "x-secret", "allowed_origins": [EXTRA]}),
    );
    assert_eq!(r.status(), 201, "{}", r.text());
    t.admin_put(
        "/AccessPolicy/all",
        json!({"engine": "allow", "link": [{"id": "web", "resourceType": "Client"}]}),
    );
    t
}

fn preflight(t: &TestApp, path: &str, origin: &str) -> TestResponse {
    t.call(
        TestApp::req("OPTIONS", path)
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "authorization, content-type",
            )
            .body(Vec::new())
            .unwrap(),
    )
}

fn token_from(t: &TestApp, origin: &str) -> TestResponse {
    t.call(
        TestApp::req("POST", "/auth/token")
            .header("origin", origin)
            .header("authorization", TestApp::basic("web", "web-secret"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(b"grant_type=client_credentials".to_vec())
            .unwrap(),
    )
}

fn vary_has_origin(r: &TestResponse) -> bool {
    r.0.headers()
        .get_all("vary")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| {
            v.split(',')
                .any(|x| x.trim().eq_ignore_ascii_case("origin"))
        })
}

#[test]
fn preflight_from_a_registered_origin() {
    let t = setup();
    for path in [
        "/auth/token",
        "/auth/revoke",
        "/auth/userinfo",
        "/Patient",
        "/fhir/Observation/1",
    ] {
        for origin in [SPA, EXTRA] {
            let r = preflight(&t, path, origin);
            assert_eq!(r.status(), 204, "{path} {origin}: {}", r.text());
            assert_eq!(
                r.header("access-control-allow-origin"),
                Some(origin),
                "{path}"
            );
            assert!(r
                .header("access-control-allow-methods")
                .unwrap()
                .contains("POST"));
            let h = r.header("access-control-allow-headers").unwrap();
            assert!(
                h.contains("authorization") && h.contains("content-type"),
                "{h}"
            );
            assert_eq!(r.header("access-control-max-age"), Some("600"));
            assert!(vary_has_origin(&r));
            assert_eq!(r.header("access-control-allow-credentials"), None);
        }
    }
}

#[test]
fn preflight_from_an_unregistered_origin_is_refused_without_cors_headers() {
    let t = setup();
    for path in ["/auth/token", "/auth/userinfo", "/Patient"] {
        // A confidential client's redirect origin is not registered, nor is an unknown one.
        for origin in [
            EVIL,
            CONFIDENTIAL,
            "null",
            "https://spa.example.evil.example",
        ] {
            let r = preflight(&t, path, origin);
            assert_eq!(r.status(), 403, "{path} {origin}");
            assert_eq!(r.json()["error"], "forbidden");
            assert_eq!(
                r.header("access-control-allow-origin"),
                None,
                "{path} {origin}"
            );
            assert_eq!(r.header("access-control-allow-methods"), None);
            assert!(vary_has_origin(&r));
        }
    }
}

#[test]
fn actual_responses_echo_only_registered_origins() {
    let t = setup();
    let ok = token_from(&t, SPA);
    assert_eq!(ok.status(), 200, "{}", ok.text());
    assert_eq!(ok.header("access-control-allow-origin"), Some(SPA));
    assert!(ok
        .header("access-control-expose-headers")
        .unwrap()
        .contains("www-authenticate"));
    assert!(vary_has_origin(&ok));
    assert_eq!(ok.header("access-control-allow-credentials"), None);

    let evil = token_from(&t, EVIL);
    assert_eq!(
        evil.status(),
        200,
        "the request itself is not refused, only unreadable"
    );
    assert_eq!(evil.header("access-control-allow-origin"), None);
    assert!(vary_has_origin(&evil));

    // Errors are readable by a registered SPA too (it must see invalid_grant).
    let err = t.call(
        TestApp::req("POST", "/auth/token")
            .header("origin", SPA)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(b"grant_type=refresh_token&client_id=spa&refresh_token=nope.nope".to_vec())
            .unwrap(),
    );
    assert_eq!(err.status(), 400, "{}", err.text());
    assert_eq!(err.header("access-control-allow-origin"), Some(SPA));
    assert_eq!(err.header("cache-control"), Some("no-store"));

    // Same-origin requests need no CORS headers.
    let own = token_from(&t, edge_authorizer::testing::ISSUER);
    assert_eq!(own.header("access-control-allow-origin"), None);
    // Origins compare case-insensitively (browsers send them lowercased anyway).
    let upper = token_from(&t, "HTTPS://SPA.EXAMPLE");
    assert_eq!(upper.header("access-control-allow-origin"), Some(SPA));
}

#[test]
fn admin_api_and_pages_never_answer_cors() {
    let t = setup();
    let r = preflight(&t, "/Client/spa", SPA);
    assert!(r.header("access-control-allow-origin").is_none());
    let r = t.call(
        TestApp::req("GET", "/Client/spa")
            .header("origin", SPA)
            .header("authorization", TestApp::root())
            .body(Vec::new())
            .unwrap(),
    );
    assert_eq!(r.status(), 200);
    assert!(r.header("access-control-allow-origin").is_none());
    let r = preflight(&t, "/auth/introspect", SPA);
    assert!(r.header("access-control-allow-origin").is_none());
    let r = preflight(&t, "/auth/login", SPA);
    assert!(r.header("access-control-allow-origin").is_none());
}

#[test]
fn discovery_is_public() {
    let t = setup();
    let r = t.call(
        TestApp::req("GET", "/.well-known/jwks.json")
            .header("origin", EVIL)
            .body(Vec::new())
            .unwrap(),
    );
    assert_eq!(r.status(), 200);
    assert_eq!(r.header("access-control-allow-origin"), Some("*"));
    assert_eq!(r.header("access-control-allow-credentials"), None);
    let p = preflight(&t, "/.well-known/openid-configuration", EVIL);
    assert_eq!(p.status(), 204);
    assert_eq!(p.header("access-control-allow-origin"), Some("*"));
}

#[test]
fn forwarded_requests_carry_the_cors_decision() {
    let t = TestApp::with_config(|c| c.origin_url = Some("https://fhir.example".into()));
    t.admin_put(
        "/Client/spa",
        json!({"grant_types": ["authorization_code"],
               "auth": {"authorization_code": {"redirect_uri": format!("{SPA}/cb")}}}),
    );
    t.admin_put(
        "/Client/web",
        json!({"secret": "web-secret", "grant_types": ["basic"]}),
    );
    t.admin_put(
        "/AccessPolicy/all",
        json!({"engine": "allow", "link": [{"id": "web", "resourceType": "Client"}]}),
    );
    for (origin, expect) in [(SPA, Some(SPA.to_string())), (EVIL, None)] {
        let out = t.send(
            TestApp::req("GET", "/Patient")
                .header("origin", origin)
                .header("authorization", TestApp::basic("web", "web-secret"))
                .body(Vec::new())
                .unwrap(),
        );
        let Outcome::Forward(req) = out else {
            panic!("not forwarded: {out:?}")
        };
        assert_eq!(
            req.extensions().get::<ForwardCors>(),
            Some(&ForwardCors(expect))
        );
        // The adapter adds exactly these.
        let h = edge_authorizer::cors::forward_headers(req.extensions().get().unwrap());
        assert!(h.contains(&("vary", "Origin".to_string())));
    }
    // A preflight to the API is answered here, not forwarded and not authenticated.
    let r = preflight(&t, "/Patient", SPA);
    assert_eq!(r.status(), 204);
}

#[test]
fn registration_changes_apply_and_allowed_origins_are_validated() {
    let t = setup();
    assert_eq!(
        preflight(&t, "/auth/token", "https://new.example").status(),
        403
    );
    let r = t.admin_put(
        "/Client/new",
        json!({"grant_types": ["implicit"], "auth": {"implicit": {"redirect_uri": "https://new.example/cb"}}}),
    );
    assert_eq!(r.status(), 201);
    // A write through this isolate drops the cached set at once.
    assert_eq!(
        preflight(&t, "/auth/token", "https://new.example").status(),
        204
    );
    // Deactivated: no longer registered.
    let r = t.admin_put(
        "/Client/new",
        json!({"active": false, "grant_types": ["implicit"], "auth": {"implicit": {"redirect_uri": "https://new.example/cb"}}}),
    );
    assert!(r.status() < 300);
    assert_eq!(
        preflight(&t, "/auth/token", "https://new.example").status(),
        403
    );

    for bad in [
        "*",
        "https://a.example/path",
        "http://a.example",
        "ftp://a.example",
        "https://a.example/",
        "null",
    ] {
        let r = t.admin_put(
            "/Client/bad",
            json!({"grant_types": ["basic"], "allowed_origins": [SPA, bad]}),
        );
        assert_eq!(r.status(), 422, "{bad}");
        assert_eq!(r.json()["field"], "allowed_origins.1", "{bad}");
    }
    let r = t.admin_put(
        "/Client/local",
        json!({"grant_types": ["basic"],
               "allowed_origins": ["http://localhost:5173", "https://Default-Port.example:443"]}),
    );
    assert_eq!(r.status(), 201, "{}", r.text());
    assert_eq!(
        preflight(&t, "/auth/token", "http://localhost:5173").status(),
        204
    );
    // Browsers send origins lowercased and without the default port.
    let r = preflight(&t, "/auth/token", "https://default-port.example");
    assert_eq!(r.status(), 204);
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("https://default-port.example")
    );
    assert_eq!(
        preflight(&t, "/auth/token", "http://localhost:5174").status(),
        403
    );
}

/// Looking up the registered origins costs KV reads once per `CACHE_TTL`, not per request.
#[test]
fn registered_origins_are_cached_in_the_isolate() {
    let t = setup();
    preflight(&t, "/auth/token", SPA);
    let calls = t.kv.calls.get();
    for _ in 0..20 {
        assert_eq!(preflight(&t, "/auth/token", SPA).status(), 204);
        assert_eq!(preflight(&t, "/auth/token", EVIL).status(), 403);
    }
    assert_eq!(t.kv.calls.get(), calls, "KV read per request");
    t.clock.advance(11);
    preflight(&t, "/auth/token", SPA);
    assert!(t.kv.calls.get() > calls, "refreshed after CACHE_TTL");
}
