//! The admin API (`/Client`, `/User`, `/AccessPolicy`) through the real handler.

mod common;

use edge_authorizer::testing::{TestApp, TestResponse};
use serde_json::{json, Value};

fn call(
    t: &TestApp,
    method: &str,
    path: &str,
    auth: Option<&str>,
    ct: Option<&str>,
    body: &str,
) -> TestResponse {
    let mut b = TestApp::req(method, path);
    if let Some(a) = auth {
        b = b.header("authorization", a);
    }
    if let Some(c) = ct {
        b = b.header("content-type", c);
    }
    t.call(b.body(body.as_bytes().to_vec()).unwrap())
}

fn root_get(t: &TestApp, path: &str) -> TestResponse {
    call(t, "GET", path, Some(&TestApp::root()), None, "")
}

#[test]
fn put_client_hashes_the_secret_and_never_returns_it() {
    let t = TestApp::new();
    let r = t.admin_put(
        "/Client/basic",
        json!({"secret": "s3cret", "grant_types": ["basic"]}),
    );
    assert_eq!(r.status(), 201, "{}", r.text());
    let body = r.json();
    assert_eq!(body["id"], "basic");
    assert_eq!(body["resourceType"], "Client");
    assert!(body.get("secret").is_none() && body.get("secret_hash").is_none());
    assert_eq!(body["meta"]["versionId"], "1");
    assert_eq!(r.header("location"), Some("/Client/basic"));

    let stored = t.kv.dump()["Client/basic"].clone();
    assert!(!stored.contains("s3cret"), "plain secret stored: {stored}");
    assert!(stored.contains("$pbkdf2-sha256$i=1000$"), "{stored}");

    let g = root_get(&t, "/Client/basic");
    assert_eq!(g.status(), 200);
    assert!(g.json().get("secret_hash").is_none());
    assert!(!g.text().contains("pbkdf2"));

    let again = t.admin_put(
        "/Client/basic",
        json!({"secret": "s3cret", "grant_types": ["basic"]}),
    );
    assert_eq!(again.status(), 200);
    assert_eq!(again.json()["meta"]["versionId"], "2");
}

#[test]
fn put_without_secret_keeps_the_stored_hash() {
    let t = TestApp::new();
    t.admin_put(
        "/Client/c1",
        json!({"secret": "one", "grant_types": ["basic"]}),
    );
    let before: Value = serde_json::from_str(&t.kv.dump()["Client/c1"]).unwrap();
    let r = t.admin_put(
        "/Client/c1",
        json!({"grant_types": ["basic", "client_credentials"]}),
    );
    assert_eq!(r.status(), 200);
    let after: Value = serde_json::from_str(&t.kv.dump()["Client/c1"]).unwrap();
    assert_eq!(before["secret_hash"], after["secret_hash"]);
    assert_eq!(after["grant_types"], json!(["basic", "client_credentials"]));
}

#[test]
fn list_get_and_delete() {
    let t = TestApp::new();
    for id in ["a", "b", "c"] {
        assert_eq!(
            t.admin_put(&format!("/Client/{id}"), json!({"secret": "x"}))
                .status(),
            201
        );
    }
    let l = root_get(&t, "/Client");
    assert_eq!(l.status(), 200);
    assert_eq!(l.json()["resourceType"], "Bundle");
    assert_eq!(l.json()["total"], 3);
    assert!(!l.text().contains("secret_hash"));
    let ids: Vec<String> = l.json()["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["resource"]["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids, ["a", "b", "c"]);

    let d = call(&t, "DELETE", "/Client/b", Some(&TestApp::root()), None, "");
    assert_eq!(d.status(), 200);
    assert_eq!(d.json()["id"], "b");
    assert_eq!(root_get(&t, "/Client/b").status(), 404);
    assert_eq!(
        call(&t, "DELETE", "/Client/b", Some(&TestApp::root()), None, "").status(),
        404
    );
    assert_eq!(root_get(&t, "/Client").json()["total"], 2);
}

#[test]
fn post_creates_with_a_generated_id() {
    let t = TestApp::new();
    let r = call(
        &t,
        "POST",
        "/AccessPolicy",
        Some(&TestApp::root()),
        Some("application/json"),
        r#"{"engine":"allow"}"#,
    );
    assert_eq!(r.status(), 201, "{}", r.text());
    let id = r.json()["id"].as_str().unwrap().to_string();
    assert_eq!(id.len(), 32);
    assert_eq!(root_get(&t, &format!("/AccessPolicy/{id}")).status(), 200);
}

fn assert_refused_naming(r: &TestResponse, status: u16, field: &str) {
    assert_eq!(r.status(), status, "{}", r.text());
    let b = r.json();
    assert_eq!(b["field"], field, "{b}");
    assert!(
        b["error_description"].as_str().unwrap().starts_with(field),
        "{b}"
    );
}

