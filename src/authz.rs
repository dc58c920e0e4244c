//! The authorizer: every path the Worker does not own. Authenticate, build the policy request
//! (Aidbox's shape), evaluate the AccessPolicies, then forward to the origin or refuse.

use crate::app::{App, Outcome};
use crate::authn::{authenticate, Identity};
use crate::error::{Error, Result};
use crate::http_util::{is_json, media_type, query_params, Request};
use crate::model::public_view;
use crate::policy;
use serde_json::{json, Map, Value};

/// Headers we set for the origin; incoming copies are removed first so a caller cannot
/// claim another identity. Every `x-auth-*` header is ours too.
pub const IDENTITY_HEADERS: [&str; 2] = ["x-client-id", "x-user-id"];

fn is_identity_header(name: &str) -> bool {
    IDENTITY_HEADERS.contains(&name) || name.starts_with("x-auth-")
}

/// Headers never shown to policies (credentials).
const HIDDEN_FROM_POLICIES: [&str; 3] = ["authorization", "cookie", "proxy-authorization"];

/// Route params of a FHIR REST path: `/{type}`, `/{type}/{id}`, `/{type}/{id}/_history/{vid}`,
/// `/{type}/{id}/${operation}`.
fn route_params(path: &str, params: &mut Map<String, Value>) {
    let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
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

/// The request a policy sees (AIDBOX.md "AccessPolicy").
pub fn policy_request(req: &Request, who: &Identity) -> Value {
    let uri = req.uri();
    let query = uri.query().unwrap_or("");
    let mut params = query_params(query);
    route_params(uri.path(), &mut params);
    let mut headers = Map::new();
    for (name, value) in req.headers() {
        let n = name.as_str();
        if HIDDEN_FROM_POLICIES.contains(&n) {
            continue;
        }
        if let Ok(v) = value.to_str() {
            headers.insert(n.to_string(), json!(v));
        }
    }
    let body = match media_type(req) {
        Some(m) if is_json(&m) && !req.body().is_empty() => {
            serde_json::from_slice(req.body()).unwrap_or(Value::Null)
        }
        _ => Value::Null,
    };
    let client = if who.root {
        json!({"id": crate::model::ROOT_CLIENT_ID, "resourceType": "Client"})
    } else {
        who.client
            .as_ref()
            .map(|c| public_view(&c.doc))
            .unwrap_or(Value::Null)
    };
    json!({
        "request-method": req.method().as_str().to_ascii_lowercase(),
        "scheme": uri.scheme_str().unwrap_or("https"),
        "uri": uri.path(),
        "query-string": query,
        "params": params,
        "headers": headers,
        "body": body,
        "remote-addr": crate::http_util::header(req, "cf-connecting-ip").unwrap_or(""),
        "client": client,
        "user": who.user.as_ref().map(|u| public_view(&u.doc)).unwrap_or(Value::Null),
        "jwt": who.jwt.clone().map(Value::Object).unwrap_or(Value::Null),
    })
}

/// Authenticates and checks policies: the identity, or 401/403. Root passes without policies.
pub async fn authorize(app: &App, req: &Request) -> Result<Identity> {
    let who = authenticate(app, req)
        .await?
        .ok_or(Error::MissingCredentials)?;
    if who.root {
        return Ok(who);
    }
    let policies = app.repo().policies().await?;
    let request = policy_request(req, &who);
    match policy::evaluate(
        &policies.policies,
        &request,
        who.client_id(),
        who.user_id(),
        None,
    ) {
        Some(_) => Ok(who),
        None => Err(Error::Forbidden(
            "no AccessPolicy allows this request".into(),
        )),
    }
}

/// A protected path: authorize, then forward to the origin (or answer from the demo origin).
pub async fn handle(app: &App, req: Request) -> Result<Outcome> {
    let who = authorize(app, &req).await?;
    match &app.config.origin_url {
        Some(origin) => Ok(Outcome::Forward(forward_request(req, origin, &who)?)),
        None => Ok(Outcome::Respond(crate::demo::handle(&req)?)),
    }
}

/// The request the origin receives: same method, path, query and body; identity headers set
/// by us; Basic credentials removed (they carry a secret the origin has no use for).
pub fn forward_request(req: Request, origin: &str, who: &Identity) -> Result<Request> {
    let path_and_query = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "/".into());
    let target = format!("{origin}{path_and_query}");
    let (mut parts, body) = req.into_parts();
    parts.uri = target
        .parse()
        .map_err(|_| Error::Internal(format!("cannot build origin URL {target}")))?;
    let drop: Vec<http::HeaderName> = parts
        .headers
        .keys()
        .filter(|n| is_identity_header(n.as_str()))
        .cloned()
        .collect();
    for n in drop {
        parts.headers.remove(&n);
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
    set("x-client-id", who.client_id());
    set("x-user-id", who.user_id());
    set("x-auth-scope", who.scope());
    Ok(http::Request::from_parts(parts, body))
}
