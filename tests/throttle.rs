//! Login throttling (issue 7 item 3): failed password checks per user and per client address,
//! with growing lockouts answered 429 + `Retry-After`, on the password grant and the login form.

mod common;

use common::{params, query_with, redirect, Browser};
use edge_authorizer::testing::{TestApp, TestResponse};
use serde_json::json;

const APP: &str = "Basic bXlhcHA6YXBwc2VjcmV0"; // myapp:appsecret

fn setup() -> TestApp {
    setup_with(|_| {})
}

fn setup_with(f: impl FnOnce(&mut edge_authorizer::config::Config)) -> TestApp {
    let t = TestApp::with_config(|c| {
        c.throttle.max_failures = 5;
        c.throttle.address_max_failures = 12;
        c.throttle.window = 600;
        c.throttle.lockout = 30;
        c.throttle.lockout_max = 300;
        f(c);
    });
    assert_eq!(
        t.admin_put(
            "/Client/myapp",
            json!({"secret": "appsecret", "grant_types": ["password"]})
        )
        .status(),
        201
    );
    for (id, email) in [("john", "john@example.com"), ("jane", "jane@example.com")] {
        assert_eq!(
            t.admin_put(
                &format!("/User/{id}"),
                json!({"email": email, "password": "pass123"})
            )
            .status(),
            201
        );
    }
    t
}

/// A password grant from client address `ip`.
fn grant(t: &TestApp, ip: &str, username: &str, password: &str) -> TestResponse {
    let body = form_urlencoded::Serializer::new(String::new())
        .extend_pairs([
            ("grant_type", "password"),
            ("username", username),
            ("password", password),
        ])
        .finish();
    t.call(
        TestApp::req("POST", "/auth/token")
            .header("content-type", "application/x-www-form-urlencoded")
            .header("authorization", APP)
            .header("cf-connecting-ip", ip)
            .body(body.into_bytes())
            .unwrap(),
    )
}

fn retry_after(r: &TestResponse) -> i64 {
    assert_eq!(r.status(), 429, "{}", r.text());
    assert_eq!(r.json()["error"], "slow_down", "{}", r.text());
    assert!(r.json()["error_description"]
        .as_str()
        .unwrap()
        .contains("too many failed sign-in attempts"));
    assert_eq!(r.header("cache-control"), Some("no-store"));
    r.header("retry-after")
        .expect("Retry-After on a 429")
        .parse()
        .unwrap()
}

#[test]
fn a_guessing_run_is_locked_out_with_growing_retry_after() {
    // Only the per-user limit here (the address one has its own test).
    let t = setup_with(|c| c.throttle.address_max_failures = 1000);
    let mut waits = Vec::new();
    for round in 0..4 {
        for i in 0..5 {
            let r = grant(&t, "198.51.100.7", "john", &format!("guess-{round}-{i}"));
            assert_eq!(
                r.status(),
                400,
                "attempt {i} of round {round}: {}",
                r.text()
            );
            assert_eq!(r.json()["error"], "invalid_grant");
        }
        // Locked now: even the right password is refused, and without a KDF run.
        let r = grant(&t, "198.51.100.7", "john", "pass123");
        let wait = retry_after(&r);
        waits.push(wait);
        // Still locked one second before the end; the lock does not move while waiting.
        t.clock.advance(wait - 1);
        assert_eq!(retry_after(&grant(&t, "198.51.100.7", "john", "x")), 1);
        t.clock.advance(1);
    }
    // 30 s, doubling, capped at LOGIN_LOCKOUT_MAX (here 300 s).
    assert_eq!(waits, vec![30, 60, 120, 240]);
    for _ in 0..5 {
        grant(&t, "198.51.100.7", "john", "wrong");
    }
    assert_eq!(
        retry_after(&grant(&t, "198.51.100.7", "john", "pass123")),
        300
    );
}

