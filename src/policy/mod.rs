//! AccessPolicy engines, compatible with the Aidbox FHIR server's auth module.
//!
//! An AccessPolicy is a JSON resource; [`CompiledPolicy::compile`] validates it once (when it is
//! written or loaded) and turns it into a form that is cheap to evaluate: regexes are compiled,
//! JSON Schema `$ref`s are resolved, every nesting level is checked against [`MAX_DEPTH`].
//! [`CompiledPolicy::allows`] then evaluates it against the *policy request*, a JSON object built
//! by the authorizer for each incoming HTTP request:
//!
//! | key | value |
//! |---|---|
//! | `request-method` | lowercase method, `"get"` |
//! | `scheme` | `"https"` |
//! | `uri` | path without the query |
//! | `query-string` | raw query |
//! | `params` | query params (string values) plus route params such as `resource/type`, `resource/id` |
//! | `body` | parsed JSON body or `null` |
//! | `resource` | the same body when it is a JSON object (Aidbox's name for the incoming resource), else `null` |
//! | `headers` | lowercased header names |
//! | `remote-addr` | client address |
//! | `user`, `client`, `jwt` | the User and Client resources and the token claims, or `null` (all three for an anonymous request) |
//! | `operation` | `{"id": "FhirRead"}`: Aidbox's FHIR operation id ([`crate::authz::operation_id`]), or `null` |
//! | `fhir-base` | the FHIR base (`FHIR_BASE_PATHS`) the path is under, `""` for the root, or `null` |
//! | `role`, `session.role` | the user's Role resources (a list), or `null` |
//!
//! Engines (the `engine` field), one file each:
//! - `allow` (`allow.rs`): always allows.
//! - `matcho` (`matcho.rs`): Aidbox's Matcho DSL pattern in field `matcho` (a map).
//! - `json-schema` (`json_schema.rs`): a JSON Schema draft-07 in field `schema`, applied to the
//!   request after empty values are stripped; a keyword it does not implement is a compile
//!   error, never ignored.
//! - `complex` (`complex.rs`): `and` or `or` lists of sub-policies.
//! - `smart-on-fhir` (`smart.rs`): SMART App Launch scopes in `jwt.scope` checked against the
//!   FHIR REST interaction (see [`crate::smart`]); optional field `fhir-base-path`. It decides
//!   only for FHIR types, never for the admin API's ([`crate::model::is_server_type`]): admin
//!   access comes from the other engines (docs/reference.md, "Who may call it").
//!
//! `sql` (Aidbox evaluates SQL against its database) cannot run at the edge and is rejected.
//! Adding an engine is one new file exposing a
//! `compile(body, ctx) -> Result<Rule, PolicyError>` function plus one arm in `compile_engine`
//! (this file).
//!
//! Policies are OR-ed ([`evaluate`]): the first applicable policy that allows wins; no policy
//! (or none applicable) means deny. A policy's `link` list restricts it to given Clients, Users
//! or Operations; a policy without links is global. A policy with `roleName` allows only
//! requests whose user has a Role of that name ([`CompiledPolicy::allows`]).

use std::fmt;
use std::sync::Arc;

use serde_json::{Map, Value};

mod allow;
mod complex;
mod explain;
mod json_schema;
mod matcho;
mod smart;
mod value;

/// Does a policy request reach a resource type of the admin API (path, includes, chains, Bundle
/// entries)? See the `smart-on-fhir` engine, which shares the check.
pub fn touches_server_type(request: &serde_json::Value) -> bool {
    smart::touches_server_type(request)
}

/// The deepest nesting accepted anywhere: matcho patterns, JSON Schemas, `complex` sub-policies
/// (checked at compile time, deeper is a [`PolicyError`]) and request values / schema
/// recursion at evaluation time (deeper fails to match, it never overflows the stack).
pub const MAX_DEPTH: usize = 64;

/// Largest compiled size of one regex (bytes of NFA, see `regex_lite::RegexBuilder::size_limit`).
const REGEX_SIZE_LIMIT: usize = 1 << 20;

/// Names of the engines this crate evaluates, for error messages.
const KNOWN_ENGINES: &str = "allow, matcho, json-schema, complex, smart-on-fhir";

/// A policy that cannot be compiled, with the dotted JSON path of the offending field in the
/// AccessPolicy body (`"matcho.uri"`, `"and.1.engine"`, `"schema.properties.uri.pattern"`,
/// `"link.0.resourceType"`; the empty string for the body itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyError {
    /// Dotted path of the offending field; array elements are numbered from 0.
    pub path: String,
    /// What is wrong with it, in words meant for the operator who wrote the policy.
    pub message: String,
}