#[test]
fn invalid_clients_are_refused_naming_the_field() {
    let t = TestApp::new();
    assert_refused_naming(
        &t.admin_put("/Client/x", json!({"grant_types": ["basic", "magic"]})),
        422,
        "grant_types.1",
    );
    assert_refused_naming(
        &t.admin_put("/Client/x", json!({"grant_types": "basic"})),
        422,
        "grant_types",
    );
    assert_refused_naming(
        &t.admin_put("/Client/x", json!({"first_party": "yes"})),
        422,
        "first_party",
    );
    assert_refused_naming(
        &t.admin_put("/Client/x", json!({"secret": 42})),
        422,
        "secret",
    );
    assert_refused_naming(
        &t.admin_put("/Client/x", json!({"secret": ""})),
        422,
        "secret",
    );
    assert_refused_naming(
        &t.admin_put(
            "/Client/x",
            json!({"secret_hash": "$pbkdf2-sha256$i=1$AA$AA"}),
        ),
        422,
        "secret_hash",
    );
    assert_refused_naming(
        &t.admin_put("/Client/x", json!({"audience": "#(unclosed"})),
        422,
        "audience",
    );
    assert_refused_naming(
        &t.admin_put(
            "/Client/x",
            json!({"auth": {"password": {"access_token_expiration": -5}}}),
        ),
        422,
        "auth.password.access_token_expiration",
    );
    assert_refused_naming(
        &t.admin_put("/Client/x", json!({"auth": {"teleport": {}}})),
        422,
        "auth.teleport",
    );
    assert_refused_naming(
        &t.admin_put(
            "/Client/x",
            json!({"auth": {"authorization_code": {"redirect_uri": "http://evil.example/cb"}}}),
        ),
        422,
        "auth.authorization_code.redirect_uri",
    );
    assert_refused_naming(&t.admin_put("/Client/x", json!({"id": "y"})), 422, "id");
    assert_refused_naming(
        &t.admin_put("/Client/x", json!({"resourceType": "User"})),
        422,
        "resourceType",
    );
    assert_refused_naming(
        &t.admin_put("/Client/root", json!({"secret": "mine"})),
        422,
        "id",
    );
    assert_refused_naming(&t.admin_put("/Client/bad%20id", json!({})), 422, "id");
    assert_refused_naming(
        &t.admin_put("/Client/x", json!(["not", "an", "object"])),
        422,
        "",
    );
    assert!(
        t.kv.dump().is_empty(),
        "a refused write stored something: {:?}",
        t.kv.dump()
    );
}

#[test]
fn invalid_policies_are_refused_naming_the_field() {
    let t = TestApp::new();
    assert_refused_naming(
        &t.admin_put("/AccessPolicy/p", json!({"engine": "magic"})),
        422,
        "engine",
    );
    assert_refused_naming(
        &t.admin_put("/AccessPolicy/p", json!({"link": []})),
        422,
        "engine",
    );
    assert_refused_naming(
        &t.admin_put(
            "/AccessPolicy/p",
            json!({"engine": "matcho", "matcho": {"uri": "#/Patient("}}),
        ),
        422,
        "matcho.uri",
    );
    assert_refused_naming(
        &t.admin_put(
            "/AccessPolicy/p",
            json!({"engine": "json-schema", "schema": {"properties": {"uri": {"pattern": "(("}}}}),
        ),
        422,
        "schema.properties.uri.pattern",
    );
    assert_refused_naming(
        &t.admin_put(
            "/AccessPolicy/p",
            json!({"engine": "allow", "link": "basic"}),
        ),
        422,
        "link",
    );
    assert_refused_naming(
        &t.admin_put(
            "/AccessPolicy/p",
            json!({"engine": "complex", "and": [], "or": []}),
        ),
        422,
        "and/or",
    );
    assert!(t.kv.dump().is_empty());
    assert_eq!(
        t.admin_put(
            "/AccessPolicy/p",
            json!({"engine": "matcho", "matcho": {"uri": "#^/Patient", "request-method": "get"}})
        )
        .status(),
        201
    );
}

#[test]
fn malformed_bodies_change_nothing() {
    let t = TestApp::new();
    t.admin_put(
        "/Client/keep",
        json!({"secret": "s", "grant_types": ["basic"]}),
    );
    let before = t.kv.dump();
    let r = call(
        &t,
        "PUT",
        "/Client/keep",
        Some(&TestApp::root()),
        Some("application/json"),
        "{\"secret\": ",
    );
    assert_eq!(r.status(), 400);
    assert_eq!(r.json()["error"], "invalid_request");
    let r = call(
        &t,
        "PUT",
        "/Client/keep",
        Some(&TestApp::root()),
        Some("text/plain"),
        "{}",
    );
    assert_eq!(r.status(), 415);
    let r = call(
        &t,
        "PUT",
        "/Client/keep",
        Some(&TestApp::root()),
        None,
        "{}",
    );
    assert_eq!(r.status(), 415);
    let r = call(
        &t,
        "PUT",
        "/Client/keep",
        Some(&TestApp::root()),
        Some("application/json"),
        "\u{0}\u{1}garbage",
    );
    assert_eq!(r.status(), 400);
    assert_eq!(t.kv.dump(), before);
}