#[test]
fn the_real_user_gets_in_after_the_lock_and_a_success_resets_the_count() {
    let t = setup();
    for _ in 0..5 {
        assert_eq!(grant(&t, "203.0.113.1", "john", "wrong").status(), 400);
    }
    // The attacker's lock is on the account: the user, from elsewhere, waits too.
    let wait = retry_after(&grant(&t, "203.0.113.99", "john@example.com", "pass123"));
    assert_eq!(wait, 30);
    t.clock.advance(wait);
    let r = grant(&t, "203.0.113.99", "John@Example.com", "pass123");
    assert_eq!(r.status(), 200, "{}", r.text());
    assert!(r.json()["access_token"].is_string());
    // The success cleared the failures: four more wrong ones do not lock...
    for _ in 0..4 {
        assert_eq!(grant(&t, "203.0.113.99", "john", "wrong").status(), 400);
    }
    assert_eq!(grant(&t, "203.0.113.99", "john", "pass123").status(), 200);
    // ...and the escalation starts over at the first lockout's length.
    for _ in 0..5 {
        grant(&t, "203.0.113.99", "john", "wrong");
    }
    assert_eq!(
        retry_after(&grant(&t, "203.0.113.99", "john", "pass123")),
        30
    );
    // Other users are not affected by john's lock.
    assert_eq!(grant(&t, "203.0.113.99", "jane", "pass123").status(), 200);
}

#[test]
fn failures_outside_the_window_do_not_add_up() {
    let t = setup();
    for _ in 0..4 {
        assert_eq!(grant(&t, "192.0.2.1", "john", "wrong").status(), 400);
    }
    t.clock.advance(600);
    for _ in 0..4 {
        assert_eq!(grant(&t, "192.0.2.1", "john", "wrong").status(), 400);
    }
    assert_eq!(grant(&t, "192.0.2.1", "john", "pass123").status(), 200);
}

#[test]
fn one_address_guessing_across_many_usernames_is_locked() {
    let t = setup();
    // Unknown usernames count like real ones (no enumeration), each under the user limit.
    for i in 0..12 {
        let r = grant(
            &t,
            "198.51.100.23",
            &format!("user{i}@example.com"),
            "123456",
        );
        assert_eq!(r.status(), 400, "attempt {i}: {}", r.text());
    }
    // The address is locked for every account, the real user's right password too...
    let wait = retry_after(&grant(&t, "198.51.100.23", "jane", "pass123"));
    assert_eq!(wait, 30);
    // ...but only that address.
    assert_eq!(grant(&t, "198.51.100.24", "jane", "pass123").status(), 200);
    t.clock.advance(wait);
    assert_eq!(grant(&t, "198.51.100.23", "jane", "pass123").status(), 200);
}

#[test]
fn successful_logins_are_never_throttled() {
    let t = setup();
    // Far more than either limit, all from one address (a load test, an office NAT).
    for i in 0..60 {
        let user = if i % 2 == 0 {
            "john"
        } else {
            "jane@example.com"
        };
        let r = grant(&t, "10.0.0.1", user, "pass123");
        assert_eq!(r.status(), 200, "login {i}: {}", r.text());
    }
    // Successes keep no throttle records at all.
    assert!(t.state.is_empty(), "{} records", t.state.len());
}

#[test]
fn the_login_form_is_throttled_and_says_so() {
    let t = setup();
    assert_eq!(
        t.admin_put(
            "/Client/web",
            json!({"secret": "websecret", "grant_types": ["authorization_code"], "first_party": true,
                   "auth": {"authorization_code": {"redirect_uri": "https://app.example/cb"}}})
        )
        .status(),
        201
    );
    let query = query_with(
        vec![
            ("response_type", "code"),
            ("client_id", "web"),
            ("redirect_uri", "https://app.example/cb"),
            ("state", "s1"),
        ],
        &[],
    );
    let mut b = Browser::new(&t);
    for _ in 0..5 {
        let to = redirect(b.login(&query, "john", "wrong"));
        assert!(to.ends_with("#error=login_failed"), "{to}");
    }
    // Locked: the form goes back to the page with a message, and Retry-After is set.
    let csrf = b.context(&query)["csrf"].as_str().unwrap().to_string();
    let body = common::login_body("john", "pass123", &csrf, &query);
    let r = t.call(
        TestApp::req("POST", "/auth/login")
            .header("content-type", "application/x-www-form-urlencoded")
            .header("cookie", format!("{}={csrf}", common::CSRF_COOKIE))
            .body(body)
            .unwrap(),
    );
    assert_eq!(r.status(), 303);
    assert!(r.header("location").unwrap().ends_with("#error=throttled"));
    assert_eq!(r.header("retry-after"), Some("30"));
    assert!(!b.cookies.contains_key(common::SESSION_COOKIE));
    // The password grant shares the account's lock.
    assert_eq!(retry_after(&grant(&t, "192.0.2.9", "john", "pass123")), 30);
    t.clock.advance(30);
    let to = redirect(b.login(&query, "john", "pass123"));
    let p = params(&to);
    assert!(to.starts_with("https://app.example/cb?"), "{to}");
    assert!(p.contains_key("code") && p["state"] == "s1", "{to}");
}

