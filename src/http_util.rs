//! Small HTTP helpers shared by every endpoint: body parsing, Basic credentials, responses.

use crate::error::{Error, Result};
use base64::Engine;
use serde_json::Value;
use std::collections::BTreeMap;

pub type Request = http::Request<Vec<u8>>;
pub type Response = http::Response<Vec<u8>>;

/// A JSON response with the given status.
pub fn json_response(status: u16, body: &Value) -> Response {
    let bytes = serde_json::to_vec(body).unwrap_or_else(|_| b"{}".to_vec());
    let mut resp = http::Response::new(bytes);
    *resp.status_mut() = http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::OK);
    resp.headers_mut().insert(
        "content-type",
        http::HeaderValue::from_static("application/json"),
    );
    resp
}

/// A response that carries a token or a secret: never cached (RFC 6749 5.1, RFC 6750 5.3).
/// `App::handle` applies it to every `/auth/*` and admin response and every error.
pub fn no_store(mut resp: Response) -> Response {
    let h = resp.headers_mut();
    h.insert("cache-control", http::HeaderValue::from_static("no-store"));
    h.insert("pragma", http::HeaderValue::from_static("no-cache"));
    resp
}

/// Does the response already say `Cache-Control: no-store`?
pub fn is_no_store(resp: &Response) -> bool {
    resp.headers()
        .get_all("cache-control")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| {
            v.split(',')
                .any(|d| d.trim().eq_ignore_ascii_case("no-store"))
        })
}

/// A header as a string; a header that is not visible ASCII counts as absent.
pub fn header<'a>(req: &'a Request, name: &str) -> Option<&'a str> {
    req.headers().get(name).and_then(|v| v.to_str().ok())
}

/// The media type of the body, lowercased, without parameters.
pub fn media_type(req: &Request) -> Option<String> {
    let ct = req.headers().get("content-type")?;
    let ct = std::str::from_utf8(ct.as_bytes()).ok()?;
    let mt = ct.split(';').next()?.trim().to_ascii_lowercase();
    (!mt.is_empty()).then_some(mt)
}

/// Is this media type JSON (`application/json`, `application/fhir+json`, `*/*+json`)?
pub fn is_json(media_type: &str) -> bool {
    media_type == "application/json" || media_type.ends_with("+json")
}

/// Parses an `application/x-www-form-urlencoded` body or query string into a map. RFC 6749 3.1
/// and 3.2: a parameter sent more than once is an error, and so is one without a value's name.
pub fn parse_form(bytes: &[u8]) -> Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for (k, v) in form_urlencoded::parse(bytes) {
        if k.is_empty() {
            continue;
        }
        if out.insert(k.to_string(), v.to_string()).is_some() {
            // RFC 8707 allows several; this server puts one resource in a token's `aud`.
            if k == "resource" {
                return Err(Error::InvalidTarget(
                    "one resource parameter per request: a token is issued for one resource".into(),
                ));
            }
            return Err(Error::InvalidRequest(format!(
                "parameter '{k}' is included more than once"
            )));
        }
    }
    Ok(out)
}

/// A parameter that must be present and non-empty (RFC 6749 5.2 `invalid_request` otherwise).
pub fn required<'a>(params: &'a BTreeMap<String, String>, name: &str) -> Result<&'a String> {
    params
        .get(name)
        .filter(|v| !v.is_empty())
        .ok_or_else(|| Error::InvalidRequest(format!("{name} is required")))
}

/// Query parameters for the policy request. A name given once maps to its value (a string); a
/// repeated name maps to all its values in order (an array), as Aidbox's ring params give a
/// vector: FHIR repeats parameters legitimately (`date=ge2020&date=le2021` is an AND), and a
/// policy must see every value the origin may act on, never only the last one.
pub fn query_params(query: &str) -> serde_json::Map<String, Value> {
    let mut out = serde_json::Map::new();
    add_params(&mut out, query.as_bytes());
    out
}

/// Adds the parameters of a query string or `application/x-www-form-urlencoded` body to
/// `out`, a name already there (from the query) becoming an array of all its values, in order:
/// Aidbox's `params` hold the form body's parameters too (ring `wrap-params`), and a FHIR
/// server reads `POST /T/_search` parameters from both (FHIR R4 3.1.1.3.1).
pub fn add_params(out: &mut serde_json::Map<String, Value>, input: &[u8]) {
    for (k, v) in form_urlencoded::parse(input) {
        let v = Value::String(v.into_owned());
        match out.get_mut(k.as_ref()) {
            None => {
                out.insert(k.into_owned(), v);
            }
            Some(Value::Array(values)) => values.push(v),
            Some(first) => *first = Value::Array(vec![first.take(), v]),
        }
    }
}

