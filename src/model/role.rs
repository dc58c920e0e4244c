//! Role: a role name given to one User (Aidbox's `Role`, docs
//! `tutorials/security-access-control-tutorials/rbac/flexible-rbac-built-in-to-aidbox.md`).
//!
//! `{"name": "practitioner", "user": {"reference": "User/u1"}, "links": {"practitioner":
//! {"reference": "Practitioner/pr-1"}}, "description": ..., "context": {...}}`. An
//! AccessPolicy with `roleName: practitioner` applies only to requests whose user has a Role of
//! that name; the policy request carries the user's Roles as `role` and `session.role`
//! ([`attach`]). Role is an open resource in Aidbox: fields we do not interpret are kept, but
//! `name`, `user` and `links` are checked, since they decide who gets what.

use super::{check_reference, opt_object, opt_str, public_view, reference_parts};
use crate::error::{Error, Result};
use serde_json::{Map, Value};
use std::collections::HashMap;

/// Aidbox's `Role.links` keys and the resource type each refers to.
pub const LINKS: [(&str, &str); 6] = [
    ("patient", "Patient"),
    ("practitionerRole", "PractitionerRole"),
    ("practitioner", "Practitioner"),
    ("organization", "Organization"),
    ("person", "Person"),
    ("relatedPerson", "RelatedPerson"),
];

/// Longest role name we accept.
pub const MAX_NAME_LEN: usize = 256;

/// Validates a Role: `name` (required, a non-empty string), `user` (required, a Reference to a
/// User), `links` (Aidbox's keys only, each a Reference of its type), `description` (string),
/// `context` (object).
pub fn validate(m: &Map<String, Value>) -> Result<()> {
    match m.get("name") {
        Some(Value::String(s))
            if !s.trim().is_empty()
                && s.len() <= MAX_NAME_LEN
                && !s.chars().any(char::is_control) => {}
        None | Some(Value::Null) => return Err(Error::validation("name", "is required")),
        Some(_) => {
            return Err(Error::validation(
                "name",
                format!("must be a non-empty string of at most {MAX_NAME_LEN} characters"),
            ))
        }
    }
    match m.get("user") {
        None | Some(Value::Null) => {
            return Err(Error::validation(
                "user",
                "is required: the User this role is given to ({\"reference\": \"User/<id>\"})",
            ))
        }
        Some(u) => {
            check_reference(u, "user", &["User"])?;
        }
    }
    if let Some(links) = opt_object(m, "links", "")? {
        for (k, v) in links {
            let path = format!("links.{k}");
            let Some((_, ty)) = LINKS.iter().find(|(key, _)| key == k) else {
                return Err(Error::validation(
                    path,
                    format!("unknown link; known: {}", LINKS.map(|(k, _)| k).join(", ")),
                ));
            };
            if !v.is_null() {
                check_reference(v, &path, &[ty])?;
            }
        }
    }
    opt_str(m, "description", "")?;
    opt_object(m, "context", "")?;
    Ok(())
}

/// The id of the User a stored Role is given to, if its `user` is a well-formed User reference.
pub fn user_id(doc: &Value) -> Option<&str> {
    match reference_parts(doc.get("user")?)? {
        ("User", id) => Some(id),
        _ => None,
    }
}

/// A Role as policies see it: [`public_view`], with every reference (`user`, `links.*`) also
/// in Aidbox's `{id, resourceType}` form, so `.session.role.0.links.practitioner.id` (Aidbox's
/// RBAC tutorial) resolves whichever form was written.
pub fn policy_view(doc: &Value) -> Value {
    let mut v = public_view(doc);
    let normalize = |r: &mut Value| {
        let Some((t, id)) = reference_parts(r).map(|(t, id)| (t.to_string(), id.to_string()))
        else {
            return;
        };
        if let Value::Object(o) = r {
            o.insert("id".into(), Value::String(id));
            o.insert("resourceType".into(), Value::String(t));
        }
    };
    if let Some(u) = v.get_mut("user") {
        normalize(u);
    }
    if let Some(Value::Object(links)) = v.get_mut("links") {
        for l in links.values_mut() {
            normalize(l);
        }
    }
    v
}

/// Every stored Role, by the id of its User, in [`policy_view`] form. A Role without a
/// string `name` or a well-formed User reference (written around the API) is left out.
#[derive(Debug, Clone, Default)]
pub struct RoleSet {
    by_user: HashMap<String, Vec<Value>>,
}

impl RoleSet {
    pub fn from_docs(docs: &[Value]) -> RoleSet {
        let mut by_user: HashMap<String, Vec<Value>> = HashMap::new();
        for d in docs {
            let named = d
                .get("name")
                .and_then(Value::as_str)
                .is_some_and(|n| !n.is_empty());
            if let (true, Some(u)) = (named, user_id(d)) {
                by_user
                    .entry(u.to_string())
                    .or_default()
                    .push(policy_view(d));
            }
        }
        RoleSet { by_user }
    }

    /// The Roles of one User (ordered by Role id).
    pub fn of(&self, user_id: &str) -> &[Value] {
        self.by_user.get(user_id).map(Vec::as_slice).unwrap_or(&[])
    }
}

/// Puts the caller's Roles into a policy request: `role` and `session.role`, both the list of
/// the user's Roles (Aidbox's RBAC tutorial matches `.session.role.0.links...`, its examples
/// `session.role` with `$contains`). `null` when the request has no user or the user has no
/// Role, so `present?` on them means "has a role".
pub fn attach(request: &mut Value, roles: &[Value]) {
    let Value::Object(m) = request else {
        return;
    };
    if roles.is_empty() {
        m.insert("role".into(), Value::Null);
        m.insert("session".into(), Value::Null);
    } else {
        let list = Value::Array(roles.to_vec());
        m.insert(
            "session".into(),
            serde_json::json!({ "role": list.clone() }),
        );
        m.insert("role".into(), list);
    }
}

/// The role names a policy request carries (`session.role[*].name`): what `roleName` checks.
pub fn names(request: &Value) -> impl Iterator<Item = &str> {
    request
        .get("session")
        .and_then(|s| s.get("role"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|r| r.get("name").and_then(Value::as_str))
}
