//! CORS (Fetch standard, "CORS protocol") for browser clients.
//!
//! The model (docs/security.md "CORS"): an origin may call us cross-origin only when a Client registers it:
//!
//! - a public client (no `secret`) registers the origins of its redirect URIs
//!   (`auth.authorization_code.redirect_uri`, `auth.implicit.redirect_uri`);
//! - any client may list more origins in `allowed_origins` (`["https://spa.example"]`).
//!
//! Inactive clients register nothing. Endpoints that answer CORS: `/auth/token`, `/auth/revoke`,
//! `/auth/userinfo` and the protected API. Discovery and JWKS (`/.well-known/*`) are public,
//! cacheable and never carry credentials, so they answer `Access-Control-Allow-Origin: *`.
//! We never send `Access-Control-Allow-Credentials`: SPAs authenticate with headers, not
//! cookies, so no cookie of ours is ever usable cross-origin.
//!
//! A preflight (`OPTIONS` with `Origin` and `Access-Control-Request-Method`) from a registered
//! origin gets 204 with that exact origin; from any other origin a 403 `forbidden` without CORS
//! headers. Actual responses carry `Access-Control-Allow-Origin` only for registered origins,
//! and `Vary: Origin` always, so caches never hand one origin's answer to another.
//!
//! The registered origins are computed from all Clients once per `CACHE_TTL` per isolate (like
//! the AccessPolicies: one KV get of `bundle/Client`, src/store/mod.rs), and only for requests
//! that carry a cross-origin `Origin`; a Client write through this isolate drops the cached set
//! at once.

use crate::context::App;
use crate::error::{Error, Result};
use crate::http_util::{header, Request, Response};
use crate::model::ResourceType;
use serde_json::Value;
use std::cell::RefCell;
use std::collections::BTreeSet;
use std::rc::Rc;

/// Seconds a browser may reuse a preflight answer.
pub const MAX_AGE: &str = "600";
/// Request headers an SPA may send.
pub const ALLOW_HEADERS: &str =
    "authorization, content-type, accept, prefer, if-match, if-none-match, if-modified-since, dpop";
/// Response headers an SPA may read beyond the CORS-safelisted ones.
pub const EXPOSE_HEADERS: &str = "www-authenticate, retry-after, location, etag, dpop-nonce";

/// What kind of CORS a path gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Registered origins only; the methods the endpoint accepts.
    Registered(&'static str),
    /// Public documents: any origin (`*`), GET/HEAD.
    Public,
}

/// The CORS kind of a path, or None for paths that never answer CORS (admin API, `/auth/*`
/// pages and forms, introspection, static files).
pub fn kind(path: &str, bases: &[String]) -> Option<Kind> {
    // The admin API, at the root or under a FHIR base (`/fhir/Client`): same-origin only.
    if crate::context::admin_route(bases, path).is_some() {
        return None;
    }
    // Discovery under a FHIR base (`/fhir/.well-known/smart-configuration`) is public like
    // the root's.
    if let Some((base, rest)) = crate::config::split_fhir_base(bases, path) {
        if !base.is_empty() && rest.starts_with("/.well-known/") {
            return Some(Kind::Public);
        }
    }
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match segments.as_slice() {
        [".well-known", ..] => Some(Kind::Public),
        ["auth", "token"] | ["auth", "revoke"] | ["auth", "par"] => Some(Kind::Registered("POST")),
        ["auth", "userinfo"] => Some(Kind::Registered("GET, POST")),
        ["auth", ..] | ["app", ..] => None,
        [rt, rest @ ..] if rest.len() <= 1 && ResourceType::parse(rt).is_some() => None,
        // `/Session` (src/sessions.rs) is admin API too: same-origin only.
        ["Session", rest @ ..] if rest.len() <= 1 => None,
        _ => Some(Kind::Registered("GET, HEAD, POST, PUT, PATCH, DELETE")),
    }
}