#[test]
fn users_hash_passwords_and_keep_emails_unique() {
    let t = TestApp::new();
    let r = t.admin_put(
        "/User/john",
        json!({"email": "John@Example.com", "password": "pass123", "name": {"givenName": "John"}}),
    );
    assert_eq!(r.status(), 201, "{}", r.text());
    assert!(r.json().get("password").is_none() && r.json().get("password_hash").is_none());
    assert!(!t.kv.dump()["User/john"].contains("pass123"));
    assert_eq!(t.kv.dump()["idx/User/email/john@example.com"], "\"john\"");

    let dup = t.admin_put(
        "/User/other",
        json!({"email": "john@example.com", "password": "x"}),
    );
    assert_eq!(dup.status(), 409, "{}", dup.text());
    assert!(!t.kv.dump().contains_key("User/other"));

    assert_refused_naming(
        &t.admin_put("/User/x", json!({"email": "not-an-email"})),
        422,
        "email",
    );
    assert_refused_naming(
        &t.admin_put("/User/x", json!({"password": ["a"]})),
        422,
        "password",
    );

    // Changing the email moves the index; deleting the user drops it.
    assert_eq!(
        t.admin_put("/User/john", json!({"email": "j@example.org"}))
            .status(),
        200
    );
    let dump = t.kv.dump();
    assert!(!dump.contains_key("idx/User/email/john@example.com"));
    assert_eq!(dump["idx/User/email/j@example.org"], "\"john\"");
    assert_eq!(
        call(&t, "DELETE", "/User/john", Some(&TestApp::root()), None, "").status(),
        200
    );
    assert!(!t.kv.dump().contains_key("idx/User/email/j@example.org"));
}

#[test]
fn admin_needs_credentials_and_a_policy_for_non_root_callers() {
    let t = TestApp::new();
    let r = call(&t, "GET", "/Client", None, None, "");
    assert_eq!(r.status(), 401);
    assert!(r.header("www-authenticate").unwrap().starts_with("Bearer"));
    let r = call(
        &t,
        "GET",
        "/Client",
        Some(&TestApp::basic("root", "wrong")),
        None,
        "",
    );
    assert_eq!(r.status(), 401);

    t.admin_put(
        "/Client/ops",
        json!({"secret": "ops-secret", "grant_types": ["basic"]}),
    );
    let ops = TestApp::basic("ops", "ops-secret");
    assert_eq!(
        call(&t, "GET", "/Client", Some(&ops), None, "").status(),
        403
    );
    t.admin_put("/AccessPolicy/ops-read", json!({"engine": "matcho", "matcho": {"request-method": "get", "uri": "#^/Client"}, "link": [{"id": "ops", "resourceType": "Client"}]}));
    assert_eq!(
        call(&t, "GET", "/Client", Some(&ops), None, "").status(),
        200
    );
    let w = call(
        &t,
        "PUT",
        "/Client/new",
        Some(&ops),
        Some("application/json"),
        "{}",
    );
    assert_eq!(w.status(), 403);
    assert!(!t.kv.dump().contains_key("Client/new"));
}

#[test]
fn kv_failure_is_503_with_retry_after_and_writes_nothing() {
    let t = TestApp::new();
    t.kv.failing.set(true);
    let r = t.admin_put("/Client/x", json!({"secret": "s"}));
    assert_eq!(r.status(), 503);
    assert_eq!(r.json()["error"], "temporarily_unavailable");
    assert!(r.header("retry-after").is_some());
    t.kv.failing.set(false);
    assert!(t.kv.dump().is_empty());
}

#[test]
fn wrong_methods_are_405_with_allow() {
    let t = TestApp::new();
    let r = call(
        &t,
        "POST",
        "/Client/x",
        Some(&TestApp::root()),
        Some("application/json"),
        "{}",
    );
    assert_eq!(r.status(), 405);
    assert_eq!(r.header("allow"), Some("GET, PUT, PATCH, DELETE"));
    let r = call(&t, "DELETE", "/Client", Some(&TestApp::root()), None, "");
    assert_eq!(r.status(), 405);
}

