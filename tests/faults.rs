//! Faults (issue 7 item 4): when KV, the Durable Object or an outbound fetch fails, every
//! endpoint answers 503 with `Retry-After` and an RFC-shaped `temporarily_unavailable` body,
//! never a 500 or a panic, and leaves the stored data as it was; a multi-step write cut short
//! after any of its steps leaves a state that a retry completes.

mod common;

use common::{params, query_with, redirect, Browser};
use edge_authorizer::testing::{TestApp, TestResponse, ISSUER};
use serde_json::json;

const CB: &str = "https://app.example/cb";
const INTROSPECT: &str = "https://idp.example/introspect";

fn setup() -> TestApp {
    let t = TestApp::new();
    for (path, body) in [
        (
            "/Client/cc",
            json!({"secret": "ccs", "grant_types": ["client_credentials"]}),
        ),
        (
            "/Client/app",
            json!({"secret": "s", "grant_types": ["password"], "auth": {"password": {"refresh_token": true}}}),
        ),
        (
            "/Client/web",
            json!({"secret": "ws", "grant_types": ["authorization_code"], "first_party": true,
                   "auth": {"authorization_code": {"redirect_uri": CB, "refresh_token": true}}}),
        ),
        (
            "/User/john",
            json!({"email": "john@example.com", "password": "pass123"}),
        ),
        ("/AccessPolicy/all", json!({"engine": "allow"})),
        (
            "/TokenIntrospector/opaque",
            json!({"type": "opaque", "introspection_endpoint": {"url": INTROSPECT, "authorization": "Basic eDp5"}}),
        ),
    ] {
        let r = t.admin_put(path, body);
        assert!(r.status() < 300, "{path}: {}", r.text());
    }
    t.http.route(
        INTROSPECT,
        200,
        &json!({"active": true, "sub": "ext-user", "exp": edge_authorizer::testing::T0 + 3600})
            .to_string(),
    );
    t
}

fn password_grant(t: &TestApp, password: &str) -> TestResponse {
    t.token(
        Some(&TestApp::basic("app", "s")),
        &[
            ("grant_type", "password"),
            ("username", "john@example.com"),
            ("password", password),
        ],
    )
}

fn authorize_query() -> String {
    query_with(
        vec![
            ("response_type", "code"),
            ("client_id", "web"),
            ("redirect_uri", CB),
            ("state", "st"),
        ],
        &[],
    )
}

/// A fresh authorization code, by logging in through the form.
fn code(t: &TestApp) -> String {
    let mut b = Browser::new(t);
    let to = redirect(b.login(&authorize_query(), "john", "pass123"));
    params(&to)
        .remove("code")
        .unwrap_or_else(|| panic!("no code in {to}"))
}

fn redeem(t: &TestApp, code: &str) -> TestResponse {
    t.token(
        Some(&TestApp::basic("web", "ws")),
        &[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", CB),
        ],
    )
}

fn refresh(t: &TestApp, rt: &str) -> TestResponse {
    t.token(
        Some(&TestApp::basic("app", "s")),
        &[("grant_type", "refresh_token"), ("refresh_token", rt)],
    )
}

fn form(t: &TestApp, path: &str, auth: Option<&str>, pairs: &[(&str, &str)]) -> TestResponse {
    let body = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish();
    let mut b =
        TestApp::req("POST", path).header("content-type", "application/x-www-form-urlencoded");
    if let Some(a) = auth {
        b = b.header("authorization", a);
    }
    t.call(b.body(body.into_bytes()).unwrap())
}

fn get(t: &TestApp, path: &str, auth: Option<&str>, cookie: Option<&str>) -> TestResponse {
    let mut b = TestApp::req("GET", path);
    if let Some(a) = auth {
        b = b.header("authorization", a);
    }
    if let Some(c) = cookie {
        b = b.header("cookie", c);
    }
    t.call(b.body(Vec::new()).unwrap())
}

fn api(t: &TestApp, auth: &str) -> TestResponse {
    match t.get_with("/Patient", auth) {
        edge_authorizer::context::Outcome::Respond(r) => TestResponse(r),
        edge_authorizer::context::Outcome::Forward(f) => {
            panic!("forwarded to {} although a backend failed", f.uri())
        }
        edge_authorizer::context::Outcome::Asset { path, .. } => panic!("asset {path}"),
    }
}

