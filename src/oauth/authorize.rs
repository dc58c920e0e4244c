//! The authorization endpoint, `GET /auth/authorize` (RFC 6749 3.1, 4.1.1, 4.2.1).
//!
//! Errors are redirected to the client only after `client_id` and `redirect_uri` both check
//! out; before that they are shown as a local error page (RFC 6749 4.1.2.1, DESIGN.md rule 4).
//! The request is re-validated at every step of the interaction (login, consent) from its query
//! string, so nothing about a pending request is stored.

use super::{client_ceiling, pkce, GrantType, Issue};
use crate::context::App;
use crate::error::{Error, Result};
use crate::http_util::{parse_form, Request, Response};
use crate::model::client::Client;
use crate::model::user::User;
use crate::state::{self, code_key, random_token, CodeRecord, CODE_TTL};
use std::collections::BTreeMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseType {
    Code,
    Token,
}

/// A validated authorization request.
#[derive(Debug, Clone)]
pub struct AuthzRequest {
    pub response_type: ResponseType,
    pub client: Client,
    pub redirect_uri: String,
    pub redirect_uri_given: bool,
    pub scope: Option<String>,
    pub state: Option<String>,
    pub nonce: Option<String>,
    pub code_challenge: Option<String>,
    /// RFC 9449 10: the DPoP key thumbprint the code is bound to (`dpop_jkt`).
    pub dpop_jkt: Option<String>,
    /// SMART EHR launch: the context of the `launch` parameter.
    pub launch: Option<super::launch::LaunchContext>,
    /// The `launch` parameter that gave [`Self::launch`]; used up when a code is issued.
    pub launch_id: Option<String>,
    /// The query string it came from, to carry through the login and consent pages.
    pub query: String,
    /// RFC 8707: the canonical `resource` asked for, the token's `aud`.
    pub resource: Option<String>,
    /// The store key of the pushed request it came from (RFC 9126), used up when a code or
    /// token is issued ([`super::par::consume`]).
    pub par: Option<String>,
}

/// Why a request was refused, and how to tell.
#[derive(Debug)]
pub enum Refusal {
    /// Render locally: the client or the redirect URI cannot be trusted.
    Local(Error),
    /// Redirect to the client with `error` (RFC 6749 4.1.2.1).
    Redirect {
        to: String,
        fragment: bool,
        error: &'static str,
        description: String,
        state: Option<String>,
    },
}

impl From<Error> for Refusal {
    fn from(e: Error) -> Self {
        Refusal::Local(e)
    }
}

/// The registered redirect URIs of a flow (`auth.<flow>.redirect_uri`, a string or a list);
/// the built-in console client's is its path on this issuer.
fn registered(client: &Client, flow: &str, issuer: &str) -> Vec<String> {
    if client.id == crate::model::CONSOLE_CLIENT_ID {
        return if flow == "authorization_code" {
            vec![format!("{issuer}{}", crate::model::CONSOLE_REDIRECT_PATH)]
        } else {
            Vec::new()
        };
    }
    crate::model::client::redirect_uris(client.flow_setting(flow, "redirect_uri"))
        .into_iter()
        .map(str::to_string)
        .collect()
}

/// Validates an authorization request from its query string. With `request_uri` (RFC 9126 4)
/// the pushed parameters are used and every other one but `client_id` is ignored.
pub async fn parse(
    app: &App,
    req: &Request,
    query: &str,
) -> std::result::Result<AuthzRequest, Refusal> {
    let p: BTreeMap<String, String> = parse_form(query.as_bytes()).map_err(Refusal::Local)?;
    match p.get("request_uri") {
        Some(uri) => {
            let (pushed, key) = super::par::resolve(app, p.get("client_id"), uri).await?;
            validate(app, req, pushed, query, Some(key), false).await
        }
        None => validate(app, req, p, query, None, false).await,
    }
}

