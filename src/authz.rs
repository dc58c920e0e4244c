//! The authorizer: every path the Worker does not own. Authenticate, build the policy request
//! (Aidbox's shape), evaluate the AccessPolicies, then forward to the origin or refuse.
//!
//! What the policy sees is what the origin gets (DESIGN.md "The authorization boundary"): a
//! request the policy and the origin could read differently is refused before anything else
//! ([`check_request`]), and the headers a policy sees are the ones the origin will receive
//! ([`OriginHeaders`]).

use crate::authn::{authenticate, Identity};
use crate::context::{App, Outcome};
use crate::error::{Error, Result};
use crate::http_util::{add_params, is_json, media_type, query_params, Request};
use crate::model::public_view;
use crate::policy;
use serde_json::{json, Map, Value};
use std::borrow::Cow;

/// Headers we set for the origin; incoming copies are removed first so a caller cannot
/// claim another identity. Every `x-auth-*` header is ours too.
pub const IDENTITY_HEADERS: [&str; 2] = ["x-client-id", "x-user-id"];

/// Headers never shown to policies (credentials).
const HIDDEN_FROM_POLICIES: [&str; 3] = ["authorization", "cookie", "proxy-authorization"];

/// Hop-by-hop headers (RFC 9110 7.6.1, RFC 9112 9.6 and 6.1; `proxy-connection` and
/// `keep-alive` are their pre-standard forms): meant for one connection, never forwarded. So is
/// `proxy-authorization` (RFC 9110 11.7.2: credentials for the proxy, consumed by it).
const HOP_BY_HOP: [&str; 9] = [
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// Routing and client-address headers an origin or a framework may act on (rewrite the path,
/// build absolute URLs, trust a client address). Never taken from the caller: the Worker sets
/// the ones it vouches for itself ([`forwarding_headers`]). Every `x-forwarded-*` and
/// `x-original-*` header is in this group too.
const ROUTING_HEADERS: [&str; 7] = [
    "forwarded", // RFC 7239
    "x-rewrite-url",
    "x-real-ip",
    "x-client-ip",
    "x-cluster-client-ip",
    "x-host",
    "x-http-host",
];

/// Method-override headers (Google APIs, ASP.NET, Express `method-override`, ...): an origin
/// that honours them runs another method than the one the policy saw. Refused with 400.
const METHOD_OVERRIDE_HEADERS: [&str; 3] = [
    "x-http-method-override",
    "x-http-method",
    "x-method-override",
];

/// Cookies we set (`edge_session`, `edge_csrf`, over https `__Host-edge_session`, ...): the
/// caller's session with us, no business of the origin's.
const OUR_COOKIE_PREFIX: &str = "edge_";

/// A header name as an origin may read it: lower-case (`http` names already are), `_` read as
/// `-`. CGI-style servers (PHP, WSGI, Rack) map both `X-User-Id` and `X_User_Id` to
/// `HTTP_X_USER_ID`, and nginx passes underscores on with `underscores_in_headers on`.
fn canonical(name: &str) -> Cow<'_, str> {
    if name.contains('_') || name.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(name.to_ascii_lowercase().replace('_', "-"))
    } else {
        Cow::Borrowed(name)
    }
}

fn is_identity_header(canon: &str) -> bool {
    IDENTITY_HEADERS.contains(&canon) || canon.starts_with("x-auth-")
}

fn is_routing_header(canon: &str) -> bool {
    ROUTING_HEADERS.contains(&canon)
        || canon.starts_with("x-forwarded-")
        || canon.starts_with("x-original-")
}

/// Which of the caller's headers reach the origin (and so the policy's `headers`).
struct OriginHeaders {
    /// Header names listed in `Connection` (RFC 9110 7.6.1: hop-by-hop too), canonical.
    connection_named: Vec<String>,
}

impl OriginHeaders {
    fn of(headers: &http::HeaderMap) -> Self {
        let mut connection_named = Vec::new();
        for v in headers.get_all("connection") {
            for token in String::from_utf8_lossy(v.as_bytes()).split(',') {
                let token = canonical(token.trim());
                if !token.is_empty() {
                    connection_named.push(token.into_owned());
                }
            }
        }
        OriginHeaders { connection_named }
    }

