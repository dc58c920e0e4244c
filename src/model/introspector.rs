//! TokenIntrospector: which external issuers we trust, and how to check their tokens
//! (Aidbox's `TokenIntrospector`).
//!
//! - `{"type": "jwt", "jwt": {"iss": "...", "secret": "..."}}`: HS256 with a shared secret
//!   (at least 32 bytes, RFC 7518 3.2).
//! - `{"type": "jwt", "jwt": {"iss": "..."}, "jwks_uri": "https://..."}` (or `jwt.jwks_uri`):
//!   asymmetric keys fetched from the issuer; or an inline `jwks` (or `jwt.jwks`).
//! - `jwt.aud` (or `audience`): when set, tokens must carry it in `aud`.
//! - `{"type": "opaque", "introspection_endpoint": {"url": "...", "authorization": "..."}}`:
//!   RFC 7662 introspection for tokens that are not JWTs.

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

/// The required audience: `jwt.aud` or `audience`.
pub fn audience(doc: &Value) -> Option<&str> {
    doc.pointer("/jwt/aud")
        .or_else(|| doc.get("audience"))
        .and_then(Value::as_str)
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
            opt_str(jwt, "aud", "jwt")?;
            opt_str(m, "audience", "")?;
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
            let sources = [secret.is_some(), uri.is_some(), jwks.is_some()]
                .iter()
                .filter(|x| **x)
                .count();
            if sources != 1 {
                return Err(Error::validation(
                    "jwt",
                    "needs exactly one key source: jwt.secret (HS256), jwks_uri, or jwks",
                ));
            }
            if let Some(s) = secret {
                if s.len() < 32 {
                    return Err(Error::validation(
                        "jwt.secret",
                        "must be at least 32 bytes (RFC 7518 3.2)",
                    ));
                }
            }
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
            Ok(())
        }
        Some(_) => Err(Error::validation("type", "must be \"jwt\" or \"opaque\"")),
        None => Err(Error::validation(
            "type",
            "is required (\"jwt\" or \"opaque\")",
        )),
    }
}
