//! User: a person who signs in (Aidbox's `User`).

use super::{opt_bool, opt_str};
use crate::error::{Error, Result};
use serde_json::{Map, Value};

/// Validates the fields of a User we interpret (the password is already taken out).
pub fn validate(m: &Map<String, Value>) -> Result<()> {
    if let Some(email) = opt_str(m, "email", "")? {
        if normalize_email(email).is_none() {
            return Err(Error::validation("email", "is not an email address"));
        }
    }
    opt_bool(m, "active", "")?;
    opt_bool(m, "inactive", "")?;
    match m.get("fhirUser") {
        None | Some(Value::Null) => {}
        Some(v) => {
            if fhir_user_parts(v).is_none() {
                return Err(Error::validation(
                    "fhirUser",
                    "must name one FHIR resource: {\"id\": ..., \"resourceType\": ...} \
                     (Aidbox), {\"reference\": \"Patient/<id>\"}, \"Patient/<id>\" or an absolute \
                     URL ending in Patient/<id>; the forms given together must agree, and \
                     the admin API's types (User, Client, ...) are not FHIR resources",
                ));
            }
        }
    }
    Ok(())
}

/// A User's `fhirUser` as (resource type, id), read from Aidbox's
/// `{"id": "x", "resourceType": "Patient"}`, `{"reference": "Patient/x"}`, `"Patient/x"`, or an
/// absolute URL ending in `Patient/x` (as a string or a `reference`). `None` for anything
/// else: other keys in the object (but `display`), two forms that disagree, a type of the admin
/// API, an id that is not a FHIR id.
pub fn fhir_user_parts(v: &Value) -> Option<(String, String)> {
    fn from_str(r: &str) -> Option<(&str, &str)> {
        let mut segs = r.rsplit('/');
        let id = segs.next()?;
        let ty = segs.next()?;
        // `Type/id` or `<base>/Type/id`, nothing else (`Patient/x/_history/1` is not understood).
        let rest_ok =
            segs.next().is_none() || r.starts_with("https://") || r.starts_with("http://");
        rest_ok.then_some((ty, id))
    }
    let (t, id) = match v {
        Value::String(s) => from_str(s)?,
        Value::Object(o) => {
            if o.keys().any(|k| {
                !matches!(
                    k.as_str(),
                    "reference" | "id" | "resourceType" | "display" | "type"
                )
            }) || o.get("display").is_some_and(|d| !d.is_string())
            {
                return None;
            }
            let from_ref = match o.get("reference") {
                None => None,
                Some(r) => Some(from_str(r.as_str()?)?),
            };
            let from_ids = match (o.get("resourceType"), o.get("id")) {
                (None, None) => None,
                (Some(t), Some(id)) => Some((t.as_str()?, id.as_str()?)),
                _ => return None,
            };
            let parts = match (from_ref, from_ids) {
                (Some(a), Some(b)) if a != b => return None,
                (Some(a), _) | (None, Some(a)) => a,
                (None, None) => return None,
            };
            if o.get("type").is_some_and(|t| t.as_str() != Some(parts.0)) {
                return None;
            }
            parts
        }
        _ => return None,
    };
    (crate::smart::is_resource_type(t) && !super::is_server_type(t) && super::valid_id(id))
        .then(|| (t.to_string(), id.to_string()))
}

/// The lookup form of an email: trimmed and lowercased; None if it is not `local@domain`.
pub fn normalize_email(email: &str) -> Option<String> {
    let e = email.trim().to_lowercase();
    let (local, domain) = e.split_once('@')?;
    let ok = !local.is_empty()
        && !domain.is_empty()
        && !domain.contains('@')
        && e.len() <= 254
        && !e
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == '/');
    ok.then_some(e)
}

/// Aidbox's `inactive: true` (and the deprecated `active: false`) blocks the User: no sign-in,
/// and its sessions and tokens are refused.
pub fn is_active(doc: &Value) -> bool {
    doc.get("active").and_then(Value::as_bool) != Some(false)
        && doc.get("inactive").and_then(Value::as_bool) != Some(true)
}

/// A stored User, read for the password grant and the policy request. Debug shows neither the
/// password's hash nor the stored document (which holds it).
#[derive(Clone)]
pub struct User {
    pub id: String,
    pub password_hash: Option<String>,
    pub active: bool,
    pub doc: Value,
}

impl std::fmt::Debug for User {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("User")
            .field("id", &self.id)
            .field(
                "password_hash",
                &self.password_hash.as_ref().map(|_| "<redacted>"),
            )
            .field("active", &self.active)
            .finish_non_exhaustive()
    }
}

impl User {
    pub fn from_doc(doc: Value) -> User {
        User {
            id: doc
                .get("id")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
            password_hash: doc
                .get("password_hash")
                .and_then(Value::as_str)
                .map(str::to_string),
            active: is_active(&doc),
            doc,
        }
    }
}