    /// Is this caller header dropped before the request is forwarded?
    fn drops(&self, name: &str) -> bool {
        let canon = canonical(name);
        let c = canon.as_ref();
        is_identity_header(c)
            || HOP_BY_HOP.contains(&c)
            || is_routing_header(c)
            || self.connection_named.iter().any(|n| n == c)
    }
}

/// The forwarding headers the Worker vouches for, from the request as it reached us:
/// `x-forwarded-host` (the host the caller used), `x-forwarded-proto` (the scheme it used) and
/// `x-forwarded-for` (the client address Cloudflare gives in `cf-connecting-ip`, when present).
fn forwarding_headers(req: &Request) -> Vec<(&'static str, String)> {
    let uri = req.uri();
    let mut out = Vec::with_capacity(3);
    let host = uri
        .authority()
        .map(|a| a.as_str())
        .or_else(|| crate::http_util::header(req, "host"));
    if let Some(h) = host {
        out.push(("x-forwarded-host", h.to_string()));
    }
    out.push((
        "x-forwarded-proto",
        uri.scheme_str().unwrap_or("https").to_string(),
    ));
    if let Some(ip) = crate::http_util::header(req, "cf-connecting-ip") {
        out.push(("x-forwarded-for", ip.to_string()));
    }
    out
}

/// The `Cookie` value without our own cookies, or `None` if it held none of ours. Works on
/// bytes (a non-ASCII cookie must not hide ours). Pairs are split on `;` and on `,` (RFC 6265
/// 4.2.1 has no comma in a cookie, and a runtime may join two `Cookie` headers with `, `).
fn without_our_cookies(cookie: &[u8]) -> Option<Vec<u8>> {
    let is_ours = |pair: &[u8]| {
        let mut name = pair
            .split(|b| *b == b'=')
            .next()
            .unwrap_or(b"")
            .trim_ascii();
        // Over https our cookies carry the `__Host-` prefix (src/oauth/interaction.rs); a
        // `__Secure-` copy is ours too.
        for prefix in [&b"__host-"[..], &b"__secure-"[..]] {
            if name.len() > prefix.len() && name[..prefix.len()].eq_ignore_ascii_case(prefix) {
                name = &name[prefix.len()..];
            }
        }
        name.len() >= OUR_COOKIE_PREFIX.len()
            && name[..OUR_COOKIE_PREFIX.len()]
                .iter()
                .map(|b| {
                    if *b == b'-' {
                        b'_'
                    } else {
                        b.to_ascii_lowercase()
                    }
                })
                .eq(OUR_COOKIE_PREFIX.bytes())
    };
    let pairs: Vec<&[u8]> = cookie
        .split(|b| *b == b';' || *b == b',')
        .map(<[u8]>::trim_ascii)
        .collect();
    if !pairs.iter().any(|p| is_ours(p)) {
        return None;
    }
    Some(
        pairs
            .into_iter()
            .filter(|p| !p.is_empty() && !is_ours(p))
            .collect::<Vec<_>>()
            .join(&b"; "[..]),
    )
}