/// Validates the parameters of an authorization request: given at the authorization endpoint,
/// pushed earlier (`par`: the pushed request's store key), or being pushed now (`pushing`).
pub async fn validate(
    app: &App,
    req: &Request,
    p: BTreeMap<String, String>,
    query: &str,
    par: Option<String>,
    pushing: bool,
) -> std::result::Result<AuthzRequest, Refusal> {
    let client_id = p
        .get("client_id")
        .ok_or_else(|| Error::InvalidRequest("client_id is missing".into()))?;
    let client = super::cimd::load_client(app, Some(req), client_id)
        .await?
        .ok_or_else(|| {
            Error::InvalidRequest(if client_id == crate::model::CONSOLE_CLIENT_ID {
                "the console is off: a stored Client/console predates the built-in console \
                 client; review the AccessPolicies linked to Client/console, then \
                 DELETE /Client/console"
                    .into()
            } else {
                "unknown client".into()
            })
        })?;
    // RFC 9126 5 and 6: a client registered with require_pushed_authorization_requests sends
    // its requests only through the PAR endpoint.
    if par.is_none()
        && !pushing
        && client.doc.get("require_pushed_authorization_requests")
            == Some(&serde_json::Value::Bool(true))
    {
        return Err(Refusal::Local(Error::InvalidRequest(
            "this client must push its authorization requests to /auth/par (RFC 9126) and \
             send only client_id and request_uri here"
                .into(),
        )));
    }
    let response_type = match p.get("response_type").map(String::as_str) {
        Some("code") => Some(ResponseType::Code),
        Some("token") => Some(ResponseType::Token),
        _ => None,
    };
    let flows: &[&str] = match response_type {
        Some(ResponseType::Code) => &["authorization_code"],
        Some(ResponseType::Token) => &["implicit"],
        None => &["authorization_code", "implicit"],
    };
    let issuer = app.issuer(req);
    let candidates: Vec<String> = flows
        .iter()
        .flat_map(|f| registered(&client, f, &issuer))
        .collect();
    // RFC 6749 3.1.2.3: exact string comparison with a registered URI, but a loopback IP
    // redirect on any port (RFC 8252 7.3; the console's own URI stays exact); without the
    // parameter, the single registered one. The redirect used is the one asked for.
    let console = client.id == crate::model::CONSOLE_CLIENT_ID;
    let matches = |c: &String, r: &String| {
        if console {
            c == r
        } else {
            crate::model::client::redirect_matches(c, r)
        }
    };
    let (redirect_uri, given) = match p.get("redirect_uri") {
        Some(r) if candidates.iter().any(|c| matches(c, r)) => (r.clone(), true),
        Some(_) => {
            return Err(Refusal::Local(Error::InvalidRequest(
                "redirect_uri is not registered for this client".into(),
            )))
        }
        None if candidates.len() == 1 => (candidates[0].clone(), false),
        None => {
            return Err(Refusal::Local(Error::InvalidRequest(
                "redirect_uri is missing and the client has no single registered one".into(),
            )))
        }
    };
    let state = p.get("state").cloned();
    let fragment = response_type == Some(ResponseType::Token);
    let refuse = |error: &'static str, description: String| Refusal::Redirect {
        to: redirect_uri.clone(),
        fragment,
        error,
        description,
        state: state.clone(),
    };
    let Some(response_type) = response_type else {
        return Err(refuse(
            "unsupported_response_type",
            "response_type must be code or token".into(),
        ));
    };
    let grant = match response_type {
        ResponseType::Code => "authorization_code",
        ResponseType::Token => "implicit",
    };
    if !client.allows_grant(grant) {
        return Err(refuse(
            "unauthorized_client",
            format!("this client may not use the {grant} flow"),
        ));
    }
    // RFC 8252 8.1: a native app's redirect (private-use scheme, or loopback on a port the app
    // was given) can be caught by another app on the device, so only a PKCE-bound code may go
    // there; the implicit flow (no PKCE possible) is refused for private-use schemes. A loopback
    // redirect registered exactly, port included, is a web server on that machine as any other
    // (a confidential web app in development, the Aidbox tutorial's): it is held to PKCE only as
    // any client is (public, `pkce: true`). (Loopback implicit stays, as Aidbox's tutorials use
    // it, see docs/native-apps.md.)
    let exact = candidates.contains(&redirect_uri);
    let native = crate::model::client::is_private_use(&redirect_uri)
        || (crate::model::client::is_loopback(&redirect_uri) && !exact);
    if response_type == ResponseType::Token && crate::model::client::is_private_use(&redirect_uri) {
        return Err(refuse(
            "unsupported_response_type",
            "a private-use scheme redirect takes the code flow with PKCE (RFC 8252 8.1)".into(),
        ));
    }
    // RFC 9449 5.2 / 10: the implicit flow's token cannot be bound to a key (no token request,
    // no proof), so a client registered for DPoP-bound tokens, or a request naming a key
    // (`dpop_jkt`), never gets one there: it would be a plain bearer token.
    if response_type == ResponseType::Token {
        if super::dpop::required_by(&client) {
            return Err(refuse(
                "unsupported_response_type",
                "this client's tokens are DPoP-bound (dpop_bound_access_tokens): use the code \
                 flow"
                    .into(),
            ));
        }
        if p.contains_key("dpop_jkt") {
            return Err(refuse(
                "invalid_request",
                "dpop_jkt needs the code flow: an implicit token cannot be bound to a key".into(),
            ));
        }
    }
    let grant_type = match response_type {
        ResponseType::Code => GrantType::AuthorizationCode,
        ResponseType::Token => GrantType::Implicit,
    };
    let scope = client_ceiling(&client, grant_type, p.get("scope").map(String::as_str))
        .map_err(|e| refuse("invalid_scope", scope_error(e)))?;
    let mut code_challenge = None;
    if response_type == ResponseType::Code {
        let method = p.get("code_challenge_method").map(String::as_str);
        match (p.get("code_challenge"), method) {
            (Some(c), Some("S256") | None) if pkce::valid_verifier_or_challenge(c) => {
                code_challenge = Some(c.clone())
            }
            (Some(_), Some("S256") | None) => {
                return Err(refuse(
                    "invalid_request",
                    "code_challenge is malformed".into(),
                ))
            }
            (_, Some("plain")) => {
                return Err(refuse(
                    "invalid_request",
                    "code_challenge_method plain is not allowed; use S256".into(),
                ))
            }
            (_, Some(_)) => {
                return Err(refuse(
                    "invalid_request",
                    "code_challenge_method must be S256".into(),
                ))
            }
            (None, None) => {}
        }
        // A client that may redeem its code without a secret (public, or secret_required
        // false) must use PKCE.
        let pkce_required = client.secret_hash.is_none()
            || !client.requires_secret("authorization_code")
            || client
                .flow_setting("authorization_code", "pkce")
                .and_then(serde_json::Value::as_bool)
                .unwrap_or(false);
        // SMART App Launch 2.x: PKCE S256 is mandatory for SMART apps; RFC 8252 8.1 for
        // native-app redirects.
        let pkce_required = pkce_required || client.is_smart_app() || native;
        if pkce_required && code_challenge.is_none() {
            return Err(refuse(
                "invalid_request",
                "PKCE (code_challenge with S256) is required for this client and redirect URI"
                    .into(),
            ));
        }
    }
    // RFC 9449 10: `dpop_jkt` binds the code to a DPoP key (a SHA-256 thumbprint, base64url).
    let dpop_jkt = match p.get("dpop_jkt") {
        Some(j) if j.len() == 43 && crate::http_util::b64url_decode(j).is_some() => Some(j.clone()),
        Some(_) => {
            return Err(refuse(
                "invalid_request",
                "dpop_jkt must be a base64url SHA-256 JWK thumbprint".into(),
            ))
        }
        None => None,
    };
    let mut launch = None;
    if client.is_smart_app() {
        // SMART: `aud` names the FHIR server the app wants; it must be this client's.
        let bases = client.fhir_bases(&app.issuer(req));
        match p.get("aud") {
            Some(a)
                if bases
                    .iter()
                    .any(|b| a.trim_end_matches('/') == b.trim_end_matches('/')) => {}
            Some(_) => {
                return Err(refuse(
                    "invalid_request",
                    "aud must be the client's FHIR base URL".into(),
                ))
            }
            None => {
                return Err(refuse(
                    "invalid_request",
                    "aud is required for SMART apps".into(),
                ))
            }
        }
        if let Some(id) = p.get("launch") {
            // SMART App Launch: an EHR launch is asked for with the `launch` scope.
            if !super::has_scope(scope.as_deref(), "launch") {
                return Err(refuse(
                    "invalid_scope",
                    "the launch parameter needs the launch scope".into(),
                ));
            }
            match super::launch::lookup(app, id, &client.id)
                .await
                .map_err(Refusal::Local)?
            {
                Some(ctx) => launch = Some(ctx),
                None => {
                    return Err(refuse(
                        "invalid_request",
                        "launch is unknown or expired".into(),
                    ))
                }
            }
        }
    }
    // RFC 8707 2: a resource this client may not ask for, or not an absolute URI without a
    // fragment, is `invalid_target` at the client's redirect URI.
    let resource = match p.get("resource") {
        Some(r) => Some(
            crate::resource::authorized(app, req, &client, grant, r).map_err(|e| {
                refuse(
                    "invalid_target",
                    match e {
                        Error::InvalidTarget(d) => d,
                        other => other.to_string(),
                    },
                )
            })?,
        ),
        None => None,
    };
    Ok(AuthzRequest {
        resource,
        response_type,
        client,
        redirect_uri,
        redirect_uri_given: given,
        scope,
        state,
        nonce: p.get("nonce").cloned(),
        code_challenge,
        dpop_jkt,
        launch_id: launch.as_ref().and(p.get("launch").cloned()),
        launch,
        query: query.to_string(),
        par,
    })
}

