//! RFC 6749 section 4.1.3: redeeming an authorization code. The code is bound to its client,
//! redirect URI and PKCE challenge, lives 60 s, and is redeemable exactly once: the redemption
//! is a compare-and-swap on the code's record in the Durable Object, so of N parallel
//! redemptions exactly one wins. A second redemption revokes what the first issued (10.5).

use super::{client_ceiling, issue, pkce, refresh, token_audience, user_ceiling, GrantType, Issue};
use crate::authn::load_user;
use crate::context::App;
use crate::error::{Error, Result};
use crate::http_util::{Request, Response};
use crate::model::client::Client;
use crate::state::{self, code_key, random_id, CodeRecord, Issued};
use std::collections::BTreeMap;

fn invalid(why: &str) -> Error {
    Error::InvalidGrant(why.to_string())
}

/// Revokes what a code's first redemption issued.
async fn revoke_issued(app: &App, issued: &Issued) -> Result<()> {
    state::revoke_access_token(app, &issued.jti, issued.exp).await?;
    if let Some(f) = &issued.family {
        state::revoke_family(app, f).await?;
    }
    Ok(())
}

pub async fn grant(
    app: &App,
    req: &Request,
    client: &Client,
    params: &BTreeMap<String, String>,
) -> Result<Response> {
    let code = crate::http_util::required(params, "code")?;
    let key = code_key(code);
    let Some((rec, raw)) = state::read::<CodeRecord>(app, &key).await? else {
        return Err(invalid("authorization code is invalid or expired"));
    };
    if let Some(issued) = &rec.used {
        app.log(&format!(
            "authorization code replay by client {}: revoking what it issued",
            client.id
        ));
        revoke_issued(app, issued).await?;
        return Err(invalid("authorization code was already used"));
    }
    // Check everything before consuming the code (a failed check must not burn it).
    if rec.client_id != client.id {
        return Err(invalid("authorization code was issued to another client"));
    }
    match params.get("redirect_uri") {
        Some(r) if *r != rec.redirect_uri => {
            return Err(invalid(
                "redirect_uri does not match the authorization request",
            ))
        }
        None if rec.redirect_uri_given => {
            return Err(Error::InvalidRequest("redirect_uri is required".into()))
        }
        _ => {}
    }
    let verifier = params.get("code_verifier");
    match (&rec.code_challenge, verifier) {
        (Some(ch), Some(v)) if pkce::verify(v, ch) => {}
        (Some(_), Some(_)) => return Err(invalid("PKCE verification failed")),
        (Some(_), None) => return Err(Error::InvalidRequest("code_verifier is required".into())),
        // A verifier for a code issued without a challenge: a downgrade attempt (RFC 9700 2.1.1).
        (None, Some(_)) => return Err(invalid("code was issued without a PKCE challenge")),
        // A client that did not authenticate (secret_required: false) only with PKCE.
        (None, None) if !client.authenticated => {
            return Err(invalid("a client that does not authenticate must use PKCE"))
        }
        (None, None) => {}
    }
    // RFC 9449 10: a code bound to a DPoP key is redeemed only with a proof by that key.
    if let Some(jkt) = &rec.dpop_jkt {
        if client.dpop_jkt.as_deref() != Some(jkt.as_str()) {
            return Err(super::dpop::refuse(
                super::dpop::Place::Token,
                "this code is bound to a DPoP key (dpop_jkt): send a proof signed by that key",
            ));
        }
    }
    let user = load_user(app, &rec.user_id)
        .await?
        .ok_or_else(|| invalid("the user no longer exists"))?;
    // A code is worth no more than the sign-in it came from: once the user's credentials
    // changed (password, deactivation, delete and re-create), the session's generation tag no
    // longer matches and neither does the code (docs/reference.md "Changes that end what depended on them").
    if let Some(key) = &rec.session {
        if let Some((s, _)) = crate::state::read::<crate::state::Session>(app, key).await? {
            if s.generation != crate::model::generation_tag(None, Some(&user.doc)) {
                return Err(invalid(
                    "the user's credentials changed since the code was issued",
                ));
            }
        }
    }
    // The scope ceiling again, against the client's and the user's standing now.
    client_ceiling(client, GrantType::AuthorizationCode, rec.scope.as_deref())?;
    user_ceiling(app, &user, rec.scope.as_deref())?;
    if let (Some(own), Some(p)) = (
        super::launch::standalone_patient(&user),
        rec.launch.patient.as_ref(),
    ) {
        if *p != own {
            return Err(invalid(
                "the launch context is another patient than the user's own",
            ));
        }
    }
    // RFC 8707: the resource authorized at /auth/authorize, which a `resource` here may only
    // repeat; without one there, the token request's (as before).
    let audience = match &rec.resource {
        Some(r) => {
            crate::resource::check_same(app, req, params, r)?;
            r.clone()
        }
        None => token_audience(app, req, client, params, "authorization_code")?,
    };
    let jti = random_id(app);
    let exp = app.now() + client.access_token_lifetime(GrantType::AuthorizationCode.flow());
    let refresh_token = if refresh::wanted(client, "authorization_code", rec.scope.as_deref()) {
        Some(
            refresh::start_family(
                app,
                refresh::NewFamily {
                    client,
                    credentials: crate::model::generation_tag(Some(&client.doc), Some(&user.doc)),
                    user_id: Some(&user.id),
                    scope: rec.scope.as_deref(),
                    audience: &audience,
                    grant: GrantType::AuthorizationCode,
                    auth_time: Some(rec.auth_time),
                    launch: rec.launch.clone(),
                    session: rec.session.clone(),
                },
                &jti,
                exp,
            )
            .await?,
        )
    } else {
        None
    };
    let family = refresh_token
        .as_deref()
        .and_then(state::split_refresh_token)
        .map(|(f, _)| f.to_string());
    let mut used = rec.clone();
    used.used = Some(Issued {
        jti: jti.clone(),
        exp,
        family: family.clone(),
    });
    // Keep the used record as long as its access token lives, to catch replays meanwhile.
    if !state::swap(app, &key, &raw, &used, exp).await? {
        // Another redemption won the race; it holds the code now. Undo our family.
        if let Some(f) = &family {
            state::revoke_family(app, f).await?;
        }
        if let Some((now, _)) = state::read::<CodeRecord>(app, &key).await? {
            if let Some(issued) = &now.used {
                revoke_issued(app, issued).await?;
            }
        }
        return Err(invalid("authorization code was already used"));
    }
    let mut what = Issue::new(
        client,
        Some(&user),
        rec.scope.clone(),
        audience,
        GrantType::AuthorizationCode,
    );
    what.jti = Some(jti);
    what.refresh_token = refresh_token;
    what.nonce = rec.nonce.clone();
    what.auth_time = Some(rec.auth_time);
    what.launch = rec.launch.clone();
    issue(app, req, what).await
}