impl PolicyError {
    pub(crate) fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        PolicyError {
            path: path.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            write!(f, "AccessPolicy: {}", self.message)
        } else {
            write!(f, "AccessPolicy.{}: {}", self.path, self.message)
        }
    }
}

impl std::error::Error for PolicyError {}

/// What a `link` entry points at (Aidbox `AccessPolicy.link[].resourceType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LinkKind {
    /// `Client`: the policy applies to requests made by this client.
    Client,
    /// `User`: the policy applies to requests made on behalf of this user.
    User,
    /// `Operation`: the policy applies to this operation (route) only.
    Operation,
}

impl LinkKind {
    fn parse(s: &str) -> Option<LinkKind> {
        match s {
            "Client" => Some(LinkKind::Client),
            "User" => Some(LinkKind::User),
            "Operation" => Some(LinkKind::Operation),
            _ => None,
        }
    }
}

/// One entry of `AccessPolicy.link`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Link {
    /// The kind of resource linked.
    pub kind: LinkKind,
    /// Its id.
    pub id: String,
}

/// A compiled engine: evaluates the policy request. Implemented once per engine file.
pub(crate) trait Engine: fmt::Debug + Send + Sync {
    /// True when the request passes. Must never panic, whatever the request holds.
    fn allows(&self, request: &Value) -> bool;

    /// Why the request passes or not, for the policy tester (src/debug.rs): off the hot path,
    /// free to allocate. Its `result` always equals [`Engine::allows`] (src/policy/explain.rs).
    fn explain(&self, request: &Value) -> Value {
        serde_json::json!({ "result": self.allows(request) })
    }

    /// For a request this policy denies: a scope that, added to the token's, would make it
    /// allow (RFC 6750 3.1 `insufficient_scope`); `None` when no scope would, or the engine
    /// does not decide by scopes.
    fn needed_scope(&self, _request: &Value) -> Option<String> {
        None
    }
}

/// A compiled engine, shared cheaply between clones of a [`CompiledPolicy`].
pub(crate) type Rule = Arc<dyn Engine>;

/// Where in the AccessPolicy body an engine is being compiled.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ctx<'a> {
    /// Dotted path of the (sub-)policy object, `""` at the top, `"and.1"` inside a complex one.
    pub prefix: &'a str,
    /// How many `complex` levels enclose it.
    pub depth: usize,
}

impl Ctx<'_> {
    /// The dotted path of `field` inside this (sub-)policy.
    pub(crate) fn path(&self, field: &str) -> String {
        join(self.prefix, field)
    }
}

/// Joins a dotted path and one more segment.
pub(crate) fn join(prefix: &str, segment: &str) -> String {
    if prefix.is_empty() {
        segment.to_owned()
    } else {
        let mut s = String::with_capacity(prefix.len() + 1 + segment.len());
        s.push_str(prefix);
        s.push('.');
        s.push_str(segment);
        s
    }
}

/// Compiles a regex from a policy (matcho `#...` strings and JSON Schema `pattern`), with a
/// bounded compiled size so a policy cannot make every request slow.
pub(crate) fn compile_regex(src: &str, path: &str) -> Result<regex_lite::Regex, PolicyError> {
    regex_lite::RegexBuilder::new(src)
        .size_limit(REGEX_SIZE_LIMIT)
        .build()
        .map_err(|e| PolicyError::new(path, format!("invalid regular expression {src:?}: {e}")))
}

/// Top-level fields that configure one particular engine. A body that carries one of them for a
/// different engine is rejected: it is almost certainly a mistake, and silently ignoring a
/// restriction the author meant to apply would let requests through.
const ENGINE_FIELDS: &[(&str, &str)] = &[
    ("matcho", "matcho"),
    ("schema", "json-schema"),
    ("and", "complex"),
    ("or", "complex"),
    ("sql", "sql"),
    ("fhir-base-path", "smart-on-fhir"),
];