/// The `error_description` of a refused scope.
fn scope_error(e: Error) -> String {
    match e {
        Error::InvalidScope(d) => d,
        other => other.to_string(),
    }
}

/// `uri` with `params` added to its query (code flow) or fragment (implicit).
pub fn with_params(uri: &str, params: &[(&str, &str)], fragment: bool) -> String {
    let encoded = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(params)
        .finish();
    let sep = if fragment {
        '#'
    } else if uri.contains('?') {
        '&'
    } else {
        '?'
    };
    format!("{uri}{sep}{encoded}")
}

/// A 303 redirect.
pub fn see_other(location: &str) -> Response {
    let mut r = http::Response::new(Vec::new());
    *r.status_mut() = http::StatusCode::SEE_OTHER;
    if let Ok(v) = http::HeaderValue::from_str(location) {
        r.headers_mut().insert("location", v);
    }
    r.headers_mut()
        .insert("cache-control", http::HeaderValue::from_static("no-store"));
    r
}

/// Answers a refusal: a local error page or an error redirect to the client.
pub fn refuse(app: &App, req: &Request, r: Refusal) -> Response {
    match r {
        Refusal::Local(e) => {
            if let Some(reason) = e.internal_reason() {
                app.log(&format!("authorize: {} ({reason})", e.code()));
            }
            if matches!(e, Error::Unavailable(_)) {
                // Our fault, not the link's: say so, without the internal reason.
                let mut page = crate::html::error_page(
                    503,
                    "Sign-in is unavailable right now",
                    "A service this sign-in needs did not answer. Try again in a few seconds.",
                );
                page.headers_mut()
                    .insert("retry-after", http::HeaderValue::from_static("5"));
                return page;
            }
            // The internal reason of a 5xx went to the log above, never to the page.
            let detail = match e.internal_reason() {
                Some(_) => format!("{}: something went wrong on our side", e.code()),
                None => e.to_string(),
            };
            crate::html::error_page(e.status(), "This sign-in link does not work", &detail)
        }
        Refusal::Redirect {
            to,
            fragment,
            error,
            description,
            state,
        } => {
            let iss = app.issuer(req);
            let mut params = vec![
                ("error", error),
                ("error_description", description.as_str()),
            ];
            if let Some(s) = &state {
                params.push(("state", s));
            }
            params.push(("iss", &iss));
            see_other(&with_params(&to, &params, fragment))
        }
    }
}

