//! Pure-Rust implementations of [`Crypto`](crate::platform::Crypto), [`Clock`] and [`Random`]:
//! what native tests and tools use. The wasm builds use WebCrypto instead (`src/webcrypto.rs`),
//! which is 5-10x faster in wasm; the signatures are the same bytes either way (Ed25519 is
//! deterministic, and ECDSA signatures from either side verify on the other).
//!
//! The signature code (`native`) is compiled natively only: leaving the curve arithmetic out of
//! the wasm builds keeps the Worker small.

use crate::platform::{Clock, Random};
#[cfg(any(not(target_arch = "wasm32"), feature = "rust-crypto"))]
pub use native::*;

#[cfg(any(not(target_arch = "wasm32"), feature = "rust-crypto"))]
mod native;

/// HMAC-SHA256 verification in constant time (RFC 7518 3.2). Shared by every [`Crypto`](crate::platform::Crypto): it is
/// fast in pure Rust, so WebCrypto has nothing to add.
pub fn hmac_sha256_verify(secret: &[u8], message: &[u8], signature: &[u8]) -> bool {
    use hmac::Mac;
    let Ok(mut mac) = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret) else {
        return false;
    };
    mac.update(message);
    mac.verify_slice(signature).is_ok()
}

/// The system clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0)
    }
}

/// The operating system's randomness (in wasm: `crypto.getRandomValues` through getrandom's
/// `js` feature).
#[derive(Debug, Default, Clone, Copy)]
pub struct OsRandom;

impl Random for OsRandom {
    fn fill(&self, buf: &mut [u8]) {
        // getrandom only fails when the platform has no randomness at all; refuse to go on
        // with predictable secrets rather than continue.
        if let Err(e) = getrandom::getrandom(buf) {
            panic!("no secure randomness available: {e}");
        }
    }
}
