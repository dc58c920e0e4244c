//! Admin debugging operations: the policy tester (`POST /auth/test-policy`, Aidbox's name and
//! request shape) and the token inspector (`POST /auth/inspect-token`).
//!
//! Both are admin operations: the caller goes through [`authorize`] like any admin request
//! (root, or an AccessPolicy that allows `POST /auth/test-policy` for it). The
//! `smart-on-fhir` engine never allows them (`auth` is no FHIR type), so no SMART scope does.
//! Neither ever forwards anything to the origin: the tester builds the request, authenticates
//! it exactly as the authorizer does and evaluates the policies with the authorizer's own code
//! ([`crate::authz::authorize_identity`]), then answers with what it found.

use crate::authn::{
    authenticate, authenticate_bearer, authenticate_own_any_audience, load_client, load_user,
    Identity,
};
use crate::authz::{
    authorize, authorize_anonymous, authorize_identity, check_request, link_ids, policy_request_for,
};
use crate::context::App;
use crate::error::{Error, Result};
use crate::http_util::{b64url_decode, is_json, json_response, media_type, Request, Response};
use crate::model::{generation_tag, ResourceType, GENERATION_CLAIM, ROOT_CLIENT_ID};
use crate::policy::CompiledPolicy;
use serde_json::{json, Map, Value};

fn json_body(req: &Request) -> Result<Map<String, Value>> {
    match media_type(req) {
        Some(m) if is_json(&m) => {}
        _ => {
            return Err(Error::UnsupportedMediaType(
                "send a JSON object (application/json)".into(),
            ))
        }
    }
    match serde_json::from_slice(req.body()) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(Error::validation("", "the body must be a JSON object")),
        Err(e) => Err(Error::InvalidRequest(format!(
            "body is not valid JSON: {e}"
        ))),
    }
}

/// What an error answers, as the tester reports it.
fn refusal(e: &Error) -> Value {
    json!({"status": e.status(), "outcome": "refuse", "error": e.code(), "message": e.to_string()})
}

fn str_field<'a>(m: &'a Map<String, Value>, k: &str, at: &str) -> Result<Option<&'a str>> {
    match m.get(k) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(Error::validation(format!("{at}{k}"), "must be a string")),
    }
}

