//! JSON Web Tokens: issuing our access tokens and verifying them.
//!
//! jwt-compact parses tokens (header, claims, base64url) and checks the time claims; the
//! signature itself goes through the [`Crypto`] trait so that the Worker can use WebCrypto.
//! Verification is strict by default (DESIGN.md rule 6, RFC 8725): the algorithm is pinned by
//! the key the `kid` names, `none` never verifies, `jku`/`x5u`/`x5c`/`jwk` headers and any `crit`
//! are refused, and `iss`, `aud`, `exp` are required.

pub mod flat;
pub mod keys;

use crate::platform::{BackendError, Crypto};
use chrono::{DateTime, Duration, Utc};
use jwt_compact::{Claims, TimeOptions, UntrustedToken};
use keys::{KeySet, SigningKey};
use serde_json::{Map, Value};
use std::fmt;

/// RFC 9068 2.1: the `typ` of a JWT access token.
pub const ACCESS_TOKEN_TYP: &str = "at+jwt";

/// Longest token we parse; longer ones are refused before any decoding.
pub const MAX_TOKEN_LEN: usize = 8 * 1024;

/// Signs a compact JWS (RFC 7515 7.1) over `claims` with our signing key.
pub async fn sign(
    crypto: &dyn Crypto,
    key: &SigningKey,
    typ: &str,
    claims: &Value,
) -> Result<String, BackendError> {
    sign_json(
        crypto,
        key,
        typ,
        &serde_json::to_vec(claims).unwrap_or_default(),
    )
    .await
}

/// Signs a compact JWS over claims given as JSON text (see [`flat::FlatJson`]): the header
/// `{"alg","kid","typ"}` and the claims are base64url-encoded once, into the token itself.
pub async fn sign_json(
    crypto: &dyn Crypto,
    key: &SigningKey,
    typ: &str,
    claims: &[u8],
) -> Result<String, BackendError> {
    use base64::Engine;
    let mut header = flat::FlatJson::new();
    header
        .str("alg", key.alg.jws_name())
        .str("typ", typ)
        .str("kid", &key.kid);
    let header = header.finish();
    let engine = &base64::engine::general_purpose::URL_SAFE_NO_PAD;
    // 4/3 of header and claims, a dot, and room for a signature of up to 512 bytes.
    let mut token = String::with_capacity((header.len() + claims.len()) * 4 / 3 + 700);
    engine.encode_string(header.as_bytes(), &mut token);
    token.push('.');
    engine.encode_string(claims, &mut token);
    let sig = crypto
        .sign(key.alg, &key.kid, &key.private, token.as_bytes())
        .await?;
    token.push('.');
    engine.encode_string(&sig, &mut token);
    Ok(token)
}

/// The standard time claims of a new token, through jwt-compact's `Claims`.
pub fn time_claims(now: i64, lifetime_secs: i64) -> Map<String, Value> {
    let now_dt = DateTime::<Utc>::from_timestamp(now, 0).unwrap_or_default();
    let opts = TimeOptions::new(Duration::zero(), move || now_dt);
    let claims = Claims::new(Map::<String, Value>::new())
        .set_duration_and_issuance(&opts, Duration::seconds(lifetime_secs));
    match serde_json::to_value(&claims) {
        Ok(Value::Object(m)) => m,
        _ => Map::new(),
    }
}

/// Why a token was refused. The names match the browser verifier's error codes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VerifyError {
    Malformed(String),
    AlgNotAllowed(String),
    UnknownKey,
    BadSignature,
    Expired,
    NotYetValid,
    WrongIssuer,
    WrongAudience,
    WrongType,
    /// The crypto backend failed; not the token's fault.
    Backend(BackendError),
}

impl VerifyError {
    pub fn code(&self) -> &'static str {
        match self {
            VerifyError::Malformed(_) => "malformed",
            VerifyError::AlgNotAllowed(_) => "alg_not_allowed",
            VerifyError::UnknownKey => "unknown_key",
            VerifyError::BadSignature => "bad_signature",
            VerifyError::Expired => "expired",
            VerifyError::NotYetValid => "not_yet_valid",
            VerifyError::WrongIssuer => "wrong_issuer",
            VerifyError::WrongAudience => "wrong_audience",
            VerifyError::WrongType => "wrong_type",
            VerifyError::Backend(_) => "unavailable",
        }
    }
}

