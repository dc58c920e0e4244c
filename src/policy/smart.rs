//! The `smart-on-fhir` engine: allows a FHIR REST request when a SMART scope granted to the
//! token covers it (SMART App Launch 2.x, "Scopes and Launch Context",
//! <https://hl7.org/fhir/smart-app-launch/scopes-and-launch-context.html>).
//!
//! `{"engine": "smart-on-fhir"}`, with one optional field, `fhir-base-path` (`"/fhir"`): the
//! path prefix of the FHIR API, stripped from `uri` before the request is classified; a request
//! outside it is denied. Default: the deployment's FHIR bases (`FHIR_BASE_PATHS`): the base the
//! authorizer names in the request's `fhir-base` is stripped, a path under none is denied (and a
//! request without the key, built by hand, is read at the root).
//!
//! Inputs from the policy request: `request-method`, `uri`, `params` (query parameters; the
//! route params `resource/*` are ignored, the path is classified again), `body`, `user`, and
//! from `jwt`: `scope` (space-separated string, or an array of strings), `patient` (the patient
//! in context; Aidbox's tokens carry it as `context.patient`, read too: when both are there
//! they must agree) and `sub_kind`. Scopes are parsed leniently: malformed ones grant nothing.
//!
//! Decision ([`crate::smart::classify`] gives the interaction and the permission it needs):
//! - The engine decides only for FHIR resource types. The server's own resource types (the
//!   admin API: `Client`, `User`, `AccessPolicy`, `TokenIntrospector`, and the names reserved
//!   for later ones, [`crate::model::is_server_type`]) are never FHIR types to it: a request
//!   whose path has such a name in any segment (percent-decoded, any case, before or after
//!   `fhir-base-path`: `/Client`, `/fhir/Client/x`, `/Client/_history`, `/Client/$op`,
//!   `/Patient/x/User`) is denied, and so is a search whose `_include`, `_revinclude`, `_has`
//!   or Aidbox's `_with` names one (or uses the `*` wildcard), or whose chained parameter goes
//!   through one (`subject:User.email`), in the query or in a form body (the policy
//!   request's `params` hold both). No scope grants them, `*` and an explicit
//!   `system/Client.cruds` included. Admin access is granted by other engines (docs/reference.md,
//!   "Who may call it").
//! - `GET /metadata` is allowed without any scope (the CapabilityStatement is public).
//! - Requests that are not type/instance interactions are denied.
//! - Otherwise some clinical scope must cover the type (or `*`) and the permission, and:
//!   - query restrictions (`?category=laboratory`): every restricted parameter must be in the
//!     request's query with an equal value; a token value without `|` in the scope also matches
//!     the code part of a `system|code` value in the request. This applies to every interaction
//!     (the engine cannot see response or stored bodies), so a restricted scope in practice
//!     grants searches and conditional interactions carrying the restriction.
//!   - `_include`, `_revinclude`, `_has` and `_with` parameters (and `POST /T/_search`: its
//!     form body is in `params`, but a body of another type is not) reach resources of other
//!     types: only an unrestricted
//!     `user/*` or `system/*` scope allows them.
//!   - `patient/` scopes need `jwt.patient` (or `jwt.context.patient`) and confine the request to that patient's
//!     compartment (see [`in_compartment`]).
//!   - `user/` scopes allow any instance of the type (the user's own access rules are up to
//!     other policies and the origin).
//!   - `system/` scopes apply only to requests without a user: the request's `user` is null
//!     and `jwt.sub_kind` is not `"user"` (SMART Backend Services tokens name the client).

use std::sync::Arc;

use serde_json::{Map, Value};

use super::{Ctx, Engine, PolicyError, Rule};
use crate::smart::{self, ClinicalScope, Interaction, Level, RestRequest, Scope};

/// A compiled `smart-on-fhir` policy.
#[derive(Debug)]
struct Smart {
    /// `fhir-base-path` without a trailing slash (empty for the root), if the policy sets it.
    base: Option<String>,
}

