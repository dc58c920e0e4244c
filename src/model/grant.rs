//! Remembered consent: Aidbox's `Grant` (a user approved a client's scopes on the consent page).
//!
//! While a grant lives, the same user is not asked again by the same client for the same scopes
//! or a subset of them; a request for any scope not in the grant shows the consent page again,
//! and its approval widens the grant. Scopes compare as exact strings: `patient/*.rs` covers
//! `patient/*.rs` only, never `user/*.cruds` (no SMART containment is inferred).
//!
//! Storage: the Durable Object state store, not KV. A revoke must hold for the very next
//! authorize, and KV is eventually consistent (up to ~60 s between locations, DESIGN.md "State
//! and consistency"); the state store is strongly consistent with compare-and-swap. Keys:
//! - `grants/{user id}`: every grant of one user ([`UserGrants`], at most
//!   [`MAX_GRANTS_PER_USER`]; the oldest goes first), addressed by what it belongs to (the user);
//! - `grant/{grant id}`: the user a grant id belongs to, so `GET`/`DELETE /Grant/{id}` find it.
//!
//! A grant is bound to the user's credential generation ([`crate::model::generation_tag`]): after
//! a password change, a deactivation, or a delete and re-create under the same id, the user is
//! asked again. Revoking a grant does not end refresh-token families already issued under it
//! (they carry no grant reference): they end by `/auth/revoke`, their lifetime, or a credential
//! change of the user or client.
//!
//! Access: the admin API (`GET /Grant?user=<id>`, `GET`/`DELETE /Grant/{id}`; `Grant` is a server
//! type, so a SMART token's scopes never reach it) and the signed-in user for their own grants
//! (`GET /auth/grants`, `POST /auth/grants` with `client` and `csrf` to revoke).

use crate::context::App;
use crate::error::{Error, Result};
use crate::model::user::User;
use crate::state::{self, NO_EXPIRY};
use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::BTreeSet;

/// Most grants kept per user (one per client); past it the oldest is dropped.
pub const MAX_GRANTS_PER_USER: usize = 200;

/// One user's grants (store key `grants/{user id}`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct UserGrants {
    #[serde(default)]
    pub grants: Vec<GrantRecord>,
}

/// One remembered consent.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct GrantRecord {
    pub id: String,
    pub client: String,
    /// The approved scopes, sorted, each once.
    pub scopes: Vec<String>,
    /// The scopes of the latest approved request.
    #[serde(default)]
    pub requested: Vec<String>,
    pub start: i64,
    /// The user's credential-generation tag when approved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generation: Option<String>,
}

/// Where a grant id points (store key `grant/{id}`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
struct GrantPointer {
    user: String,
}

fn user_key(user_id: &str) -> String {
    format!("grants/{user_id}")
}

fn pointer_key(id: &str) -> String {
    format!("grant/{id}")
}

/// The scopes of a request, sorted and each once.
pub fn scope_set(scope: Option<&str>) -> Vec<String> {
    scope
        .unwrap_or("")
        .split(' ')
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect::<BTreeSet<String>>()
        .into_iter()
        .collect()
}

fn generation_of(user: &User) -> Option<String> {
    crate::model::generation_tag(None, Some(&user.doc))
}

/// The live grant of `user` for `client`, if any (bound to the user's current generation).
fn live<'a>(rec: &'a UserGrants, user: &User, client: &str) -> Option<&'a GrantRecord> {
    let gen = generation_of(user);
    rec.grants
        .iter()
        .find(|g| g.client == client && g.generation == gen)
}

/// Has `user` already approved every scope of this request for `client`?
pub async fn covers(app: &App, user: &User, client: &str, scope: Option<&str>) -> Result<bool> {
    let Some((rec, _)) = state::read::<UserGrants>(app, &user_key(&user.id)).await? else {
        return Ok(false);
    };
    let wanted = scope_set(scope);
    Ok(live(&rec, user, client).is_some_and(|g| wanted.iter().all(|s| g.scopes.contains(s))))
}

/// Which of the request's scopes `user` has already approved for `client` (for the consent
/// page, which marks the new ones).
pub async fn approved(app: &App, user: &User, client: &str) -> Result<Vec<String>> {
    let Some((rec, _)) = state::read::<UserGrants>(app, &user_key(&user.id)).await? else {
        return Ok(Vec::new());
    };
    Ok(live(&rec, user, client)
        .map(|g| g.scopes.clone())
        .unwrap_or_default())
}

