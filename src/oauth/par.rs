//! Pushed authorization requests (RFC 9126), `POST /auth/par`.
//!
//! The client authenticates as at the token endpoint ([`super::client_auth::authenticate`]:
//! Basic, `client_secret_post`, `private_key_jwt`, or a public client's `client_id` alone) and
//! pushes the parameters of an authorization request. They are validated as the authorization
//! endpoint validates them (client, redirect URI, response type, scope, PKCE) and refused here
//! with an RFC 6749 5.2 error body, before any browser is involved. Accepted, they are stored in
//! the state store under `par/{sha256(request_uri)}` and answered with a `request_uri` that
//! lives [`PAR_TTL`] seconds (RFC 9126 2.2).
//!
//! `GET /auth/authorize?client_id=..&request_uri=..` then uses the pushed parameters only
//! (RFC 9126 4). Single use: the first time the user agent brings the request_uri, the record
//! is marked started and kept [`INTERACTION_TTL`] seconds so the user can sign in and consent
//! (the login and consent pages re-send `client_id` + `request_uri`, re-read here each time);
//! the first code or token issued for it marks it used, atomically (compare-and-swap), so a
//! request_uri never yields a second code. A reload before that finds the same request (RFC
//! 9126 4 allows it). Request objects (`request`, JAR) are not supported.

use super::authorize::{self, Refusal};
use crate::context::App;
use crate::error::{Error, Result};
use crate::http_util::{json_response, no_store, parse_params, Request, Response};
use crate::state;
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::collections::BTreeMap;

/// RFC 9126 2.2: the `request_uri` prefix.
pub const REQUEST_URI_PREFIX: &str = "urn:ietf:params:oauth:request_uri:";

/// Seconds a pushed request waits for the user agent to bring it to the authorization
/// endpoint (`expires_in`).
pub const PAR_TTL: i64 = 60;

/// Seconds it lives once the user agent brought it: time to sign in and consent.
pub const INTERACTION_TTL: i64 = 600;

/// A pushed authorization request.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Pushed {
    pub client_id: String,
    /// The pushed authorization parameters, form-encoded (client authentication removed).
    pub params: String,
    /// The user agent has brought it to the authorization endpoint.
    #[serde(default)]
    pub started: bool,
    /// A code or token was issued for it.
    #[serde(default)]
    pub used: bool,
}

pub fn par_key(request_uri: &str) -> String {
    format!("par/{}", state::hash(request_uri))
}

/// Client authentication parameters: checked, never pushed.
const AUTH_PARAMS: [&str; 3] = ["client_secret", "client_assertion", "client_assertion_type"];

fn oauth_error(status: u16, error: &str, description: &str) -> Response {
    no_store(json_response(
        status,
        &json!({"error": error, "error_description": description}),
    ))
}