/// Compiles a `smart-on-fhir` policy: the optional `fhir-base-path` must be a string starting
/// with `/`.
pub(crate) fn compile(body: &Map<String, Value>, ctx: Ctx<'_>) -> Result<Rule, PolicyError> {
    let base = match body.get("fhir-base-path") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.starts_with('/') && !s.contains(['?', '#']) => {
            if names_server_type(s) {
                // Every request under it would be denied: say so when the policy is written.
                return Err(PolicyError::new(
                    ctx.path("fhir-base-path"),
                    "fhir-base-path must not name a resource type of the admin API (Client, \
                     User, AccessPolicy, ...): those are never FHIR types",
                ));
            }
            Some(s.trim_end_matches('/').to_owned())
        }
        Some(_) => {
            return Err(PolicyError::new(
                ctx.path("fhir-base-path"),
                "fhir-base-path must be a path starting with /, such as \"/fhir\"",
            ))
        }
    };
    Ok(Arc::new(Smart { base }))
}

/// What the engine reads from one policy request.
struct Req<'a> {
    rest: RestRequest<'a>,
    /// Query parameters (without the `resource/*` route params).
    query: &'a Map<String, Value>,
    body: &'a Value,
    patient: Option<&'a str>,
    /// `system/` scopes may apply (no user).
    system_ok: bool,
    /// The request may return or test resources of other types.
    widening: bool,
}

impl Req<'_> {
    /// The value of a query parameter. A repeated parameter (an array of its values in
    /// `params`) must satisfy a restriction or compartment check with EVERY value, since the
    /// origin may act on any of them (FHIR ANDs them; other servers take the first or the
    /// last): its value here is the one string all its values equal, or none when they differ,
    /// so the check fails (fail closed; two spellings of one code, `laboratory` and
    /// `system|laboratory`, are refused together too).
    fn param(&self, name: &str) -> Option<&str> {
        match self.query.get(name)? {
            Value::String(s) => Some(s),
            Value::Array(values) => {
                let first = values.first()?.as_str()?;
                values
                    .iter()
                    .all(|v| v.as_str() == Some(first))
                    .then_some(first)
            }
            _ => None,
        }
    }
}

impl Engine for Smart {
    fn allows(&self, request: &Value) -> bool {
        self.decide(request).is_ok()
    }

    fn explain(&self, request: &Value) -> Value {
        match self.decide(request) {
            Ok(()) => serde_json::json!({"result": true}),
            Err(reason) => serde_json::json!({"result": false, "reason": reason}),
        }
    }

    /// The clinical scope this request needs: `{level}/{Type}.{permissions}` (`*` for the type
    /// when the request reaches other types through `_include` and the like), in the SMART
    /// version the token's clinical scopes are written in (v1 `read`/`write` when all of them
    /// are v1, else v2 letters); levels tried: `system/` for a token without a user, else
    /// `patient/` (with a patient in context) then `user/`. Offered only when the engine,
    /// run again with that scope added to the token's, allows the request: a denial for the
    /// patient compartment or a search restriction a scope cannot lift gets `None`.
    fn needed_scope(&self, request: &Value) -> Option<String> {
        if self.decide(request).is_ok() {
            return None;
        }
        let jwt = request.get("jwt")?;
        let granted: Vec<Scope> = match jwt.get("scope")? {
            Value::String(s) => smart::parse(s),
            Value::Array(items) => items
                .iter()
                .filter_map(Value::as_str)
                .flat_map(smart::parse)
                .collect(),
            _ => return None,
        };
        let (method, uri) = (str_at(request, "request-method")?, str_at(request, "uri")?);
        let base = match (&self.base, request.get("fhir-base")) {
            (Some(b), _) => b.as_str(),
            (None, Some(Value::String(b))) => b.as_str(),
            _ => "",
        };
        let path = uri.strip_prefix(base)?;
        let query = request.get("params").and_then(Value::as_object);
        let user_keys = || {
            query
                .into_iter()
                .flatten()
                .filter(|(k, _)| !k.starts_with("resource/"))
        };
        let has_query = user_keys().next().is_some();
        let widening = user_keys().any(|(k, _)| {
            ["_include", "_revinclude", "_has", "_with"]
                .iter()
                .any(|w| k.starts_with(w))
        });
        let rest = smart::classify(method, path, has_query)?;
        let needed = rest.interaction.permission();
        if needed.is_empty() {
            return None;
        }
        let v1 = {
            let mut clinical = granted.iter().filter_map(|s| match s {
                Scope::Clinical(c) => Some(c.syntax),
                _ => None,
            });
            let first = clinical.next();
            first == Some(smart::Syntax::V1) && clinical.all(|s| s == smart::Syntax::V1)
        };
        let perms = if v1 {
            if smart::Permissions::V1_READ.contains(needed) {
                "read".to_string()
            } else {
                "write".to_string()
            }
        } else {
            needed.to_string()
        };
        let ty = if widening || rest.post_search && rest.interaction == Interaction::Search {
            "*"
        } else {
            rest.resource_type
        };
        let user_absent = request.get("user").is_none_or(Value::is_null);
        let levels: &[Level] = if user_absent && str_at(jwt, "sub_kind") != Some("user") {
            &[Level::System]
        } else if token_patient(jwt).is_some() && !widening {
            &[Level::Patient, Level::User]
        } else {
            &[Level::User]
        };
        for level in levels {
            let candidate = format!("{}/{ty}.{perms}", level.as_str());
            let mut with = request.clone();
            let scope = &mut with["jwt"]["scope"];
            match scope {
                Value::String(s) => {
                    s.push(' ');
                    s.push_str(&candidate);
                }
                Value::Array(items) => items.push(Value::String(candidate.clone())),
                _ => return None,
            }
            if self.decide(&with).is_ok() {
                return Some(candidate);
            }
        }
        None
    }
}

