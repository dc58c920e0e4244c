//! Scope: a named scope string (Aidbox's `Scope`, docs
//! `reference/system-resources-reference/core-module-resources.md`): `scope` (the value),
//! `title` (shown on the consent page), `description`. A Client's `allowed-scopes` (and
//! `scope`) may list references to Scopes, `{"id": ..., "resourceType": "Scope"}`; the scope
//! ceiling reads them as the Scopes' `scope` strings ([`ScopeSet`]). A reference to a Scope
//! that does not exist grants nothing.

use super::{opt_str, reference_parts};
use crate::error::{Error, Result};
use serde_json::{Map, Value};
use std::collections::HashMap;

/// The fields a Scope may have (Aidbox's schema; `_source` is Aidbox-internal). A Scope is a
/// small closed resource: a misspelt field is refused rather than kept.
const FIELDS: [&str; 6] = [
    "id",
    "resourceType",
    "meta",
    "scope",
    "title",
    "description",
];

/// Validates a Scope: `scope` and `title` required (as in Aidbox), `scope` one scope token
/// that parses (as a `Client.scope` entry), no unknown fields.
pub fn validate(m: &Map<String, Value>) -> Result<()> {
    if let Some(k) = m.keys().find(|k| !FIELDS.contains(&k.as_str())) {
        return Err(Error::validation(
            k.as_str(),
            "unknown field; a Scope has scope, title and description",
        ));
    }
    let Some(s) = opt_str(m, "scope", "")? else {
        return Err(Error::validation("scope", "is required (the scope value)"));
    };
    check_scope_value(s, "scope")?;
    match opt_str(m, "title", "")? {
        Some(t) if !t.trim().is_empty() => {}
        _ => {
            return Err(Error::validation(
                "title",
                "is required (a non-empty string)",
            ))
        }
    }
    opt_str(m, "description", "")?;
    Ok(())
}

/// One scope string as a Client may register it: a single RFC 6749 3.3 scope-token that
/// parses (SMART clinical scopes must be well-formed).
pub fn check_scope_value(s: &str, path: &str) -> Result<()> {
    if !crate::oauth::valid_scope_token(s) {
        return Err(Error::validation(
            path,
            "must be one scope: no spaces, quotes or backslashes (RFC 6749 3.3)",
        ));
    }
    if let Err(e) = s.parse::<crate::smart::Scope>() {
        return Err(Error::validation(path, e.to_string()));
    }
    Ok(())
}

/// The id of the Scope a `Client.allowed-scopes` entry refers to, when it is a Scope
/// reference.
pub fn reference_id(v: &Value) -> Option<&str> {
    match reference_parts(v)? {
        ("Scope", id) => Some(id),
        _ => None,
    }
}

/// Every stored Scope's value, by id. A Scope whose value is not a valid scope (written
/// around the API) is left out: a reference to it grants nothing.
#[derive(Debug, Clone, Default)]
pub struct ScopeSet {
    by_id: HashMap<String, String>,
}

impl ScopeSet {
    pub fn from_docs(docs: &[Value]) -> ScopeSet {
        let by_id = docs
            .iter()
            .filter_map(|d| {
                let id = d.get("id")?.as_str()?;
                let s = d.get("scope")?.as_str()?;
                check_scope_value(s, "scope").ok()?;
                Some((id.to_string(), s.to_string()))
            })
            .collect();
        ScopeSet { by_id }
    }

    /// The scope value of Scope `id`, if it exists.
    pub fn get(&self, id: &str) -> Option<&str> {
        self.by_id.get(id).map(String::as_str)
    }
}

/// Fills [`Client::referenced_scopes`](super::client::Client::referenced_scopes) from the
/// stored Scopes (cached like the policies). Without references, nothing is read.
pub async fn resolve(app: &crate::context::App, client: &mut super::client::Client) -> Result<()> {
    if client.scope_reference_ids().is_empty() {
        return Ok(());
    }
    let scopes = app.repo().scopes().await?;
    let values: Vec<String> = client
        .scope_reference_ids()
        .into_iter()
        .filter_map(|id| scopes.get(id))
        .map(str::to_string)
        .collect();
    client.referenced_scopes = values;
    Ok(())
}