#[test]
fn throttle_limits_come_from_vars() {
    let c = edge_authorizer::config::Config::from_vars(|n| match n {
        "LOGIN_MAX_FAILURES" => Some("3".into()),
        "LOGIN_ADDRESS_MAX_FAILURES" => Some("50".into()),
        "LOGIN_WINDOW" => Some("60".into()),
        "LOGIN_LOCKOUT" => Some("2".into()),
        "LOGIN_LOCKOUT_MAX" => Some("8".into()),
        _ => None,
    })
    .unwrap();
    assert_eq!(
        (
            c.throttle.max_failures,
            c.throttle.address_max_failures,
            c.throttle.window,
            c.throttle.lockout,
            c.throttle.lockout_max
        ),
        (3, 50, 60, 2, 8)
    );
    let d = edge_authorizer::config::Config::from_vars(|_| None).unwrap();
    assert_eq!(
        (d.throttle.max_failures, d.throttle.address_max_failures),
        (5, 20)
    );
    for (name, bad) in [
        ("LOGIN_MAX_FAILURES", "0"),
        ("LOGIN_LOCKOUT_MAX", "1"),
        ("LOGIN_WINDOW", "soon"),
    ] {
        let r = edge_authorizer::config::Config::from_vars(|n| (n == name).then(|| bad.into()));
        assert!(r.is_err(), "{name}={bad} accepted");
    }
}

// ---- issue 12: throttling that holds under concurrency ----

use edge_authorizer::state::throttle::{self, Action, Answer, KeyLimit, Op};

fn op(action: Action, id: &str) -> Op {
    Op {
        action,
        id: id.into(),
        fingerprint: Some(id.into()),
        keys: vec![
            KeyLimit {
                key: "throttle/user/x".into(),
                max: 5,
                clear_on_success: true,
            },
            KeyLimit {
                key: "throttle/addr/y".into(),
                max: 20,
                clear_on_success: false,
            },
        ],
        window: 600,
        lockout: 30,
        lockout_max: 300,
    }
}

/// Runs ops one after another on the records, as the Durable Object does.
fn run(recs: &mut Vec<Option<throttle::Record>>, action: Action, id: &str, now: i64) -> Answer {
    let (a, out) = throttle::apply(&op(action, id), std::mem::take(recs), now);
    *recs = out;
    a
}

#[test]
fn three_hundred_reservations_before_any_answer_let_at_most_max_through() {
    // 300 parallel guesses: every one reserves before any KDF finishes.
    let mut recs = vec![None, None];
    let answers: Vec<Answer> = (0..300)
        .map(|i| run(&mut recs, Action::Reserve, &format!("r{i}"), 1000))
        .collect();
    let reserved = answers.iter().filter(|a| **a == Answer::Reserved).count();
    assert_eq!(reserved, 5, "at most LOGIN_MAX_FAILURES checks");
    assert!(answers[5..].iter().all(|a| *a == Answer::Refused(1)));
    // All five were wrong: counted, and the account is locked.
    for i in 0..5 {
        assert_eq!(
            run(&mut recs, Action::Fail, &format!("r{i}"), 1001),
            Answer::Done
        );
    }
    assert_eq!(
        run(&mut recs, Action::Reserve, "late", 1001),
        Answer::Refused(30)
    );
    assert_eq!(
        recs[1].as_ref().unwrap().failures,
        5,
        "the address counted all five"
    );
}

