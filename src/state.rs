//! Typed records over the [`StateStore`] (the Durable Object): authorization codes, refresh-token
//! families, login sessions and access-token revocations. All single-use and rotation logic is
//! here, in the pure core, on top of one atomic primitive: compare-and-swap per key.
//!
//! Keys (README "Storage"): `code/{sha256(code)}`, `rt/{family id}`, `session/{sha256(id)}`.
//! Codes, refresh secrets and session ids are stored only as SHA-256 hashes.

use crate::app::App;
use crate::error::{Error, Result};
use crate::http_util::b64url;
use crate::platform::Cas;
use serde::{de::DeserializeOwned, Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::cell::{Cell, RefCell};
use std::collections::HashMap;

/// base64url(SHA-256(s)): how codes, refresh secrets and session ids are keyed.
pub fn hash(s: &str) -> String {
    b64url(&Sha256::digest(s.as_bytes()))
}

/// A new 256-bit random token, base64url.
pub fn random_token(app: &App) -> String {
    let mut b = [0u8; 32];
    app.platform.random.fill(&mut b);
    b64url(&b)
}

/// A new 128-bit random id, base64url.
pub fn random_id(app: &App) -> String {
    let mut b = [0u8; 16];
    app.platform.random.fill(&mut b);
    b64url(&b)
}

fn to_json<T: Serialize>(v: &T) -> Result<String> {
    serde_json::to_string(v).map_err(|e| Error::Internal(format!("state encode: {e}")))
}

fn from_json<T: DeserializeOwned>(s: &str) -> Result<T> {
    serde_json::from_str(s).map_err(|e| Error::Internal(format!("state record is corrupt: {e}")))
}

/// Reads a record and its raw text (the raw text is the `expected` of a later `cas`).
pub async fn read<T: DeserializeOwned>(app: &App, key: &str) -> Result<Option<(T, String)>> {
    match app.platform.state.get(key).await? {
        Some(raw) => Ok(Some((from_json(&raw)?, raw))),
        None => Ok(None),
    }
}

/// Creates a record that must not exist yet.
pub async fn create<T: Serialize>(app: &App, key: &str, value: &T, expires_at: i64) -> Result<()> {
    match app
        .platform
        .state
        .cas(key, None, Some(&to_json(value)?), expires_at)
        .await?
    {
        Cas::Swapped => Ok(()),
        Cas::Conflict(_) => Err(Error::Internal(format!("state key collision at {key}"))),
    }
}

/// Replaces `old_raw` by `new`; false when another request changed it first.
pub async fn swap<T: Serialize>(
    app: &App,
    key: &str,
    old_raw: &str,
    new: &T,
    expires_at: i64,
) -> Result<bool> {
    Ok(matches!(
        app.platform
            .state
            .cas(key, Some(old_raw), Some(&to_json(new)?), expires_at)
            .await?,
        Cas::Swapped
    ))
}

pub async fn remove(app: &App, key: &str, old_raw: &str) -> Result<bool> {
    Ok(matches!(
        app.platform.state.cas(key, Some(old_raw), None, 0).await?,
        Cas::Swapped
    ))
}

// ---- authorization codes ----

/// An authorization code (RFC 6749 4.1.2), bound to client, redirect URI and PKCE challenge.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CodeRecord {
    pub client_id: String,
    pub user_id: String,
    pub redirect_uri: String,
    /// Whether the authorization request named the redirect URI (then the token request must).
    pub redirect_uri_given: bool,
    pub scope: Option<String>,
    pub code_challenge: Option<String>,
    pub nonce: Option<String>,
    pub auth_time: i64,
    /// SMART launch context (patient, encounter).
    #[serde(default)]
    pub launch: crate::oauth::launch::LaunchContext,
    /// The store key of the login session the code was issued in.
    #[serde(default)]
    pub session: Option<String>,
    /// Set once redeemed: what the redemption issued, so a replay can revoke it (RFC 6749 10.5).
    #[serde(default)]
    pub used: Option<Issued>,
}

/// What one redemption or refresh issued.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Issued {
    pub jti: String,
    pub exp: i64,
    pub family: Option<String>,
}

pub fn code_key(code: &str) -> String {
    format!("code/{}", hash(code))
}

