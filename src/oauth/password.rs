//! RFC 6749 section 4.3: the resource owner password credentials grant, only for clients that
//! list `password` (RFC 9700 2.4 discourages it; it exists for first-party mobile and desktop
//! apps, as in Aidbox). `username` is the User's id or email.

use super::{granted_scope, issue, refresh, token_audience, GrantType, Issue};
use crate::app::App;
use crate::authn::{check_secret, load_user};
use crate::error::{Error, Result};
use crate::http_util::{Request, Response};
use crate::model::client::Client;
use crate::model::user::{normalize_email, User};
use crate::model::valid_id;
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
            return load_user(app, &id).await;
        }
    }
    Ok(None)
}

pub async fn grant(
    app: &App,
    req: &Request,
    client: &Client,
    params: &BTreeMap<String, String>,
) -> Result<Response> {
    let username = crate::http_util::required(params, "username")?;
    let password = crate::http_util::required(params, "password")?;
    let scope = granted_scope(client, params)?;
    let audience = token_audience(app, req, client, params)?;
    let user = match find_user(app, username).await? {
        Some(u) => u,
        None => {
            crate::secret::burn_check(
                app.platform.crypto.as_ref(),
                password,
                app.config.pbkdf2_iterations,
            )
            .await;
            return Err(bad_credentials());
        }
    };
    let Some(hash) = user.password_hash.clone() else {
        return Err(bad_credentials());
    };
    if !check_secret(app, "User", &user.id, password, &hash).await? {
        return Err(bad_credentials());
    }
    let mut what = Issue::new(client, Some(&user), scope, audience, GrantType::Password);
    if refresh::wanted(client, "password", what.scope.as_deref()) {
        let jti = crate::state::random_id(app);
        let exp = app.now() + client.access_token_lifetime("password");
        what.refresh_token = Some(
            refresh::start_family(
                app,
                refresh::NewFamily {
                    client,
                    user_id: Some(&user.id),
                    scope: what.scope.as_deref(),
                    audience: &what.audience,
                    grant: GrantType::Password,
                    auth_time: Some(app.now()),
                    launch: Default::default(),
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