/// Remembers that `user` approved `scope` for `client`: widens the live grant, or starts one.
pub async fn remember(app: &App, user: &User, client: &str, scope: Option<&str>) -> Result<()> {
    let key = user_key(&user.id);
    let requested = scope_set(scope);
    let generation = generation_of(user);
    let mut new_id: Option<String> = None;
    for _ in 0..8 {
        let now = app.now();
        let current = state::read::<UserGrants>(app, &key).await?;
        let mut rec = current.as_ref().map(|(r, _)| r.clone()).unwrap_or_default();
        match rec
            .grants
            .iter_mut()
            .find(|g| g.client == client && g.generation == generation)
        {
            Some(g) => {
                if requested.iter().all(|s| g.scopes.contains(s)) && g.requested == requested {
                    return Ok(());
                }
                let union: BTreeSet<String> = g
                    .scopes
                    .drain(..)
                    .chain(requested.iter().cloned())
                    .collect();
                g.scopes = union.into_iter().collect();
                g.requested = requested.clone();
            }
            None => {
                // A grant of an earlier generation of this user is replaced.
                rec.grants.retain(|g| g.client != client);
                let id = match &new_id {
                    Some(id) => id.clone(),
                    None => {
                        // Hex: a FHIR id (`[A-Za-z0-9\-.]`), unlike base64url.
                        let mut b = [0u8; 16];
                        app.platform.random.fill(&mut b);
                        let id: String = b.iter().map(|x| format!("{x:02x}")).collect();
                        let ptr = GrantPointer {
                            user: user.id.clone(),
                        };
                        state::create(app, &pointer_key(&id), &ptr, now + NO_EXPIRY).await?;
                        new_id = Some(id.clone());
                        id
                    }
                };
                if rec.grants.len() >= MAX_GRANTS_PER_USER {
                    let oldest = rec.grants.iter().enumerate().min_by_key(|(_, g)| g.start);
                    if let Some(i) = oldest.map(|(i, _)| i) {
                        rec.grants.remove(i);
                    }
                }
                rec.grants.push(GrantRecord {
                    id,
                    client: client.to_string(),
                    scopes: requested.clone(),
                    requested: requested.clone(),
                    start: now,
                    generation: generation.clone(),
                });
            }
        }
        let done = match &current {
            // Created only if still absent: another request may have made it first.
            None => {
                let text = serde_json::to_string(&rec)
                    .map_err(|e| Error::Internal(format!("grant encode: {e}")))?;
                matches!(
                    app.platform
                        .state
                        .cas(&key, None, Some(&text), now + NO_EXPIRY)
                        .await?,
                    crate::platform::Cas::Swapped
                )
            }
            Some((_, raw)) => state::swap(app, &key, raw, &rec, now + NO_EXPIRY).await?,
        };
        if done {
            return Ok(());
        }
    }
    Err(Error::Unavailable(
        "could not record the consent: too much contention".into(),
    ))
}

/// A grant as Aidbox's `Grant` resource (docs/reference/system-resources-reference/
/// core-module-resources.md#grant).
pub fn to_resource(user_id: &str, g: &GrantRecord) -> Value {
    let start = DateTime::<Utc>::from_timestamp(g.start, 0)
        .unwrap_or_default()
        .to_rfc3339_opts(SecondsFormat::Secs, true);
    json!({
        "resourceType": "Grant",
        "id": g.id,
        "user": {"resourceType": "User", "id": user_id},
        "client": {"resourceType": "Client", "id": g.client},
        "scope": g.scopes.join(" "),
        "provided-scope": g.scopes,
        "requested-scope": g.requested,
        "start": start,
    })
}

/// The grants that apply to `user_id` now (those of the user's current generation; none when
/// there is no such user).
pub async fn list(app: &App, user_id: &str) -> Result<Vec<Value>> {
    let Some(user) = crate::authn::load_user(app, user_id).await? else {
        return Ok(Vec::new());
    };
    let Some((rec, _)) = state::read::<UserGrants>(app, &user_key(user_id)).await? else {
        return Ok(Vec::new());
    };
    let gen = generation_of(&user);
    Ok(rec
        .grants
        .iter()
        .filter(|g| g.generation == gen)
        .map(|g| to_resource(user_id, g))
        .collect())
}

