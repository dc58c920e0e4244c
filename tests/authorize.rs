//! The authorization code flow with PKCE, the implicit flow, login, consent, sessions, code
//! replay and refresh rotation, through the real handler with a memory Durable Object.

use base64::Engine;
use edge_authorizer::context::Outcome;
use edge_authorizer::oauth::pkce;
use edge_authorizer::testing::{TestApp, TestResponse, ISSUER};
use serde_json::{json, Value};
use std::collections::HashMap;

mod common;
use common::{params, redirect, Browser, Page};

const CB: &str = "https://app.example/callback";
const VERIFIER: &str = "dBjftJeZ4CVP-mJ92K9gyVq3TbY7Kz1vM5sGgG-lHD8mQ-test-verifier";

fn setup(client: Value) -> TestApp {
    let t = TestApp::new();
    assert_eq!(t.admin_put("/Client/web-app", client).status(), 201);
    t.admin_put("/User/john", json!({"email": "john@example.com", "password": "pass123", "name": {"givenName": "John", "familyName": "Doe"}}));
    t.admin_put(
        "/AccessPolicy/john",
        json!({"engine": "allow", "link": [{"id": "john", "resourceType": "User"}]}),
    );
    t
}

fn web_app() -> TestApp {
    setup(
        json!({"secret": "websecret", "grant_types": ["authorization_code"], "name": "Web App",
        "auth": {"authorization_code": {"redirect_uri": CB, "refresh_token": true},
                 "implicit": {"redirect_uri": CB}}}),
    )
}

fn query(extra: &[(&str, &str)]) -> String {
    let challenge = pkce::s256(VERIFIER);
    let p = vec![
        ("response_type", "code"),
        ("client_id", "web-app"),
        ("redirect_uri", CB),
        ("scope", "openid profile email"),
        ("state", "st-123"),
        ("nonce", "n-456"),
        ("code_challenge", challenge.as_str()),
        ("code_challenge_method", "S256"),
    ];
    common::query_with(p, extra)
}

/// Walks authorize -> login -> consent and returns the callback URL.
fn sign_in(t: &TestApp, q: &str) -> String {
    let mut b = Browser::new(t);
    let to_login = redirect(b.get(&format!("/auth/authorize?{q}")));
    assert_eq!(to_login, format!("/auth/ui/login.html?{q}"));
    let to_consent = redirect(b.login(q, "john", "pass123"));
    assert_eq!(to_consent, format!("/auth/ui/consent.html?{q}"));
    redirect(b.consent(q, "allow"))
}

fn exchange(t: &TestApp, code: &str, verifier: &str) -> TestResponse {
    t.token(
        Some(&TestApp::basic("web-app", "websecret")),
        &[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", CB),
            ("code_verifier", verifier),
        ],
    )
}

fn claims(token: &str) -> Value {
    let seg = token.split('.').nth(1).unwrap();
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(seg)
            .unwrap(),
    )
    .unwrap()
}

fn api_status(t: &TestApp, token: &str) -> u16 {
    match t.get_with("/Patient", &format!("Bearer {token}")) {
        Outcome::Respond(r) => r.status().as_u16(),
        _ => 0,
    }
}