/// The stored `credential_generation` of a resource (never shown by the API).
fn stored_generation(t: &TestApp, key: &str) -> Option<String> {
    let doc: Value = serde_json::from_str(&t.kv.dump()[key]).unwrap();
    doc["credential_generation"].as_str().map(str::to_string)
}

#[test]
fn credential_changes_renew_the_generation_and_profile_changes_keep_it() {
    let t = TestApp::new();
    let put = |body: Value| {
        let r = t.admin_put("/User/u1", body);
        assert!([200, 201].contains(&r.status()), "{}", r.text());
        assert!(r.json().get("credential_generation").is_none());
    };
    put(json!({"email": "u1@example.com", "password": "pw-one"}));
    let g1 = stored_generation(&t, "User/u1").expect("new on create");
    put(json!({"email": "u1@example.com", "name": {"givenName": "U"}}));
    assert_eq!(
        stored_generation(&t, "User/u1").as_ref(),
        Some(&g1),
        "profile change"
    );
    put(json!({"email": "u1@example.com", "password": "pw-two"}));
    let g2 = stored_generation(&t, "User/u1").unwrap();
    assert_ne!(g1, g2, "password change");
    put(json!({"email": "u1@example.com", "inactive": true}));
    let g3 = stored_generation(&t, "User/u1").unwrap();
    assert_ne!(g2, g3, "inactive: true");
    put(json!({"email": "u1@example.com", "active": false}));
    assert_ne!(
        stored_generation(&t, "User/u1").unwrap(),
        g3,
        "active: false"
    );
    assert!(!root_get(&t, "/User/u1")
        .text()
        .contains("credential_generation"));
    // Delete and create again: a new generation.
    let before = stored_generation(&t, "User/u1").unwrap();
    assert_eq!(
        call(&t, "DELETE", "/User/u1", Some(&TestApp::root()), None, "").status(),
        200
    );
    put(json!({"email": "u1@example.com", "password": "pw-two"}));
    assert_ne!(
        stored_generation(&t, "User/u1").unwrap(),
        before,
        "re-created"
    );
    // Nobody sets it.
    let r = t.admin_put(
        "/User/u1",
        json!({"email": "u1@example.com", "credential_generation": before}),
    );
    assert_eq!(r.status(), 422, "{}", r.text());
    assert_eq!(r.json()["field"], "credential_generation");
    let r = t.admin_put("/User/u2", json!({"inactive": "yes"}));
    assert_eq!(r.status(), 422, "{}", r.text());

    // Clients: secret, keys and deactivation renew; grant types do not.
    t.admin_put(
        "/Client/c",
        json!({"secret": "s1", "grant_types": ["basic"]}),
    );
    let c1 = stored_generation(&t, "Client/c").unwrap();
    t.admin_put(
        "/Client/c",
        json!({"grant_types": ["basic", "client_credentials"]}),
    );
    assert_eq!(stored_generation(&t, "Client/c").unwrap(), c1);
    t.admin_put(
        "/Client/c",
        json!({"secret": "s2", "grant_types": ["basic"]}),
    );
    let c2 = stored_generation(&t, "Client/c").unwrap();
    assert_ne!(c1, c2);
    t.admin_put(
        "/Client/c",
        json!({"grant_types": ["basic"], "active": false}),
    );
    assert_ne!(stored_generation(&t, "Client/c").unwrap(), c2);
}

#[test]
fn inactive_user_cannot_sign_in() {
    let t = TestApp::new();
    t.admin_put(
        "/Client/app",
        json!({"secret": "app", "grant_types": ["password"]}),
    );
    t.admin_put(
        "/User/u",
        json!({"email": "u@example.com", "password": "pw", "inactive": true}),
    );
    let r = t.token(
        Some(&TestApp::basic("app", "app")),
        &[
            ("grant_type", "password"),
            ("username", "u@example.com"),
            ("password", "pw"),
        ],
    );
    assert_eq!(r.status(), 400, "{}", r.text());
    assert_eq!(r.json()["error"], "invalid_grant");
}

fn root_call(t: &TestApp, method: &str, path: &str, ct: &str, body: &str) -> TestResponse {
    call(t, method, path, Some(&TestApp::root()), Some(ct), body)
}

