//! The protected path's per-isolate reuse (src/authz.rs `decide`, `ClientViews`): a Client's
//! public view is reused only while its document is unchanged, and the caller's token claims
//! reach the policy and the origin as before.

use edge_authorizer::context::Outcome;
use edge_authorizer::testing::TestApp;
use serde_json::json;

fn status(o: Outcome) -> u16 {
    match o {
        Outcome::Respond(r) => r.status().as_u16(),
        Outcome::Forward(_) => 299,
        Outcome::Asset { .. } => 0,
    }
}

fn tier_policy(t: &TestApp) {
    t.admin_put(
        "/AccessPolicy/gold-only",
        json!({"engine": "matcho", "matcho": {"client": {"id": "c", "details": {"tier": "gold"}}}}),
    );
}

#[test]
fn a_client_change_through_this_isolate_applies_to_the_next_decision() {
    let t = TestApp::new();
    let put = |tier: &str| {
        t.admin_put(
            "/Client/c",
            json!({"secret": "s3cret", "grant_types": ["basic"], "details": {"tier": tier}}),
        )
    };
    put("gold");
    tier_policy(&t);
    let basic = TestApp::basic("c", "s3cret");
    for _ in 0..3 {
        assert_eq!(status(t.get_with("/Patient", &basic)), 200);
    }
    put("silver");
    assert_eq!(status(t.get_with("/Patient", &basic)), 403);
    assert_eq!(status(t.get_with("/Patient", &basic)), 403);
    put("gold");
    assert_eq!(status(t.get_with("/Patient", &basic)), 200);
    // A number that `==` calls equal but that serializes differently is a change too.
    t.admin_put(
        "/AccessPolicy/gold-only",
        json!({"engine": "json-schema", "schema": {"properties": {"client": {"properties": {"n": {"const": 0}}, "required": ["n"]}}}}),
    );
    let put_n = |n: serde_json::Value| {
        t.admin_put(
            "/Client/c",
            json!({"secret": "s3cret", "grant_types": ["basic"], "n": n}),
        )
    };
    put_n(json!(0));
    let first = status(t.get_with("/Patient", &basic));
    put_n(json!(1));
    assert_eq!(status(t.get_with("/Patient", &basic)), 403);
    put_n(json!(0));
    assert_eq!(status(t.get_with("/Patient", &basic)), first);
}

#[test]
fn bearer_claims_reach_every_decision_and_the_origin() {
    let t = TestApp::with_config(|c| c.origin_url = Some("https://origin.internal".into()));
    t.admin_put(
        "/Client/api",
        json!({"secret": "verysecret", "grant_types": ["client_credentials"]}),
    );
    t.admin_put(
        "/AccessPolicy/by-claim",
        json!({"engine": "matcho", "matcho": {"jwt": {"client_id": "api", "sub": "api"}, "client": {"id": "api"}}}),
    );
    let r = t.token(
        Some(&TestApp::basic("api", "verysecret")),
        &[("grant_type", "client_credentials")],
    );
    let token = r.json()["access_token"].as_str().unwrap().to_string();
    let bearer = format!("Bearer {token}");
    for _ in 0..3 {
        match t.get_with("/Patient/pt-1", &bearer) {
            Outcome::Forward(f) => {
                assert_eq!(f.headers()["x-client-id"], "api");
            }
            _ => panic!("expected a forward"),
        }
    }
}

fn basic_client() -> (TestApp, String) {
    let t = TestApp::new();
    t.admin_put(
        "/Client/c",
        json!({"secret": "s3cret", "grant_types": ["basic"]}),
    );
    (t, TestApp::basic("c", "s3cret"))
}

fn req(t: &TestApp, method: &str, path: &str, auth: &str) -> u16 {
    status(
        t.send(
            TestApp::req(method, path)
                .header("authorization", auth)
                .body(vec![])
                .unwrap(),
        ),
    )
}

/// An `allow` policy decides without the policy request only when it is the first that
/// applies; links to an Operation are matched on the request's operation as before.
#[test]
fn allow_policies_decide_as_the_full_evaluation_would() {
    let (t, basic) = basic_client();
    // Nothing applies: 403.
    assert_eq!(req(&t, "GET", "/Patient/pt-1", &basic), 403);
    // An allow for another client: still 403.
    t.admin_put(
        "/AccessPolicy/other",
        json!({"engine": "allow", "link": [{"id": "other", "resourceType": "Client"}]}),
    );
    assert_eq!(req(&t, "GET", "/Patient/pt-1", &basic), 403);
    // An allow linked to an Operation: that operation only.
    t.admin_put(
        "/AccessPolicy/read-only",
        json!({"engine": "allow", "link": [{"id": "FhirRead", "resourceType": "Operation"}]}),
    );
    assert_eq!(req(&t, "GET", "/Patient/pt-1", &basic), 200);
    assert_eq!(req(&t, "GET", "/Patient", &basic), 403);
    assert_eq!(req(&t, "DELETE", "/Patient/pt-1", &basic), 403);
    // An allow with a roleName reads the request (the caller's Roles): no user, no Role.
    t.admin_put(
        "/AccessPolicy/read-only",
        json!({"engine": "allow", "roleName": "admin", "link": [{"id": "c", "resourceType": "Client"}]}),
    );
    assert_eq!(req(&t, "GET", "/Patient/pt-1", &basic), 403);
    // A policy that reads the request and refuses, before or after an allow that applies:
    // the allow still decides.
    for (deny, allow) in [("a-deny", "b-allow"), ("d-deny", "c-allow")] {
        let (t, basic) = basic_client();
        t.admin_put(
            &format!("/AccessPolicy/{deny}"),
            json!({"engine": "matcho", "matcho": {"request-method": "post"}, "link": [{"id": "c", "resourceType": "Client"}]}),
        );
        assert_eq!(req(&t, "GET", "/Patient/pt-1", &basic), 403);
        t.admin_put(
            &format!("/AccessPolicy/{allow}"),
            json!({"engine": "allow", "link": [{"id": "c", "resourceType": "Client"}]}),
        );
        assert_eq!(
            req(&t, "GET", "/Patient/pt-1", &basic),
            200,
            "{deny} {allow}"
        );
        // Past the policies (the demo origin answers 405 to a POST on a resource).
        assert_eq!(
            req(&t, "POST", "/Patient/pt-1", &basic),
            405,
            "{deny} {allow}"
        );
    }
}
