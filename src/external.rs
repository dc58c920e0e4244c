//! Trusting tokens of external issuers (Aidbox's TokenIntrospector): the Worker acts as a
//! resource server for JWTs from another identity provider, and for opaque tokens through
//! RFC 7662 introspection.
//!
//! The introspector is picked by the token's `iss`. Verification is the same
//! [`crate::jwt::verify`] as for our own tokens: the algorithm is pinned by the key (an HS256
//! secret only verifies HS256, an RSA key only RS256, ...), `none`, `jku`/`x5u`/`jwk` headers and
//! any `crit` are refused, `exp` is required.
//!
//! A verified token is an access token for us only when it is meant for us:
//! - its `aud` names one of the introspector's audiences (`jwt.aud`/`audience`), or our own
//!   `AUDIENCE` when the introspector names none (RFC 9068 4, RFC 8725 3.9);
//! - it is not shaped as an ID token (see [`refuse_non_access_token`]): an ID token is proof of a
//!   sign-in for the relying party it names, never a credential for an API (OpenID Connect Core
//!   3.1.3.7, RFC 9068 2.1 on `typ`).
//!
//! A local User is brought in only when the introspector opts in with `map_user` (Aidbox reads
//! `box_user`, then `sub`); otherwise policies see the claims as `jwt` and `user` stays null.
//! JWKS are fetched from `jwks_uri`, cached per isolate for `cache_ttl` seconds (default
//! [`JWKS_TTL`]), refetched on an unknown `kid` at most every [`JWKS_MIN_REFETCH`] seconds; a
//! JWKS host that fails gives 503 (a stale copy is used while there is one). An opaque token's
//! active answer is reused for `cache_ttl` seconds (default [`INTROSPECTION_TTL`]), never past its
//! `exp`; policies see it as `token` (with `active: true`, Aidbox's `{"token": {"active": true}}`)
//! and, as before, as `jwt`.

use crate::authn::{load_user, Identity};
use crate::context::App;
use crate::error::{Error, Result};
use crate::jwt::keys::KeySet;
use crate::jwt::{self, Expectations, VerifyError};
use crate::model::introspector;
use jwt_compact::UntrustedToken;
use serde_json::{Map, Value};
use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

/// Seconds a fetched JWKS is used before it is fetched again.
pub const JWKS_TTL: i64 = 300;
/// Least seconds between two fetches of one JWKS on unknown `kid`s.
pub const JWKS_MIN_REFETCH: i64 = 30;
/// Longest an introspection answer is reused (seconds) when the introspector sets no `cache_ttl`.
pub const INTROSPECTION_TTL: i64 = 60;
/// Most cached introspection answers per isolate; past it the cache starts over.
const MAX_INTROSPECTED: usize = 10_000;

/// An introspection answer: until when it may be reused, and the endpoint that answered with
/// its claims (None: inactive).
type Answer = (i64, Option<(String, Map<String, Value>)>);

/// Per-isolate caches of JWKS and introspection answers.
#[derive(Debug, Default)]
pub struct ExternalCache {
    jwks: RefCell<HashMap<String, (i64, Rc<KeySet>)>>,
    introspected: RefCell<HashMap<String, Answer>>,
}

/// The unverified `iss` of a JWT, if it is one.
pub fn peek_issuer(token: &str) -> Option<String> {
    let t = UntrustedToken::new(token).ok()?;
    let claims = t
        .deserialize_claims_unchecked::<Map<String, Value>>()
        .ok()?;
    claims.custom.get("iss")?.as_str().map(str::to_string)
}

async fn introspectors(app: &App) -> Result<Rc<Vec<Value>>> {
    app.repo().introspectors().await
}

async fn fetch_jwks(app: &App, url: &str) -> Result<Rc<KeySet>> {
    let (status, body) = app
        .platform
        .http
        .send("GET", url, &[("accept", "application/json")], None)
        .await
        .map_err(|e| Error::Unavailable(format!("JWKS {url}: {e}")))?;
    if status != 200 {
        return Err(Error::Unavailable(format!("JWKS {url} answered {status}")));
    }
    let v: Value = serde_json::from_str(&body)
        .map_err(|e| Error::Unavailable(format!("JWKS {url} is not JSON: {e}")))?;
    let set = KeySet::from_jwks(&v).map_err(|e| Error::Unavailable(format!("JWKS {url}: {e}")))?;
    let set = Rc::new(set);
    app.cache
        .external
        .jwks
        .borrow_mut()
        .insert(url.to_string(), (app.now(), set.clone()));
    Ok(set)
}

