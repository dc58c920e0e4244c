//! TokenIntrospector: which external issuers we trust, and how to check their tokens
//! (Aidbox's `TokenIntrospector`).
//!
//! - `{"type": "jwt", "jwt": {"iss": "...", "secret": "..."}}`: HS256 with a shared secret
//!   (at least 32 bytes, RFC 7518 3.2; stricter than Aidbox, see [`crate::jwt::keys::WEAK_SECRET`]).
//! - `jwt.keys` (Aidbox 2505): a list of `{pub: <PEM>, kty: RSA|EC, alg: RS256|RS384|ES256}`
//!   and `{k: <secret>, kty: OCT, alg: HS256}`; each key verifies only its own algorithm
//!   ([`crate::jwt::keys::from_introspector_keys`]). `k` is kept like `jwt.secret`, never returned.
//! - `cache_ttl` (seconds, 1-86400, Aidbox's range): how long a fetched JWKS is used, and an
//!   opaque introspection answer reused (never past its `exp`). Unset: 300 s for JWKS (as
//!   Aidbox), 60 s for introspection answers (Aidbox: 300; shorter so a revoke at the issuer
//!   applies sooner).
//! - `{"type": "jwt", "jwt": {"iss": "..."}, "jwks_uri": "https://..."}` (or `jwt.jwks_uri`):
//!   asymmetric keys fetched from the issuer; or an inline `jwks` (or `jwt.jwks`).
//! - `jwt.aud` (or `audience`; a string or a list): the audiences accepted in a token's `aud`.
//!   Unset: our own `AUDIENCE` (default the issuer). A token meant for someone else is refused.
//! - `{"type": "opaque", "introspection_endpoint": {"url": "...", "authorization": "..."}}`:
//!   RFC 7662 introspection for tokens that are not JWTs (`audience` applies to an answer's `aud`).
//!   An opaque token goes to ONE endpoint, never to each in turn ([`choose_opaque`]): the one
//!   whose `token_prefix` (e.g. `"ghp_"`) is the longest prefix of the token, else the one
//!   opaque introspector without `token_prefix` (the default). At most one opaque introspector
//!   may omit it and no two may share one (checked on write, src/admin.rs).
//! - `map_user: {"claims": ["box_user", "sub"], "match": {...}}`: opt-in mapping of a claim to a
//!   local User id (the first listed claim present wins, Aidbox reads `box_user` then `sub`);
//!   `match` (optional) is what the User must contain for this issuer to speak for it. Without
//!   `map_user` an external token never brings in a local User.

use super::{opt_object, opt_str};
use crate::error::{Error, Result};
use crate::jwt::keys::KeySet;
use serde_json::{Map, Value};

/// A URL we may fetch: https, or http on a loopback host (local development and tests).
pub fn fetchable_url(url: &str) -> bool {
    let Ok(u) = url.parse::<http::Uri>() else {
        return false;
    };
    match (u.scheme_str(), u.host()) {
        (Some("https"), Some(_)) => true,
        (Some("http"), Some(h)) => matches!(h, "localhost" | "127.0.0.1" | "[::1]"),
        _ => false,
    }
}

/// The `jwks_uri` of a jwt introspector: top-level (Aidbox) or under `jwt`.
pub fn jwks_uri(doc: &Value) -> Option<&str> {
    doc.get("jwks_uri")
        .or_else(|| doc.pointer("/jwt/jwks_uri"))
        .and_then(Value::as_str)
}

/// The inline `jwks`: top-level or under `jwt`.
pub fn inline_jwks(doc: &Value) -> Option<&Value> {
    doc.get("jwks").or_else(|| doc.pointer("/jwt/jwks"))
}

/// The audiences this introspector accepts: `jwt.aud` or `audience`, a string or a list.
/// None: not configured (the caller then requires our own `AUDIENCE`).
pub fn audiences(doc: &Value) -> Option<Vec<&str>> {
    let v = doc.pointer("/jwt/aud").or_else(|| doc.get("audience"))?;
    match v {
        Value::String(s) => Some(vec![s.as_str()]),
        Value::Array(list) => Some(list.iter().filter_map(Value::as_str).collect()),
        _ => None,
    }
}

