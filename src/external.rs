//! Trusting tokens of external issuers (Aidbox's TokenIntrospector): the Worker acts as a
//! resource server for JWTs from another identity provider, and for opaque tokens through
//! RFC 7662 introspection.
//!
//! The introspector is picked by the token's `iss`. Verification is the same
//! [`crate::jwt::verify`] as for our own tokens: the algorithm is pinned by the key (an HS256
//! secret only verifies HS256, an RSA key only RS256, ...), `none`, `jku`/`x5u`/`jwk` headers and
//! any `crit` are refused, `exp` is required, `aud` is checked when the introspector names one.
//! JWKS are fetched from `jwks_uri`, cached per isolate for [`JWKS_TTL`] seconds, refetched on an
//! unknown `kid` at most every [`JWKS_MIN_REFETCH`] seconds; a JWKS host that fails gives 503
//! (a stale copy is used while there is one).

use crate::app::App;
use crate::authn::{load_user, Identity};
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
/// Longest an introspection answer is reused (seconds).
const INTROSPECTION_TTL: i64 = 60;

/// An introspection answer: until when it may be reused, and the claims (None: inactive).
type Answer = (i64, Option<Map<String, Value>>);

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
    let now = app.now();
    let cached = app.cache.external.jwks.borrow().get(url).cloned();
    match cached {
        Some((at, keys)) if now - at < JWKS_TTL && !(refresh && now - at >= JWKS_MIN_REFETCH) => {
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

/// Verifies a JWT of an external issuer. `Ok(None)`: no introspector trusts this issuer.
pub async fn verify_jwt(app: &App, token: &str, iss: &str) -> Result<Option<Identity>> {
    let all = introspectors(app).await?;
    let Some(doc) = all.iter().find(|d| {
        d.get("type").and_then(Value::as_str) == Some("jwt")
            && d.pointer("/jwt/iss").and_then(Value::as_str) == Some(iss)
    }) else {
        return Ok(None);
    };
    let expect = Expectations {
        issuer: iss,
        audience: introspector::audience(doc),
        typ: None,
        leeway: app.config.leeway,
        now: app.now(),
    };
    let crypto = app.platform.crypto.as_ref();
    let claims = if let Some(secret) = doc.pointer("/jwt/secret").and_then(Value::as_str) {
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
        let keys = jwks_keys(app, url, false).await?;
        match jwt::verify(crypto, &keys, token, &expect).await {
            Err(VerifyError::UnknownKey) => {
                let fresh = jwks_keys(app, url, true).await?;
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
    Ok(Some(identity(app, claims).await?))
}

/// The caller behind verified external claims: `sub` naming a User brings that User in.
async fn identity(app: &App, claims: Map<String, Value>) -> Result<Identity> {
    let user = match claims.get("sub").and_then(Value::as_str) {
        Some(sub) if crate::model::valid_id(sub) => load_user(app, sub).await?,
        _ => None,
    };
    Ok(Identity {
        root: false,
        client: None,
        user,
        jwt: Some(claims),
    })
}

/// An opaque token: asks the `type: opaque` introspectors (RFC 7662), first `active` wins.
/// `Ok(None)`: there are none.
pub async fn introspect_opaque(app: &App, token: &str) -> Result<Option<Identity>> {
    let all = introspectors(app).await?;
    let endpoints: Vec<&Value> = all
        .iter()
        .filter(|d| d.get("type").and_then(Value::as_str) == Some("opaque"))
        .collect();
    if endpoints.is_empty() {
        return Ok(None);
    }
    let key = crate::state::hash(token);
    let now = app.now();
    let cached = app.cache.external.introspected.borrow().get(&key).cloned();
    if let Some((until, answer)) = cached {
        if until > now {
            return match answer {
                Some(c) => Ok(Some(identity(app, c).await?)),
                None => Err(Error::InvalidToken("token is not active".into())),
            };
        }
    }
    let body = form_urlencoded::Serializer::new(String::new())
        .append_pair("token", token)
        .finish();
    for ep in endpoints {
        let Some(url) = ep
            .pointer("/introspection_endpoint/url")
            .and_then(Value::as_str)
        else {
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
            let until = answer
                .get("exp")
                .and_then(Value::as_i64)
                .map_or(now + INTROSPECTION_TTL, |e| e.min(now + INTROSPECTION_TTL));
            app.cache
                .external
                .introspected
                .borrow_mut()
                .insert(key, (until, Some(answer.clone())));
            return Ok(Some(identity(app, answer).await?));
        }
    }
    app.cache
        .external
        .introspected
        .borrow_mut()
        .insert(key, (now + INTROSPECTION_TTL.min(10), None));
    Err(Error::InvalidToken("token is not active".into()))
}