/// The keys at `url`: cached, or fetched; `refresh` asks for a refetch (unknown `kid`), which
/// happens only if the copy is older than [`JWKS_MIN_REFETCH`].
pub async fn jwks_keys(app: &App, url: &str, refresh: bool) -> Result<Rc<KeySet>> {
    jwks_keys_for(app, url, refresh, JWKS_TTL).await
}

/// [`jwks_keys`] with the copy's lifetime (a TokenIntrospector's `cache_ttl`).
pub async fn jwks_keys_for(app: &App, url: &str, refresh: bool, ttl: i64) -> Result<Rc<KeySet>> {
    let now = app.now();
    let cached = app.cache.external.jwks.borrow().get(url).cloned();
    match cached {
        Some((at, keys)) if now - at < ttl && !(refresh && now - at >= JWKS_MIN_REFETCH) => {
            Ok(keys)
        }
        Some((_, stale)) => match fetch_jwks(app, url).await {
            Ok(k) => Ok(k),
            Err(e) => {
                app.log(&format!("{e}; using the cached JWKS"));
                Ok(stale)
            }
        },
        None => fetch_jwks(app, url).await,
    }
}

fn verify_error(e: VerifyError) -> Error {
    match e {
        VerifyError::Backend(b) => Error::Unavailable(b.0),
        other => Error::InvalidToken(other.to_string()),
    }
}

/// Verifies a JWT of an external issuer; `our_audience` is `AUDIENCE` (default the issuer),
/// required when the introspector names no audience. `Ok(None)`: no introspector trusts this
/// issuer.
pub async fn verify_jwt(
    app: &App,
    token: &str,
    iss: &str,
    our_audience: &str,
) -> Result<Option<Identity>> {
    let all = introspectors(app).await?;
    let Some(doc) = all.iter().find(|d| {
        d.get("type").and_then(Value::as_str) == Some("jwt")
            && d.pointer("/jwt/iss").and_then(Value::as_str) == Some(iss)
    }) else {
        return Ok(None);
    };
    // The audience is checked below, against a list.
    let expect = Expectations {
        issuer: iss,
        audience: None,
        typ: None,
        leeway: app.config.leeway,
        now: app.now(),
    };
    let crypto = app.platform.crypto.as_ref();
    let claims = if let Some(list) = doc.pointer("/jwt/keys") {
        let keys = crate::jwt::keys::from_introspector_keys(list)
            .map_err(|(p, e)| Error::Internal(format!("TokenIntrospector {p}: {e}")))?;
        jwt::verify_any(crypto, &keys, token, &expect)
            .await
            .map_err(verify_error)?
    } else if let Some(secret) = doc.pointer("/jwt/secret").and_then(Value::as_str) {
        let keys = KeySet::hmac(secret.as_bytes());
        jwt::verify(crypto, &keys, token, &expect)
            .await
            .map_err(verify_error)?
    } else if let Some(jwks) = introspector::inline_jwks(doc) {
        let keys = KeySet::from_jwks(jwks).map_err(Error::Internal)?;
        jwt::verify(crypto, &keys, token, &expect)
            .await
            .map_err(verify_error)?
    } else if let Some(url) = introspector::jwks_uri(doc) {
        let ttl = introspector::cache_ttl(doc).unwrap_or(JWKS_TTL);
        let keys = jwks_keys_for(app, url, false, ttl).await?;
        match jwt::verify(crypto, &keys, token, &expect).await {
            Err(VerifyError::UnknownKey) => {
                let fresh = jwks_keys_for(app, url, true, ttl).await?;
                jwt::verify(crypto, &fresh, token, &expect)
                    .await
                    .map_err(verify_error)?
            }
            other => other.map_err(verify_error)?,
        }
    } else {
        return Err(Error::Internal(
            "TokenIntrospector without a key source".into(),
        ));
    };
    let typ = UntrustedToken::new(token)
        .ok()
        .and_then(|t| t.header().token_type.clone());
    refuse_non_access_token(typ.as_deref(), &claims)?;
    check_audience(doc, &claims, our_audience, true)?;
    Ok(Some(identity(app, doc, claims).await?))
}

/// Header `typ` values of access tokens (compared case-insensitively, `application/` prefix
/// allowed): RFC 9068 2.1 `at+jwt`, and the generic `JWT` (RFC 7519 5.1) many issuers use.
const ACCESS_TYPS: [&str; 2] = ["at+jwt", "jwt"];
/// Values of a `typ` claim (Keycloak writes `Bearer` in access tokens, `ID` and `Refresh` in
/// others) that still say "access token".
const ACCESS_TYP_CLAIMS: [&str; 4] = ["bearer", "at+jwt", "jwt", "access_token"];
/// Claims only ID tokens carry: OpenID Connect Core 2 (`nonce`, `at_hash`, `c_hash`) and
/// FAPI 1.0 part 2 5.1 (`s_hash`).
const ID_TOKEN_CLAIMS: [&str; 4] = ["nonce", "at_hash", "c_hash", "s_hash"];
/// RFC 7662 2.2 `token_type` values (RFC 6749 7.1, RFC 8693 3) that are access tokens.
const ACCESS_TOKEN_TYPES: [&str; 3] = [
    "bearer",
    "access_token",
    "urn:ietf:params:oauth:token-type:access_token",
];

