//! OIDC Core 5.3: the UserInfo endpoint. An access token of ours with scope `openid`, as a bearer
//! token or DPoP-bound with its proof.

use super::{has_scope, id_token::user_claims};
use crate::authn::authenticate;
use crate::context::App;
use crate::error::{Error, Result};
use crate::http_util::{json_response, no_store, Request, Response};
use serde_json::Value;

pub async fn handle(app: &App, req: &Request) -> Result<Response> {
    // A bearer token (RFC 6750), or a DPoP-bound one with its proof (RFC 9449 7): the proof is
    // checked by `authenticate` as on the protected API, for this URL.
    let scheme = |h: &str, s: &str| {
        h.len() > s.len() && h.get(..s.len()).is_some_and(|p| p.eq_ignore_ascii_case(s))
    };
    if !crate::http_util::header(req, "authorization")
        .is_some_and(|h| scheme(h, "bearer ") || scheme(h, "dpop "))
    {
        return Err(Error::MissingCredentials);
    }
    let who = authenticate(app, req)
        .await?
        .ok_or(Error::MissingCredentials)?;
    let Some(user) = who.user.as_ref() else {
        return Err(Error::InvalidToken(
            "the token does not belong to a user".into(),
        ));
    };
    if !has_scope(who.scope(), "openid") {
        return Err(Error::Forbidden("the token lacks the openid scope".into()));
    }
    Ok(no_store(json_response(
        200,
        &Value::Object(user_claims(user, who.scope())),
    )))
}
