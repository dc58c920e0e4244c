//! RFC 6749 section 4.3: the resource owner password credentials grant, only for clients that
//! list `password` (RFC 9700 2.4 discourages it; it exists for first-party mobile and desktop
//! apps, as in Aidbox). `username` is the User's id or email.

use super::{client_ceiling, issue, refresh, token_audience, user_ceiling, GrantType, Issue};
use crate::authn::{check_secret, load_user};
use crate::context::App;
use crate::error::{Error, Result};
use crate::http_util::{Request, Response};
use crate::model::client::Client;
use crate::model::user::{normalize_email, User};
use crate::model::{valid_id, ResourceType};
use std::collections::BTreeMap;

/// One message for unknown user and wrong password: no account enumeration.
fn bad_credentials() -> Error {
    Error::InvalidGrant("invalid username or password".into())
}

pub async fn find_user(app: &App, username: &str) -> Result<Option<User>> {
    if valid_id(username) {
        if let Some(u) = load_user(app, username).await? {
            return Ok(Some(u));
        }
    }
    if let Some(email) = normalize_email(username) {
        if let Some(id) = app.repo().user_id_by_email(&email).await? {
            // The index is written after the User (src/admin.rs), so a write cut short can
            // leave it stale; only a User that still has this email counts.
            return Ok(load_user(app, &id).await?.filter(|u| {
                u.doc
                    .get("email")
                    .and_then(serde_json::Value::as_str)
                    .and_then(normalize_email)
                    .as_deref()
                    == Some(email.as_str())
            }));
        }
    }
    Ok(None)
}

/// Checks a username and password, throttled (see [`crate::state::throttle`]): `Ok(Some)` for
/// the right password, `Ok(None)` for a wrong one or an unknown user (counted as a failure),
/// 429 while the user or the client address is locked or has as many checks in flight as
/// failures left. The attempt is reserved before the KDF runs, so a locked guesser costs no
/// hashing.
pub async fn authenticate_user(
    app: &App,
    req: &Request,
    username: &str,
    password: &str,
) -> Result<Option<User>> {
    use crate::state::throttle;
    let user = find_user(app, username).await?;
    let who = match &user {
        Some(u) => throttle::known_user(&u.id),
        None => throttle::unknown_user(username),
    };
    let keys = throttle::keys(req, &who);
    // Reserved atomically before the KDF: parallel guesses cannot all pass a check first.
    let ok = throttle::checked(app, &keys, password, || async {
        match &user {
            Some(u) => match &u.password_hash {
                Some(h) => check_secret(app, "User", &u.id, password, h).await,
                None => Ok(false),
            },
            None => {
                crate::secret::burn_check(
                    app.platform.crypto.as_ref(),
                    password,
                    app.config.pbkdf2_iterations,
                )
                .await;
                Ok(false)
            }
        }
    })
    .await?;
    if let (true, Some(u)) = (ok, &user) {
        if let Some(h) = u
            .password_hash
            .as_deref()
            .filter(|h| crate::secret::is_imported_hash(h))
        {
            upgrade_imported_hash(app, ResourceType::User, &u.id, h, password).await;
        }
    }
    Ok(if ok { user } else { None })
}

/// Re-hashes an imported hash (Aidbox's `$s0$` scrypt or `$sha256$`) that `secret` just matched
/// with our own (PBKDF2), so later checks cost PBKDF2, not scrypt. The re-hash is kept beside the
/// resource (src/store/mod.rs `rehash_key`) and applies only while the resource still holds that
/// very hash: the resource is never rewritten here, so a stale read cannot undo a password
/// changed meanwhile, and nothing ends (same secret, same credential generation). A failure is
/// logged and the sign-in still succeeds: the imported hash stays valid and is re-hashed at the
/// next one.
pub async fn upgrade_imported_hash(
    app: &App,
    rt: ResourceType,
    id: &str,
    stored: &str,
    secret: &str,
) {
    let kind = rt.name();
    let result: Result<bool> = async {
        let repo = app.repo();
        if repo.rehashed(kind, id, stored).await?.is_some() {
            return Ok(false);
        }
        let new = crate::secret::hash_secret(
            app.platform.crypto.as_ref(),
            app.platform.random.as_ref(),
            secret,
            app.config.pbkdf2_iterations,
        )
        .await?;
        repo.put_rehash(kind, id, stored, &new).await?;
        Ok(true)
    }
    .await;
    match result {
        Ok(true) => app.log(&format!("{rt}/{id}: imported hash re-hashed")),
        Ok(false) => {}
        Err(e) => app.log(&format!(
            "{rt}/{id}: re-hashing the imported hash failed: {e}"
        )),
    }
}

pub async fn grant(
    app: &App,
    req: &Request,
    client: &Client,
    params: &BTreeMap<String, String>,
) -> Result<Response> {
    let username = crate::http_util::required(params, "username")?;
    let password = crate::http_util::required(params, "password")?;
    let scope = client_ceiling(
        client,
        GrantType::Password,
        params.get("scope").map(String::as_str),
    )?;
    let audience = token_audience(app, req, client, params, "password")?;
    let Some(user) = authenticate_user(app, req, username, password).await? else {
        return Err(bad_credentials());
    };
    user_ceiling(app, &user, scope.as_deref())?;
    let mut what = Issue::new(client, Some(&user), scope, audience, GrantType::Password);
    // Aidbox's extra: the User beside the token, cut to the granted scopes.
    what.userinfo = true;
    // A patient user's `patient/` scopes are for their own patient only.
    if let Some(p) = super::launch::standalone_patient(&user) {
        if super::ceiling::has_patient_scope(what.scope.as_deref()) {
            what.launch.patient = Some(p);
        }
    }
    if refresh::wanted(client, "password", what.scope.as_deref()) {
        let jti = crate::state::random_id(app);
        let exp = app.now() + client.access_token_lifetime("password");
        what.refresh_token = Some(
            refresh::start_family(
                app,
                refresh::NewFamily {
                    client,
                    credentials: crate::model::generation_tag(Some(&client.doc), Some(&user.doc)),
                    user_id: Some(&user.id),
                    scope: what.scope.as_deref(),
                    audience: &what.audience,
                    grant: GrantType::Password,
                    auth_time: Some(app.now()),
                    launch: what.launch.clone(),
                    session: None,
                },
                &jti,
                exp,
            )
            .await?,
        );
        what.jti = Some(jti);
    }
    issue(app, req, what).await
}
