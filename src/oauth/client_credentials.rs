//! RFC 6749 section 4.4: the client credentials grant. The client acts on its own behalf;
//! `sub` is the client.

use super::{client_ceiling, issue, token_audience, GrantType, Issue};
use crate::app::App;
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
    let audience = token_audience(app, req, client, params)?;
    issue(
        app,
        req,
        Issue::new(client, None, scope, audience, GrantType::ClientCredentials),
    )
    .await
}