/// Claims that may name a local User in `map_user.claims`, per introspector type.
pub const JWT_USER_CLAIMS: [&str; 2] = ["box_user", "sub"];
/// RFC 7662 2.2 answers also carry `username`.
pub const OPAQUE_USER_CLAIMS: [&str; 3] = ["box_user", "sub", "username"];

/// How an introspector maps its tokens to local Users (`map_user`), if it opted in.
#[derive(Debug)]
pub struct UserMapping<'a> {
    /// Claims read in order; the first present names the User id.
    pub claims: Vec<&'a str>,
    /// What the User document must contain (objects by inclusion, everything else equal).
    pub required: Option<&'a Value>,
}

pub fn user_mapping(doc: &Value) -> Option<UserMapping<'_>> {
    let m = doc.get("map_user")?.as_object()?;
    let claims = m
        .get("claims")?
        .as_array()?
        .iter()
        .filter_map(Value::as_str)
        .collect();
    Some(UserMapping {
        claims,
        required: m.get("match"),
    })
}

/// Does `doc` contain `want`? Objects by inclusion (recursively), everything else by equality.
pub fn contains(doc: &Value, want: &Value) -> bool {
    match (doc, want) {
        (Value::Object(d), Value::Object(w)) => w
            .iter()
            .all(|(k, wv)| d.get(k).is_some_and(|dv| contains(dv, wv))),
        _ => doc == want,
    }
}

/// Aidbox's range for `cache_ttl` (seconds).
pub const CACHE_TTL_RANGE: std::ops::RangeInclusive<i64> = 1..=86_400;

/// `cache_ttl`: an integer number of seconds in [`CACHE_TTL_RANGE`].
fn validate_cache_ttl(m: &Map<String, Value>) -> Result<()> {
    match m.get("cache_ttl") {
        None => Ok(()),
        Some(v) if v.as_i64().is_some_and(|n| CACHE_TTL_RANGE.contains(&n)) => Ok(()),
        Some(_) => Err(Error::validation(
            "cache_ttl",
            "must be a whole number of seconds from 1 to 86400",
        )),
    }
}

/// The introspector's `cache_ttl`, if set (validated on write).
pub fn cache_ttl(doc: &Value) -> Option<i64> {
    doc.get("cache_ttl")
        .and_then(Value::as_i64)
        .filter(|n| CACHE_TTL_RANGE.contains(n))
}

/// `jwt.aud` / `audience`: a non-empty string or a non-empty list of them, given once.
fn validate_audience(m: &Map<String, Value>) -> Result<()> {
    let jwt_aud = m.get("jwt").and_then(|j| j.get("aud"));
    let (path, v) = match (jwt_aud, m.get("audience")) {
        (Some(_), Some(_)) => {
            return Err(Error::validation(
                "audience",
                "give the audience once: jwt.aud or audience",
            ))
        }
        (Some(v), None) => ("jwt.aud", v),
        (None, Some(v)) => ("audience", v),
        (None, None) => return Ok(()),
    };
    let ok = match v {
        Value::String(s) => !s.is_empty(),
        Value::Array(list) => {
            !list.is_empty()
                && list
                    .iter()
                    .all(|a| a.as_str().is_some_and(|s| !s.is_empty()))
        }
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(Error::validation(
            path,
            "must be a non-empty string or a non-empty list of strings",
        ))
    }
}

/// `map_user`: `{"claims": [...], "match": {...}}`; nothing else, fail closed.
fn validate_mapping(m: &Map<String, Value>, allowed: &[&str]) -> Result<()> {
    let Some(mu) = opt_object(m, "map_user", "")? else {
        return Ok(());
    };
    for k in mu.keys() {
        if k != "claims" && k != "match" {
            return Err(Error::validation(
                format!("map_user.{k}"),
                "is not a map_user field (claims, match)",
            ));
        }
    }
    let one_of = allowed
        .iter()
        .map(|c| format!("\"{c}\""))
        .collect::<Vec<_>>()
        .join(", ");
    let claims = match mu.get("claims") {
        Some(Value::Array(list)) if !list.is_empty() => list,
        _ => {
            return Err(Error::validation(
                "map_user.claims",
                format!("is required: a non-empty list of {one_of}"),
            ))
        }
    };
    let mut seen = Vec::new();
    for (i, c) in claims.iter().enumerate() {
        match c.as_str() {
            Some(name) if allowed.contains(&name) && !seen.contains(&name) => seen.push(name),
            _ => {
                return Err(Error::validation(
                    format!("map_user.claims.{i}"),
                    format!("must be one of {one_of}, each once"),
                ))
            }
        }
    }
    match mu.get("match") {
        None => Ok(()),
        Some(Value::Object(o)) if !o.is_empty() => Ok(()),
        Some(_) => Err(Error::validation(
            "map_user.match",
            "must be a non-empty object of User fields",
        )),
    }
}

