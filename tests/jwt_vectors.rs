//! Spec test vectors: RFC 8037 (Ed25519 JWK, thumbprint and JWS), a P-256 key whose public point
//! was computed by OpenSSL, and PBKDF2-HMAC-SHA256, run through our key parsing and crypto.

use edge_authorizer::crypto::RustCrypto;
use edge_authorizer::jwt::keys::KeySet;
use edge_authorizer::platform::{Crypto, PublicKey, SigAlg};
use futures::executor::block_on;

/// RFC 8037 appendix A.1 private key (A.2 public key).
const RFC8037_JWK: &str = r#"{"kty":"OKP","crv":"Ed25519","d":"nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}"#;

#[test]
fn rfc8037_a3_thumbprint_is_the_default_kid() {
    let set = KeySet::from_config(Some(RFC8037_JWK), None).unwrap();
    assert_eq!(
        set.signing.unwrap().kid,
        "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"
    );
}

/// RFC 8037 A.4/A.5: the published JWS verifies with the A.2 public key. (jwt-compact's
/// ed25519-compact signs with added noise, so our own signature differs from A.4 but verifies.)
#[test]
fn rfc8037_a4_signature() {
    let set = KeySet::from_config(Some(RFC8037_JWK), None).unwrap();
    let key = set.signing.unwrap();
    let input = "eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc";
    let published = edge_authorizer::http_util::b64url_decode(
        "hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7sVvpAr_MuM0KAg",
    )
    .unwrap();
    assert!(block_on(RustCrypto.verify(
        SigAlg::EdDsa,
        &key.kid,
        &key.public,
        input.as_bytes(),
        &published
    ))
    .unwrap());
    assert!(!block_on(RustCrypto.verify(
        SigAlg::EdDsa,
        &key.kid,
        &key.public,
        b"other",
        &published
    ))
    .unwrap());
    let ours =
        block_on(RustCrypto.sign(SigAlg::EdDsa, &key.kid, &key.private, input.as_bytes())).unwrap();
    assert!(block_on(RustCrypto.verify(
        SigAlg::EdDsa,
        &key.kid,
        &key.public,
        input.as_bytes(),
        &ours
    ))
    .unwrap());
    // A key of the wrong type never verifies.
    let p = PublicKey::P256 {
        x: [1; 32],
        y: [2; 32],
    };
    assert!(!block_on(RustCrypto.verify(SigAlg::EdDsa, "x", &p, input.as_bytes(), &ours)).unwrap());
}

/// A P-256 key whose x and y OpenSSL derived from d; ECDSA signatures are randomised, so sign
/// and verify.
#[test]
fn es256_keys_sign_and_verify() {
    let jwk = r#"{"kty":"EC","crv":"P-256","x":"ABvrRyv8KccQkprmxPvgH3BuTNbLrqD2I_ayzP2NdS0","y":"4XcKJt8RAssgR7-6_u52JEDQVo2exB6YU4pBVpqlOfM","d":"jpsQnnGQmL-YBIffH1136cLOK3pDYHVn4gDoemcPmRM","kid":"es"}"#;
    let set = KeySet::from_config(Some(jwk), None).unwrap();
    let key = set.signing.clone().unwrap();
    assert_eq!(key.alg, SigAlg::Es256);
    let sig = block_on(RustCrypto.sign(SigAlg::Es256, "es", &key.private, b"payload")).unwrap();
    assert_eq!(sig.len(), 64);
    assert!(
        block_on(RustCrypto.verify(SigAlg::Es256, "es", &key.public, b"payload", &sig)).unwrap()
    );
    assert!(
        !block_on(RustCrypto.verify(SigAlg::Es256, "es", &key.public, b"payloaD", &sig)).unwrap()
    );
    assert_eq!(set.jwks()["keys"][0]["alg"], "ES256");
}

/// RFC 6070-style check of PBKDF2-HMAC-SHA256 (the vector from RFC 7914 section 11).
#[test]
fn pbkdf2_sha256_vector() {
    let out = block_on(RustCrypto.pbkdf2_sha256(b"passwd", b"salt", 1)).unwrap();
    let hex: String = out.iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(
        hex,
        "55ac046e56e3089fec1691c22544b605f94185216dde0465e68b9d57c20dacbc"
    );
}

/// The probe the Worker runs once per isolate (its wasm key parser skips the curve maths): a
/// signing key whose private part belongs to another public key is caught, a good pair passes.
#[test]
fn signing_pair_probe_catches_a_mismatched_key() {
    let good = KeySet::from_config(Some(RFC8037_JWK), None).unwrap();
    assert_eq!(block_on(good.check_signing_pair(&RustCrypto)), Ok(()));

    let mut bad = good.clone();
    let signing = bad.signing.as_mut().unwrap();
    signing.public = PublicKey::Ed25519([9u8; 32]);
    let err = block_on(bad.check_signing_pair(&RustCrypto)).unwrap_err();
    assert!(err.contains("does not belong"), "{err}");

    // No signing key (a verify-only deployment): nothing to check.
    assert_eq!(
        block_on(KeySet::default().check_signing_pair(&RustCrypto)),
        Ok(())
    );
}
