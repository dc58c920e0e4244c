//! Proof Key for Code Exchange (RFC 7636). Only `S256`: `plain` is refused (RFC 9700 2.1.1).

use crate::http_util::b64url;
use crate::secret::ct_eq;
use sha2::{Digest, Sha256};

/// RFC 7636 4.1/4.2: 43 to 128 characters of `[A-Za-z0-9-._~]`.
pub fn valid_verifier_or_challenge(s: &str) -> bool {
    (43..=128).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

/// RFC 7636 4.2: `BASE64URL(SHA256(ASCII(code_verifier)))`.
pub fn s256(verifier: &str) -> String {
    b64url(&Sha256::digest(verifier.as_bytes()))
}

/// RFC 7636 4.6, in constant time.
pub fn verify(verifier: &str, challenge: &str) -> bool {
    valid_verifier_or_challenge(verifier) && ct_eq(s256(verifier).as_bytes(), challenge.as_bytes())
}
