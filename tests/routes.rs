//! docs/reference.md "Endpoints" lists exactly the routes of `ROUTES` (src/app.rs), in its
//! order, with the same methods, path and caller; a conditional route names its setting.
//! Also a few requests through `App::handle` that pin what the table decides.

use edge_authorizer::app::{Route, When, ROUTES};
use edge_authorizer::testing::TestApp;

/// One row of the doc's table: methods, path, who, what it does.
#[derive(Debug, Clone, PartialEq)]
struct Row {
    methods: String,
    path: String,
    who: String,
    does: String,
}

impl Row {
    fn key(&self) -> String {
        format!("{} {} ({})", self.methods, self.path, self.who)
    }
}

fn of_route(r: &Route) -> Row {
    Row {
        methods: if r.methods == "*" {
            "any".into()
        } else {
            r.methods.into()
        },
        path: r.path.into(),
        who: format!("{:?}", r.who),
        does: String::new(),
    }
}

/// The rows of the first table under `## Endpoints` in `markdown`.
fn doc_rows(markdown: &str) -> Vec<Row> {
    let section = markdown
        .split("\n## Endpoints")
        .nth(1)
        .expect("docs/reference.md has no '## Endpoints' section");
    let section = section.split("\n## ").next().unwrap_or(section);
    let mut rows = Vec::new();
    for line in section
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with('|'))
    {
        let cells: Vec<&str> = line.trim_matches('|').split('|').map(str::trim).collect();
        if cells.len() != 4 {
            panic!("docs/reference.md Endpoints: a row needs 4 cells: {line}");
        }
        if cells[0] == "Methods" || cells[0].starts_with("---") {
            continue;
        }
        rows.push(Row {
            methods: cells[0].into(),
            path: cells[1].trim_matches('`').into(),
            who: cells[2].into(),
            does: cells[3].into(),
        });
    }
    rows
}

/// What differs between the table (`code`) and the doc (`doc`), both ways; empty when equal.
fn differences(code: &[Route], doc: &[Row]) -> Vec<String> {
    let code_rows: Vec<Row> = code.iter().map(of_route).collect();
    let code_keys: Vec<String> = code_rows.iter().map(Row::key).collect();
    let doc_keys: Vec<String> = doc.iter().map(Row::key).collect();
    let mut out = Vec::new();
    for k in &code_keys {
        if !doc_keys.contains(k) {
            out.push(format!("in ROUTES, missing from docs/reference.md: {k}"));
        }
    }
    for k in &doc_keys {
        if !code_keys.contains(k) {
            out.push(format!("in docs/reference.md, not in ROUTES: {k}"));
        }
    }
    if out.is_empty() && code_keys != doc_keys {
        out.push(format!(
            "same routes, another order:\n  ROUTES: {code_keys:#?}\n  docs:   {doc_keys:#?}"
        ));
    }
    for (r, d) in code.iter().zip(doc) {
        if let Some(setting) = r.when.setting() {
            if !d.does.contains(setting) {
                out.push(format!(
                    "docs/reference.md: {} must name its condition `{setting}`",
                    d.key()
                ));
            }
        }
        if d.does.is_empty() {
            out.push(format!(
                "docs/reference.md: {} says nothing it does",
                d.key()
            ));
        }
    }
    out
}

fn reference() -> String {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/reference.md");
    std::fs::read_to_string(p).expect("docs/reference.md")
}

#[test]
fn the_reference_lists_exactly_the_routes() {
    let doc = doc_rows(&reference());
    let diff = differences(ROUTES, &doc);
    assert!(
        diff.is_empty(),
        "docs/reference.md \"Endpoints\" and ROUTES in src/app.rs differ:\n{}",
        diff.join("\n")
    );
}