#[test]
fn rfc7636_appendix_b_vector() {
    assert_eq!(
        pkce::s256("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
        "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
    );
    assert!(pkce::verify(
        "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk",
        "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
    ));
    assert!(!pkce::verify("short", &pkce::s256("short")));
}

#[test]
fn code_flow_with_pkce_login_consent_and_oidc() {
    let t = web_app();
    let q = query(&[]);
    let cb = sign_in(&t, &q);
    assert!(cb.starts_with(&format!("{CB}?")), "{cb}");
    let p = params(&cb);
    assert_eq!(p["state"], "st-123");
    assert_eq!(p["iss"], ISSUER);
    let code = &p["code"];
    assert_eq!(code.len(), 43, "256-bit code");
    // The code, the session, the user's session index (src/sessions.rs) and the remembered
    // consent (the user's grants and the grant id).
    assert_eq!(t.state.len(), 5, "code, session, session index and grant");

    let r = exchange(&t, code, VERIFIER);
    assert_eq!(r.status(), 200, "{}", r.text());
    assert_eq!(r.header("cache-control"), Some("no-store"));
    let b = r.json();
    let at = b["access_token"].as_str().unwrap();
    assert_eq!(claims(at)["sub"], "john");
    assert_eq!(claims(at)["scope"], "openid profile email");
    assert!(b["refresh_token"].is_string());
    let id = claims(b["id_token"].as_str().unwrap());
    assert_eq!(id["nonce"], "n-456");
    assert_eq!(id["aud"], "web-app");
    assert_eq!(id["azp"], "web-app");
    assert_eq!(id["sub"], "john");
    assert_eq!(id["name"], "John Doe");
    assert_eq!(id["email"], "john@example.com");
    assert!(id["auth_time"].is_i64());
    assert_eq!(
        id["at_hash"],
        edge_authorizer::oauth::id_token::at_hash(edge_authorizer::platform::SigAlg::EdDsa, at)
    );
    assert_eq!(api_status(&t, at), 200);

    // userinfo
    let ui = t.call(
        TestApp::req("GET", "/auth/userinfo")
            .header("authorization", format!("Bearer {at}"))
            .body(vec![])
            .unwrap(),
    );
    assert_eq!(ui.status(), 200, "{}", ui.text());
    assert_eq!(
        ui.json(),
        json!({"sub": "john", "name": "John Doe", "given_name": "John", "family_name": "Doe", "email": "john@example.com"})
    );
}

#[test]
fn codes_are_stored_hashed_and_single_use_and_replay_revokes() {
    let t = web_app();
    let cb = sign_in(&t, &query(&[]));
    let code = params(&cb)["code"].clone();
    let first = exchange(&t, &code, VERIFIER);
    assert_eq!(first.status(), 200);
    let at = first.json()["access_token"].as_str().unwrap().to_string();
    let rt = first.json()["refresh_token"].as_str().unwrap().to_string();
    assert_eq!(api_status(&t, &at), 200);

    let second = exchange(&t, &code, VERIFIER);
    assert_eq!(second.status(), 400);
    assert_eq!(second.json()["error"], "invalid_grant");
    // RFC 6749 10.5: what the first redemption issued is revoked.
    assert_eq!(api_status(&t, &at), 401);
    let r = t.token(
        Some(&TestApp::basic("web-app", "websecret")),
        &[("grant_type", "refresh_token"), ("refresh_token", &rt)],
    );
    assert_eq!(r.status(), 400);
}

#[test]
fn pkce_is_checked_and_failed_checks_do_not_burn_the_code() {
    let t = web_app();
    let code = params(&sign_in(&t, &query(&[])))["code"].clone();
    let wrong = exchange(&t, &code, "x".repeat(43).as_str());
    assert_eq!(wrong.status(), 400);
    assert_eq!(wrong.json()["error"], "invalid_grant");
    let missing = t.token(
        Some(&TestApp::basic("web-app", "websecret")),
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", CB),
        ],
    );
    assert_eq!(missing.json()["error"], "invalid_request");
    let other_uri = t.token(
        Some(&TestApp::basic("web-app", "websecret")),
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", "https://app.example/other"),
            ("code_verifier", VERIFIER),
        ],
    );
    assert_eq!(other_uri.json()["error"], "invalid_grant");
    assert_eq!(exchange(&t, &code, VERIFIER).status(), 200);
}

#[test]
fn codes_expire_after_60_seconds() {
    let t = web_app();
    let code = params(&sign_in(&t, &query(&[])))["code"].clone();
    t.clock.advance(61);
    assert_eq!(
        exchange(&t, &code, VERIFIER).json()["error"],
        "invalid_grant"
    );
}