#[test]
fn post_with_an_id_creates_that_id_and_refuses_a_taken_one() {
    let t = TestApp::new();
    let body = r#"{"id":"my-app","secret":"s1","grant_types":["basic"]}"#;
    let r = root_call(&t, "POST", "/Client", "application/json", body);
    assert_eq!(r.status(), 201, "{}", r.text());
    assert_eq!(r.json()["id"], "my-app");
    assert_eq!(r.header("location"), Some("/Client/my-app"));
    let before = t.kv.dump()["Client/my-app"].clone();
    let again = r#"{"id":"my-app","secret":"s2","grant_types":["client_credentials"]}"#;
    let r = root_call(&t, "POST", "/Client", "application/json", again);
    assert_eq!(r.status(), 409, "{}", r.text());
    assert_eq!(r.json()["error"], "conflict");
    assert_eq!(
        t.kv.dump()["Client/my-app"],
        before,
        "a refused POST changes nothing"
    );
    for bad in [r#"{"id":"a b"}"#, r#"{"id":"root"}"#, r#"{"id":7}"#] {
        let r = root_call(&t, "POST", "/Client", "application/json", bad);
        assert_eq!(r.status(), 422, "{bad}: {}", r.text());
        assert_eq!(r.json()["field"], "id");
    }
    let r = root_call(
        &t,
        "POST",
        "/User",
        "application/json",
        r#"{"id":"u-1","password":"pw"}"#,
    );
    assert_eq!(r.status(), 201, "{}", r.text());
    assert_eq!(r.json()["id"], "u-1");
}

