//! SMART on FHIR scopes: the grammar (`edge_authorizer::smart`), the FHIR REST request →
//! interaction mapping, and the `smart-on-fhir` AccessPolicy engine evaluated through
//! `CompiledPolicy` on policy requests shaped like the authorizer's.

use edge_authorizer::policy::CompiledPolicy;
use edge_authorizer::smart::{
    self, classify, ClinicalScope, Interaction, Level, Permissions, Scope, Syntax,
};
use serde_json::{json, Map, Value};

/// Who the token was issued to.
#[derive(Clone, Copy)]
enum Who {
    /// A user (`sub_kind: "user"`, `user` present).
    U,
    /// A backend client (`sub_kind: "client"`, no `user`).
    C,
}
use Who::{C, U};

/// A policy request as `authz::policy_request` builds it, for the request line
/// `"METHOD /path?query"`.
fn request(scope: Option<&str>, patient: &str, who: Who, line: &str, body: &str) -> Value {
    let (method, target) = line.split_once(' ').expect("request line");
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let mut params = Map::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        params.insert(k.to_owned(), json!(v));
    }
    // Route params as the authorizer adds them; the engine must not take them for a query.
    let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    if segs[0].starts_with(|c: char| c.is_ascii_uppercase()) {
        params.insert("resource/type".into(), json!(segs[0]));
        if let Some(id) = segs.get(1).filter(|s| !s.starts_with(['$', '_'])) {
            params.insert("resource/id".into(), json!(id));
        }
    }
    let mut jwt = json!({"sub": "s-1", "iss": "https://issuer"});
    if let Some(s) = scope {
        jwt["scope"] = json!(s);
    }
    if !patient.is_empty() {
        jwt["patient"] = json!(patient);
    }
    let user = match who {
        U => {
            jwt["sub_kind"] = json!("user");
            json!({"id": "s-1", "resourceType": "User"})
        }
        C => {
            jwt["sub_kind"] = json!("client");
            Value::Null
        }
    };
    let body: Value = if body.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(body).expect("test body is JSON")
    };
    json!({
        "request-method": method.to_ascii_lowercase(),
        "scheme": "https",
        "uri": path,
        "query-string": query,
        "params": params,
        "headers": {},
        "body": body,
        "remote-addr": "",
        "client": {"id": "app", "resourceType": "Client"},
        "user": user,
        "jwt": jwt,
    })
}

fn engine() -> CompiledPolicy {
    CompiledPolicy::compile(&json!({"engine": "smart-on-fhir"})).expect("compiles")
}

const OBS_123: &str = r#"{"resourceType":"Observation","subject":{"reference":"Patient/123"}}"#;
const OBS_456: &str = r#"{"resourceType":"Observation","subject":{"reference":"Patient/456"}}"#;
const ALLERGY_123: &str =
    r#"{"resourceType":"AllergyIntolerance","patient":{"reference":"Patient/123"}}"#;
const PATIENT_123: &str = r#"{"resourceType":"Patient","id":"123"}"#;

/// (scope, patient in context ("" = none), who, request line, body ("" = null), allowed?)
type Case = (
    &'static str,
    &'static str,
    Who,
    &'static str,
    &'static str,
    bool,
);

