//! Refresh tokens (rotation, reuse detection, expiry, scope), revocation (RFC 7009) and
//! introspection (RFC 7662), with the password grant as the quickest way to a refresh token.

use edge_authorizer::context::Outcome;
use edge_authorizer::testing::{TestApp, TestResponse};
use serde_json::json;

fn setup(auth: serde_json::Value) -> TestApp {
    let t = TestApp::new();
    t.admin_put(
        "/Client/app",
        // Registered scopes (issue 11: an unregistered custom scope is no longer granted).
        json!({"secret": "s", "grant_types": ["password"], "auth": {"password": auth},
               "scope": ["read", "write", "offline_access"]}),
    );
    t.admin_put(
        "/Client/other",
        json!({"secret": "o", "grant_types": ["password"]}),
    );
    t.admin_put(
        "/Client/rs",
        json!({"secret": "rs", "grant_types": ["client_credentials"]}),
    );
    t.admin_put(
        "/User/john",
        json!({"email": "john@example.com", "password": "pass123"}),
    );
    t.admin_put("/AccessPolicy/p", json!({"engine": "allow"}));
    t
}

fn login(t: &TestApp, scope: &str) -> TestResponse {
    t.token(
        Some(&TestApp::basic("app", "s")),
        &[
            ("grant_type", "password"),
            ("username", "john"),
            ("password", "pass123"),
            ("scope", scope),
        ],
    )
}

fn refresh(t: &TestApp, rt: &str) -> TestResponse {
    t.token(
        Some(&TestApp::basic("app", "s")),
        &[("grant_type", "refresh_token"), ("refresh_token", rt)],
    )
}

fn s(r: &TestResponse, k: &str) -> String {
    r.json()[k]
        .as_str()
        .unwrap_or_else(|| panic!("no {k} in {}", r.text()))
        .to_string()
}

fn api(t: &TestApp, at: &str) -> u16 {
    match t.get_with("/Patient", &format!("Bearer {at}")) {
        Outcome::Respond(r) => r.status().as_u16(),
        _ => 0,
    }
}

#[test]
fn refresh_tokens_only_when_enabled_or_offline_access() {
    let t = setup(json!({}));
    assert!(login(&t, "").json().get("refresh_token").is_none());
    assert!(login(&t, "offline_access").json()["refresh_token"].is_string());
    let t = setup(json!({"refresh_token": true}));
    assert!(login(&t, "").json()["refresh_token"].is_string());
}

#[test]
fn rotation_and_reuse_revokes_the_family() {
    let t = setup(json!({"refresh_token": true}));
    let first = login(&t, "read");
    let rt1 = s(&first, "refresh_token");
    assert!(!t.state.is_empty());
    let second = refresh(&t, &rt1);
    assert_eq!(second.status(), 200, "{}", second.text());
    assert_eq!(second.json()["scope"], "read");
    let rt2 = s(&second, "refresh_token");
    let at2 = s(&second, "access_token");
    assert_ne!(rt1, rt2);
    assert_eq!(api(&t, &at2), 200);
    // Reusing the rotated token: refused, and the whole family with its access tokens is revoked.
    let reuse = refresh(&t, &rt1);
    assert_eq!(reuse.status(), 400);
    assert_eq!(reuse.json()["error"], "invalid_grant");
    assert_eq!(refresh(&t, &rt2).status(), 400, "the family is revoked");
    assert_eq!(
        api(&t, &at2),
        401,
        "access tokens of a revoked family are refused"
    );
    assert_eq!(api(&t, &s(&first, "access_token")), 401);
}

