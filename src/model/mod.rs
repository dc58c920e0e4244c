//! The resources kept in KV (Client, User, AccessPolicy, TokenIntrospector, Role, Scope), in
//! Aidbox's JSON shape, and their
//! validation. Every write is validated here before anything is stored; errors name the field.
//!
//! Resources are kept as JSON objects so that Aidbox fields we do not interpret survive a round
//! trip. Secrets are replaced by hashes on write (`secret` -> `secret_hash`,
//! `password` -> `password_hash`) and hashes never leave through the API ([`public_view`]).

pub mod client;
pub mod grant;
pub mod introspector;
pub mod role;
pub mod scope;
pub mod user;

use crate::error::{Error, Result};
use serde_json::{Map, Value};
use std::fmt;

/// The resource types of the admin API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ResourceType {
    Client,
    User,
    AccessPolicy,
    TokenIntrospector,
    /// Aidbox's `Role`: a role name given to one User, selected by `AccessPolicy.roleName`.
    Role,
    /// Aidbox's `Scope`: a named scope string, referenced from `Client.allowed-scopes`.
    Scope,
    /// Remembered consent, kept in the state store (src/model/grant.rs), not in KV.
    Grant,
}

impl ResourceType {
    pub const ALL: [ResourceType; 7] = [
        ResourceType::Client,
        ResourceType::User,
        ResourceType::AccessPolicy,
        ResourceType::TokenIntrospector,
        ResourceType::Role,
        ResourceType::Scope,
        ResourceType::Grant,
    ];

    pub fn name(self) -> &'static str {
        match self {
            ResourceType::Client => "Client",
            ResourceType::User => "User",
            ResourceType::AccessPolicy => "AccessPolicy",
            ResourceType::TokenIntrospector => "TokenIntrospector",
            ResourceType::Role => "Role",
            ResourceType::Scope => "Scope",
            ResourceType::Grant => "Grant",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.name() == s)
    }
}

/// Resource type names the server keeps for admin resources that later versions add
/// `Session`), and Aidbox's auth configuration types, which an Aidbox origin
/// would serve (`IdentityProvider`, `AuthConfig`). None of them is a FHIR R4/R5 resource type. Together with
/// [`ResourceType::ALL`] this is the one list of names that are never FHIR resource types: see
/// [`is_server_type`]. A name moves from here into [`ResourceType`] when it gets a route.
pub const RESERVED_TYPE_NAMES: [&str; 3] = ["Session", "IdentityProvider", "AuthConfig"];

/// True when `name` is a resource type of this server (the admin API's [`ResourceType`]s, now
/// or later, see [`RESERVED_TYPE_NAMES`]), compared ASCII case-insensitively (a router or an
/// origin may be lenient about case). The `smart-on-fhir` engine never treats such a type as a
/// FHIR type: no SMART scope, `*` included, grants anything on it (DESIGN.md, "The
/// authorization boundary").
pub fn is_server_type(name: &str) -> bool {
    ResourceType::ALL
        .iter()
        .map(|t| t.name())
        .chain(RESERVED_TYPE_NAMES)
        .any(|t| t.eq_ignore_ascii_case(name))
}

impl fmt::Display for ResourceType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Fields set only by us, never accepted from or returned to a caller: the hashes of secrets,
/// and the credential generation ([`GENERATION_FIELD`]).
pub const HASH_FIELDS: [&str; 3] = ["secret_hash", "password_hash", GENERATION_FIELD];

/// A User's or Client's credential generation: a random value the admin API sets on create and
/// renews on every credential change and deactivation (src/admin.rs). Sessions, refresh
/// families and access tokens carry a tag derived from it ([`generation_tag`]) and are refused
/// once it differs, so they end with the credentials they were issued under, and a User or
/// Client deleted and created again under the same id inherits nothing. Resources written
/// before generations existed have none ("legacy") until their next credential change.
pub const GENERATION_FIELD: &str = "credential_generation";

/// Private access-token claim holding [`generation_tag`] of the token's client and user. Not
/// a registered claim name (IANA "JSON Web Token Claims"); hidden from the policy request.
pub const GENERATION_CLAIM: &str = "edge_gen";

/// The stored generation of a User or Client document; None for a legacy resource.
pub fn generation(doc: &Value) -> Option<&str> {
    doc.get(GENERATION_FIELD).and_then(Value::as_str)
}

/// A new random generation (128 bits, hex).
pub fn new_generation(random: &dyn crate::platform::Random) -> String {
    let mut b = [0u8; 16];
    random.fill(&mut b);
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The tag that binds a grant to the generations of its client and (for user grants) its user:
/// 64 bits of SHA-256 over both, base64url. None when both are legacy (no generation): grants
/// made before generations existed carry no tag and are accepted exactly while that holds.
pub fn generation_tag(client: Option<&Value>, user: Option<&Value>) -> Option<String> {
    use base64::Engine;
    use sha2::{Digest, Sha256};
    let c = client.and_then(generation);
    let u = user.and_then(generation);
    if c.is_none() && u.is_none() {
        return None;
    }
    let mut h = Sha256::new();
    h.update(b"edge-authorizer generation\0");
    for part in [c.unwrap_or(""), u.unwrap_or("")] {
        h.update((part.len() as u64).to_be_bytes());
        h.update(part.as_bytes());
    }
    let d = h.finalize();
    Some(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&d[..8]))
}