/// The next step for a valid request: login, consent, or the answer to the client.
pub async fn proceed(
    app: &App,
    req: &Request,
    areq: &AuthzRequest,
    user: Option<(&User, &crate::state::Session)>,
    consented: bool,
) -> Result<Response> {
    let Some((user, session)) = user else {
        return Ok(see_other(&format!("/auth/ui/login.html?{}", areq.query)));
    };
    let auth_time = session.auth_time;
    let refused = |error: &'static str, description: String| {
        refuse(
            app,
            req,
            Refusal::Redirect {
                to: areq.redirect_uri.clone(),
                fragment: areq.response_type == ResponseType::Token,
                error,
                description,
                state: areq.state.clone(),
            },
        )
    };
    // The user's side of the scope ceiling (`user/` scopes), once we know who signed in.
    if let Err(e) = super::user_ceiling(app, user, areq.scope.as_deref()) {
        return Ok(refused("invalid_scope", scope_error(e)));
    }
    // A patient user's context is their own patient; a launch made for another is refused.
    if let (Some(own), Some(ctx)) = (super::launch::standalone_patient(user), &areq.launch) {
        if ctx.patient.as_ref().is_some_and(|p| *p != own) {
            return Ok(refused(
                "access_denied",
                "this launch is for another patient than the signed-in patient user".into(),
            ));
        }
    }
    if needs_patient_picker(areq, user, session) {
        return Ok(see_other(&format!("/auth/ui/patient.html?{}", areq.query)));
    }
    let first_party = areq
        .client
        .doc
        .get("first_party")
        .and_then(serde_json::Value::as_bool)
        .unwrap_or(false)
        && !super::register::is_self_registered(&areq.client);
    // A self-registered client (RFC 7591, CIMD) asks on every authorization: its name is its
    // own claim, and a remembered approval would let a look-alike ride on it.
    let ask_always = super::register::is_self_registered(&areq.client);
    // Consent: first-party clients never ask; otherwise an approval on the consent page is
    // remembered as a Grant (src/model/grant.rs), and asked for again only for new scopes or
    // once the grant is revoked.
    let scope = areq.scope.as_deref();
    if !first_party {
        if consented {
            crate::model::grant::remember(app, user, &areq.client.id, scope).await?;
        } else if ask_always
            || !crate::model::grant::covers(app, user, &areq.client.id, scope).await?
        {
            return Ok(see_other(&format!("/auth/ui/consent.html?{}", areq.query)));
        }
    }
    let iss = app.issuer(req);
    // RFC 9126 4: a pushed request serves one authorization; the first code (or token) issued
    // uses it up, so its request_uri cannot be replayed for another.
    if let Some(key) = &areq.par {
        if !super::par::consume(app, key).await? {
            return Ok(refused(
                "invalid_request",
                "request_uri is expired or was already used".into(),
            ));
        }
    }
    // SMART: a launch serves one authorization; the first code (or token) issued uses it up.
    if let Some(id) = &areq.launch_id {
        if !super::launch::consume(app, id, &areq.client.id).await? {
            return Ok(refused(
                "invalid_request",
                "launch is unknown, expired or already used".into(),
            ));
        }
    }
    match areq.response_type {
        ResponseType::Code => {
            let code = random_token(app);
            let rec = CodeRecord {
                client_id: areq.client.id.clone(),
                user_id: user.id.clone(),
                redirect_uri: areq.redirect_uri.clone(),
                redirect_uri_given: areq.redirect_uri_given,
                scope: areq.scope.clone(),
                code_challenge: areq.code_challenge.clone(),
                dpop_jkt: areq.dpop_jkt.clone(),
                nonce: areq.nonce.clone(),
                auth_time,
                launch: launch_context(areq, user, session),
                session: (!session.key.is_empty()).then(|| session.key.clone()),
                used: None,
                resource: areq.resource.clone(),
            };
            state::create(app, &code_key(&code), &rec, app.now() + CODE_TTL).await?;
            if picked(areq, session).is_some() {
                forget_pick(app, req, session).await?;
            }
            let mut params = vec![("code", code.as_str())];
            if let Some(s) = &areq.state {
                params.push(("state", s));
            }
            // RFC 9207: the issuer, against mix-up attacks.
            params.push(("iss", &iss));
            Ok(see_other(&with_params(&areq.redirect_uri, &params, false)))
        }
        ResponseType::Token => {
            // RFC 6749 4.2.2: the access token in the fragment; never a refresh token.
            // `auth.implicit.audience` when set (no audience parameter at /auth/authorize).
            let audience = match &areq.resource {
                Some(r) => r.clone(),
                None => {
                    super::token_audience(app, req, &areq.client, &BTreeMap::new(), "implicit")?
                }
            };
            let mut what = Issue::new(
                &areq.client,
                Some(user),
                areq.scope.clone(),
                audience,
                GrantType::Implicit,
            );
            what.auth_time = Some(auth_time);
            what.launch = launch_context(areq, user, session);
            let jti = state::random_id(app);
            let (token, exp) = super::sign_access_token(app, req, &what, &jti).await?;
            let expires_in = (exp - app.now()).to_string();
            let mut params = vec![
                ("access_token", token.as_str()),
                ("token_type", "Bearer"),
                ("expires_in", expires_in.as_str()),
            ];
            if let Some(s) = &areq.scope {
                params.push(("scope", s));
            }
            if let Some(s) = &areq.state {
                params.push(("state", s));
            }
            params.push(("iss", &iss));
            Ok(see_other(&with_params(&areq.redirect_uri, &params, true)))
        }
    }
}