/// Lifetime of an authorization code (seconds).
pub const CODE_TTL: i64 = 60;

// ---- refresh-token families ----

/// A refresh-token family: every token rotated from one grant. The newest secret's hash is
/// `current`; earlier ones are kept to detect reuse, which revokes the family (RFC 9700 4.14.2).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Family {
    pub client_id: String,
    pub user_id: Option<String>,
    pub scope: Option<String>,
    pub audience: String,
    pub grant: String,
    pub auth_time: Option<i64>,
    pub current: String,
    #[serde(default)]
    pub previous: Vec<String>,
    #[serde(default)]
    pub revoked: bool,
    /// Access tokens issued from this family, so that revoking it revokes them.
    #[serde(default)]
    pub issued: Vec<(String, i64)>,
    /// Sliding lifetime in seconds (`auth.<flow>.refresh_token_expiration`); None: no expiry.
    pub lifetime: Option<i64>,
    /// SMART launch context, kept across refreshes.
    #[serde(default)]
    pub launch: crate::oauth::launch::LaunchContext,
    /// `online_access`: the login session the family lives with; refresh fails once it ended.
    #[serde(default)]
    pub session: Option<String>,
    /// Credential-generation tag of the client and user ([`crate::model::generation_tag`]);
    /// a refresh is refused once it differs. None: both were legacy when the family started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generation: Option<String>,
}

/// Most rotated secrets remembered per family (reuse of older ones still fails, just without
/// revoking the family).
const MAX_PREVIOUS: usize = 32;
/// Most access tokens remembered per family for revocation.
const MAX_ISSUED: usize = 16;
/// A family without a lifetime is kept this long after its last use (ten years).
pub const NO_EXPIRY: i64 = 315_360_000;

pub fn family_key(id: &str) -> String {
    format!("rt/{id}")
}

impl Family {
    pub fn expires_at(&self, now: i64) -> i64 {
        now + self.lifetime.unwrap_or(NO_EXPIRY)
    }

    pub fn rotated(&self, new_hash: String, jti: &str, exp: i64) -> Family {
        let mut f = self.clone();
        let old = std::mem::replace(&mut f.current, new_hash);
        f.previous.push(old);
        if f.previous.len() > MAX_PREVIOUS {
            f.previous.remove(0);
        }
        f.issued.push((jti.to_string(), exp));
        if f.issued.len() > MAX_ISSUED {
            f.issued.remove(0);
        }
        f
    }
}

/// A refresh token is `{family id}.{secret}`.
pub fn split_refresh_token(token: &str) -> Option<(&str, &str)> {
    let (f, s) = token.split_once('.')?;
    let ok = |x: &str| {
        !x.is_empty()
            && x.len() <= 64
            && x.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    (ok(f) && ok(s)).then_some((f, s))
}

/// Marks a family revoked and revokes the access tokens it issued. Idempotent; retries when a
/// concurrent rotation got there first.
pub async fn revoke_family(app: &App, family_id: &str) -> Result<()> {
    let key = family_key(family_id);
    for _ in 0..8 {
        let Some((fam, raw)) = read::<Family>(app, &key).await? else {
            return Ok(());
        };
        if fam.revoked {
            return Ok(());
        }
        let mut revoked = fam.clone();
        revoked.revoked = true;
        let now = app.now();
        // Keep the revoked record as long as its tokens could be presented.
        if swap(app, &key, &raw, &revoked, fam.expires_at(now)).await? {
            for (jti, exp) in &fam.issued {
                revoke_access_token(app, jti, *exp).await?;
            }
            return Ok(());
        }
    }
    Err(Error::Unavailable(format!(
        "could not revoke family {family_id}: too much contention"
    )))
}

// ---- sessions ----

/// A signed-in browser (the `edge_session` cookie holds the id; the store only its hash).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Session {
    pub user_id: String,
    pub auth_time: i64,
    /// SMART standalone launch: the patient the user picked, for which client.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patient: Option<(String, String)>,
    /// This session's own store key, so that grants can be bound to it (`online_access`).
    #[serde(default)]
    pub key: String,
    /// Credential-generation tag of the user ([`crate::model::generation_tag`]); the session
    /// ends once it differs (src/oauth/interaction.rs `current_session`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generation: Option<String>,
}

pub fn session_key(id: &str) -> String {
    format!("session/{}", hash(id))
}

