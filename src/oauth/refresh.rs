//! Refresh tokens (RFC 6749 section 6): opaque, stored hashed, rotated on every use; reuse of
//! any earlier token of a family, however old, revokes the whole family and every access token
//! issued from it (RFC 9700 4.14.2; the token format is in [`crate::state::Family`]). Two
//! refreshes racing with one token are a reuse too: exactly one wins, and the family is then
//! revoked. A family ends at its absolute lifetime however often it is used, and each refresh
//! re-checks the client and the user as they are now.

use super::{
    client_auth, client_ceiling, granted_scope_within, has_scope, issue, user_ceiling, GrantType,
    Issue,
};
use crate::authn::load_user;
use crate::context::App;
use crate::error::{Error, Result};
use crate::http_util::{Request, Response};
use crate::model::client::Client;
use crate::state::{
    self, family_key, hash, random_id, random_token, split_refresh_token, Family, Presented,
};
use std::collections::BTreeMap;

/// Does this grant come with a refresh token? When the client enables them for the flow
/// (`auth.<flow>.refresh_token`, or `grant_types` listing `refresh_token` when the flow does
/// not say: [`Client::refresh_enabled`]), or `offline_access` or `online_access` (SMART) was
/// granted.
pub fn wanted(client: &Client, flow: &str, scope: Option<&str>) -> bool {
    client.refresh_enabled(flow)
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
    pub credentials: Option<String>,
}

/// A family's absolute lifetime when the client sets none: 30 days.
pub const DEFAULT_ABSOLUTE_LIFETIME: i64 = 30 * 24 * 3600;

/// The absolute lifetime of the client's families of `flow`
/// (`auth.<flow>.refresh_token_absolute_expiration`, seconds; default 30 days).
pub fn absolute_lifetime(client: &Client, flow: &str) -> i64 {
    client
        .flow_setting(flow, "refresh_token_absolute_expiration")
        .and_then(serde_json::Value::as_i64)
        .unwrap_or(DEFAULT_ABSOLUTE_LIFETIME)
}