/// 503, `Retry-After`, no caching, and the RFC body (or, for pages, an HTML page without the
/// internal reason).
fn assert_unavailable(r: &TestResponse, what: &str) {
    assert_eq!(r.status(), 503, "{what}: {}", r.text());
    let retry: u64 = r
        .header("retry-after")
        .unwrap_or_else(|| panic!("{what}: no Retry-After"))
        .parse()
        .unwrap();
    assert!(retry >= 1, "{what}");
    assert!(
        !r.text().contains("injected"),
        "{what}: leaks the reason: {}",
        r.text()
    );
    if r.header("content-type")
        .unwrap_or("")
        .starts_with("text/html")
    {
        assert!(r.text().contains("unavailable"), "{what}: {}", r.text());
    } else {
        assert_eq!(
            r.json()["error"],
            "temporarily_unavailable",
            "{what}: {}",
            r.text()
        );
        assert!(r.json()["error_description"].is_string(), "{what}");
        assert_eq!(r.header("cache-control"), Some("no-store"), "{what}");
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Backend {
    Kv,
    State,
    Http,
}

/// What a case needs, made while every backend works.
struct Prep {
    access_token: String,
    refresh_token: String,
    code: String,
    session_cookie: String,
    csrf: String,
}

fn prepare(t: &TestApp) -> Prep {
    let r = password_grant(t, "pass123");
    assert_eq!(r.status(), 200, "{}", r.text());
    let mut b = Browser::new(t);
    let q = authorize_query();
    let to = redirect(b.login(&q, "john", "pass123"));
    let code = params(&to).remove("code").unwrap();
    let csrf = b.context(&q)["csrf"].as_str().unwrap().to_string();
    Prep {
        access_token: r.json()["access_token"].as_str().unwrap().into(),
        refresh_token: r.json()["refresh_token"].as_str().unwrap().into(),
        code,
        session_cookie: format!(
            "{}={}",
            common::SESSION_COOKIE,
            b.cookies[common::SESSION_COOKIE]
        ),
        csrf,
    }
}

type Case = (
    &'static str,
    &'static [Backend],
    fn(&TestApp, &Prep) -> TestResponse,
);

/// Every endpoint, and the backends whose failure it must answer with 503.
fn cases() -> Vec<Case> {
    use Backend::*;
    vec![
        // Client secrets are throttled in the Durable Object (issue 12).
        ("client_credentials", &[Kv, State], |t, _| {
            t.token(
                Some(&TestApp::basic("cc", "ccs")),
                &[("grant_type", "client_credentials")],
            )
        }),
        ("password grant", &[Kv, State], |t, _| {
            password_grant(t, "pass123")
        }),
        ("password grant, wrong password", &[Kv, State], |t, _| {
            password_grant(t, "wrong")
        }),
        ("authorization_code", &[Kv, State], |t, p| {
            redeem(t, &p.code)
        }),
        ("refresh_token", &[Kv, State], |t, p| {
            refresh(t, &p.refresh_token)
        }),
        ("revoke", &[Kv, State], |t, p| {
            form(
                t,
                "/auth/revoke",
                Some(&TestApp::basic("app", "s")),
                &[("token", &p.refresh_token)],
            )
        }),
        ("introspect", &[Kv, State], |t, p| {
            form(
                t,
                "/auth/introspect",
                Some(&TestApp::basic("app", "s")),
                &[("token", &p.access_token)],
            )
        }),
        ("userinfo", &[Kv, State], |t, p| {
            get(
                t,
                "/auth/userinfo",
                Some(&format!("Bearer {}", p.access_token)),
                None,
            )
        }),
        ("API with our token", &[Kv, State], |t, p| {
            api(t, &format!("Bearer {}", p.access_token))
        }),
        ("API with an opaque token", &[Kv, Http], |t, _| {
            api(t, "Bearer some-opaque-token")
        }),
        // A client secret not verified in this isolate yet is throttled in the Durable Object.
        ("API with Basic", &[Kv, State], |t, _| {
            api(t, &TestApp::basic("cc", "ccs"))
        }),
        ("admin PUT", &[Kv], |t, _| {
            t.admin_put(
                "/User/jane",
                json!({"email": "jane@example.com", "password": "pw"}),
            )
        }),
        ("admin GET list", &[Kv], |t, _| {
            get(t, "/User", Some(&TestApp::root()), None)
        }),
        ("authorize", &[Kv], |t, _| {
            get(
                t,
                &format!("/auth/authorize?{}", authorize_query()),
                None,
                None,
            )
        }),
        ("authorize with a session", &[Kv, State], |t, p| {
            get(
                t,
                &format!("/auth/authorize?{}", authorize_query()),
                None,
                Some(&p.session_cookie),
            )
        }),
        ("interaction", &[Kv], |t, _| {
            get(
                t,
                &format!("/auth/interaction?{}", authorize_query()),
                None,
                None,
            )
        }),
        ("login form", &[Kv, State], |t, p| {
            let body = common::login_body("john", "pass123", &p.csrf, &authorize_query());
            t.call(
                TestApp::req("POST", "/auth/login")
                    .header("content-type", "application/x-www-form-urlencoded")
                    .header("origin", ISSUER)
                    .header("cookie", format!("{}={}", common::CSRF_COOKIE, p.csrf))
                    .body(body)
                    .unwrap(),
            )
        }),
        ("logout", &[State], |t, p| {
            t.call(
                TestApp::req("POST", "/auth/logout")
                    .header("content-type", "application/x-www-form-urlencoded")
                    .header("origin", ISSUER)
                    .header(
                        "cookie",
                        format!("{}; {}={}", p.session_cookie, common::CSRF_COOKIE, p.csrf),
                    )
                    .body(format!("csrf={}", p.csrf).into_bytes())
                    .unwrap(),
            )
        }),
    ]
}

#[test]
fn every_endpoint_answers_503_when_a_backend_is_down_and_writes_nothing() {
    let mut checked = 0;
    let expected: usize = cases().iter().map(|(_, touches, _)| touches.len()).sum();
    for (name, touches, run) in cases() {
        for backend in [Backend::Kv, Backend::State, Backend::Http] {
            let t = setup();
            let prep = prepare(&t);
            // Past the isolate's KV cache and the revocation poll, so every read goes out.
            t.clock.advance(11);
            let (kv, state) = (t.kv.dump(), t.state.dump());
            let revoked = t.state.revoked().len();
            match backend {
                Backend::Kv => t.kv.failing.set(true),
                Backend::State => t.state.failing.set(true),
                Backend::Http => t.http.failing.set(true),
            }
            let r = run(&t, &prep);
            t.kv.heal();
            t.state.heal();
            t.http.failing.set(false);
            let what = format!("{name} with {backend:?} down");
            if touches.contains(&backend) {
                assert_unavailable(&r, &what);
                assert_eq!(t.kv.dump(), kv, "{what}: KV changed");
                assert_eq!(t.state.dump(), state, "{what}: state changed");
                assert_eq!(
                    t.state.revoked().len(),
                    revoked,
                    "{what}: revocations changed"
                );
                checked += 1;
            } else {
                assert!(r.status() < 500, "{what}: {} {}", r.status(), r.text());
            }
            assert!(
                t.log.0.borrow().iter().all(|l| !l.contains("server_error")),
                "{what}: {:?}",
                t.log.0.borrow()
            );
        }
    }
    assert_eq!(checked, expected);
}

/// Runs `attempt` with the backend cut after 0, 1, 2, ... calls until it gets through
/// untouched; after every cut, `check` sees the healed app. Returns how many cuts answered 503.
fn walk(
    backend: Backend,
    mut fresh: impl FnMut() -> (TestApp, String),
    attempt: impl Fn(&TestApp, &str) -> TestResponse,
    check: impl Fn(&TestApp, &str, u64),
) -> u64 {
    // Cut `n` answered 503 for every `n` before the one that got through, so that `n` is the
    // number of cuts.
    for n in 0..200 {
        let (t, arg) = fresh();
        t.clock.advance(11);
        match backend {
            Backend::Kv => t.kv.fail_after(n),
            Backend::State => t.state.fail_after(n),
            Backend::Http => unreachable!(),
        }
        let r = attempt(&t, &arg);
        t.kv.heal();
        t.state.heal();
        if r.status() != 503 {
            assert!(
                r.status() < 500,
                "cut after {n}: {} {}",
                r.status(),
                r.text()
            );
            return n;
        }
        assert_unavailable(&r, &format!("cut after {n} calls"));
        check(&t, &arg, n);
    }
    panic!("never got through");
}

#[test]
fn a_user_email_change_cut_short_is_completed_by_a_retry() {
    let put = |t: &TestApp, _: &str| {
        t.admin_put(
            "/User/john",
            json!({"email": "john.new@example.com", "password": "pass123"}),
        )
    };
    let cuts = walk(
        Backend::Kv,
        || (setup(), String::new()),
        put,
        |t, _, n| {
            // Whatever step it stopped at, no login reaches a User by an email it does not
            // have, and the old email does not block someone else.
            let by = |email: &str| {
                t.token(
                    Some(&TestApp::basic("app", "s")),
                    &[
                        ("grant_type", "password"),
                        ("username", email),
                        ("password", "pass123"),
                    ],
                )
                .status()
            };
            let doc = t.kv.dump()["User/john"].clone();
            let has_new = doc.contains("john.new@example.com");
            // (Before the retry, the new email may not log in yet: its index entry may be missing.)
            if by("john.new@example.com") == 200 {
                assert!(has_new, "cut {n}: {doc}");
            }
            if by("john@example.com") == 200 {
                assert!(!has_new, "cut {n}: {doc}");
            }
            if has_new {
                let r = t.admin_put("/User/other", json!({"email": "john@example.com"}));
                assert_eq!(r.status(), 201, "cut {n}: {}", r.text());
                t.call(
                    TestApp::req("DELETE", "/User/other")
                        .header("authorization", TestApp::root())
                        .body(Vec::new())
                        .unwrap(),
                );
            }
            // The retry completes it.
            assert_eq!(put(t, "").status(), 200);
            let kv = t.kv.dump();
            assert_eq!(
                kv["idx/User/email/john.new@example.com"], "\"john\"",
                "cut {n}"
            );
            assert!(
                !kv.contains_key("idx/User/email/john@example.com"),
                "cut {n}: {kv:?}"
            );
            assert_eq!(by("john.new@example.com"), 200, "cut {n}");
        },
    );
    assert!(cuts >= 3, "{cuts}");
}

#[test]
fn a_user_delete_cut_short_is_completed_by_a_retry() {
    let delete = |t: &TestApp, _: &str| {
        t.call(
            TestApp::req("DELETE", "/User/john")
                .header("authorization", TestApp::root())
                .body(Vec::new())
                .unwrap(),
        )
    };
    let cuts = walk(
        Backend::Kv,
        || (setup(), String::new()),
        delete,
        |t, _, n| {
            let r = delete(t, "");
            assert_eq!(
                r.status(),
                200,
                "cut {n}: the retry finds the User: {}",
                r.text()
            );
            let kv = t.kv.dump();
            assert!(
                !kv.keys().any(|k| k.contains("john")),
                "cut {n}: left behind {kv:?}"
            );
        },
    );
    assert!(cuts >= 2, "{cuts}");
}

#[test]
fn a_code_redemption_cut_short_can_be_retried_and_issues_once() {
    let cuts = walk(
        Backend::State,
        || {
            let t = setup();
            let c = code(&t);
            (t, c)
        },
        redeem,
        |t, code, n| {
            // The cut happened before the code was consumed: the retry gets the tokens...
            let r = redeem(t, code);
            assert_eq!(r.status(), 200, "cut {n}: {}", r.text());
            let at = r.json()["access_token"].as_str().unwrap().to_string();
            let rt = r.json()["refresh_token"].as_str().unwrap().to_string();
            assert_eq!(api(t, &format!("Bearer {at}")).status(), 200);
            // ...exactly once.
            assert_eq!(redeem(t, code).status(), 400, "cut {n}");
            assert_eq!(api(t, &format!("Bearer {at}")).status(), 401, "cut {n}");
            assert_eq!(
                t.token(
                    Some(&TestApp::basic("web", "ws")),
                    &[("grant_type", "refresh_token"), ("refresh_token", &rt)]
                )
                .status(),
                400,
                "cut {n}"
            );
        },
    );
    assert!(cuts >= 2, "{cuts}");
}

#[test]
fn a_refresh_cut_short_can_be_retried() {
    let cuts = walk(
        Backend::State,
        || {
            let t = setup();
            let r = password_grant(&t, "pass123");
            (t, r.json()["refresh_token"].as_str().unwrap().to_string())
        },
        refresh,
        |t, rt, n| {
            let r = refresh(t, rt);
            assert_eq!(r.status(), 200, "cut {n}: {}", r.text());
            let next = r.json()["refresh_token"].as_str().unwrap().to_string();
            assert_eq!(refresh(t, &next).status(), 200, "cut {n}");
        },
    );
    assert!(cuts >= 2, "{cuts}");
}

#[test]
fn a_login_cut_short_leaves_no_session_and_can_be_retried() {
    let cuts = walk(
        Backend::State,
        || (setup(), String::new()),
        |t, _| {
            let mut b = Browser::new(t);
            let q = authorize_query();
            let csrf = b.context(&q)["csrf"].as_str().unwrap().to_string();
            t.call(
                TestApp::req("POST", "/auth/login")
                    .header("content-type", "application/x-www-form-urlencoded")
                    .header("cookie", format!("{}={csrf}", common::CSRF_COOKIE))
                    .body(common::login_body("john", "pass123", &csrf, &q))
                    .unwrap(),
            )
        },
        |t, _, n| {
            let state = t.state.dump();
            assert!(
                state.keys().all(|k| !k.starts_with("code/")),
                "cut {n}: a code without a response: {state:?}"
            );
            assert!(!code(t).is_empty());
        },
    );
    assert!(cuts >= 2, "{cuts}");
}

#[test]
fn a_failed_login_count_cut_short_never_locks_early() {
    // Wrong passwords with the Durable Object cut at every step: a 503 never counts more than
    // the one failure it was about, so the user is not locked before the fifth real failure.
    let cuts = walk(
        Backend::State,
        || (setup(), String::new()),
        |t, _| password_grant(t, "wrong"),
        |t, _, n| {
            for i in 0..4 {
                let r = password_grant(t, "wrong");
                assert_eq!(r.status(), 400, "cut {n}, failure {i}: {}", r.text());
            }
            assert_eq!(password_grant(t, "pass123").status(), 200, "cut {n}");
        },
    );
    assert!(cuts >= 1, "{cuts}");
}

#[test]
fn timeouts_come_from_vars_within_bounds() {
    use edge_authorizer::config::Config;
    let d = Config::from_vars(|_| None).unwrap();
    assert_eq!(
        (d.outbound_timeout_ms, d.store_timeout_ms),
        (10_000, 10_000)
    );
    let c = Config::from_vars(|n| match n {
        "OUTBOUND_TIMEOUT_MS" => Some("700".into()),
        "STORE_TIMEOUT_MS" => Some("2500".into()),
        _ => None,
    })
    .unwrap();
    assert_eq!((c.outbound_timeout_ms, c.store_timeout_ms), (700, 2500));
    for (name, bad) in [
        ("OUTBOUND_TIMEOUT_MS", "50"),
        ("STORE_TIMEOUT_MS", "600000"),
        ("OUTBOUND_TIMEOUT_MS", "fast"),
    ] {
        let r = Config::from_vars(|n| (n == name).then(|| bad.into()));
        assert!(r.is_err(), "{name}={bad} accepted");
    }
}

// ---- issue 12: isolate caches that cannot get stuck; revocations at scale ----

use edge_authorizer::context::Outcome;
use edge_authorizer::platform::StateStore;

fn cc_token(t: &TestApp) -> (String, String, i64) {
    let (token, claims) = t.cc_token("cc", "ccs");
    let jti = claims["jti"].as_str().unwrap().to_string();
    (token, jti, claims["exp"].as_i64().unwrap())
}

/// Was the API request allowed (forwarded, or answered by the built-in demo origin)?
fn forwarded(t: &TestApp, auth: &str) -> bool {
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

/// Starts a request, lets it run until it waits on the store, and abandons it there: never
/// polled again, never dropped (what workerd does to a request whose client went away).
fn abandon(t: &TestApp, auth: &str) {
    use std::future::Future;
    use std::task::{Context, Poll};
    let req = TestApp::req("GET", "/Patient")
        .header("authorization", auth)
        .body(Vec::new())
        .unwrap();
    let mut fut = Box::pin(t.app.handle(req));
    let waker = futures::task::noop_waker();
    assert!(matches!(
        fut.as_mut().poll(&mut Context::from_waker(&waker)),
        Poll::Pending
    ));
    std::mem::forget(fut);
}

#[test]
fn an_abandoned_policy_reload_does_not_stop_the_isolate_reloading() {
    let t = setup();
    let (token, _, _) = cc_token(&t);
    let bearer = format!("Bearer {token}");
    assert!(forwarded(&t, &bearer), "positive control");
    // The policies have aged; a request starts their reload and is abandoned in the KV list.
    t.clock.advance(11);
    t.kv.hang_lists.set(true);
    abandon(&t, &bearer);
    t.kv.hang_lists.set(false);
    // Another isolate deletes the only policy.
    futures::executor::block_on(edge_authorizer::platform::KvStore::delete(
        t.kv.as_ref(),
        "AccessPolicy/all",
    ))
    .unwrap();
    // Within the store timeout the aged set is still used...
    assert!(forwarded(&t, &bearer));
    // ...after it the abandoned reload counts as dead: the next request reloads, and is refused.
    t.clock.advance(t.app.config.store_timeout_secs() + 1);
    assert!(!forwarded(&t, &bearer), "the deleted policy kept working");
}

#[test]
fn an_abandoned_revocation_poll_does_not_stop_the_isolate_polling() {
    let t = setup();
    let (token, jti, exp) = cc_token(&t);
    let bearer = format!("Bearer {token}");
    assert!(forwarded(&t, &bearer), "positive control");
    t.clock.advance(2);
    t.state.hang_polls.set(true);
    abandon(&t, &bearer);
    t.state.hang_polls.set(false);
    // Another isolate revokes the token.
    futures::executor::block_on(t.state.revoke_jti(&jti, exp + 60)).unwrap();
    t.clock.advance(t.app.config.store_timeout_secs() + 1);
    let r = api(&t, &bearer);
    assert_eq!(r.status(), 401, "the revoked token kept working");
    assert!(r.text().contains("revoked"), "{}", r.text());
}

#[test]
fn a_revoked_token_stays_refused_until_exp_plus_leeway() {
    let t = setup();
    let (token, _, exp) = cc_token(&t);
    let r = form(
        &t,
        "/auth/revoke",
        Some(&TestApp::basic("cc", "ccs")),
        &[("token", &token)],
    );
    assert_eq!(r.status(), 200, "{}", r.text());
    let bearer = format!("Bearer {token}");
    let leeway = t.app.config.leeway;
    // Up to and at exp + leeway the verifier accepts the token's claims: the revocation holds.
    for at in [exp - 1, exp, exp + 1, exp + leeway] {
        t.clock.0.set(at);
        let r = api(&t, &bearer);
        assert_eq!(r.status(), 401, "at exp{:+}: {}", at - exp, r.text());
        assert!(
            r.text().contains("revoked"),
            "at exp{:+}: {}",
            at - exp,
            r.text()
        );
    }
    // A new isolate sees it too.
    let fresh = t.state.revoked();
    assert_eq!(fresh.len(), 1);
}

#[test]
fn one_hundred_thousand_revocations_do_not_stall_a_new_isolates_first_bearer_request() {
    let t = setup();
    let (live, _, _) = cc_token(&t);
    let (dead, dead_jti, exp) = cc_token(&t);
    // Seeded straight into the store, the revoked token in the middle of the feed.
    let started = std::time::Instant::now();
    for i in 0..100_000u32 {
        let jti = if i == 50_000 {
            dead_jti.clone()
        } else {
            format!("seed-{i}")
        };
        futures::executor::block_on(t.state.revoke_jti(&jti, exp + 60)).unwrap();
    }
    let seeded = started.elapsed();
    let started = std::time::Instant::now();
    assert!(forwarded(&t, &format!("Bearer {live}")));
    let first = started.elapsed();
    assert!(!forwarded(&t, &format!("Bearer {dead}")));
    // The feed is read a page per request until the copy has caught up.
    let started = std::time::Instant::now();
    let pages = 100_000 / edge_authorizer::state::REVOCATION_PAGE as usize + 1;
    for _ in 0..pages {
        assert!(forwarded(&t, &format!("Bearer {live}")));
    }
    let rest = started.elapsed();
    assert!(t.app.cache.revocations.len() >= 100_000);
    let calls = t.state.calls.get();
    assert!(!forwarded(&t, &format!("Bearer {dead}")));
    assert_eq!(t.state.calls.get(), calls, "caught up: checked locally");
    eprintln!("100,000 revocations: seeded in {seeded:?}, first bearer request {first:?}, catching up {rest:?}");
    assert!(first < std::time::Duration::from_secs(1), "{first:?}");
}