#[test]
fn refresh_refusals() {
    let t = setup(json!({"refresh_token": true, "refresh_token_expiration": 600}));
    let rt = s(&login(&t, "read write"), "refresh_token");
    // Another client.
    let r = t.token(
        Some(&TestApp::basic("other", "o")),
        &[("grant_type", "refresh_token"), ("refresh_token", &rt)],
    );
    assert_eq!(r.json()["error"], "invalid_grant");
    // Scope escalation.
    let r = t.token(
        Some(&TestApp::basic("app", "s")),
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &rt),
            ("scope", "read admin"),
        ],
    );
    assert_eq!(r.json()["error"], "invalid_scope");
    // Garbage.
    for bad in ["", "nodot", "a.b", "../../x.y", &"A".repeat(500)] {
        let r = refresh(&t, bad);
        assert_eq!(r.status(), 400, "{bad}");
    }
    // Narrowing works, and the token still rotates.
    let r = t.token(
        Some(&TestApp::basic("app", "s")),
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &rt),
            ("scope", "read"),
        ],
    );
    assert_eq!(r.status(), 200, "{}", r.text());
    assert_eq!(r.json()["scope"], "read");
    // Sliding expiry: unused for longer than refresh_token_expiration, it is gone.
    let rt2 = s(&r, "refresh_token");
    t.clock.advance(601);
    assert_eq!(refresh(&t, &rt2).json()["error"], "invalid_grant");
}

#[test]
fn revocation_of_refresh_and_access_tokens() {
    let t = setup(json!({"refresh_token": true}));
    let r = login(&t, "read");
    let (at, rt) = (s(&r, "access_token"), s(&r, "refresh_token"));
    let post = |path: &str, auth: &str, form: &[(&str, &str)]| {
        let body = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form)
            .finish();
        t.call(
            TestApp::req("POST", path)
                .header("authorization", auth)
                .header("content-type", "application/x-www-form-urlencoded")
                .body(body.into_bytes())
                .unwrap(),
        )
    };
    // Another client cannot revoke our tokens (200, nothing happens).
    assert_eq!(
        post(
            "/auth/revoke",
            &TestApp::basic("other", "o"),
            &[("token", &rt)]
        )
        .status(),
        200
    );
    assert_eq!(api(&t, &at), 200);
    // Revoking the access token: refused at once by the authorizer.
    let rv = post(
        "/auth/revoke",
        &TestApp::basic("app", "s"),
        &[("token", &at)],
    );
    assert_eq!(rv.status(), 200);
    assert_eq!(rv.header("cache-control"), Some("no-store"));
    assert_eq!(api(&t, &at), 401);
    // Revoking the refresh token: it stops working at once.
    assert_eq!(
        post(
            "/auth/revoke",
            &TestApp::basic("app", "s"),
            &[("token", &rt), ("token_type_hint", "refresh_token")]
        )
        .status(),
        200
    );
    assert_eq!(refresh(&t, &rt).json()["error"], "invalid_grant");
    // Unknown tokens: 200 (RFC 7009 2.2). Missing token: 400.
    assert_eq!(
        post(
            "/auth/revoke",
            &TestApp::basic("app", "s"),
            &[("token", "whatever")]
        )
        .status(),
        200
    );
    assert_eq!(
        post("/auth/revoke", &TestApp::basic("app", "s"), &[]).json()["error"],
        "invalid_request"
    );
    assert_eq!(
        post(
            "/auth/revoke",
            &TestApp::basic("app", "bad"),
            &[("token", "x")]
        )
        .status(),
        401
    );
}

#[test]
fn introspection() {
    let t = setup(json!({"refresh_token": true}));
    let r = login(&t, "read");
    let (at, rt) = (s(&r, "access_token"), s(&r, "refresh_token"));
    let introspect = |auth: &str, token: &str| {
        let body = form_urlencoded::Serializer::new(String::new())
            .extend_pairs([("token", token)])
            .finish();
        t.call(
            TestApp::req("POST", "/auth/introspect")
                .header("authorization", auth)
                .header("content-type", "application/x-www-form-urlencoded")
                .body(body.into_bytes())
                .unwrap(),
        )
    };
    let a = introspect(&TestApp::basic("rs", "rs"), &at);
    assert_eq!(a.status(), 200);
    assert_eq!(a.header("cache-control"), Some("no-store"));
    let j = a.json();
    assert_eq!(j["active"], true);
    assert_eq!(j["client_id"], "app");
    assert_eq!(j["sub"], "john");
    assert_eq!(j["scope"], "read");
    assert_eq!(j["username"], "john@example.com");
    // Refresh tokens: only for their own client.
    assert_eq!(
        introspect(&TestApp::basic("app", "s"), &rt).json()["active"],
        true
    );
    assert_eq!(
        introspect(&TestApp::basic("rs", "rs"), &rt).json(),
        json!({"active": false})
    );
    assert_eq!(
        introspect(&TestApp::basic("rs", "rs"), "garbage").json(),
        json!({"active": false})
    );
    // Expired.
    t.clock.advance(3700);
    assert_eq!(
        introspect(&TestApp::basic("rs", "rs"), &at).json(),
        json!({"active": false})
    );
    // Unauthenticated callers get 401.
    assert_eq!(introspect("Basic Zm9vOmJhcg==", &at).status(), 401);
}