/// The request under test, as it would reach this Worker (same scheme and host as the
/// tester's own request, so issuer and audience are the real ones).
fn simulated(outer: &Request, r: &Map<String, Value>, token: Option<&str>) -> Result<Request> {
    let method = str_field(r, "request-method", "request.")?
        .or(str_field(r, "method", "request.")?)
        .unwrap_or("get")
        .to_ascii_uppercase();
    let method = http::Method::from_bytes(method.as_bytes())
        .map_err(|_| Error::validation("request.request-method", "not an HTTP method"))?;
    let uri = str_field(r, "uri", "request.")?
        .ok_or_else(|| Error::validation("request.uri", "required: the path, e.g. /Patient"))?;
    if !uri.starts_with('/') {
        return Err(Error::validation(
            "request.uri",
            "must be a path starting with /",
        ));
    }
    let (path, mut query) = match uri.split_once('?') {
        Some((p, q)) => (p, q.to_string()),
        None => (uri, String::new()),
    };
    if let Some(q) = str_field(r, "query-string", "request.")? {
        if !query.is_empty() && !q.is_empty() {
            query.push('&');
        }
        query.push_str(q);
    }
    let scheme = outer.uri().scheme_str().unwrap_or("https");
    let authority = outer
        .uri()
        .authority()
        .map(|a| a.as_str().to_string())
        .or_else(|| crate::http_util::header(outer, "host").map(str::to_string))
        .unwrap_or_else(|| "localhost".into());
    let full = if query.is_empty() {
        format!("{scheme}://{authority}{path}")
    } else {
        format!("{scheme}://{authority}{path}?{query}")
    };
    let uri: http::Uri = full
        .parse()
        .map_err(|_| Error::validation("request.uri", "not a valid path and query"))?;
    let mut b = http::Request::builder().method(method).uri(uri);
    if let Some(h) = crate::http_util::header(outer, "host") {
        b = b.header("host", h);
    }
    let mut has_type = false;
    let mut has_auth = false;
    match r.get("headers") {
        None | Some(Value::Null) => {}
        Some(Value::Object(hs)) => {
            for (name, v) in hs {
                let values: Vec<&str> = match v {
                    Value::String(s) => vec![s.as_str()],
                    Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
                    _ => {
                        return Err(Error::validation(
                            format!("request.headers.{name}"),
                            "must be a string or a list of strings",
                        ))
                    }
                };
                let hn = http::HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
                    Error::validation(format!("request.headers.{name}"), "not a header name")
                })?;
                if hn == "host" {
                    continue;
                }
                has_type |= hn == "content-type";
                has_auth |= hn == "authorization";
                for v in values {
                    let hv = http::HeaderValue::from_str(v).map_err(|_| {
                        Error::validation(format!("request.headers.{name}"), "not a header value")
                    })?;
                    b = b.header(hn.clone(), hv);
                }
            }
        }
        Some(_) => return Err(Error::validation("request.headers", "must be an object")),
    }
    if let Some(t) = token {
        if has_auth {
            return Err(Error::validation(
                "token",
                "give the token or an authorization header, not both",
            ));
        }
        let hv = http::HeaderValue::from_str(&format!("Bearer {t}"))
            .map_err(|_| Error::validation("token", "not a token"))?;
        b = b.header("authorization", hv);
    }
    let body = match r.get("body") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(s)) => s.clone().into_bytes(),
        Some(v) => {
            if !has_type {
                b = b.header("content-type", "application/json");
            }
            serde_json::to_vec(v).unwrap_or_default()
        }
    };
    let mut sim = b
        .body(body)
        .map_err(|_| Error::validation("request", "cannot build this request"))?;
    // The caller's own address (Cloudflare sets it): sign-in throttling counts the tester's
    // guesses against the administrator's address, never one the body names.
    if let Some(ip) = outer.headers().get("cf-connecting-ip") {
        sim.headers_mut().insert("cf-connecting-ip", ip.clone());
    }
    Ok(sim)
}

/// Paths the Worker serves itself: no AccessPolicy decides them, so there is nothing to test.
fn served_by_us(path: &str) -> bool {
    matches!(
        path.trim_start_matches('/').split('/').next(),
        Some("auth" | ".well-known" | "app" | "console")
    )
}