#[test]
fn code_of_another_client_is_refused() {
    let t = web_app();
    t.admin_put("/Client/other", json!({"secret": "o", "grant_types": ["authorization_code"], "auth": {"authorization_code": {"redirect_uri": CB}}}));
    let code = params(&sign_in(&t, &query(&[])))["code"].clone();
    let r = t.token(
        Some(&TestApp::basic("other", "o")),
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", CB),
            ("code_verifier", VERIFIER),
        ],
    );
    assert_eq!(r.json()["error"], "invalid_grant");
    assert_eq!(
        exchange(&t, &code, VERIFIER).status(),
        200,
        "the rightful client can still redeem it"
    );
}

#[test]
fn bad_client_or_redirect_uri_is_a_local_error_page() {
    let t = web_app();
    let mut b = Browser::new(&t);
    for q in [
        query(&[("redirect_uri", "https://evil.example/cb")]),
        query(&[("redirect_uri", "https://app.example/callback/")]),
        query(&[("redirect_uri", "https://APP.example/callback")]),
        query(&[("redirect_uri", "https://app.example/callback?x=1")]),
        query(&[("redirect_uri", "https://app.example:444/callback")]),
        query(&[("redirect_uri", "https://user@app.example/callback")]),
        query(&[("client_id", "nobody")]),
        query(&[("client_id", "")]),
    ] {
        match b.get(&format!("/auth/authorize?{q}")) {
            Page::Response(r) => {
                assert_eq!(r.status(), 400, "{q}");
                assert!(r.header("content-type").unwrap().starts_with("text/html"));
                assert!(r
                    .header("content-security-policy")
                    .unwrap()
                    .contains("frame-ancestors 'none'"));
                assert!(!r.text().contains("evil.example"));
            }
            Page::Redirect(l) => panic!("redirected to {l} for {q}"),
            Page::Asset(..) => panic!("asset"),
        }
    }
}

#[test]
fn other_errors_redirect_to_the_client_with_state() {
    let t = web_app();
    let mut b = Browser::new(&t);
    let cases = [
        (
            query(&[("response_type", "id_token")]),
            "unsupported_response_type",
        ),
        (
            query(&[("code_challenge_method", "plain")]),
            "invalid_request",
        ),
        (query(&[("code_challenge", "short")]), "invalid_request"),
        (query(&[("response_type", "token")]), "unauthorized_client"),
    ];
    for (q, err) in cases {
        let l = redirect(b.get(&format!("/auth/authorize?{q}")));
        let p = params(&l);
        assert!(l.starts_with(CB), "{l}");
        assert_eq!(p["error"], err, "{q}");
        assert_eq!(p["state"], "st-123");
    }
}

#[test]
fn public_clients_must_use_pkce() {
    let t = setup(
        json!({"grant_types": ["authorization_code"], "auth": {"authorization_code": {"redirect_uri": CB}}}),
    );
    let mut b = Browser::new(&t);
    let l = redirect(b.get(&format!(
        "/auth/authorize?{}",
        query(&[("code_challenge", ""), ("code_challenge_method", "")])
    )));
    assert_eq!(params(&l)["error"], "invalid_request");
    // With PKCE it works, and the public client redeems with client_id only.
    let code = params(&sign_in(&t, &query(&[])))["code"].clone();
    let r = t.token(
        None,
        &[
            ("grant_type", "authorization_code"),
            ("client_id", "web-app"),
            ("code", &code),
            ("redirect_uri", CB),
            ("code_verifier", VERIFIER),
        ],
    );
    assert_eq!(r.status(), 200, "{}", r.text());
}

