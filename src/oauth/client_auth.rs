//! Client authentication at the token endpoint (RFC 6749 2.3): `client_secret_basic` or
//! `client_secret_post`, exactly one of them; public clients (no secret) name themselves
//! with `client_id` only and may not use `client_credentials`.

use crate::app::App;
use crate::authn::{check_secret, load_client};
use crate::error::{Error, Result};
use crate::http_util::{authorization, form_decoded, Authorization, Request};
use crate::model::client::Client;
use std::collections::BTreeMap;

fn invalid() -> Error {
    Error::InvalidClient("client authentication failed".into())
}

pub async fn authenticate(
    app: &App,
    req: &Request,
    params: &BTreeMap<String, String>,
    confidential_only: bool,
) -> Result<Client> {
    let header = authorization(req).map_err(Error::InvalidClient)?;
    let body_id = params.get("client_id");
    let body_secret = params.get("client_secret");
    // (id, secret candidates): Basic values may or may not be form-urlencoded (RFC 6749 2.3.1).
    let (id, secrets): (String, Vec<String>) = match header {
        Authorization::Basic(c) => {
            if body_secret.is_some() {
                return Err(Error::InvalidRequest(
                    "use one client authentication method, not Basic and client_secret both".into(),
                ));
            }
            let mut ids = vec![c.id.clone()];
            ids.extend(form_decoded(&c.id));
            let id = match body_id {
                Some(b) if !ids.contains(b) => {
                    return Err(Error::InvalidRequest(
                        "client_id does not match the Basic credentials".into(),
                    ))
                }
                Some(b) => b.clone(),
                None => ids.pop().unwrap_or_default(),
            };
            let mut secrets = vec![c.secret.expose().to_string()];
            secrets.extend(form_decoded(c.secret.expose()));
            (id, secrets)
        }
        Authorization::Bearer(_) => {
            return Err(Error::InvalidClient(
                "the token endpoint takes client credentials, not a bearer token".into(),
            ))
        }
        Authorization::None => match (body_id, body_secret) {
            (Some(id), Some(s)) => (id.clone(), vec![s.clone()]),
            (Some(id), None) => (id.clone(), vec![]),
            (None, _) => return Err(Error::InvalidClient(
                "client authentication is required (Basic header or client_id and client_secret)"
                    .into(),
            )),
        },
    };
    let Some(client) = load_client(app, &id).await? else {
        if let Some(s) = secrets.first() {
            crate::secret::burn_check(
                app.platform.crypto.as_ref(),
                s,
                app.config.pbkdf2_iterations,
            )
            .await;
        }
        return Err(invalid());
    };
    match (&client.secret_hash, secrets.is_empty()) {
        // A public client: no secret stored, none sent.
        (None, true) if !confidential_only => Ok(client),
        (None, _) => Err(invalid()),
        (Some(_), true) => Err(invalid()),
        (Some(hash), false) => {
            for s in &secrets {
                if check_secret(app, "Client", &client.id, s, hash).await? {
                    return Ok(client);
                }
            }
            Err(invalid())
        }
    }
}