/// The Client id that means the operator (`ADMIN_SECRET`); no stored Client may take it.
pub const ROOT_CLIENT_ID: &str = "root";

/// The built-in Client of the admin console (`/console/`): public, first party, authorization
/// code with PKCE only, no refresh tokens, 15-minute access tokens, redirect URI
/// `<issuer>/console/callback.html` only. It is synthesized, never stored (no stored Client may
/// take the id), and grants nothing by itself: what its tokens may do is decided by
/// AccessPolicies like any other caller's (docs/console.md "Signing in").
pub const CONSOLE_CLIENT_ID: &str = "console";

/// The console's redirect path, appended to the issuer.
pub const CONSOLE_REDIRECT_PATH: &str = "/console/callback.html";

/// The console Client's document (see [`CONSOLE_CLIENT_ID`]). `redirect_uri` holds the path;
/// the authorization endpoint resolves it against the issuer of the request. Kept as JSON text
/// parsed on use (less wasm than `json!`); a unit test checks it against the constants above.
pub fn console_client_doc() -> serde_json::Value {
    serde_json::from_str(CONSOLE_CLIENT_DOC).unwrap_or_default()
}

const CONSOLE_CLIENT_DOC: &str = r#"{
    "resourceType": "Client",
    "id": "console",
    "name": "Admin console",
    "first_party": true,
    "grant_types": ["authorization_code"],
    "scope": ["openid", "profile"],
    "auth": {"authorization_code": {
        "redirect_uri": "/console/callback.html",
        "pkce": true,
        "refresh_token": false,
        "access_token_expiration": 900
    }}
}"#;

/// FHIR id rule: `[A-Za-z0-9\-\.]{1,64}`.
pub fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
}

/// Secrets kept in plain because they are used, not checked: a TokenIntrospector's HS256
/// secret and its introspection endpoint's credentials. Never returned.
pub const KEPT_SECRETS: [(&str, &str); 2] = [
    ("jwt", "secret"),
    ("introspection_endpoint", "authorization"),
];

/// A resource without its hashes and kept secrets: what GET, PUT and the policy request show.
pub fn public_view(doc: &Value) -> Value {
    let mut v = doc.clone();
    if let Value::Object(m) = &mut v {
        for f in HASH_FIELDS {
            m.remove(f);
        }
        for (outer, inner) in KEPT_SECRETS {
            if let Some(Value::Object(o)) = m.get_mut(outer) {
                o.remove(inner);
            }
        }
        // A TokenIntrospector's `jwt.keys[].k` secrets: never returned either (a PUT must
        // send them again).
        if let Some(Value::Array(keys)) = m.get_mut("jwt").and_then(|j| j.get_mut("keys")) {
            for k in keys.iter_mut().filter_map(Value::as_object_mut) {
                k.remove("k");
            }
        }
    }
    v
}

/// Common checks of a PUT body: a JSON object whose `id` and `resourceType`, when present,
/// agree with the URL, and which does not try to set a hash.
pub fn check_envelope(rt: ResourceType, id: &str, body: &Value) -> Result<Map<String, Value>> {
    let Value::Object(map) = body else {
        return Err(Error::validation("", "the body must be a JSON object"));
    };
    if let Some(v) = map.get("resourceType") {
        if v.as_str() != Some(rt.name()) {
            return Err(Error::validation(
                "resourceType",
                format!("must be \"{}\" at this URL", rt.name()),
            ));
        }
    }
    if let Some(v) = map.get("id") {
        if v.as_str() != Some(id) {
            return Err(Error::validation("id", "must match the id in the URL"));
        }
    }
    for f in HASH_FIELDS {
        if map.contains_key(f) {
            return Err(Error::validation(
                f,
                "is set by the server and cannot be written",
            ));
        }
    }
    let mut map = map.clone();
    map.insert("id".into(), Value::String(id.into()));
    map.insert("resourceType".into(), Value::String(rt.name().into()));
    Ok(map)
}

// ---- small typed field checks, shared by the resource validators ----

pub(crate) fn opt_bool(m: &Map<String, Value>, key: &str, path: &str) -> Result<Option<bool>> {
    match m.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(_) => Err(Error::validation(join(path, key), "must be a boolean")),
    }
}

pub(crate) fn opt_str<'a>(
    m: &'a Map<String, Value>,
    key: &str,
    path: &str,
) -> Result<Option<&'a str>> {
    match m.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(Error::validation(join(path, key), "must be a string")),
    }
}