/// Refuses (400) a request the policy and the origin could read differently, before any
/// policy sees it:
/// - a query parameter named like a route parameter (`resource/...`): route parameters come
///   from the path alone;
/// - method overrides: the headers of [`METHOD_OVERRIDE_HEADERS`] (any case, `_` read as `-`)
///   and a `_method` parameter in the query or in a form body (Rails, Laravel, Symfony);
/// - paths an origin may normalise differently ([`check_path`]);
/// - a raw `;` in the query or a form body (some servers split parameters on it, W3C HTML
///   4.01 B.2.2), a NUL or a non-UTF-8 escape in a parameter;
/// - more than one `Content-Type` (the policy and the origin could disagree on a form body).
pub fn check_request(req: &Request) -> Result<()> {
    check_path(req.uri().path())?;
    for name in req.headers().keys() {
        let canon = canonical(name.as_str());
        if METHOD_OVERRIDE_HEADERS.contains(&canon.as_ref()) {
            return Err(Error::InvalidRequest(format!(
                "method-override header '{name}' is not accepted: send the method itself"
            )));
        }
    }
    let query = req.uri().query().unwrap_or("");
    if query.contains(';') {
        return Err(Error::InvalidRequest(
            "';' in the query string is not accepted (servers differ on whether it separates parameters); encode it as %3B"
                .into(),
        ));
    }
    check_params(query.as_bytes(), "query")?;
    // RFC 9110 8.3: one media type. Two `Content-Type` headers (a runtime joins them with
    // `, `) or a list are read differently: we would see no form body where Rack, which
    // splits on `,` and takes the first, reads one.
    let mut types = req.headers().get_all("content-type").iter();
    if let Some(ct) = types.next() {
        let media = ct
            .as_bytes()
            .split(|b| *b == b';')
            .next()
            .unwrap_or_default();
        if types.next().is_some() || media.contains(&b',') {
            return Err(Error::InvalidRequest(
                "more than one Content-Type is not accepted: send one media type".into(),
            ));
        }
    }
    match media_type(req).as_deref() {
        Some("application/x-www-form-urlencoded") => {
            // The policy sees a POST's form parameters ([`policy_request`]): the same rule.
            if req.body().contains(&b';') {
                return Err(Error::InvalidRequest(
                    "';' in a form body is not accepted (servers differ on whether it separates parameters); encode it as %3B"
                        .into(),
                ));
            }
            check_params(req.body(), "form body")?
        }
        Some("multipart/form-data") if has_multipart_method(req.body()) => {
            return Err(method_param_error("form body"))
        }
        _ => {}
    }
    Ok(())
}

fn method_param_error(place: &str) -> Error {
    Error::InvalidRequest(format!(
        "the '_method' parameter in the {place} is not accepted: send the method itself"
    ))
}

/// The parameters of a query string or form body: no `resource/*` name in the query, no
/// `_method`, no NUL, no escape that does not decode to UTF-8.
fn check_params(bytes: &[u8], place: &str) -> Result<()> {
    for raw in bytes.split(|b| *b == b'&') {
        let (k, v) = match raw.iter().position(|b| *b == b'=') {
            Some(i) => (&raw[..i], &raw[i + 1..]),
            None => (raw, &raw[..0]),
        };
        let decode = |s: &[u8]| -> Result<String> {
            let plus: Vec<u8> = s
                .iter()
                .map(|b| if *b == b'+' { b' ' } else { *b })
                .collect();
            let d = percent_encoding::percent_decode(&plus)
                .decode_utf8()
                .map_err(|_| {
                    Error::InvalidRequest(format!("a parameter in the {place} is not UTF-8"))
                })?;
            if d.contains('\0') {
                return Err(Error::InvalidRequest(format!(
                    "a parameter in the {place} contains a NUL character"
                )));
            }
            Ok(d.into_owned())
        };
        let key = decode(k)?;
        decode(v)?;
        if key.eq_ignore_ascii_case("_method") {
            return Err(method_param_error(place));
        }
        if place == "query" && key.starts_with("resource/") {
            return Err(Error::InvalidRequest(format!(
                "query parameter '{key}' is reserved: route parameters (resource/type, resource/id, ...) come from the path"
            )));
        }
    }
    Ok(())
}

/// A `_method` part in a multipart form body (`Content-Disposition: form-data; name="_method"`).
fn has_multipart_method(body: &[u8]) -> bool {
    const NEEDLE: &[u8] = b"name=\"_method\"";
    body.windows(NEEDLE.len())
        .any(|w| w.eq_ignore_ascii_case(NEEDLE))
}

