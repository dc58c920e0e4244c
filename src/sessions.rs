//! Sign-in sessions of a user for an administrator: `GET /Session?user={id}` lists them,
//! `DELETE /Session/{id}` ends one, `DELETE /Session?user={id}` ends them all (Aidbox: `GET
//! /Session`, `DELETE /Session/{id}`). Authorized like the admin API ([`authorize`]; `Session`
//! is a server type, so no SMART scope reaches it).
//!
//! The Durable Object keeps sessions by the hash of their cookie (`session/{hash}`) and has no
//! listing, so each user has an index record, `user-sessions/{user id}`, written at sign-in
//! before the session itself ([`remember`]). A session's public `id` is its `{hash}`: it names
//! the record, and cannot be turned back into the cookie.
//!
//! Ending a session ends what lives with it: the sign-in (the next authorization request asks
//! for the password again) and the refresh families bound to it with `online_access`. Access
//! tokens already issued live until their `exp`; a password change or `inactive: true` ends
//! those too (docs/reference.md "Changes that end what depended on them").

use crate::authz::authorize;
use crate::context::App;
use crate::error::{Error, Result};
use crate::http_util::{json_response, no_store, query_params, Request, Response};
use crate::model::{generation_tag, valid_id, ResourceType};
use crate::oauth::interaction::SESSION_TTL;
use crate::platform::Cas;
use crate::state::{self, Session};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// Most live sessions one user has: a new sign-in past it ends the oldest (signs it out), so
/// the index names every session there is.
pub const MAX_INDEXED: usize = 200;

/// The store keys of a user's sessions, with when each was signed in.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct UserSessions {
    sessions: Vec<(String, i64)>,
}

fn index_key(user_id: &str) -> String {
    format!("user-sessions/{user_id}")
}

/// Adds a new session (its store key, signed in at `auth_time`) to its user's index, dropping
/// expired entries. Called at sign-in BEFORE the session is stored, so that no session exists
/// that the index does not name.
pub async fn remember(app: &App, user_id: &str, session_key: &str, auth_time: i64) -> Result<()> {
    let key = index_key(user_id);
    for _ in 0..8 {
        let now = app.now();
        let current = app.platform.state.get(&key).await?;
        let mut index: UserSessions = match &current {
            Some(raw) => serde_json::from_str(raw).unwrap_or_default(),
            None => UserSessions::default(),
        };
        index
            .sessions
            .retain(|(k, t)| t + SESSION_TTL > now && k != session_key);
        index.sessions.push((session_key.to_string(), auth_time));
        let mut dropped = Vec::new();
        if index.sessions.len() > MAX_INDEXED {
            let drop = index.sessions.len() - MAX_INDEXED;
            dropped = index.sessions.drain(..drop).map(|(k, _)| k).collect();
        }
        let until = index
            .sessions
            .iter()
            .map(|(_, t)| t + SESSION_TTL)
            .max()
            .unwrap_or(now);
        let new = serde_json::to_string(&index)
            .map_err(|e| Error::Internal(format!("state encode: {e}")))?;
        match app
            .platform
            .state
            .cas(&key, current.as_deref(), Some(&new), until)
            .await?
        {
            Cas::Swapped => {
                // A session the index no longer names is signed out: an administrator must be
                // able to list and end every live session of a user (else 200 more sign-ins
                // would hide one from `DELETE /Session?user=`).
                for k in dropped {
                    end_unlisted(app, user_id, &k).await?;
                }
                return Ok(());
            }
            Cas::Conflict(_) => continue,
        }
    }
    Err(Error::Unavailable(
        "the session index is busy; try again".into(),
    ))
}

/// Ends a session of `user_id` that left its user's index (the oldest, past [`MAX_INDEXED`]).
async fn end_unlisted(app: &App, user_id: &str, key: &str) -> Result<()> {
    for _ in 0..4 {
        let Some((s, raw)) = state::read::<Session>(app, key).await? else {
            return Ok(());
        };
        if s.user_id != user_id || state::remove(app, key, &raw).await? {
            return Ok(());
        }
    }
    Err(Error::Unavailable(
        "the session index is busy; try again".into(),
    ))
}

/// The Session resource shown to an administrator (no cookie, no hash of anything secret
/// beyond the record's own name).
fn view(id: &str, s: &Session, active: bool) -> Value {
    let mut v = json!({
        "resourceType": "Session",
        "id": id,
        "user": {"id": s.user_id, "resourceType": "User"},
        "auth_time": s.auth_time,
        "exp": s.auth_time + SESSION_TTL,
        "active": active,
    });
    if let Some((client, patient)) = &s.patient {
        v["patient"] = json!({"client": client, "patient": patient});
    }
    v
}