impl Smart {
    /// The decision, with the reason of a denial (a static string: nothing is allocated for
    /// it on the hot path).
    fn decide(&self, request: &Value) -> Result<(), &'static str> {
        let (Some(method), Some(uri)) = (str_at(request, "request-method"), str_at(request, "uri"))
        else {
            return Err("the request has no method or uri");
        };
        if names_server_type(uri) {
            return Err("the path names an admin type of this server (Client, User, AccessPolicy, ...): no SMART scope reaches it");
        }
        // Without `fhir-base-path`: the deployment's FHIR base the path is under
        // (`fhir-base`, from FHIR_BASE_PATHS; null when it is under none), or the root when
        // the request does not say (a policy request built by hand).
        let base = match (&self.base, request.get("fhir-base")) {
            (Some(b), _) => b.as_str(),
            (None, None) => "",
            (None, Some(Value::String(b))) => b.as_str(),
            (None, Some(_)) => return Err("the request's fhir-base is not a string"),
        };
        let path = match uri.strip_prefix(base) {
            Some(p) if p.is_empty() || p.starts_with('/') => p,
            _ => return Err("the path is not under the FHIR base"),
        };
        static EMPTY: std::sync::OnceLock<Map<String, Value>> = std::sync::OnceLock::new();
        let query = match request.get("params") {
            Some(Value::Object(m)) => m,
            _ => EMPTY.get_or_init(Map::new),
        };
        let mut has_query = false;
        let mut widening = false;
        for (k, v) in query.iter().filter(|(k, _)| !k.starts_with("resource/")) {
            has_query = true;
            if chains_through_server_type(k) {
                return Err("a search parameter chains through an admin type of this server");
            }
            if ["_include", "_revinclude", "_has", "_with"]
                .iter()
                .any(|w| k.starts_with(w))
            {
                widening = true;
                if reaches_server_type(k, v) {
                    return Err("an _include/_revinclude/_has/_with parameter reaches an admin type of this server or every type");
                }
            }
        }
        let Some(rest) = smart::classify(method, path, has_query) else {
            return Err("the request is not a FHIR REST interaction this engine knows");
        };
        if rest.interaction == Interaction::Capabilities {
            return Ok(());
        }
        let jwt = request.get("jwt").unwrap_or(&Value::Null);
        let granted: Vec<Scope> = match jwt.get("scope") {
            Some(Value::String(s)) => smart::parse(s),
            Some(Value::Array(items)) => items
                .iter()
                .filter_map(Value::as_str)
                .flat_map(smart::parse)
                .collect(),
            _ => return Err("the token carries no scope (jwt.scope)"),
        };
        let user_absent = request.get("user").is_none_or(Value::is_null);
        let req = Req {
            rest,
            query,
            body: request.get("body").unwrap_or(&Value::Null),
            patient: token_patient(jwt),
            system_ok: user_absent && str_at(jwt, "sub_kind") != Some("user"),
            widening: widening || rest.post_search,
        };
        if granted.iter().any(|s| match s {
            Scope::Clinical(c) => scope_allows(c, &req),
            _ => false,
        }) {
            Ok(())
        } else {
            Err("no granted scope covers this interaction (type, interaction, patient compartment or restriction)")
        }
    }
}