/// Refuses (400) a path the origin may read differently from the policy (RFC 3986 3.3, 5.2.4;
/// the CVE trail of `..;` on Tomcat, `%2F` on proxies, `\` on IIS):
/// - `;` (path parameters: Tomcat and Jetty drop `;jsessionid=...` and read `/..;/` as `/../`);
/// - `\` (read as `/` by WHATWG URL parsers and by IIS);
/// - escapes of `/`, `\`, `.`, `;`, `%` (double encoding), NUL and other control characters,
///   any case, and malformed escapes;
/// - `.` and `..` segments, and empty segments (`//`) except a trailing `/`.
pub fn check_path(path: &str) -> Result<()> {
    let refuse = |why: &str| {
        Err(Error::InvalidRequest(format!(
            "path not accepted: {why} (the origin may read it differently from the policy)"
        )))
    };
    let bytes = path.as_bytes();
    for (i, b) in bytes.iter().enumerate() {
        match b {
            b';' => return refuse("';' path parameters"),
            b'\\' => return refuse("a backslash"),
            b'%' => {
                let hex = |j: usize| bytes.get(j).and_then(|c| (*c as char).to_digit(16));
                let (Some(hi), Some(lo)) = (hex(i + 1), hex(i + 2)) else {
                    return refuse("a malformed percent escape");
                };
                let c = (hi * 16 + lo) as u8;
                if matches!(c, b'/' | b'\\' | b'.' | b';' | b'%') || c < 0x20 || c == 0x7f {
                    return refuse(&format!("an encoded '{}'", &path[i..i + 3]));
                }
            }
            _ => {}
        }
    }
    let segments: Vec<&str> = path.strip_prefix('/').unwrap_or(path).split('/').collect();
    let last = segments.len() - 1;
    for (i, s) in segments.iter().enumerate() {
        if *s == "." || *s == ".." {
            return refuse("a '.' or '..' segment");
        }
        if s.is_empty() && i != last {
            return refuse("an empty segment ('//')");
        }
    }
    Ok(())
}

/// Route params of a FHIR REST path under a FHIR base (`rel`: the path after the base, see
/// [`crate::config::Config::fhir_base_of`]; `None`: not under any base, no route params):
/// `/{type}`, `/{type}/{id}`, `/{type}/{id}/_history/{vid}`, `/{type}/{id}/${operation}`. They
/// come from the path alone: query parameters under `resource/` never reach `params`
/// ([`check_request`] refuses them, [`policy_request`] drops them).
fn route_params(rel: Option<&str>, params: &mut Map<String, Value>) {
    params.retain(|k, _| !k.starts_with("resource/"));
    let Some(rel) = rel else { return };
    let segs: Vec<&str> = rel.trim_start_matches('/').split('/').collect();
    let is_type = |s: &str| s.chars().next().is_some_and(|c| c.is_ascii_uppercase());
    if let Some(t) = segs.first().filter(|s| is_type(s)) {
        params.insert("resource/type".into(), json!(t));
        if let Some(id) = segs
            .get(1)
            .filter(|s| !s.is_empty() && !s.starts_with(['$', '_']))
        {
            params.insert("resource/id".into(), json!(id));
        }
        if segs.get(2) == Some(&"_history") {
            if let Some(v) = segs.get(3) {
                params.insert("resource/version".into(), json!(v));
            }
        }
    }
}

/// A FHIR resource type name as a path segment: an ASCII capital, then letters and digits;
/// never a type of this server ([`crate::model::is_server_type`]: operation ids never cover
/// the admin API).
fn fhir_type(s: &str) -> bool {
    s.starts_with(|c: char| c.is_ascii_uppercase())
        && s.bytes().all(|b| b.is_ascii_alphanumeric())
        && !crate::model::is_server_type(s)
}

/// A resource id or version as a path segment (FHIR `id`: letters, digits, `-`, `.`).
fn fhir_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.'))
}

