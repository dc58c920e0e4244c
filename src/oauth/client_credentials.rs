//! RFC 6749 section 4.4: the client credentials grant. The client acts on its own behalf;
//! `sub` is the client.

use super::{client_ceiling, issue, refresh, token_audience, GrantType, Issue};
use crate::context::App;
use crate::error::Result;
use crate::http_util::{Request, Response};
use crate::model::client::Client;
use std::collections::BTreeMap;

pub async fn grant(
    app: &App,
    req: &Request,
    client: &Client,
    params: &BTreeMap<String, String>,
) -> Result<Response> {
    let scope = client_ceiling(
        client,
        GrantType::ClientCredentials,
        params.get("scope").map(String::as_str),
    )?;
    let audience = token_audience(app, req, client, params, "client_credentials")?;
    let mut what = Issue::new(client, None, scope, audience, GrantType::ClientCredentials);
    // Aidbox's `auth.client_credentials.refresh_token: true` (or `grant_types` listing
    // `refresh_token`): a refresh token for the client itself; each refresh re-authenticates it.
    if refresh::wanted(client, "client_credentials", what.scope.as_deref()) {
        let jti = crate::state::random_id(app);
        let exp = app.now() + client.access_token_lifetime("client_credentials");
        what.refresh_token = Some(
            refresh::start_family(
                app,
                refresh::NewFamily {
                    client,
                    credentials: crate::model::generation_tag(Some(&client.doc), None),
                    user_id: None,
                    scope: what.scope.as_deref(),
                    audience: &what.audience,
                    grant: GrantType::ClientCredentials,
                    auth_time: None,
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
