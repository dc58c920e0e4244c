//! `jwt::verify` of one EdDSA token, exported to node (see Cargo.toml). Two ways:
//!
//! - `verify_rust(n)`: the signature in pure Rust inside wasm (RustCrypto), as natively;
//! - `verify_host(n)`: the signature by the host (`env.host_ed25519_verify`, node's crypto), the
//!   rest (parsing, header and claim checks) in wasm: the shape of the Worker, whose signatures go
//!   through WebCrypto.
//!
//! Each returns how many of the `n` verifications passed, so a broken setup shows as 0.

#[path = "../../common/cases.rs"]
mod cases;

use async_trait::async_trait;
use edge_authorizer::jwt::keys::KeySet;
use edge_authorizer::platform::{BackendError, Crypto, PrivateKey, PublicKey, SigAlg};
use std::sync::OnceLock;

extern "C" {
    /// 1 when `sig` is a valid Ed25519 signature of `msg` by the 32-byte public key `key`.
    fn host_ed25519_verify(
        msg: *const u8,
        msg_len: usize,
        sig: *const u8,
        sig_len: usize,
        key: *const u8,
    ) -> u32;
}

struct HostCrypto;

#[async_trait(?Send)]
impl Crypto for HostCrypto {
    async fn pbkdf2_sha256(&self, _: &[u8], _: &[u8], _: u32) -> Result<[u8; 32], BackendError> {
        Err(BackendError("not in this bench".into()))
    }

    /// Deterministic Ed25519 (RFC 8032, no noise): RustCrypto's signing asks for randomness,
    /// which a bare wasm32 module has no import for. Only makes the token, is not timed.
    async fn sign(
        &self,
        _: SigAlg,
        _: &str,
        key: &PrivateKey,
        message: &[u8],
    ) -> Result<Vec<u8>, BackendError> {
        match key {
            PrivateKey::Ed25519 { seed, .. } => {
                let kp = ed25519_compact::KeyPair::from_seed(ed25519_compact::Seed::new(*seed));
                Ok(kp.sk.sign(message, None).to_vec())
            }
            _ => Err(BackendError("only Ed25519 in this bench".into())),
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
        match (alg, key) {
            (SigAlg::EdDsa, PublicKey::Ed25519(x)) => Ok(unsafe {
                host_ed25519_verify(
                    message.as_ptr(),
                    message.len(),
                    signature.as_ptr(),
                    signature.len(),
                    x.as_ptr(),
                )
            } == 1),
            _ => Ok(false),
        }
    }
}

fn state() -> &'static (KeySet, String) {
    static STATE: OnceLock<(KeySet, String)> = OnceLock::new();
    STATE.get_or_init(|| {
        let keys = cases::keyset(&cases::ed25519_jwk());
        let token = cases::sign_with(&HostCrypto, &keys);
        (keys, token)
    })
}

#[no_mangle]
pub extern "C" fn verify_rust(n: u32) -> u32 {
    let (keys, token) = state();
    (0..n).filter(|_| cases::verify_rust(keys, token)).count() as u32
}

#[no_mangle]
pub extern "C" fn verify_host(n: u32) -> u32 {
    let (keys, token) = state();
    (0..n)
        .filter(|_| cases::verify(&HostCrypto, keys, token))
        .count() as u32
}