#[test]
fn wrong_password_and_csrf_go_back_to_the_login_page() {
    let t = web_app();
    let q = query(&[]);
    let mut b = Browser::new(&t);
    assert_eq!(
        redirect(b.login(&q, "john", "nope")),
        format!("/auth/ui/login.html?{q}#error=login_failed")
    );
    assert_eq!(
        redirect(b.login(&q, "nobody", "nope")),
        format!("/auth/ui/login.html?{q}#error=login_failed")
    );
    // A forged form without the CSRF cookie's value.
    let forged = b.post(
        "/auth/login",
        &[
            ("username", "john"),
            ("password", "pass123"),
            ("csrf", "guess"),
            ("query", &q),
        ],
    );
    assert_eq!(
        redirect(forged),
        format!("/auth/ui/login.html?{q}#error=csrf")
    );
    assert!(!b.cookies.contains_key(common::SESSION_COOKIE));
    // A cross-site post with the right token is refused too.
    let csrf = b.context(&q)["csrf"].as_str().unwrap().to_string();
    let body = common::login_body("john", "pass123", &csrf, &q);
    let cross = b.send(
        TestApp::req("POST", "/auth/login")
            .header("content-type", "application/x-www-form-urlencoded")
            .header("origin", "https://evil.example"),
        body,
    );
    assert!(redirect(cross).ends_with("#error=csrf"));
}

#[test]
fn deny_consent_redirects_access_denied() {
    let t = web_app();
    let q = query(&[]);
    let mut b = Browser::new(&t);
    redirect(b.get(&format!("/auth/authorize?{q}")));
    redirect(b.login(&q, "john", "pass123"));
    let l = redirect(b.consent(&q, "deny"));
    let p = params(&l);
    assert_eq!(p["error"], "access_denied");
    assert_eq!(p["state"], "st-123");
    assert!(!p.contains_key("code"));
}

#[test]
fn sessions_skip_login_first_party_skips_consent_and_logout_ends_it() {
    let t = setup(
        json!({"secret": "websecret", "grant_types": ["authorization_code"], "first_party": true,
        "auth": {"authorization_code": {"redirect_uri": CB}}}),
    );
    let q = query(&[]);
    let mut b = Browser::new(&t);
    redirect(b.get(&format!("/auth/authorize?{q}")));
    let cb = redirect(b.login(&q, "john", "pass123"));
    assert!(cb.starts_with(CB), "first party: no consent page: {cb}");
    let again = redirect(b.get(&format!("/auth/authorize?{q}")));
    assert!(again.starts_with(CB), "the session signs in without a form");
    assert_eq!(redirect(b.logout()), "/auth/ui/logged-out.html");
    assert!(!b.cookies.contains_key(common::SESSION_COOKIE));
    assert!(redirect(b.get(&format!("/auth/authorize?{q}"))).starts_with("/auth/ui/login.html"));
}

#[test]
fn session_cookie_attributes() {
    let t = web_app();
    let q = query(&[]);
    let mut b = Browser::new(&t);
    let csrf = b.context(&q)["csrf"].as_str().unwrap().to_string();
    let body = common::login_body("john", "pass123", &csrf, &q);
    let r = t.send(
        TestApp::req("POST", "/auth/login")
            .header("content-type", "application/x-www-form-urlencoded")
            .header("cookie", format!("{}={csrf}", common::CSRF_COOKIE))
            .body(body)
            .unwrap(),
    );
    let Outcome::Respond(r) = r else { panic!() };
    let c = r.headers()["set-cookie"].to_str().unwrap();
    // Over https: the `__Host-` prefix, which browsers accept only with Secure, Path=/ and no
    // Domain (RFC 6265bis 4.1.3.2).
    assert!(c.starts_with("__Host-edge_session="), "{c}");
    for attr in ["HttpOnly", "SameSite=Lax", "Secure", "Path=/;"] {
        assert!(c.contains(attr), "{attr} missing in {c}");
    }
    assert!(!c.contains("Domain"), "{c}");
}

