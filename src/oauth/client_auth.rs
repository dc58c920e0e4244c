//! Client authentication at the token endpoint (RFC 6749 2.3): `client_secret_basic` or
//! `client_secret_post`, exactly one of them; public clients (no secret) name themselves
//! with `client_id` only and may not use `client_credentials`.

use crate::authn::check_client_secret;
use crate::context::App;
use crate::error::{Error, Result};
use crate::http_util::{authorization, form_decoded, Authorization, Request};
use crate::model::client::Client;
use std::collections::BTreeMap;

/// RFC 7523 2.2 and 3, SMART Backend Services: a JWT signed by one of the client's registered
/// keys (`jwks` or `jwks_uri`), `iss` = `sub` = client id, `aud` = our token endpoint or our
/// issuer identifier, `exp` at most five minutes ahead, and a `jti` never seen before
/// (remembered in the Durable Object).
async fn private_key_jwt(
    app: &App,
    req: &Request,
    params: &BTreeMap<String, String>,
    assertion: &str,
) -> Result<Client> {
    let bad = |why: &str| Error::InvalidClient(format!("client assertion refused: {why}"));
    let iss = crate::external::peek_issuer(assertion).ok_or_else(|| bad("not a JWT with iss"))?;
    if params.get("client_id").is_some_and(|c| *c != iss) {
        return Err(Error::InvalidRequest(
            "client_id does not match the assertion".into(),
        ));
    }
    let client = super::cimd::load_client(app, Some(req), &iss)
        .await?
        .ok_or_else(invalid)?;
    // RFC 7523 3: `aud` identifies the authorization server. SMART Backend Services and OIDC
    // Core 9 name the token endpoint; draft-ietf-oauth-rfc7523bis requires the issuer identifier
    // (what oauth4webapi's PrivateKeyJwt sends). Both are ours; the one the assertion names is
    // the one verified, so anything else is still "another audience". RFC 9126 2: at the PAR
    // endpoint the issuer, the token endpoint and the PAR endpoint each name us (checked below).
    let issuer = app.issuer(req);
    let endpoint = format!("{issuer}/auth/token");
    let at_par = req.uri().path().ends_with("/auth/par");
    let audience = if names_audience(assertion, &issuer) {
        &issuer
    } else {
        &endpoint
    };
    let expect = crate::jwt::Expectations {
        issuer: &iss,
        audience: (!at_par).then_some(audience.as_str()),
        typ: None,
        leeway: app.config.leeway,
        now: app.now(),
    };
    let crypto = app.platform.crypto.as_ref();
    let map = |e: crate::jwt::VerifyError| match e {
        crate::jwt::VerifyError::Backend(b) => Error::Unavailable(b.0),
        other => bad(&other.to_string()),
    };
    let claims = if let Some(jwks) = client.doc.get("jwks") {
        let keys = crate::jwt::keys::KeySet::from_jwks(jwks).map_err(Error::Internal)?;
        crate::jwt::verify(crypto, &keys, assertion, &expect)
            .await
            .map_err(map)?
    } else if let Some(url) = client
        .doc
        .get("jwks_uri")
        .and_then(serde_json::Value::as_str)
    {
        // A self-registered client's keys are fetched as its metadata document is (no
        // redirects, a size limit, no special-use hosts: src/oauth/cimd.rs).
        let own = super::register::is_self_registered(&client);
        let keys = if own {
            super::cimd::jwks_keys(app, req, url, false).await?
        } else {
            crate::external::jwks_keys(app, url, false).await?
        };
        match crate::jwt::verify(crypto, &keys, assertion, &expect).await {
            Err(crate::jwt::VerifyError::UnknownKey) => {
                let fresh = if own {
                    super::cimd::jwks_keys(app, req, url, true).await?
                } else {
                    crate::external::jwks_keys(app, url, true).await?
                };
                crate::jwt::verify(crypto, &fresh, assertion, &expect)
                    .await
                    .map_err(map)?
            }
            other => other.map_err(map)?,
        }
    } else {
        return Err(bad("the client has no registered keys (jwks or jwks_uri)"));
    };
    if at_par {
        let ours = [
            issuer.clone(),
            endpoint.clone(),
            format!("{issuer}/auth/par"),
        ];
        let names_us =
            |a: &serde_json::Value| a.as_str().is_some_and(|a| ours.iter().any(|o| o == a));
        let ok = match claims.get("aud") {
            Some(serde_json::Value::Array(list)) => list.iter().any(names_us),
            Some(a) => names_us(a),
            None => false,
        };
        if !ok {
            return Err(bad(
                "aud must be the issuer, the token endpoint or the PAR endpoint",
            ));
        }
    }
    if claims.get("sub").and_then(serde_json::Value::as_str) != Some(iss.as_str()) {
        return Err(bad("sub must equal iss (the client id)"));
    }
    let exp = claims
        .get("exp")
        .and_then(serde_json::Value::as_i64)
        .unwrap_or(0);
    if exp > app.now() + MAX_ASSERTION_LIFETIME {
        return Err(bad("exp is more than five minutes ahead"));
    }
    let jti = claims
        .get("jti")
        .and_then(serde_json::Value::as_str)
        .filter(|j| !j.is_empty())
        .ok_or_else(|| bad("jti is required"))?;
    // RFC 7523 3: a jti is accepted once. The record lives as long as the assertion could.
    let key = format!(
        "jti/{}/{}",
        crate::state::hash(&iss),
        crate::state::hash(jti)
    );
    match app
        .platform
        .state
        .cas(&key, None, Some("1"), exp + app.config.leeway)
        .await?
    {
        crate::platform::Cas::Swapped => Ok(Client {
            authenticated: true,
            ..client
        }),
        crate::platform::Cas::Conflict(_) => Err(bad("jti was already used")),
    }
}