#[test]
fn a_route_missing_on_either_side_is_reported() {
    let doc = doc_rows(&reference());
    // A route added to the table but not the doc.
    let mut more = ROUTES.to_vec();
    more.insert(
        3,
        Route {
            path: "/auth/new-endpoint",
            ..ROUTES[3]
        },
    );
    let diff = differences(&more, &doc);
    assert!(
        diff.iter()
            .any(|d| d.contains("missing from docs") && d.contains("/auth/new-endpoint")),
        "{diff:?}"
    );
    // A row in the doc with no route.
    let mut extra = doc.clone();
    extra.push(Row {
        methods: "POST".into(),
        path: "/auth/gone".into(),
        who: "Client".into(),
        does: "x".into(),
    });
    let diff = differences(ROUTES, &extra);
    assert!(
        diff.iter()
            .any(|d| d.contains("not in ROUTES") && d.contains("/auth/gone")),
        "{diff:?}"
    );
    // Another caller, another method list, another order.
    let mut who = doc.clone();
    who[0].who = "Admin".into();
    assert!(!differences(ROUTES, &who).is_empty());
    let mut methods = doc.clone();
    methods[0].methods = "GET".into();
    assert!(!differences(ROUTES, &methods).is_empty());
    let mut order = doc.clone();
    order.swap(0, 1);
    assert!(differences(ROUTES, &order)
        .iter()
        .any(|d| d.contains("another order")));
    // A conditional route whose row does not name its setting.
    let mut silent = doc.clone();
    let i = ROUTES
        .iter()
        .position(|r| r.when == When::DynamicRegistration)
        .unwrap();
    silent[i].does = "registration".into();
    assert!(differences(ROUTES, &silent)
        .iter()
        .any(|d| d.contains("DYNAMIC_REGISTRATION=on")));
}

#[test]
fn the_table_decides_methods_and_fallbacks() {
    let t = TestApp::new();
    // A wrong method: 405 with the route's Allow.
    let r = t.call(TestApp::req("GET", "/auth/token").body(Vec::new()).unwrap());
    assert_eq!(r.status(), 405);
    assert_eq!(r.header("allow"), Some("POST"));
    let r = t.call(
        TestApp::req("POST", "/.well-known/jwks.json")
            .body(Vec::new())
            .unwrap(),
    );
    assert_eq!(r.status(), 405);
    assert_eq!(r.header("allow"), Some("GET, HEAD"));
    // Unknown under a prefix of ours: 404 (the discovery prefix checks the method first).
    let r = t.call(
        TestApp::req("GET", "/.well-known/nothing")
            .body(Vec::new())
            .unwrap(),
    );
    assert_eq!(r.status(), 404);
    let r = t.call(
        TestApp::req("POST", "/.well-known/nothing")
            .body(Vec::new())
            .unwrap(),
    );
    assert_eq!(r.status(), 405);
    let r = t.call(
        TestApp::req("DELETE", "/auth/nothing")
            .body(Vec::new())
            .unwrap(),
    );
    assert_eq!(r.status(), 404);
    // Without DYNAMIC_REGISTRATION the register endpoint is a 404, like any unknown one.
    let r = t.call(
        TestApp::req("POST", "/auth/register")
            .body(Vec::new())
            .unwrap(),
    );
    assert_eq!(r.status(), 404);
    // The admin API's Allow depends on the resource type and the id.
    for (method, path, allow) in [
        ("PUT", "/Client", "GET, POST"),
        ("POST", "/Client/x", "GET, PUT, PATCH, DELETE"),
        ("POST", "/Grant", "GET"),
        ("PUT", "/Grant/x", "GET, DELETE"),
        ("POST", "/Session/x", "GET, DELETE"),
    ] {
        let r = t.call(
            TestApp::req(method, path)
                .header("authorization", TestApp::root())
                .body(Vec::new())
                .unwrap(),
        );
        assert_eq!(r.status(), 405, "{method} {path}");
        assert_eq!(r.header("allow"), Some(allow), "{method} {path}");
        // The admin API and /Session check the caller first: refused, whatever the method.
        let r = t.call(TestApp::req(method, path).body(Vec::new()).unwrap());
        assert_eq!(r.status(), 401, "{method} {path} without credentials");
        assert_eq!(
            r.header("allow"),
            None,
            "{method} {path} without credentials"
        );
    }
    // Other admin endpoints check the method first.
    let r = t.call(
        TestApp::req("GET", "/auth/test-policy")
            .body(Vec::new())
            .unwrap(),
    );
    assert_eq!(r.status(), 405);
    assert_eq!(r.header("allow"), Some("POST"));
    let caller_first: Vec<&str> = ROUTES
        .iter()
        .filter(|r| r.caller_first)
        .map(|r| r.path)
        .collect();
    assert_eq!(
        caller_first,
        [
            "/Session[/]",
            "/Session/{id}",
            "[base]/Grant[/]",
            "[base]/Grant/{id}",
            "[base]/{ResourceType}[/]",
            "[base]/{ResourceType}/{id}"
        ]
    );
}
