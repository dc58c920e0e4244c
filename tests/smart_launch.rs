//! SMART App Launch: smart-app clients, `aud`, mandatory PKCE, EHR launch context, standalone
//! patient context for patient users, `fhirUser`, and `/.well-known/smart-configuration`.

use base64::Engine;
use edge_authorizer::oauth::pkce;
use edge_authorizer::testing::{TestApp, ISSUER};
use serde_json::{json, Value};

mod common;
use common::{params, redirect, Browser};

const CB: &str = "https://smart.example/cb";
const FHIR: &str = "https://fhir.example/r4";
const VERIFIER: &str = "smart-verifier-0123456789-0123456789-0123456789";

fn setup() -> TestApp {
    let t = TestApp::new();
    let r = t.admin_put("/Client/growth-chart", json!({
        "type": "smart-app", "fhir-base-url": FHIR, "first_party": true,
        // Issue 11: the scopes the app is registered for (none: no clinical scope at all).
        "scope": ["launch", "launch/patient", "openid", "fhirUser", "patient/*.rs", "user/*.rs"],
        "grant_types": ["authorization_code"], "smart": {"launch_uri": "https://smart.example/launch"},
        "auth": {"authorization_code": {"redirect_uri": CB}}}));
    assert_eq!(r.status(), 201, "{}", r.text());
    t.admin_put(
        "/User/dr-smith",
        json!({"password": "pass123", "fhirUser": "Practitioner/pr-1"}),
    );
    t.admin_put(
        "/User/anna",
        json!({"password": "pass123", "fhirUser": {"reference": "Patient/pt-2"}}),
    );
    t
}

fn query(extra: &[(&str, &str)]) -> String {
    let challenge = pkce::s256(VERIFIER);
    let p: Vec<(&str, &str)> = vec![
        ("response_type", "code"),
        ("client_id", "growth-chart"),
        ("redirect_uri", CB),
        ("scope", "launch openid fhirUser patient/*.rs"),
        ("state", "s"),
        ("aud", FHIR),
        ("code_challenge", &challenge),
        ("code_challenge_method", "S256"),
    ];
    common::query_with(p, extra)
}

