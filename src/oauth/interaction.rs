//! The browser side of the authorization endpoint: the login and consent pages' API, the session
//! cookie and logout. Pages are static files in `www/auth/ui/`; they read their context from
//! `GET /auth/interaction` and post plain HTML forms to `/auth/login` and `/auth/consent`.
//!
//! CSRF: a double-submit token. `GET /auth/interaction` sets the `edge_csrf` cookie
//! (`SameSite=Strict`, `HttpOnly`) and returns the same value; the forms send it back as `csrf`.
//! A POST whose `csrf` differs from the cookie, or whose `Origin` is another site, is refused;
//! so is one with `Origin: null` that the browser marks `Sec-Fetch-Site: cross-site|same-site`.
//!
//! Cookie names ([`cookie_name`]): over https both cookies carry the `__Host-` prefix
//! (RFC 6265bis 4.1.3.2: `Secure`, no `Domain`, `Path=/`), so a sibling subdomain cannot plant
//! or overwrite them (cookie tossing, session fixation); a cookie of the plain name is then
//! ignored. On plain-http loopback (`make dev`) browsers refuse `Secure` cookies, so the plain
//! names are used, scoped to `Path=/auth`. The prefix forces `Path=/`, so over https the session
//! cookie is sent to every path of the host; the authorizer removes our cookies from every
//! request it forwards, so the origin never sees them.

use super::authorize::{self, proceed, refuse, see_other, AuthzRequest};
use crate::authn::load_user;
use crate::context::App;
use crate::error::{Error, Result};
use crate::http_util::{
    header, json_response, media_type, no_store, parse_form, Request, Response,
};
use crate::model::user::User;
use crate::secret::ct_eq;
use crate::state::{self, random_token, session_key, Session};
use serde_json::{json, Value};
use std::collections::BTreeMap;

pub const SESSION_COOKIE: &str = "edge_session";
pub const CSRF_COOKIE: &str = "edge_csrf";
/// How long a login session lasts (seconds).
pub const SESSION_TTL: i64 = 8 * 3600;

/// The name of one of our cookies for this request: `__Host-{base}` over https, `base` on
/// plain-http loopback (see the module docs).
pub fn cookie_name(req: &Request, base: &str) -> String {
    if is_loopback(req) {
        base.to_string()
    } else {
        format!("__Host-{base}")
    }
}

/// The value of one of our cookies (`base`: [`SESSION_COOKIE`], [`CSRF_COOKIE`]) under the name
/// this request must use ([`cookie_name`]); a cookie under the other name is ignored.
pub fn our_cookie(req: &Request, base: &str) -> Option<String> {
    cookie(req, &cookie_name(req, base))
}