/// Does a path segment of `uri` name a resource type of this server (the admin API)? Segments
/// are percent-decoded first (`/%43lient`) and compared in any case, so no spelling a router
/// or origin might accept gets through; an id that happens to equal such a name is refused too
/// (fail closed).
fn names_server_type(uri: &str) -> bool {
    uri.split('/').any(|seg| {
        crate::model::is_server_type(seg)
            || (seg.contains('%')
                && crate::model::is_server_type(
                    &percent_encoding::percent_decode_str(seg).decode_utf8_lossy(),
                ))
    })
}

/// Does an `_include`/`_revinclude`/`_has`/`_with` parameter (name `k`, value a string or a
/// list of strings) reach a resource type of this server, or every type (`*`)? FHIR search:
/// the name and value parts are separated by `:` (`_revinclude=User:patient`,
/// `_has:User:link:id=x`, `_include=Patient:*`); a list of values may also be joined by `,`.
/// Aidbox's `_with` is an include too, written `Encounter.subject` or `subject{Patient}`.
fn reaches_server_type(k: &str, v: &Value) -> bool {
    let bad = |s: &str| {
        s.split([':', ',', '.', '{', '}'])
            .map(str::trim)
            .any(|part| part == "*" || crate::model::is_server_type(part))
    };
    bad(k)
        || match v {
            Value::String(s) => bad(s),
            Value::Array(items) => items.iter().any(|i| i.as_str().is_none_or(bad)),
            Value::Null => false,
            _ => true,
        }
}

/// Does a search parameter name chain through a resource type of this server? FHIR search,
/// "Chained parameters": `subject:User.email=x` searches by a field of the referenced User (an
/// origin that holds the admin resources, Aidbox, answers it: an oracle on users' fields). The
/// type modifier is a type name, so it is compared exactly; the parameter name before it
/// (`role`, `scope`, ...) is not a type.
fn chains_through_server_type(k: &str) -> bool {
    k.split([':', '.']).skip(1).any(|part| {
        crate::model::RESERVED_TYPE_NAMES.contains(&part)
            || crate::model::ResourceType::parse(part).is_some()
    })
}

/// The patient in context of a token: the SMART `patient` claim, or Aidbox's
/// `context.patient` (what Aidbox's SMART tokens carry). Both present and different, or
/// either present but not a non-empty string: none (fail closed).
fn token_patient(jwt: &Value) -> Option<&str> {
    fn read(v: Option<&Value>) -> Result<Option<&str>, ()> {
        match v {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if !s.is_empty() => Ok(Some(s)),
            Some(_) => Err(()),
        }
    }
    let top = read(jwt.get("patient")).ok()?;
    let ctx = match jwt.get("context") {
        None | Some(Value::Null) => None,
        Some(Value::Object(c)) => read(c.get("patient")).ok()?,
        Some(_) => return None,
    };
    match (top, ctx) {
        (Some(a), Some(b)) if a != b => None,
        (a, b) => a.or(b),
    }
}

/// The string at `v[k]`, if any.
fn str_at<'a>(v: &'a Value, k: &str) -> Option<&'a str> {
    v.get(k).and_then(Value::as_str)
}

/// Does a policy request reach a resource type of this server: a path segment
/// ([`names_server_type`]), an include, `_has` or chain in `params`, or the `request.url` (an
/// absolute one too) or `resource.resourceType` of an entry of a JSON Bundle `body`? The authorizer refuses such requests to anonymous callers.
pub(crate) fn touches_server_type(request: &Value) -> bool {
    if str_at(request, "uri").is_some_and(names_server_type) {
        return true;
    }
    if let Some(Value::Object(params)) = request.get("params") {
        for (k, v) in params.iter().filter(|(k, _)| !k.starts_with("resource/")) {
            if chains_through_server_type(k)
                || (["_include", "_revinclude", "_has", "_with"]
                    .iter()
                    .any(|w| k.starts_with(w))
                    && reaches_server_type(k, v))
            {
                return true;
            }
        }
    }
    if let Some(Value::Array(entries)) = request.get("body").and_then(|b| b.get("entry")) {
        for e in entries {
            if e.get("resource")
                .and_then(|r| r.get("resourceType"))
                .and_then(Value::as_str)
                .is_some_and(crate::model::is_server_type)
            {
                return true;
            }
            let url = e.get("request").and_then(|r| r.get("url"));
            match url {
                None | Some(Value::Null) => {}
                Some(Value::String(u)) => {
                    let path = u.split(['?', '#']).next().unwrap_or("");
                    if names_server_type(path) || path.contains("://") {
                        return true;
                    }
                }
                Some(_) => return true,
            }
        }
    }
    false
}