impl fmt::Display for VerifyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VerifyError::Malformed(d) => write!(f, "token is malformed: {d}"),
            VerifyError::AlgNotAllowed(a) => write!(f, "algorithm {a} is not allowed for this key"),
            VerifyError::UnknownKey => f.write_str("token is signed by an unknown key"),
            VerifyError::BadSignature => f.write_str("token signature is invalid"),
            VerifyError::Expired => f.write_str("token has expired"),
            VerifyError::NotYetValid => f.write_str("token is not valid yet"),
            VerifyError::WrongIssuer => f.write_str("token has another issuer"),
            VerifyError::WrongAudience => f.write_str("token is meant for another audience"),
            VerifyError::WrongType => f.write_str("token is not an access token"),
            VerifyError::Backend(e) => write!(f, "crypto backend failed: {e}"),
        }
    }
}

/// What a verified token must satisfy.
#[derive(Debug, Clone)]
pub struct Expectations<'a> {
    pub issuer: &'a str,
    /// Required `aud` (a string, or one entry of an array); None: not checked.
    pub audience: Option<&'a str>,
    /// Required `typ` header (compared case-insensitively, `application/` prefix allowed).
    pub typ: Option<&'a str>,
    /// Seconds of clock skew tolerated on `exp` and `nbf`.
    pub leeway: i64,
    pub now: i64,
}

/// Header members we look at beyond those jwt-compact names.
#[derive(Debug, Clone, Default, serde::Deserialize)]
struct ExtraHeader {
    #[serde(default)]
    crit: Option<Value>,
    #[serde(default)]
    jwk: Option<Value>,
    #[serde(default)]
    x5c: Option<Value>,
}

fn typ_matches(actual: Option<&str>, expected: &str) -> bool {
    let Some(t) = actual else { return false };
    let t = t.to_ascii_lowercase();
    t == expected || t.strip_prefix("application/") == Some(expected)
}

/// Verifies one of our own tokens and returns its claims.
pub async fn verify(
    crypto: &dyn Crypto,
    keys: &KeySet,
    token: &str,
    expect: &Expectations<'_>,
) -> Result<Map<String, Value>, VerifyError> {
    let untrusted = parse_untrusted(token)?;
    let key = keys
        .resolve(untrusted.header().key_id.as_deref())
        .ok_or(VerifyError::UnknownKey)?;
    verify_parsed(crypto, &untrusted, &[key], token, expect).await
}

/// Verifies a token against a short list of keys without `kid`s (a TokenIntrospector's
/// `jwt.keys`): only the keys whose pinned algorithm is the header's are tried, so a token
/// never picks how a key is used (an HS256 token is never checked against an RSA key).
pub async fn verify_any(
    crypto: &dyn Crypto,
    keys: &[keys::VerifyingKey],
    token: &str,
    expect: &Expectations<'_>,
) -> Result<Map<String, Value>, VerifyError> {
    let untrusted = parse_untrusted(token)?;
    let alg = untrusted.algorithm();
    let candidates: Vec<&keys::VerifyingKey> = keys.iter().filter(|k| k.alg.named(alg)).collect();
    if candidates.is_empty() {
        return Err(VerifyError::AlgNotAllowed(shown_alg(alg)));
    }
    verify_parsed(crypto, &untrusted, &candidates, token, expect).await
}

/// An algorithm name fit for an error message.
fn shown_alg(alg: &str) -> String {
    alg.chars()
        .take(16)
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '?' })
        .collect()
}