/// Does this SMART standalone `launch/patient` request still need the user to pick a patient?
/// Not when an EHR launch gave the context, nor for a patient-user, nor once picked.
pub fn needs_patient_picker(
    areq: &AuthzRequest,
    user: &User,
    session: &crate::state::Session,
) -> bool {
    areq.client.is_smart_app()
        && areq.response_type == ResponseType::Code
        && areq.launch.is_none()
        && super::has_scope(areq.scope.as_deref(), "launch/patient")
        && super::launch::standalone_patient(user).is_none()
        && picked(areq, session).is_none()
}

fn picked(areq: &AuthzRequest, session: &crate::state::Session) -> Option<String> {
    session
        .patient
        .as_ref()
        .filter(|(client, _)| *client == areq.client.id)
        .map(|(_, p)| p.clone())
}

/// A picked patient serves one launch: the next launch asks again.
async fn forget_pick(app: &App, req: &Request, session: &crate::state::Session) -> Result<()> {
    let Some(id) = super::interaction::our_cookie(req, super::interaction::SESSION_COOKIE) else {
        return Ok(());
    };
    let key = crate::state::session_key(&id);
    if let Some((current, raw)) = state::read::<crate::state::Session>(app, &key).await? {
        if current == *session {
            let mut cleared = current.clone();
            cleared.patient = None;
            let expires = cleared.auth_time + super::interaction::SESSION_TTL;
            // Lost races only mean another request changed the session first; nothing to undo.
            let _ = state::swap(app, &key, &raw, &cleared, expires).await?;
        }
    }
    Ok(())
}