/// The lowercased scheme and authority of an absolute http(s) URI without userinfo.
fn scheme_authority(uri: &str) -> Option<(String, String)> {
    let u: http::Uri = uri.parse().ok()?;
    let scheme = u.scheme_str()?.to_ascii_lowercase();
    if scheme != "http" && scheme != "https" {
        return None;
    }
    let authority = u.authority()?.as_str();
    if authority.contains('@') || u.host().is_none_or(str::is_empty) {
        return None;
    }
    Some((scheme, authority.to_ascii_lowercase()))
}

/// The ASCII-lowercased `scheme://host[:port]` of an absolute http(s) URI, without a default
/// port (the form browsers send in `Origin`).
pub fn origin_of(uri: &str) -> Option<String> {
    let (scheme, authority) = scheme_authority(uri)?;
    let default_port = if scheme == "https" { ":443" } else { ":80" };
    let authority = authority.strip_suffix(default_port).unwrap_or(&authority);
    Some(format!("{scheme}://{authority}"))
}

/// Is `s` exactly an origin (`scheme://host[:port]`, nothing after it)? https, or http only
/// for loopback hosts, as for redirect URIs.
pub fn valid_origin(s: &str) -> bool {
    let Some((scheme, authority)) = scheme_authority(s) else {
        return false;
    };
    if format!("{scheme}://{authority}") != s.to_ascii_lowercase() {
        return false;
    }
    let host = s
        .parse::<http::Uri>()
        .ok()
        .and_then(|u| u.host().map(str::to_string))
        .unwrap_or_default();
    scheme == "https" || matches!(host.as_str(), "localhost" | "127.0.0.1" | "[::1]")
}

/// The origins one Client registers (see the module doc).
pub fn client_origins(doc: &Value) -> Vec<String> {
    if doc.get("active").and_then(Value::as_bool) == Some(false) {
        return Vec::new();
    }
    let mut out = Vec::new();
    let public = doc.get("secret_hash").is_none() && doc.get("secret").is_none();
    if public {
        for flow in ["authorization_code", "implicit"] {
            // A string or a list of them (native apps' private-use schemes have no origin).
            let uris = crate::model::client::redirect_uris(
                doc.pointer(&format!("/auth/{flow}/redirect_uri")),
            );
            out.extend(uris.into_iter().filter_map(origin_of));
        }
    }
    if let Some(list) = doc.get("allowed_origins").and_then(Value::as_array) {
        out.extend(
            list.iter()
                .filter_map(Value::as_str)
                .filter(|s| valid_origin(s))
                .filter_map(origin_of),
        );
    }
    out
}

/// The isolate's cached set of registered origins.
#[derive(Debug, Default)]
pub struct CorsCache {
    origins: RefCell<Option<(i64, Rc<BTreeSet<String>>)>>,
}

impl CorsCache {
    /// Drops the cached set (a Client was written or deleted).
    pub fn clear(&self) {
        *self.origins.borrow_mut() = None;
    }
}

/// All registered origins, cached for `CACHE_TTL`.
pub async fn registered_origins(app: &App) -> Result<Rc<BTreeSet<String>>> {
    let now = app.now();
    if let Some((at, set)) = app.cache.cors.origins.borrow().as_ref() {
        if now - at < app.config.cache_ttl {
            return Ok(set.clone());
        }
    }
    let set = Rc::new(app.repo().cors_origins().await?);
    *app.cache.cors.origins.borrow_mut() = Some((now, set.clone()));
    Ok(set)
}

/// Our own origin for this request (then `Origin` is same-origin and needs no CORS).
fn own_origin(app: &App, req: &Request) -> Option<String> {
    origin_of(&app.issuer(req))
}

/// The request's `Origin` when it is a cross-origin one (`null` and our own origin are not).
pub fn cross_origin(app: &App, req: &Request) -> Option<String> {
    let o = header(req, "origin")?.trim();
    if o.is_empty() || o == "null" {
        return None;
    }
    let lower = o.to_ascii_lowercase();
    if Some(&lower) == own_origin(app, req).as_ref() {
        return None;
    }
    Some(lower)
}