/// Validates and compiles one (sub-)policy object: dispatches on its `engine` field.
/// This is the single place that knows the list of engines.
pub(crate) fn compile_engine(
    body: &Map<String, Value>,
    ctx: Ctx<'_>,
) -> Result<(&'static str, Rule), PolicyError> {
    if ctx.depth > MAX_DEPTH {
        return Err(PolicyError::new(
            ctx.prefix,
            format!("policies nested more than {MAX_DEPTH} levels deep"),
        ));
    }
    let engine = match body.get("engine") {
        Some(Value::String(s)) => s.as_str(),
        None | Some(Value::Null) => {
            return Err(PolicyError::new(
                ctx.path("engine"),
                format!("missing engine; known engines: {KNOWN_ENGINES}"),
            ))
        }
        Some(_) => {
            return Err(PolicyError::new(
                ctx.path("engine"),
                format!("engine must be a string, one of: {KNOWN_ENGINES}"),
            ))
        }
    };
    for (field, owner) in ENGINE_FIELDS {
        if *owner != engine && body.get(*field).is_some_and(|v| !v.is_null()) {
            return Err(PolicyError::new(
                ctx.path(field),
                format!("field `{field}` belongs to engine {owner}, but this policy's engine is {engine}"),
            ));
        }
    }
    let compiled: (&'static str, Rule) = match engine {
        "allow" => ("allow", allow::compile(body, ctx)?),
        "matcho" => ("matcho", matcho::compile(body, ctx)?),
        "json-schema" => ("json-schema", json_schema::compile(body, ctx)?),
        "complex" => ("complex", complex::compile(body, ctx)?),
        "sql" => {
            return Err(PolicyError::new(
                ctx.path("engine"),
                format!(
                    "the sql engine is not supported at the edge (there is no database to query); \
                     use one of: {KNOWN_ENGINES}"
                ),
            ))
        }
        "smart-on-fhir" => ("smart-on-fhir", smart::compile(body, ctx)?),
        other => {
            return Err(PolicyError::new(
                ctx.path("engine"),
                format!("unknown engine {other:?}; known engines: {KNOWN_ENGINES}"),
            ))
        }
    };
    Ok(compiled)
}

/// An AccessPolicy, validated and ready to evaluate. Cheap to clone (the engine is shared).
#[derive(Debug, Clone)]
pub struct CompiledPolicy {
    engine: &'static str,
    links: Vec<Link>,
    /// Aidbox's `roleName`: the policy allows only requests whose user has a Role of this name.
    role_name: Option<String>,
    rule: Rule,
}

impl CompiledPolicy {
    /// Validate and compile an AccessPolicy resource body (the whole JSON object as PUT by the
    /// user). `id`, `resourceType`, `meta`, `description` and other unknown top-level keys are
    /// ignored, except keys that configure an engine other than the one named by `engine`
    /// (`matcho`, `schema`, `and`, `or`, `sql`), which are errors. `roleName` must be a
    /// non-empty string (see [`CompiledPolicy::allows`]). Errors name the offending field.
    pub fn compile(policy: &Value) -> Result<CompiledPolicy, PolicyError> {
        let Some(body) = policy.as_object() else {
            return Err(PolicyError::new(
                "",
                "an AccessPolicy must be a JSON object",
            ));
        };
        let role_name = match body.get("roleName") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) if !s.trim().is_empty() => Some(s.clone()),
            Some(_) => {
                return Err(PolicyError::new(
                    "roleName",
                    "roleName must be a non-empty string: the name of a Role",
                ))
            }
        };
        let links = parse_links(body.get("link"))?;
        let (engine, rule) = compile_engine(
            body,
            Ctx {
                prefix: "",
                depth: 0,
            },
        )?;
        Ok(CompiledPolicy {
            engine,
            links,
            role_name,
            rule,
        })
    }

    /// The engine name: `allow`, `matcho`, `json-schema` or `complex`.
    pub fn engine(&self) -> &str {
        self.engine
    }

    /// The `link` entries; empty for a global policy.
    pub fn links(&self) -> &[Link] {
        &self.links
    }

    /// Does this policy apply to the caller? No links = global = applies. Otherwise it applies
    /// when a `Client` link id equals `client_id`, a `User` link id equals `user_id`, or an
    /// `Operation` link id equals `operation_id` (Aidbox AccessPolicy.link).
    pub fn applies_to(
        &self,
        client_id: Option<&str>,
        user_id: Option<&str>,
        operation_id: Option<&str>,
    ) -> bool {
        if self.links.is_empty() {
            return true;
        }
        self.links.iter().any(|link| {
            let wanted = match link.kind {
                LinkKind::Client => client_id,
                LinkKind::User => user_id,
                LinkKind::Operation => operation_id,
            };
            wanted == Some(link.id.as_str())
        })
    }

    /// [`Engine::needed_scope`] of a policy that applies, when its `roleName` (if any) holds.
    pub fn needed_scope(&self, request: &Value) -> Option<String> {
        if let Some(want) = &self.role_name {
            if !crate::model::role::names(request).any(|n| n == want) {
                return None;
            }
        }
        self.rule.needed_scope(request)
    }

    /// `roleName`, if the policy has one.
    pub fn role_name(&self) -> Option<&str> {
        self.role_name.as_deref()
    }

    /// Does [`allows`](Self::allows) read the request? Not for an `allow` policy without a
    /// `roleName`: it allows every request it applies to.
    pub fn reads_request(&self) -> bool {
        self.engine != "allow" || self.role_name.is_some()
    }

    /// Evaluate against the policy request (a JSON object, see the module docs). Never panics.
    /// It does not look at `link`; see [`CompiledPolicy::applies_to`] and [`evaluate`]. A
    /// policy with `roleName` allows only when the request's user has a Role of that name
    /// (`session.role[*].name`, put there by the authorizer from the stored Roles,
    /// [`crate::model::role::attach`]); with `link` too, both must hold. So a request without
    /// a user (a client, an anonymous caller) never passes one.
    pub fn allows(&self, request: &Value) -> bool {
        if let Some(want) = &self.role_name {
            if !crate::model::role::names(request).any(|n| n == want) {
                return false;
            }
        }
        self.rule.allows(request)
    }
}

