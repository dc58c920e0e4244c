//! OAuth 2.0 (RFC 6749) and discovery: one file per grant and endpoint (DESIGN.md rule 2).

pub mod authorization_code;
pub mod authorize;
pub mod ceiling;
pub mod cimd;
pub mod client_auth;
pub mod client_credentials;
pub mod discovery;
pub mod dpop;
pub mod id_token;
pub mod interaction;
pub mod introspect;
pub mod launch;
pub mod logout;
pub mod par;
pub mod password;
pub mod picker;
pub mod pkce;
pub mod refresh;
pub mod register;
pub mod revoke;
pub mod token;
pub mod userinfo;

use crate::context::App;
use crate::error::{Error, Result};
use crate::http_util::{no_store, Request, Response};
use crate::jwt::{self, ACCESS_TOKEN_TYP};
use crate::model::client::Client;
use crate::model::user::User;
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// Private claim that says whether `sub` names a User (`"user"`) or the Client itself
/// (`"client"`): ids of the two may collide, and the authorizer must load the right one.
pub const SUB_KIND_CLAIM: &str = "sub_kind";

/// The grant types the token endpoint knows (RFC 6749 4.1, 4.3, 4.4, 6), plus implicit
/// (4.2), which issues at the authorization endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GrantType {
    AuthorizationCode,
    ClientCredentials,
    Password,
    RefreshToken,
    Implicit,
}

impl GrantType {
    pub fn parse(s: &str) -> Result<GrantType> {
        match s {
            "authorization_code" => Ok(GrantType::AuthorizationCode),
            "client_credentials" => Ok(GrantType::ClientCredentials),
            "password" => Ok(GrantType::Password),
            "refresh_token" => Ok(GrantType::RefreshToken),
            other => Err(Error::UnsupportedGrantType(format!(
                "grant_type \"{other}\" is not supported; supported: {}",
                Self::SUPPORTED.join(", ")
            ))),
        }
    }

    /// The `grant_type` values of the token endpoint.
    pub const SUPPORTED: [&'static str; 4] = [
        "authorization_code",
        "client_credentials",
        "password",
        "refresh_token",
    ];

    /// The name in Client `grant_types` and of the `grant_type` parameter.
    pub fn name(self) -> &'static str {
        match self {
            GrantType::AuthorizationCode => "authorization_code",
            GrantType::ClientCredentials => "client_credentials",
            GrantType::Password => "password",
            GrantType::RefreshToken => "refresh_token",
            GrantType::Implicit => "implicit",
        }
    }

    /// The `auth.<flow>` whose settings apply.
    pub fn flow(self) -> &'static str {
        match self {
            GrantType::RefreshToken => "authorization_code",
            other => other.name(),
        }
    }
}

pub use ceiling::{client_ceiling, user_ceiling, valid_scope_token};

/// A scope asked for on refresh: each token must be in the original grant (RFC 6749 6).
pub fn granted_scope_within(
    params: &BTreeMap<String, String>,
    original: Option<&str>,
) -> Result<Option<String>> {
    let requested = params.get("scope").map(String::as_str).unwrap_or("");
    let mut out: Vec<&str> = Vec::new();
    for t in requested.split(' ').filter(|t| !t.is_empty()) {
        if !has_scope(original, t) {
            return Err(Error::InvalidScope(format!(
                "scope \"{t}\" was not part of the original grant"
            )));
        }
        if !out.contains(&t) {
            out.push(t);
        }
    }
    Ok((!out.is_empty()).then(|| out.join(" ")))
}