/// The live sessions of a user, each with its store key and raw record.
async fn sessions_of(app: &App, user_id: &str) -> Result<Vec<(String, Session, String)>> {
    let Some(raw) = app.platform.state.get(&index_key(user_id)).await? else {
        return Ok(Vec::new());
    };
    let index: UserSessions = serde_json::from_str(&raw).unwrap_or_default();
    let now = app.now();
    let mut out = Vec::new();
    for (key, auth_time) in index.sessions {
        if auth_time + SESSION_TTL <= now {
            continue;
        }
        if let Some((s, raw)) = state::read::<Session>(app, &key).await? {
            if s.user_id == user_id && s.auth_time + SESSION_TTL > now {
                out.push((key, s, raw));
            }
        }
    }
    Ok(out)
}

/// Is this session still honoured (its user there and its credential generation current)?
async fn generation_of(app: &App, user_id: &str) -> Result<Option<Option<String>>> {
    Ok(app
        .repo()
        .get_fresh(ResourceType::User, user_id)
        .await?
        .map(|doc| generation_tag(None, Some(&doc))))
}

fn public_id(key: &str) -> &str {
    key.strip_prefix("session/").unwrap_or(key)
}

fn bundle(entries: Vec<Value>) -> Value {
    let entries: Vec<Value> = entries
        .into_iter()
        .map(|r| json!({"resource": r}))
        .collect();
    json!({"resourceType": "Bundle", "type": "searchset", "total": entries.len(), "entry": entries})
}

fn user_param(req: &Request) -> Result<String> {
    let params = query_params(req.uri().query().unwrap_or(""));
    match params.get("user") {
        Some(Value::String(u)) if valid_id(u) => Ok(u.clone()),
        Some(_) => Err(Error::InvalidRequest("parameter user: one User id".into())),
        None => Err(Error::InvalidRequest(
            "give the user: /Session?user={User id} (sessions are listed per user)".into(),
        )),
    }
}

/// `/Session` and `/Session/{id}`. `method` is the router's method check (its route in
/// `ROUTES`), applied once the caller is authorized: a caller we refuse gets 401/403 whatever
/// the method, and learns nothing of the API's shape.
pub async fn handle(
    app: &App,
    req: Request,
    id: Option<&str>,
    method: Result<()>,
) -> Result<Response> {
    authorize(app, &req).await?;
    method?;
    let resp = match (req.method().clone(), id) {
        (http::Method::GET, None) => {
            let user = user_param(&req)?;
            let current = generation_of(app, &user).await?;
            let list = sessions_of(app, &user).await?;
            let entries = list
                .iter()
                .map(|(k, s, _)| view(public_id(k), s, current.as_ref() == Some(&s.generation)))
                .collect();
            json_response(200, &bundle(entries))
        }
        (http::Method::DELETE, None) => {
            let user = user_param(&req)?;
            let mut ended = Vec::new();
            for (k, s, raw) in sessions_of(app, &user).await? {
                if state::remove(app, &k, &raw).await? {
                    ended.push(view(public_id(&k), &s, false));
                }
            }
            json_response(200, &bundle(ended))
        }
        (http::Method::GET | http::Method::DELETE, Some(id)) => {
            let not_found = || Error::NotFound(format!("Session/{id} not found"));
            let well_formed = id.len() == 43
                && id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
            if !well_formed {
                return Err(not_found());
            }
            let key = format!("session/{id}");
            let Some((s, raw)) = state::read::<Session>(app, &key).await? else {
                return Err(not_found());
            };
            if s.auth_time + SESSION_TTL <= app.now() {
                return Err(not_found());
            }
            if req.method() == http::Method::DELETE {
                if !state::remove(app, &key, &raw).await? {
                    return Err(Error::Conflict(format!(
                        "Session/{id} changed meanwhile; try again"
                    )));
                }
                json_response(200, &view(id, &s, false))
            } else {
                let current = generation_of(app, &s.user_id).await?;
                json_response(200, &view(id, &s, current.as_ref() == Some(&s.generation)))
            }
        }
        (_, None) => return Err(Error::MethodNotAllowed("GET, DELETE")),
        (_, Some(_)) => return Err(Error::MethodNotAllowed("GET, DELETE")),
    };
    Ok(no_store(resp))
}