/// `POST /auth/par`.
pub async fn handle(app: &App, req: &Request) -> Result<Response> {
    let params = parse_params(req)?;
    // RFC 9126 3: request objects (JAR) are not supported here.
    if params.contains_key("request") {
        return Ok(oauth_error(
            400,
            "request_not_supported",
            "request objects (the request parameter) are not supported; push the parameters \
             themselves",
        ));
    }
    // RFC 9126 2.1: a pushed request cannot refer to another one.
    if params.contains_key("request_uri") {
        return Err(Error::InvalidRequest(
            "request_uri must not be pushed (RFC 9126 2.1)".into(),
        ));
    }
    // Client authentication as at the token endpoint; a client that may go without its secret
    // in the code flow (`secret_required: false`) may push without it too.
    let mut auth = params.clone();
    auth.insert("grant_type".into(), "authorization_code".into());
    let client = super::client_auth::authenticate(app, req, &auth, false).await?;
    if params.get("client_id").is_some_and(|c| *c != client.id) {
        return Err(Error::InvalidRequest(
            "client_id does not match the authenticated client".into(),
        ));
    }
    let mut pushed: BTreeMap<String, String> = params
        .into_iter()
        .filter(|(k, _)| !AUTH_PARAMS.contains(&k.as_str()))
        .collect();
    pushed.insert("client_id".into(), client.id.clone());
    // RFC 9449 10.1: a DPoP proof sent with the pushed request binds the code to its key, as
    // `dpop_jkt` does; both given, they must name the same key.
    if let Some(proof) =
        super::dpop::verify_request(app, req, super::dpop::Place::Token, None, None).await?
    {
        match pushed.get("dpop_jkt") {
            Some(j) if *j != proof.jkt => {
                return Err(super::dpop::refuse(
                    super::dpop::Place::Token,
                    "dpop_jkt is not the thumbprint of the DPoP proof's key",
                ))
            }
            _ => {
                pushed.insert("dpop_jkt".into(), proof.jkt);
            }
        }
    }
    let encoded = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pushed.iter())
        .finish();
    // RFC 9126 2.1: validated as the authorization endpoint would, refused now.
    match authorize::validate(app, req, pushed, &encoded, None, true).await {
        Ok(_) => {}
        Err(Refusal::Local(e)) => return Err(e),
        Err(Refusal::Redirect {
            error, description, ..
        }) => return Ok(oauth_error(400, error, &description)),
    }
    let request_uri = format!("{REQUEST_URI_PREFIX}{}", state::random_token(app));
    let rec = Pushed {
        client_id: client.id.clone(),
        params: encoded,
        started: false,
        used: false,
    };
    state::create(app, &par_key(&request_uri), &rec, app.now() + PAR_TTL).await?;
    Ok(no_store(json_response(
        201,
        &json!({"request_uri": request_uri, "expires_in": PAR_TTL}),
    )))
}

fn refused(why: &str) -> Refusal {
    Refusal::Local(Error::InvalidRequest(format!("invalid_request_uri: {why}")))
}

/// The pushed parameters of `request_uri` for `client_id` (RFC 9126 4), and the record's store
/// key. Refused (a local error page: nothing here is trusted yet) when unknown, expired, used,
/// or another client's. The first use marks it started and gives it [`INTERACTION_TTL`].
pub async fn resolve(
    app: &App,
    client_id: Option<&String>,
    request_uri: &str,
) -> std::result::Result<(BTreeMap<String, String>, String), Refusal> {
    let Some(client_id) = client_id else {
        return Err(Refusal::Local(Error::InvalidRequest(
            "client_id is missing".into(),
        )));
    };
    if !request_uri.starts_with(REQUEST_URI_PREFIX) || request_uri.len() > 200 {
        return Err(refused("not a request_uri of this server"));
    }
    let key = par_key(request_uri);
    let mut current = state::read::<Pushed>(app, &key).await?;
    loop {
        let Some((rec, raw)) = current else {
            return Err(refused("request_uri is unknown or expired"));
        };
        // Another client's request_uri tells the caller nothing more than an unknown one.
        if rec.client_id != *client_id {
            return Err(refused("request_uri is unknown or expired"));
        }
        if rec.used {
            return Err(refused("request_uri was already used"));
        }
        if !rec.started {
            let mut started = rec.clone();
            started.started = true;
            if !state::swap(app, &key, &raw, &started, app.now() + INTERACTION_TTL).await? {
                current = state::read::<Pushed>(app, &key).await?;
                continue;
            }
        }
        let params = crate::http_util::parse_form(rec.params.as_bytes())?;
        return Ok((params, key));
    }
}

/// Marks a pushed request used, once: true for the one caller that did, false if it was
/// already used or expired.
pub async fn consume(app: &App, key: &str) -> Result<bool> {
    let Some((rec, raw)) = state::read::<Pushed>(app, key).await? else {
        return Ok(false);
    };
    if rec.used {
        return Ok(false);
    }
    let mut used = rec;
    used.used = true;
    // Kept a while, so a replay is told "already used" rather than "unknown".
    state::swap(app, key, &raw, &used, app.now() + INTERACTION_TTL).await
}