/// The `aud` to put in a token of `flow`: the client's `auth.<flow>.audience` (its first value)
/// or else the API's audience, or an `audience` (Aidbox) / `resource` (RFC 8707) parameter
/// that is the API's audience, one of the flow's audiences, or admitted by the client's
/// `audience` pattern. A token for another audience is refused by our own authorizer. A
/// `resource` (RFC 8707) is canonicalised and may also name one of our protected resources
/// (`PROTECTED_RESOURCES`, [`crate::resource::authorized`]).
pub fn token_audience(
    app: &App,
    req: &Request,
    client: &Client,
    params: &BTreeMap<String, String>,
    flow: &str,
) -> Result<String> {
    let own = app.audience(req);
    let listed = client.flow_audiences(flow);
    let default = listed
        .first()
        .map_or_else(|| own.clone(), |a| a.to_string());
    // RFC 8707: a `resource` is validated and canonicalised (src/resource.rs).
    if let Some(r) = params.get("resource") {
        return crate::resource::authorized(app, req, client, flow, r);
    }
    let asked = params.get("audience");
    match asked {
        None => Ok(default),
        Some(a) if *a == own || listed.contains(&a.as_str()) || client.audience_allows(a) => {
            Ok(a.clone())
        }
        Some(a) => Err(Error::InvalidTarget(format!(
            "audience \"{a}\" is not allowed for this client"
        ))),
    }
}

/// What a grant decided; [`issue`] turns it into tokens.
pub struct Issue<'a> {
    pub client: &'a Client,
    pub user: Option<&'a User>,
    pub scope: Option<String>,
    pub audience: String,
    pub grant: GrantType,
    /// Pre-chosen `jti` (the code redemption records it before signing); None: a new one.
    pub jti: Option<String>,
    /// A refresh token to return (already stored by the caller).
    pub refresh_token: Option<String>,
    /// OIDC: with scope `openid` and a user, an ID token with these.
    pub nonce: Option<String>,
    pub auth_time: Option<i64>,
    /// SMART launch context: returned beside the token and carried in its claims.
    pub launch: launch::LaunchContext,
    /// Aidbox's `userinfo` beside the token: only the password grant sets it.
    pub userinfo: bool,
}

impl<'a> Issue<'a> {
    /// The credential-generation tag of this grant's client and user
    /// ([`crate::model::generation_tag`]).
    pub fn generation_tag(&self) -> Option<String> {
        crate::model::generation_tag(Some(&self.client.doc), self.user.map(|u| &u.doc))
    }

    pub fn new(
        client: &'a Client,
        user: Option<&'a User>,
        scope: Option<String>,
        audience: String,
        grant: GrantType,
    ) -> Self {
        Issue {
            client,
            user,
            scope,
            audience,
            grant,
            jti: None,
            refresh_token: None,
            nonce: None,
            auth_time: None,
            launch: launch::LaunchContext::default(),
            userinfo: false,
        }
    }
}

/// Does this scope string contain `name`?
pub fn has_scope(scope: Option<&str>, name: &str) -> bool {
    scope.is_some_and(|s| s.split(' ').any(|t| t == name))
}