/// Aidbox's id of the FHIR operation a request makes (the `Operation` an AccessPolicy links to
/// and `operation.id` in the policy request), from the method and the path under a FHIR base
/// alone (`rel`, as for [`route_params`]) and, for `POST [base]`, the JSON Bundle's `type`.
/// Anything this table does not name (other methods, `HEAD`, `$operations`, lowercase or admin
/// types, trailing slashes, bodies that are not a transaction or batch Bundle) has no
/// operation: `None`, never a guess.
///
/// | request | id |
/// |---|---|
/// | `GET [base]/metadata` | `FhirCapabilities` |
/// | `GET [base]` | `FhirSearchSystem` |
/// | `POST [base]`, Bundle `type: transaction` / `batch` | `FhirTransaction` / `FhirBatch` |
/// | `GET [base]/_history` | `FhirHistorySystem` |
/// | `GET` / `POST` / `PUT` / `PATCH` / `DELETE [base]/T` | `FhirSearch` / `FhirCreate` / `FhirConditionalUpdate` / `FhirConditionalPatch` / `FhirConditionalDelete` |
/// | `POST [base]/T/_search` | `FhirPostSearch` |
/// | `GET [base]/T/_history` | `FhirHistoryType` |
/// | `GET` / `PUT` / `PATCH` / `DELETE [base]/T/id` | `FhirRead` / `FhirUpdate` / `FhirPatch` / `FhirDelete` |
/// | `GET [base]/T/id/_history` | `FhirHistoryInstance` |
/// | `GET [base]/T/id/_history/vid` | `FhirVRead` |
/// | `GET [base]/T/id/T2` | `FhirCompartmentSearch` |
pub fn operation_id(method: &str, rel: &str, body: &Value) -> Option<&'static str> {
    let segs: Vec<&str> = if rel.is_empty() || rel == "/" {
        Vec::new()
    } else {
        rel.strip_prefix('/')?.split('/').collect()
    };
    let m = method.to_ascii_uppercase();
    let m = m.as_str();
    let id = match (m, segs.as_slice()) {
        ("GET", []) => "FhirSearchSystem",
        ("POST", []) => match body.get("type").and_then(Value::as_str) {
            Some("transaction")
                if body.get("resourceType").and_then(Value::as_str) == Some("Bundle") =>
            {
                "FhirTransaction"
            }
            Some("batch") if body.get("resourceType").and_then(Value::as_str) == Some("Bundle") => {
                "FhirBatch"
            }
            _ => return None,
        },
        ("GET", ["metadata"]) => "FhirCapabilities",
        ("GET", ["_history"]) => "FhirHistorySystem",
        (m, [t]) if fhir_type(t) => match m {
            "GET" => "FhirSearch",
            "POST" => "FhirCreate",
            "PUT" => "FhirConditionalUpdate",
            "PATCH" => "FhirConditionalPatch",
            "DELETE" => "FhirConditionalDelete",
            _ => return None,
        },
        ("POST", [t, "_search"]) if fhir_type(t) => "FhirPostSearch",
        ("GET", [t, "_history"]) if fhir_type(t) => "FhirHistoryType",
        (m, [t, id]) if fhir_type(t) && fhir_id(id) => match m {
            "GET" => "FhirRead",
            "PUT" => "FhirUpdate",
            "PATCH" => "FhirPatch",
            "DELETE" => "FhirDelete",
            _ => return None,
        },
        ("GET", [t, id, "_history"]) if fhir_type(t) && fhir_id(id) => "FhirHistoryInstance",
        ("GET", [t, id, "_history", v]) if fhir_type(t) && fhir_id(id) && fhir_id(v) => "FhirVRead",
        ("GET", [t, id, t2]) if fhir_type(t) && fhir_id(id) && fhir_type(t2) => {
            "FhirCompartmentSearch"
        }
        _ => return None,
    };
    Some(id)
}

/// The policy request's `body`: a JSON body parsed, else `null`.
fn json_body(req: &Request) -> Value {
    match media_type(req) {
        Some(m) if is_json(&m) && !req.body().is_empty() => {
            serde_json::from_slice(req.body()).unwrap_or(Value::Null)
        }
        _ => Value::Null,
    }
}

/// The policy request's `operation.id` ([`operation_id`]), without building the request.
fn operation_in(req: &Request, bases: &[String]) -> Option<&'static str> {
    let (_, rel) = crate::config::split_fhir_base(bases, req.uri().path())?;
    operation_id(req.method().as_str(), rel, &json_body(req))
}

/// The request a policy sees (AIDBOX.md "AccessPolicy"), with the default FHIR bases
/// ([`crate::config::DEFAULT_FHIR_BASES`]); see [`policy_request_in`].
pub fn policy_request(req: &Request, who: &Identity) -> Value {
    let bases = crate::config::DEFAULT_FHIR_BASES.map(str::to_string);
    policy_request_in(req, who, &bases)
}