/// Whether the (not yet verified) JWT's `aud` is, or lists, `audience`.
fn names_audience(token: &str, audience: &str) -> bool {
    let Ok(t) = jwt_compact::UntrustedToken::new(token) else {
        return false;
    };
    let Ok(claims) = t.deserialize_claims_unchecked::<serde_json::Map<String, serde_json::Value>>()
    else {
        return false;
    };
    match claims.custom.get("aud") {
        Some(serde_json::Value::String(a)) => a == audience,
        Some(serde_json::Value::Array(list)) => list.iter().any(|a| a.as_str() == Some(audience)),
        _ => false,
    }
}

fn invalid() -> Error {
    Error::InvalidClient("client authentication failed".into())
}

/// RFC 7523 2.2: the client assertion type of `private_key_jwt`.
pub const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// Longest an assertion may live: SMART Backend Services says `exp` at most five minutes ahead.
const MAX_ASSERTION_LIFETIME: i64 = 300;

pub async fn authenticate(
    app: &App,
    req: &Request,
    params: &BTreeMap<String, String>,
    confidential_only: bool,
) -> Result<Client> {
    let header = authorization(req).map_err(Error::InvalidClient)?;
    if let Some(kind) = params.get("client_assertion_type") {
        if kind != JWT_BEARER {
            return Err(Error::InvalidClient(format!(
                "unsupported client_assertion_type {kind}"
            )));
        }
        if !matches!(header, Authorization::None) || params.contains_key("client_secret") {
            return Err(Error::InvalidRequest(
                "use one client authentication method, not a client assertion and a secret".into(),
            ));
        }
        let assertion = crate::http_util::required(params, "client_assertion")?;
        return private_key_jwt(app, req, params, assertion).await;
    }
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
    // An unknown client id costs no KDF: client ids are not secrets (RFC 6749 2.2), so the
    // faster answer tells nothing, and a guesser cannot make us hash for free.
    let Some(client) = super::cimd::load_client(app, Some(req), &id).await? else {
        return Err(invalid());
    };
    match (&client.secret_hash, secrets.is_empty()) {
        // A public client: no secret stored, none sent. A client with keys (`jwks`,
        // `jwks_uri`) is confidential: it authenticates with `private_key_jwt` (above), or goes
        // without only where `secret_required: false` says so.
        (None, true)
            if !confidential_only
                && (!client.is_confidential() || secret_optional(&client, params)) =>
        {
            Ok(client)
        }
        (None, _) => Err(invalid()),
        // Aidbox's `auth.<flow>.secret_required: false`: the token endpoint without the
        // secret, for that flow only (never client_credentials, see `SECRET_OPTIONAL_FLOWS`).
        // A refresh is let through here and checked against its family's flow in
        // `refresh::grant`; the client stays `authenticated: false`.
        (Some(_), true) if !confidential_only && secret_optional(&client, params) => Ok(client),
        (Some(_), true) => Err(invalid()),
        // Throttled per client id and per address, reserved before the KDF.
        (Some(hash), false) => {
            if check_client_secret(app, req, &client, hash, &secrets).await? {
                if crate::secret::is_imported_hash(hash) {
                    upgrade_client_hash(app, &client, hash, &secrets).await;
                }
                Ok(Client {
                    authenticated: true,
                    ..client
                })
            } else {
                Err(invalid())
            }
        }
    }
}

/// May this token request go without the client's secret (`secret_required: false`)?
fn secret_optional(client: &Client, params: &BTreeMap<String, String>) -> bool {
    use crate::model::client::SECRET_OPTIONAL_FLOWS;
    match params.get("grant_type").map(String::as_str) {
        Some("refresh_token") => SECRET_OPTIONAL_FLOWS
            .iter()
            .any(|f| !client.requires_secret(f)),
        Some(g) => {
            let flow = if g == "code" { "authorization_code" } else { g };
            SECRET_OPTIONAL_FLOWS.contains(&flow) && !client.requires_secret(flow)
        }
        None => false,
    }
}

/// A secret imported from Aidbox (`$sha256$` or `$s0$`) just matched: store it under our KDF
/// instead (docs/reference.md "Credentials exported from Aidbox"). Which candidate spelling matched is asked again of the
/// verified-secret cache, so only a non-matching spelling before it costs a second check.
async fn upgrade_client_hash(app: &App, client: &Client, stored: &str, secrets: &[String]) {
    for s in secrets {
        match crate::authn::check_secret(app, "Client", &client.id, s, stored).await {
            Ok(true) => {
                super::password::upgrade_imported_hash(
                    app,
                    crate::model::ResourceType::Client,
                    &client.id,
                    stored,
                    s,
                )
                .await;
                return;
            }
            Ok(false) => continue,
            Err(_) => return,
        }
    }
}