#[test]
fn state_outage_is_503_not_500() {
    let t = setup(json!({"refresh_token": true}));
    let rt = s(&login(&t, "read"), "refresh_token");
    t.state.failing.set(true);
    let r = refresh(&t, &rt);
    assert_eq!(r.status(), 503);
    assert_eq!(r.json()["error"], "temporarily_unavailable");
    t.state.failing.set(false);
    assert_eq!(
        refresh(&t, &rt).status(),
        200,
        "nothing was consumed by the failed attempt"
    );
}

/// Issue 11: a refresh re-checks the client's registration as it is now.
#[test]
fn refresh_never_widens_past_the_current_registration() {
    let t = setup(json!({"refresh_token": true}));
    let rt = s(&login(&t, "read write"), "refresh_token");
    // The client is narrowed to `read`: the family's `read write` is refused, not burned.
    t.admin_put(
        "/Client/app",
        json!({"grant_types": ["password"], "auth": {"password": {"refresh_token": true}}, "scope": ["read"]}),
    );
    let r = refresh(&t, &rt);
    assert_eq!(r.json()["error"], "invalid_scope", "{}", r.text());
    let r = t.token(
        Some(&TestApp::basic("app", "s")),
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &rt),
            ("scope", "read"),
        ],
    );
    assert_eq!(r.status(), 200, "{}", r.text());
    let rt = s(&r, "refresh_token");
    // The client loses the password grant: the family is done (invalid_grant).
    t.admin_put(
        "/Client/app",
        json!({"grant_types": ["client_credentials"], "auth": {"password": {"refresh_token": true}}, "scope": ["read"]}),
    );
    assert_eq!(refresh(&t, &rt).json()["error"], "invalid_grant");
    // ... and refresh tokens turned off for the flow end it too.
    t.admin_put(
        "/Client/app",
        json!({"grant_types": ["password"], "scope": ["read"]}),
    );
    assert_eq!(refresh(&t, &rt).json()["error"], "invalid_grant");
}

// ---- issue 12: reuse detection that never forgets, family-wide revocation, lifetimes ----

use edge_authorizer::platform::StateStore;
use futures::executor::block_on;

/// Writes a state record as an earlier version (or a cut-off request) would have left it.
fn overwrite(t: &TestApp, key: &str, value: &serde_json::Value) {
    let old = t.state.dump().get(key).cloned();
    let r = block_on(
        t.state
            .cas(key, old.as_deref(), Some(&value.to_string()), i64::MAX / 2),
    )
    .unwrap();
    assert!(matches!(r, edge_authorizer::platform::Cas::Swapped));
}

fn family_record(t: &TestApp, rt: &str) -> (String, serde_json::Value) {
    let key = format!("rt/{}", rt.split('.').next().unwrap());
    let raw = t.state.dump().get(&key).cloned().expect("family record");
    (key, serde_json::from_str(&raw).unwrap())
}

