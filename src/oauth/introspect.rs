//! RFC 7662: token introspection, for authenticated confidential clients (resource servers).
//! Access tokens: any authenticated client may ask, for every audience we issue tokens for (the
//! token endpoint's `audience`/`resource`), not only our own API. Refresh tokens: only their own
//! client. Only tokens we issued are introspected: another issuer's token (TokenIntrospector) or
//! an ID token is `{"active": false}`, as is anything not live, and nothing else is said.

use super::{client_auth, has_scope, refresh};
use crate::authn::authenticate_own_any_audience;
use crate::context::App;
use crate::error::{Error, Result};
use crate::http_util::{json_response, no_store, parse_params, Request, Response};
use serde_json::{json, Value};

/// Claims of an access token repeated in the answer (RFC 7662 2.2; `patient` and `encounter`
/// as SMART App Launch 2 "Token Introspection" asks).
const ANSWERED_CLAIMS: [&str; 12] = [
    "scope",
    "client_id",
    "sub",
    "exp",
    "iat",
    "nbf",
    "iss",
    "aud",
    "jti",
    "patient",
    "encounter",
    // RFC 9449 6.2: the key a DPoP-bound token is bound to.
    "cnf",
];

pub async fn handle(app: &App, req: &Request) -> Result<Response> {
    let params = parse_params(req)?;
    let client = client_auth::authenticate(app, req, &params, true).await?;
    let token = crate::http_util::required(&params, "token")?;
    let inactive = || Ok(no_store(json_response(200, &json!({"active": false}))));
    // Our refresh tokens never have three parts, so the shape decides and `token_type_hint` is
    // only a hint (RFC 7662 2.1: a wrong hint must not make a live token inactive).
    if token.matches('.').count() == 2 {
        return match authenticate_own_any_audience(app, req, token).await {
            Ok(who) => {
                let claims = who.jwt.unwrap_or_default();
                let kind = if claims.contains_key("cnf") {
                    "DPoP"
                } else {
                    "Bearer"
                };
                let mut body = json!({"active": true, "token_type": kind});
                for k in ANSWERED_CLAIMS {
                    if let Some(v) = claims.get(k) {
                        body[k] = v.clone();
                    }
                }
                if let Some(u) = who.user {
                    // SMART: `fhirUser` when that scope was granted.
                    let scope = claims.get("scope").and_then(Value::as_str);
                    if has_scope(scope, "fhirUser") {
                        if let Some(r) = super::launch::fhir_user(&u) {
                            body["fhirUser"] = json!(match &who.client {
                                Some(c) => c.fhir_user_url(&app.issuer(req), r),
                                None => r,
                            });
                        }
                    }
                    body["username"] = u.doc.get("email").cloned().unwrap_or(Value::String(u.id));
                }
                Ok(no_store(json_response(200, &body)))
            }
            Err(Error::Unavailable(r)) => Err(Error::Unavailable(r)),
            Err(_) => inactive(),
        };
    }
    let family = match refresh::live_family(app, token, &client.id).await? {
        Some((id, fam)) if still_bound(app, &client, &fam).await? => Some((id, fam)),
        _ => None,
    };
    match family {
        Some((_, fam)) => {
            let mut body = json!({"active": true, "token_type": "refresh_token",
                                  "client_id": fam.client_id, "aud": fam.audience});
            if let Some(s) = fam.scope {
                body["scope"] = json!(s);
            }
            if let Some(u) = fam.user_id {
                body["sub"] = json!(u);
            }
            if let Some(p) = fam.launch.patient {
                body["patient"] = json!(p);
            }
            if let Some(e) = fam.launch.encounter {
                body["encounter"] = json!(e);
            }
            Ok(no_store(json_response(200, &body)))
        }
        None => inactive(),
    }
}

/// A refresh family is answered active only while its user is still active and its client's and
/// user's credential generations are those it was issued under (a refresh would fail otherwise:
/// src/oauth/refresh.rs).
async fn still_bound(
    app: &App,
    client: &crate::model::client::Client,
    fam: &crate::state::Family,
) -> Result<bool> {
    let user = match &fam.user_id {
        Some(id) => match crate::authn::load_user(app, id).await? {
            Some(u) => Some(u),
            None => return Ok(false),
        },
        None => None,
    };
    Ok(
        crate::model::generation_tag(Some(&client.doc), user.as_ref().map(|u| &u.doc))
            == fam.credentials,
    )
}