/// A value of the token's, fit for an error description (and its RFC 6750 3 challenge):
/// printable ASCII without quotes and backslashes, at most 40 characters.
fn shown(s: &str) -> String {
    let mut out: String = s
        .chars()
        .take(40)
        .map(|c| {
            if (c.is_ascii_graphic() && c != '"' && c != '\\') || c == ' ' {
                c
            } else {
                '?'
            }
        })
        .collect();
    if s.chars().count() > 40 {
        out.push_str("...");
    }
    out
}

fn shown_value(v: &Value) -> String {
    match v {
        Value::String(s) => shown(s),
        other => shown(&other.to_string()),
    }
}

fn media_type(t: &str) -> String {
    let t = t.to_ascii_lowercase();
    match t.strip_prefix("application/") {
        Some(rest) => rest.to_string(),
        None => t,
    }
}

/// Refuses what is not an access token: a header `typ` other than `at+jwt`/`JWT` (e.g.
/// `id_token`, `id+jwt`, `logout+jwt`), an ID-token claim (`nonce`, `at_hash`, `c_hash`,
/// `s_hash`), a `typ` claim naming another kind of token (Keycloak's `ID`, `Refresh`), or an
/// introspection answer whose `token_type` is not a bearer access token.
pub fn refuse_non_access_token(
    header_typ: Option<&str>,
    claims: &Map<String, Value>,
) -> Result<()> {
    let not_access = |why: String| {
        Err(Error::InvalidToken(format!(
            "{why}: an ID token or other non-access token is not accepted as an access token"
        )))
    };
    if let Some(t) = header_typ {
        if !ACCESS_TYPS.contains(&media_type(t).as_str()) {
            return not_access(format!("token type (typ header) {}", shown(t)));
        }
    }
    if let Some(c) = ID_TOKEN_CLAIMS.iter().find(|c| claims.contains_key(**c)) {
        return not_access(format!("token carries the ID-token claim {c}"));
    }
    match claims.get("typ") {
        None => {}
        Some(Value::String(t)) if ACCESS_TYP_CLAIMS.contains(&media_type(t).as_str()) => {}
        Some(t) => return not_access(format!("token has the typ claim {}", shown_value(t))),
    }
    match claims.get("token_type") {
        None => {}
        Some(Value::String(t)) if ACCESS_TOKEN_TYPES.contains(&t.to_ascii_lowercase().as_str()) => {
        }
        Some(t) => return not_access(format!("token_type is {}", shown_value(t))),
    }
    Ok(())
}

/// The token's `aud` must name an audience the introspector accepts (`jwt.aud`/`audience`), or
/// `ours` when it names none (RFC 9068 4: the resource server checks it is the audience).
/// `required`: a JWT without `aud` is refused; an RFC 7662 answer may leave `aud` out (the
/// introspection endpoint answered us, RFC 7662 4).
fn check_audience(
    doc: &Value,
    claims: &Map<String, Value>,
    ours: &str,
    required: bool,
) -> Result<()> {
    let accepted = introspector::audiences(doc).unwrap_or_else(|| vec![ours]);
    let ok = match claims.get("aud") {
        None => !required,
        Some(Value::String(a)) => accepted.contains(&a.as_str()),
        Some(Value::Array(list)) => list
            .iter()
            .any(|a| a.as_str().is_some_and(|a| accepted.contains(&a))),
        Some(_) => false,
    };
    if ok {
        return Ok(());
    }
    Err(Error::InvalidToken(if claims.contains_key("aud") {
        "token is meant for another audience (aud)".into()
    } else {
        "token has no aud claim: it is not meant for this API".into()
    }))
}

/// The caller behind verified external claims. A local User comes in only through the
/// introspector's `map_user`: the first of its `claims` present names the User id, and the User
/// must contain `map_user.match` when given (an issuer speaks only for the users it was given).
async fn identity(app: &App, doc: &Value, claims: Map<String, Value>) -> Result<Identity> {
    let user = match introspector::user_mapping(doc) {
        None => None,
        Some(map) => {
            let named = map
                .claims
                .iter()
                .find_map(|c| claims.get(*c))
                .and_then(Value::as_str);
            match named {
                Some(id) if crate::model::valid_id(id) => match load_user(app, id).await? {
                    Some(u) => {
                        if let Some(want) = map.required {
                            if !introspector::contains(&u.doc, want) {
                                return Err(Error::InvalidToken(format!(
                                    "the token names User {id}, which this issuer may not \
                                     speak for (map_user.match)"
                                )));
                            }
                        }
                        Some(u)
                    }
                    None => None,
                },
                _ => None,
            }
        }
    };
    Ok(Identity {
        root: false,
        client: None,
        user,
        jwt: Some(claims),
        token: None,
    })
}