#[test]
fn concurrent_attempts_with_one_secret_are_one_guess() {
    // A client's burst on a cold isolate: 50 requests with the same (wrong) secret in flight.
    let same = |action, id: &str| {
        let mut o = op(action, id);
        o.fingerprint = Some("same-secret".into());
        o
    };
    let mut recs = vec![None, None];
    for i in 0..50 {
        let (a, out) = throttle::apply(&same(Action::Reserve, &format!("s{i}")), recs, 1000);
        recs = out;
        assert_eq!(a, Answer::Reserved, "{i}");
    }
    // Four distinct guesses still fit, the fifth distinct one waits.
    for i in 0..4 {
        assert_eq!(
            run(&mut recs, Action::Reserve, &format!("d{i}"), 1000),
            Answer::Reserved
        );
    }
    assert_eq!(
        run(&mut recs, Action::Reserve, "d4", 1000),
        Answer::Refused(1)
    );
    // All 50 fail: one failure.
    for i in 0..50 {
        let (_, out) = throttle::apply(&same(Action::Fail, &format!("s{i}")), recs, 1001);
        recs = out;
    }
    assert_eq!(recs[0].as_ref().unwrap().failures, 1);
}

#[test]
fn a_success_releases_its_reservation_and_clears_the_account_only() {
    let mut recs = vec![None, None];
    for i in 0..3 {
        run(&mut recs, Action::Reserve, &format!("w{i}"), 1000);
        run(&mut recs, Action::Fail, &format!("w{i}"), 1000);
    }
    assert_eq!(
        run(&mut recs, Action::Reserve, "ok", 1000),
        Answer::Reserved
    );
    assert_eq!(run(&mut recs, Action::Succeed, "ok", 1000), Answer::Done);
    assert!(recs[0].is_none(), "the account is clear: {:?}", recs[0]);
    let addr = recs[1].as_ref().unwrap();
    assert_eq!((addr.failures, addr.pending.len()), (3, 0));
    // A check that could not be made releases its reservation without counting it.
    run(&mut recs, Action::Reserve, "c", 1000);
    run(&mut recs, Action::Cancel, "c", 1000);
    assert_eq!(recs[1].as_ref().unwrap().failures, 3);
}

#[test]
fn a_reservation_never_settled_counts_as_a_failure() {
    let mut recs = vec![None, None];
    for i in 0..5 {
        assert_eq!(
            run(&mut recs, Action::Reserve, &format!("lost{i}"), 1000),
            Answer::Reserved
        );
    }
    // Requests that died: their reservations hold the account until they are stale...
    assert_eq!(
        run(&mut recs, Action::Reserve, "next", 1030),
        Answer::Refused(1)
    );
    // ...and then they are failures: the account is locked.
    let later = 1000 + throttle::RESERVATION_TTL;
    assert!(matches!(
        run(&mut recs, Action::Reserve, "next", later),
        Answer::Refused(w) if w == 30
    ));
    // A late settle of a reservation already counted is not counted twice.
    run(&mut recs, Action::Fail, "lost0", later);
    assert_eq!(recs[1].as_ref().unwrap().failures, 5);
}

#[test]
fn a_wrong_password_is_counted_even_when_the_count_cannot_be_written_at_once() {
    // The Durable Object fails right after the reservation (one call per key and step: client
    // reserve 2 + settle 2, user reserve 2): the answer is still the truth (400), and the
    // guess still counts.
    let t = setup();
    t.state.fail_after(6);
    let r = grant(&t, "192.0.2.9", "john", "wrong");
    assert_eq!(r.status(), 400, "{}", r.text());
    t.state.heal();
    for i in 0..4 {
        let guess = format!("wrong-{i}");
        assert_eq!(grant(&t, "192.0.2.9", "john", &guess).status(), 400, "{i}");
    }
    // 1 + 4 = 5 failures: the right password is refused.
    retry_after(&grant(&t, "192.0.2.9", "john", "pass123"));
    // Once the lost reservation is stale it is the fifth failure: a lockout starts.
    t.clock.advance(throttle::RESERVATION_TTL);
    assert_eq!(retry_after(&grant(&t, "192.0.2.9", "john", "pass123")), 30);
    t.clock.advance(31);
    assert_eq!(grant(&t, "192.0.2.9", "john", "pass123").status(), 200);
}

