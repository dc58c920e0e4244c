//! Logout cannot be triggered cross-site: a bare GET only shows the confirmation page; the
//! session ends on a POST with the CSRF token or a GET with a valid `id_token_hint`.

use edge_authorizer::testing::TestApp;
use serde_json::json;

mod common;
use common::{redirect, Browser, Page};

const CB: &str = "https://app.example/callback";
const SIGNED_OUT: &str = "/auth/ui/logged-out.html";
const CONFIRM: &str = "/auth/ui/logout.html";

fn setup() -> TestApp {
    let t = TestApp::new();
    t.admin_put(
        "/Client/web-app",
        json!({"secret": "websecret", "first_party": true,
               "grant_types": ["authorization_code", "password"],
               "auth": {"authorization_code": {"redirect_uri": CB}}}),
    );
    t.admin_put(
        "/User/john",
        json!({"email": "john@example.com", "password": "pass123"}),
    );
    t.admin_put(
        "/User/jane",
        json!({"email": "jane@example.com", "password": "pass456"}),
    );
    t
}

const Q: &str = "response_type=code&client_id=web-app&code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM&code_challenge_method=S256";

fn signed_in(t: &TestApp) -> Browser<'_> {
    let mut b = Browser::new(t);
    redirect(b.get(&format!("/auth/authorize?{Q}")));
    assert!(redirect(b.login(Q, "john", "pass123")).starts_with(CB));
    b
}

fn still_signed_in(b: &mut Browser) -> bool {
    redirect(b.get(&format!("/auth/authorize?{Q}"))).starts_with(CB)
}

fn id_token(t: &TestApp, user: &str, password: &str) -> String {
    let r = t.token(
        Some(&TestApp::basic("web-app", "websecret")),
        &[
            ("grant_type", "password"),
            ("username", user),
            ("password", password),
            ("scope", "openid"),
        ],
    );
    assert_eq!(r.status(), 200, "{}", r.text());
    r.json()["id_token"].as_str().unwrap().to_string()
}

#[test]
fn a_bare_get_only_asks() {
    let t = setup();
    let mut b = signed_in(&t);
    assert_eq!(redirect(b.get("/auth/logout")), CONFIRM);
    assert!(b.cookies.contains_key(common::SESSION_COOKIE));
    assert!(still_signed_in(&mut b), "a GET ended the session");
    // The confirmation page's context names the user and brings a CSRF token.
    let Page::Response(r) = b.get("/auth/session") else {
        panic!("no session context")
    };
    assert_eq!(r.json()["user"]["id"], "john");
    assert_eq!(r.json()["csrf"].as_str().unwrap().len(), 43);
}

#[test]
fn a_post_without_the_csrf_token_ends_nothing() {
    let t = setup();
    let mut b = signed_in(&t);
    assert_eq!(
        redirect(b.post("/auth/logout", &[])),
        format!("{CONFIRM}#error=csrf")
    );
    assert_eq!(
        redirect(b.post("/auth/logout", &[("csrf", "A".repeat(43).as_str())])),
        format!("{CONFIRM}#error=csrf")
    );
    assert!(still_signed_in(&mut b));
    // From another site, even with a token.
    let Page::Response(r) = b.get("/auth/session") else {
        panic!()
    };
    let csrf = r.json()["csrf"].as_str().unwrap().to_string();
    let body = format!("csrf={csrf}");
    let page = b.send(
        TestApp::req("POST", "/auth/logout")
            .header("content-type", "application/x-www-form-urlencoded")
            .header("origin", "https://evil.example"),
        body.into_bytes(),
    );
    assert_eq!(redirect(page), format!("{CONFIRM}#error=csrf"));
    assert!(still_signed_in(&mut b));
}

#[test]
fn a_post_with_the_csrf_token_ends_the_session() {
    let t = setup();
    let mut b = signed_in(&t);
    assert_eq!(redirect(b.logout()), SIGNED_OUT);
    assert!(!b.cookies.contains_key(common::SESSION_COOKIE));
    assert!(!still_signed_in(&mut b));
}

#[test]
fn a_get_with_a_valid_id_token_hint_ends_the_session() {
    let t = setup();
    let mut b = signed_in(&t);
    // Another user's ID token, a garbage hint, or an access token do not.
    let jane = id_token(&t, "jane@example.com", "pass456");
    assert_eq!(
        redirect(b.get(&format!("/auth/logout?id_token_hint={jane}"))),
        CONFIRM
    );
    assert_eq!(redirect(b.get("/auth/logout?id_token_hint=a.b.c")), CONFIRM);
    let access = t
        .token(
            Some(&TestApp::basic("web-app", "websecret")),
            &[
                ("grant_type", "password"),
                ("username", "john"),
                ("password", "pass123"),
            ],
        )
        .json()["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        redirect(b.get(&format!("/auth/logout?id_token_hint={access}"))),
        CONFIRM
    );
    assert!(still_signed_in(&mut b));
    let john = id_token(&t, "john", "pass123");
    assert_eq!(
        redirect(b.get(&format!("/auth/logout?id_token_hint={john}"))),
        SIGNED_OUT
    );
    assert!(!still_signed_in(&mut b));
}

#[test]
fn head_never_ends_the_session() {
    let t = setup();
    let mut b = signed_in(&t);
    let john = id_token(&t, "john", "pass123");
    let page = b.send(
        TestApp::req("HEAD", &format!("/auth/logout?id_token_hint={john}")),
        Vec::new(),
    );
    assert_eq!(redirect(page), CONFIRM);
    assert!(still_signed_in(&mut b));
}