#[test]
fn any_earlier_token_revokes_the_family_however_old() {
    let t = setup(json!({"refresh_token": true}));
    let first = login(&t, "read");
    let stolen = s(&first, "refresh_token");
    let mut rt = stolen.clone();
    let mut ats = vec![s(&first, "access_token")];
    for _ in 0..40 {
        let r = refresh(&t, &rt);
        assert_eq!(r.status(), 200, "{}", r.text());
        rt = s(&r, "refresh_token");
        ats.push(s(&r, "access_token"));
    }
    assert_eq!(api(&t, &ats[40]), 200);
    let (_, rec) = family_record(&t, &rt);
    assert_eq!(rec["generation"], 40);
    // The store holds no usable secret: no token text, only the hash of the newest secret.
    let raw = t
        .state
        .dump()
        .values()
        .cloned()
        .collect::<Vec<_>>()
        .join(" ");
    assert!(!raw.contains(rt.split('.').nth(2).unwrap()));
    let reuse = refresh(&t, &stolen);
    assert_eq!(reuse.json()["error"], "invalid_grant");
    assert_eq!(refresh(&t, &rt).json()["error"], "invalid_grant");
    for (i, at) in ats.iter().enumerate() {
        assert_eq!(api(&t, at), 401, "access token #{i}");
    }
}

#[test]
fn forged_generations_and_malformed_tokens_never_revoke() {
    let t = setup(json!({"refresh_token": true}));
    let rt0 = s(&login(&t, "read"), "refresh_token");
    let rt1 = s(&refresh(&t, &rt0), "refresh_token");
    let p: Vec<&str> = rt1.split('.').collect();
    let calls = t.state.calls.get();
    for bad in [
        format!("{}.01.{}.{}", p[0], p[2], p[3]),
        format!("{}.1.{}", p[0], p[2]),
        format!("{}.{}.{}.{}.x", p[0], p[1], p[2], p[3]),
        format!("{}.99999999999999999999.{}.{}", p[0], p[2], p[3]),
    ] {
        assert_eq!(refresh(&t, &bad).json()["error"], "invalid_grant", "{bad}");
    }
    assert_eq!(
        t.state.calls.get(),
        calls,
        "malformed tokens never reach the store"
    );
    for bad in [
        format!("{}.2.{}.{}", p[0], p[2], p[3]),
        format!("{}.0.{}.{}", p[0], p[2], p[3]),
        format!("{}.1.{}.{}", p[0], p[2], "A".repeat(43)),
        format!("{}.{}", p[0], p[2]),
    ] {
        assert_eq!(refresh(&t, &bad).json()["error"], "invalid_grant", "{bad}");
    }
    let (_, rec) = family_record(&t, &rt1);
    assert_eq!(rec["revoked"], false);
    assert_eq!(refresh(&t, &rt1).status(), 200);
}

#[test]
fn a_family_of_the_old_format_rotates_once_into_generations() {
    let t = setup(json!({"refresh_token": true}));
    let first = login(&t, "read");
    let (key, mut rec) = family_record(&t, &s(&first, "refresh_token"));
    let fam = key.trim_start_matches("rt/").to_string();
    // As issued before generations: `{family}.{secret}`, no key, the last hashes kept.
    let (old1, old2) = ("oldsecretone", "oldsecrettwo");
    let obj = rec.as_object_mut().unwrap();
    for k in ["generation", "key", "max_exp", "not_after"] {
        obj.remove(k);
    }
    obj.insert("current".into(), json!(edge_authorizer::state::hash(old2)));
    obj.insert(
        "previous".into(),
        json!([edge_authorizer::state::hash(old1)]),
    );
    obj.insert(
        "issued".into(),
        json!([[
            "legacy-jti",
            first.json()["expires_in"].as_i64().unwrap() + 1_700_000_000
        ]]),
    );
    overwrite(&t, &key, &rec);
    let r = refresh(&t, &format!("{fam}.{old2}"));
    assert_eq!(r.status(), 200, "{}", r.text());
    let rt = s(&r, "refresh_token");
    assert_eq!(rt.split('.').count(), 4);
    assert_eq!(rt.split('.').nth(1), Some("1"));
    let (_, up) = family_record(&t, &rt);
    assert!(up["not_after"].is_i64(), "the absolute lifetime starts now");
    // The old-format token it replaced, and an older one, are reuses now.
    assert_eq!(refresh(&t, &format!("{fam}.{old1}")).status(), 400);
    assert_eq!(family_record(&t, &rt).1["revoked"], true);
    assert_eq!(api(&t, &s(&r, "access_token")), 401);
}

