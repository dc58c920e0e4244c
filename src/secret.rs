//! Secrets: a string type whose Debug is redacted, constant-time comparison, and the slow KDF
//! that client secrets and user passwords are stored under.
//!
//! Stored form (PHC string format): `$pbkdf2-sha256$i=100000$<salt>$<hash>` with standard
//! base64 without padding, 16-byte salt, 32-byte PBKDF2-HMAC-SHA256 output (RFC 8018 5.2).
//! The iteration count travels with the hash, so raising it later re-hashes nothing and
//! breaks nothing. 100,000 is the most a deployed Worker's WebCrypto accepts.
//!
//! Imported forms (a migration from Aidbox), accepted on write and re-hashed to ours on first
//! use (docs/reference.md "Credentials exported from Aidbox"):
//! - `$s0$<params>$<salt>$<key>`: scrypt as Aidbox stores `User.password` (the lambdaworks
//!   format: params = hex of `log2(N) << 16 | r << 8 | p`, standard base64 16-byte salt and
//!   32-byte key). Bounded (see [`SCRYPT_MAX_LOG_N`]) so a stored hash cannot burn the CPU limit.
//! - `$sha256$<64 hex>`: the unsalted SHA-256 Aidbox (2410+) keeps of a `Client.secret`.

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
    parse_stored(stored).is_some() || parse_import(stored).is_some_and(|r| r.is_ok())
}

/// Largest scrypt `log2(N)` an imported hash may ask for (N = 65,536).
pub const SCRYPT_MAX_LOG_N: u8 = 16;
/// Largest scrypt `r` and `p` an imported hash may ask for.
pub const SCRYPT_MAX_R: u32 = 16;
pub const SCRYPT_MAX_P: u32 = 4;
/// Memory bound: `128 * r * N` at most 32 MiB (Aidbox's default N = 16384, r = 8 takes 16 MiB;
/// the hash in Aidbox's own user-management doc uses N = 32768, r = 8: exactly 32 MiB).
const SCRYPT_MAX_N_R: u64 = 1 << 18;
/// Work bound: `N * r * p` at most twice Aidbox's default (16384 * 8 * 1).
const SCRYPT_MAX_WORK: u64 = 1 << 18;

/// A parsed `$s0$` hash.
struct Scrypt {
    log_n: u8,
    r: u32,
    p: u32,
    salt: Vec<u8>,
    key: Vec<u8>,
}

fn b64_indifferent() -> base64::engine::GeneralPurpose {
    base64::engine::GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        base64::engine::GeneralPurposeConfig::new()
            .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
    )
}

fn parse_scrypt(rest: &str) -> Result<Scrypt, String> {
    let parts: Vec<&str> = rest.split('$').collect();
    let [params, salt, key] = parts[..] else {
        return Err("must be $s0$<params hex>$<base64 salt>$<base64 key>".into());
    };
    if params.is_empty() || params.len() > 8 || !params.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err("scrypt params must be 1 to 8 hex digits".into());
    }
    let v = u64::from_str_radix(params, 16).map_err(|_| "scrypt params are not hex")?;
    let (log_n, r, p) = ((v >> 16) as u8, ((v >> 8) & 0xff) as u32, (v & 0xff) as u32);
    if v >> 24 != 0 || log_n == 0 || r == 0 || p == 0 {
        return Err("scrypt params must have log2(N), r and p of at least 1".into());
    }
    let (n, r64, p64) = (1u64 << log_n.min(63), u64::from(r), u64::from(p));
    if log_n > SCRYPT_MAX_LOG_N
        || r > SCRYPT_MAX_R
        || p > SCRYPT_MAX_P
        || n * r64 > SCRYPT_MAX_N_R
        || n * r64 * p64 > SCRYPT_MAX_WORK
    {
        return Err(format!(
            "scrypt parameters too costly (N = 2^{log_n}, r = {r}, p = {p}); accepted: \
             N <= 2^{SCRYPT_MAX_LOG_N}, r <= {SCRYPT_MAX_R}, p <= {SCRYPT_MAX_P}, \
             128*r*N <= 32 MiB, N*r*p <= 2^18"
        ));
    }
    let salt = b64_indifferent()
        .decode(salt)
        .map_err(|_| "scrypt salt is not base64")?;
    let key = b64_indifferent()
        .decode(key)
        .map_err(|_| "scrypt key is not base64")?;
    if salt.len() != 16 || key.len() != 32 {
        return Err("scrypt salt must be 16 bytes and key 32 bytes ($s0$)".into());
    }
    Ok(Scrypt {
        log_n,
        r,
        p,
        salt,
        key,
    })
}

fn parse_sha256(rest: &str) -> Result<Vec<u8>, String> {
    if rest.len() != 64 || !rest.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err("must be $sha256$ and 64 hex digits".into());
    }
    Ok((0..32)
        .map(|i| u8::from_str_radix(&rest[2 * i..2 * i + 2], 16).unwrap_or(0))
        .collect())
}

/// A secret written through the admin API that is an imported hash: None when it does not
/// start like one (then it is a secret), `Some(Ok(stored))` for a well-formed hash,
/// `Some(Err(why))` for a malformed one or scrypt parameters past the bounds (a 422).
pub fn parse_import(secret: &str) -> Option<Result<String, String>> {
    if let Some(rest) = secret.strip_prefix("$s0$") {
        return Some(parse_scrypt(rest).map(|_| secret.to_string()));
    }
    if let Some(rest) = secret.strip_prefix("$sha256$") {
        return Some(
            parse_sha256(rest).and_then(|_| match secret.to_ascii_lowercase() {
                h if h.ends_with(SHA256_OF_EMPTY) => {
                    Err("is the hash of an empty secret, which is not accepted".into())
                }
                h => Ok(h),
            }),
        );
    }
    None
}

