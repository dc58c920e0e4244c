//! The pure-Rust [`Crypto`]: jwt-compact's Ed25519 and ES256, RSA and P-384 through RustCrypto,
//! PBKDF2 in Rust. Native builds only (tests, tools); the wasm builds use WebCrypto.

use super::hmac_sha256_verify;
use crate::platform::{BackendError, Crypto, PrivateKey, PublicKey, SigAlg};
use async_trait::async_trait;
use jwt_compact::alg::{Ed25519, Es256};
use jwt_compact::{Algorithm, AlgorithmSignature};

/// Signatures with jwt-compact's algorithms (ed25519-compact, p256), PBKDF2 with RustCrypto.
#[derive(Debug, Default, Clone, Copy)]
pub struct RustCrypto;

type EdSecret = <Ed25519 as Algorithm>::SigningKey;
type EdPublic = <Ed25519 as Algorithm>::VerifyingKey;
type EdSignature = <Ed25519 as Algorithm>::Signature;
type EsSecret = <Es256 as Algorithm>::SigningKey;
type EsPublic = <Es256 as Algorithm>::VerifyingKey;
type EsSignature = <Es256 as Algorithm>::Signature;

fn backend(e: impl std::fmt::Display) -> BackendError {
    BackendError(format!("crypto: {e}"))
}

/// The Ed25519 public key of a 32-byte seed.
pub fn ed25519_public_from_seed(seed: &[u8; 32]) -> [u8; 32] {
    let kp = ed25519_compact::KeyPair::from_seed(ed25519_compact::Seed::new(*seed));
    *kp.pk
}

/// The uncompressed P-256 public point `(x, y)` of a scalar, or None for an invalid scalar.
pub fn p256_public_from_scalar(d: &[u8; 32]) -> Option<([u8; 32], [u8; 32])> {
    use p256::elliptic_curve::sec1::ToEncodedPoint;
    let sk = p256::SecretKey::from_slice(d).ok()?;
    let point = sk.public_key().to_encoded_point(false);
    let x: [u8; 32] = (&point.x()?[..]).try_into().ok()?;
    let y: [u8; 32] = (&point.y()?[..]).try_into().ok()?;
    Some((x, y))
}

fn sec1(x: &[u8; 32], y: &[u8; 32]) -> Vec<u8> {
    let mut v = Vec::with_capacity(65);
    v.push(4);
    v.extend_from_slice(x);
    v.extend_from_slice(y);
    v
}

/// RS256/RS384 in pure Rust, natively only (the wasm builds verify RSA through WebCrypto).
#[cfg(not(target_arch = "wasm32"))]
fn rsa_verify(alg: SigAlg, n: &[u8], e: &[u8], message: &[u8], signature: &[u8]) -> bool {
    use jwt_compact::alg::{Rsa, RsaPublicKey, RsaSignature};
    let Ok(key) = RsaPublicKey::new(
        rsa::BigUint::from_bytes_be(n),
        rsa::BigUint::from_bytes_be(e),
    ) else {
        return false;
    };
    let Ok(sig) = RsaSignature::try_from_slice(signature) else {
        return false;
    };
    let rsa = match alg {
        SigAlg::Rs256 => Rsa::rs256(),
        SigAlg::Rs384 => Rsa::rs384(),
        _ => return false,
    };
    rsa.verify_signature(&sig, &key, message)
}

/// ES384 in pure Rust, natively only (the wasm builds verify it through WebCrypto).
#[cfg(not(target_arch = "wasm32"))]
fn es384_verify(x: &[u8; 48], y: &[u8; 48], message: &[u8], signature: &[u8]) -> bool {
    use p384::ecdsa::signature::Verifier;
    let mut sec1 = vec![4u8];
    sec1.extend_from_slice(x);
    sec1.extend_from_slice(y);
    let (Ok(key), Ok(sig)) = (
        p384::ecdsa::VerifyingKey::from_sec1_bytes(&sec1),
        p384::ecdsa::Signature::from_slice(signature),
    ) else {
        return false;
    };
    key.verify(message, &sig).is_ok()
}

// RSA and P-384 stay native only (their crates are not in a wasm build at all).
#[cfg(target_arch = "wasm32")]
fn rsa_verify(_: SigAlg, _: &[u8], _: &[u8], _: &[u8], _: &[u8]) -> bool {
    false
}

#[cfg(target_arch = "wasm32")]
fn es384_verify(_: &[u8; 48], _: &[u8; 48], _: &[u8], _: &[u8]) -> bool {
    false
}

#[async_trait(?Send)]
impl Crypto for RustCrypto {
    async fn pbkdf2_sha256(
        &self,
        password: &[u8],
        salt: &[u8],
        iterations: u32,
    ) -> Result<[u8; 32], BackendError> {
        let mut out = [0u8; 32];
        pbkdf2::pbkdf2_hmac::<sha2::Sha256>(password, salt, iterations, &mut out);
        Ok(out)
    }

    async fn sign(
        &self,
        alg: SigAlg,
        _key_id: &str,
        key: &PrivateKey,
        message: &[u8],
    ) -> Result<Vec<u8>, BackendError> {
        match (alg, key) {
            (SigAlg::EdDsa, PrivateKey::Ed25519 { seed, .. }) => {
                let kp = ed25519_compact::KeyPair::from_seed(ed25519_compact::Seed::new(*seed));
                let sk = EdSecret::from_slice(&kp.sk[..]).map_err(backend)?;
                Ok(Ed25519.sign(&sk, message).as_bytes().into_owned())
            }
            (SigAlg::Es256, PrivateKey::P256 { d, .. }) => {
                let sk = EsSecret::from_slice(d).map_err(backend)?;
                Ok(Es256.sign(&sk, message).as_bytes().into_owned())
            }
            _ => Err(BackendError("key does not fit the algorithm".into())),
        }
    }

    async fn verify(
        &self,
        alg: SigAlg,
        _key_id: &str,
        key: &PublicKey,
        message: &[u8],
        signature: &[u8],
    ) -> Result<bool, BackendError> {
        use jwt_compact::alg::VerifyingKey;
        Ok(match (alg, key) {
            (SigAlg::EdDsa, PublicKey::Ed25519(pk)) => {
                // jwt-compact's Ed25519 `try_from_slice` panics on any length but 64 (its own
                // verifier checks the length first); a token's signature can be any length.
                if signature.len() != ed25519_compact::Signature::BYTES {
                    return Ok(false);
                }
                let (Ok(pk), Ok(sig)) = (
                    EdPublic::from_slice(pk),
                    EdSignature::try_from_slice(signature),
                ) else {
                    return Ok(false);
                };
                Ed25519.verify_signature(&sig, &pk, message)
            }
            (SigAlg::Es256, PublicKey::P256 { x, y }) => {
                let (Ok(pk), Ok(sig)) = (
                    EsPublic::from_slice(&sec1(x, y)),
                    EsSignature::try_from_slice(signature),
                ) else {
                    return Ok(false);
                };
                Es256.verify_signature(&sig, &pk, message)
            }
            (SigAlg::Rs256 | SigAlg::Rs384, PublicKey::Rsa { n, e }) => {
                rsa_verify(alg, n, e, message, signature)
            }
            (SigAlg::Es384, PublicKey::P384 { x, y }) => es384_verify(x, y, message, signature),
            (SigAlg::Hs256, PublicKey::Hmac(secret)) => {
                hmac_sha256_verify(secret, message, signature)
            }
            _ => false,
        })
    }
}
