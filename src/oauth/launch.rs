//! SMART App Launch 2.x launch context (https://hl7.org/fhir/smart-app-launch/app-launch.html).
//!
//! - EHR launch: the EHR (any caller the admin API would let in, e.g. root) creates a launch with
//!   `POST /auth/launch {"patient": "123", "encounter": "456"}` and opens the app's
//!   `smart.launch_uri?iss=...&launch=<id>`; the app passes `launch` to `/auth/authorize`.
//! - Standalone launch with `launch/patient`: when the signed-in User's `fhirUser` names a
//!   Patient (a patient using a patient-facing app), that patient is the context.
//!
//! The context travels in the code record and comes back in the token response (`patient`,
//! `encounter`) and in the access token's claims, where the `smart-on-fhir` engine reads it.

use crate::app::App;
use crate::authz::authorize;
use crate::error::{Error, Result};
use crate::http_util::{is_json, json_response, media_type, no_store, Request, Response};
use crate::model::user::User;
use crate::state::{self, random_token};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// How long a created launch may be used (seconds).
pub const LAUNCH_TTL: i64 = 3600;

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct LaunchContext {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patient: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encounter: Option<String>,
}

pub fn launch_key(id: &str) -> String {
    format!("launch/{}", state::hash(id))
}

/// A FHIR id (`[A-Za-z0-9\-.]{1,64}`).
fn fhir_id(v: Option<&Value>, field: &str) -> Result<Option<String>> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if crate::model::valid_id(s) => Ok(Some(s.clone())),
        Some(_) => Err(Error::validation(field, "must be a FHIR id")),
    }
}

/// `POST /auth/launch`: creates an EHR launch context.
pub async fn create(app: &App, req: &Request) -> Result<Response> {
    authorize(app, req).await?;
    if !media_type(req).as_deref().is_some_and(is_json) {
        return Err(Error::UnsupportedMediaType("send application/json".into()));
    }
    let body: Value = serde_json::from_slice(req.body())
        .map_err(|e| Error::InvalidRequest(format!("body is not valid JSON: {e}")))?;
    let ctx = LaunchContext {
        patient: fhir_id(body.get("patient"), "patient")?,
        encounter: fhir_id(body.get("encounter"), "encounter")?,
    };
    if ctx.patient.is_none() && ctx.encounter.is_none() {
        return Err(Error::validation(
            "patient",
            "a launch needs a patient or an encounter",
        ));
    }
    let id = random_token(app);
    let expires_at = app.now() + LAUNCH_TTL;
    state::create(app, &launch_key(&id), &ctx, expires_at).await?;
    Ok(no_store(json_response(
        201,
        &json!({"launch": id, "expires_at": expires_at, "context": ctx}),
    )))
}

/// The context of a `launch` parameter, if it names a live launch.
pub async fn lookup(app: &App, id: &str) -> Result<Option<LaunchContext>> {
    if id.is_empty() || id.len() > 128 {
        return Ok(None);
    }
    Ok(state::read::<LaunchContext>(app, &launch_key(id))
        .await?
        .map(|(c, _)| c))
}

/// The User's `fhirUser` reference (`Patient/123`, `Practitioner/9`), as Aidbox keeps it
/// (a string or `{"reference": ...}`).
pub fn fhir_user(user: &User) -> Option<String> {
    let v = user.doc.get("fhirUser")?;
    v.as_str()
        .or_else(|| v.get("reference").and_then(Value::as_str))
        .map(str::to_string)
}

/// Standalone `launch/patient`: the patient a patient-user is.
pub fn standalone_patient(user: &User) -> Option<String> {
    fhir_user(user)?
        .strip_prefix("Patient/")
        .map(str::to_string)
}