#[test]
fn over_https_a_cookie_without_the_host_prefix_is_ignored() {
    let t = web_app();
    let q = query(&[]);
    let mut b = Browser::new(&t);
    redirect(b.get(&format!("/auth/authorize?{q}")));
    redirect(b.login(&q, "john", "pass123"));
    let session = b.cookies[common::SESSION_COOKIE].clone();
    // A sibling subdomain can plant `edge_session` (no prefix) for our host: it is not ours.
    let mut tossed = Browser::new(&t);
    tossed
        .cookies
        .insert("edge_session".into(), session.clone());
    assert!(
        redirect(tossed.get(&format!("/auth/authorize?{q}"))).starts_with("/auth/ui/login.html"),
        "a plain-named session cookie signed the browser in over https"
    );
    // The same id under the prefixed name is a session (the control).
    let mut real = Browser::new(&t);
    real.cookies.insert(common::SESSION_COOKIE.into(), session);
    assert!(!redirect(real.get(&format!("/auth/authorize?{q}"))).starts_with("/auth/ui/login.html"));
    // A CSRF token under the plain name does not pass the double-submit check over https.
    let csrf = b.context(&q)["csrf"].as_str().unwrap().to_string();
    let body = common::login_body("john", "pass123", &csrf, &q);
    let r = t.send(
        TestApp::req("POST", "/auth/login")
            .header("content-type", "application/x-www-form-urlencoded")
            .header("cookie", format!("edge_csrf={csrf}"))
            .body(body)
            .unwrap(),
    );
    let Outcome::Respond(r) = r else { panic!() };
    let l = r.headers()["location"].to_str().unwrap().to_string();
    assert!(l.ends_with("#error=csrf"), "{l}");
}

#[test]
fn on_plain_http_loopback_cookies_have_plain_names_scoped_to_auth() {
    let t = web_app();
    let q = query(&[]);
    let ctx = t.send(
        http::Request::builder()
            .method("GET")
            .uri(format!("http://127.0.0.1:8787/auth/interaction?{q}"))
            .body(vec![])
            .unwrap(),
    );
    let Outcome::Respond(r) = ctx else { panic!() };
    let c = r.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(c.starts_with("edge_csrf="), "{c}");
    assert!(c.contains("Path=/auth;") && !c.contains("Secure"), "{c}");
    let csrf: serde_json::Value = serde_json::from_slice(r.body()).unwrap();
    let csrf = csrf["csrf"].as_str().unwrap();
    let body = common::login_body("john", "pass123", csrf, &q);
    let r = t.send(
        http::Request::builder()
            .method("POST")
            .uri("http://127.0.0.1:8787/auth/login")
            .header("content-type", "application/x-www-form-urlencoded")
            .header("cookie", format!("edge_csrf={csrf}"))
            .body(body)
            .unwrap(),
    );
    let Outcome::Respond(r) = r else { panic!() };
    let c = r.headers()["set-cookie"].to_str().unwrap();
    assert!(c.starts_with("edge_session="), "{c}");
    assert!(c.contains("Path=/auth;") && !c.contains("Secure"), "{c}");
}

#[test]
fn origin_null_form_posts_are_refused_when_fetch_metadata_says_another_site() {
    let t = web_app();
    let q = query(&[]);
    let mut b = Browser::new(&t);
    let csrf = b.context(&q)["csrf"].as_str().unwrap().to_string();
    let post = |site: Option<&str>| {
        let mut r = TestApp::req("POST", "/auth/login")
            .header("content-type", "application/x-www-form-urlencoded")
            .header("origin", "null")
            .header("cookie", format!("{}={csrf}", common::CSRF_COOKIE));
        if let Some(s) = site {
            r = r.header("sec-fetch-site", s);
        }
        let Outcome::Respond(r) = t.send(
            r.body(common::login_body("john", "pass123", &csrf, &q))
                .unwrap(),
        ) else {
            panic!()
        };
        r.headers()["location"].to_str().unwrap().to_string()
    };
    for site in ["cross-site", "same-site", "Cross-Site"] {
        assert!(post(Some(site)).ends_with("#error=csrf"), "{site}");
    }
    // `Origin: null` from our own page (no-referrer) or a browser without Fetch Metadata: the
    // double-submit token decides.
    for site in [Some("same-origin"), None] {
        assert!(!post(site).contains("#error="), "{site:?}");
    }
}