/// Does one clinical scope allow the request?
fn scope_allows(scope: &ClinicalScope, req: &Req<'_>) -> bool {
    if !scope.covers_type(req.rest.resource_type)
        || !scope.grants(req.rest.interaction.permission())
    {
        return false;
    }
    if !scope
        .restrictions
        .iter()
        .all(|(name, value)| req.param(name).is_some_and(|q| token_matches(value, q)))
    {
        return false;
    }
    if req.widening
        && !(scope.level != Level::Patient
            && scope.resource_type.is_none()
            && scope.restrictions.is_empty())
    {
        return false;
    }
    match scope.level {
        Level::User => true,
        Level::System => req.system_ok,
        Level::Patient => req.patient.is_some_and(|p| in_compartment(req, p)),
    }
}

/// A scope restriction value against the request's value of the same parameter: equal, or,
/// when the scope value has no `|`, equal to the code part of a `system|code` token.
fn token_matches(scope_value: &str, request_value: &str) -> bool {
    request_value == scope_value
        || (!scope_value.contains('|')
            && request_value
                .rsplit_once('|')
                .is_some_and(|(_, code)| code == scope_value))
}

/// Is the request confined to the compartment of `patient` (SMART `patient/` scopes)?
///
/// - `Patient` itself: instance interactions (read, vread, history, update, patch, delete) on
///   `Patient/{patient}`; search, conditional patch and conditional delete with
///   `_id={patient}`. Create, type history and conditional update are denied.
/// - Other types: search, conditional delete, read, vread and instance history need a
///   `patient` parameter equal to `{patient}` or `Patient/{patient}` (also `patient:Patient`),
///   or `subject=Patient/{patient}` (or `subject:Patient={patient}`; a bare id in `subject` is
///   refused, it could name a Group or Device with the same id). On read, vread and instance
///   history a plain FHIR server ignores the parameter, so it confines the request only when
///   the origin enforces it (answers 404 for a resource outside that compartment); without
///   the parameter such reads are denied, the conservative choice.
/// - Create, update and conditional update of other types need the JSON body's
///   `subject.reference` or `patient.reference` to be `Patient/{patient}` (the engine cannot
///   see the stored resource an update replaces).
/// - The parameters confine a search only if the origin knows them for that type: it must
///   reject unknown search parameters (FHIR `Prefer: handling=strict`), or `patient/*.rs`
///   would reach types that have no `patient`/`subject` parameter (`Practitioner?patient=…`).
/// - Delete, patch and conditional patch of other types (no body that names the patient, or a
///   patch that could move the resource out) and type-level history are denied.
fn in_compartment(req: &Req<'_>, patient: &str) -> bool {
    let reference = format!("Patient/{patient}");
    let rest = &req.rest;
    if rest.resource_type == "Patient" {
        return match rest.interaction {
            Interaction::Read
            | Interaction::Vread
            | Interaction::HistoryInstance
            | Interaction::Update
            | Interaction::Patch
            | Interaction::Delete => rest.id == Some(patient),
            Interaction::Search
            | Interaction::ConditionalPatch
            | Interaction::ConditionalDelete => req.param("_id") == Some(patient),
            _ => false,
        };
    }
    match rest.interaction {
        Interaction::Search
        | Interaction::ConditionalDelete
        | Interaction::Read
        | Interaction::Vread
        | Interaction::HistoryInstance => {
            req.param("patient")
                .is_some_and(|v| v == patient || v == reference)
                || req.param("patient:Patient") == Some(patient)
                || req.param("subject") == Some(reference.as_str())
                || req.param("subject:Patient") == Some(patient)
        }
        Interaction::Create | Interaction::Update | Interaction::ConditionalUpdate => {
            ["subject", "patient"].iter().any(|field| {
                req.body
                    .get(field)
                    .and_then(|r| r.get("reference"))
                    .and_then(Value::as_str)
                    == Some(reference.as_str())
            })
        }
        _ => false,
    }
}