/// `POST /auth/test-policy`. Body (Aidbox's shape, plus `token`):
/// `{"request": {"request-method", "uri", "query-string", "headers", "body", "user-id",
/// "client-id"}, "token": "<bearer>", "policy": {AccessPolicy}}`.
pub async fn test_policy(app: &App, req: &Request) -> Result<Response> {
    authorize(app, req).await?;
    let body = json_body(req)?;
    let r = match body.get("request") {
        Some(Value::Object(r)) => r,
        _ => {
            return Err(Error::validation(
                "request",
                "required: the request to test (an object)",
            ))
        }
    };
    let token = str_field(&body, "token", "")?;
    let sim = simulated(req, r, token)?;
    if served_by_us(sim.uri().path()) {
        return Err(Error::validation(
            "request.uri",
            "this path is served by the Worker itself (OAuth, discovery, pages): no AccessPolicy decides it",
        ));
    }
    let extra =
        match body.get("policy") {
            None | Some(Value::Null) => None,
            Some(p) => Some(CompiledPolicy::compile(p).map_err(|e| {
                Error::validation(crate::policy::join("policy", &e.path), e.message)
            })?),
        };
    let client_id = str_field(r, "client-id", "request.")?;
    let user_id = str_field(r, "user-id", "request.")?;
    let mut out = Map::new();
    // 1. The request's shape: refused before anyone is authenticated.
    if let Err(e) = check_request(&sim) {
        out.insert("decision".into(), refusal(&e));
        out.insert("identity".into(), Value::Null);
        out.insert("request".into(), Value::Null);
        out.insert("policies".into(), json!([]));
        out.insert("allowed-by".into(), Value::Null);
        return Ok(json_response(200, &Value::Object(out)));
    }
    // 2. Who sends it: its own credentials exactly as the authorizer checks them, or a stored
    // client/user taken as authenticated.
    let has_credentials = sim.headers().contains_key("authorization");
    let (who, source) = if client_id.is_some() || user_id.is_some() {
        if has_credentials {
            return Err(Error::validation(
                "request.client-id",
                "give credentials (token, authorization header) or client-id/user-id, not both",
            ));
        }
        let mut who = Identity::default();
        if let Some(c) = client_id {
            if c == ROOT_CLIENT_ID {
                who.root = true;
            } else {
                who.client = Some(load_client(app, c).await?.ok_or_else(|| {
                    Error::validation("request.client-id", "no active Client with this id")
                })?);
            }
        }
        if let Some(u) = user_id {
            who.user = Some(load_user(app, u).await?.ok_or_else(|| {
                Error::validation("request.user-id", "no active User with this id")
            })?);
        }
        (Ok(who), "client-id/user-id")
    } else {
        let who = match authenticate(app, &sim).await {
            Ok(Some(w)) => Ok(w),
            // No credentials: what the authorizer does with an anonymous request (public
            // routes on the protected API; the admin API is always 401).
            Ok(None)
                if crate::context::admin_route(&app.config.fhir_bases, sim.uri().path())
                    .is_none() =>
            {
                authorize_anonymous(app, &sim).await
            }
            Ok(None) => Err(Error::MissingCredentials),
            Err(e @ Error::Unavailable(_)) => return Err(e),
            Err(e) => Err(e),
        };
        (who, "credentials")
    };
    let who = match who {
        Ok(w) => w,
        Err(e) => {
            out.insert("decision".into(), refusal(&e));
            out.insert(
                "identity".into(),
                json!({"source": source, "authenticated": false}),
            );
            let anonymous = Identity::default();
            out.insert(
                "request".into(),
                policy_request_for(app, &sim, &anonymous).await?,
            );
            out.insert("policies".into(), json!([]));
            out.insert("allowed-by".into(), Value::Null);
            return Ok(json_response(200, &Value::Object(out)));
        }
    };
    // 3. The decision, by the authorizer's own code.
    let decision = match authorize_identity(app, &sim, &who).await {
        Ok(()) => json!({"status": 200, "outcome": "forward"}),
        Err(e @ (Error::Forbidden(_) | Error::InsufficientScope(_))) => refusal(&e),
        Err(e) => return Err(e),
    };
    let doc = policy_request_for(app, &sim, &who).await?;
    let (c, u, o) = link_ids(&who, &doc);
    let set = app.repo().policies().await?;
    let mut allowed_by = Value::Null;
    let mut rows = Vec::with_capacity(set.policies.len());
    for (id, p) in set.ids.iter().zip(set.policies.iter()) {
        let applies = p.applies_to(c, u, o);
        let mut row =
            json!({"id": id, "engine": p.engine(), "link": p.links_json(), "applies": applies});
        if applies {
            let e = p.explain(&doc);
            let ok = e.get("result").and_then(Value::as_bool) == Some(true);
            if ok && allowed_by.is_null() {
                allowed_by = json!(id);
            }
            row["result"] = json!(ok);
            row["explanation"] = e;
        } else {
            row["result"] = Value::Null;
        }
        rows.push(row);
    }
    out.insert("decision".into(), decision);
    out.insert(
        "identity".into(),
        json!({"source": source, "authenticated": who.root || who.client.is_some() || who.user.is_some(), "root": who.root,
               "client": who.client_id(), "user": who.user_id()}),
    );
    if who.root {
        out.insert("note".into(), json!("root passes without policies"));
    }
    out.insert("request".into(), doc.clone());
    out.insert("policies".into(), Value::Array(rows));
    out.insert("allowed-by".into(), allowed_by);
    if let (Some(p), Some(given)) = (extra, body.get("policy")) {
        let applies = p.applies_to(c, u, o);
        let e = p.explain(&doc);
        let ok = e.get("result").and_then(Value::as_bool) == Some(true);
        out.insert("policy".into(), given.clone());
        out.insert(
            "result".into(),
            json!({"eval-result": applies && ok, "applies": applies, "explanation": e}),
        );
    }
    Ok(json_response(200, &Value::Object(out)))
}

