//! Refresh tokens (RFC 6749 section 6): opaque, stored hashed, rotated on every use; reuse of a
//! rotated token revokes the whole family (RFC 9700 4.14.2). Two refreshes racing with one token
//! are a reuse too: exactly one wins, and the family is then revoked.

use super::{
    client_auth, client_ceiling, granted_scope_within, has_scope, issue, user_ceiling, GrantType,
    Issue,
};
use crate::app::App;
use crate::authn::load_user;
use crate::error::{Error, Result};
use crate::http_util::{Request, Response};
use crate::model::client::Client;
use crate::state::{self, family_key, hash, random_id, random_token, split_refresh_token, Family};
use std::collections::BTreeMap;

/// Does this grant come with a refresh token? When the client enables them for the flow
/// (`auth.<flow>.refresh_token`), or `offline_access` or `online_access` (SMART) was granted.
pub fn wanted(client: &Client, flow: &str, scope: Option<&str>) -> bool {
    client
        .flow_setting(flow, "refresh_token")
        .and_then(serde_json::Value::as_bool)
        .unwrap_or(false)
        || has_scope(scope, "offline_access")
        || has_scope(scope, "online_access")
}

/// SMART `online_access` without `offline_access`: the refresh token lives only as long as the
/// user's login session.
pub fn online_only(scope: Option<&str>) -> bool {
    has_scope(scope, "online_access") && !has_scope(scope, "offline_access")
}

/// What a new family starts from.
pub struct NewFamily<'a> {
    pub client: &'a Client,
    pub user_id: Option<&'a str>,
    pub scope: Option<&'a str>,
    pub audience: &'a str,
    pub grant: GrantType,
    pub auth_time: Option<i64>,
    pub launch: crate::oauth::launch::LaunchContext,
    /// The login session to bind the family to (`online_access`).
    pub session: Option<String>,
    /// Credential-generation tag of the client and user ([`Issue::generation_tag`]).
    pub generation: Option<String>,
}

/// Starts a family for the access token `jti` (expiring at `exp`); returns the refresh token.
pub async fn start_family(app: &App, f: NewFamily<'_>, jti: &str, exp: i64) -> Result<String> {
    let id = random_id(app);
    let secret = random_token(app);
    let lifetime = f
        .client
        .flow_setting(f.grant.flow(), "refresh_token_expiration")
        .and_then(serde_json::Value::as_i64);
    let family = Family {
        client_id: f.client.id.clone(),
        user_id: f.user_id.map(str::to_string),
        scope: f.scope.map(str::to_string),
        audience: f.audience.to_string(),
        grant: f.grant.name().to_string(),
        auth_time: f.auth_time,
        current: hash(&secret),
        previous: Vec::new(),
        revoked: false,
        issued: vec![(jti.to_string(), exp)],
        lifetime,
        launch: f.launch,
        session: f.session.filter(|_| online_only(f.scope)),
        generation: f.generation,
    };
    state::create(app, &family_key(&id), &family, family.expires_at(app.now())).await?;
    Ok(format!("{id}.{secret}"))
}

fn invalid() -> Error {
    Error::InvalidGrant("refresh token is invalid, expired or revoked".into())
}