#[test]
fn implicit_only_for_clients_that_list_it() {
    let t = setup(
        json!({"grant_types": ["implicit"], "first_party": true, "scope": ["read"], "auth": {"implicit": {"redirect_uri": CB, "access_token_expiration": 300}}}),
    );
    let q = form_urlencoded::Serializer::new(String::new())
        .extend_pairs([
            ("response_type", "token"),
            ("client_id", "web-app"),
            ("redirect_uri", CB),
            ("state", "s1"),
            ("scope", "read"),
        ])
        .finish();
    let mut b = Browser::new(&t);
    redirect(b.get(&format!("/auth/authorize?{q}")));
    let l = redirect(b.login(&q, "john", "pass123"));
    assert!(l.starts_with(&format!("{CB}#")), "{l}");
    let p = params(&l);
    assert_eq!(p["token_type"], "Bearer");
    assert_eq!(p["expires_in"], "300");
    assert_eq!(p["state"], "s1");
    assert!(!p.contains_key("refresh_token"));
    assert_eq!(api_status(&t, &p["access_token"]), 200);
}

/// The tutorial's `/auth/authorize?client_id=web-app&response_type=code` names no redirect URI:
/// the login page's `form-action` allows the registered one (the redirect the server will make),
/// and a redirect URI in the page's query that the client never registered allows nothing.
#[test]
fn login_page_form_action_is_the_redirect_the_server_will_make() {
    let t = web_app();
    let csp = |q: &str| match Browser::new(&t).get(&format!("/auth/ui/login.html?{q}")) {
        Page::Asset(_, headers) => headers
            .into_iter()
            .find(|(k, _)| *k == "content-security-policy")
            .map(|(_, v)| v)
            .unwrap(),
        _ => panic!("not an asset"),
    };
    assert!(csp("client_id=web-app&response_type=code")
        .contains("form-action 'self' https://app.example;"));
    assert!(csp(
        "client_id=web-app&response_type=code&redirect_uri=https%3A%2F%2Fevil.example%2Fcb"
    )
    .contains("form-action 'self';"));
    assert!(csp("client_id=nobody&response_type=code").contains("form-action 'self';"));
}

#[test]
fn ui_assets_carry_security_headers() {
    let t = web_app();
    let mut b = Browser::new(&t);
    match b.get(&format!("/auth/ui/login.html?{}", query(&[]))) {
        Page::Asset(path, headers) => {
            assert_eq!(path, "/auth/ui/login.html");
            let h: HashMap<_, _> = headers.into_iter().collect();
            let csp = &h["content-security-policy"];
            assert!(
                csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
                "{csp}"
            );
            assert!(
                csp.contains("form-action 'self' https://app.example"),
                "{csp}"
            );
            assert!(csp.contains("frame-ancestors 'none'"));
            assert_eq!(h["referrer-policy"], "no-referrer");
            assert_eq!(h["x-frame-options"], "DENY");
        }
        _ => panic!("not an asset"),
    }
    assert!(matches!(b.get("/auth/ui/..%2Fsecret"), Page::Response(r) if r.status() == 404));
}

#[test]
fn online_access_refresh_tokens_end_with_the_session() {
    let t = setup(
        json!({"secret": "websecret", "grant_types": ["authorization_code"], "first_party": true,
        "auth": {"authorization_code": {"redirect_uri": CB}}}),
    );
    let q = query(&[("scope", "openid online_access")]);
    let mut b = Browser::new(&t);
    redirect(b.get(&format!("/auth/authorize?{q}")));
    let cb = redirect(b.login(&q, "john", "pass123"));
    let r = exchange(&t, &params(&cb)["code"], VERIFIER);
    let rt = r.json()["refresh_token"]
        .as_str()
        .expect("online_access gives a refresh token")
        .to_string();
    let again = t.token(
        Some(&TestApp::basic("web-app", "websecret")),
        &[("grant_type", "refresh_token"), ("refresh_token", &rt)],
    );
    assert_eq!(again.status(), 200, "{}", again.text());
    let rt2 = again.json()["refresh_token"].as_str().unwrap().to_string();
    redirect(b.logout());
    let after = t.token(
        Some(&TestApp::basic("web-app", "websecret")),
        &[("grant_type", "refresh_token"), ("refresh_token", &rt2)],
    );
    assert_eq!(after.status(), 400);
    assert!(after.json()["error_description"]
        .as_str()
        .unwrap()
        .contains("session has ended"));
}