/// An opaque token: asks the `type: opaque` introspectors (RFC 7662), first `active` wins.
/// The answer passes the same checks as a JWT's claims (audience when it carries `aud`, not an
/// ID or refresh token, `map_user`). `Ok(None)`: there are none.
pub async fn introspect_opaque(
    app: &App,
    token: &str,
    our_audience: &str,
) -> Result<Option<Identity>> {
    let all = introspectors(app).await?;
    // One endpoint, chosen by configuration: a token meant for one issuer is never shown to
    // another (src/model/introspector.rs `choose_opaque`).
    let Some(ep) = crate::model::introspector::choose_opaque(&all, token) else {
        return Ok(None);
    };
    let endpoints = [ep];
    let key = crate::state::hash(token);
    let now = app.now();
    let cached = app.cache.external.introspected.borrow().get(&key).cloned();
    if let Some((until, answer)) = cached {
        if until > now {
            match answer {
                // The answer is checked against the introspector as it is configured now.
                Some((url, c)) => {
                    if let Some(ep) = endpoints.iter().find(|d| endpoint_url(d) == Some(&url)) {
                        return Ok(Some(accept_answer(app, ep, c, our_audience).await?));
                    }
                }
                None => return Err(Error::InvalidToken("token is not active".into())),
            }
        }
    }
    let body = form_urlencoded::Serializer::new(String::new())
        .append_pair("token", token)
        .finish();
    for ep in endpoints {
        let Some(url) = endpoint_url(ep) else {
            continue;
        };
        let auth = ep
            .pointer("/introspection_endpoint/authorization")
            .and_then(Value::as_str);
        let mut headers = vec![
            ("content-type", "application/x-www-form-urlencoded"),
            ("accept", "application/json"),
        ];
        if let Some(a) = auth {
            headers.push(("authorization", a));
        }
        let (status, text) = app
            .platform
            .http
            .send("POST", url, &headers, Some(&body))
            .await
            .map_err(|e| Error::Unavailable(format!("introspection {url}: {e}")))?;
        if status != 200 {
            return Err(Error::Unavailable(format!(
                "introspection {url} answered {status}"
            )));
        }
        let Ok(Value::Object(mut answer)) = serde_json::from_str::<Value>(&text) else {
            return Err(Error::Unavailable(format!(
                "introspection {url}: not a JSON object"
            )));
        };
        if answer.get("active") == Some(&Value::Bool(true)) {
            if let Some(exp) = answer.get("exp").and_then(Value::as_i64) {
                if exp + app.config.leeway < now {
                    continue;
                }
            }
            answer.remove("active");
            let ttl = introspector::cache_ttl(ep).unwrap_or(INTROSPECTION_TTL);
            let until = answer
                .get("exp")
                .and_then(Value::as_i64)
                .map_or(now + ttl, |e| e.min(now + ttl));
            {
                let mut cache = app.cache.external.introspected.borrow_mut();
                if cache.len() >= MAX_INTROSPECTED {
                    cache.clear();
                }
                cache.insert(key, (until, Some((url.to_string(), answer.clone()))));
            }
            return Ok(Some(accept_answer(app, ep, answer, our_audience).await?));
        }
    }
    app.cache
        .external
        .introspected
        .borrow_mut()
        .insert(key, (now + INTROSPECTION_TTL.min(10), None));
    Err(Error::InvalidToken("token is not active".into()))
}

fn endpoint_url(ep: &Value) -> Option<&str> {
    ep.pointer("/introspection_endpoint/url")
        .and_then(Value::as_str)
}

/// An active RFC 7662 answer as an access token for us: not another kind of token, for our
/// audience when it names one, mapped to a User only through `map_user`.
async fn accept_answer(
    app: &App,
    ep: &Value,
    answer: Map<String, Value>,
    our_audience: &str,
) -> Result<Identity> {
    refuse_non_access_token(None, &answer)?;
    check_audience(ep, &answer, our_audience, false)?;
    // Aidbox shows the introspection answer to policies as `token`; only active answers get
    // this far.
    let mut token = answer.clone();
    token.insert("active".into(), Value::Bool(true));
    let mut who = identity(app, ep, answer).await?;
    who.token = Some(token);
    Ok(who)
}