fn decode_part(part: &str) -> Value {
    b64url_decode(part)
        .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
        .filter(Value::is_object)
        .unwrap_or(Value::Null)
}

/// `POST /auth/inspect-token` with `{"token": "..."}`: what the token is and says, whether the
/// authorizer would accept it (and who vouches for it), why not, and whether it is revoked.
pub async fn inspect_token(app: &App, req: &Request) -> Result<Response> {
    authorize(app, req).await?;
    let body = json_body(req)?;
    let token = str_field(&body, "token", "")?
        .filter(|t| !t.is_empty())
        .ok_or_else(|| Error::validation("token", "required: the token to inspect"))?;
    if token.len() > crate::jwt::MAX_TOKEN_LEN {
        return Err(Error::validation(
            "token",
            "longer than any token this server accepts",
        ));
    }
    let mut out = Map::new();
    let parts: Vec<&str> = token.split('.').collect();
    let issuer = app.issuer(req);
    if let Some((family, secret)) = crate::state::split_refresh_token(token) {
        out.insert("format".into(), json!("refresh-token"));
        out.insert("refresh".into(), refresh_state(app, family, secret).await?);
        return Ok(json_response(200, &Value::Object(out)));
    }
    if parts.len() != 3 {
        out.insert("format".into(), json!("opaque"));
    } else {
        out.insert("format".into(), json!("jwt"));
        out.insert("header".into(), decode_part(parts[0]));
        out.insert("claims".into(), decode_part(parts[1]));
    }
    let claims = out.get("claims").cloned().unwrap_or(Value::Null);
    let iss = claims.get("iss").and_then(Value::as_str);
    let ours = iss == Some(issuer.as_str());
    let verification = match authenticate_bearer(app, req, token).await {
        Ok(who) => {
            let by = if ours {
                json!("this server")
            } else {
                vouched_by(app, iss, parts.len() == 3).await?
            };
            json!({"active": true, "by": by, "client": who.client_id(), "user": who.user_id()})
        }
        Err(e @ Error::Unavailable(_)) => return Err(e),
        Err(e) => {
            let mut v = json!({"active": false, "error": e.code(), "reason": e.to_string()});
            if ours && authenticate_own_any_audience(app, req, token).await.is_ok() {
                v["note"] = json!("valid for another audience than this API's");
            }
            v
        }
    };
    out.insert("verification".into(), verification);
    // Revocation marks only for a token we really signed (expired or revoked ones included):
    // for forged claims the marks would be an oracle on which jti, family or client exists.
    if ours && signed_by_us(app, &issuer, token, &claims).await? {
        out.insert("revocation".into(), own_revocation(app, &claims).await?);
    }
    Ok(json_response(200, &Value::Object(out)))
}

/// The TokenIntrospector that vouched for a token (by its `iss` for a JWT; the introspection
/// ones for an opaque token).
async fn vouched_by(app: &App, iss: Option<&str>, jwt: bool) -> Result<Value> {
    let list = app.repo().introspectors().await?;
    let ids: Vec<Value> = list
        .iter()
        .filter(|d| {
            if jwt {
                d.pointer("/jwt/iss").and_then(Value::as_str) == iss
            } else {
                d.get("type").and_then(Value::as_str) == Some("opaque")
            }
        })
        .filter_map(|d| d.get("id").cloned())
        .map(|id| json!(format!("TokenIntrospector/{}", id.as_str().unwrap_or(""))))
        .collect();
    Ok(match ids.len() {
        1 => ids[0].clone(),
        0 => json!("TokenIntrospector"),
        _ => Value::Array(ids),
    })
}

