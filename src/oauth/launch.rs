//! SMART App Launch 2.x launch context (https://hl7.org/fhir/smart-app-launch/app-launch.html).
//!
//! - EHR launch: the EHR (any caller the admin API would let in, e.g. root) creates a launch with
//!   `POST /auth/launch {"client_id": "app", "patient": "123", "encounter": "456"}` and opens the
//!   app's `smart.launch_uri?iss=...&launch=<id>`; the app passes `launch` to `/auth/authorize`
//!   with the `launch` scope. A launch is bound to the client it was made for (another client
//!   presenting its id is told it is unknown) and is used up by the first code issued with it.
//! - Standalone launch with `launch/patient`: when the signed-in User's `fhirUser` names a
//!   Patient (a patient using a patient-facing app), that patient is the context. A patient
//!   user's context is always their own patient: an EHR launch naming another is refused.
//!
//! The context travels in the code record and comes back in the token response (`patient`,
//! `encounter`) and in the access token's claims, where the `smart-on-fhir` engine reads it.

use crate::authz::authorize;
use crate::context::App;
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

/// A stored EHR launch: its context and the client it was made for.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct LaunchRecord {
    #[serde(flatten)]
    pub context: LaunchContext,
    /// The client the launch was made for; a launch without one is never honoured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
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
    let Value::Object(m) = &body else {
        return Err(Error::InvalidRequest("body must be a JSON object".into()));
    };
    if let Some(k) = m
        .keys()
        .find(|k| !["client_id", "patient", "encounter"].contains(&k.as_str()))
    {
        return Err(Error::validation(
            k.as_str(),
            "unknown field; a launch has client_id, patient, encounter",
        ));
    }
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
    // The launch is for one app: another client presenting its id gets nothing.
    let client_id = match body.get("client_id") {
        Some(Value::String(c)) => c.clone(),
        Some(_) => return Err(Error::validation("client_id", "must be a string")),
        None => {
            return Err(Error::validation(
                "client_id",
                "is required: a launch is bound to the client it is made for",
            ))
        }
    };
    match crate::authn::load_client(app, &client_id).await? {
        Some(c) if c.is_smart_app() => {}
        Some(_) => {
            return Err(Error::validation(
                "client_id",
                "must name a client of type smart-app",
            ))
        }
        None => return Err(Error::validation("client_id", "names no client")),
    }
    let id = random_token(app);
    let expires_at = app.now() + LAUNCH_TTL;
    let rec = LaunchRecord {
        context: ctx.clone(),
        client_id: Some(client_id.clone()),
    };
    state::create(app, &launch_key(&id), &rec, expires_at).await?;
    Ok(no_store(json_response(
        201,
        &json!({"launch": id, "expires_at": expires_at, "client_id": client_id, "context": ctx}),
    )))
}

/// The context of a `launch` parameter, if it names a live launch made for `client_id`, with
/// the stored record's raw form (for [`consume`]).
pub async fn lookup(app: &App, id: &str, client_id: &str) -> Result<Option<LaunchContext>> {
    Ok(read(app, id, client_id).await?.map(|(c, _)| c))
}

async fn read(app: &App, id: &str, client_id: &str) -> Result<Option<(LaunchContext, String)>> {
    if id.is_empty() || id.len() > 128 {
        return Ok(None);
    }
    Ok(state::read::<LaunchRecord>(app, &launch_key(id))
        .await?
        .filter(|(r, _)| r.client_id.as_deref() == Some(client_id))
        .map(|(r, raw)| (r.context, raw)))
}

/// Uses a launch up: true for the one caller that removed it, false if it was already used
/// (or expired, or is another client's). SMART launches are single-use.
pub async fn consume(app: &App, id: &str, client_id: &str) -> Result<bool> {
    let Some((_, raw)) = read(app, id, client_id).await? else {
        return Ok(false);
    };
    state::remove(app, &launch_key(id), &raw).await
}

/// The User's `fhirUser` reference (`Patient/123`, `Practitioner/9`), as Aidbox keeps it (a
/// string, `{"reference": ...}` or `{"resourceType": ..., "id": ...}`).
pub fn fhir_user(user: &User) -> Option<String> {
    super::ceiling::fhir_user_ref(user).map(|(t, id)| format!("{t}/{id}"))
}

/// Standalone `launch/patient`: the patient a patient-user is.
pub fn standalone_patient(user: &User) -> Option<String> {
    super::ceiling::own_patient(user)
}