/// SHA-256 of the empty string: an imported `$sha256$` of it is refused (secrets are never
/// empty, `model::take_secret`).
const SHA256_OF_EMPTY: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/// Is this stored hash an imported one (to be re-hashed to ours on its first good check)?
pub fn is_imported_hash(stored: &str) -> bool {
    parse_import(stored).is_some()
}

/// Checks a secret against a stored hash in constant time. A malformed stored hash never matches.
pub async fn verify_secret(
    crypto: &dyn Crypto,
    secret: &str,
    stored: &str,
) -> Result<bool, BackendError> {
    // HMAC zero-pads short keys, so in PBKDF2-HMAC "s3cret" and "s3cret\0" are the same key:
    // a secret with a NUL never matches (and none can be stored, see `model::take_secret`).
    // Nor does an empty one: none can be stored either, but an imported hash may be of "" (a
    // `client_secret=` would then authenticate a confidential client).
    if secret.is_empty() || secret.contains('\0') {
        return Ok(false);
    }
    if let Some(rest) = stored.strip_prefix("$s0$") {
        let Ok(h) = parse_scrypt(rest) else {
            return Ok(false);
        };
        let Ok(params) = scrypt::Params::new(h.log_n, h.r, h.p, 32) else {
            return Ok(false);
        };
        let mut dk = [0u8; 32];
        if scrypt::scrypt(secret.as_bytes(), &h.salt, &params, &mut dk).is_err() {
            return Ok(false);
        }
        return Ok(ct_eq(&dk, &h.key));
    }
    if let Some(rest) = stored.strip_prefix("$sha256$") {
        use sha2::Digest;
        let Ok(want) = parse_sha256(rest) else {
            return Ok(false);
        };
        return Ok(ct_eq(&sha2::Sha256::digest(secret.as_bytes()), &want));
    }
    let Some(s) = parse_stored(stored) else {
        return Ok(false);
    };
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

#[cfg(test)]
mod tests {
    use super::*;

    fn verify(secret: &str, stored: &str) -> bool {
        futures::executor::block_on(verify_secret(&crate::crypto::RustCrypto, secret, stored))
            .unwrap()
    }

    // Computed independently with Python's hashlib.scrypt (n=16384, r=8, p=1, dklen=32, salt
    // bytes 0..16) and written in the lambdaworks `$s0$` format Aidbox stores: params
    // `e0801` = log2(16384) << 16 | 8 << 8 | 1.
    const AIDBOX_USER_HASH: &str =
        "$s0$e0801$AAECAwQFBgcICQoLDA0ODw==$TRT1SFnBOE/ASERmBuq6OdwkcX3DZFfzB9P+xcuzUu8=";

    #[test]
    fn lambdaworks_scrypt_vector() {
        assert_eq!(
            parse_import(AIDBOX_USER_HASH),
            Some(Ok(AIDBOX_USER_HASH.into()))
        );
        assert!(verify("my-secret-password", AIDBOX_USER_HASH));
        assert!(!verify("my-secret-passwore", AIDBOX_USER_HASH));
        assert!(!verify("my-secret-password\0", AIDBOX_USER_HASH));
        // Unpadded base64 is the same hash.
        let unpadded = AIDBOX_USER_HASH.replace('=', "");
        assert!(verify("my-secret-password", &unpadded));
    }

    #[test]
    fn sha256_client_secret_vector() {
        // printf verysecret | sha256sum
        let h = "$sha256$36dd292533174299fb0c34665df468bb881756ca9eaf9757d0cfde38f9ededa1";
        assert_eq!(parse_import(h), Some(Ok(h.into())));
        assert!(verify("verysecret", h));
        assert!(!verify("verysecreT", h));
        assert_eq!(
            parse_import(&h.to_ascii_uppercase().replace("$SHA256$", "$sha256$")),
            Some(Ok(h.into()))
        );
    }

    #[test]
    fn absurd_or_malformed_imports_are_refused() {
        let salt = "AAECAwQFBgcICQoLDA0ODw==";
        let key = "TRT1SFnBOE/ASERmBuq6OdwkcX3DZFfzB9P+xcuzUu8=";
        for params in [
            "1f0801", // N = 2^31
            "110801", // N = 2^17
            "e2001",  // r = 32
            "e0808",  // p = 8
            "f1001",  // 128 * 16 * 32768 = 64 MiB
            "e0803",  // N*r*p = 3 * 2^17
            "00801",
            "e0001",
            "e0800",
            "xyz",
            "",
            "1000e0801",
        ] {
            let h = format!("$s0${params}${salt}${key}");
            assert!(matches!(parse_import(&h), Some(Err(_))), "{h}");
            assert!(!verify("my-secret-password", &h), "{h}");
        }
        for h in [
            format!("$s0$e0801${salt}"),
            format!("$s0$e0801${salt}${key}$x"),
            format!("$s0$e0801$AAEC${key}"),
            format!("$s0$e0801${salt}$AAEC"),
            format!("$s0$e0801$!!!${key}"),
            "$sha256$abc".into(),
            "$sha256$zz6dd292533174299fb0c34665df468bb881756ca9eaf9757d0cfde38f9ededa1".into(),
        ] {
            assert!(matches!(parse_import(&h), Some(Err(_))), "{h}");
        }
        assert!(matches!(
            parse_import(&format!("$sha256${SHA256_OF_EMPTY}")),
            Some(Err(_))
        ));
        assert!(!verify("", &format!("$sha256${SHA256_OF_EMPTY}")));
        assert_eq!(parse_import("plain secret"), None);
        assert_eq!(parse_import("s0$e0801"), None);
    }
}