/// Parses a token and refuses headers we never accept.
fn parse_untrusted(token: &str) -> Result<UntrustedToken<'_, ExtraHeader>, VerifyError> {
    if token.len() > MAX_TOKEN_LEN {
        return Err(VerifyError::Malformed("token is too long".into()));
    }
    let untrusted = UntrustedToken::<ExtraHeader>::try_from(token)
        .map_err(|e| VerifyError::Malformed(e.to_string()))?;
    let header = untrusted.header();
    // RFC 8725 3.1 and 2.8: never fetch or trust keys named or carried by the token itself
    // (a URL, an embedded JWK or an embedded certificate chain).
    if header.key_set_url.is_some()
        || header.certificate_url.is_some()
        || header.other_fields.jwk.is_some()
        || header.other_fields.x5c.is_some()
    {
        return Err(VerifyError::Malformed(
            "jku, x5u, x5c and jwk headers are not accepted".into(),
        ));
    }
    // RFC 7515 4.1.11: we understand no extensions, so any `crit` is refused.
    if header.other_fields.crit.is_some() {
        return Err(VerifyError::Malformed("unsupported crit header".into()));
    }
    let alg = untrusted.algorithm();
    if alg.eq_ignore_ascii_case("none") {
        return Err(VerifyError::AlgNotAllowed(alg.to_string()));
    }
    Ok(untrusted)
}

/// The signature (by the first of `keys` that verifies it; each key only for its own
/// algorithm) and the claims of a parsed token.
async fn verify_parsed(
    crypto: &dyn Crypto,
    untrusted: &UntrustedToken<'_, ExtraHeader>,
    keys: &[&keys::VerifyingKey],
    token: &str,
    expect: &Expectations<'_>,
) -> Result<Map<String, Value>, VerifyError> {
    let alg = untrusted.algorithm();
    if let Some(t) = expect.typ {
        if !typ_matches(untrusted.header().token_type.as_deref(), t) {
            return Err(VerifyError::WrongType);
        }
    }
    let signed = token
        .rsplit_once('.')
        .map(|(s, _)| s)
        .ok_or_else(|| VerifyError::Malformed("no signature".into()))?;
    let mut verified = false;
    for key in keys {
        if !key.alg.named(alg) {
            return Err(VerifyError::AlgNotAllowed(alg.to_string()));
        }
        if crypto
            .verify(
                key.alg,
                &key.kid,
                &key.public,
                signed.as_bytes(),
                untrusted.signature_bytes(),
            )
            .await
            .map_err(VerifyError::Backend)?
        {
            verified = true;
            break;
        }
    }
    if !verified {
        return Err(VerifyError::BadSignature);
    }
    let claims: Claims<Map<String, Value>> = untrusted
        .deserialize_claims_unchecked()
        .map_err(|e| VerifyError::Malformed(e.to_string()))?;
    check_claims(&claims, expect)?;
    let mut out = claims.custom;
    for (name, t) in [
        ("exp", claims.expiration),
        ("nbf", claims.not_before),
        ("iat", claims.issued_at),
    ] {
        if let Some(t) = t {
            out.insert(name.into(), Value::from(t.timestamp()));
        }
    }
    Ok(out)
}

/// `exp` (required), `nbf`, `iss`, `aud` (RFC 7519 4.1, RFC 9068 4).
fn check_claims(
    claims: &Claims<Map<String, Value>>,
    expect: &Expectations<'_>,
) -> Result<(), VerifyError> {
    use jwt_compact::ValidationError as V;
    let now = DateTime::<Utc>::from_timestamp(expect.now, 0).unwrap_or_default();
    let opts = TimeOptions::new(Duration::seconds(expect.leeway), move || now);
    claims.validate_expiration(&opts).map_err(|e| match e {
        V::Expired => VerifyError::Expired,
        other => VerifyError::Malformed(other.to_string()),
    })?;
    if claims.not_before.is_some() {
        claims
            .validate_maturity(&opts)
            .map_err(|_| VerifyError::NotYetValid)?;
    }
    if claims.custom.get("iss").and_then(Value::as_str) != Some(expect.issuer) {
        return Err(VerifyError::WrongIssuer);
    }
    let Some(audience) = expect.audience else {
        return Ok(());
    };
    let aud_ok = match claims.custom.get("aud") {
        Some(Value::String(a)) => a == audience,
        Some(Value::Array(list)) => list.iter().any(|a| a.as_str() == Some(audience)),
        _ => false,
    };
    if !aud_ok {
        return Err(VerifyError::WrongAudience);
    }
    Ok(())
}
