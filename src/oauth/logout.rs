//! Logout (OIDC RP-Initiated Logout 1.0, `end_session_endpoint`), safe against cross-site
//! requests: a `GET /auth/logout` from anywhere (an `<img>`, a link) only shows a confirmation
//! page; the session ends on a `POST` carrying the CSRF token, or on a `GET` whose
//! `id_token_hint` is an ID token we issued to the signed-in user (only the user's app holds it).
//!
//! - `GET|HEAD /auth/logout[?id_token_hint=...]`: 303 to `/auth/ui/logged-out.html` when the hint
//!   is valid (session ended), else 303 to `/auth/ui/logout.html` (nothing ended).
//! - `GET /auth/session`: `{"user": {id, name} | null, "csrf": "..."}` for the confirmation page,
//!   setting the `edge_csrf` cookie as `GET /auth/interaction` does.
//! - `POST /auth/logout` (form, `csrf`): ends the session; a missing or wrong token goes back to
//!   the confirmation page with `#error=csrf` and ends nothing.

use super::authorize::see_other;
use super::interaction::{
    add_header, csrf_token, current_session, our_cookie, posted_form, set_cookie, user_name,
    CSRF_COOKIE, SESSION_COOKIE,
};
use crate::context::App;
use crate::error::Result;
use crate::http_util::{json_response, Request, Response};
use crate::state::{self, session_key};
use serde_json::{json, Value};

const CONFIRM_PAGE: &str = "/auth/ui/logout.html";
const DONE_PAGE: &str = "/auth/ui/logged-out.html";

/// `GET|HEAD|POST /auth/logout`.
pub async fn handle(app: &App, req: &Request) -> Result<Response> {
    if req.method() == http::Method::POST {
        let (_, csrf_ok) = posted_form(req)?;
        if !csrf_ok {
            return Ok(see_other(&format!("{CONFIRM_PAGE}#error=csrf")));
        }
        return end_session(app, req).await;
    }
    // HEAD never changes state; only GET honours the hint.
    if req.method() == http::Method::GET && hint_matches_session(app, req).await? {
        return end_session(app, req).await;
    }
    Ok(see_other(CONFIRM_PAGE))
}

/// Is `id_token_hint` an ID token of ours (signature, issuer, `typ` JWT; expiry with the usual
/// leeway) whose `sub` is the user of this browser's session?
async fn hint_matches_session(app: &App, req: &Request) -> Result<bool> {
    let hint = req.uri().query().and_then(|q| {
        form_urlencoded::parse(q.as_bytes())
            .find(|(k, _)| k == "id_token_hint")
            .map(|(_, v)| v.into_owned())
    });
    let Some(hint) = hint.filter(|h| !h.is_empty()) else {
        return Ok(false);
    };
    let Some((user, _)) = current_session(app, req).await? else {
        return Ok(false);
    };
    let issuer = app.issuer(req);
    let expect = crate::jwt::Expectations {
        issuer: &issuer,
        audience: None,
        typ: Some("jwt"),
        leeway: app.config.leeway,
        now: app.now(),
    };
    let claims = match crate::jwt::verify(
        app.platform.crypto.as_ref(),
        &app.config.keys,
        &hint,
        &expect,
    )
    .await
    {
        Ok(c) => c,
        Err(crate::jwt::VerifyError::Backend(e)) => {
            return Err(crate::error::Error::Unavailable(e.to_string()))
        }
        Err(_) => return Ok(false),
    };
    Ok(
        claims.get("sub").and_then(Value::as_str) == Some(user.id.as_str())
            && claims.contains_key("aud"),
    )
}

async fn end_session(app: &App, req: &Request) -> Result<Response> {
    if let Some(id) = our_cookie(req, SESSION_COOKIE) {
        let key = session_key(&id);
        if let Some(raw) = app.platform.state.get(&key).await? {
            state::remove(app, &key, &raw).await?;
        }
    }
    let mut resp = see_other(DONE_PAGE);
    add_header(
        &mut resp,
        "set-cookie",
        &set_cookie(req, SESSION_COOKIE, "", 0, "Lax"),
    );
    Ok(resp)
}

/// `GET /auth/session`: who is signed in, and a CSRF token for the logout form.
pub async fn session(app: &App, req: &Request) -> Result<Response> {
    let session = current_session(app, req).await?;
    let csrf = csrf_token(app, req);
    let body = json!({
        "user": session.as_ref().map(|(u, _)| json!({"id": u.id, "name": user_name(u)})),
        "csrf": csrf,
    });
    let mut resp = json_response(200, &body);
    add_header(
        &mut resp,
        "set-cookie",
        &set_cookie(req, CSRF_COOKIE, &csrf, 3600, "Strict"),
    );
    Ok(resp)
}