/// Signs an access token (RFC 9068); returns the token and its `exp`.
pub async fn sign_access_token(
    app: &App,
    req: &Request,
    what: &Issue<'_>,
    jti: &str,
) -> Result<(String, i64)> {
    let key = app
        .config
        .keys
        .signing
        .as_ref()
        .ok_or_else(|| Error::Internal("SIGNING_KEY is not configured".into()))?;
    let lifetime = what.client.access_token_lifetime(what.grant.flow());
    let now = app.now();
    let (sub, kind) = match what.user {
        Some(u) => (u.id.as_str(), "user"),
        None => (what.client.id.as_str(), "client"),
    };
    let issuer = app.issuer(req);
    // Bound to the credential generations of its client and user (src/authn.rs checks it).
    let tag = what.generation_tag();
    // Issued with a refresh token: the family, so that revoking the family revokes this token
    // however many the family issued (checked by the authorizer with the revocation list).
    let family = what
        .refresh_token
        .as_deref()
        .and_then(crate::state::split_refresh_token)
        .map(|(family, _)| crate::state::family_claim(family));
    // The claims written as JSON directly (the same text a `serde_json::Value` of them
    // would print), signed over once.
    let mut claims = jwt::flat::FlatJson::new();
    claims
        .int("iat", now)
        .int("exp", now + lifetime)
        .str("iss", &issuer)
        .str("sub", sub)
        .str("aud", &what.audience)
        .str("client_id", &what.client.id)
        .str("jti", jti)
        .str(SUB_KIND_CLAIM, kind);
    if let Some(tag) = &tag {
        claims.str(crate::model::GENERATION_CLAIM, tag);
    }
    if let Some(s) = &what.scope {
        claims.str("scope", s);
    }
    if let Some(t) = what.auth_time {
        claims.int("auth_time", t);
    }
    if let Some(p) = &what.launch.patient {
        claims.str("patient", p);
    }
    if let Some(e) = &what.launch.encounter {
        claims.str("encounter", e);
    }
    if let Some(f) = &family {
        claims.str(crate::state::FAMILY_CLAIM, f);
    }
    // RFC 9449 6.1: bound to the key of the token request's DPoP proof.
    if let Some(jkt) = &what.client.dpop_jkt {
        claims.raw("cnf", serde_json::json!({ "jkt": jkt }).to_string());
    }
    let token = jwt::sign_json(
        app.platform.crypto.as_ref(),
        key,
        ACCESS_TOKEN_TYP,
        claims.finish().as_bytes(),
    )
    .await?;
    Ok((token, now + lifetime))
}

/// Aidbox's `userinfo` of the password grant, cut to what the granted scopes allow (as the
/// ID token's claims, OIDC Core 5.4): `id` and `resourceType` always; the User's `name` with
/// `profile`, `email` with `email`, `fhirUser` with `fhirUser`. Never `data` nor anything
/// else of the stored User.
pub fn userinfo_view(user: &User, scope: Option<&str>) -> Value {
    let mut v = json!({"resourceType": "User", "id": user.id});
    for (needs, field) in [
        ("profile", "name"),
        ("email", "email"),
        ("fhirUser", "fhirUser"),
    ] {
        if has_scope(scope, needs) {
            if let Some(x) = user.doc.get(field) {
                v[field] = x.clone();
            }
        }
    }
    v
}

/// Signs the access token (and the ID token when asked) and builds the RFC 6749 5.1 response.
pub async fn issue(app: &App, req: &Request, what: Issue<'_>) -> Result<Response> {
    let jti = match &what.jti {
        Some(j) => j.clone(),
        None => crate::state::random_id(app),
    };
    let (token, exp) = sign_access_token(app, req, &what, &jti).await?;
    let expires_in = exp - app.now();
    let id_token = match (what.user, has_scope(what.scope.as_deref(), "openid")) {
        (Some(u), true) => Some(id_token::sign(app, req, &what, u, &token, exp).await?),
        _ => None,
    };
    // The answer written directly, as for the claims (see `jwt::flat`).
    let mut body = jwt::flat::FlatJson::new();
    body.str("access_token", &token)
        .str(
            "token_type",
            if what.client.dpop_jkt.is_some() {
                "DPoP"
            } else {
                "Bearer"
            },
        )
        .int("expires_in", expires_in);
    if let Some(s) = &what.scope {
        body.str("scope", s);
    }
    if let Some(r) = &what.refresh_token {
        body.str("refresh_token", r);
    }
    // SMART App Launch: the launch context beside the token.
    if let Some(p) = &what.launch.patient {
        body.str("patient", p);
    }
    if let Some(e) = &what.launch.encounter {
        body.str("encounter", e);
    }
    if let Some(t) = &id_token {
        body.str("id_token", t);
    }
    if let (Some(u), true) = (what.user, what.userinfo) {
        let view = userinfo_view(u, what.scope.as_deref());
        body.raw(
            "userinfo",
            serde_json::to_string(&view).unwrap_or_else(|_| "{}".into()),
        );
    }
    let mut resp = http::Response::new(body.finish().into_bytes());
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    Ok(no_store(resp))
}