/// Is `token` an access token signed by our keys (as of its own `iat`, so an expired one
/// counts)? Only the signature, `typ` and `iss` matter here.
async fn signed_by_us(app: &App, issuer: &str, token: &str, claims: &Value) -> Result<bool> {
    let Some(iat) = claims.get("iat").and_then(Value::as_i64) else {
        return Ok(false);
    };
    let expect = crate::jwt::Expectations {
        issuer,
        audience: None,
        typ: Some(crate::jwt::ACCESS_TOKEN_TYP),
        leeway: app.config.leeway,
        now: iat,
    };
    match crate::jwt::verify(
        app.platform.crypto.as_ref(),
        &app.config.keys,
        token,
        &expect,
    )
    .await
    {
        Ok(_) => Ok(true),
        Err(crate::jwt::VerifyError::Backend(b)) => Err(Error::Unavailable(b.0)),
        Err(_) => Ok(false),
    }
}

/// Our access token's revocation marks, each on its own.
async fn own_revocation(app: &App, claims: &Value) -> Result<Value> {
    let jti = match claims.get("jti").and_then(Value::as_str) {
        Some(j) => Some(crate::state::is_revoked(app, j).await?),
        None => None,
    };
    let family = match claims
        .get(crate::state::FAMILY_CLAIM)
        .and_then(Value::as_str)
    {
        Some(f) => Some(crate::state::is_revoked(app, &crate::state::family_revocation(f)).await?),
        None => None,
    };
    let repo = app.repo();
    let client = match claims.get("client_id").and_then(Value::as_str) {
        // The built-in console client is not stored (its generation is none).
        Some(crate::model::CONSOLE_CLIENT_ID) => {
            crate::authn::load_client(app, crate::model::CONSOLE_CLIENT_ID)
                .await?
                .map(|c| std::rc::Rc::new(c.doc))
        }
        Some(c) => repo.get(ResourceType::Client, c).await?,
        None => None,
    };
    let user = match (
        claims
            .get(crate::oauth::SUB_KIND_CLAIM)
            .and_then(Value::as_str),
        claims.get("sub").and_then(Value::as_str),
    ) {
        (Some("user"), Some(s)) => repo.get(ResourceType::User, s).await?,
        _ => None,
    };
    let credentials_changed = client.as_ref().map(|c| {
        generation_tag(Some(c), user.as_deref()).as_deref()
            != claims.get(GENERATION_CLAIM).and_then(Value::as_str)
    });
    Ok(json!({
        "jti": jti,
        "family": family,
        "credentials-changed": credentials_changed,
    }))
}

/// A refresh token's family as the store has it, without its key or hashes.
async fn refresh_state(
    app: &App,
    family: &str,
    secret: crate::state::RefreshSecret<'_>,
) -> Result<Value> {
    use crate::state::{family_key, read, Family, Presented};
    let Some((f, _)) = read::<Family>(app, &family_key(family)).await? else {
        return Ok(
            json!({"found": false, "active": false, "reason": "no such refresh-token family (never issued, expired or forgotten)"}),
        );
    };
    let presented = match f.presented(family, secret) {
        Presented::Current => "current",
        Presented::Earlier => "earlier (a reuse: presenting it revokes the family)",
        Presented::Unknown => "unknown (not a token of this family)",
    };
    let ended = f.ended(app.now());
    Ok(json!({
        "found": true,
        "active": !f.revoked && !ended && matches!(f.presented(family, secret), Presented::Current),
        "revoked": f.revoked,
        "ended": ended,
        "presented": presented,
        "client": f.client_id,
        "user": f.user_id,
        "scope": f.scope,
        "grant": f.grant,
        "generation": f.generation,
    }))
}