// ---- access-token revocations ----

/// How often (seconds) an isolate refreshes its copy of the revocation list.
pub const REVOCATION_POLL_SECS: i64 = 1;

/// The isolate's copy of the revoked `jti`s, refreshed from the store at most once per
/// [`REVOCATION_POLL_SECS`]. Revocations made through this isolate apply at once.
#[derive(Debug, Default)]
pub struct Revocations {
    cursor: Cell<u64>,
    polled_at: Cell<i64>,
    polled: Cell<bool>,
    /// A poll is on its way: concurrent requests use the current list rather than each
    /// asking the store (which, under load, was one Durable Object call per request each second).
    in_flight: Cell<bool>,
    jtis: RefCell<HashMap<String, i64>>,
}

impl Revocations {
    fn insert(&self, jti: String, until: i64, now: i64) {
        let mut m = self.jtis.borrow_mut();
        if m.len() > 10_000 {
            m.retain(|_, u| *u > now);
        }
        m.insert(jti, until);
    }

    pub fn contains(&self, jti: &str, now: i64) -> bool {
        self.jtis.borrow().get(jti).is_some_and(|u| *u > now)
    }
}

/// Revokes one access token until its expiry.
pub async fn revoke_access_token(app: &App, jti: &str, exp: i64) -> Result<()> {
    app.platform.state.revoke_jti(jti, exp).await?;
    app.cache
        .revocations
        .insert(jti.to_string(), exp, app.now());
    Ok(())
}

/// Is this access token revoked? Polls the store when the isolate's copy is stale.
pub async fn is_revoked(app: &App, jti: &str) -> Result<bool> {
    let r = &app.cache.revocations;
    let now = app.now();
    let due = !r.polled.get() || now - r.polled_at.get() >= REVOCATION_POLL_SECS;
    // Before the first poll every request must wait for the list; after it, one poll at a time.
    if due && !(r.polled.get() && r.in_flight.get()) {
        r.in_flight.set(true);
        let polled = app.platform.state.revocations_since(r.cursor.get()).await;
        r.in_flight.set(false);
        let (cursor, list) = polled?;
        for (j, until) in list {
            r.insert(j, until, now);
        }
        r.cursor.set(cursor);
        r.polled_at.set(now);
        r.polled.set(true);
    }
    Ok(r.contains(jti, now))
}

// ---- login throttling ----

/// Login throttling: failed password checks counted per user and per client address in the
/// Durable Object, so the count holds across isolates. Every password check (the login form and
/// the password grant) asks [`throttle::check`] first, before the slow KDF, so a locked guesser
/// costs us two reads and no hashing; a wrong password is [`throttle::failed`], a right one
/// [`throttle::succeeded`].
///
/// Per key: after `max_failures` failures within `window` seconds, the key is locked for
/// `lockout` seconds, doubling with each further lockout up to `lockout_max`. While locked, every
/// attempt is refused with 429 and `Retry-After`, the right password too. A success clears the
/// user's record. The address record counts failures only and is never cleared by a success, so
/// one known account cannot be used to reset the count while guessing others, and many
/// successful logins from one address (a load test, a NAT) are never throttled.
pub mod throttle {
    use super::{hash, read, swap};
    use crate::app::App;
    use crate::error::{Error, Result};
    use crate::http_util::Request;
    use crate::platform::Cas;
    use serde::{Deserialize, Serialize};

    /// One throttled key's record (`throttle/user/{sha256}` or `throttle/addr/{sha256}`).
    #[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
    pub struct Record {
        /// Failures counted in the current window.
        pub failures: u32,
        /// When the current window started.
        pub window_start: i64,
        /// Refused until then (0: not locked).
        pub locked_until: i64,
        /// Lockouts so far; the next one lasts `lockout * 2^lockouts`.
        pub lockouts: u32,
    }

    /// The keys one login attempt counts against, with their failure limits.
    #[derive(Debug, Clone)]
    pub struct Keys {
        pub user: String,
        pub address: Option<String>,
    }