#[test]
fn ipv6_addresses_are_throttled_per_64() {
    assert_eq!(
        throttle::address_bucket("2001:DB8:1:2:aaaa::1"),
        "2001:db8:1:2::/64"
    );
    assert_eq!(throttle::address_bucket("::ffff:192.0.2.1"), "192.0.2.1");
    assert_eq!(throttle::address_bucket(" 192.0.2.1 "), "192.0.2.1");
    let t = setup();
    // 12 failures (LOGIN_ADDRESS_MAX_FAILURES here) from 12 addresses of one /64.
    for i in 0..12 {
        let ip = format!("2001:db8:1:2:{:x}::{}", i * 997, i + 1);
        let r = grant(&t, &ip, &format!("nobody{i}"), "guess");
        assert_eq!(r.status(), 400, "{ip}: {}", r.text());
    }
    retry_after(&grant(
        &t,
        "2001:db8:1:2:ffff:ffff:ffff:ffff",
        "jane",
        "pass123",
    ));
    // The next /64 is someone else.
    assert_eq!(
        grant(&t, "2001:db8:1:3::1", "jane", "pass123").status(),
        200
    );
}

fn token_with(t: &TestApp, auth: Option<&str>, form: &[(&str, &str)], ip: &str) -> TestResponse {
    let body = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(form)
        .finish();
    let mut b = TestApp::req("POST", "/auth/token")
        .header("content-type", "application/x-www-form-urlencoded")
        .header("cf-connecting-ip", ip);
    if let Some(a) = auth {
        b = b.header("authorization", a);
    }
    t.call(b.body(body.into_bytes()).unwrap())
}

fn api_basic(t: &TestApp, auth: &str, ip: &str) -> TestResponse {
    let req = TestApp::req("GET", "/User")
        .header("authorization", auth)
        .header("cf-connecting-ip", ip)
        .body(Vec::new())
        .unwrap();
    match t.send(req) {
        edge_authorizer::context::Outcome::Respond(r) => TestResponse(r),
        _ => panic!("expected a response"),
    }
}

#[test]
fn client_secret_guessing_is_throttled_per_client_at_the_token_endpoint() {
    let t = setup();
    assert_eq!(
        t.admin_put(
            "/Client/svc",
            json!({"secret": "svcsecret", "grant_types": ["client_credentials", "basic"]})
        )
        .status(),
        201
    );
    let cc = [("grant_type", "client_credentials")];
    // Basic and client_secret_post guesses count against the same client, from any address.
    for i in 0..3 {
        let r = token_with(
            &t,
            Some(&TestApp::basic("svc", &format!("g{i}"))),
            &cc,
            "192.0.2.1",
        );
        assert_eq!(r.status(), 401, "{}", r.text());
    }
    for i in 0..2 {
        let g = format!("p{i}");
        let post = [
            ("grant_type", "client_credentials"),
            ("client_id", "svc"),
            ("client_secret", g.as_str()),
        ];
        assert_eq!(
            token_with(&t, None, &post, &format!("198.51.100.{i}")).status(),
            401
        );
    }
    // Locked: the right secret waits too, on the token endpoint and on the API.
    retry_after(&token_with(
        &t,
        Some(&TestApp::basic("svc", "svcsecret")),
        &cc,
        "203.0.113.1",
    ));
    assert_eq!(
        api_basic(&t, &TestApp::basic("svc", "svcsecret"), "203.0.113.1").status(),
        429
    );
    t.clock.advance(31);
    let ok = token_with(
        &t,
        Some(&TestApp::basic("svc", "svcsecret")),
        &cc,
        "203.0.113.1",
    );
    assert_eq!(ok.status(), 200, "{}", ok.text());
}

#[test]
fn root_secret_guessing_on_the_api_is_throttled() {
    let t = setup();
    for i in 0..5 {
        let r = api_basic(
            &t,
            &TestApp::basic("root", &format!("guess{i}")),
            "192.0.2.44",
        );
        assert_eq!(r.status(), 401, "{}", r.text());
    }
    let r = api_basic(&t, &TestApp::basic("root", "guess-more"), "192.0.2.45");
    assert_eq!(r.status(), 429, "{}", r.text());
    // The operator's own isolate already verified the right secret: it keeps working.
    assert_eq!(api_basic(&t, &TestApp::root(), "192.0.2.46").status(), 200);
}

