//! Issue 15, feeds: the isolate's revocation polling over replicas and the old single feed
//! (src/state.rs `is_revoked`; docs/scale.md "Revocation feeds").

use edge_authorizer::context::Outcome;
use edge_authorizer::platform::Feed;
use edge_authorizer::testing::{TestApp, TestResponse};
use serde_json::json;

fn setup(feeds: u16) -> TestApp {
    let t = TestApp::with_config(|c| c.revocation_feeds = feeds);
    for (path, body) in [
        (
            "/Client/cc",
            json!({"secret": "ccs", "grant_types": ["client_credentials"]}),
        ),
        ("/AccessPolicy/all", json!({"engine": "allow"})),
    ] {
        assert!(t.admin_put(path, body).status() < 300);
    }
    t
}

fn token(t: &TestApp) -> (String, String) {
    let (token, claims) = t.cc_token("cc", "ccs");
    (
        format!("Bearer {token}"),
        claims["jti"].as_str().unwrap().to_string(),
    )
}

fn allowed(t: &TestApp, auth: &str) -> bool {
    match t.get_with("/Patient", auth) {
        Outcome::Forward(_) => true,
        Outcome::Respond(r) => {
            let r = TestResponse(r);
            assert!(r.status() < 500, "{} {}", r.status(), r.text());
            r.status() == 200
        }
        Outcome::Asset { .. } => panic!("asset"),
    }
}

fn reads(t: &TestApp) -> Vec<Feed> {
    t.state.feed_reads.borrow_mut().drain(..).collect()
}

#[test]
fn an_isolate_polls_one_replica_and_the_old_feed_only_until_read_to_its_end() {
    let t = setup(4);
    let (live, _) = token(&t);
    assert!(allowed(&t, &live));
    let k = t.app.cache.revocations.feed().expect("a replica picked");
    assert!(k < 4);
    assert_eq!(reads(&t), vec![Feed::Replica(k), Feed::Old]);
    assert!(t.app.cache.revocations.old_done());
    // Caught up: nothing asked within the poll interval.
    assert!(allowed(&t, &live));
    assert_eq!(reads(&t), vec![]);
    // Later polls: the same replica, never the old feed.
    for _ in 0..3 {
        t.clock
            .advance(edge_authorizer::state::REVOCATION_POLL_SECS);
        assert!(allowed(&t, &live));
        assert_eq!(reads(&t), vec![Feed::Replica(k)]);
    }
}

#[test]
fn a_revocation_only_the_old_feed_holds_is_honoured() {
    let t = setup(16);
    let (live, _) = token(&t);
    let (dead, jti) = token(&t);
    t.state.revoke_old(&jti, t.clock.0.get() + 3_600);
    assert!(!allowed(&t, &dead));
    assert!(allowed(&t, &live), "positive control");
    t.clock.advance(5);
    assert!(!allowed(&t, &dead), "kept in the isolate's copy");
}

#[test]
fn an_old_feed_longer_than_a_page_is_asked_about_each_token_until_read() {
    let t = setup(2);
    let (live, _) = token(&t);
    let (dead, jti) = token(&t);
    let until = t.clock.0.get() + 3_600;
    let page = edge_authorizer::state::REVOCATION_PAGE as usize;
    for i in 0..page + 10 {
        t.state.revoke_old(&format!("old-{i}"), until);
    }
    // The revoked token is on the old feed's second page.
    t.state.revoke_old(&jti, until);
    assert!(
        !allowed(&t, &dead),
        "refused by the point lookup on the old feed"
    );
    assert!(!t.app.cache.revocations.old_done());
    let r = reads(&t);
    assert!(r.contains(&Feed::Old), "{r:?}");
    // The next request reads the second page: done, never asked again.
    assert!(allowed(&t, &live));
    assert!(t.app.cache.revocations.old_done());
    reads(&t);
    assert!(!allowed(&t, &dead));
    t.clock.advance(2);
    assert!(allowed(&t, &live));
    assert!(!reads(&t).contains(&Feed::Old));
}

#[test]
fn a_failing_feed_fails_the_bearer_request_closed() {
    let t = setup(4);
    let (live, _) = token(&t);
    t.state.failing.set(true);
    let r = match t.get_with("/Patient", &live) {
        Outcome::Respond(r) => TestResponse(r),
        _ => panic!("forwarded while the feeds were unreachable"),
    };
    assert_eq!(r.status(), 503, "{}", r.text());
    t.state.failing.set(false);
    assert!(allowed(&t, &live));
}

#[test]
fn revocation_feeds_is_refused_outside_1_to_256() {
    use edge_authorizer::config::revocation_feeds;
    assert_eq!(revocation_feeds(None), Ok(32));
    assert_eq!(revocation_feeds(Some("1".into())), Ok(1));
    assert_eq!(revocation_feeds(Some("256".into())), Ok(256));
    for bad in ["0", "257", "-1", "x", "65537"] {
        assert!(revocation_feeds(Some(bad.into())).is_err(), "{bad}");
    }
}