#[test]
fn patch_merges_and_stores_like_put() {
    let t = TestApp::new();
    t.admin_put(
        "/Client/c",
        json!({"secret": "s1", "grant_types": ["basic"], "first_party": true}),
    );
    let stored = |t: &TestApp| -> Value { serde_json::from_str(&t.kv.dump()["Client/c"]).unwrap() };
    let s1 = stored(&t);
    // A profile change: hash and generation kept, a null removes a field.
    let r = root_call(
        &t,
        "PATCH",
        "/Client/c",
        "application/merge-patch+json",
        r#"{"grant_types":["basic","client_credentials"],"first_party":null}"#,
    );
    assert_eq!(r.status(), 200, "{}", r.text());
    assert_eq!(r.json()["meta"]["versionId"], "2");
    let s2 = stored(&t);
    assert_eq!(s2["grant_types"], json!(["basic", "client_credentials"]));
    assert!(s2.get("first_party").is_none());
    assert_eq!(s1["secret_hash"], s2["secret_hash"]);
    assert_eq!(s1["credential_generation"], s2["credential_generation"]);
    // `secret: null` keeps the stored secret (there is no visible secret to remove).
    let r = root_call(
        &t,
        "PATCH",
        "/Client/c",
        "application/json",
        r#"{"secret":null}"#,
    );
    assert_eq!(r.status(), 200, "{}", r.text());
    assert_eq!(stored(&t)["secret_hash"], s1["secret_hash"]);
    // A new secret: hashed, new generation.
    let r = root_call(
        &t,
        "PATCH",
        "/Client/c",
        "application/json",
        r#"{"secret":"s2"}"#,
    );
    assert_eq!(r.status(), 200, "{}", r.text());
    assert!(r.json().get("secret").is_none());
    let s3 = stored(&t);
    assert_ne!(s3["secret_hash"], s1["secret_hash"]);
    assert_ne!(s3["credential_generation"], s1["credential_generation"]);
    assert!(!t.kv.dump()["Client/c"].contains("\"s2\""));
    // Refused patches change nothing.
    let before = t.kv.dump()["Client/c"].clone();
    for (bad, field) in [
        (r#"{"grant_types":["nonsense"]}"#, "grant_types.0"),
        (r#"{"credential_generation":"x"}"#, "credential_generation"),
        (r#"{"secret_hash":"x"}"#, "secret_hash"),
        (r#"{"id":"other"}"#, "id"),
    ] {
        let r = root_call(&t, "PATCH", "/Client/c", "application/json", bad);
        assert_eq!(r.status(), 422, "{bad}: {}", r.text());
        assert_eq!(r.json()["field"], field, "{bad}");
    }
    let r = root_call(&t, "PATCH", "/Client/c", "application/json", "[1]");
    assert_eq!(r.status(), 422, "{}", r.text());
    assert_eq!(t.kv.dump()["Client/c"], before);
    // Absent resource: 404, nothing created.
    let r = root_call(&t, "PATCH", "/Client/nope", "application/json", "{}");
    assert_eq!(r.status(), 404, "{}", r.text());
    assert!(!t.kv.dump().contains_key("Client/nope"));
    // Users: a password patch hashes it and renews the generation.
    t.admin_put(
        "/User/u",
        json!({"email": "u@example.com", "password": "pw1"}),
    );
    let u1: Value = serde_json::from_str(&t.kv.dump()["User/u"]).unwrap();
    let r = root_call(
        &t,
        "PATCH",
        "/User/u",
        "application/json",
        r#"{"password":"pw2"}"#,
    );
    assert_eq!(r.status(), 200, "{}", r.text());
    let u2: Value = serde_json::from_str(&t.kv.dump()["User/u"]).unwrap();
    assert_ne!(u1["password_hash"], u2["password_hash"]);
    assert_ne!(u1["credential_generation"], u2["credential_generation"]);
    assert_eq!(u2["email"], "u@example.com");
}

#[test]
fn yaml_bodies_are_415_saying_to_send_json() {
    let t = TestApp::new();
    for ct in [
        "text/yaml",
        "application/yaml",
        "application/x-yaml; charset=utf-8",
    ] {
        let r = root_call(&t, "POST", "/Client", ct, "id: x\nsecret: y\n");
        assert_eq!(r.status(), 415, "{ct}: {}", r.text());
        let d = r.json()["error_description"].as_str().unwrap().to_string();
        assert!(d.contains("YAML") && d.contains("application/json"), "{d}");
    }
    assert!(!t.kv.dump().contains_key("Client/x"));
}

// ---------------------------------------------------------------- Role, Scope, fhirUser (issue 13)

#[test]
fn role_is_validated_and_stored_like_the_other_admin_types() {
    let t = TestApp::new();
    // Aidbox docs: tutorials/security-access-control-tutorials/rbac/flexible-rbac-built-in-to-aidbox.md
    let role = json!({
        "id": "practioner-role-user-1", "resourceType": "Role",
        "user": {"reference": "User/user-1"}, "name": "practitioner",
        "links": {"practitioner": {"reference": "Practitioner/pr-1"}}
    });
    let r = t.admin_put("/Role/practioner-role-user-1", role.clone());
    assert_eq!(r.status(), 201, "{}", r.text());
    assert_eq!(r.json()["user"], json!({"reference": "User/user-1"}));
    assert_eq!(
        root_get(&t, "/Role/practioner-role-user-1").json()["name"],
        "practitioner"
    );
    // The other reference form, an open `context`, a description.
    let r = t.admin_put(
        "/Role/r2",
        json!({"name": "admin", "user": {"id": "u-2", "resourceType": "User"},
               "description": "d", "context": {"any": ["thing"]}, "extra": 1}),
    );
    assert_eq!(r.status(), 201, "{}", r.text());
    for (body, field) in [
        (json!({"user": {"reference": "User/u"}}), "name"),
        (json!({"name": "", "user": {"reference": "User/u"}}), "name"),
        (json!({"name": 3, "user": {"reference": "User/u"}}), "name"),
        (json!({"name": "a"}), "user"),
        (json!({"name": "a", "user": "User/u"}), "user"),
        (
            json!({"name": "a", "user": {"reference": "Client/u"}}),
            "user",
        ),
        (
            json!({"name": "a", "user": {"id": "u", "resourceType": "Client"}}),
            "user",
        ),
        (json!({"name": "a", "user": {"id": "u"}}), "user"),
        (
            json!({"name": "a", "user": {"reference": "User/u", "id": "v", "resourceType": "User"}}),
            "user",
        ),
        (
            json!({"name": "a", "user": {"reference": "User/bad id"}}),
            "user",
        ),
        (
            json!({"name": "a", "user": {"reference": "User/u"}, "links": []}),
            "links",
        ),
        (
            json!({"name": "a", "user": {"reference": "User/u"}, "links": {"practitioner": {"reference": "Patient/p"}}}),
            "links.practitioner",
        ),
        (
            json!({"name": "a", "user": {"reference": "User/u"}, "links": {"admin": {"reference": "User/u"}}}),
            "links.admin",
        ),
        (
            json!({"name": "a", "user": {"reference": "User/u"}, "context": "x"}),
            "context",
        ),
    ] {
        let r = t.admin_put("/Role/bad", body.clone());
        assert_eq!(r.status(), 422, "{body}: {}", r.text());
        assert_eq!(r.json()["field"], field, "{body}");
    }
    assert!(root_get(&t, "/Role/bad").status() == 404);
}

#[test]
fn scope_is_validated() {
    let t = TestApp::new();
    let r = t.admin_put(
        "/Scope/patient-patient-rs",
        json!({"scope": "patient/Patient.rs", "title": "Read your Patient record"}),
    );
    assert_eq!(r.status(), 201, "{}", r.text());
    for (body, field) in [
        (json!({"title": "t"}), "scope"),
        (json!({"scope": "openid"}), "title"),
        (json!({"scope": "openid", "title": ""}), "title"),
        (json!({"scope": "openid profile", "title": "t"}), "scope"),
        (json!({"scope": "patient/*.rcs", "title": "t"}), "scope"),
        (json!({"scope": ["openid"], "title": "t"}), "scope"),
        (
            json!({"scope": "openid", "title": "t", "scopes": "x"}),
            "scopes",
        ),
    ] {
        let r = t.admin_put("/Scope/bad", body.clone());
        assert_eq!(r.status(), 422, "{body}: {}", r.text());
        assert_eq!(r.json()["field"], field, "{body}");
    }
}

#[test]
fn fhir_user_shapes_are_checked_when_written() {
    let t = TestApp::new();
    for ok in [
        json!({"id": "pt-1", "resourceType": "Patient"}),
        json!({"reference": "Patient/pt-1"}),
        json!({"reference": "Patient/pt-1", "id": "pt-1", "resourceType": "Patient", "display": "A"}),
        json!("Practitioner/pr-1"),
        json!("https://fhir.example/r4/Patient/pt-1"),
        json!(null),
    ] {
        let r = t.admin_put("/User/u", json!({"fhirUser": ok}));
        assert!(matches!(r.status(), 200 | 201), "{ok}: {}", r.text());
    }
    for bad in [
        json!({"id": "pt-1"}),
        json!({"resourceType": "Patient"}),
        json!({"id": "pt-1", "resourceType": "patient"}),
        json!({"id": "pt 1", "resourceType": "Patient"}),
        json!({"id": 1, "resourceType": "Patient"}),
        json!({"reference": "Patient/pt-1", "id": "pt-2", "resourceType": "Patient"}),
        json!({"id": "pt-1", "resourceType": "Patient", "extra": true}),
        json!({"id": "u", "resourceType": "User"}),
        json!("Client/x"),
        json!("Patient"),
        json!("Patient/x/_history/1"),
        json!(["Patient/x"]),
        json!(3),
    ] {
        let r = t.admin_put("/User/u", json!({"fhirUser": bad}));
        assert_eq!(r.status(), 422, "{bad}: {}", r.text());
        assert_eq!(r.json()["field"], "fhirUser", "{bad}");
    }
}

// Issue 13: credentials imported from Aidbox.

/// Python `hashlib.scrypt(b"my-secret-password", salt=bytes(range(16)), n=16384, r=8, p=1,
/// dklen=32)` in the lambdaworks `$s0$` format (src/secret.rs tests).
const AIDBOX_USER_HASH: &str =
    "$s0$e0801$AAECAwQFBgcICQoLDA0ODw==$TRT1SFnBOE/ASERmBuq6OdwkcX3DZFfzB9P+xcuzUu8=";

fn stored(t: &edge_authorizer::testing::TestApp, needle: &str) -> bool {
    t.kv.dump().values().any(|v| v.contains(needle))
}

#[test]
fn an_imported_scrypt_password_signs_in_once_and_is_rehashed() {
    let t = edge_authorizer::testing::TestApp::new();
    t.admin_put(
        "/Client/app",
        serde_json::json!({"secret": "s", "grant_types": ["password"]}),
    );
    let r = t.admin_put(
        "/User/my-user",
        serde_json::json!({"email": "user@example.com", "password": AIDBOX_USER_HASH}),
    );
    assert_eq!(r.status(), 201, "{}", r.text());
    assert!(r.json().get("password").is_none() && r.json().get("password_hash").is_none());
    assert!(stored(&t, "$s0$e0801$"));
    let login = |pw: &str| {
        t.token(
            Some(&edge_authorizer::testing::TestApp::basic("app", "s")),
            &[
                ("grant_type", "password"),
                ("username", "user@example.com"),
                ("password", pw),
            ],
        )
    };
    assert_eq!(login("wrong").status(), 400);
    assert!(stored(&t, "$s0$e0801$"), "a wrong password changes nothing");
    assert!(!t.kv.dump().contains_key("rehash/User/my-user"));
    let before = t.kv.dump()["User/my-user"].clone();
    let r = login("my-secret-password");
    assert_eq!(r.status(), 200, "{}", r.text());
    // The User is never rewritten by a sign-in (a stale read written back could undo a
    // password change); our hash of the same password is kept beside it.
    assert_eq!(
        t.kv.dump()["User/my-user"],
        before,
        "the sign-in rewrote the User"
    );
    let rehash = t.kv.dump()["rehash/User/my-user"].clone();
    assert!(rehash.contains("$pbkdf2-sha256$"), "{rehash}");
    assert!(rehash.contains(AIDBOX_USER_HASH), "{rehash}");
    // Same password, our hash now; the first token lives on (same credential generation).
    assert_eq!(login("my-secret-password").status(), 200);
    assert_eq!(login("wrong").status(), 400);
    assert_eq!(t.kv.dump()["rehash/User/my-user"], rehash, "re-hashed once");
    // An administrator changes the password: the re-hash of the old one no longer applies.
    let r = t.admin_put(
        "/User/my-user",
        serde_json::json!({"email": "user@example.com", "password": "a-new-password-1"}),
    );
    assert_eq!(r.status(), 200, "{}", r.text());
    assert_eq!(login("my-secret-password").status(), 400);
    assert_eq!(login("a-new-password-1").status(), 200);
    // Deleting the User deletes the re-hash.
    let del = t.call(
        edge_authorizer::testing::TestApp::req("DELETE", "/User/my-user")
            .header("authorization", &edge_authorizer::testing::TestApp::root())
            .body(Vec::new())
            .unwrap(),
    );
    assert_eq!(del.status(), 200);
    assert!(!t.kv.dump().contains_key("rehash/User/my-user"));
}

#[test]
fn absurd_or_malformed_imported_hashes_are_refused_at_write() {
    let t = edge_authorizer::testing::TestApp::new();
    for (path, field, value) in [
        (
            "/User/u",
            "password",
            "$s0$1f0801$AAECAwQFBgcICQoLDA0ODw==$TRT1SFnBOE/ASERmBuq6OdwkcX3DZFfzB9P+xcuzUu8=",
        ),
        (
            "/User/u",
            "password",
            "$s0$e0801$AAECAwQFBgcICQoLDA0ODw==$short",
        ),
        ("/Client/c", "secret", "$sha256$0123"),
    ] {
        let r = t.admin_put(path, serde_json::json!({field: value}));
        assert_eq!(r.status(), 422, "{value}: {}", r.text());
        assert_eq!(r.json()["field"], field);
    }
}

#[test]
fn an_imported_sha256_client_secret_is_rehashed_on_first_use() {
    let t = edge_authorizer::testing::TestApp::new();
    // printf verysecret | sha256sum
    let h = "$sha256$36dd292533174299fb0c34665df468bb881756ca9eaf9757d0cfde38f9ededa1";
    let r = t.admin_put(
        "/Client/api-client",
        serde_json::json!({"secret": h, "grant_types": ["client_credentials"]}),
    );
    assert_eq!(r.status(), 201, "{}", r.text());
    let cc = |secret: &str| {
        t.token(
            Some(&edge_authorizer::testing::TestApp::basic(
                "api-client",
                secret,
            )),
            &[("grant_type", "client_credentials")],
        )
    };
    assert_eq!(cc("wrong").status(), 401);
    assert_eq!(cc(h).status(), 401, "the hash itself is no secret");
    assert_eq!(cc("verysecret").status(), 200);
    assert!(
        t.kv.dump()["Client/api-client"].contains(h),
        "the Client is not rewritten"
    );
    assert!(t.kv.dump()["rehash/Client/api-client"].contains("$pbkdf2-sha256$"));
    assert_eq!(cc("verysecret").status(), 200);
}

/// With the memory Catalog (as the Worker has its `Catalog` objects): a policy written through
/// the admin API is listed, enforced at once, published in the type's one KV bundle, and
/// deleted the same way.
#[test]
fn with_the_catalog_policies_are_listed_enforced_and_published_as_one_bundle() {
    use edge_authorizer::context::Outcome;
    use edge_authorizer::platform::KvStore;
    let mut t = TestApp::new();
    common::with_catalog(&mut t);
    let allowed = |t: &TestApp, auth: &str| match t.get_with("/Patient", auth) {
        // Allowed: forwarded, or answered by the built-in demo origin (no ORIGIN_URL).
        Outcome::Forward(_) => true,
        Outcome::Respond(r) => {
            assert!(matches!(r.status().as_u16(), 200 | 403), "{}", r.status());
            r.status() == 200
        }
        other => panic!("{other:?}"),
    };
    assert_eq!(
        t.admin_put(
            "/Client/cc",
            json!({"secret": "ccs", "grant_types": ["client_credentials"]})
        )
        .status(),
        201
    );
    let auth = format!("Bearer {}", t.cc_token("cc", "ccs").0);
    assert!(!allowed(&t, &auth), "no policy yet");
    let policy = json!({"engine": "allow", "link": [{"id": "cc", "resourceType": "Client"}]});
    assert_eq!(t.admin_put("/AccessPolicy/cc", policy).status(), 201);
    assert!(allowed(&t, &auth), "the write applies at once");
    assert_eq!(root_get(&t, "/AccessPolicy").json()["total"], 1);
    let bundle = futures::executor::block_on(t.kv.get("bundle/AccessPolicy"))
        .unwrap()
        .expect("the bundle");
    let bundle: Value = serde_json::from_str(&bundle).unwrap();
    assert_eq!(bundle["docs"][0]["id"], "cc", "{bundle}");
    let d = call(
        &t,
        "DELETE",
        "/AccessPolicy/cc",
        Some(&TestApp::root()),
        None,
        "",
    );
    assert_eq!(d.status(), 200);
    assert!(!allowed(&t, &auth), "the delete applies at once");
    let bundle = futures::executor::block_on(t.kv.get("bundle/AccessPolicy"))
        .unwrap()
        .unwrap();
    assert!(!bundle.contains("\"cc\""), "{bundle}");
}