pub(crate) fn opt_positive_int(
    m: &Map<String, Value>,
    key: &str,
    path: &str,
) -> Result<Option<i64>> {
    match m.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => match n.as_i64() {
            // Ten years is far beyond any sane token lifetime and keeps `now + x` in range.
            Some(i) if (1..=315_360_000).contains(&i) => Ok(Some(i)),
            _ => Err(Error::validation(
                join(path, key),
                "must be a whole number of seconds from 1 to 315360000",
            )),
        },
        Some(_) => Err(Error::validation(
            join(path, key),
            "must be a number of seconds",
        )),
    }
}

pub(crate) fn opt_str_list(
    m: &Map<String, Value>,
    key: &str,
    path: &str,
) -> Result<Option<Vec<String>>> {
    match m.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(a)) => a
            .iter()
            .enumerate()
            .map(|(i, v)| {
                v.as_str().map(str::to_string).ok_or_else(|| {
                    Error::validation(format!("{}.{i}", join(path, key)), "must be a string")
                })
            })
            .collect::<Result<Vec<_>>>()
            .map(Some),
        Some(_) => Err(Error::validation(
            join(path, key),
            "must be an array of strings",
        )),
    }
}

pub(crate) fn opt_object<'a>(
    m: &'a Map<String, Value>,
    key: &str,
    path: &str,
) -> Result<Option<&'a Map<String, Value>>> {
    match m.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(o)) => Ok(Some(o)),
        Some(_) => Err(Error::validation(join(path, key), "must be an object")),
    }
}

pub(crate) fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// Longest secret or password we accept: bounds the KDF input and the stored record.
pub const MAX_SECRET_LEN: usize = 1024;

/// A new secret from a PUT body: present, a non-empty string, not absurdly long.
pub(crate) fn take_secret(m: &mut Map<String, Value>, key: &str) -> Result<Option<String>> {
    match m.remove(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Err(Error::validation(key, "must not be empty")),
        Some(Value::String(s)) if s.len() > MAX_SECRET_LEN => Err(Error::validation(
            key,
            format!("must be at most {MAX_SECRET_LEN} bytes"),
        )),
        // PBKDF2-HMAC cannot tell "x" from "x\0" (HMAC zero-pads keys), so NUL is refused.
        Some(Value::String(s)) if s.contains('\0') => {
            Err(Error::validation(key, "must not contain NUL characters"))
        }
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(Error::validation(key, "must be a string")),
    }
}

/// A Reference in either of Aidbox's forms, `{"reference": "Type/id"}` or
/// `{"id": "id", "resourceType": "Type"}` (both together must agree; `display`, and `type`
/// equal to the type, may be added),
/// as (type, id). None when it is anything else: an unknown key, a URL, a bad id, two forms
/// that disagree. Readers of stored resources use it too, so a malformed reference grants
/// nothing.
pub fn reference_parts(v: &Value) -> Option<(&str, &str)> {
    let o = v.as_object()?;
    if o.keys().any(|k| {
        !matches!(
            k.as_str(),
            "reference" | "id" | "resourceType" | "display" | "type"
        )
    }) {
        return None;
    }
    if o.get("display").is_some_and(|d| !d.is_string()) {
        return None;
    }
    let from_ref = match o.get("reference") {
        None => None,
        Some(r) => {
            let (t, id) = r.as_str()?.split_once('/')?;
            Some((t, id))
        }
    };
    let from_ids = match (o.get("resourceType"), o.get("id")) {
        (None, None) => None,
        (Some(t), Some(id)) => Some((t.as_str()?, id.as_str()?)),
        _ => return None,
    };
    let (t, id) = match (from_ref, from_ids) {
        (Some(a), Some(b)) if a != b => return None,
        (Some(a), _) | (None, Some(a)) => a,
        (None, None) => return None,
    };
    if o.get("type").is_some_and(|ty| ty.as_str() != Some(t)) {
        return None;
    }
    let type_ok = !t.is_empty() && t.bytes().all(|b| b.is_ascii_alphanumeric());
    (type_ok && valid_id(id)).then_some((t, id))
}

/// [`reference_parts`] for a write: the reference at `path` must be one of `types`.
pub(crate) fn check_reference<'a>(
    v: &'a Value,
    path: &str,
    types: &[&str],
) -> Result<(&'a str, &'a str)> {
    let Some((t, id)) = reference_parts(v) else {
        return Err(Error::validation(
            path,
            "must be a Reference: {\"reference\": \"Type/id\"} or {\"id\": ..., \"resourceType\": ...} \
             (the two forms may be given together only when they agree; no other fields but display)",
        ));
    };
    if !types.contains(&t) {
        return Err(Error::validation(
            path,
            format!("must refer to {}, not {t}", types.join(" or ")),
        ));
    }
    Ok((t, id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn console_client_doc_text_matches() {
        assert_eq!(
            console_client_doc(),
            serde_json::json!({
                "resourceType": "Client",
                "id": CONSOLE_CLIENT_ID,
                "name": "Admin console",
                "first_party": true,
                "grant_types": ["authorization_code"],
                "scope": ["openid", "profile"],
                "auth": {"authorization_code": {
                    "redirect_uri": CONSOLE_REDIRECT_PATH,
                    "pkce": true,
                    "refresh_token": false,
                    "access_token_expiration": 900
                }}
            })
        );
    }
}
