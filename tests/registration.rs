//! Client ID Metadata Documents in the native core (src/oauth/cimd.rs): the per-isolate cache
//! and its bounds, invalid documents never cached, the authorizer refusing a CIMD client's token
//! once its document is gone, and the test-only loopback escape. The HTTP side (SSRF, sizes,
//! redirects, timeouts) is in tests/e2e/registration.test.mjs against the built Worker.

use edge_authorizer::error::Error;
use edge_authorizer::oauth::cimd::load_client;
use edge_authorizer::oauth::{GrantType, Issue};
use edge_authorizer::testing::{TestApp, ISSUER};
use serde_json::json;

const URL: &str = "https://client.example.com/oauth/client.json";

fn serve(t: &TestApp, url: &str, body: serde_json::Value, cache_control: &str) {
    t.http.route(url, 200, &body.to_string());
    t.http.route_headers.borrow_mut().insert(
        url.into(),
        vec![
            ("content-type".into(), "application/json".into()),
            ("cache-control".into(), cache_control.into()),
        ],
    );
}

fn doc(url: &str) -> serde_json::Value {
    json!({"client_id": url, "client_name": "Native test", "redirect_uris": ["https://client.example.com/cb"]})
}

fn setup() -> TestApp {
    let t = TestApp::with_config(|c| c.registration.metadata_documents = true);
    serve(&t, URL, doc(URL), "max-age=120");
    t
}

fn load(
    t: &TestApp,
    url: &str,
) -> edge_authorizer::error::Result<Option<edge_authorizer::model::client::Client>> {
    futures::executor::block_on(load_client(&t.app, None, url))
}

#[test]
fn a_valid_document_is_cached_for_its_max_age_then_fetched_again() {
    let t = setup();
    let c = load(&t, URL).unwrap().expect("a client");
    assert_eq!(c.id, URL);
    assert!(edge_authorizer::oauth::register::is_self_registered(&c));
    assert!(!c.is_confidential());
    load(&t, URL).unwrap();
    assert_eq!(t.http.count(URL), 1);
    t.clock.advance(121);
    load(&t, URL).unwrap();
    assert_eq!(t.http.count(URL), 2);
}

#[test]
fn a_cache_lifetime_is_bounded_both_ways() {
    let t = setup();
    serve(&t, URL, doc(URL), "no-store");
    load(&t, URL).unwrap();
    t.clock.advance(59);
    load(&t, URL).unwrap();
    assert_eq!(t.http.count(URL), 1, "no-store is still kept 60 s");
    t.clock.advance(2);
    serve(&t, URL, doc(URL), "max-age=31536000");
    load(&t, URL).unwrap();
    t.clock.advance(3601);
    load(&t, URL).unwrap();
    assert_eq!(t.http.count(URL), 3, "a year is cut to an hour");
}

#[test]
fn an_invalid_document_is_never_cached() {
    let t = setup();
    let mut bad = doc(URL);
    bad["client_secret"] = json!("s3cret");
    serve(&t, URL, bad, "max-age=3600");
    for n in 1..=2 {
        match load(&t, URL) {
            Err(Error::InvalidClient(d)) => assert!(d.contains("client_secret"), "{d}"),
            other => panic!("expected invalid_client, got {other:?}"),
        }
        assert_eq!(t.http.count(URL), n);
    }
    t.http.route(URL, 500, "oops");
    assert!(matches!(load(&t, URL), Err(Error::InvalidClient(_))));
    serve(&t, URL, doc(URL), "max-age=3600");
    assert!(load(&t, URL).unwrap().is_some());
}

#[test]
fn the_authorizer_refuses_a_cimd_clients_token_once_its_document_is_gone() {
    let t = setup();
    let r = t.admin_put("/User/john", json!({"password": "pass123"}));
    assert_eq!(r.status(), 201, "{}", r.text());
    let user = futures::executor::block_on(edge_authorizer::authn::load_user(&t.app, "john"))
        .unwrap()
        .unwrap();
    let client = load(&t, URL).unwrap().unwrap();
    let req = TestApp::req("GET", "/Patient").body(Vec::new()).unwrap();
    let issue = Issue::new(
        &client,
        Some(&user),
        Some("openid".into()),
        ISSUER.into(),
        GrantType::AuthorizationCode,
    );
    let (token, _) = futures::executor::block_on(edge_authorizer::oauth::sign_access_token(
        &t.app,
        &req,
        &issue,
        "jti-cimd-1",
    ))
    .unwrap();
    let who = futures::executor::block_on(edge_authorizer::authn::authenticate_bearer(
        &t.app, &req, &token,
    ))
    .unwrap();
    assert_eq!(who.client_id(), Some(URL));
    t.http.route(URL, 404, "gone");
    t.clock.advance(121);
    match futures::executor::block_on(edge_authorizer::authn::authenticate_bearer(
        &t.app, &req, &token,
    )) {
        Err(Error::InvalidToken(d)) => assert!(d.contains("404"), "{d}"),
        other => panic!("expected invalid_token, got {other:?}"),
    }
}

#[test]
fn off_means_no_fetch_and_loopback_needs_the_test_only_setting() {
    let off = TestApp::new();
    serve(&off, URL, doc(URL), "max-age=60");
    assert!(load(&off, URL).unwrap().is_none());
    assert_eq!(off.http.count(URL), 0);

    let local = "http://127.0.0.1:8123/c.json";
    let strict = setup();
    serve(&strict, local, doc(local), "max-age=60");
    assert!(matches!(load(&strict, local), Err(Error::InvalidClient(_))));
    assert_eq!(strict.http.count(local), 0);

    let test = TestApp::with_config(|c| {
        c.registration.metadata_documents = true;
        c.registration.test_only_loopback = true;
    });
    serve(&test, local, doc(local), "max-age=60");
    assert!(load(&test, local).unwrap().is_some());
    // Nothing else is widened by it.
    let private = "http://10.0.0.1/c.json";
    serve(&test, private, doc(private), "max-age=60");
    assert!(matches!(load(&test, private), Err(Error::InvalidClient(_))));
    assert_eq!(test.http.count(private), 0);
}