/// The SMART launch context of a request: the EHR launch's; for a standalone `launch/patient`
/// request, the patient a patient-user is, or the one the user picked. A patient user's
/// context is always their own patient, and is set whenever `patient/` scopes are granted, so
/// those scopes reach that patient only.
fn launch_context(
    areq: &AuthzRequest,
    user: &User,
    session: &crate::state::Session,
) -> super::launch::LaunchContext {
    let own = super::launch::standalone_patient(user);
    let mut ctx = if let Some(ctx) = &areq.launch {
        ctx.clone()
    } else if super::has_scope(areq.scope.as_deref(), "launch/patient") {
        super::launch::LaunchContext {
            patient: own.clone().or_else(|| picked(areq, session)),
            encounter: None,
        }
    } else {
        Default::default()
    };
    if let Some(p) = own {
        if ctx.patient.is_some() || super::ceiling::has_patient_scope(areq.scope.as_deref()) {
            ctx.patient = Some(p);
        }
    }
    ctx
}

/// `GET /auth/authorize`.
pub async fn handle(app: &App, req: &Request) -> Result<Response> {
    let query = req.uri().query().unwrap_or("").to_string();
    let areq = match parse(app, req, &query).await {
        Ok(a) => a,
        Err(r) => return Ok(refuse(app, req, r)),
    };
    let session = super::interaction::current_session(app, req).await?;
    let user = session.as_ref().map(|(u, s)| (u, s));
    proceed(app, req, &areq, user, false).await
}