/// The user a grant id belongs to, and the grant.
async fn find(app: &App, id: &str) -> Result<Option<(String, GrantRecord)>> {
    if !crate::model::valid_id(id) {
        return Ok(None);
    }
    let Some((ptr, _)) = state::read::<GrantPointer>(app, &pointer_key(id)).await? else {
        return Ok(None);
    };
    let Some((rec, _)) = state::read::<UserGrants>(app, &user_key(&ptr.user)).await? else {
        return Ok(None);
    };
    Ok(rec
        .grants
        .into_iter()
        .find(|g| g.id == id)
        .map(|g| (ptr.user, g)))
}

/// Revokes one grant of `user_id` (by grant id, or by client when `id` is None): the next
/// authorize asks again. The revoked grant, or None when there was none.
pub async fn revoke(
    app: &App,
    user_id: &str,
    id: Option<&str>,
    client: Option<&str>,
) -> Result<Option<Value>> {
    let key = user_key(user_id);
    for _ in 0..8 {
        let Some((mut rec, raw)) = state::read::<UserGrants>(app, &key).await? else {
            return Ok(None);
        };
        let Some(pos) = rec
            .grants
            .iter()
            .position(|g| id.is_none_or(|i| g.id == i) && client.is_none_or(|c| g.client == c))
        else {
            return Ok(None);
        };
        let gone = rec.grants.remove(pos);
        let now = app.now();
        let done = if rec.grants.is_empty() {
            state::remove(app, &key, &raw).await?
        } else {
            state::swap(app, &key, &raw, &rec, now + NO_EXPIRY).await?
        };
        if done {
            // The pointer goes last: a cut-off revoke leaves a pointer to nothing (404).
            if let Some((_, praw)) =
                state::read::<GrantPointer>(app, &pointer_key(&gone.id)).await?
            {
                state::remove(app, &pointer_key(&gone.id), &praw).await?;
            }
            return Ok(Some(to_resource(user_id, &gone)));
        }
    }
    Err(Error::Unavailable(
        "could not revoke the grant: too much contention".into(),
    ))
}

/// The admin API for `Grant`: `GET /Grant?user=<id>` (a Bundle), `GET /Grant/{id}`,
/// `DELETE /Grant/{id}`. Grants are made on the consent page only: no PUT, POST or PATCH.
/// The caller is already authorized (src/admin.rs).
pub async fn admin(
    app: &App,
    method: &http::Method,
    query: &str,
    id: Option<&str>,
) -> Result<Value> {
    match (method, id) {
        (&http::Method::GET, None) => {
            let params = crate::http_util::query_params(query);
            let user = match params.get("user") {
                Some(Value::String(u)) => u.strip_prefix("User/").unwrap_or(u).to_string(),
                _ => {
                    return Err(Error::InvalidRequest(
                        "grants are kept per user: GET /Grant?user=<User id>".into(),
                    ))
                }
            };
            if !crate::model::valid_id(&user) {
                return Err(Error::InvalidRequest("user is not a valid User id".into()));
            }
            let entries: Vec<Value> = list(app, &user)
                .await?
                .into_iter()
                .map(|r| json!({ "resource": r }))
                .collect();
            Ok(
                json!({"resourceType": "Bundle", "type": "searchset", "total": entries.len(), "entry": entries}),
            )
        }
        (&http::Method::GET, Some(id)) => match find(app, id).await? {
            Some((user, g)) => Ok(to_resource(&user, &g)),
            None => Err(Error::NotFound(format!("Grant/{id} not found"))),
        },
        (&http::Method::DELETE, Some(id)) => {
            let not_found = || Error::NotFound(format!("Grant/{id} not found"));
            let Some((user, _)) = find(app, id).await? else {
                return Err(not_found());
            };
            revoke(app, &user, Some(id), None)
                .await?
                .ok_or_else(not_found)
        }
        (_, None) => Err(Error::MethodNotAllowed("GET")),
        (_, Some(_)) => Err(Error::MethodNotAllowed("GET, DELETE")),
    }
}