/// The request a policy sees (AIDBOX.md "AccessPolicy"). `params` holds every value of a
/// repeated query parameter (an array, in order; a single value stays a string), as Aidbox's
/// ring params do, the parameters of a POST's form body, and the route params. `headers` are the ones the origin will get (see
/// [`forward_request`]; repeated ones joined with `, `, RFC 9110 5.3), without credentials.
/// `operation` is `{"id": ...}` ([`operation_id`]) or `null`; `fhir-base` is the FHIR base
/// (`bases`, longest first) the path is under (`""` for the root), or `null`.
pub fn policy_request_in(req: &Request, who: &Identity, bases: &[String]) -> Value {
    let uri = req.uri();
    let query = uri.query().unwrap_or("");
    let mut params = query_params(query);
    // A POST's form body parameters are parameters too (Aidbox: "body params on POST"): a FHIR
    // server runs `POST /T/_search` with them, so `_revinclude`, `_has` or `patient` hidden
    // there must be seen by the policy (a name in both becomes an array of every value). Only
    // on POST: conditional PUT/PATCH/DELETE take their criteria from the URL alone.
    if req.method() == http::Method::POST
        && media_type(req).as_deref() == Some("application/x-www-form-urlencoded")
    {
        add_params(&mut params, req.body());
    }
    let under = crate::config::split_fhir_base(bases, uri.path());
    route_params(under.map(|(_, rel)| rel), &mut params);
    let mut headers = Map::new();
    let keep = OriginHeaders::of(req.headers());
    for name in req.headers().keys() {
        let n = name.as_str();
        if HIDDEN_FROM_POLICIES.contains(&n) || keep.drops(n) {
            continue;
        }
        let values: Vec<&str> = req
            .headers()
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        if !values.is_empty() {
            headers.insert(n.to_string(), Value::String(values.join(", ")));
        }
    }
    for (name, value) in forwarding_headers(req) {
        headers.insert(name.to_string(), Value::String(value));
    }
    let body = json_body(req);
    let client = if who.root {
        json!({"id": crate::model::ROOT_CLIENT_ID, "resourceType": "Client"})
    } else {
        who.client
            .as_ref()
            .map(|c| public_view(&c.doc))
            .unwrap_or(Value::Null)
    };
    let operation = under
        .and_then(|(_, rel)| operation_id(req.method().as_str(), rel, &body))
        .map(|id| json!({ "id": id }))
        .unwrap_or(Value::Null);
    // Built as a map, not with `json!`: `json!` serializes each value into a new tree, a deep
    // copy of the claims, the client and the parameters on every request.
    let str_value = |s: &str| Value::String(s.to_string());
    let mut out = Map::new();
    let mut put = |k: &str, v: Value| {
        out.insert(k.to_string(), v);
    };
    put(
        "request-method",
        Value::String(req.method().as_str().to_ascii_lowercase()),
    );
    put("scheme", str_value(uri.scheme_str().unwrap_or("https")));
    put("uri", str_value(uri.path()));
    put("query-string", str_value(query));
    put("params", Value::Object(params));
    put("headers", Value::Object(headers));
    // Aidbox gives the incoming resource twice: as `body` and as `resource` (the
    // matcho reference's `$reference` example matches under `resource`).
    put(
        "resource",
        if body.is_object() {
            body.clone()
        } else {
            Value::Null
        },
    );
    put("body", body);
    put(
        "remote-addr",
        str_value(crate::http_util::header(req, "cf-connecting-ip").unwrap_or("")),
    );
    put("client", client);
    put(
        "user",
        who.user
            .as_ref()
            .map(|u| public_view(&u.doc))
            .unwrap_or(Value::Null),
    );
    put(
        "jwt",
        who.jwt.clone().map(Value::Object).unwrap_or(Value::Null),
    );
    put("operation", operation);
    put(
        "fhir-base",
        under.map(|(b, _)| str_value(b)).unwrap_or(Value::Null),
    );
    put(
        "token",
        who.token.clone().map(Value::Object).unwrap_or(Value::Null),
    );
    Value::Object(out)
}

/// Adds the user's Roles to a policy request (`role`, `session.role`; `null` without a user
/// or without Roles): what `AccessPolicy.roleName` and Aidbox's RBAC policies read.
pub async fn user_roles(app: &App, request: &mut Value, who: &Identity) -> Result<()> {
    match &who.user {
        Some(u) => crate::model::role::attach(request, app.repo().roles().await?.of(&u.id)),
        None => crate::model::role::attach(request, &[]),
    }
    Ok(())
}

/// Checks the request's shape ([`check_request`], 400), authenticates and checks policies:
/// the identity, or 401/403. Root passes without policies. No credentials: 401, always (the
/// admin API, `/auth/launch`); see [`authorize_public`] for the protected API.
pub async fn authorize(app: &App, req: &Request) -> Result<Identity> {
    authorize_as(app, req, false).await
}