    /// `who` names the account: the User's id when the username found one, else the normalised
    /// (trimmed, lowercased) username as typed, so unknown names are throttled like real ones.
    /// The address is `CF-Connecting-IP`, which Cloudflare sets and clients cannot forge.
    pub fn keys(req: &Request, who: &str) -> Keys {
        let address = crate::http_util::header(req, "cf-connecting-ip")
            .map(str::trim)
            .filter(|a| !a.is_empty())
            .map(|a| format!("throttle/addr/{}", hash(&a.to_ascii_lowercase())));
        Keys {
            user: format!("throttle/user/{}", hash(who)),
            address,
        }
    }

    /// The account key of a username that names no user.
    pub fn unknown_user(username: &str) -> String {
        format!("name:{}", username.trim().to_lowercase())
    }

    /// The account key of a user.
    pub fn known_user(id: &str) -> String {
        format!("id:{id}")
    }

    impl Keys {
        fn each(&self) -> impl Iterator<Item = (&str, bool)> {
            std::iter::once((self.user.as_str(), true))
                .chain(self.address.as_deref().map(|a| (a, false)))
        }
    }

    /// What [`check`] saw of the user's record, so that [`succeeded`] needs no second read.
    #[derive(Debug)]
    pub struct Checked {
        user_raw: Option<String>,
    }

    /// Refuses with 429 while the user or the address is locked. Both records are read at once.
    pub async fn check(app: &App, keys: &Keys) -> Result<Checked> {
        let now = app.now();
        let reads = keys.each().map(|(k, _)| read::<Record>(app, k));
        let mut wait = 0;
        let mut user_raw = None;
        for (i, r) in futures::future::join_all(reads)
            .await
            .into_iter()
            .enumerate()
        {
            if let Some((rec, raw)) = r? {
                wait = wait.max(rec.locked_until - now);
                if i == 0 {
                    user_raw = Some(raw);
                }
            }
        }
        if wait > 0 {
            return Err(Error::TooManyRequests { retry_after: wait });
        }
        Ok(Checked { user_raw })
    }

    /// The record after one more failure at `now`.
    pub fn after_failure(
        rec: Option<Record>,
        limits: &crate::config::Throttle,
        max: u32,
        now: i64,
    ) -> Record {
        let mut r = rec.unwrap_or_default();
        if r.failures == 0 || now - r.window_start >= limits.window {
            r.failures = 0;
            r.window_start = now;
        }
        r.failures += 1;
        if r.failures >= max {
            let factor = 1i64 << r.lockouts.min(20);
            r.locked_until = now
                + limits
                    .lockout
                    .saturating_mul(factor)
                    .min(limits.lockout_max);
            r.lockouts += 1;
            r.failures = 0;
        }
        r
    }

    /// How long a record is kept: while its window or lock lasts, and then `lockout_max` more,
    /// so that lockouts in quick succession keep growing.
    fn keep_until(r: &Record, limits: &crate::config::Throttle) -> i64 {
        (r.window_start + limits.window).max(r.locked_until) + limits.lockout_max
    }

    /// Counts a failed password check against the user and the address.
    pub async fn failed(app: &App, keys: &Keys) -> Result<()> {
        let limits = &app.config.throttle;
        for (key, is_user) in keys.each() {
            let max = if is_user {
                limits.max_failures
            } else {
                limits.address_max_failures
            };
            let mut done = false;
            for _ in 0..8 {
                let now = app.now();
                let cur = read::<Record>(app, key).await?;
                let next = after_failure(cur.as_ref().map(|(r, _)| r.clone()), limits, max, now);
                let until = keep_until(&next, limits);
                let swapped = match &cur {
                    Some((_, raw)) => swap(app, key, raw, &next, until).await?,
                    None => matches!(
                        app.platform
                            .state
                            .cas(key, None, Some(&super::to_json(&next)?), until)
                            .await?,
                        Cas::Swapped
                    ),
                };
                if swapped {
                    done = true;
                    break;
                }
            }
            if !done {
                return Err(Error::Unavailable(format!(
                    "login throttle {key}: too much contention"
                )));
            }
        }
        Ok(())
    }

    /// A right password: clears the user's failures (not the address's).
    pub async fn succeeded(app: &App, keys: &Keys, checked: Checked) -> Result<()> {
        if let Some(raw) = checked.user_raw {
            // Losing a race here only means another attempt changed the record; keep that.
            super::remove(app, &keys.user, &raw).await?;
        }
        Ok(())
    }
}