pub fn validate(m: &Map<String, Value>) -> Result<()> {
    let doc = Value::Object(m.clone());
    match opt_str(m, "type", "")? {
        Some("jwt") => {
            let jwt = opt_object(m, "jwt", "")?
                .ok_or_else(|| Error::validation("jwt", "is required for type jwt"))?;
            match opt_str(jwt, "iss", "jwt")? {
                Some(iss) if !iss.is_empty() => {}
                _ => return Err(Error::validation("jwt.iss", "is required")),
            }
            validate_audience(m)?;
            validate_mapping(m, &JWT_USER_CLAIMS)?;
            let secret = opt_str(jwt, "secret", "jwt")?;
            let uri = match (m.get("jwks_uri"), jwt.get("jwks_uri")) {
                (Some(_), Some(_)) => {
                    return Err(Error::validation(
                        "jwks_uri",
                        "give jwks_uri once, not also in jwt",
                    ))
                }
                (Some(v), None) => Some(("jwks_uri", v)),
                (None, Some(v)) => Some(("jwt.jwks_uri", v)),
                (None, None) => None,
            };
            let jwks = match (m.get("jwks"), jwt.get("jwks")) {
                (Some(_), Some(_)) => {
                    return Err(Error::validation("jwks", "give jwks once, not also in jwt"))
                }
                (Some(v), None) => Some(("jwks", v)),
                (None, Some(v)) => Some(("jwt.jwks", v)),
                (None, None) => None,
            };
            let keys = jwt.get("keys");
            let sources = [
                secret.is_some(),
                uri.is_some(),
                jwks.is_some(),
                keys.is_some(),
            ]
            .iter()
            .filter(|x| **x)
            .count();
            if sources != 1 {
                return Err(Error::validation(
                    "jwt",
                    "needs exactly one key source: jwt.secret (HS256), jwt.keys, jwks_uri, or jwks",
                ));
            }
            if let Some(s) = secret {
                if s.len() < crate::jwt::keys::MIN_HMAC_SECRET {
                    return Err(Error::validation(
                        "jwt.secret",
                        crate::jwt::keys::WEAK_SECRET,
                    ));
                }
            }
            if let Some(list) = keys {
                crate::jwt::keys::from_introspector_keys(list)
                    .map_err(|(path, msg)| Error::validation(path, msg))?;
            }
            validate_cache_ttl(m)?;
            if let Some((path, v)) = uri {
                match v.as_str() {
                    Some(u) if fetchable_url(u) => {}
                    _ => {
                        return Err(Error::validation(
                            path,
                            "must be an https URL (http only for localhost)",
                        ))
                    }
                }
            }
            if let Some((path, v)) = jwks {
                let set = KeySet::from_jwks(v).map_err(|e| Error::validation(path, e))?;
                if set.verifying.is_empty() {
                    return Err(Error::validation(
                        path,
                        "has no usable signing key (Ed25519, P-256 or RSA)",
                    ));
                }
            }
            let _ = doc;
            if m.contains_key("token_prefix") {
                return Err(Error::validation(
                    "token_prefix",
                    "is for type opaque only (a JWT is matched by its iss)",
                ));
            }
            Ok(())
        }
        Some("opaque") => {
            let ep = opt_object(m, "introspection_endpoint", "")?.ok_or_else(|| {
                Error::validation("introspection_endpoint", "is required for type opaque")
            })?;
            match opt_str(ep, "url", "introspection_endpoint")? {
                Some(u) if fetchable_url(u) => {}
                _ => {
                    return Err(Error::validation(
                        "introspection_endpoint.url",
                        "must be an https URL (http only for localhost)",
                    ))
                }
            }
            opt_str(ep, "authorization", "introspection_endpoint")?;
            if let Some(p) = opt_str(m, "token_prefix", "")? {
                if p.is_empty() || p.len() > 64 || !p.bytes().all(|b| b.is_ascii_graphic()) {
                    return Err(Error::validation(
                        "token_prefix",
                        "must be 1-64 visible ASCII characters",
                    ));
                }
            }
            validate_audience(m)?;
            validate_mapping(m, &OPAQUE_USER_CLAIMS)?;
            validate_cache_ttl(m)?;
            Ok(())
        }
        Some(_) => Err(Error::validation("type", "must be \"jwt\" or \"opaque\"")),
        None => Err(Error::validation(
            "type",
            "is required (\"jwt\" or \"opaque\")",
        )),
    }
}