/// [`authorize`] for the protected API: a request without any credentials is evaluated as
/// anonymous ([`authorize_anonymous`]), so a policy can make a route public (Aidbox). Invalid
/// credentials never fall back to anonymous: they stay 401.
pub async fn authorize_public(app: &App, req: &Request) -> Result<Identity> {
    authorize_as(app, req, true).await
}

async fn authorize_as(app: &App, req: &Request, public: bool) -> Result<Identity> {
    check_request(req)?;
    let who = match authenticate(app, req).await? {
        Some(who) => who,
        None if public => return authorize_anonymous(app, req).await,
        None => return Err(Error::MissingCredentials),
    };
    authorize_identity(app, req, &who).await?;
    Ok(who)
}

/// The policy request the engines see for this caller: [`policy_request_in`] under the
/// deployment's FHIR bases, with the user's Roles ([`user_roles`]).
pub async fn policy_request_for(app: &App, req: &Request, who: &Identity) -> Result<Value> {
    let mut request = policy_request_in(req, who, &app.config.fhir_bases);
    user_roles(app, &mut request, who).await?;
    Ok(request)
}

/// The policy step of [`authorize`] for an authenticated caller: root passes, anyone else
/// needs an AccessPolicy that applies and allows (403). The policy tester (src/debug.rs) runs
/// exactly this for its decision.
pub async fn authorize_identity(app: &App, req: &Request, who: &Identity) -> Result<()> {
    if who.root {
        return Ok(());
    }
    let policies = app.repo().policies().await?;
    // The first policy that applies decides without the request when it does not read it (an
    // `allow` policy without `roleName`), and none applying is a 403 whatever the request: no
    // policy request is built then (docs/perf.md "Protected decision"). The Roles are still
    // loaded as the request would load them, so a store failure answers as before.
    let (client, user) = (who.client_id(), who.user_id());
    let mut operation = None;
    let needs_operation = policies.policies.iter().any(|p| {
        p.links()
            .iter()
            .any(|l| l.kind == policy::LinkKind::Operation)
    });
    if needs_operation {
        operation = operation_in(req, &app.config.fhir_bases);
    }
    let first = policies
        .policies
        .iter()
        .find(|p| p.applies_to(client, user, operation));
    let forbidden = || Error::Forbidden("no AccessPolicy allows this request".into());
    if first.is_none_or(|p| !p.reads_request()) {
        if who.user.is_some() {
            app.repo().roles().await?;
        }
        return match first {
            Some(_) => Ok(()),
            None => Err(forbidden()),
        };
    }
    let request = policy_request_for(app, req, who).await?;
    let (client, user, operation) = link_ids(who, &request);
    match policy::evaluate(&policies.policies, &request, client, user, operation) {
        Some(_) => Ok(()),
        // RFC 6750 3.1: a bearer token a SMART scope policy would let through with one more
        // scope gets `insufficient_scope` naming it; any other denial stays a plain 403.
        None if who.jwt.is_some() => Err(policies
            .policies
            .iter()
            .filter(|p| p.applies_to(client, user, operation))
            .find_map(|p| p.needed_scope(&request))
            .map_or_else(forbidden, Error::InsufficientScope)),
        None => Err(forbidden()),
    }
}

/// The `operation.id` of a policy request.
fn operation_of(request: &Value) -> Option<&str> {
    request.get("operation")?.get("id")?.as_str()
}

