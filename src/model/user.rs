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
    Ok(())
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