/// `grant_type=refresh_token`.
pub async fn grant(
    app: &App,
    req: &Request,
    client: &Client,
    params: &BTreeMap<String, String>,
) -> Result<Response> {
    let token = crate::http_util::required(params, "refresh_token")?;
    let (family_id, secret) = split_refresh_token(token).ok_or_else(invalid)?;
    let key = family_key(family_id);
    let Some((fam, raw)) = state::read::<Family>(app, &key).await? else {
        return Err(invalid());
    };
    if fam.client_id != client.id || fam.revoked {
        return Err(invalid());
    }
    if let Some(session) = &fam.session {
        if app.platform.state.get(session).await?.is_none() {
            return Err(Error::InvalidGrant(
                "the user's session has ended (online_access)".into(),
            ));
        }
    }
    let presented = hash(secret);
    if !crate::secret::ct_eq(presented.as_bytes(), fam.current.as_bytes()) {
        if fam.previous.contains(&presented) {
            app.log(&format!(
                "refresh token reuse in family {family_id}: family revoked"
            ));
            state::revoke_family(app, family_id).await?;
        }
        return Err(invalid());
    }
    // A narrower scope may be asked for, never a wider one (RFC 6749 6).
    let scope = match params.get("scope") {
        Some(_) => granted_scope_within(params, fam.scope.as_deref())?,
        None => fam.scope.clone(),
    };
    let user = match &fam.user_id {
        Some(id) => Some(load_user(app, id).await?.ok_or_else(invalid)?),
        None => None,
    };
    // The family ends with the credentials it was issued under (a password or secret change,
    // a deactivation, a delete and re-create: src/admin.rs renews the generation).
    if fam.generation
        != crate::model::generation_tag(Some(&client.doc), user.as_ref().map(|u| &u.doc))
    {
        return Err(invalid());
    }
    let grant = GrantType::parse(&fam.grant).map_err(|_| invalid())?;
    // A refresh never widens: the client's registration and the user's standing as they are
    // now. A lost grant type or refresh setting ends the family's use (invalid_grant); a scope
    // no longer allowed is invalid_scope, and the token stays usable for a narrower scope.
    if !client.allows_grant(grant.name()) {
        return Err(Error::InvalidGrant(format!(
            "this client may no longer use the {} grant (see its grant_types)",
            grant.name()
        )));
    }
    if !wanted(client, grant.flow(), fam.scope.as_deref()) {
        return Err(Error::InvalidGrant(
            "this client no longer gets refresh tokens for this flow".into(),
        ));
    }
    client_ceiling(client, grant, scope.as_deref())?;
    if let Some(u) = &user {
        user_ceiling(app, u, scope.as_deref())?;
        if let (Some(own), Some(p)) = (
            super::launch::standalone_patient(u),
            fam.launch.patient.as_ref(),
        ) {
            if *p != own {
                return Err(invalid());
            }
        }
    }
    let jti = random_id(app);
    let exp = app.now() + client.access_token_lifetime(grant.flow());
    let new_secret = random_token(app);
    let rotated = fam.rotated(hash(&new_secret), &jti, exp);
    if !state::swap(app, &key, &raw, &rotated, rotated.expires_at(app.now())).await? {
        // Another request rotated this very token first: a reuse.
        app.log(&format!(
            "concurrent refresh in family {family_id}: family revoked"
        ));
        state::revoke_family(app, family_id).await?;
        return Err(invalid());
    }
    let mut what = Issue::new(client, user.as_ref(), scope, fam.audience.clone(), grant);
    what.jti = Some(jti);
    what.refresh_token = Some(format!("{family_id}.{new_secret}"));
    what.auth_time = fam.auth_time;
    what.launch = fam.launch.clone();
    issue(app, req, what).await
}

/// Used by introspection and revocation: the family of a refresh token, if it is live and
/// belongs to `client_id`.
pub async fn live_family(
    app: &App,
    token: &str,
    client_id: &str,
) -> Result<Option<(String, Family)>> {
    let Some((family_id, secret)) = split_refresh_token(token) else {
        return Ok(None);
    };
    let Some((fam, _)) = state::read::<Family>(app, &family_key(family_id)).await? else {
        return Ok(None);
    };
    if fam.client_id != client_id
        || fam.revoked
        || !crate::secret::ct_eq(fam.current.as_bytes(), hash(secret).as_bytes())
    {
        return Ok(None);
    }
    Ok(Some((family_id.to_string(), fam)))
}

/// Client authentication for endpoints that public clients may also call (revoke).
pub async fn any_client(
    app: &App,
    req: &Request,
    params: &BTreeMap<String, String>,
) -> Result<Client> {
    client_auth::authenticate(app, req, params, false).await
}