/// Is this a CORS preflight?
pub fn is_preflight(req: &Request) -> bool {
    req.method() == http::Method::OPTIONS
        && req.headers().contains_key("origin")
        && req.headers().contains_key("access-control-request-method")
}

/// The origin to allow for this request, if it is cross-origin and allowed for this kind.
pub async fn allowed_origin(app: &App, req: &Request, kind: Kind) -> Result<Option<String>> {
    let Some(origin) = cross_origin(app, req) else {
        return Ok(None);
    };
    match kind {
        Kind::Public => Ok(Some("*".into())),
        Kind::Registered(_) => {
            let set = registered_origins(app).await?;
            Ok(set.contains(&origin).then_some(origin))
        }
    }
}

fn set(resp: &mut Response, name: &'static str, value: &str) {
    if let Ok(v) = http::HeaderValue::from_str(value) {
        resp.headers_mut().insert(name, v);
    }
}

/// Adds `Vary: Origin` (keeping other `Vary` values).
pub fn add_vary_origin(resp: &mut Response) {
    let existing: Vec<String> = resp
        .headers()
        .get_all("vary")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
        .collect();
    if existing
        .iter()
        .any(|v| v.eq_ignore_ascii_case("origin") || v == "*")
    {
        return;
    }
    let mut all = existing;
    all.push("Origin".into());
    resp.headers_mut().remove("vary");
    set(resp, "vary", &all.join(", "));
}

/// The CORS headers of an actual (non-preflight) response.
pub fn decorate(resp: &mut Response, kind: Kind, allowed: Option<&str>) {
    if let Kind::Registered(_) = kind {
        add_vary_origin(resp);
    }
    if let Some(o) = allowed {
        set(resp, "access-control-allow-origin", o);
        set(resp, "access-control-expose-headers", EXPOSE_HEADERS);
    }
}

/// Answers a preflight: 204 with the CORS grant for an allowed origin, else 403.
pub async fn preflight(app: &App, req: &Request, kind: Kind) -> Result<Response> {
    let allowed = allowed_origin(app, req, kind).await?;
    let Some(origin) = allowed else {
        let mut r = Error::Forbidden("this origin is not registered for CORS".into()).to_response();
        add_vary_origin(&mut r);
        return Ok(r);
    };
    let mut r = http::Response::new(Vec::new());
    *r.status_mut() = http::StatusCode::NO_CONTENT;
    let methods = match kind {
        Kind::Registered(m) => m,
        Kind::Public => "GET, HEAD",
    };
    set(&mut r, "access-control-allow-origin", &origin);
    set(&mut r, "access-control-allow-methods", methods);
    set(&mut r, "access-control-allow-headers", ALLOW_HEADERS);
    set(&mut r, "access-control-max-age", MAX_AGE);
    set(
        &mut r,
        "vary",
        "Origin, Access-Control-Request-Method, Access-Control-Request-Headers",
    );
    Ok(r)
}

/// The allowed origin of a forwarded request, kept in its extensions so that the Worker adds
/// the CORS headers to the origin's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForwardCors(pub Option<String>);

/// Adds the CORS headers for a forwarded request to a header list (the adapter's side).
pub fn forward_headers(cors: &ForwardCors) -> Vec<(&'static str, String)> {
    let mut out = vec![("vary", "Origin".to_string())];
    if let Some(o) = &cors.0 {
        out.push(("access-control-allow-origin", o.clone()));
        out.push(("access-control-expose-headers", EXPOSE_HEADERS.into()));
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_public_clients_redirect_list_gives_each_web_origin() {
        let doc = serde_json::json!({"auth": {
            "authorization_code": {"redirect_uri": ["https://a.example/cb", "com.example.app:/cb"]},
            "implicit": {"redirect_uri": "https://b.example:8443/cb"}}});
        assert_eq!(
            super::client_origins(&doc),
            vec!["https://a.example", "https://b.example:8443"]
        );
    }
}
