//! OpenID Connect Core 1.0 section 2: the ID token, and the user claims shared with userinfo.

use super::{has_scope, Issue};
use crate::context::App;
use crate::error::{Error, Result};
use crate::http_util::{b64url, Request};
use crate::jwt;
use crate::model::user::User;
use crate::platform::SigAlg;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256, Sha512};

/// OIDC Core 3.1.3.6 `at_hash`: the left half of the hash of the access token, with the hash of
/// the signing algorithm (SHA-256 for ES256; SHA-512 for Ed25519, as the OIDC EdDSA errata says).
pub fn at_hash(alg: SigAlg, access_token: &str) -> String {
    match alg {
        SigAlg::Es256 | SigAlg::Rs256 | SigAlg::Hs256 | SigAlg::Rs384 | SigAlg::Es384 => {
            let d = Sha256::digest(access_token.as_bytes());
            b64url(&d[..16])
        }
        SigAlg::EdDsa => {
            let d = Sha512::digest(access_token.as_bytes());
            b64url(&d[..32])
        }
    }
}

/// Standard claims of a user for the granted scopes (OIDC Core 5.4): `profile` gives names,
/// `email` gives the email. Aidbox's `name.givenName`/`familyName` map to `given_name`/`family_name`.
pub fn user_claims(user: &User, scope: Option<&str>) -> Map<String, Value> {
    let mut c = Map::new();
    c.insert("sub".into(), json!(user.id));
    let doc = &user.doc;
    if has_scope(scope, "profile") {
        let given = doc.pointer("/name/givenName").and_then(Value::as_str);
        let family = doc.pointer("/name/familyName").and_then(Value::as_str);
        if let Some(g) = given {
            c.insert("given_name".into(), json!(g));
        }
        if let Some(f) = family {
            c.insert("family_name".into(), json!(f));
        }
        let full: Vec<&str> = [given, family].into_iter().flatten().collect();
        if !full.is_empty() {
            c.insert("name".into(), json!(full.join(" ")));
        }
    }
    if has_scope(scope, "email") {
        if let Some(e) = doc.get("email").and_then(Value::as_str) {
            c.insert("email".into(), json!(e));
        }
    }
    c
}

/// Signs an ID token for `user` alongside `access_token` (which expires at `exp`).
pub async fn sign(
    app: &App,
    req: &Request,
    what: &Issue<'_>,
    user: &User,
    access_token: &str,
    exp: i64,
) -> Result<String> {
    let key = app
        .config
        .keys
        .signing
        .as_ref()
        .ok_or_else(|| Error::Internal("SIGNING_KEY is not configured".into()))?;
    let now = app.now();
    let mut claims = jwt::time_claims(now, exp - now);
    claims.extend(user_claims(user, what.scope.as_deref()));
    claims.insert("iss".into(), json!(app.issuer(req)));
    claims.insert("aud".into(), json!(what.client.id));
    claims.insert("azp".into(), json!(what.client.id));
    claims.insert("at_hash".into(), json!(at_hash(key.alg, access_token)));
    if let Some(t) = what.auth_time {
        claims.insert("auth_time".into(), json!(t));
    }
    if let Some(n) = &what.nonce {
        claims.insert("nonce".into(), json!(n));
    }
    // SMART `fhirUser`: the URL of the FHIR resource for the user.
    if has_scope(what.scope.as_deref(), "fhirUser") {
        if let Some(r) = super::launch::fhir_user(user) {
            let url = what.client.fhir_user_url(&app.issuer(req), r);
            claims.insert("fhirUser".into(), json!(url));
        }
    }
    Ok(jwt::sign(
        app.platform.crypto.as_ref(),
        key,
        "JWT",
        &Value::Object(claims),
    )
    .await?)
}
