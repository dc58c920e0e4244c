//! Verified access tokens of ours, remembered per isolate so that a client calling the API with
//! the same bearer token does not pay for the signature check on every request.
//!
//! The key is the token itself (hashing it with SHA-256 cost more than the lookup saves in
//! wasm); an entry also holds the issuer and audience it was checked against, so a token verified
//! for one audience is never taken as verified for another. An entry lives until
//! the token's `exp` (plus the clock leeway the verifier allows): an expired token misses and is
//! refused by the full check. Only the signature and claim checks are skipped: revocation, the
//! client and the user (with their credential generation, `edge_gen`) are checked on every
//! request (they are cached separately, and a revocation or admin change through this isolate
//! applies at once). Failures are never cached. A DPoP-bound token's proof (RFC 9449 7) is checked
//! after this cache on every request ([`crate::oauth::dpop::check_api`]): a hit never stands in
//! for a proof.

use serde_json::{Map, Value};
use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

/// Most tokens remembered per isolate (about 2 KB each with their claims).
pub const MAX_TOKENS: usize = 4_096;

pub type Claims = Rc<Map<String, Value>>;

#[derive(Default)]
pub struct TokenCache {
    entries: RefCell<HashMap<String, Entry>>,
}

struct Entry {
    issuer: String,
    audience: String,
    until: i64,
    claims: Claims,
}

/// Only the size: the claims are nobody's business in a log line.
impl std::fmt::Debug for TokenCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenCache")
            .field("len", &self.len())
            .finish()
    }
}

impl TokenCache {
    /// The claims of `token` verified before for (`issuer`, `audience`), if it has not
    /// expired by `now`.
    pub fn get(&self, token: &str, issuer: &str, audience: &str, now: i64) -> Option<Claims> {
        let entries = self.entries.borrow();
        let e = entries.get(token)?;
        (e.issuer == issuer && e.audience == audience && now <= e.until).then(|| e.claims.clone())
    }

    /// Remembers verified claims until `until` (the token's `exp` plus leeway). Past
    /// [`MAX_TOKENS`] expired entries go first; if none has expired the cache starts over.
    pub fn insert(
        &self,
        token: &str,
        issuer: &str,
        audience: &str,
        until: i64,
        now: i64,
        claims: Claims,
    ) {
        let mut entries = self.entries.borrow_mut();
        if entries.len() >= MAX_TOKENS {
            entries.retain(|_, e| e.until >= now);
            if entries.len() >= MAX_TOKENS {
                entries.clear();
            }
        }
        let entry = Entry {
            issuer: issuer.to_string(),
            audience: audience.to_string(),
            until,
            claims,
        };
        entries.insert(token.to_string(), entry);
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
        c.insert("t", "https://iss", "https://aud", 100, 10, claims(1));
        assert_eq!(
            c.get("t", "https://iss", "https://aud", 100).unwrap()["n"],
            1
        );
        assert!(c.get("t", "https://iss", "https://aud", 101).is_none());
    }

    #[test]
    fn an_entry_is_bound_to_its_issuer_and_audience() {
        let c = TokenCache::default();
        c.insert("t", "a", "b", 100, 0, claims(1));
        assert!(c.get("t", "a", "b", 0).is_some());
        assert!(c.get("t", "a", "c", 0).is_none());
        assert!(c.get("t", "x", "b", 0).is_none());
        assert!(c.get("u", "a", "b", 0).is_none());
    }

    #[test]
    fn bounded_expired_entries_go_first() {
        let c = TokenCache::default();
        for i in 0..MAX_TOKENS as i64 {
            // Half of them expired by t=50.
            let until = if i % 2 == 0 { 10 } else { 1_000 };
            c.insert(&i.to_string(), "i", "a", until, 0, claims(i));
        }
        assert_eq!(c.len(), MAX_TOKENS);
        c.insert("new", "i", "a", 1_000, 50, claims(-1));
        assert_eq!(c.len(), MAX_TOKENS / 2 + 1);
        assert!(c.get("1", "i", "a", 50).is_some());
        assert!(c.get("new", "i", "a", 50).is_some());
        // All live: it starts over rather than growing.
        let full = TokenCache::default();
        for i in 0..MAX_TOKENS as i64 {
            full.insert(&i.to_string(), "i", "a", 1_000, 0, claims(i));
        }
        full.insert("x", "i", "a", 1_000, 0, claims(0));
        assert_eq!(full.len(), 1);
    }
}
