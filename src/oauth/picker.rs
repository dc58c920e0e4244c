//! The patient picker of a SMART standalone launch (`launch/patient`): which patients may this
//! user pick? Candidates come from the origin's `GET /Patient` (the built-in demo origin when
//! `ORIGIN_URL` is unset); a candidate is offered only when the AccessPolicies would let this
//! user `GET /Patient/{id}`.

use crate::authn::Identity;
use crate::authz::{link_ids, policy_request_for};
use crate::context::App;
use crate::error::{Error, Result};
use crate::http_util::Request;
use crate::model::user::User;
use serde_json::Value;

/// Most patients offered.
const MAX_PATIENTS: usize = 100;

/// A FHIR Patient's display name: given names and family name of its first `name`.
fn display_name(p: &Value) -> String {
    let n = &p["name"][0];
    let given: Vec<&str> = n["given"]
        .as_array()
        .map(|g| g.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let mut parts = given;
    if let Some(f) = n["family"].as_str() {
        parts.push(f);
    }
    if parts.is_empty() {
        p["id"].as_str().unwrap_or_default().to_string()
    } else {
        parts.join(" ")
    }
}

async fn candidates(app: &App, user: &User) -> Result<Vec<Value>> {
    let Some(origin) = &app.config.origin_url else {
        return Ok(crate::demo::patients());
    };
    let url = format!("{origin}/Patient?_count={MAX_PATIENTS}");
    let (status, body) = app
        .platform
        .http
        .send(
            "GET",
            &url,
            &[("accept", "application/fhir+json"), ("x-user-id", &user.id)],
            None,
        )
        .await
        .map_err(|e| Error::Unavailable(format!("patient list from the origin: {e}")))?;
    if status != 200 {
        return Err(Error::Unavailable(format!(
            "origin answered {status} for {url}"
        )));
    }
    let bundle: Value = serde_json::from_str(&body)
        .map_err(|e| Error::Unavailable(format!("origin's patient list is not JSON: {e}")))?;
    Ok(bundle["entry"]
        .as_array()
        .map(|e| e.iter().map(|x| x["resource"].clone()).collect())
        .unwrap_or_default())
}

/// The patients this user may pick, as `(id, display name)`.
pub async fn visible_patients(
    app: &App,
    req: &Request,
    user: &User,
) -> Result<Vec<(String, String)>> {
    let policies = app.repo().policies().await?;
    let who = Identity {
        user: Some(user.clone()),
        ..Identity::default()
    };
    let issuer = app.issuer(req);
    // The probe reads the patient where the protected API serves it: at the root when that is
    // a FHIR base, else under the first configured one (`FHIR_BASE_PATHS`).
    let bases = &app.config.fhir_bases;
    let base = if bases.iter().any(String::is_empty) {
        ""
    } else {
        bases.first().map(String::as_str).unwrap_or("")
    };
    let mut out = Vec::new();
    for p in candidates(app, user).await? {
        let Some(id) = p["id"].as_str().filter(|i| crate::model::valid_id(i)) else {
            continue;
        };
        let probe = http::Request::builder()
            .method("GET")
            .uri(format!("{issuer}{base}/Patient/{id}"))
            .body(Vec::new())
            .map_err(|e| Error::Internal(e.to_string()))?;
        // The authorizer's own policy request and links: `operation.id` (FhirRead), roles.
        let request = policy_request_for(app, &probe, &who).await?;
        let (client, user_id, operation) = link_ids(&who, &request);
        if crate::policy::evaluate(&policies.policies, &request, client, user_id, operation)
            .is_some()
        {
            out.push((id.to_string(), display_name(&p)));
        }
        if out.len() >= MAX_PATIENTS {
            break;
        }
    }
    Ok(out)
}
