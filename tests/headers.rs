//! Issue 7 item 6: caching headers on every response that carries a token or a secret, the
//! security headers of every HTML page, and secrets kept out of Debug output and logs.

use edge_authorizer::config::Config;
use edge_authorizer::context::Outcome;
use edge_authorizer::model::client::Client;
use edge_authorizer::model::user::User;
use edge_authorizer::secret::Secret;
use edge_authorizer::testing::{ed25519_jwk, TestApp, TestResponse, ADMIN_SECRET};
use serde_json::{json, Value};

mod common;
use common::{redirect, Browser};

const CB: &str = "https://app.example/callback";
const CLIENT_SECRET: &str = "web-secret-6f1d2c";
const SVC_SECRET: &str = "svc-secret-9a8b7c";
const PASSWORD: &str = "john-password-4e5f";
const HS_SECRET: &str = "introspector-shared-secret-0123456789abcdef";
const OPAQUE_AUTH: &str = "Basic aW50cm86c2VjcmV0LTc3Nzc=";

fn setup() -> TestApp {
    let t = TestApp::new();
    let r = t.admin_put(
        "/Client/web-app",
        json!({"secret": CLIENT_SECRET, "first_party": true,
               "grant_types": ["authorization_code", "implicit", "password"],
               "auth": {"authorization_code": {"redirect_uri": CB, "refresh_token": true},
                        "implicit": {"redirect_uri": CB},
                        "password": {"refresh_token": true}}}),
    );
    assert_eq!(r.status(), 201, "{}", r.text());
    let r = t.admin_put(
        "/Client/svc",
        json!({"secret": SVC_SECRET, "grant_types": ["client_credentials"]}),
    );
    assert_eq!(r.status(), 201, "{}", r.text());
    // A launch is made for a SMART app (issue 11).
    let r = t.admin_put(
        "/Client/smart",
        json!({"type": "smart-app", "fhir-base-url": "https://fhir.example/r4",
               "grant_types": ["authorization_code"]}),
    );
    assert_eq!(r.status(), 201, "{}", r.text());
    let r = t.admin_put(
        "/User/john",
        json!({"email": "john@example.com", "password": PASSWORD}),
    );
    assert_eq!(r.status(), 201, "{}", r.text());
    t.admin_put(
        "/AccessPolicy/john",
        json!({"engine": "allow", "link": [{"id": "john", "resourceType": "User"}]}),
    );
    let r = t.admin_put(
        "/TokenIntrospector/idp",
        json!({"type": "jwt", "jwt": {"iss": "https://idp.example", "secret": HS_SECRET}}),
    );
    assert_eq!(r.status(), 201, "{}", r.text());
    let r = t.admin_put(
        "/TokenIntrospector/opaque",
        json!({"type": "opaque", "introspection_endpoint":
               {"url": "https://idp.example/introspect", "authorization": OPAQUE_AUTH}}),
    );
    assert_eq!(r.status(), 201, "{}", r.text());
    t
}

fn form(pairs: &[(&str, &str)]) -> Vec<u8> {
    form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
        .into_bytes()
}

fn post_form(path: &str, auth: Option<&str>, pairs: &[(&str, &str)]) -> http::Request<Vec<u8>> {
    let mut b =
        TestApp::req("POST", path).header("content-type", "application/x-www-form-urlencoded");
    if let Some(a) = auth {
        b = b.header("authorization", a);
    }
    b.body(form(pairs)).unwrap()
}

fn get(path: &str, headers: &[(&str, &str)]) -> http::Request<Vec<u8>> {
    let mut b = TestApp::req("GET", path);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    b.body(Vec::new()).unwrap()
}

fn root_json(method: &str, path: &str, body: Value) -> http::Request<Vec<u8>> {
    TestApp::req(method, path)
        .header("authorization", TestApp::root())
        .header("content-type", "application/json")
        .body(body.to_string().into_bytes())
        .unwrap()
}

fn password_tokens(t: &TestApp) -> Value {
    let r = t.token(
        Some(&TestApp::basic("web-app", CLIENT_SECRET)),
        &[
            ("grant_type", "password"),
            ("username", "john@example.com"),
            ("password", PASSWORD),
            ("scope", "openid profile"),
        ],
    );
    assert_eq!(r.status(), 200, "{}", r.text());
    r.json()
}