/// The `token_prefix` of an opaque introspector; None: it is the default.
pub fn token_prefix(doc: &Value) -> Option<&str> {
    doc.get("token_prefix").and_then(Value::as_str)
}

fn is_opaque(doc: &Value) -> bool {
    doc.get("type").and_then(Value::as_str) == Some("opaque")
}

/// The one opaque introspector an opaque `token` may be sent to: the longest `token_prefix`
/// that begins the token, else the single opaque introspector without a prefix. None when no
/// rule names one, or when two stored introspectors tie (the write check makes that impossible
/// unless two writes raced): the token is then refused, never sent to a guess.
pub fn choose_opaque<'a>(all: &'a [Value], token: &str) -> Option<&'a Value> {
    let opaque: Vec<&Value> = all.iter().filter(|d| is_opaque(d)).collect();
    let best = opaque
        .iter()
        .filter_map(|d| {
            token_prefix(d)
                .filter(|p| token.starts_with(p))
                .map(|p| (p.len(), *d))
        })
        .max_by_key(|(n, _)| *n);
    let pick = |cands: Vec<&'a Value>| match cands.as_slice() {
        [one] => Some(*one),
        _ => None,
    };
    match best {
        Some((n, _)) => pick(
            opaque
                .iter()
                .filter(|d| token_prefix(d).is_some_and(|p| p.len() == n && token.starts_with(p)))
                .copied()
                .collect(),
        ),
        None => pick(
            opaque
                .iter()
                .filter(|d| token_prefix(d).is_none())
                .copied()
                .collect(),
        ),
    }
}

/// The write check behind [`choose_opaque`]: `doc` (stored as `id`) must not share its
/// `token_prefix`, or the lack of one, with another opaque introspector of `others`.
pub fn check_unique_prefix(id: &str, doc: &Value, others: &[Value]) -> Result<()> {
    if !is_opaque(doc) {
        return Ok(());
    }
    let mine = token_prefix(doc);
    let clash = others.iter().find(|o| {
        o.get("id").and_then(Value::as_str) != Some(id) && is_opaque(o) && token_prefix(o) == mine
    });
    match (clash, mine) {
        (None, _) => Ok(()),
        (Some(o), Some(p)) => Err(Error::Conflict(format!(
            "TokenIntrospector/{} already has token_prefix \"{p}\"",
            o.get("id").and_then(Value::as_str).unwrap_or("?")
        ))),
        (Some(o), None) => Err(Error::Conflict(format!(
            "TokenIntrospector/{} is already the opaque introspector without token_prefix; \
             give this one a token_prefix",
            o.get("id").and_then(Value::as_str).unwrap_or("?")
        ))),
    }
}

/// Where a TokenIntrospector's kept secrets are sent or belong: its type, issuer, introspection
/// URL and key URL. A PUT that changes any of these drops the stored secrets unless the body
/// carries them again (src/admin.rs), so a secret never follows a resource to a new place.
pub fn secret_binding(doc: &Value) -> [Option<&Value>; 5] {
    [
        doc.get("type"),
        doc.pointer("/jwt/iss"),
        doc.pointer("/introspection_endpoint/url"),
        doc.get("jwks_uri"),
        doc.pointer("/jwt/jwks_uri"),
    ]
}
