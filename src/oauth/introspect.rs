//! RFC 7662: token introspection, for authenticated confidential clients (resource servers).
//! Access tokens: any authenticated client may ask. Refresh tokens: only their own client.
//! Anything not live answers `{"active": false}` and nothing else.

use super::{client_auth, refresh};
use crate::app::App;
use crate::authn::authenticate_bearer;
use crate::error::{Error, Result};
use crate::http_util::{json_response, no_store, parse_params, Request, Response};
use serde_json::{json, Value};

pub async fn handle(app: &App, req: &Request) -> Result<Response> {
    let params = parse_params(req)?;
    let client = client_auth::authenticate(app, req, &params, true).await?;
    let token = crate::http_util::required(&params, "token")?;
    let inactive = || Ok(no_store(json_response(200, &json!({"active": false}))));
    if params.get("token_type_hint").map(String::as_str) != Some("refresh_token")
        && token.matches('.').count() == 2
    {
        return match authenticate_bearer(app, req, token).await {
            Ok(who) => {
                let mut body = json!({"active": true, "token_type": "Bearer"});
                if let Some(claims) = who.jwt {
                    for k in [
                        "scope",
                        "client_id",
                        "sub",
                        "exp",
                        "iat",
                        "nbf",
                        "iss",
                        "aud",
                        "jti",
                    ] {
                        if let Some(v) = claims.get(k) {
                            body[k] = v.clone();
                        }
                    }
                }
                if let Some(u) = who.user {
                    body["username"] = u.doc.get("email").cloned().unwrap_or(Value::String(u.id));
                }
                Ok(no_store(json_response(200, &body)))
            }
            Err(Error::Unavailable(r)) => Err(Error::Unavailable(r)),
            Err(_) => inactive(),
        };
    }
    match refresh::live_family(app, token, &client.id).await? {
        Some((_, fam)) => {
            let mut body =
                json!({"active": true, "token_type": "refresh_token", "client_id": fam.client_id});
            if let Some(s) = fam.scope {
                body["scope"] = json!(s);
            }
            if let Some(u) = fam.user_id {
                body["sub"] = json!(u);
            }
            Ok(no_store(json_response(200, &body)))
        }
        None => inactive(),
    }
}
