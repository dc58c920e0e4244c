//! RFC 7009: token revocation. A refresh token revokes its whole family (and the access tokens
//! it issued) at once; an access token, of whatever audience we issued it for, is refused by the
//! authorizer and introspected as inactive from then on. Tokens of other clients or issuers,
//! unknown or malformed tokens: 200 and nothing happens (RFC 7009 2.2). So do, for a client that
//! did not authenticate although it has a secret (`secret_required: false`), refresh tokens of a
//! flow that requires the secret and access tokens.

use super::refresh;
use crate::authn::authenticate_own_any_audience;
use crate::context::App;
use crate::error::{Error, Result};
use crate::http_util::{no_store, parse_params, Request, Response};
use crate::state;
use serde_json::Value;

pub async fn handle(app: &App, req: &Request) -> Result<Response> {
    let params = parse_params(req)?;
    let client = refresh::any_client(app, req, &params).await?;
    let token = crate::http_util::required(&params, "token")?;
    // Any token of the family, the newest or an earlier one, revokes it all.
    // A client let in without its secret (`secret_required: false`) revokes only what it could
    // have used without it: families of such a flow, no access tokens (their flow is unknown).
    if let Some((family_id, fam, _)) = refresh::genuine_family(app, token, &client.id).await? {
        if refresh::may_touch(&client, &fam.grant) {
            state::revoke_family(app, &family_id).await?;
        }
    } else if token.matches('.').count() == 2 && (client.authenticated || !client.is_confidential())
    {
        match authenticate_own_any_audience(app, req, token).await {
            Ok(who) => {
                let claims = who.jwt.unwrap_or_default();
                let owner = claims.get("client_id").and_then(Value::as_str);
                let jti = claims.get("jti").and_then(Value::as_str);
                let exp = claims.get("exp").and_then(Value::as_i64);
                if let (Some(o), Some(j), Some(e)) = (owner, jti, exp) {
                    if o == client.id {
                        state::revoke_access_token(app, j, e).await?;
                    }
                }
            }
            Err(Error::Unavailable(r)) => return Err(Error::Unavailable(r)),
            Err(_) => {}
        }
    }
    let mut resp = http::Response::new(Vec::new());
    *resp.status_mut() = http::StatusCode::OK;
    Ok(no_store(resp))
}
