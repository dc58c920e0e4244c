//! The protected API as an OAuth resource server (issue 17): RFC 9728 metadata, the
//! `resource_metadata` challenge parameter, RFC 6750 `insufficient_scope`, RFC 8707 resources
//! at the token endpoint and the authorizer's check of a token's resource. The e2e twin is
//! tests/e2e/resource-server.test.mjs.

use edge_authorizer::context::Outcome;
use edge_authorizer::testing::{TestApp, TestResponse, ISSUER};
use serde_json::json;

fn respond(o: Outcome) -> TestResponse {
    match o {
        Outcome::Respond(r) => TestResponse(r),
        Outcome::Forward(f) => panic!("unexpected forward to {}", f.uri()),
        Outcome::Asset { path, .. } => panic!("unexpected asset {path}"),
    }
}

fn app() -> TestApp {
    let t = TestApp::with_config(|c| {
        c.protected_resources =
            edge_authorizer::resource::parse_setting(Some("/mcp".into())).expect("valid setting")
    });
    t.admin_put(
        "/Client/bot",
        json!({"secret": "b1", "grant_types": ["client_credentials"]}),
    );
    t.admin_put(
        "/AccessPolicy/bot",
        json!({"engine": "allow", "link": [{"id": "bot", "resourceType": "Client"}]}),
    );
    t.admin_put(
        "/Client/svc",
        json!({"secret": "s1", "grant_types": ["client_credentials"], "scope": ["system/Patient.rs"]}),
    );
    t.admin_put(
        "/AccessPolicy/svc",
        json!({"engine": "smart-on-fhir", "link": [{"id": "svc", "resourceType": "Client"}]}),
    );
    t
}

fn token(t: &TestApp, id: &str, secret: &str, extra: &[(&str, &str)]) -> TestResponse {
    let mut form = vec![("grant_type", "client_credentials")];
    form.extend_from_slice(extra);
    t.token(Some(&TestApp::basic(id, secret)), &form)
}

fn access(r: &TestResponse) -> String {
    assert_eq!(r.status(), 200, "{}", r.text());
    r.json()["access_token"].as_str().unwrap().to_string()
}

#[test]
fn metadata_documents_root_and_suffixed() {
    let t = app();
    let root = t.call(
        TestApp::req("GET", "/.well-known/oauth-protected-resource")
            .body(vec![])
            .unwrap(),
    );
    assert_eq!(root.status(), 200);
    assert_eq!(root.json()["resource"], ISSUER);
    assert_eq!(root.json()["authorization_servers"], json!([ISSUER]));
    assert_eq!(root.json()["bearer_methods_supported"], json!(["header"]));
    let mcp = t.call(
        TestApp::req("GET", "/.well-known/oauth-protected-resource/mcp")
            .body(vec![])
            .unwrap(),
    );
    assert_eq!(mcp.json()["resource"], format!("{ISSUER}/mcp"));
    let none = t.call(
        TestApp::req("GET", "/.well-known/oauth-protected-resource/fhir")
            .body(vec![])
            .unwrap(),
    );
    assert_eq!(none.status(), 404);
    assert_eq!(none.json()["error"], "not_found");
}

#[test]
fn challenges_name_the_metadata_of_the_path() {
    let t = app();
    let r = respond(t.send(TestApp::req("GET", "/mcp/tools").body(vec![]).unwrap()));
    assert_eq!(r.status(), 401);
    assert_eq!(
        r.header("www-authenticate"),
        Some(
            format!(
                "Bearer realm=\"edge-authorizer\", resource_metadata=\"{ISSUER}/.well-known/oauth-protected-resource/mcp\""
            )
            .as_str()
        )
    );
}

#[test]
fn insufficient_scope_names_the_scope() {
    let t = app();
    let tok = access(&token(&t, "svc", "s1", &[("scope", "system/Patient.rs")]));
    let r = respond(t.get_with("/Observation/o1", &format!("Bearer {tok}")));
    assert_eq!(r.status(), 403, "{}", r.text());
    assert_eq!(r.json()["error"], "insufficient_scope");
    assert_eq!(r.json()["resourceType"], "OperationOutcome");
    let h = r.header("www-authenticate").unwrap();
    assert!(
        h.starts_with("Bearer realm=\"edge-authorizer\", error=\"insufficient_scope\", scope=\"system/Observation.r\", resource_metadata="),
        "{h}"
    );
}

#[test]
fn resources_at_the_token_endpoint_and_in_the_authorizer() {
    let t = app();
    // Canonicalised; the token is good under /mcp only.
    let r = token(
        &t,
        "bot",
        "b1",
        &[("resource", "HTTPS://AUTH.example.test:443/mcp/")],
    );
    let mcp = access(&r);
    let bearer = format!("Bearer {mcp}");
    // Authorized: the demo origin answers (404: it has no /mcp), not the authorizer's 401.
    let here = respond(t.get_with("/mcp", &bearer));
    assert!(![401, 403].contains(&here.status()), "{}", here.text());
    let other = respond(t.get_with("/Patient", &bearer));
    assert_eq!(other.status(), 401);
    assert!(other
        .header("www-authenticate")
        .unwrap()
        .contains("error=\"invalid_token\""));
    // The default audience still passes everywhere.
    let plain = format!("Bearer {}", access(&token(&t, "bot", "b1", &[])));
    assert_eq!(respond(t.get_with("/Patient", &plain)).status(), 200);
    assert!(![401, 403].contains(&respond(t.get_with("/mcp", &plain)).status()));
    // Hostile values.
    for bad in [
        "https://auth.example.test/mcp#x",
        "/mcp",
        "javascript:alert(1)",
        "https://evil.example/mcp",
    ] {
        let r = token(&t, "bot", "b1", &[("resource", bad)]);
        assert_eq!(r.status(), 400, "{bad}");
        assert_eq!(r.json()["error"], "invalid_target", "{bad}");
    }
}