/// A request without credentials: allowed when a policy that applies to everyone (no `link`,
/// or linked to its Operation) allows it with `user`, `client` and `jwt` null; else 401 as
/// before. Never for anything that reaches the server's own resource types (the admin API's
/// `Client`, `User`, `AccessPolicy`, ... in a path segment, an include, a chain or a Bundle
/// entry's URL, [`policy::touches_server_type`]), nor for a write to a FHIR base itself whose
/// body is not a JSON Bundle the check could read: 401, whatever a policy says.
pub async fn authorize_anonymous(app: &App, req: &Request) -> Result<Identity> {
    let who = Identity::default();
    let request = policy_request_for(app, req, &who).await?;
    let at_base_root = crate::config::split_fhir_base(&app.config.fhir_bases, req.uri().path())
        .is_some_and(|(_, rel)| rel.is_empty() || rel == "/");
    let safe_method = matches!(*req.method(), http::Method::GET | http::Method::HEAD);
    if policy::touches_server_type(&request)
        || (at_base_root && !safe_method && !request["body"].is_object())
    {
        return Err(Error::MissingCredentials);
    }
    let policies = app.repo().policies().await?;
    match policy::evaluate(
        &policies.policies,
        &request,
        None,
        None,
        operation_of(&request),
    ) {
        Some(_) => Ok(who),
        None => Err(Error::MissingCredentials),
    }
}

/// The ids a policy's `link` is matched against for this caller and policy request (client,
/// user, `operation.id`); shared by [`authorize_identity`] and the policy tester.
pub fn link_ids<'a>(
    who: &'a Identity,
    request: &'a Value,
) -> (Option<&'a str>, Option<&'a str>, Option<&'a str>) {
    (who.client_id(), who.user_id(), operation_of(request))
}

/// A protected path: authorize, then forward to the origin (or answer from the demo origin).
pub async fn handle(app: &App, req: Request) -> Result<Outcome> {
    let who = authorize_public(app, &req).await?;
    match &app.config.origin_url {
        Some(origin) => Ok(Outcome::Forward(forward_request(req, origin, &who)?)),
        None => {
            let path = req.uri().path();
            let rel = app.config.fhir_base_of(path).map_or(path, |(_, rest)| rest);
            Ok(Outcome::Respond(crate::demo::handle(&req, rel)?))
        }
    }
}

/// The request the origin receives: same method, path, query and body, and the caller's
/// headers except:
/// - identity headers (`x-client-id`, `x-user-id`, `x-auth-*`, any case, `_` read as `-`):
///   removed, then set by us;
/// - hop-by-hop headers, those named in `Connection`, and `Proxy-Authorization`: removed;
/// - routing headers (`Forwarded`, `X-Forwarded-*`, `X-Original-*`, `X-Rewrite-URL`,
///   `X-Real-IP`, ...): removed, then `x-forwarded-host`, `x-forwarded-proto` and (with
///   `cf-connecting-ip`) `x-forwarded-for` set by us;
/// - our cookies (`edge_*`) are taken out of `Cookie`;
/// - Basic credentials are removed (they carry a secret the origin has no use for).
pub fn forward_request(req: Request, origin: &str, who: &Identity) -> Result<Request> {
    let path_and_query = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "/".into());
    let target = format!("{origin}{path_and_query}");
    let forwarding = forwarding_headers(&req);
    let (mut parts, body) = req.into_parts();
    parts.uri = target
        .parse()
        .map_err(|_| Error::Internal(format!("cannot build origin URL {target}")))?;
    let keep = OriginHeaders::of(&parts.headers);
    let drop: Vec<http::HeaderName> = parts
        .headers
        .keys()
        .filter(|n| keep.drops(n.as_str()))
        .cloned()
        .collect();
    for n in drop {
        parts.headers.remove(&n);
    }
    let cookies: Vec<&[u8]> = parts
        .headers
        .get_all("cookie")
        .iter()
        .map(|v| v.as_bytes())
        .collect();
    if let Some(rest) = without_our_cookies(&cookies.join(&b"; "[..])) {
        parts.headers.remove("cookie");
        if let Ok(v) = http::HeaderValue::from_bytes(&rest) {
            if !rest.is_empty() {
                parts.headers.insert("cookie", v);
            }
        }
    }
    let basic = parts
        .headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.len() >= 6 && v[..6].eq_ignore_ascii_case("basic "));
    if basic {
        parts.headers.remove("authorization");
    }
    let mut set = |name: &'static str, value: Option<&str>| {
        if let Some(v) = value.and_then(|v| http::HeaderValue::from_str(v).ok()) {
            parts.headers.insert(name, v);
        }
    };
    for (name, value) in &forwarding {
        set(name, Some(value));
    }
    set("x-client-id", who.client_id());
    set("x-user-id", who.user_id());
    set("x-auth-scope", who.scope());
    Ok(http::Request::from_parts(parts, body))
}