#[test]
fn family_revocation_reaches_every_access_token() {
    let t = setup(json!({"refresh_token": true}));
    let first = login(&t, "read");
    let mut rt = s(&first, "refresh_token");
    let mut ats = vec![s(&first, "access_token")];
    for _ in 0..20 {
        let r = refresh(&t, &rt);
        rt = s(&r, "refresh_token");
        ats.push(s(&r, "access_token"));
    }
    let body = form_urlencoded::Serializer::new(String::new())
        .extend_pairs([("token", rt.as_str())])
        .finish();
    let rv = t.call(
        TestApp::req("POST", "/auth/revoke")
            .header("authorization", TestApp::basic("app", "s"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body.into_bytes())
            .unwrap(),
    );
    assert_eq!(rv.status(), 200);
    for (i, at) in ats.iter().enumerate() {
        assert_eq!(api(&t, at), 401, "access token #{i}");
    }
}

#[test]
fn a_cut_off_family_revocation_is_finished_by_a_retry() {
    let t = setup(json!({"refresh_token": true}));
    let first = login(&t, "read");
    let rt1 = s(&first, "refresh_token");
    let r = refresh(&t, &rt1);
    let at2 = s(&r, "access_token");
    // A first revocation marked the family revoked and was cut off before its access tokens.
    let (key, mut rec) = family_record(&t, &rt1);
    rec["revoked"] = json!(true);
    overwrite(&t, &key, &rec);
    assert_eq!(api(&t, &at2), 200, "still live after the cut-off attempt");
    // The retry (here: the reuse that caused it) finds them live and revokes them.
    assert_eq!(refresh(&t, &rt1).json()["error"], "invalid_grant");
    assert_eq!(api(&t, &at2), 401);
    assert_eq!(api(&t, &s(&first, "access_token")), 401);
}

#[test]
fn families_end_at_their_absolute_lifetime() {
    // Default: 30 days, however often the family is refreshed.
    let t = setup(json!({"refresh_token": true, "refresh_token_expiration": 86400}));
    let mut rt = s(&login(&t, "read"), "refresh_token");
    for _ in 0..29 {
        t.clock.advance(86_000);
        let r = refresh(&t, &rt);
        assert_eq!(r.status(), 200, "{}", r.text());
        rt = s(&r, "refresh_token");
    }
    t.clock.advance(86_000 * 2);
    assert_eq!(refresh(&t, &rt).json()["error"], "invalid_grant");
    // Per client.
    let t = setup(json!({"refresh_token": true, "refresh_token_absolute_expiration": 100}));
    let rt = s(&login(&t, "read"), "refresh_token");
    t.clock.advance(50);
    let rt = s(&refresh(&t, &rt), "refresh_token");
    t.clock.advance(51);
    assert_eq!(refresh(&t, &rt).json()["error"], "invalid_grant");
    // Validated.
    for bad in [json!(0), json!("30d"), json!(-1)] {
        let r = t.admin_put(
            "/Client/x",
            json!({"grant_types": ["password"], "auth": {"password": {"refresh_token_absolute_expiration": bad}}}),
        );
        assert_eq!(r.status(), 422, "{bad}: {}", r.text());
    }
}

#[test]
fn refresh_after_the_user_was_deactivated_is_refused() {
    let t = setup(json!({"refresh_token": true}));
    let rt = s(&login(&t, "read"), "refresh_token");
    t.admin_put(
        "/User/john",
        json!({"email": "john@example.com", "password": "pass123", "active": false}),
    );
    assert_eq!(refresh(&t, &rt).json()["error"], "invalid_grant");
}

// Issue 13: Aidbox client options and refresh without rotation.

#[test]
fn grant_types_refresh_token_enables_refresh_unless_the_flow_says_no() {
    let t = setup(json!({}));
    t.admin_put(
        "/Client/app",
        json!({"secret": "s", "grant_types": ["password", "refresh_token"], "scope": ["read"]}),
    );
    let first = login(&t, "read");
    let rt = s(&first, "refresh_token");
    assert_eq!(refresh(&t, &rt).status(), 200);
    // The flow's own setting wins (fail closed).
    t.admin_put(
        "/Client/app",
        json!({"secret": "s", "grant_types": ["password", "refresh_token"], "scope": ["read"],
               "auth": {"password": {"refresh_token": false}}}),
    );
    assert!(login(&t, "read").json().get("refresh_token").is_none());
}

#[test]
fn without_rotation_the_same_token_keeps_working_until_revoked() {
    let t = setup(json!({"refresh_token": true, "refresh_token_rotation": false}));
    let first = login(&t, "read");
    let rt = s(&first, "refresh_token");
    let mut ats = vec![];
    for _ in 0..3 {
        let r = refresh(&t, &rt);
        assert_eq!(r.status(), 200, "{}", r.text());
        assert_eq!(s(&r, "refresh_token"), rt, "not rotated");
        ats.push(s(&r, "access_token"));
    }
    assert_eq!(api(&t, &ats[2]), 200);
    // RFC 7009 revocation still ends it, with its access tokens.
    let r = t.call(
        TestApp::req("POST", "/auth/revoke")
            .header("authorization", TestApp::basic("app", "s"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!("token={rt}").into_bytes())
            .unwrap(),
    );
    assert_eq!(r.status(), 200);
    assert_eq!(refresh(&t, &rt).json()["error"], "invalid_grant");
    assert_eq!(api(&t, &ats[0]), 401);
}

#[test]
fn without_rotation_a_credential_change_ends_the_family() {
    let t = setup(json!({"refresh_token": true, "refresh_token_rotation": false}));
    let rt = s(&login(&t, "read"), "refresh_token");
    assert_eq!(refresh(&t, &rt).status(), 200);
    t.admin_put(
        "/User/john",
        json!({"email": "john@example.com", "password": "changed"}),
    );
    assert_eq!(refresh(&t, &rt).json()["error"], "invalid_grant");
}

#[test]
fn without_rotation_the_absolute_lifetime_still_ends_it() {
    let t = setup(
        json!({"refresh_token": true, "refresh_token_rotation": false,
                         "refresh_token_absolute_expiration": 1000}),
    );
    let rt = s(&login(&t, "read"), "refresh_token");
    assert_eq!(refresh(&t, &rt).status(), 200);
    t.clock.advance(1001);
    assert_eq!(refresh(&t, &rt).json()["error"], "invalid_grant");
}

#[test]
fn rotation_off_is_refused_for_public_clients() {
    let t = TestApp::new();
    let r = t.admin_put(
        "/Client/spa",
        json!({"grant_types": ["password"],
               "auth": {"password": {"refresh_token": true, "refresh_token_rotation": false}}}),
    );
    assert_eq!(r.status(), 422, "{}", r.text());
    assert_eq!(r.json()["field"], "auth.password.refresh_token_rotation");
    // Nor where the flow lets the client go without its secret.
    let r = t.admin_put(
        "/Client/half",
        json!({"secret": "s", "grant_types": ["password"],
               "auth": {"password": {"secret_required": false, "refresh_token_rotation": false}}}),
    );
    assert_eq!(r.status(), 422, "{}", r.text());
    // A confidential client may.
    let r = t.admin_put(
        "/Client/conf",
        json!({"secret": "s", "grant_types": ["password"],
               "auth": {"password": {"refresh_token_rotation": false}}}),
    );
    assert_eq!(r.status(), 201, "{}", r.text());
}

#[test]
fn client_credentials_refresh_tokens_when_enabled() {
    // Aidbox docs: docs/tutorials/security-access-control-tutorials/client-credentials-grant.md
    let t = setup(json!({}));
    t.admin_put(
        "/Client/api-client",
        json!({"secret": "verysecret", "grant_types": ["client_credentials"],
               "auth": {"client_credentials": {"access_token_expiration": 600,
                   "token_format": "jwt", "refresh_token": true,
                   "refresh_token_expiration": 86400}}}),
    );
    let r = t.token(
        Some(&TestApp::basic("api-client", "verysecret")),
        &[("grant_type", "client_credentials")],
    );
    assert_eq!(r.status(), 200, "{}", r.text());
    let rt = s(&r, "refresh_token");
    let r = t.token(
        Some(&TestApp::basic("api-client", "verysecret")),
        &[("grant_type", "refresh_token"), ("refresh_token", &rt)],
    );
    assert_eq!(r.status(), 200, "{}", r.text());
    let rt2 = s(&r, "refresh_token");
    // Without the secret (Aidbox's tutorial sends only client_id): refused, a confidential flow.
    let r = t.token(
        None,
        &[
            ("grant_type", "refresh_token"),
            ("client_id", "api-client"),
            ("refresh_token", &rt2),
        ],
    );
    assert_eq!(r.status(), 401, "{}", r.text());
    assert_eq!(r.json()["error"], "invalid_client");
}

#[test]
fn secret_required_false_lets_only_its_flow_go_without_the_secret() {
    let t = setup(json!({}));
    t.admin_put(
        "/Client/mixed",
        json!({"secret": "s", "grant_types": ["password", "client_credentials"],
               "scope": ["read"],
               "auth": {"password": {"secret_required": false, "refresh_token": true},
                        "client_credentials": {"refresh_token": true}}}),
    );
    let r = t.token(
        None,
        &[
            ("grant_type", "password"),
            ("client_id", "mixed"),
            ("username", "john"),
            ("password", "pass123"),
            ("scope", "read"),
        ],
    );
    assert_eq!(r.status(), 200, "{}", r.text());
    let rt = s(&r, "refresh_token");
    let r = t.token(
        None,
        &[
            ("grant_type", "refresh_token"),
            ("client_id", "mixed"),
            ("refresh_token", &rt),
        ],
    );
    assert_eq!(r.status(), 200, "{}", r.text());
    // client_credentials without the secret: never.
    let r = t.token(
        None,
        &[("grant_type", "client_credentials"), ("client_id", "mixed")],
    );
    assert_eq!(r.status(), 401, "{}", r.text());
    // A client_credentials family of this client: refreshing it needs the secret.
    let r = t.token(
        Some(&TestApp::basic("mixed", "s")),
        &[("grant_type", "client_credentials")],
    );
    let cc_rt = s(&r, "refresh_token");
    let r = t.token(
        None,
        &[
            ("grant_type", "refresh_token"),
            ("client_id", "mixed"),
            ("refresh_token", &cc_rt),
        ],
    );
    assert_eq!(r.status(), 401, "{}", r.text());
    // Nor revoking it: a grant_type sent to /auth/revoke does not pick the secret-less flow.
    let revoke = |form: &[(&str, &str)]| {
        let body = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form)
            .finish();
        t.call(
            TestApp::req("POST", "/auth/revoke")
                .header("content-type", "application/x-www-form-urlencoded")
                .body(body.into_bytes())
                .unwrap(),
        )
    };
    let r = revoke(&[
        ("client_id", "mixed"),
        ("grant_type", "password"),
        ("token", &cc_rt),
    ]);
    assert_eq!(r.status(), 200, "{}", r.text());
    let r = t.token(
        Some(&TestApp::basic("mixed", "s")),
        &[("grant_type", "refresh_token"), ("refresh_token", &cc_rt)],
    );
    assert_eq!(r.status(), 200, "revoked without the secret: {}", r.text());
    // secret_required: false on client_credentials is refused at write.
    let r = t.admin_put(
        "/Client/bad",
        json!({"secret": "s", "grant_types": ["client_credentials"],
               "auth": {"client_credentials": {"secret_required": false}}}),
    );
    assert_eq!(r.status(), 422);
    assert_eq!(r.json()["field"], "auth.client_credentials.secret_required");
}
