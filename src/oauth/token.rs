//! The token endpoint, `POST /auth/token` (RFC 6749 3.2): parses the request, authenticates the
//! client, and dispatches on `grant_type`. Form or JSON body, as Aidbox accepts.

use super::{authorization_code, client_auth, client_credentials, password, refresh, GrantType};
use crate::context::App;
use crate::error::{Error, Result};
use crate::http_util::{parse_params, Request, Response};

pub async fn handle(app: &App, req: &Request) -> Result<Response> {
    let params = parse_params(req)?;
    let grant = crate::http_util::required(&params, "grant_type")?;
    let grant = GrantType::parse(grant)?;
    let confidential_only = grant == GrantType::ClientCredentials;
    let mut client = client_auth::authenticate(app, req, &params, confidential_only).await?;
    // RFC 9449 5: a DPoP proof binds what this request issues to its key.
    client.dpop_jkt = super::dpop::at_token_endpoint(app, req, &client).await?;
    // Refresh tokens are issued per flow (`auth.<flow>.refresh_token`); the family knows its client.
    if grant != GrantType::RefreshToken && !client.allows_grant(grant.name()) {
        return Err(Error::UnauthorizedClient(format!(
            "this client may not use the {} grant (see its grant_types)",
            grant.name()
        )));
    }
    let answer = match grant {
        GrantType::ClientCredentials => client_credentials::grant(app, req, &client, &params).await,
        GrantType::Password => password::grant(app, req, &client, &params).await,
        GrantType::AuthorizationCode => authorization_code::grant(app, req, &client, &params).await,
        GrantType::RefreshToken => refresh::grant(app, req, &client, &params).await,
        GrantType::Implicit => Err(Error::UnsupportedGrantType(
            "implicit is not a token endpoint grant".into(),
        )),
    };
    // RFC 9449 8.2: a fresh nonce with each answer when nonces are on.
    match (answer, app.config.dpop_nonce) {
        (Ok(mut resp), true) => {
            if let Some(n) =
                super::dpop::current_nonce(app).and_then(|n| http::HeaderValue::from_str(&n).ok())
            {
                resp.headers_mut().insert("dpop-nonce", n);
            }
            Ok(resp)
        }
        (answer, _) => answer,
    }
}