/// Issue 13: `secret_required: false` makes a client with a secret public for the code flow:
/// PKCE is required, and a code issued without a challenge is not redeemed without the secret.
#[test]
fn secret_required_false_means_pkce_and_no_challengeless_code_without_the_secret() {
    let conf = json!({"secret": "websecret", "grant_types": ["authorization_code"],
        "auth": {"authorization_code": {"redirect_uri": CB}}});
    let t = setup(conf.clone());
    let no_pkce = query(&[("code_challenge", ""), ("code_challenge_method", "")]);
    // While the secret is required, a code without PKCE is fine for this client.
    let code = params(&sign_in(&t, &no_pkce))["code"].clone();
    let mut open = conf;
    open["auth"]["authorization_code"]["secret_required"] = json!(false);
    assert_eq!(t.admin_put("/Client/web-app", open).status(), 200);
    let mut b = Browser::new(&t);
    let l = redirect(b.get(&format!("/auth/authorize?{no_pkce}")));
    assert_eq!(params(&l)["error"], "invalid_request");
    let redeem = |auth: Option<&str>| {
        t.token(
            auth,
            &[
                ("grant_type", "authorization_code"),
                ("client_id", "web-app"),
                ("code", &code),
                ("redirect_uri", CB),
            ],
        )
    };
    let r = redeem(None);
    assert_eq!(r.status(), 400, "{}", r.text());
    assert_eq!(r.json()["error"], "invalid_grant");
    // Control: with the secret the same code is redeemed.
    let r = redeem(Some(&TestApp::basic("web-app", "websecret")));
    assert_eq!(r.status(), 200, "{}", r.text());
}

/// Remembered consent (Aidbox's Grant, src/model/grant.rs): an Allow skips the consent page for
/// the same scopes or fewer, for that user and client only; new scopes and a revoke ask again.
#[test]
fn consent_is_remembered_per_user_client_and_scopes_until_revoked() {
    let t = web_app();
    t.admin_put(
        "/User/jane",
        json!({"email": "jane@example.com", "password": "pass456"}),
    );
    let q = query(&[]);
    assert!(sign_in(&t, &q).starts_with(&format!("{CB}?")));
    let login = |user: &str, pw: &str, q: &str| {
        let mut b = Browser::new(&t);
        redirect(b.get(&format!("/auth/authorize?{q}")));
        redirect(b.login(q, user, pw))
    };
    assert!(login("john", "pass123", &q).starts_with(CB), "same scopes");
    let fewer = query(&[("scope", "openid")]);
    assert!(login("john", "pass123", &fewer).starts_with(CB), "fewer");
    let wider = query(&[("scope", "openid profile email offline_access")]);
    assert!(login("john", "pass123", &wider).starts_with("/auth/ui/consent.html?"));
    assert!(login("jane", "pass456", &q).starts_with("/auth/ui/consent.html?"));

    let root = edge_authorizer::testing::TestApp::root();
    let list = t.call(
        TestApp::req("GET", "/Grant?user=john")
            .header("authorization", &root)
            .body(Vec::new())
            .unwrap(),
    );
    assert_eq!(list.status(), 200, "{}", list.text());
    let g = list.json()["entry"][0]["resource"].clone();
    assert_eq!(
        g["client"],
        json!({"resourceType": "Client", "id": "web-app"})
    );
    assert_eq!(g["scope"], "email openid profile");
    let id = g["id"].as_str().unwrap();
    let del = t.call(
        TestApp::req("DELETE", &format!("/Grant/{id}"))
            .header("authorization", &root)
            .body(Vec::new())
            .unwrap(),
    );
    assert_eq!(del.status(), 200, "{}", del.text());
    assert!(login("john", "pass123", &fewer).starts_with("/auth/ui/consent.html?"));
}