fn tokens(t: &TestApp, q: &str, user: &str) -> Value {
    let mut b = Browser::new(t);
    redirect(b.get(&format!("/auth/authorize?{q}")));
    let cb = redirect(b.login(q, user, "pass123"));
    let code = params(&cb)
        .get("code")
        .cloned()
        .unwrap_or_else(|| panic!("no code: {cb}"));
    let r = t.token(
        None,
        &[
            ("grant_type", "authorization_code"),
            ("client_id", "growth-chart"),
            ("code", &code),
            ("redirect_uri", CB),
            ("code_verifier", VERIFIER),
        ],
    );
    assert_eq!(r.status(), 200, "{}", r.text());
    r.json()
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

#[test]
fn fhir_base_url_is_optional_and_may_be_a_path() {
    let t = TestApp::new();
    // Issue 13: Aidbox's SMART examples have no fhir-base-url (then: the issuer's FHIR base).
    let r = t.admin_put(
        "/Client/x",
        json!({"type": "smart-app", "grant_types": ["authorization_code"]}),
    );
    assert_eq!(r.status(), 201, "{}", r.text());
    let r = t.admin_put(
        "/Client/y",
        json!({"type": "smart-app", "grant_types": ["code"], "fhir-base-url": "/fhir"}),
    );
    assert_eq!(r.status(), 201, "{}", r.text());
    for bad in ["fhir", "//evil.example/fhir", "/a/../b", "ftp://x/fhir"] {
        let r = t.admin_put(
            "/Client/z",
            json!({"type": "smart-app", "grant_types": ["code"], "fhir-base-url": bad}),
        );
        assert_eq!(r.status(), 422, "{bad}");
        assert_eq!(r.json()["field"], "fhir-base-url");
    }
}

#[test]
fn aud_and_pkce_are_required() {
    let t = setup();
    let mut b = Browser::new(&t);
    for (q, why) in [
        (query(&[("aud", "")]), "aud is required"),
        (
            query(&[("aud", "https://evil.example/fhir")]),
            "aud must be",
        ),
        (
            query(&[("code_challenge", ""), ("code_challenge_method", "")]),
            "PKCE",
        ),
    ] {
        let l = redirect(b.get(&format!("/auth/authorize?{q}")));
        let p = params(&l);
        assert_eq!(p["error"], "invalid_request", "{l}");
        assert!(p["error_description"].contains(why), "{l}");
    }
    // A trailing slash on aud is the same server.
    let l = redirect(b.get(&format!(
        "/auth/authorize?{}",
        query(&[("aud", &format!("{FHIR}/"))])
    )));
    assert!(l.starts_with("/auth/ui/login.html"), "{l}");
}

#[test]
fn ehr_launch_context_reaches_the_token_response_and_claims() {
    let t = setup();
    let r = t.call(
        TestApp::req("POST", "/auth/launch")
            .header("authorization", TestApp::root())
            .header("content-type", "application/json")
            .body(br#"{"client_id":"growth-chart","patient":"pt-1","encounter":"enc-9"}"#.to_vec())
            .unwrap(),
    );
    assert_eq!(r.status(), 201, "{}", r.text());
    let launch = r.json()["launch"].as_str().unwrap().to_string();
    let body = tokens(&t, &query(&[("launch", &launch)]), "dr-smith");
    assert_eq!(body["patient"], "pt-1");
    assert_eq!(body["encounter"], "enc-9");
    assert_eq!(body["scope"], "launch openid fhirUser patient/*.rs");
    let at = claims(body["access_token"].as_str().unwrap());
    assert_eq!(at["patient"], "pt-1");
    let id = claims(body["id_token"].as_str().unwrap());
    assert_eq!(id["fhirUser"], format!("{FHIR}/Practitioner/pr-1"));
    assert_eq!(id["iss"], ISSUER);
}

#[test]
fn unknown_launch_and_unauthorised_launch_creation_are_refused() {
    let t = setup();
    let mut b = Browser::new(&t);
    let l = redirect(b.get(&format!("/auth/authorize?{}", query(&[("launch", "nope")]))));
    assert_eq!(params(&l)["error"], "invalid_request");
    let r = t.call(
        TestApp::req("POST", "/auth/launch")
            .header("content-type", "application/json")
            .body(br#"{"patient":"pt-1"}"#.to_vec())
            .unwrap(),
    );
    assert_eq!(r.status(), 401);
    let r = t.call(
        TestApp::req("POST", "/auth/launch")
            .header("authorization", TestApp::root())
            .header("content-type", "application/json")
            .body(br#"{"client_id":"growth-chart","patient":"../x"}"#.to_vec())
            .unwrap(),
    );
    assert_eq!(r.status(), 422);
}

#[test]
fn standalone_launch_of_a_patient_user() {
    let t = setup();
    let body = tokens(
        &t,
        &query(&[("scope", "launch/patient openid fhirUser patient/*.rs")]),
        "anna",
    );
    assert_eq!(body["patient"], "pt-2");
    assert_eq!(
        claims(body["id_token"].as_str().unwrap())["fhirUser"],
        format!("{FHIR}/Patient/pt-2")
    );
}

#[test]
fn smart_configuration() {
    let t = setup();
    let r = t.call(
        TestApp::req("GET", "/.well-known/smart-configuration")
            .body(vec![])
            .unwrap(),
    );
    assert_eq!(r.status(), 200);
    let c = r.json();
    assert_eq!(
        c["authorization_endpoint"],
        format!("{ISSUER}/auth/authorize")
    );
    assert_eq!(c["code_challenge_methods_supported"], json!(["S256"]));
    let caps: Vec<&str> = c["capabilities"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(caps.contains(&"launch-ehr") && caps.contains(&"context-ehr-patient"));
}

#[test]
fn standalone_launch_offers_the_patients_the_user_may_see() {
    let t = setup();
    t.admin_put("/AccessPolicy/dr-smith-patients", json!({"engine": "matcho", "matcho": {"request-method": "get", "uri": "#^/Patient/pt-[12]$"}, "link": [{"id": "dr-smith", "resourceType": "User"}]}));
    let q = query(&[("scope", "launch/patient openid patient/*.rs")]);
    let mut b = Browser::new(&t);
    redirect(b.get(&format!("/auth/authorize?{q}")));
    let to_picker = redirect(b.login(&q, "dr-smith", "pass123"));
    assert_eq!(to_picker, format!("/auth/ui/patient.html?{q}"));
    let ctx = b.context(&q);
    assert_eq!(
        ctx["patients"],
        json!([{"id": "pt-1", "name": "Peter James Chalmers"}, {"id": "pt-2", "name": "Anna Windsor"}])
    );
    let csrf = ctx["csrf"].as_str().unwrap().to_string();
    // A patient the user may not see is refused.
    let r = redirect(b.post(
        "/auth/patient",
        &[("patient", "pt-3"), ("csrf", &csrf), ("query", &q)],
    ));
    assert!(r.ends_with("#error=patient"), "{r}");
    let cb = redirect(b.post(
        "/auth/patient",
        &[("patient", "pt-2"), ("csrf", &csrf), ("query", &q)],
    ));
    let code = params(&cb)["code"].clone();
    let r = t.token(
        None,
        &[
            ("grant_type", "authorization_code"),
            ("client_id", "growth-chart"),
            ("code", &code),
            ("redirect_uri", CB),
            ("code_verifier", VERIFIER),
        ],
    );
    assert_eq!(r.json()["patient"], "pt-2", "{}", r.text());
    // A pick serves one launch: the next launch asks again.
    let again = redirect(b.get(&format!("/auth/authorize?{q}")));
    assert_eq!(again, format!("/auth/ui/patient.html?{q}"));
}

/// The picker asks the authorizer's own question: a policy linked to `Operation/FhirRead` (Aidbox's
/// best practice, accesspolicy-best-practices.md) counts, as it does on the API.
#[test]
fn the_patient_picker_honours_operation_linked_policies() {
    let t = setup();
    t.admin_put(
        "/AccessPolicy/dr-smith-read",
        json!({"engine": "matcho",
               "matcho": {"user": {"id": "dr-smith"}, "params": {"resource/id": "pt-1"}},
               "link": [{"reference": "Operation/FhirRead"}]}),
    );
    let q = query(&[("scope", "launch/patient openid patient/*.rs")]);
    let mut b = Browser::new(&t);
    redirect(b.get(&format!("/auth/authorize?{q}")));
    let to_picker = redirect(b.login(&q, "dr-smith", "pass123"));
    assert_eq!(to_picker, format!("/auth/ui/patient.html?{q}"));
    assert_eq!(
        b.context(&q)["patients"],
        json!([{"id": "pt-1", "name": "Peter James Chalmers"}])
    );
}

/// `POST /auth/launch` as root; the launch id.
fn launch(t: &TestApp, body: Value) -> String {
    let r = t.call(
        TestApp::req("POST", "/auth/launch")
            .header("authorization", TestApp::root())
            .header("content-type", "application/json")
            .body(body.to_string().into_bytes())
            .unwrap(),
    );
    assert_eq!(r.status(), 201, "{}", r.text());
    r.json()["launch"].as_str().unwrap().to_string()
}

/// The error redirect (or the login page) of a signed-in user's authorization request.
fn authorize_as(t: &TestApp, q: &str, user: &str) -> std::collections::HashMap<String, String> {
    let mut b = Browser::new(t);
    let first = redirect(b.get(&format!("/auth/authorize?{q}")));
    if !first.starts_with("/auth/ui/login.html") {
        return params(&first);
    }
    params(&redirect(b.login(q, user, "pass123")))
}

#[test]
fn client_without_registered_scopes_gets_no_clinical_scope() {
    let t = setup();
    t.admin_put("/Client/bare", json!({
        "type": "smart-app", "fhir-base-url": FHIR, "first_party": true,
        "grant_types": ["authorization_code"], "auth": {"authorization_code": {"redirect_uri": CB}}}));
    let q = query(&[("client_id", "bare")]);
    let p = authorize_as(&t, &q, "dr-smith");
    assert_eq!(p["error"], "invalid_scope", "{p:?}");
    assert!(p["error_description"].contains("patient/*.rs"), "{p:?}");
    // OpenID and launch scopes stay grantable without registration.
    let q = query(&[
        ("client_id", "bare"),
        ("scope", "launch/patient openid fhirUser"),
    ]);
    assert!(authorize_as(&t, &q, "anna").contains_key("code"));
}

#[test]
fn registered_scope_covers_narrower_requests_only() {
    let t = setup();
    for (scope, ok) in [
        ("openid patient/Observation.rs", true),
        ("openid patient/Observation.read", true),
        ("openid patient/Observation.rs?category=laboratory", true),
        ("openid patient/*.cruds", false),
        ("openid patient/Observation.write", false),
        ("openid system/*.rs", false),
        ("openid email", false),
    ] {
        let p = authorize_as(&t, &query(&[("scope", scope)]), "anna");
        assert_eq!(p.contains_key("code"), ok, "{scope}: {p:?}");
        if !ok {
            assert_eq!(p["error"], "invalid_scope", "{scope}");
        }
    }
}

#[test]
fn patient_user_cannot_get_user_scopes() {
    let t = setup();
    let q = query(&[("scope", "launch/patient openid user/*.rs")]);
    let p = authorize_as(&t, &q, "anna");
    assert_eq!(p["error"], "invalid_scope", "{p:?}");
    assert!(p["error_description"].contains("user/"), "{p:?}");
    // A practitioner may; a user without fhirUser may not.
    t.admin_put("/User/nobody", json!({"password": "pass123"}));
    let q = query(&[("scope", "openid user/*.rs")]);
    assert!(authorize_as(&t, &q, "dr-smith").contains_key("code"));
    assert_eq!(authorize_as(&t, &q, "nobody")["error"], "invalid_scope");
    // Aidbox's {"resourceType", "id"} form of fhirUser is read too.
    t.admin_put(
        "/User/pat2",
        json!({"password": "pass123", "fhirUser": {"resourceType": "Patient", "id": "pt-3"}}),
    );
    assert_eq!(authorize_as(&t, &q, "pat2")["error"], "invalid_scope");
}

#[test]
fn user_scope_types_are_configurable() {
    let t = TestApp::with_config(|c| c.user_scope_types = vec!["RelatedPerson".into()]);
    let r = t.admin_put("/Client/growth-chart", json!({
        "type": "smart-app", "fhir-base-url": FHIR, "first_party": true, "scope": ["openid", "user/*.rs"],
        "grant_types": ["authorization_code"], "auth": {"authorization_code": {"redirect_uri": CB}}}));
    assert_eq!(r.status(), 201);
    t.admin_put(
        "/User/dr-smith",
        json!({"password": "pass123", "fhirUser": "Practitioner/pr-1"}),
    );
    t.admin_put(
        "/User/mum",
        json!({"password": "pass123", "fhirUser": "RelatedPerson/rp-1"}),
    );
    let q = query(&[("scope", "openid user/*.rs")]);
    assert_eq!(authorize_as(&t, &q, "dr-smith")["error"], "invalid_scope");
    assert!(authorize_as(&t, &q, "mum").contains_key("code"));
}

#[test]
fn patient_user_context_is_their_own_patient() {
    let t = setup();
    // An EHR launch naming another patient is refused for a patient user.
    let id = launch(&t, json!({"client_id": "growth-chart", "patient": "pt-1"}));
    let p = authorize_as(&t, &query(&[("launch", &id)]), "anna");
    assert_eq!(p["error"], "access_denied", "{p:?}");
    // patient/ scopes without a launch scope still carry the patient user's own patient.
    let body = tokens(&t, &query(&[("scope", "openid patient/*.rs")]), "anna");
    assert_eq!(
        claims(body["access_token"].as_str().unwrap())["patient"],
        "pt-2"
    );
}

#[test]
fn launch_is_bound_to_its_client_single_use_and_needs_the_launch_scope() {
    let t = setup();
    t.admin_put("/Client/other-app", json!({
        "type": "smart-app", "fhir-base-url": FHIR, "first_party": true,
        "scope": ["launch", "openid", "patient/*.rs"],
        "grant_types": ["authorization_code"], "auth": {"authorization_code": {"redirect_uri": CB}}}));
    let id = launch(&t, json!({"client_id": "growth-chart", "patient": "pt-1"}));
    // Another app presenting the launch gets nothing.
    let p = authorize_as(
        &t,
        &query(&[
            ("client_id", "other-app"),
            ("scope", "launch openid patient/*.rs"),
            ("launch", &id),
        ]),
        "dr-smith",
    );
    assert_eq!(p["error"], "invalid_request", "{p:?}");
    // Without the launch scope.
    let p = authorize_as(
        &t,
        &query(&[("scope", "openid patient/*.rs"), ("launch", &id)]),
        "dr-smith",
    );
    assert_eq!(p["error"], "invalid_scope", "{p:?}");
    // Its own app, once.
    let body = tokens(&t, &query(&[("launch", &id)]), "dr-smith");
    assert_eq!(body["patient"], "pt-1");
    let p = authorize_as(&t, &query(&[("launch", &id)]), "dr-smith");
    assert_eq!(p["error"], "invalid_request", "{p:?}");
    // A launch must name its client, a smart-app.
    for (body, field) in [
        (json!({"patient": "pt-1"}), "client_id"),
        (json!({"client_id": "nope", "patient": "pt-1"}), "client_id"),
        (
            json!({"client_id": "growth-chart", "patient": "pt-1", "user": "x"}),
            "user",
        ),
    ] {
        let r = t.call(
            TestApp::req("POST", "/auth/launch")
                .header("authorization", TestApp::root())
                .header("content-type", "application/json")
                .body(body.to_string().into_bytes())
                .unwrap(),
        );
        assert_eq!(r.status(), 422, "{body}: {}", r.text());
        assert_eq!(r.json()["field"], field);
    }
}

#[test]
fn client_scope_lists_are_validated() {
    let t = TestApp::new();
    for (body, field) in [
        (json!({"scope": "openid patient/*.rs"}), "scope"),
        (json!({"scope": ["openid patient/*.rs"]}), "scope.0"),
        (json!({"scope": ["patient/*.rcs"]}), "scope.0"),
        (
            json!({"allowed-scopes": [{"id": "s", "resourceType": "Client"}]}),
            "allowed-scopes.0",
        ),
        (
            json!({"allowed-scopes": [{"id": "s", "resourceType": "Scope", "x": 1}]}),
            "allowed-scopes.0",
        ),
        (
            json!({"allowed-scopes": [{"id": "bad id", "resourceType": "Scope"}]}),
            "allowed-scopes.0",
        ),
        (json!({"allowed-scopes": [3]}), "allowed-scopes.0"),
    ] {
        let r = t.admin_put("/Client/x", body.clone());
        assert_eq!(r.status(), 422, "{body}: {}", r.text());
        assert_eq!(r.json()["field"], field, "{body}");
    }
}

#[test]
fn smart_user_scope_types_var() {
    use edge_authorizer::config::Config;
    let read = |v: Option<&str>| {
        Config::from_vars(|n| (n == "SMART_USER_SCOPE_TYPES").then(|| v.map(str::to_string))?)
    };
    assert_eq!(
        read(None).unwrap().user_scope_types,
        [
            "Practitioner",
            "PractitionerRole",
            "RelatedPerson",
            "Person"
        ]
    );
    assert_eq!(
        read(Some(" Practitioner , Device "))
            .unwrap()
            .user_scope_types,
        ["Practitioner", "Device"]
    );
    assert!(read(Some("Practitioner,Patient")).is_err());
    assert!(read(Some("practitioner")).is_err());
}

#[test]
fn allowed_scopes_may_refer_to_scope_resources() {
    let t = TestApp::new();
    let cc = |client: &str, scope: &str| {
        t.token(
            Some(&TestApp::basic(client, "s3cret")),
            &[("grant_type", "client_credentials"), ("scope", scope)],
        )
    };
    let put = |path: &str, body: Value| {
        let r = t.admin_put(path, body);
        assert!(matches!(r.status(), 200 | 201), "{path}: {}", r.text());
    };
    put(
        "/Scope/sys-obs",
        json!({"scope": "system/Observation.rs", "title": "Observations"}),
    );
    put(
        "/Client/svc",
        json!({
        "secret": "s3cret", "grant_types": ["client_credentials"],
        "allowed-scopes": [{"id": "sys-obs", "resourceType": "Scope"},
                           {"reference": "Scope/missing"}]}),
    );
    let r = cc("svc", "system/Observation.rs");
    assert_eq!(r.status(), 200, "{}", r.text());
    assert_eq!(r.json()["scope"], "system/Observation.rs");
    assert_eq!(cc("svc", "system/Observation.read").status(), 200);
    assert_eq!(
        cc("svc", "system/Patient.rs").json()["error"],
        "invalid_scope"
    );
    // Only references to missing Scopes: nothing (not even what an unregistered client gets).
    put(
        "/Client/ghost",
        json!({
        "secret": "s3cret", "grant_types": ["client_credentials"],
        "allowed-scopes": [{"id": "missing", "resourceType": "Scope"}]}),
    );
    assert_eq!(
        cc("ghost", "system/Observation.rs").json()["error"],
        "invalid_scope"
    );
    // Strings and references together, in either list.
    put(
        "/Client/mixed",
        json!({
        "secret": "s3cret", "grant_types": ["client_credentials"],
        "scope": ["system/Patient.rs", {"id": "sys-obs", "resourceType": "Scope"}]}),
    );
    assert_eq!(
        cc("mixed", "system/Patient.rs system/Observation.rs").status(),
        200
    );
    // The Scope's value is read at every grant: changed or deleted, it no longer grants.
    put(
        "/Scope/sys-obs",
        json!({"scope": "system/Encounter.rs", "title": "Encounters"}),
    );
    assert_eq!(
        cc("svc", "system/Observation.rs").json()["error"],
        "invalid_scope"
    );
    assert_eq!(cc("svc", "system/Encounter.rs").status(), 200);
    let r = t.call(
        TestApp::req("DELETE", "/Scope/sys-obs")
            .header("authorization", TestApp::root())
            .body(Vec::new())
            .unwrap(),
    );
    assert_eq!(r.status(), 200);
    assert_eq!(
        cc("svc", "system/Encounter.rs").json()["error"],
        "invalid_scope"
    );
}