/// A cookie's value from the `Cookie` header.
pub fn cookie(req: &Request, name: &str) -> Option<String> {
    req.headers()
        .get_all("cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

/// Is the request to a loopback host (then cookies cannot be `Secure` over plain http)?
fn is_loopback(req: &Request) -> bool {
    let host = req
        .uri()
        .host()
        .map(str::to_string)
        .or_else(|| {
            header(req, "host").map(|h| h.rsplit_once(':').map(|(h, _)| h).unwrap_or(h).to_string())
        })
        .unwrap_or_default();
    matches!(host.as_str(), "localhost" | "127.0.0.1" | "[::1]" | "::1")
}

/// `Set-Cookie` for one of our cookies (`base`: [`SESSION_COOKIE`], [`CSRF_COOKIE`]): the
/// `__Host-` name with `Secure` and `Path=/` over https, the plain name with `Path=/auth` on
/// plain-http loopback; always `HttpOnly`.
pub(crate) fn set_cookie(
    req: &Request,
    base: &str,
    value: &str,
    max_age: i64,
    same_site: &str,
) -> String {
    let name = cookie_name(req, base);
    let (path, secure) = if is_loopback(req) {
        ("/auth", "")
    } else {
        ("/", "; Secure")
    };
    format!(
        "{name}={value}; Path={path}; Max-Age={max_age}; HttpOnly; SameSite={same_site}{secure}"
    )
}

pub(crate) fn add_header(resp: &mut Response, name: &'static str, value: &str) {
    if let Ok(v) = http::HeaderValue::from_str(value) {
        resp.headers_mut().append(name, v);
    }
}

/// The signed-in user of this browser, if the session cookie names a live session.
pub async fn current_session(app: &App, req: &Request) -> Result<Option<(User, Session)>> {
    let Some(id) = our_cookie(req, SESSION_COOKIE) else {
        return Ok(None);
    };
    if id.len() > 128 {
        return Ok(None);
    }
    let Some((s, _)) = state::read::<Session>(app, &session_key(&id)).await? else {
        return Ok(None);
    };
    // The session ends with the credentials it was signed in with: a password change, a
    // deactivation, or a delete and re-create renews the User's generation (src/admin.rs).
    Ok(load_user(app, &s.user_id)
        .await?
        .filter(|u| crate::model::generation_tag(None, Some(&u.doc)) == s.generation)
        .map(|u| (u, s)))
}

/// Human words for a scope on the consent page.
pub fn describe_scope(scope: &str) -> String {
    match scope {
        "openid" => "Confirm who you are".into(),
        "profile" => "See your name".into(),
        "email" => "See your email address".into(),
        "offline_access" => "Stay connected when you are not using the app".into(),
        other => format!("Access \"{other}\""),
    }
}

fn client_name(areq: &AuthzRequest) -> String {
    areq.client
        .doc
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or(&areq.client.id)
        .to_string()
}

/// The CSRF token for a form page: a well-formed one the browser already holds is reused, so
/// a second tab does not invalidate the first one's form; else a new one.
pub(crate) fn csrf_token(app: &App, req: &Request) -> String {
    our_cookie(req, CSRF_COOKIE)
        .filter(|c| {
            c.len() == 43
                && c.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
        .unwrap_or_else(|| random_token(app))
}

pub(crate) fn user_name(u: &User) -> String {
    let given = u.doc.pointer("/name/givenName").and_then(Value::as_str);
    let family = u.doc.pointer("/name/familyName").and_then(Value::as_str);
    let full: Vec<&str> = [given, family].into_iter().flatten().collect();
    if full.is_empty() {
        u.doc
            .get("email")
            .and_then(Value::as_str)
            .unwrap_or(&u.id)
            .to_string()
    } else {
        full.join(" ")
    }
}

/// `GET /auth/interaction?<authorize query>`: what the login and consent pages show.
pub async fn context(app: &App, req: &Request) -> Result<Response> {
    let query = req.uri().query().unwrap_or("");
    let areq = match authorize::parse(app, req, query).await {
        Ok(a) => a,
        Err(authorize::Refusal::Local(e)) => return Err(e),
        Err(authorize::Refusal::Redirect {
            error, description, ..
        }) => {
            return Ok(no_store(json_response(
                400,
                &json!({"error": error, "error_description": description}),
            )))
        }
    };
    let session = current_session(app, req).await?;
    let csrf = csrf_token(app, req);
    // Scopes the user approved for this client before (a remembered Grant): the page asks
    // about the others.
    let approved = match &session {
        Some((u, _)) => crate::model::grant::approved(app, u, &areq.client.id).await?,
        None => Vec::new(),
    };
    let scopes: Vec<Value> = areq
        .scope
        .as_deref()
        .unwrap_or("")
        .split(' ')
        .filter(|s| !s.is_empty())
        .map(|s| {
            json!({"scope": s, "description": describe_scope(s),
                   "approved": approved.iter().any(|a| a == s)})
        })
        .collect();
    let mut client = json!({"id": areq.client.id, "name": client_name(&areq)});
    // A self-registered client's name is its own claim: the page also shows where it came from
    // (the client_id URL's host, draft-ietf-oauth-client-id-metadata-document 8.5) and where the
    // user goes back to.
    if let Some(kind) = super::register::self_registration(&areq.client) {
        client["registration"] = json!(kind);
        client["redirect_host"] = json!(super::register::host_of(&areq.redirect_uri));
        if kind == super::register::CIMD_FIELD {
            client["host"] = json!(super::register::host_of(&areq.client.id));
        }
    }
    let mut body = json!({
        "client": client,
        "scopes": scopes,
        "csrf": csrf,
        "user": session.as_ref().map(|(u, _)| json!({"id": u.id, "name": user_name(u)})),
    });
    if let Some((u, s)) = &session {
        if authorize::needs_patient_picker(&areq, u, s) {
            let list = super::picker::visible_patients(app, req, u).await?;
            body["patients"] = json!(list
                .iter()
                .map(|(id, name)| json!({"id": id, "name": name}))
                .collect::<Vec<_>>());
        }
    }
    let mut resp = no_store(json_response(200, &body));
    add_header(
        &mut resp,
        "set-cookie",
        &set_cookie(req, CSRF_COOKIE, &csrf, 3600, "Strict"),
    );
    Ok(resp)
}

/// Reads a posted form and checks its CSRF token and origin.
pub(crate) fn posted_form(req: &Request) -> Result<(BTreeMap<String, String>, bool)> {
    if media_type(req).as_deref() != Some("application/x-www-form-urlencoded") {
        return Err(Error::InvalidRequest("expected a form post".into()));
    }
    let form = parse_form(req.body())?;
    let cookie_token = our_cookie(req, CSRF_COOKIE);
    let token_ok = match (form.get("csrf"), cookie_token) {
        (Some(f), Some(c)) => !f.is_empty() && ct_eq(f.as_bytes(), c.as_bytes()),
        _ => false,
    };
    // Browsers send `Origin: null` for form posts from a `Referrer-Policy: no-referrer` page;
    // the token is the defence then, unless the browser says the post came from another site
    // (Fetch Metadata, `Sec-Fetch-Site`: a sandboxed frame or a data: page elsewhere also
    // posts with `Origin: null`). A real origin must be ours.
    let from_elsewhere = matches!(
        header(req, "sec-fetch-site")
            .map(str::to_ascii_lowercase)
            .as_deref(),
        Some("cross-site" | "same-site")
    );
    let origin_ok = match header(req, "origin") {
        None => true,
        Some("null") => !from_elsewhere,
        Some(o) => {
            let uri = req.uri();
            let own = match (uri.scheme_str(), uri.authority()) {
                (Some(s), Some(a)) => format!("{s}://{a}"),
                _ => String::new(),
            };
            o == own || header(req, "host").is_some_and(|h| o.ends_with(&format!("://{h}")))
        }
    };
    Ok((form, token_ok && origin_ok))
}

fn back_to_login(query: &str, error: &str) -> Response {
    see_other(&format!("/auth/ui/login.html?{query}#error={error}"))
}

/// `POST /auth/login`: username and password, then on to consent or the client.
pub async fn login(app: &App, req: &Request) -> Result<Response> {
    let (form, csrf_ok) = posted_form(req)?;
    let query = form.get("query").cloned().unwrap_or_default();
    let areq = match authorize::parse(app, req, &query).await {
        Ok(a) => a,
        Err(r) => return Ok(refuse(app, req, r)),
    };
    if !csrf_ok {
        return Ok(back_to_login(&query, "csrf"));
    }
    let username = form.get("username").map(String::as_str).unwrap_or("");
    let password = form.get("password").map(String::as_str).unwrap_or("");
    let user = if username.is_empty() || password.is_empty() {
        None
    } else {
        match super::password::authenticate_user(app, req, username, password).await {
            Ok(u) => u,
            // The form goes back to the page, which says to wait; the status and
            // `Retry-After` still tell scripts and tests the truth.
            Err(Error::TooManyRequests { retry_after }) => {
                let mut resp = back_to_login(&query, "throttled");
                resp.headers_mut()
                    .insert("retry-after", http::HeaderValue::from(retry_after.max(1)));
                return Ok(resp);
            }
            Err(e) => return Err(e),
        }
    };
    let Some(user) = user else {
        return Ok(back_to_login(&query, "login_failed"));
    };
    let session_id = random_token(app);
    let now = app.now();
    let session = Session {
        user_id: user.id.clone(),
        auth_time: now,
        patient: None,
        key: session_key(&session_id),
        generation: crate::model::generation_tag(None, Some(&user.doc)),
    };
    // The user's index first: no session exists that an administrator cannot list and end.
    crate::sessions::remember(app, &user.id, &session.key, now).await?;
    state::create(app, &session_key(&session_id), &session, now + SESSION_TTL).await?;
    let mut resp = proceed(app, req, &areq, Some((&user, &session)), false).await?;
    add_header(
        &mut resp,
        "set-cookie",
        &set_cookie(req, SESSION_COOKIE, &session_id, SESSION_TTL, "Lax"),
    );
    Ok(resp)
}

/// `POST /auth/consent`: allow or deny, for a signed-in user.
pub async fn consent(app: &App, req: &Request) -> Result<Response> {
    let (form, csrf_ok) = posted_form(req)?;
    let query = form.get("query").cloned().unwrap_or_default();
    let areq = match authorize::parse(app, req, &query).await {
        Ok(a) => a,
        Err(r) => return Ok(refuse(app, req, r)),
    };
    let Some((user, session)) = current_session(app, req).await? else {
        return Ok(see_other(&format!("/auth/ui/login.html?{query}")));
    };
    if !csrf_ok {
        return Ok(see_other(&format!(
            "/auth/ui/consent.html?{query}#error=csrf"
        )));
    }
    match form.get("decision").map(String::as_str) {
        Some("allow") => proceed(app, req, &areq, Some((&user, &session)), true).await,
        _ => Ok(refuse(
            app,
            req,
            authorize::Refusal::Redirect {
                to: areq.redirect_uri.clone(),
                fragment: areq.response_type == authorize::ResponseType::Token,
                error: "access_denied",
                description: "the user denied the request".into(),
                state: areq.state.clone(),
            },
        )),
    }
}

/// `POST /auth/patient`: the patient picked for a SMART standalone launch.
pub async fn pick_patient(app: &App, req: &Request) -> Result<Response> {
    let (form, csrf_ok) = posted_form(req)?;
    let query = form.get("query").cloned().unwrap_or_default();
    let areq = match authorize::parse(app, req, &query).await {
        Ok(a) => a,
        Err(r) => return Ok(refuse(app, req, r)),
    };
    let Some(id) = our_cookie(req, SESSION_COOKIE) else {
        return Ok(see_other(&format!("/auth/ui/login.html?{query}")));
    };
    let key = session_key(&id);
    let Some((session, raw)) = state::read::<Session>(app, &key).await? else {
        return Ok(see_other(&format!("/auth/ui/login.html?{query}")));
    };
    let Some(user) = load_user(app, &session.user_id).await? else {
        return Ok(see_other(&format!("/auth/ui/login.html?{query}")));
    };
    if !csrf_ok {
        return Ok(see_other(&format!(
            "/auth/ui/patient.html?{query}#error=csrf"
        )));
    }
    let chosen = form.get("patient").cloned().unwrap_or_default();
    let allowed = super::picker::visible_patients(app, req, &user).await?;
    if !allowed.iter().any(|(p, _)| *p == chosen) {
        return Ok(see_other(&format!(
            "/auth/ui/patient.html?{query}#error=patient"
        )));
    }
    let mut updated = session.clone();
    updated.patient = Some((areq.client.id.clone(), chosen));
    let expires = session.auth_time + SESSION_TTL;
    if !state::swap(app, &key, &raw, &updated, expires).await? {
        return Ok(see_other(&format!(
            "/auth/ui/patient.html?{query}#error=csrf"
        )));
    }
    proceed(app, req, &areq, Some((&user, &updated)), false).await
}

/// `GET /auth/grants`: the signed-in user's own remembered consents (Aidbox `Grant`
/// resources) and a CSRF token for revoking one. Only the session's user: there is no way to
/// name another.
pub async fn my_grants(app: &App, req: &Request) -> Result<Response> {
    let Some((user, _)) = current_session(app, req).await? else {
        return Ok(no_store(json_response(
            401,
            &json!({"error": "login_required", "error_description": "sign in first"}),
        )));
    };
    let csrf = csrf_token(app, req);
    let grants = crate::model::grant::list(app, &user.id).await?;
    let mut resp = no_store(json_response(
        200,
        &json!({"user": {"id": user.id, "name": user_name(&user)}, "grants": grants, "csrf": csrf}),
    ));
    add_header(
        &mut resp,
        "set-cookie",
        &set_cookie(req, CSRF_COOKIE, &csrf, 3600, "Strict"),
    );
    Ok(resp)
}

/// `POST /auth/grants` (form: `client`, `csrf`): the signed-in user revokes their grant for one
/// client; the next authorize by that client asks again. 200 with the revoked Grant, 404 when
/// there was none.
pub async fn revoke_my_grant(app: &App, req: &Request) -> Result<Response> {
    let (form, csrf_ok) = posted_form(req)?;
    let Some((user, _)) = current_session(app, req).await? else {
        return Ok(no_store(json_response(
            401,
            &json!({"error": "login_required", "error_description": "sign in first"}),
        )));
    };
    if !csrf_ok {
        return Err(Error::Forbidden(
            "the form's csrf token does not match the cookie (or it was posted from another site)"
                .into(),
        ));
    }
    let Some(client) = form.get("client").filter(|c| !c.is_empty()) else {
        return Err(Error::InvalidRequest("client is required".into()));
    };
    match crate::model::grant::revoke(app, &user.id, None, Some(client)).await? {
        Some(g) => Ok(no_store(json_response(200, &g))),
        None => Err(Error::NotFound(format!("no grant for client {client}"))),
    }
}
