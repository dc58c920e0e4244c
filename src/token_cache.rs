//! Verified access tokens of ours, remembered per isolate so that a client calling the API with
//! the same bearer token does not pay for the signature check on every request.
//!
//! The key is SHA-256 over the token and the issuer and audience it was checked against, so a
//! token verified for one audience is never taken as verified for another. An entry lives until
//! the token's `exp` (plus the clock leeway the verifier allows): an expired token misses and is
//! refused by the full check. Only the signature and claim checks are skipped: revocation, the
//! client and the user are checked on every request (they are cached separately, and a
//! revocation through this isolate applies at once). Failures are never cached.

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

/// Most tokens remembered per isolate (about 1 KB each with their claims).
pub const MAX_TOKENS: usize = 4_096;

pub type Claims = Rc<Map<String, Value>>;

#[derive(Default)]
pub struct TokenCache {
    entries: RefCell<HashMap<[u8; 32], (i64, Claims)>>,
}

/// Only the size: the claims are nobody's business in a log line.
impl std::fmt::Debug for TokenCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenCache")
            .field("len", &self.len())
            .finish()
    }
}

/// The cache key of `token` verified for (`issuer`, `audience`).
pub fn key(token: &str, issuer: &str, audience: &str) -> [u8; 32] {
    let mut h = Sha256::new();
    for part in [token, issuer, audience] {
        h.update((part.len() as u64).to_be_bytes());
        h.update(part.as_bytes());
    }
    h.finalize().into()
}

impl TokenCache {
    /// The claims of a token verified before, if it has not expired by `now`.
    pub fn get(&self, key: &[u8; 32], now: i64) -> Option<Claims> {
        let entries = self.entries.borrow();
        let (until, claims) = entries.get(key)?;
        (now <= *until).then(|| claims.clone())
    }

    /// Remembers verified claims until `until` (the token's `exp` plus leeway). Past
    /// [`MAX_TOKENS`] expired entries go first; if none has expired the cache starts over.
    pub fn insert(&self, key: [u8; 32], until: i64, now: i64, claims: Claims) {
        let mut entries = self.entries.borrow_mut();
        if entries.len() >= MAX_TOKENS {
            entries.retain(|_, (u, _)| *u >= now);
            if entries.len() >= MAX_TOKENS {
                entries.clear();
            }
        }
        entries.insert(key, (until, claims));
    }

    pub fn len(&self) -> usize {
        self.entries.borrow().len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.borrow().is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(n: i64) -> Claims {
        let mut m = Map::new();
        m.insert("n".into(), Value::from(n));
        Rc::new(m)
    }

    #[test]
    fn hits_until_exp_then_misses() {
        let c = TokenCache::default();
        let k = key("t", "https://iss", "https://aud");
        c.insert(k, 100, 10, claims(1));
        assert_eq!(c.get(&k, 100).unwrap()["n"], 1);
        assert!(c.get(&k, 101).is_none());
    }

    #[test]
    fn the_key_binds_issuer_and_audience() {
        assert_ne!(key("t", "a", "b"), key("t", "a", "c"));
        assert_ne!(key("t", "a", "b"), key("t", "b", "b"));
        // Length prefixes: moving a character between parts changes the key.
        assert_ne!(key("ab", "c", "d"), key("a", "bc", "d"));
    }

    #[test]
    fn bounded_expired_entries_go_first() {
        let c = TokenCache::default();
        for i in 0..MAX_TOKENS as i64 {
            // Half of them expired by t=50.
            let until = if i % 2 == 0 { 10 } else { 1_000 };
            c.insert(key(&i.to_string(), "i", "a"), until, 0, claims(i));
        }
        assert_eq!(c.len(), MAX_TOKENS);
        c.insert(key("new", "i", "a"), 1_000, 50, claims(-1));
        assert_eq!(c.len(), MAX_TOKENS / 2 + 1);
        assert!(c.get(&key("1", "i", "a"), 50).is_some());
        assert!(c.get(&key("new", "i", "a"), 50).is_some());
        // All live: it starts over rather than growing.
        let full = TokenCache::default();
        for i in 0..MAX_TOKENS as i64 {
            full.insert(key(&i.to_string(), "i", "a"), 1_000, 0, claims(i));
        }
        full.insert(key("x", "i", "a"), 1_000, 0, claims(0));
        assert_eq!(full.len(), 1);
    }
}
