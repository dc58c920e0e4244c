//! Secrets: a string type whose Debug is redacted, constant-time comparison, and the slow KDF
//! that client secrets and user passwords are stored under.
//!
//! Stored form (PHC string format): `$pbkdf2-sha256$i=100000$<salt>$<hash>` with standard
//! base64 without padding, 16-byte salt, 32-byte PBKDF2-HMAC-SHA256 output (RFC 8018 5.2).
//! The iteration count travels with the hash, so raising it later re-hashes nothing and
//! breaks nothing. 100,000 is the most a deployed Worker's WebCrypto accepts.

use crate::platform::{BackendError, Crypto, Random};
use base64::Engine;
use std::fmt;
use subtle::ConstantTimeEq;

/// A secret string (client secret, password, admin secret). Debug and Display print
/// `<redacted>`; equality is constant-time.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl PartialEq for Secret {
    fn eq(&self, other: &Self) -> bool {
        ct_eq(self.0.as_bytes(), other.0.as_bytes())
    }
}

impl Eq for Secret {}

/// Constant-time byte comparison (the length is not secret).
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

/// Default PBKDF2 iterations: the most Cloudflare's WebCrypto allows in a deployed Worker.
pub const DEFAULT_ITERATIONS: u32 = 100_000;
const SALT_LEN: usize = 16;

fn b64() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::STANDARD_NO_PAD
}

/// Hashes a secret for storage.
pub async fn hash_secret(
    crypto: &dyn Crypto,
    random: &dyn Random,
    secret: &str,
    iterations: u32,
) -> Result<String, BackendError> {
    let mut salt = [0u8; SALT_LEN];
    random.fill(&mut salt);
    let dk = crypto
        .pbkdf2_sha256(secret.as_bytes(), &salt, iterations)
        .await?;
    Ok(format!(
        "$pbkdf2-sha256$i={iterations}${}${}",
        b64().encode(salt),
        b64().encode(dk)
    ))
}

/// A parsed stored hash.
struct Stored {
    iterations: u32,
    salt: Vec<u8>,
    hash: Vec<u8>,
}

fn parse_stored(stored: &str) -> Option<Stored> {
    let mut parts = stored.split('$');
    if !parts.next()?.is_empty() || parts.next()? != "pbkdf2-sha256" {
        return None;
    }
    let iterations = parts.next()?.strip_prefix("i=")?.parse().ok()?;
    let salt = b64().decode(parts.next()?).ok()?;
    let hash = b64().decode(parts.next()?).ok()?;
    if parts.next().is_some() || hash.len() != 32 || !(1..=10_000_000).contains(&iterations) {
        return None;
    }
    Some(Stored {
        iterations,
        salt,
        hash,
    })
}

/// Is this a hash we can check? Used to validate stored records.
pub fn is_valid_hash(stored: &str) -> bool {
    parse_stored(stored).is_some()
}

/// Checks a secret against a stored hash in constant time. A malformed stored hash never matches.
pub async fn verify_secret(
    crypto: &dyn Crypto,
    secret: &str,
    stored: &str,
) -> Result<bool, BackendError> {
    let Some(s) = parse_stored(stored) else {
        return Ok(false);
    };
    // HMAC zero-pads short keys, so in PBKDF2-HMAC "s3cret" and "s3cret\0" are the same key:
    // a secret with a NUL never matches (and none can be stored, see `model::take_secret`).
    if secret.contains('\0') {
        return Ok(false);
    }
    let dk = crypto
        .pbkdf2_sha256(secret.as_bytes(), &s.salt, s.iterations)
        .await?;
    Ok(ct_eq(&dk, &s.hash))
}

/// Spends the same work as a real check, so that an unknown user answers as slowly as a known
/// one with a wrong password (no user enumeration by timing).
pub async fn burn_check(crypto: &dyn Crypto, secret: &str, iterations: u32) {
    let _ = crypto
        .pbkdf2_sha256(secret.as_bytes(), &[0u8; SALT_LEN], iterations)
        .await;
}
