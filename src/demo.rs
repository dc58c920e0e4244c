//! The built-in demo FHIR origin, used when `ORIGIN_URL` is not set, so that the tutorial works
//! out of the box: `GET /Patient` and `GET /Patient/{id}` answer with sample data. It sits
//! behind the authorizer like any origin: nothing reaches it that a policy did not allow.

use crate::error::Result;
use crate::http_util::{json_response, Request, Response};
use serde_json::{json, Value};

/// The demo origin's patients, as JSON text: parsed when asked for, which takes far less wasm
/// than the code `json!` generates to build them (a unit test checks the text parses).
const PATIENTS: &str = r#"[
{"resourceType": "Patient", "id": "pt-1", "active": true,
 "name": [{"family": "Chalmers", "given": ["Peter", "James"]}],
 "gender": "male", "birthDate": "1974-12-25"},
{"resourceType": "Patient", "id": "pt-2", "active": true,
 "name": [{"family": "Windsor", "given": ["Anna"]}],
 "gender": "female", "birthDate": "1988-03-14"},
{"resourceType": "Patient", "id": "pt-3", "active": false,
 "name": [{"family": "Okafor", "given": ["Chidi"]}],
 "gender": "male", "birthDate": "2001-07-02"}
]"#;

/// The demo origin's patients.
pub fn patients() -> Vec<Value> {
    match serde_json::from_str(PATIENTS) {
        Ok(Value::Array(list)) => list,
        _ => Vec::new(),
    }
}

fn outcome(status: u16, code: &str, text: &str) -> Response {
    let mut r = json_response(
        status,
        &json!({"resourceType": "OperationOutcome",
                "issue": [{"severity": "error", "code": code, "diagnostics": text}]}),
    );
    r.headers_mut().insert(
        "content-type",
        http::HeaderValue::from_static("application/fhir+json"),
    );
    r
}

fn fhir(status: u16, body: &Value) -> Response {
    let mut r = json_response(status, body);
    r.headers_mut().insert(
        "content-type",
        http::HeaderValue::from_static("application/fhir+json"),
    );
    r.headers_mut()
        .insert("x-demo-origin", http::HeaderValue::from_static("true"));
    r
}

/// Answers `req`; `path` is its path relative to the FHIR base it is under (`FHIR_BASE_PATHS`:
/// `/fhir/Patient/pt-1` is `/Patient/pt-1`, as Aidbox's docs write it).
pub fn handle(req: &Request, path: &str) -> Result<Response> {
    let segs: Vec<&str> = path
        .trim_start_matches('/')
        .split('/')
        .filter(|s| !s.is_empty())
        .collect();
    if req.method() != http::Method::GET {
        return Ok(outcome(
            405,
            "not-supported",
            "the demo origin is read-only; set ORIGIN_URL to protect your own API",
        ));
    }
    Ok(match segs.as_slice() {
        ["Patient"] => {
            let all = patients();
            fhir(
                200,
                &json!({
                    "resourceType": "Bundle",
                    "type": "searchset",
                    "total": all.len(),
                    "entry": all.into_iter().map(|p| json!({"resource": p})).collect::<Vec<_>>(),
                }),
            )
        }
        ["Patient", id] => match patients().into_iter().find(|p| p["id"] == *id) {
            Some(p) => fhir(200, &p),
            None => outcome(404, "not-found", &format!("Patient/{id} not found")),
        },
        _ => outcome(
            404,
            "not-found",
            "the demo origin serves only /Patient and /Patient/{id} (under each FHIR base); set ORIGIN_URL to protect your own API",
        ),
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    #[test]
    fn patients_text_parses() {
        assert_eq!(
            super::patients(),
            vec![
                json!({"resourceType": "Patient", "id": "pt-1", "active": true,
                       "name": [{"family": "Chalmers", "given": ["Peter", "James"]}],
                       "gender": "male", "birthDate": "1974-12-25"}),
                json!({"resourceType": "Patient", "id": "pt-2", "active": true,
                       "name": [{"family": "Windsor", "given": ["Anna"]}],
                       "gender": "female", "birthDate": "1988-03-14"}),
                json!({"resourceType": "Patient", "id": "pt-3", "active": false,
                       "name": [{"family": "Okafor", "given": ["Chidi"]}],
                       "gender": "male", "birthDate": "2001-07-02"}),
            ]
        );
    }
}