#[rustfmt::skip]
const CASES: &[Case] = &[
    // --- SMART v1, patient scopes: search inside and outside the compartment.
    ("patient/Observation.read", "123", U, "GET /Observation?patient=123", "", true),
    ("patient/Observation.read", "123", U, "GET /Observation?patient=Patient/123", "", true),
    ("patient/Observation.read", "123", U, "GET /Observation?subject=Patient/123", "", true),
    ("patient/Observation.read", "123", U, "GET /Observation?subject:Patient=123", "", true),
    ("patient/Observation.read", "123", U, "HEAD /Observation?patient=123", "", true),
    ("patient/Observation.read", "123", U, "GET /Observation?patient=456", "", false),
    ("patient/Observation.read", "123", U, "GET /Observation?patient=123,456", "", false),
    ("patient/Observation.read", "123", U, "GET /Observation?subject=123", "", false),
    ("patient/Observation.read", "123", U, "GET /Observation", "", false),
    ("patient/Observation.read", "123", U, "GET /Observation?code=1234-5", "", false),
    ("patient/Observation.read", "123", U, "GET /Condition?patient=123", "", false),
    // read / vread / history of a non-Patient type: only with the patient parameter.
    ("patient/Observation.read", "123", U, "GET /Observation/o1", "", false),
    ("patient/Observation.read", "123", U, "GET /Observation/o1?patient=123", "", true),
    ("patient/Observation.read", "123", U, "GET /Observation/o1/_history/2?patient=123", "", true),
    ("patient/Observation.read", "123", U, "GET /Observation/o1/_history?patient=123", "", true),
    ("patient/Observation.read", "123", U, "GET /Observation/o1/_history/2", "", false),
    ("patient/Observation.read", "123", U, "GET /Observation/_history?patient=123", "", false),
    // v1 read grants neither writes nor creates; write grants no search.
    ("patient/Observation.read", "123", U, "POST /Observation", OBS_123, false),
    ("patient/Observation.write", "123", U, "GET /Observation?patient=123", "", false),
    ("patient/Observation.write", "123", U, "POST /Observation", OBS_123, true),
    ("patient/Observation.write", "123", U, "POST /Observation", OBS_456, false),
    ("patient/Observation.write", "123", U, "POST /Observation", "", false),
    ("patient/Observation.write", "123", U, "PUT /Observation/o1", OBS_123, true),
    ("patient/Observation.write", "123", U, "PUT /Observation/o1", OBS_456, false),
    ("patient/Observation.write", "123", U, "PUT /Observation?identifier=x", OBS_123, true),
    ("patient/Observation.write", "123", U, "PATCH /Observation/o1", "[]", false),
    ("patient/Observation.write", "123", U, "DELETE /Observation/o1", "", false),
    ("patient/Observation.write", "123", U, "DELETE /Observation?patient=123", "", true),
    ("patient/Observation.write", "123", U, "DELETE /Observation?patient=456", "", false),
    ("patient/AllergyIntolerance.write", "123", U, "POST /AllergyIntolerance", ALLERGY_123, true),
    // --- The Patient resource itself.
    ("patient/Patient.read", "123", U, "GET /Patient/123", "", true),
    ("patient/Patient.read", "123", U, "GET /Patient/456", "", false),
    ("patient/Patient.read", "123", U, "GET /Patient/123/_history", "", true),
    ("patient/Patient.read", "123", U, "GET /Patient/123/_history/1", "", true),
    ("patient/Patient.read", "123", U, "GET /Patient?_id=123", "", true),
    ("patient/Patient.read", "123", U, "GET /Patient?name=smith", "", false),
    ("patient/Patient.read", "123", U, "GET /Patient/_history", "", false),
    ("patient/Patient.write", "123", U, "PUT /Patient/123", PATIENT_123, true),
    ("patient/Patient.write", "123", U, "PATCH /Patient/123", "[]", true),
    ("patient/Patient.write", "123", U, "PUT /Patient/456", PATIENT_123, false),
    ("patient/Patient.write", "123", U, "POST /Patient", PATIENT_123, false),
    ("patient/Patient.write", "123", U, "GET /Patient/123", "", false),
    // --- Wildcards.
    ("patient/*.read", "123", U, "GET /Condition?patient=123", "", true),
    ("patient/*.read", "123", U, "GET /Patient/123", "", true),
    ("patient/*.*", "123", U, "DELETE /Patient/123", "", true),
    ("patient/*.*", "123", U, "DELETE /Patient/456", "", false),
    ("patient/*.*", "123", U, "POST /Encounter", r#"{"subject":{"reference":"Patient/123"}}"#, true),
    // No patient in context: patient scopes grant nothing.
    ("patient/*.*", "", U, "GET /Condition?patient=123", "", false),
    ("patient/Patient.read", "", U, "GET /Patient/123", "", false),
    // --- SMART v2 permissions, every interaction.
    ("patient/Observation.rs", "123", U, "GET /Observation?patient=123", "", true),
    ("patient/Observation.r", "123", U, "GET /Observation?patient=123", "", false),
    ("patient/Observation.s", "123", U, "GET /Observation/o1?patient=123", "", false),
    ("patient/Observation.c", "123", U, "POST /Observation", OBS_123, true),
    ("patient/Observation.u", "123", U, "PUT /Observation/o1", OBS_123, true),
    ("patient/Observation.u", "123", U, "POST /Observation", OBS_123, false),
    ("patient/Observation.cruds", "123", U, "POST /Observation/_search?patient=123", "", false),
    ("user/Observation.r", "", U, "GET /Observation/o1", "", true),
    ("user/Observation.r", "", U, "GET /Observation/o1/_history/3", "", true),
    ("user/Observation.r", "", U, "GET /Observation/o1/_history", "", true),
    ("user/Observation.r", "", U, "GET /Observation/_history", "", true),
    ("user/Observation.s", "", U, "GET /Observation/_history", "", false),
    ("user/Observation.s", "", U, "GET /Observation?code=1234-5", "", true),
    ("user/Observation.s", "", U, "GET /Observation", "", true),
    ("user/Observation.s", "", U, "GET /Observation/o1", "", false),
    ("user/Observation.c", "", U, "POST /Observation", OBS_456, true),
    ("user/Observation.u", "", U, "PUT /Observation/o1", OBS_456, true),
    ("user/Observation.u", "", U, "PATCH /Observation/o1", "[]", true),
    ("user/Observation.u", "", U, "PUT /Observation?identifier=x", OBS_456, true),
    ("user/Observation.u", "", U, "PATCH /Observation?identifier=x", "[]", true),
    ("user/Observation.d", "", U, "DELETE /Observation/o1", "", true),
    ("user/Observation.d", "", U, "DELETE /Observation?code=x", "", true),
    ("user/Observation.crus", "", U, "DELETE /Observation/o1", "", false),
    ("user/Observation.rs", "", U, "PUT /Observation", OBS_456, false),
    ("user/Encounter.cruds", "", U, "GET /Observation/o1", "", false),
    ("user/*.cruds", "", U, "DELETE /Medication/m1", "", true),
    ("user/*.*", "", U, "GET /Practitioner?name=x", "", true),
    ("user/*.rs user/Observation.c", "", U, "POST /Observation", OBS_456, true),
    // --- Query restrictions (v2).
    ("patient/Observation.rs?category=laboratory", "123", U, "GET /Observation?patient=123&category=laboratory", "", true),
    ("patient/Observation.rs?category=laboratory", "123", U, "GET /Observation?patient=123&category=vital-signs", "", false),
    ("patient/Observation.rs?category=laboratory", "123", U, "GET /Observation?patient=123", "", false),
    ("patient/Observation.rs?category=laboratory", "123", U, "GET /Observation?patient=123&category=laboratory,vital-signs", "", false),
    ("patient/Observation.rs?category=laboratory", "123", U, "GET /Observation?patient=456&category=laboratory", "", false),
    ("patient/Observation.rs?category=laboratory", "123", U, "GET /Observation?patient=123&category=http://terminology.hl7.org/CodeSystem/observation-category|laboratory", "", true),
    ("patient/Observation.rs?category=http://terminology.hl7.org/CodeSystem/observation-category|laboratory", "123", U, "GET /Observation?patient=123&category=laboratory", "", false),
    ("patient/Observation.rs?category=http://terminology.hl7.org/CodeSystem/observation-category|laboratory", "123", U, "GET /Observation?patient=123&category=http://terminology.hl7.org/CodeSystem/observation-category|laboratory", "", true),
    ("user/Observation.rs?category=laboratory", "", U, "GET /Observation/o1", "", false),
    ("user/Observation.rs?category=laboratory", "", U, "GET /Observation/o1?category=laboratory", "", true),
    ("user/Observation.cruds?category=laboratory", "", U, "DELETE /Observation/o1", "", false),
    ("user/Observation.rs?category=laboratory&status=final", "", U, "GET /Observation?status=final&category=laboratory", "", true),
    ("user/Observation.rs?category=laboratory&status=final", "", U, "GET /Observation?category=laboratory", "", false),
    ("user/Observation.rs?code=http%3A%2F%2Floinc.org%7C1234-5", "", U, "GET /Observation?code=http://loinc.org|1234-5", "", true),
    ("user/Observation.rs?category=laboratory user/Observation.rs?category=vital-signs", "", U, "GET /Observation?category=vital-signs", "", true),
    // --- Parameters that reach other types: _include, _revinclude, _has, POST _search.
    ("patient/Observation.rs", "123", U, "GET /Observation?patient=123&_include=Observation:performer", "", false),
    ("patient/*.rs", "123", U, "GET /Observation?patient=123&_include=Observation:performer", "", false),
    ("user/Observation.rs", "", U, "GET /Observation?_revinclude=Provenance:target", "", false),
    ("user/Patient.rs", "", U, "GET /Patient?_has:Observation:patient:code=1234", "", false),
    ("user/*.rs", "", U, "GET /Observation?_include:iterate=Observation:performer", "", true),
    ("user/*.rs?category=laboratory", "", U, "GET /Observation?category=laboratory&_include=Observation:subject", "", false),
    ("user/*.s", "", U, "POST /Observation/_search", "", true),
    ("user/Observation.s", "", U, "POST /Observation/_search", "", false),
    // --- System scopes: only without a user.
    ("system/Observation.rs", "", C, "GET /Observation", "", true),
    ("system/Observation.rs", "", U, "GET /Observation", "", false),
    ("system/*.*", "", C, "DELETE /Patient/p1", "", true),
    ("system/Patient.write", "", C, "POST /Patient", PATIENT_123, true),
    ("system/Patient.read", "", C, "POST /Patient", PATIENT_123, false),
    ("user/Observation.rs", "", C, "GET /Observation", "", true),
    // --- Outside SMART scopes: capabilities allowed, the rest denied.
    ("user/*.*", "", U, "GET /metadata", "", true),
    ("openid", "", U, "GET /metadata", "", true),
    ("user/*.*", "", U, "POST /metadata", "", false),
    ("user/*.*", "", U, "GET /", "", false),
    ("user/*.*", "", U, "POST /", r#"{"resourceType":"Bundle"}"#, false),
    ("user/*.*", "", U, "GET /_history", "", false),
    ("user/*.*", "", U, "GET /Patient/123/$everything", "", false),
    ("user/*.*", "", U, "POST /Patient/$match", "", false),
    ("user/*.*", "", U, "GET /Patient/123/Observation", "", false),
    ("user/*.*", "", U, "GET /patient/123", "", false),
    ("user/*.*", "", U, "GET /Patient/a_b", "", false),
    ("user/*.*", "", U, "GET /Patient/123/_history/1/x", "", false),
    // --- Malformed and non-clinical scopes grant nothing; valid ones next to them still do.
    ("patient/Observation.rcs", "123", U, "GET /Observation?patient=123", "", false),
    ("patient/observation.rs", "123", U, "GET /Observation?patient=123", "", false),
    ("patient/Observation.", "123", U, "GET /Observation?patient=123", "", false),
    ("patient/Observation.rs?", "123", U, "GET /Observation?patient=123", "", false),
    ("patient/Observation.read?category=laboratory", "123", U, "GET /Observation?patient=123&category=laboratory", "", false),
    ("Patient/Observation.rs", "123", U, "GET /Observation?patient=123", "", false),
    ("openid fhirUser launch/patient offline_access", "123", U, "GET /Patient/123", "", false),
    ("patient/Observation.x user/Observation.rs", "", U, "GET /Observation/o1", "", true),
    ("", "", U, "GET /Observation", "", false),
];

#[test]
fn engine_decision_table() {
    let policy = engine();
    assert_eq!(policy.engine(), "smart-on-fhir");
    assert!(CASES.len() >= 40);
    let mut failures = Vec::new();
    for (i, (scope, patient, who, line, body, expected)) in CASES.iter().enumerate() {
        let req = request(Some(scope), patient, *who, line, body);
        if policy.allows(&req) != *expected {
            failures.push(format!(
                "#{i}: scope {scope:?} patient {patient:?} {line} → expected {}",
                if *expected { "allow" } else { "deny" }
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn missing_or_odd_jwt_denies() {
    let policy = engine();
    let mut req = request(None, "123", U, "GET /Observation?patient=123", "");
    assert!(!policy.allows(&req), "no scope claim");
    req["jwt"] = Value::Null;
    assert!(!policy.allows(&req), "no jwt");
    req["jwt"] = json!({"scope": 7, "patient": "123"});
    assert!(!policy.allows(&req), "scope not a string");
    req["jwt"] = json!({"scope": "patient/Observation.rs", "patient": 123});
    assert!(!policy.allows(&req), "patient not a string");
    req["jwt"] = json!({"scope": ["patient/Observation.rs", "openid"], "patient": "123"});
    assert!(policy.allows(&req), "scope as an array of strings");
    for junk in [
        json!(null),
        json!([]),
        json!("GET /Observation"),
        json!({"request-method": 1, "uri": "/Observation"}),
        json!({"request-method": "get", "uri": ["/Observation"], "jwt": {"scope": "user/*.*"}}),
        json!({"request-method": "get", "uri": "/Observation", "params": [], "jwt": {"scope": "user/*.*"}, "user": {}}),
    ] {
        let _ = policy.allows(&junk);
    }
    // params that are not an object count as no query.
    let junk = json!({"request-method": "get", "uri": "/Observation", "params": [], "jwt": {"scope": "user/*.*"}, "user": {}});
    assert!(policy.allows(&junk));
}

#[test]
fn fhir_base_path() {
    let policy =
        CompiledPolicy::compile(&json!({"engine": "smart-on-fhir", "fhir-base-path": "/fhir/"}))
            .expect("compiles");
    let at = |line: &str| policy.allows(&request(Some("user/*.rs"), "", U, line, ""));
    assert!(at("GET /fhir/Observation"));
    assert!(at("GET /fhir/Observation/o1"));
    assert!(at("GET /fhir/metadata"));
    assert!(!at("GET /Observation"));
    assert!(!at("GET /fhirx/Observation"));
    assert!(!at("GET /fhir"));
    for bad in [
        json!("fhir"),
        json!(1),
        json!("/fhir?x"),
        json!(["/fhir"]),
        json!("/Client"),
        json!("/api/User/"),
    ] {
        let e = CompiledPolicy::compile(&json!({"engine": "smart-on-fhir", "fhir-base-path": bad}))
            .expect_err("bad base path");
        assert_eq!(e.path, "fhir-base-path");
    }
    let e = CompiledPolicy::compile(&json!({"engine": "allow", "fhir-base-path": "/fhir"}))
        .expect_err("field of another engine");
    assert_eq!(e.path, "fhir-base-path");
    let inside =
        json!({"engine": "complex", "or": [{"engine": "smart-on-fhir", "fhir-base-path": 3}]});
    let e = CompiledPolicy::compile(&inside).expect_err("nested");
    assert_eq!(e.path, "or.0.fhir-base-path");
}

// ---------------------------------------------------------------- grammar

fn clinical(s: &str) -> ClinicalScope {
    match s.parse::<Scope>() {
        Ok(Scope::Clinical(c)) => c,
        other => panic!("{s:?} should be a clinical scope, got {other:?}"),
    }
}

#[test]
fn round_trip() {
    let canonical = [
        "patient/Observation.read",
        "patient/Observation.write",
        "user/*.*",
        "system/Patient.write",
        "patient/*.read",
        "patient/Observation.rs",
        "user/Encounter.cruds",
        "system/*.cud",
        "patient/Observation.rs?category=laboratory",
        "patient/Observation.rs?category=laboratory&status=final",
        "patient/Observation.s?category=http://terminology.hl7.org/CodeSystem/observation-category|laboratory",
        "user/Observation.rs?code=a%26b%3Dc%25d",
        "launch",
        "launch/patient",
        "launch/encounter",
        "openid",
        "fhirUser",
        "profile",
        "offline_access",
        "online_access",
        "custom:thing",
        "Patient/Observation.rs",
    ];
    for s in canonical {
        let parsed = smart::parse_strict(s).unwrap_or_else(|e| panic!("{s}: {e}"));
        assert_eq!(parsed.len(), 1);
        assert_eq!(smart::format(&parsed), s);
    }
    let all = canonical.join(" ");
    let parsed = smart::parse_strict(&format!("  {}\t", all.replace(' ', "  "))).expect("parses");
    assert_eq!(smart::format(&parsed), all);
    assert_eq!(smart::parse(&all), parsed);
    // Percent-encoded input formats back to the readable canonical form and parses the same.
    let s = "user/Observation.rs?code=http%3A%2F%2Floinc.org%7C1234-5";
    let c = clinical(s);
    assert_eq!(
        c.restrictions,
        vec![("code".into(), "http://loinc.org|1234-5".into())]
    );
    assert_eq!(
        c.to_string(),
        "user/Observation.rs?code=http://loinc.org|1234-5"
    );
    assert_eq!(clinical(&c.to_string()), c);
}

#[test]
fn typed_values() {
    let c = clinical("patient/Observation.read");
    assert_eq!(c.level, Level::Patient);
    assert_eq!(c.resource_type.as_deref(), Some("Observation"));
    assert_eq!(c.permissions, Permissions::READ.union(Permissions::SEARCH));
    assert_eq!(c.syntax, Syntax::V1);
    assert_eq!(clinical("user/*.write").permissions, Permissions::V1_WRITE);
    assert_eq!(clinical("user/*.write").permissions.to_string(), "cud");
    let all = clinical("system/*.*");
    assert_eq!(
        (all.level, all.resource_type, all.permissions),
        (Level::System, None, Permissions::ALL)
    );
    assert_eq!(clinical("user/*.cruds").permissions, Permissions::ALL);
    assert_eq!(clinical("user/*.cruds").syntax, Syntax::V2);
    assert!(clinical("user/*.rs").covers_type("Anything"));
    assert!(!clinical("user/Observation.rs").covers_type("Condition"));
    assert!(clinical("user/Observation.rs").grants(Permissions::SEARCH));
    assert!(!clinical("user/Observation.rs").grants(Permissions::CREATE));
    // Every ordered subset of cruds parses, and formats back to itself.
    let letters = ['c', 'r', 'u', 'd', 's'];
    for mask in 1u32..32 {
        let s: String = (0..5)
            .filter(|i| mask & (1 << i) != 0)
            .map(|i| letters[i])
            .collect();
        let p = Permissions::parse_v2(&s).unwrap_or_else(|| panic!("{s}"));
        assert_eq!(p.to_string(), s);
    }
    assert_eq!(
        smart::parse("launch launch/patient launch/encounter openid fhirUser profile offline_access online_access x"),
        vec![
            Scope::Launch,
            Scope::LaunchPatient,
            Scope::LaunchEncounter,
            Scope::OpenId,
            Scope::FhirUser,
            Scope::Profile,
            Scope::OfflineAccess,
            Scope::OnlineAccess,
            Scope::Other("x".into()),
        ]
    );
}

#[test]
fn malformed_scopes() {
    let bad = [
        "patient/Observation.rcs",
        "patient/Observation.x",
        "patient/observation.rs",
        "patient/Observation.",
        "patient/Observation.rs?",
        "patient/Observation.rr",
        "patient/Observation.sr",
        "patient/Observation",
        "patient/.rs",
        "patient/Obs-ervation.rs",
        "patient/Observation.read?category=laboratory",
        "patient/*.*?category=laboratory",
        "patient/Observation.rs?category",
        "patient/Observation.rs?=laboratory",
        "patient/Observation.rs?category=",
        "patient/Observation.rs?category=laboratory&",
        "patient/Observation.rs?category=%FF",
        "user/*.",
        "user/",
        "system/Patient.READ",
        "system/Patient.cruds.x",
    ];
    for s in bad {
        let e = smart::parse_strict(&format!("openid {s} offline_access"))
            .expect_err(&format!("{s} is malformed"));
        assert_eq!(e.scope, s);
        assert!(!e.reason.is_empty());
        assert!(e.to_string().contains(s));
        assert!(s.parse::<Scope>().is_err());
        // The lenient parser drops it and keeps the rest.
        assert_eq!(
            smart::parse(&format!("openid {s} offline_access")),
            vec![Scope::OpenId, Scope::OfflineAccess],
            "{s}"
        );
    }
    assert!("".parse::<Scope>().is_err());
    assert!("a b".parse::<Scope>().is_err());
    assert_eq!(smart::parse_strict("").expect("empty is no scopes"), vec![]);
}

#[test]
fn request_mapping() {
    use Interaction::*;
    type Mapping = (
        &'static str,
        &'static str,
        bool,
        Option<(Interaction, Option<&'static str>)>,
    );
    let cases: &[Mapping] = &[
        ("get", "/Patient/1", false, Some((Read, Some("1")))),
        (
            "GET",
            "/Patient/1/_history/2",
            false,
            Some((Vread, Some("1"))),
        ),
        (
            "get",
            "/Patient/1/_history",
            false,
            Some((HistoryInstance, Some("1"))),
        ),
        ("get", "/Patient/_history", false, Some((HistoryType, None))),
        ("get", "/Patient", false, Some((Search, None))),
        ("get", "/Patient", true, Some((Search, None))),
        ("head", "/Patient", true, Some((Search, None))),
        ("post", "/Patient/_search", false, Some((Search, None))),
        ("post", "/Patient", false, Some((Create, None))),
        ("put", "/Patient/1", false, Some((Update, Some("1")))),
        ("put", "/Patient", true, Some((ConditionalUpdate, None))),
        ("patch", "/Patient/1", false, Some((Patch, Some("1")))),
        ("patch", "/Patient", true, Some((ConditionalPatch, None))),
        ("delete", "/Patient/1", false, Some((Delete, Some("1")))),
        ("delete", "/Patient", true, Some((ConditionalDelete, None))),
        ("get", "/metadata", false, Some((Capabilities, None))),
        ("put", "/Patient", false, None),
        ("delete", "/Patient", false, None),
        ("get", "/", false, None),
        ("get", "", false, None),
        ("get", "/_history", false, None),
        ("post", "/", false, None),
        ("get", "/Patient/1/$everything", false, None),
        ("post", "/Patient/$validate", false, None),
        ("get", "/Patient/1/Observation", false, None),
        ("get", "/patient/1", false, None),
        ("get", "/Pat1ent/1", false, None),
        ("get", "/Patient/", false, None),
        ("post", "/Patient/1", false, None),
        ("get", "/Patient/_search", false, None),
        ("options", "/Patient", false, None),
    ];
    for (method, path, has_query, expected) in cases {
        let got = classify(method, path, *has_query).map(|r| (r.interaction, r.id));
        assert_eq!(got, *expected, "{method} {path}");
    }
    assert_eq!(Read.permission(), Permissions::READ);
    assert_eq!(Vread.permission(), Permissions::READ);
    assert_eq!(HistoryType.permission(), Permissions::READ);
    assert_eq!(Search.permission(), Permissions::SEARCH);
    assert_eq!(Create.permission(), Permissions::CREATE);
    assert_eq!(Patch.permission(), Permissions::UPDATE);
    assert_eq!(ConditionalDelete.permission(), Permissions::DELETE);
    assert!(Capabilities.permission().is_empty());
    assert!(classify("post", "/Observation/_search", false).is_some_and(|r| r.post_search));
    assert_eq!(
        classify("get", "/Observation", false).map(|r| r.resource_type),
        Some("Observation")
    );
}

#[test]
fn no_panics_on_garbage() {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(4);
    let alphabet: Vec<char> = "patientusersym/*.?&=%|crudswxO bservationP_$#\u{e9}FF"
        .chars()
        .collect();
    let policy = engine();
    for _ in 0..2000 {
        let len = rng.gen_range(0..40);
        let s: String = (0..len)
            .map(|_| alphabet[rng.gen_range(0..alphabet.len())])
            .collect();
        let parsed = smart::parse(&s);
        // Whatever parses formats into something that parses to the same scopes.
        assert_eq!(
            smart::parse_strict(&smart::format(&parsed)).as_ref(),
            Ok(&parsed),
            "{s:?}"
        );
        let path: String = s.replace(' ', "/");
        let req = json!({"request-method": "get", "uri": format!("/{path}"), "params": {}, "jwt": {"scope": s, "patient": "1"}});
        let _ = policy.allows(&req);
    }
}

// ---------------------------------------------------------------- the admin API (issue 11)

/// The admin API's types and the names reserved for later ones.
const SERVER_TYPES: &[&str] = &[
    "Client",
    "User",
    "AccessPolicy",
    "TokenIntrospector",
    "Role",
    "Grant",
    "Session",
    "Scope",
];

/// Requests on a server type, in every form the admin API (or an origin) could act on.
fn admin_request_lines(ty: &str) -> Vec<String> {
    [
        "GET /{T}",
        "GET /{T}?patient=123",
        "GET /{T}/x",
        "GET /{T}/x?patient=123",
        "HEAD /{T}",
        "POST /{T}",
        "PUT /{T}/evil",
        "PUT /{T}?name=x",
        "PATCH /{T}/evil",
        "DELETE /{T}/evil",
        "DELETE /{T}?patient=123",
        "GET /{T}/_history",
        "GET /{T}/x/_history",
        "GET /{T}/x/_history/1",
        "POST /{T}/_search",
        "GET /{T}/$export",
        "POST /{T}/x/$op",
        "GET /{T}/",
        "GET //{T}",
        "GET /fhir/{T}/x",
        "GET /Patient/123/{T}",
    ]
    .iter()
    .map(|l| l.replace("{T}", ty))
    .collect()
}

#[test]
fn admin_types_are_never_fhir_types_to_the_engine() {
    let policy = engine();
    let based =
        CompiledPolicy::compile(&json!({"engine": "smart-on-fhir", "fhir-base-path": "/fhir"}))
            .expect("compiles");
    let body = r#"{"subject":{"reference":"Patient/123"},"patient":{"reference":"Patient/123"},"password":"x","engine":"allow"}"#;
    let mut failures = Vec::new();
    for ty in SERVER_TYPES {
        let scopes = [
            ("system/*.cruds".to_string(), "", C),
            ("system/*.*".to_string(), "", C),
            ("user/*.cruds".to_string(), "", U),
            ("patient/*.cruds".to_string(), "123", U),
            (format!("system/{ty}.cruds"), "", C),
            (format!("user/{ty}.cruds"), "", U),
            (format!("patient/{ty}.cruds"), "123", U),
            (format!("user/{ty}.c user/*.rs system/*.*"), "", C),
        ];
        for line in admin_request_lines(ty) {
            for (scope, patient, who) in &scopes {
                for (name, p) in [("root", &policy), ("/fhir", &based)] {
                    let req = request(Some(scope), patient, *who, &line, body);
                    if p.allows(&req) {
                        failures.push(format!("{name}: {scope} allowed {line}"));
                    }
                    // The same under the base path.
                    let (m, path) = line.split_once(' ').unwrap();
                    let req = request(
                        Some(scope),
                        patient,
                        *who,
                        &format!("{m} /fhir{path}"),
                        body,
                    );
                    if p.allows(&req) {
                        failures.push(format!("{name}: {scope} allowed {m} /fhir{path}"));
                    }
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn admin_types_in_any_spelling_or_include_are_refused() {
    let policy = engine();
    let allows = |scope: &str, line: &str| policy.allows(&request(Some(scope), "", C, line, ""));
    for line in [
        "GET /%43lient",
        "GET /%55ser/john",
        "GET /client",
        "GET /ACCESSPOLICY/x",
        "GET /Patient/user",
        "GET /Patient?_revinclude=User:patient",
        "GET /Patient?_revinclude=AccessPolicy:subject",
        "GET /Observation?_include=Observation:performer:Client",
        "GET /Patient?_has:User:link:id=x",
        "GET /Patient?_include=*",
        "GET /Patient?_revinclude=*",
        "GET /Observation?_include=Observation:*",
    ] {
        assert!(!allows("system/*.cruds", line), "{line}");
    }
    // Positive controls: the same token still reads FHIR types, includes of FHIR types too.
    for line in [
        "GET /Patient",
        "GET /Patient/123",
        "GET /Observation?code=1234-5",
        "GET /Observation?_include=Observation:performer",
        "GET /Observation?_include=Observation:subject:Patient",
        "GET /Patient?_revinclude=Observation:subject",
        "POST /Observation",
        "PUT /Observation/o1",
        "GET /metadata",
    ] {
        assert!(allows("system/*.cruds", line), "{line}");
    }
    let patient = |scope: &str, line: &str, body: &str| {
        policy.allows(&request(Some(scope), "123", U, line, body))
    };
    assert!(patient("patient/*.rs", "GET /Observation?patient=123", ""));
    assert!(!patient("patient/*.rs", "GET /User?patient=123", ""));
    assert!(patient("patient/*.c", "POST /Observation", OBS_123));
    assert!(!patient(
        "patient/*.c",
        "POST /AccessPolicy",
        r#"{"engine":"allow","subject":{"reference":"Patient/123"}}"#
    ));
}

#[test]
fn scopes_naming_admin_types_are_malformed() {
    for ty in SERVER_TYPES {
        for level in ["patient", "user", "system"] {
            for perms in ["cruds", "read", "*", "c"] {
                let s = format!("{level}/{ty}.{perms}");
                let e = smart::parse_strict(&s).expect_err(&s);
                assert!(e.reason.contains("admin API"), "{s}: {e}");
                assert_eq!(
                    smart::parse(&format!("openid {s}")),
                    vec![Scope::OpenId],
                    "{s}"
                );
            }
        }
    }
    // `*` never covers them, whatever the level and permissions.
    let star = clinical("system/*.cruds");
    for ty in SERVER_TYPES {
        assert!(!star.covers_type(ty), "{ty}");
        assert!(classify("get", &format!("/{ty}"), false).is_none(), "{ty}");
        assert!(
            classify("post", &format!("/{ty}/_search"), false).is_none(),
            "{ty}"
        );
        assert!(
            classify("get", &format!("/{ty}/x/_history"), false).is_none(),
            "{ty}"
        );
    }
    assert!(star.covers_type("Patient"));
    assert!(star.covers_type("Observation"));
    // FHIR types that merely contain such a name are FHIR types.
    assert!(star.covers_type("PractitionerRole"));
    assert!(clinical("user/PractitionerRole.rs").covers_type("PractitionerRole"));
    assert!(star.covers_type("Consent"));
}

// ------------------------------------------------- the same through the Worker (App::handle)

mod through_the_app {
    use edge_authorizer::context::Outcome;
    use edge_authorizer::testing::TestApp;
    use serde_json::{json, Value};

    const ORIGIN: &str = "https://origin.example";

    /// A Worker with an origin, the `reader` client (client credentials) governed by a
    /// smart-on-fhir policy linked to it, and john.
    fn setup() -> TestApp {
        let t = TestApp::with_config(|c| c.origin_url = Some(ORIGIN.into()));
        for (path, body) in [
            (
                "/Client/reader",
                // Registered for what the tests ask (the scope ceiling of issue 11).
                json!({"secret": "reader-secret", "grant_types": ["client_credentials"],
                       "scope": ["system/*.rs", "system/*.cruds"]}),
            ),
            ("/User/john", json!({"password": "pass123"})),
            (
                "/AccessPolicy/reader",
                json!({"engine": "smart-on-fhir", "link": [{"id": "reader", "resourceType": "Client"}]}),
            ),
        ] {
            let r = t.admin_put(path, body);
            assert!([200, 201].contains(&r.status()), "{path}: {}", r.text());
        }
        t
    }

    fn token(t: &TestApp, scope: &str) -> String {
        let r = t.token(
            Some(&TestApp::basic("reader", "reader-secret")),
            &[("grant_type", "client_credentials"), ("scope", scope)],
        );
        assert_eq!(r.status(), 200, "{}", r.text());
        r.json()["access_token"].as_str().unwrap().to_string()
    }

    /// The status a request gets: the origin's (it was forwarded: 0) or ours.
    fn send(t: &TestApp, token: &str, method: &str, path: &str, body: Option<Value>) -> u16 {
        let mut b = TestApp::req(method, path).header("authorization", format!("Bearer {token}"));
        if body.is_some() {
            b = b.header("content-type", "application/json");
        }
        let req = b
            .body(body.map(|v| v.to_string().into_bytes()).unwrap_or_default())
            .unwrap();
        match t.send(req) {
            Outcome::Forward(_) => 0,
            Outcome::Respond(r) => r.status().as_u16(),
            Outcome::Asset { .. } => panic!("asset"),
        }
    }

    #[test]
    fn system_read_token_cannot_list_users() {
        let t = setup();
        let at = token(&t, "system/*.rs");
        assert_eq!(send(&t, &at, "GET", "/User", None), 403);
        assert_eq!(send(&t, &at, "GET", "/User/john", None), 403);
        assert_eq!(send(&t, &at, "GET", "/Client", None), 403);
        assert_eq!(send(&t, &at, "GET", "/AccessPolicy", None), 403);
        assert_eq!(send(&t, &at, "GET", "/TokenIntrospector", None), 403);
        // Positive control: FHIR reads are forwarded.
        assert_eq!(send(&t, &at, "GET", "/Patient", None), 0);
        assert_eq!(send(&t, &at, "GET", "/Observation?code=x", None), 0);
    }

    #[test]
    fn system_cruds_token_cannot_write_the_admin_api() {
        let t = setup();
        let at = token(&t, "system/*.cruds");
        let client = json!({"secret": "evil-secret", "grant_types": ["basic"]});
        assert_eq!(send(&t, &at, "PUT", "/Client/evil", Some(client)), 403);
        let policy = json!({"engine": "allow", "link": [{"id": "evil", "resourceType": "Client"}]});
        assert_eq!(
            send(&t, &at, "PUT", "/AccessPolicy/evil", Some(policy.clone())),
            403
        );
        assert_eq!(send(&t, &at, "POST", "/AccessPolicy", Some(policy)), 403);
        let pw = json!({"password": "taken-over"});
        assert_eq!(send(&t, &at, "PUT", "/User/john", Some(pw)), 403);
        assert_eq!(send(&t, &at, "DELETE", "/User/john", None), 403);
        // Nothing was written: the evil client cannot authenticate, john's password stands.
        let r = t.call(
            TestApp::req("GET", "/Client/evil")
                .header("authorization", TestApp::root())
                .body(Vec::new())
                .unwrap(),
        );
        assert_eq!(r.status(), 404);
        let r = t.call(
            TestApp::req("GET", "/AccessPolicy/evil")
                .header("authorization", TestApp::root())
                .body(Vec::new())
                .unwrap(),
        );
        assert_eq!(r.status(), 404);
        // Positive control: FHIR writes are forwarded.
        let obs = json!({"resourceType": "Observation", "status": "final"});
        assert_eq!(send(&t, &at, "PUT", "/Observation/o1", Some(obs)), 0);
    }

    #[test]
    fn explicit_admin_scopes_grant_nothing() {
        let t = setup();
        let r = t.token(
            Some(&TestApp::basic("reader", "reader-secret")),
            &[
                ("grant_type", "client_credentials"),
                (
                    "scope",
                    "system/Client.cruds system/User.cruds system/AccessPolicy.cruds",
                ),
            ],
        );
        // Either the token endpoint refuses the scopes, or the token grants nothing with them.
        if r.status() == 200 {
            let at = r.json()["access_token"].as_str().unwrap().to_string();
            assert_eq!(send(&t, &at, "GET", "/Client", None), 403);
            assert_eq!(send(&t, &at, "GET", "/User", None), 403);
            let p = json!({"engine": "allow"});
            assert_eq!(send(&t, &at, "PUT", "/AccessPolicy/evil", Some(p)), 403);
        } else {
            assert_eq!(r.status(), 400, "{}", r.text());
        }
    }

    #[test]
    fn an_admin_policy_written_for_it_still_grants_admin_access() {
        let t = setup();
        let r = t.admin_put(
            "/AccessPolicy/reader-admin",
            json!({"engine": "matcho", "link": [{"id": "reader", "resourceType": "Client"}],
                   "matcho": {"uri": "#^/(Client|User|AccessPolicy|TokenIntrospector)(/|$)"}}),
        );
        assert_eq!(r.status(), 201, "{}", r.text());
        let at = token(&t, "system/*.rs");
        assert_eq!(send(&t, &at, "GET", "/User", None), 200);
        let client = json!({"secret": "new-secret", "grant_types": ["basic"]});
        assert_eq!(send(&t, &at, "PUT", "/Client/new", Some(client)), 201);
        // ...and an allow policy linked to a client makes it an administrator too.
        let ops = json!({"secret": "ops-secret", "grant_types": ["basic"]});
        assert_eq!(t.admin_put("/Client/ops", ops).status(), 201);
        let allow = json!({"engine": "allow", "link": [{"id": "ops", "resourceType": "Client"}]});
        assert_eq!(t.admin_put("/AccessPolicy/ops", allow).status(), 201);
        let basic = TestApp::basic("ops", "ops-secret");
        let r = t.call(
            TestApp::req("PUT", "/User/made-by-ops")
                .header("authorization", basic)
                .header("content-type", "application/json")
                .body(json!({"password": "made-pass"}).to_string().into_bytes())
                .unwrap(),
        );
        assert_eq!(r.status(), 201, "{}", r.text());
    }
}

// ---------------------------------------------------------------- Aidbox's context.patient (issue 13)

#[test]
fn patient_in_context_is_read_from_aidbox_context_claim_too() {
    // Aidbox docs: access-control/authorization/smart-on-fhir/smart-client-authorization/smart-app-launch.md
    // (its access token carries "context": {"patient": "test-pt-1"}).
    let p = CompiledPolicy::compile(&json!({"engine": "smart-on-fhir"})).unwrap();
    let req = |jwt: Value| {
        json!({"request-method": "get", "uri": "/Patient/test-pt-1", "params": {},
               "user": {"id": "u", "resourceType": "User"}, "jwt": jwt})
    };
    let scope = "launch/patient patient/Patient.read";
    assert!(p.allows(&req(
        json!({"scope": scope, "context": {"patient": "test-pt-1"}})
    )));
    assert!(p.allows(&req(json!({"scope": scope, "patient": "test-pt-1"}))));
    assert!(p.allows(&req(
        json!({"scope": scope, "patient": "test-pt-1", "context": {"patient": "test-pt-1"}})
    )));
    // Another patient, two that disagree, malformed shapes: no patient, no access.
    for jwt in [
        json!({"scope": scope, "context": {"patient": "other"}}),
        json!({"scope": scope, "patient": "test-pt-1", "context": {"patient": "other"}}),
        json!({"scope": scope, "patient": "other", "context": {"patient": "test-pt-1"}}),
        json!({"scope": scope, "context": {"patient": ["test-pt-1"]}}),
        json!({"scope": scope, "context": {"patient": {"id": "test-pt-1"}}}),
        json!({"scope": scope, "context": "test-pt-1"}),
        json!({"scope": scope, "patient": 1, "context": {"patient": "test-pt-1"}}),
        json!({"scope": scope, "context": {"patient": ""}}),
        json!({"scope": scope}),
    ] {
        assert!(!p.allows(&req(jwt.clone())), "{jwt}");
    }
}