/// Starts a family for the access token `jti` (expiring at `exp`); returns the refresh token.
/// That access token carries the family's claim (see [`super::sign_access_token`]), so `_jti`
/// needs no record here.
pub async fn start_family(app: &App, f: NewFamily<'_>, _jti: &str, exp: i64) -> Result<String> {
    let id = random_id(app);
    let secret = random_token(app);
    let key = random_token(app);
    let lifetime = f
        .client
        .flow_setting(f.grant.flow(), "refresh_token_expiration")
        .and_then(serde_json::Value::as_i64);
    let not_after = app.now() + absolute_lifetime(f.client, f.grant.flow());
    let family = Family {
        client_id: f.client.id.clone(),
        user_id: f.user_id.map(str::to_string),
        scope: f.scope.map(str::to_string),
        audience: f.audience.to_string(),
        grant: f.grant.name().to_string(),
        auth_time: f.auth_time,
        current: hash(&secret),
        generation: 0,
        key: Some(key.clone()),
        previous: Vec::new(),
        revoked: false,
        issued: Vec::new(),
        max_exp: exp,
        lifetime,
        not_after: Some(not_after),
        launch: f.launch,
        session: f.session.filter(|_| online_only(f.scope)),
        credentials: f.credentials,
        // RFC 9449 5: a public client's refresh tokens are bound to its DPoP key; a
        // confidential client's are bound by its authentication already.
        jkt: f
            .client
            .dpop_jkt
            .clone()
            .filter(|_| !f.client.authenticated),
    };
    state::create(app, &family_key(&id), &family, family.expires_at(app.now())).await?;
    Ok(state::refresh_token(&key, &id, 0, &secret))
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
    // A malformed token is refused before the store is asked.
    let (family_id, secret) = split_refresh_token(token).ok_or_else(invalid)?;
    let key = family_key(family_id);
    let Some((fam, raw)) = state::read::<Family>(app, &key).await? else {
        return Err(invalid());
    };
    if fam.client_id != client.id {
        return Err(invalid());
    }
    let grant = GrantType::parse(&fam.grant).map_err(|_| invalid())?;
    // A client let in without its secret (`secret_required: false`) refreshes only families of
    // a flow that allows that; anything else, client_credentials first, needs authentication.
    if !client.authenticated && client.requires_secret(grant.flow()) {
        return Err(Error::InvalidClient("client authentication failed".into()));
    }
    match fam.presented(family_id, secret) {
        Presented::Current if !fam.revoked => {}
        Presented::Current | Presented::Earlier => {
            // Any earlier token of the family, however old (RFC 9700 4.14.2). On a family
            // already revoked this only makes sure its access tokens are (a cut-off revocation).
            if !fam.revoked {
                app.log(&format!(
                    "refresh token reuse in family {family_id}: family revoked"
                ));
            }
            state::revoke_family(app, family_id).await?;
            return Err(invalid());
        }
        // Not issued by this family (wrong secret, bad tag, a generation not reached yet):
        // refused without touching the family.
        Presented::Unknown => return Err(invalid()),
    }
    // RFC 8707 2.2: a refresh names no other resource than the grant's.
    crate::resource::check_same(app, req, params, &fam.audience)?;
    if let Some(jkt) = &fam.jkt {
        if client.dpop_jkt.as_deref() != Some(jkt.as_str()) {
            return Err(super::dpop::refuse(
                super::dpop::Place::Token,
                "this refresh token is bound to a DPoP key: send a proof signed by that key",
            ));
        }
    }
    if fam.ended(app.now()) {
        return Err(Error::InvalidGrant(
            "refresh token has reached its absolute lifetime; sign in again".into(),
        ));
    }
    if let Some(session) = &fam.session {
        if app.platform.state.get(session).await?.is_none() {
            return Err(Error::InvalidGrant(
                "the user's session has ended (online_access)".into(),
            ));
        }
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
    if fam.credentials
        != crate::model::generation_tag(Some(&client.doc), user.as_ref().map(|u| &u.doc))
    {
        return Err(invalid());
    }
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
    // Without rotation (a confidential client that authenticated and opted out, RFC 9700
    // 2.2.2) the same token stays the family's current one; the family still ends at its
    // absolute lifetime and with a revocation or a credential change.
    if !client.rotates_refresh_tokens(grant.flow()) && client.authenticated && fam.key.is_some() {
        keep_unrotated(app, &key, family_id, secret, &fam, &raw, exp).await?;
        let mut what = Issue::new(client, user.as_ref(), scope, fam.audience.clone(), grant);
        what.jti = Some(jti);
        what.refresh_token = Some(token.to_string());
        what.auth_time = fam.auth_time;
        what.launch = fam.launch.clone();
        return issue(app, req, what).await;
    }
    let new_secret = random_token(app);
    let mut rotated = fam.rotated(hash(&new_secret), exp, random_token(app));
    if rotated.not_after.is_none() {
        // A family from before absolute lifetimes: its lifetime starts now.
        rotated.not_after = Some(app.now() + absolute_lifetime(client, grant.flow()));
    }
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
    let tag_key = rotated.key.as_deref().unwrap_or_default();
    what.refresh_token = Some(state::refresh_token(
        tag_key,
        family_id,
        rotated.generation,
        &new_secret,
    ));
    what.auth_time = fam.auth_time;
    what.launch = fam.launch.clone();
    issue(app, req, what).await
}

/// A refresh without rotation: records the new access token's `exp` in the family (so that a
/// revocation outlives it) with the same atomic swap as a rotation. Two refreshes with the same
/// unrotated token are both legitimate: a lost swap is retried on the fresh record as long as
/// that token is still the family's current one and the family is live.
async fn keep_unrotated(
    app: &App,
    key: &str,
    family_id: &str,
    secret: state::RefreshSecret<'_>,
    fam: &Family,
    raw: &str,
    exp: i64,
) -> Result<()> {
    let (mut fam, mut raw) = (fam.clone(), raw.to_string());
    for _ in 0..4 {
        let mut kept = fam.clone();
        kept.max_exp = kept.max_exp.max(exp);
        if state::swap(app, key, &raw, &kept, kept.expires_at(app.now())).await? {
            return Ok(());
        }
        let Some((f, r)) = state::read::<Family>(app, key).await? else {
            return Err(invalid());
        };
        if f.revoked || f.ended(app.now()) || f.presented(family_id, secret) != Presented::Current {
            return Err(invalid());
        }
        (fam, raw) = (f, r);
    }
    Err(Error::Unavailable(
        "the refresh token is in use by other requests; retry".into(),
    ))
}

/// Used by introspection: the family of a refresh token, if the token is the family's newest,
/// the family is live and belongs to `client_id`.
pub async fn live_family(
    app: &App,
    token: &str,
    client_id: &str,
) -> Result<Option<(String, Family)>> {
    Ok(genuine_family(app, token, client_id)
        .await?
        .filter(|(_, fam, p)| *p == Presented::Current && !fam.revoked && !fam.ended(app.now()))
        .map(|(id, fam, _)| (id, fam)))
}

/// Used by revocation (RFC 7009): the family of `client_id` that issued this token, the newest
/// or an earlier one, revoked or not.
pub async fn genuine_family(
    app: &App,
    token: &str,
    client_id: &str,
) -> Result<Option<(String, Family, Presented)>> {
    let Some((family_id, secret)) = split_refresh_token(token) else {
        return Ok(None);
    };
    let Some((fam, _)) = state::read::<Family>(app, &family_key(family_id)).await? else {
        return Ok(None);
    };
    if fam.client_id != client_id {
        return Ok(None);
    }
    match fam.presented(family_id, secret) {
        Presented::Unknown => Ok(None),
        p => Ok(Some((family_id.to_string(), fam, p))),
    }
}

/// Client authentication for endpoints that public clients may also call (revoke). The
/// request's own `grant_type`, meaningless there, must not pick the flow whose
/// `secret_required: false` lets the client in: it is read as a refresh (any flow that may go
/// without the secret), and the caller checks each family's flow with [`may_touch`].
pub async fn any_client(
    app: &App,
    req: &Request,
    params: &BTreeMap<String, String>,
) -> Result<Client> {
    let mut params = params.clone();
    params.insert("grant_type".into(), "refresh_token".into());
    client_auth::authenticate(app, req, &params, false).await
}

/// May this client, as it authenticated, act on a family of `grant` (revoke it)? A client let
/// in without its secret (`secret_required: false`) only on families of a flow that allows that.
pub fn may_touch(client: &Client, grant: &str) -> bool {
    client.authenticated || GrantType::parse(grant).is_ok_and(|g| !client.requires_secret(g.flow()))
}