/// Policies are OR-ed: returns the index of the first applicable policy that allows, or `None`
/// (deny). An empty list denies.
pub fn evaluate(
    policies: &[CompiledPolicy],
    request: &Value,
    client_id: Option<&str>,
    user_id: Option<&str>,
    operation_id: Option<&str>,
) -> Option<usize> {
    policies
        .iter()
        .position(|p| p.applies_to(client_id, user_id, operation_id) && p.allows(request))
}

/// Parses `AccessPolicy.link`: absent, `null` or `[]` means global. Each entry is
/// `{"id": "x", "resourceType": "Client" | "User" | "Operation"}` or `{"reference": "Client/x"}`.
fn parse_links(link: Option<&Value>) -> Result<Vec<Link>, PolicyError> {
    let items = match link {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(items)) => items,
        Some(_) => {
            return Err(PolicyError::new(
                "link",
                "link must be an array of {id, resourceType} or {reference} objects",
            ))
        }
    };
    let mut links = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let at = join("link", &i.to_string());
        let Some(obj) = item.as_object() else {
            return Err(PolicyError::new(at, "a link must be an object"));
        };
        let reference = obj.get("reference");
        let has_id_form = obj.contains_key("id") || obj.contains_key("resourceType");
        let (kind, id, id_path) = match reference {
            Some(r) => {
                if has_id_form {
                    return Err(PolicyError::new(
                        at,
                        "a link takes either reference or id + resourceType, not both",
                    ));
                }
                let path = join(&at, "reference");
                let Some(r) = r.as_str() else {
                    return Err(PolicyError::new(path, "reference must be a string"));
                };
                let Some((kind, id)) = r.split_once('/') else {
                    return Err(PolicyError::new(
                        path,
                        "reference must look like Client/<id>",
                    ));
                };
                let Some(kind) = LinkKind::parse(kind) else {
                    return Err(PolicyError::new(
                        path,
                        format!("cannot link to {kind:?}; use Client, User or Operation"),
                    ));
                };
                (kind, id, path)
            }
            None => {
                let kind_path = join(&at, "resourceType");
                let kind = match obj.get("resourceType") {
                    Some(Value::String(s)) => LinkKind::parse(s).ok_or_else(|| {
                        PolicyError::new(
                            &kind_path,
                            format!("cannot link to {s:?}; use Client, User or Operation"),
                        )
                    })?,
                    None => {
                        return Err(PolicyError::new(kind_path, "missing resourceType"));
                    }
                    Some(_) => {
                        return Err(PolicyError::new(kind_path, "resourceType must be a string"));
                    }
                };
                let id_path = join(&at, "id");
                let id = match obj.get("id") {
                    Some(Value::String(s)) => s.as_str(),
                    None => return Err(PolicyError::new(id_path, "missing id")),
                    Some(_) => return Err(PolicyError::new(id_path, "id must be a string")),
                };
                (kind, id, id_path)
            }
        };
        if id.is_empty() {
            // An empty id could never match; it usually means a templating mistake.
            return Err(PolicyError::new(id_path, "link id must not be empty"));
        }
        links.push(Link {
            kind,
            id: id.to_owned(),
        });
    }
    Ok(links)
}