#[test]
fn an_unknown_client_id_costs_no_store_call_and_no_hash() {
    let t = setup();
    let before = t.state.calls.get();
    for i in 0..50 {
        let r = token_with(
            &t,
            Some(&TestApp::basic(&format!("nobody{i}"), "x")),
            &[("grant_type", "client_credentials")],
            "192.0.2.1",
        );
        assert_eq!(r.status(), 401);
        assert_eq!(
            api_basic(&t, &TestApp::basic(&format!("nobody{i}"), "x"), "192.0.2.1").status(),
            401
        );
    }
    assert_eq!(
        t.state.calls.get(),
        before,
        "refused without a throttle round trip"
    );
}

#[test]
fn a_verified_client_secret_skips_the_throttle() {
    let t = setup();
    let cc = [
        ("grant_type", "password"),
        ("username", "jane"),
        ("password", "pass123"),
    ];
    assert_eq!(token_with(&t, Some(APP), &cc, "192.0.2.1").status(), 200);
    let before = t.state.calls.get();
    assert_eq!(token_with(&t, Some(APP), &cc, "192.0.2.1").status(), 200);
    // The user's password is still reserved and settled (account and address, one call per
    // key: 4 calls); the client's is not.
    assert_eq!(t.state.calls.get() - before, 4);
}

// ---- across objects (issue 15): one key per store op ----

fn record(t: &TestApp, key: &str) -> Option<throttle::Record> {
    t.state
        .dump()
        .get(key)
        .map(|v| serde_json::from_str(v).unwrap())
}

#[test]
fn every_store_op_names_one_key_so_each_lives_in_its_own_object() {
    let t = setup();
    assert_eq!(grant(&t, "192.0.2.1", "john", "wrong").status(), 400);
    assert_eq!(grant(&t, "192.0.2.1", "john", "pass123").status(), 200);
    assert_eq!(t.state.throttle_keys_max.get(), 1);
}

#[test]
fn an_address_refusal_releases_the_accounts_reservation() {
    let t = setup_with(|c| c.throttle.address_max_failures = 3);
    for i in 0..3 {
        assert_eq!(
            grant(&t, "192.0.2.5", &format!("nobody{i}"), "x").status(),
            400
        );
    }
    // The address is locked: jane's guess from it is refused after her account was reserved
    // first, and that reservation is released, not left to count as a failure.
    retry_after(&grant(&t, "192.0.2.5", "jane", "wrong"));
    let jane = format!(
        "throttle/user/{}",
        edge_authorizer::state::hash(&throttle::known_user("jane"))
    );
    assert_eq!(
        record(&t, &jane),
        None,
        "no reservation, no failure left on jane"
    );
    t.clock.advance(throttle::RESERVATION_TTL + 1);
    // Her count is untouched: exactly 5 checked guesses from elsewhere, then the lock.
    for i in 0..5 {
        assert_eq!(
            grant(&t, &format!("198.51.100.{i}"), "jane", "wrong").status(),
            400,
            "{i}"
        );
    }
    retry_after(&grant(&t, "198.51.100.9", "jane", "pass123"));
}

#[test]
fn a_failed_second_reservation_checks_nothing_and_never_counts_less() {
    // The client check (reserve 2 + settle 2) and the account's reservation go through; the
    // address's reservation and the release of the account's fail.
    let t = setup();
    t.state.fail_after(5);
    let r = grant(&t, "192.0.2.9", "john", "pass123");
    assert_eq!(r.status(), 503, "{}", r.text());
    t.state.heal();
    let john = format!(
        "throttle/user/{}",
        edge_authorizer::state::hash(&throttle::known_user("john"))
    );
    // Not checked (no success cleared anything), and the account's reservation is still there:
    // once stale it counts as a failure (more counted, never fewer).
    let rec = record(&t, &john).expect("the account's reservation stays");
    assert_eq!(rec.pending.len(), 1);
    assert_eq!(rec.failures, 0);
    t.clock.advance(throttle::RESERVATION_TTL);
    for i in 0..4 {
        assert_eq!(
            grant(&t, "192.0.2.9", "john", &format!("w{i}")).status(),
            400,
            "{i}"
        );
    }
    retry_after(&grant(&t, "192.0.2.9", "john", "pass123"));
}