/// Reads OAuth endpoint parameters from a form or a JSON object body (Aidbox accepts both).
/// JSON values must be strings (numbers and booleans are taken as their text).
pub fn parse_params(req: &Request) -> Result<BTreeMap<String, String>> {
    let mt = media_type(req);
    match mt.as_deref() {
        Some("application/x-www-form-urlencoded") => parse_form(req.body()),
        Some(m) if is_json(m) => {
            let UniqueObject(map) = serde_json::from_slice(req.body()).map_err(|e| {
                Error::InvalidRequest(format!("body is not a valid JSON object: {e}"))
            })?;
            let mut out = BTreeMap::new();
            for (k, v) in map {
                let s = match v {
                    Value::String(s) => s,
                    Value::Number(n) => n.to_string(),
                    Value::Bool(b) => b.to_string(),
                    Value::Null => continue,
                    _ => {
                        return Err(Error::InvalidRequest(format!(
                            "parameter '{k}' must be a string"
                        )))
                    }
                };
                out.insert(k, s);
            }
            Ok(out)
        }
        Some(other) => Err(Error::InvalidRequest(format!(
            "unsupported content type '{other}'; use application/x-www-form-urlencoded or application/json"
        ))),
        None if req.body().is_empty() => Ok(BTreeMap::new()),
        None => Err(Error::InvalidRequest(
            "missing content type; use application/x-www-form-urlencoded or application/json"
                .into(),
        )),
    }
}

/// A JSON object body whose keys are unique. RFC 6749 3.1 and 3.2 refuse a repeated
/// parameter; a JSON body must not be a way around that (serde_json's own map keeps the last
/// value silently, and two parsers may disagree on which one wins).
struct UniqueObject(BTreeMap<String, Value>);

impl<'de> serde::Deserialize<'de> for UniqueObject {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = UniqueObject;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut access: A,
            ) -> std::result::Result<UniqueObject, A::Error> {
                let mut out = BTreeMap::new();
                while let Some((k, v)) = access.next_entry::<String, Value>()? {
                    if out.contains_key(&k) {
                        return Err(serde::de::Error::custom(format!(
                            "parameter '{k}' is included more than once"
                        )));
                    }
                    out.insert(k, v);
                }
                Ok(UniqueObject(out))
            }
        }
        d.deserialize_map(Visitor)
    }
}

/// `Authorization: Basic` credentials, parsed but not checked.
#[derive(Clone, PartialEq, Eq)]
pub struct BasicCredentials {
    pub id: String,
    pub secret: crate::secret::Secret,
}

impl std::fmt::Debug for BasicCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "BasicCredentials({}, <redacted>)", self.id)
    }
}

/// What the `Authorization` header holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Authorization {
    None,
    Basic(BasicCredentials),
    Bearer(String),
}

/// Longest `Authorization` header we look at; longer ones are refused before decoding.
pub const MAX_AUTHORIZATION_LEN: usize = 16 * 1024;

/// Parses the `Authorization` header (RFC 7617 for Basic, RFC 6750 2.1 for Bearer).
/// Basic credentials are returned as sent; see [`form_decoded`] for RFC 6749 2.3.1.
pub fn authorization(req: &Request) -> Result<Authorization, String> {
    let Some(raw) = req.headers().get("authorization") else {
        return Ok(Authorization::None);
    };
    if raw.len() > MAX_AUTHORIZATION_LEN {
        return Err("authorization header is too long".into());
    }
    let raw = raw
        .to_str()
        .map_err(|_| "authorization header is not ASCII".to_string())?
        .trim();
    let (scheme, rest) = raw.split_once(' ').unwrap_or((raw, ""));
    let rest = rest.trim();
    if scheme.eq_ignore_ascii_case("basic") {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(rest)
            .map_err(|_| "basic credentials are not valid base64".to_string())?;
        let decoded = String::from_utf8(decoded)
            .map_err(|_| "basic credentials are not UTF-8".to_string())?;
        let (id, secret) = decoded
            .split_once(':')
            .ok_or_else(|| "basic credentials have no ':' between id and secret".to_string())?;
        if id.is_empty() || secret.is_empty() {
            return Err("basic credentials have an empty id or secret".into());
        }
        Ok(Authorization::Basic(BasicCredentials {
            id: id.to_string(),
            secret: crate::secret::Secret::new(secret.to_string()),
        }))
    } else if scheme.eq_ignore_ascii_case("bearer") {
        if rest.is_empty() || rest.contains(' ') {
            return Err("bearer token is empty or has spaces".into());
        }
        Ok(Authorization::Bearer(rest.to_string()))
    } else {
        Err(format!("unsupported authorization scheme '{scheme}'"))
    }
}

/// RFC 6749 2.3.1: client id and secret inside Basic are form-urlencoded. Many clients do not
/// encode them, so the token endpoint tries the value as sent and then this decoding.
pub fn form_decoded(s: &str) -> Option<String> {
    let plus = s.replace('+', " ");
    let decoded = percent_encoding::percent_decode_str(&plus)
        .decode_utf8()
        .ok()?
        .into_owned();
    (decoded != s).then_some(decoded)
}

/// base64url without padding (RFC 7515 2).
pub fn b64url(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

pub fn b64url_decode(s: &str) -> Option<Vec<u8>> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(s)
        .ok()
}