/// A named request and the status it must get (None: any).
type Case = (&'static str, http::Request<Vec<u8>>, Option<u16>);

fn assert_no_store(name: &str, r: &TestResponse) {
    let cc = r.header("cache-control").unwrap_or("");
    assert!(
        cc.split(',').any(|d| d.trim() == "no-store"),
        "{name}: {} without Cache-Control: no-store (got {cc:?})",
        r.status()
    );
    assert_eq!(
        r.header("pragma"),
        Some("no-cache"),
        "{name}: {} without Pragma: no-cache",
        r.status()
    );
}

/// Every route of `/auth/*` and of the admin API, in success and in error, answers
/// `Cache-Control: no-store` and `Pragma: no-cache`.
#[test]
fn every_auth_and_admin_response_is_never_cached() {
    let t = setup();
    let tokens = password_tokens(&t);
    let access = tokens["access_token"].as_str().unwrap().to_string();
    let refresh = tokens["refresh_token"].as_str().unwrap().to_string();
    assert!(tokens["id_token"].is_string());
    let bearer = format!("Bearer {access}");
    let web = TestApp::basic("web-app", CLIENT_SECRET);
    let svc = TestApp::basic("svc", SVC_SECRET);

    // A signed-in browser, for the authorize redirects that carry codes and tokens.
    let mut b = Browser::new(&t);
    let q = form_urlencoded::Serializer::new(String::new())
        .extend_pairs([
            ("response_type", "token"),
            ("client_id", "web-app"),
            ("redirect_uri", CB),
            ("state", "s1"),
        ])
        .finish();
    redirect(b.get(&format!("/auth/authorize?{q}")));
    let to_client = redirect(b.login(&q, "john@example.com", PASSWORD));
    assert!(to_client.contains("access_token="), "{to_client}");
    let cookie: String = b
        .cookies
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("; ");

    let cases: Vec<Case> = vec![
        (
            "client_credentials token",
            post_form(
                "/auth/token",
                Some(&svc),
                &[("grant_type", "client_credentials")],
            ),
            Some(200),
        ),
        (
            "token with a wrong secret",
            post_form(
                "/auth/token",
                Some(&TestApp::basic("svc", "wrong")),
                &[("grant_type", "client_credentials")],
            ),
            Some(401),
        ),
        (
            "refresh",
            post_form(
                "/auth/token",
                Some(&web),
                &[("grant_type", "refresh_token"), ("refresh_token", &refresh)],
            ),
            Some(200),
        ),
        (
            "unsupported grant",
            post_form("/auth/token", Some(&web), &[("grant_type", "nope")]),
            Some(400),
        ),
        (
            "introspect",
            post_form("/auth/introspect", Some(&svc), &[("token", &access)]),
            Some(200),
        ),
        (
            "introspect without client",
            post_form("/auth/introspect", None, &[("token", &access)]),
            Some(401),
        ),
        (
            "userinfo GET",
            get("/auth/userinfo", &[("authorization", &bearer)]),
            Some(200),
        ),
        (
            "userinfo POST",
            TestApp::req("POST", "/auth/userinfo")
                .header("authorization", &bearer)
                .body(Vec::new())
                .unwrap(),
            Some(200),
        ),
        (
            "userinfo without token",
            get("/auth/userinfo", &[]),
            Some(401),
        ),
        (
            "implicit authorize redirect with a token",
            get(&format!("/auth/authorize?{q}"), &[("cookie", &cookie)]),
            None,
        ),
        (
            "authorize with an unknown client (HTML)",
            get("/auth/authorize?response_type=code&client_id=nobody", &[]),
            Some(400),
        ),
        (
            "interaction",
            get(&format!("/auth/interaction?{q}"), &[("cookie", &cookie)]),
            Some(200),
        ),
        (
            "session",
            get("/auth/session", &[("cookie", &cookie)]),
            Some(200),
        ),
        ("logout GET", get("/auth/logout", &[]), Some(303)),
        (
            "login with a wrong password",
            post_form(
                "/auth/login",
                None,
                &[("username", "john"), ("password", "x"), ("query", &q)],
            ),
            Some(303),
        ),
        (
            "launch",
            root_json(
                "POST",
                "/auth/launch",
                json!({"client_id": "smart", "patient": "pt-1"}),
            ),
            Some(201),
        ),
        (
            "unknown auth endpoint",
            get("/auth/nothing", &[]),
            Some(404),
        ),
        (
            "wrong method",
            TestApp::req("PUT", "/auth/token").body(Vec::new()).unwrap(),
            Some(405),
        ),
        (
            "admin read Client",
            get("/Client/web-app", &[("authorization", &TestApp::root())]),
            Some(200),
        ),
        (
            "admin list Client",
            get("/Client", &[("authorization", &TestApp::root())]),
            Some(200),
        ),
        (
            "admin read User",
            get("/User/john", &[("authorization", &TestApp::root())]),
            Some(200),
        ),
        (
            "admin read TokenIntrospector",
            get(
                "/TokenIntrospector/idp",
                &[("authorization", &TestApp::root())],
            ),
            Some(200),
        ),
        (
            "admin list TokenIntrospector",
            get("/TokenIntrospector", &[("authorization", &TestApp::root())]),
            Some(200),
        ),
        (
            "admin write Client",
            root_json(
                "PUT",
                "/Client/other",
                json!({"secret": "other-secret", "grant_types": ["basic"]}),
            ),
            Some(201),
        ),
        (
            "admin write User",
            root_json("PUT", "/User/jane", json!({"password": "jane-password"})),
            Some(201),
        ),
        (
            "admin delete Client",
            TestApp::req("DELETE", "/Client/other")
                .header("authorization", TestApp::root())
                .body(Vec::new())
                .unwrap(),
            Some(200),
        ),
        (
            "admin without credentials",
            get("/Client/web-app", &[]),
            Some(401),
        ),
        (
            "admin invalid write",
            root_json("PUT", "/Client/bad", json!({"grant_types": ["nope"]})),
            Some(422),
        ),
        (
            "revoke",
            post_form(
                "/auth/revoke",
                Some(&web),
                &[("token", &access), ("token_type_hint", "access_token")],
            ),
            Some(200),
        ),
        (
            "protected API without credentials",
            get("/Patient", &[]),
            Some(401),
        ),
        (
            "protected API with a revoked token",
            get("/Patient", &[("authorization", &bearer)]),
            Some(401),
        ),
    ];
    for (name, req, status) in cases {
        let r = t.call(req);
        if let Some(s) = status {
            assert_eq!(r.status(), s, "{name}: {}", r.text());
        }
        assert_no_store(name, &r);
    }
}

#[test]
fn the_implicit_redirect_carries_the_token_and_is_not_cached() {
    let t = setup();
    let mut b = Browser::new(&t);
    let q = "response_type=token&client_id=web-app&state=s2";
    redirect(b.get(&format!("/auth/authorize?{q}")));
    let cookie = b
        .cookies
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("; ");
    redirect(b.login(q, "john", PASSWORD));
    let cookie2 = b
        .cookies
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("; ");
    assert_ne!(cookie, cookie2, "login set a session cookie");
    let r = t.call(get(
        &format!("/auth/authorize?{q}"),
        &[("cookie", &cookie2)],
    ));
    let loc = r.header("location").unwrap_or("").to_string();
    assert!(
        loc.starts_with(CB) && loc.contains("#access_token="),
        "{loc}"
    );
    assert_no_store("implicit", &r);
}

/// Discovery and JWKS are public and cacheable; they carry no token or secret.
#[test]
fn discovery_and_jwks_are_cacheable() {
    let t = setup();
    for path in [
        "/.well-known/openid-configuration",
        "/.well-known/oauth-authorization-server",
        "/.well-known/smart-configuration",
        "/.well-known/jwks.json",
    ] {
        let r = t.call(get(path, &[]));
        assert_eq!(r.status(), 200, "{path}");
        let cc = r.header("cache-control").unwrap_or("");
        assert!(
            cc.contains("max-age=300") && !cc.contains("no-store"),
            "{path}: {cc}"
        );
        assert!(
            !r.text().contains("\"d\""),
            "{path} publishes a private key"
        );
    }
    // Errors there are not cached.
    assert_no_store(
        "unknown discovery document",
        &t.call(get("/.well-known/nothing", &[])),
    );
}

fn assert_page_headers(name: &str, headers: &[(&str, String)]) {
    let h = |k: &str| {
        headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(k))
            .map(|(_, v)| v.as_str())
    };
    let csp = h("content-security-policy").unwrap_or_else(|| panic!("{name}: no CSP"));
    assert!(csp.contains("frame-ancestors 'none'"), "{name}: {csp}");
    assert!(csp.contains("default-src 'none'"), "{name}: {csp}");
    assert!(!csp.contains("unsafe-inline"), "{name}: {csp}");
    assert!(
        !csp.contains("unsafe-eval'") || csp.contains("wasm-unsafe-eval"),
        "{name}: {csp}"
    );
    assert_eq!(h("x-frame-options"), Some("DENY"), "{name}");
    assert_eq!(h("referrer-policy"), Some("no-referrer"), "{name}");
    assert_eq!(h("x-content-type-options"), Some("nosniff"), "{name}");
}

fn html_files(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            html_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "html") {
            out.push(p);
        }
    }
}

/// Every `.html` file under `www/` is served with the page security headers, and none has
/// inline script or style that the CSP would block (so the CSP needs no `unsafe-inline`).
#[test]
fn every_static_page_gets_the_security_headers() {
    let t = setup();
    let www = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("www");
    let mut files = Vec::new();
    html_files(&www, &mut files);
    assert!(files.len() >= 6, "found only {files:?}");
    for f in files {
        let rel = f
            .strip_prefix(&www)
            .unwrap()
            .to_string_lossy()
            .replace('\\', "/");
        let path = if rel == "app/index.html" {
            "/app/".to_string()
        } else {
            format!("/{rel}")
        };
        match t.send(get(&path, &[])) {
            Outcome::Asset {
                path: served,
                headers,
            } => {
                assert_eq!(served, format!("/{rel}"), "{path}");
                assert_page_headers(&path, &headers);
            }
            other => panic!("{path}: not served as an asset: {other:?}"),
        }
        let html = std::fs::read_to_string(&f).unwrap().to_ascii_lowercase();
        for bad in [
            "<script>",
            "<style",
            " style=",
            " onclick=",
            " onload=",
            "javascript:",
        ] {
            assert!(!html.contains(bad), "{rel} has inline code: {bad}");
        }
        assert!(
            html.contains(r#"<meta name="referrer" content="no-referrer">"#),
            "{rel}: no referrer meta"
        );
    }
}

/// Pages the Worker generates (the authorize error page) carry the same headers.
#[test]
fn generated_pages_get_the_security_headers() {
    let t = setup();
    for path in [
        "/auth/authorize?response_type=code&client_id=nobody",
        "/auth/authorize?response_type=code&client_id=web-app&redirect_uri=https://evil.example/cb",
    ] {
        let r = t.call(get(path, &[]));
        assert_eq!(r.status(), 400);
        assert!(r.header("content-type").unwrap().starts_with("text/html"));
        let headers: Vec<(&str, String)> =
            r.0.headers()
                .iter()
                .map(|(k, v)| (k.as_str(), v.to_str().unwrap().to_string()))
                .collect();
        assert_page_headers(path, &headers);
        assert_no_store(path, &r);
        assert!(!r.text().to_ascii_lowercase().contains("<script"));
    }
}

// ---- Secrets in Debug output ----

#[test]
fn config_debug_shows_no_secret() {
    let jwk = ed25519_jwk([9u8; 32], "kid-9");
    let d = serde_json::from_str::<Value>(&jwk).unwrap()["d"]
        .as_str()
        .unwrap()
        .to_string();
    let c = Config::from_vars(|n| match n {
        "ADMIN_SECRET" => Some("admin-s3cret-value".into()),
        "SIGNING_KEY" => Some(jwk.clone()),
        _ => None,
    })
    .unwrap();
    let out = format!("{c:?} {c:#?}");
    assert!(!out.contains("admin-s3cret-value"), "{out}");
    assert!(!out.contains(&d), "{out}");
    assert!(out.contains("kid-9") && out.contains("<redacted>"), "{out}");
    let keys = format!("{:?}", c.keys);
    assert!(!keys.contains(&d), "{keys}");
    let seed = format!("{:?}", [9u8; 32]);
    assert!(!keys.contains(&seed), "{keys}");
}

#[test]
fn client_and_user_debug_show_no_hash_or_secret() {
    let hash = "$pbkdf2-sha256$i=1000$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g";
    let c = Client::from_doc(json!({"id": "c1", "secret_hash": hash, "grant_types": ["basic"]}));
    let out = format!("{c:?}");
    assert!(
        !out.contains("pbkdf2") && !out.contains("aGFzaGhh"),
        "{out}"
    );
    assert!(out.contains("c1") && out.contains("<redacted>"), "{out}");
    let u = User::from_doc(json!({"id": "u1", "password_hash": hash, "email": "u@x.example"}));
    let out = format!("{u:?}");
    assert!(
        !out.contains("pbkdf2") && !out.contains("aGFzaGhh"),
        "{out}"
    );
    assert!(out.contains("u1"), "{out}");
    let s = Secret::new("plain-secret-value");
    assert!(!format!("{s:?}").contains("plain-secret-value"));
    let basic = edge_authorizer::http_util::authorization(&get(
        "/",
        &[("authorization", &TestApp::basic("c1", "basic-secret-value"))],
    ))
    .unwrap();
    assert!(!format!("{basic:?}").contains("basic-secret-value"));
}

/// The isolate cache holds introspector secrets and stored hashes; its Debug shows none.
#[test]
fn cache_debug_shows_no_introspector_secret() {
    let t = setup();
    // A bearer token of the external issuer makes the isolate load the introspectors.
    let r = t.call(get(
        "/Patient",
        &[("authorization", "Bearer opaque-token-value")],
    ));
    assert_eq!(
        r.status(),
        503,
        "the introspection endpoint is not reachable in tests"
    );
    t.call(get(
        "/Client/web-app",
        &[("authorization", &TestApp::root())],
    ));
    let out = format!("{:?}", t.app.cache);
    for s in [HS_SECRET, OPAQUE_AUTH, "pbkdf2", "opaque-token-value"] {
        assert!(!out.contains(s), "{s} in {out}");
    }
}

// ---- Logs ----

/// Flows with known secrets, passwords, codes and tokens leave none of them in the log, and a
/// server-side failure is still logged.
#[test]
fn logs_carry_no_secret() {
    let t = setup();
    let tokens = password_tokens(&t);
    let mut secrets: Vec<String> = vec![
        CLIENT_SECRET.into(),
        SVC_SECRET.into(),
        PASSWORD.into(),
        ADMIN_SECRET.into(),
        HS_SECRET.into(),
        OPAQUE_AUTH.into(),
    ];
    for k in ["access_token", "refresh_token", "id_token"] {
        secrets.push(tokens[k].as_str().unwrap().to_string());
    }
    // A browser sign-in: a code and a session.
    let mut b = Browser::new(&t);
    let verifier = "a-pkce-verifier-for-the-log-test-0123456789abcdef";
    let q = format!(
        "response_type=code&client_id=web-app&code_challenge={}&code_challenge_method=S256",
        edge_authorizer::oauth::pkce::s256(verifier)
    );
    redirect(b.get(&format!("/auth/authorize?{q}")));
    let cb = redirect(b.login(&q, "john", PASSWORD));
    let code = common::params(&cb)["code"].clone();
    secrets.push(code.clone());
    secrets.extend(b.cookies.values().cloned());
    let r = t.token(
        Some(&TestApp::basic("web-app", CLIENT_SECRET)),
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", CB),
            ("code_verifier", verifier),
        ],
    );
    assert_eq!(r.status(), 200, "{}", r.text());
    secrets.push(r.json()["access_token"].as_str().unwrap().to_string());
    // Failures that carry secrets in the request.
    t.token(
        Some(&TestApp::basic("web-app", "wrong-secret-abc")),
        &[
            ("grant_type", "password"),
            ("username", "john"),
            ("password", PASSWORD),
        ],
    );
    t.call(get(
        "/Patient",
        &[(
            "authorization",
            &format!("Bearer {}", tokens["access_token"].as_str().unwrap()),
        )],
    ));
    // The opaque introspector's endpoint is down: a 503, logged with its reason.
    let r = t.call(get(
        "/Patient",
        &[("authorization", "Bearer some-opaque-token")],
    ));
    assert_eq!(r.status(), 503, "{}", r.text());
    assert!(
        t.log
            .0
            .borrow()
            .iter()
            .any(|l| l.contains("temporarily_unavailable")),
        "the 503 is logged: {:?}",
        t.log.0.borrow()
    );
    secrets.push("some-opaque-token".into());
    // A server-side failure: no signing key.
    let broken = TestApp::with_config(|c| c.keys = Default::default());
    broken.admin_put(
        "/Client/svc",
        json!({"secret": SVC_SECRET, "grant_types": ["client_credentials"]}),
    );
    let r = broken.token(
        Some(&TestApp::basic("svc", SVC_SECRET)),
        &[("grant_type", "client_credentials")],
    );
    assert_eq!(r.status(), 500);
    let broken_log = broken.log.0.borrow().join("\n");
    assert!(
        broken_log.contains("server_error"),
        "the 500 is logged: {broken_log}"
    );
    assert!(!broken_log.contains(SVC_SECRET));

    let log = t.log.0.borrow().join("\n");
    for s in &secrets {
        assert!(!log.contains(s.as_str()), "the log has {s}: {log}");
    }
}
