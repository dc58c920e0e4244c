//! Typed records over the [`StateStore`] (the Durable Object): authorization codes, refresh-token
//! families, login sessions and access-token revocations. All single-use and rotation logic is
//! here, in the pure core, on top of one atomic primitive: compare-and-swap per key.
//!
//! Keys (docs/reference.md "Storage"): `code/{sha256(code)}`, `rt/{family id}`, `session/{sha256(id)}`.
//! Codes, refresh secrets and session ids are stored only as SHA-256 hashes (refresh families
//! also keep a tag key that can only recognise earlier tokens, see [`Family`]).

use crate::context::App;
use crate::error::{Error, Result};
use crate::http_util::b64url;
use crate::platform::{Cas, Feed};
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
    /// RFC 9449 10: the redemption's DPoP proof must be by this key (`dpop_jkt`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dpop_jkt: Option<String>,
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
    /// RFC 8707: the canonical `resource` of the authorization request, the token's `aud`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
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

/// A refresh-token family: every token rotated from one grant (RFC 6749 6, RFC 9700 4.14.2).
///
/// A token is `{family}.{generation}.{secret}.{tag}`: `secret` is 256 random bits, new on every
/// rotation, and `tag = HMAC-SHA256(key, family|generation|secret)` with `key`, 256 random bits
/// of this family. The record holds only `current` = SHA-256 of the newest secret, the newest
/// `generation` and `key`. The newest token is the one whose secret hashes to `current`; any
/// token with a valid tag and an older generation is an earlier secret of this family, however
/// old, and revokes the family; a valid tag with a newer generation cannot have been issued
/// (only a holder of `key` can make one) and is refused without revoking. A leak of the store
/// gives `key` and hashes only: enough to forge OLD generations, which can only revoke the
/// family, never to mint a token that refreshes.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Family {
    pub client_id: String,
    pub user_id: Option<String>,
    pub scope: Option<String>,
    pub audience: String,
    pub grant: String,
    pub auth_time: Option<i64>,
    /// SHA-256 of the newest secret.
    pub current: String,
    /// Generation of the newest token (0 for the first).
    #[serde(default)]
    pub generation: u64,
    /// The family's tag key (base64url, 256 bits). None: a family issued before generations,
    /// whose tokens are `{family}.{secret}`; its next rotation gives it a key.
    #[serde(default)]
    pub key: Option<String>,
    /// Hashes of secrets of the old `{family}.{secret}` format (families issued before
    /// generations; at most 33, no longer growing): their reuse revokes the family too.
    #[serde(default)]
    pub previous: Vec<String>,
    #[serde(default)]
    pub revoked: bool,
    /// Access tokens issued before access tokens carried their family (at most 16, no longer
    /// growing); revoking the family revokes them one by one.
    #[serde(default)]
    pub issued: Vec<(String, i64)>,
    /// The latest `exp` of any access token issued from this family: the family's revocation
    /// mark lasts until then (plus leeway).
    #[serde(default)]
    pub max_exp: i64,
    /// Sliding lifetime in seconds (`auth.<flow>.refresh_token_expiration`); None: no expiry.
    pub lifetime: Option<i64>,
    /// Absolute end of the family (`auth.<flow>.refresh_token_absolute_expiration`, 30 days by
    /// default), however often it is refreshed. None: a family issued before absolute lifetimes;
    /// its next rotation sets it.
    #[serde(default)]
    pub not_after: Option<i64>,
    /// SMART launch context, kept across refreshes.
    #[serde(default)]
    pub launch: crate::oauth::launch::LaunchContext,
    /// `online_access`: the login session the family lives with; refresh fails once it ended.
    #[serde(default)]
    pub session: Option<String>,
    /// Credential-generation tag of the client and user ([`crate::model::generation_tag`]);
    /// a refresh is refused once it differs. None: both were legacy when the family started.
    /// (Not [`Family::generation`], which counts rotations.)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials: Option<String>,
    /// RFC 9449 5: the DPoP key (thumbprint) a public client's family is bound to; each
    /// refresh must bring a proof by that key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jkt: Option<String>,
}

/// A family without a lifetime is kept this long after its last use (ten years).
pub const NO_EXPIRY: i64 = 315_360_000;

pub fn family_key(id: &str) -> String {
    format!("rt/{id}")
}

/// The private claim of access tokens issued from a refresh-token family: a hash of the family
/// id (the id itself is part of the refresh token and stays out of access tokens).
pub const FAMILY_CLAIM: &str = "rt_family";

/// The value of [`FAMILY_CLAIM`] for a family.
pub fn family_claim(family_id: &str) -> String {
    hash(&format!("refresh-family|{family_id}"))
}

/// The entry in the access-token revocation list that revokes every access token carrying
/// [`FAMILY_CLAIM`] = `claim` (never a `jti`: those have no `:`).
pub fn family_revocation(claim: &str) -> String {
    format!("family:{claim}")
}

/// HMAC-SHA256 tag of one generation's secret (RFC 2104).
pub fn refresh_tag(key: &str, family_id: &str, generation: u64, secret: &str) -> String {
    use hmac::{Hmac, Mac};
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key.as_bytes())
        .expect("HMAC takes keys of any length");
    mac.update(format!("edge-authorizer refresh v1|{family_id}|{generation}|{secret}").as_bytes());
    b64url(&mac.finalize().into_bytes())
}

/// Formats a refresh token of generation `generation`.
pub fn refresh_token(key: &str, family_id: &str, generation: u64, secret: &str) -> String {
    let tag = refresh_tag(key, family_id, generation, secret);
    format!("{family_id}.{generation}.{secret}.{tag}")
}

/// The parts of a refresh token after its family id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefreshSecret<'a> {
    /// `{family}.{secret}`: issued before generations; accepted for one rotation.
    Legacy(&'a str),
    /// `{family}.{generation}.{secret}.{tag}`.
    Generation {
        generation: u64,
        secret: &'a str,
        tag: &'a str,
    },
}

/// What a presented refresh token is to its family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Presented {
    /// The newest token: may refresh.
    Current,
    /// A genuine earlier token of this family: a reuse, which revokes the family.
    Earlier,
    /// Not a token this family issued (a wrong secret, a bad tag, a generation not reached yet).
    Unknown,
}

/// Splits a refresh token into its family id and the rest; None when malformed (then the
/// store is not asked). Both formats: `{family}.{secret}` and `{family}.{gen}.{secret}.{tag}`.
pub fn split_refresh_token(token: &str) -> Option<(&str, RefreshSecret<'_>)> {
    let ok = |x: &str| {
        !x.is_empty()
            && x.len() <= 64
            && x.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    let parts: Vec<&str> = token.split('.').collect();
    match parts.as_slice() {
        [f, s] if ok(f) && ok(s) => Some((f, RefreshSecret::Legacy(s))),
        [f, g, s, t] if ok(f) && ok(s) && ok(t) => {
            // Canonical decimal only: one spelling per generation.
            let canonical = !g.is_empty()
                && g.len() <= 19
                && g.bytes().all(|b| b.is_ascii_digit())
                && (g.len() == 1 || !g.starts_with('0'));
            let generation = g.parse().ok().filter(|_| canonical)?;
            Some((
                f,
                RefreshSecret::Generation {
                    generation,
                    secret: s,
                    tag: t,
                },
            ))
        }
        _ => None,
    }
}

impl Family {
    /// When the store may forget the record: after the sliding lifetime, and never past the
    /// absolute end.
    pub fn expires_at(&self, now: i64) -> i64 {
        let sliding = now + self.lifetime.unwrap_or(NO_EXPIRY);
        self.not_after.map_or(sliding, |n| sliding.min(n))
    }

    /// Has the family reached its absolute end?
    pub fn ended(&self, now: i64) -> bool {
        self.not_after.is_some_and(|n| now >= n)
    }

    /// Classifies a presented token (of this family's id `family_id`).
    pub fn presented(&self, family_id: &str, secret: RefreshSecret<'_>) -> Presented {
        let eq = |a: &str, b: &str| crate::secret::ct_eq(a.as_bytes(), b.as_bytes());
        match secret {
            RefreshSecret::Legacy(s) => {
                let h = hash(s);
                if self.key.is_none() && eq(&h, &self.current) {
                    Presented::Current
                } else if self.previous.iter().any(|p| eq(p, &h)) {
                    Presented::Earlier
                } else {
                    Presented::Unknown
                }
            }
            RefreshSecret::Generation {
                generation,
                secret,
                tag,
            } => {
                let Some(key) = &self.key else {
                    return Presented::Unknown;
                };
                if !eq(&refresh_tag(key, family_id, generation, secret), tag) {
                    return Presented::Unknown;
                }
                match generation.cmp(&self.generation) {
                    std::cmp::Ordering::Less => Presented::Earlier,
                    std::cmp::Ordering::Equal if eq(&hash(secret), &self.current) => {
                        Presented::Current
                    }
                    // Same generation, other secret, or a generation not reached yet: only a
                    // holder of the key can make these; they never revoke.
                    _ => Presented::Unknown,
                }
            }
        }
    }

    /// The family after one rotation to a secret hashing to `new_hash`, which issued an access
    /// token expiring at `exp`. A family of the old format gets `new_key` and keeps its last old
    /// secret's hash in `previous`.
    pub fn rotated(&self, new_hash: String, exp: i64, new_key: String) -> Family {
        let mut f = self.clone();
        let old = std::mem::replace(&mut f.current, new_hash);
        if f.key.is_none() {
            f.previous.push(old);
            f.key = Some(new_key);
            f.generation = 1;
        } else {
            f.generation += 1;
        }
        f.max_exp = f.max_exp.max(exp);
        f
    }

    /// Until when the family's revocation mark must last: the latest `exp` of its access tokens.
    fn access_until(&self) -> i64 {
        self.issued
            .iter()
            .map(|(_, e)| *e)
            .fold(self.max_exp, i64::max)
    }
}

/// Revokes a family and every access token issued from it: first the family's mark in the
/// revocation list (which refuses every access token carrying [`FAMILY_CLAIM`] for it, however
/// many) and the listed tokens of old families, then the family record. Idempotent; retries
/// when a concurrent rotation got there first. A family already marked revoked is checked
/// again: if a first attempt was cut off after marking it (records of earlier versions were
/// marked first), its access tokens are still live here, and are revoked now.
pub async fn revoke_family(app: &App, family_id: &str) -> Result<()> {
    let key = family_key(family_id);
    let mark = family_revocation(&family_claim(family_id));
    for _ in 0..8 {
        let Some((fam, raw)) = read::<Family>(app, &key).await? else {
            return Ok(());
        };
        let now = app.now();
        let until = fam.access_until() + app.config.leeway;
        if fam.revoked {
            let mut missing = Vec::new();
            if until > now && !is_revoked(app, &mark).await? {
                missing.push((mark.clone(), until));
            }
            for (jti, exp) in &fam.issued {
                if *exp > now && !is_revoked(app, jti).await? {
                    missing.push((jti.clone(), *exp));
                }
            }
            return revoke_access_tokens(app, &missing).await;
        }
        let mut all = Vec::with_capacity(fam.issued.len() + 1);
        if until > now {
            all.push((mark.clone(), until));
        }
        all.extend(fam.issued.iter().cloned());
        // One write per feed for all of them (each feed's op is atomic).
        revoke_access_tokens(app, &all).await?;
        let mut revoked = fam.clone();
        revoked.revoked = true;
        // Keep the revoked record as long as its tokens could be presented.
        if swap(app, &key, &raw, &revoked, fam.expires_at(now)).await? {
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

/// Most revocations one poll reads. A new isolate reads the feed one page per request (one
/// request at a time) and meanwhile asks the store about each token it sees, so its first
/// bearer request costs the same with 100,000 live revocations as with none.
pub const REVOCATION_PAGE: u32 = 5_000;

/// The isolate's copy of the revoked `jti`s, refreshed from the store at most once per
/// [`REVOCATION_POLL_SECS`]. Revocations made through this isolate apply at once.
///
/// Every revocation is written to each of the `REVOCATION_FEEDS` replicas; the isolate picks one
/// at random on first use and polls only that one (docs/scale.md "Revocation feeds"). Until it
/// has once read the old single feed ([`Feed::Old`], where earlier versions wrote) to its end,
/// it polls that one too; never again after.
#[derive(Debug, Default)]
pub struct Revocations {
    /// The replica this isolate reads, once picked.
    feed: Cell<Option<u16>>,
    cursor: Cell<u64>,
    polled_at: Cell<i64>,
    /// The copy holds the whole replica as of `polled_at` (false until a poll reached its end).
    caught_up: Cell<bool>,
    /// The old single feed: where the next page starts, and whether it was read to its end.
    old_cursor: Cell<u64>,
    old_done: Cell<bool>,
    /// A poll is on its way (its number and when it began): concurrent requests use the current
    /// list rather than each asking the store. A request that never resumes leaves the mark
    /// set, so a mark older than the store timeout counts as dead.
    in_flight: Cell<Option<(u64, i64)>>,
    polls: Cell<u64>,
    jtis: RefCell<HashMap<String, i64>>,
    /// Size past which expired entries are dropped (doubles with the live set: amortised O(1)).
    prune_at: Cell<usize>,
}

impl Revocations {
    fn insert(&self, jti: String, until: i64, now: i64) {
        let mut m = self.jtis.borrow_mut();
        if m.len() >= self.prune_at.get().max(10_000) {
            m.retain(|_, u| *u > now);
            self.prune_at.set(m.len() * 2);
        }
        let e = m.entry(jti).or_insert(until);
        *e = (*e).max(until);
    }

    pub fn contains(&self, jti: &str, now: i64) -> bool {
        self.jtis.borrow().get(jti).is_some_and(|u| *u > now)
    }

    /// Number of entries held (live or not yet pruned).
    pub fn len(&self) -> usize {
        self.jtis.borrow().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The replica this isolate polls, if it has picked one.
    pub fn feed(&self) -> Option<u16> {
        self.feed.get()
    }

    /// Has the old single feed been read to its end (so it is never asked again)?
    pub fn old_done(&self) -> bool {
        self.old_done.get()
    }

    /// The replica to read: picked at random among `feeds` on first use (and picked again,
    /// from the start, should `feeds` ever no longer include it).
    fn pick(&self, feeds: u16, random: &dyn crate::platform::Random) -> u16 {
        let feeds = feeds.max(1);
        if let Some(f) = self.feed.get().filter(|f| *f < feeds) {
            return f;
        }
        let mut b = [0u8; 4];
        random.fill(&mut b);
        let f = (u32::from_le_bytes(b) % u32::from(feeds)) as u16;
        self.feed.set(Some(f));
        self.cursor.set(0);
        self.caught_up.set(false);
        f
    }

    /// Is a poll in flight that is younger than `stale_after` seconds?
    fn polling(&self, now: i64, stale_after: i64) -> bool {
        self.in_flight
            .get()
            .is_some_and(|(_, since)| now - since <= stale_after)
    }

    /// Takes one page read from a feed into the copy; true if it was full (more to read).
    fn take(&self, list: Vec<(String, i64)>, now: i64) -> bool {
        let full = list.len() >= REVOCATION_PAGE as usize;
        for (j, until) in list {
            if until > now {
                self.insert(j, until, now);
            }
        }
        full
    }
}

/// Clears the poll mark when the poll ends or its future is dropped, if the mark is still its own.
struct PollMark<'a>(&'a Revocations, u64);

impl Drop for PollMark<'_> {
    fn drop(&mut self) {
        if self.0.in_flight.get().is_some_and(|(n, _)| n == self.1) {
            self.0.in_flight.set(None);
        }
    }
}

/// Until when a revocation of a token expiring at `exp` must hold: its `exp` plus the clock
/// leeway (the verifier and the token cache accept it up to and at that second).
fn revoked_until(app: &App, exp: i64) -> i64 {
    exp.saturating_add(app.config.leeway.max(0))
        .saturating_add(1)
}

/// Revokes one access token for as long as any verifier of ours would accept it, in every feed.
pub async fn revoke_access_token(app: &App, jti: &str, exp: i64) -> Result<()> {
    let until = revoked_until(app, exp);
    app.platform.state.revoke_jti(jti, until).await?;
    app.cache
        .revocations
        .insert(jti.to_string(), until, app.now());
    Ok(())
}

/// [`revoke_access_token`] for several `(jti, exp)` at once: one write per feed.
pub async fn revoke_access_tokens(app: &App, tokens: &[(String, i64)]) -> Result<()> {
    if tokens.is_empty() {
        return Ok(());
    }
    let items: Vec<(String, i64)> = tokens
        .iter()
        .map(|(j, exp)| (j.clone(), revoked_until(app, *exp)))
        .collect();
    app.platform.state.revoke_many(&items).await?;
    let now = app.now();
    for (j, until) in items {
        app.cache.revocations.insert(j, until, now);
    }
    Ok(())
}

/// Is this access token revoked? Polls the isolate's replica when the copy is stale (and the
/// old single feed, until it has once been read to its end); until the copy has caught up with
/// both, asks the feeds not yet caught up about this token directly.
pub async fn is_revoked(app: &App, jti: &str) -> Result<bool> {
    let r = &app.cache.revocations;
    let now = app.now();
    if r.contains(jti, now) {
        return Ok(true);
    }
    let feed = Feed::Replica(r.pick(app.config.revocation_feeds, &*app.platform.random));
    let state = &app.platform.state;
    let whole = r.caught_up.get() && r.old_done.get();
    let due = !whole || now - r.polled_at.get() >= REVOCATION_POLL_SECS;
    if due && !r.polling(now, app.config.store_timeout_secs()) {
        let n = r.polls.get() + 1;
        r.polls.set(n);
        r.in_flight.set(Some((n, now)));
        let mark = PollMark(r, n);
        let old_due = !r.old_done.get();
        let (polled, old) = futures::join!(
            state.revocations_since(feed, r.cursor.get(), REVOCATION_PAGE),
            async {
                if old_due {
                    Some(
                        state
                            .revocations_since(Feed::Old, r.old_cursor.get(), REVOCATION_PAGE)
                            .await,
                    )
                } else {
                    None
                }
            }
        );
        drop(mark);
        let (cursor, list) = polled?;
        let old = old.transpose()?;
        let full = r.take(list, now);
        r.cursor.set(r.cursor.get().max(cursor));
        if let Some((old_cursor, old_list)) = old {
            let old_full = r.take(old_list, now);
            r.old_cursor.set(r.old_cursor.get().max(old_cursor));
            if !old_full {
                r.old_done.set(true);
            }
        }
        r.polled_at.set(now);
        r.caught_up.set(!full);
        if r.contains(jti, now) {
            return Ok(true);
        }
    }
    let (ask_feed, ask_old) = (!r.caught_up.get(), !r.old_done.get());
    if !ask_feed && !ask_old {
        return Ok(false);
    }
    let lookup = |f: Feed, ask: bool| async move {
        if ask {
            state.revoked_until(f, jti).await
        } else {
            Ok(None)
        }
    };
    let (a, b) = futures::join!(lookup(feed, ask_feed), lookup(Feed::Old, ask_old));
    Ok(a?.is_some_and(|u| u > now) || b?.is_some_and(|u| u > now))
}

// ---- login throttling ----

/// Throttling of password and secret checks: attempts counted per account (a User, a Client,
/// `root`) and per client address in the Durable Object, so the count holds across isolates.
///
/// Every check first makes a **reservation** ([`throttle::reserve`]): per key, first the
/// account's and then the address's, one atomic store operation
/// ([`StateStore::throttle`](crate::platform::StateStore::throttle)) that reads that key's
/// record, decides, and counts the attempt as pending, with nothing awaited in between (the two
/// keys live in different Durable Objects, docs/scale.md). When the address refuses, the
/// account's reservation is released again (cancelled; if even that fails it counts as a
/// failure once stale: more counted, never fewer). Only with both reserved is the slow KDF run.
/// So N parallel guesses get at most `max` checked answers per key (failures counted plus
/// checks in flight never exceed the limit) and the rest 429, and no lost compare-and-swap
/// round can skip a count. A wrong secret turns the reservation
/// into a counted failure; a right one releases it (and clears the account's failures); a
/// reservation that is never settled (the request died) counts as a failure once it is
/// [`RESERVATION_TTL`](throttle::RESERVATION_TTL) old.
///
/// Per key: after `max` failures within `window` seconds, the key is locked for `lockout`
/// seconds, doubling with each further lockout up to `lockout_max`. While locked, every attempt
/// is refused with 429 and `Retry-After`, the right secret too. The address record is never
/// cleared by a success, so one known account cannot be used to reset the count while guessing
/// others, and successful sign-ins from one address in sequence are never throttled (at most
/// `address_max` of them can be in flight at once). IPv6 addresses count per /64: one host
/// usually holds a whole /64.
/// A secret only this Worker knows, for keys it derives (HMAC): the signing key's private part,
/// else `ADMIN_SECRET`; None when there is neither.
pub fn worker_secret(app: &App) -> Option<Vec<u8>> {
    Some(match &app.config.keys.signing {
        Some(k) => match &k.private {
            crate::platform::PrivateKey::Ed25519 { seed, .. } => seed.to_vec(),
            crate::platform::PrivateKey::P256 { d, .. } => d.to_vec(),
        },
        None => app
            .config
            .admin_secret
            .as_ref()?
            .expose()
            .as_bytes()
            .to_vec(),
    })
}

pub mod throttle {
    use super::hash;
    use crate::context::App;
    use crate::error::{Error, Result};
    use crate::http_util::Request;
    use serde::{Deserialize, Serialize};

    /// Seconds after which an unsettled reservation counts as a failure.
    pub const RESERVATION_TTL: i64 = 60;

    /// One throttled key's record (`throttle/user/{sha256}`, `throttle/client/{sha256}` or
    /// `throttle/addr/{sha256}`).
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
        /// Checks in flight: (reservation id, when it counts as a failure if still unsettled,
        /// fingerprint of the secret tried).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        pub pending: Vec<(String, i64, Option<String>)>,
    }

    /// The keys one attempt counts against.
    #[derive(Debug, Clone)]
    pub struct Keys {
        /// The account: a User (or an unknown username), a Client or `root`.
        pub user: String,
        pub address: Option<String>,
    }

    /// The client address as it is bucketed: IPv4 as is, IPv6 by its /64 prefix (an IPv4-mapped
    /// IPv6 address as its IPv4 address), anything else lowercased.
    pub fn address_bucket(raw: &str) -> String {
        let raw = raw.trim();
        match raw.parse::<std::net::IpAddr>() {
            Ok(std::net::IpAddr::V4(a)) => a.to_string(),
            Ok(std::net::IpAddr::V6(a)) => match a.to_ipv4_mapped() {
                Some(v4) => v4.to_string(),
                None => {
                    let s = a.segments();
                    let net = std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0);
                    format!("{net}/64")
                }
            },
            Err(_) => raw.to_ascii_lowercase(),
        }
    }

    fn address_key(req: &Request) -> Option<String> {
        crate::http_util::header(req, "cf-connecting-ip")
            .map(str::trim)
            .filter(|a| !a.is_empty())
            .map(|a| format!("throttle/addr/{}", hash(&address_bucket(a))))
    }

    /// `who` names the account: the User's id when the username found one, else the normalised
    /// (trimmed, lowercased) username as typed, so unknown names are throttled like real ones.
    /// The address is `CF-Connecting-IP`, which Cloudflare sets and clients cannot forge.
    pub fn keys(req: &Request, who: &str) -> Keys {
        Keys {
            user: format!("throttle/user/{}", hash(who)),
            address: address_key(req),
        }
    }

    /// The keys of a client secret (or the root secret) check: the client id and the address.
    pub fn client_keys(req: &Request, client_id: &str) -> Keys {
        Keys {
            user: format!("throttle/client/{}", hash(client_id)),
            address: address_key(req),
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

    /// What an [`Op`] does.
    #[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
    #[serde(rename_all = "snake_case")]
    pub enum Action {
        /// Count an attempt as pending, or refuse it.
        Reserve,
        /// The secret was wrong: the reservation becomes a failure.
        Fail,
        /// The secret was right: the reservation is released and the account cleared.
        Succeed,
        /// The check could not be made (a backend failed): the reservation is released.
        Cancel,
    }

    /// One key of an [`Op`] with its limit.
    #[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
    pub struct KeyLimit {
        pub key: String,
        pub max: u32,
        /// A success clears this key's failures (the account, not the address).
        pub clear_on_success: bool,
    }

    /// One atomic throttle operation, executed by the store with [`apply`].
    #[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
    pub struct Op {
        pub action: Action,
        /// The reservation's id.
        pub id: String,
        /// A keyed hash of (account, secret tried): concurrent attempts with the same secret are
        /// one guess (a client's burst of requests on a cold isolate), counted and limited once.
        /// Keyed with a Worker secret, so the store never holds a fast hash of a secret.
        #[serde(default)]
        pub fingerprint: Option<String>,
        pub keys: Vec<KeyLimit>,
        pub window: i64,
        pub lockout: i64,
        pub lockout_max: i64,
    }

    /// What the store answers to an [`Op`].
    #[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
    #[serde(rename_all = "snake_case")]
    pub enum Answer {
        /// The attempt may be checked.
        Reserved,
        /// Refused: locked, or as many checks in flight as failures are left; retry after so
        /// many seconds.
        Refused(i64),
        /// A fail, succeed or cancel was recorded.
        Done,
    }

    impl Op {
        fn limits(&self) -> crate::config::Throttle {
            crate::config::Throttle {
                window: self.window,
                lockout: self.lockout,
                lockout_max: self.lockout_max,
                ..Default::default()
            }
        }
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

    /// Distinct guesses among `pending`: entries with one fingerprint count once.
    fn guesses(pending: &[(String, i64, Option<String>)]) -> usize {
        let mut seen: Vec<&str> = Vec::new();
        let mut n = 0;
        for (_, _, fp) in pending {
            match fp {
                Some(f) if seen.contains(&f.as_str()) => {}
                Some(f) => {
                    seen.push(f);
                    n += 1;
                }
                None => n += 1,
            }
        }
        n
    }

    /// Counts reservations that were never settled as failures (one per distinct guess), and
    /// ends an old window.
    fn settle_dead(mut r: Record, limits: &crate::config::Throttle, max: u32, now: i64) -> Record {
        let (dead, live): (Vec<_>, Vec<_>) = r.pending.drain(..).partition(|(_, at, _)| *at <= now);
        let dead: Vec<_> = dead
            .into_iter()
            .filter(|(_, _, fp)| fp.is_none() || !live.iter().any(|(_, _, f)| f == fp))
            .collect();
        for _ in 0..guesses(&dead) {
            r = after_failure(Some(r), limits, max, now);
        }
        r.pending = live;
        if r.failures > 0 && now - r.window_start >= limits.window {
            r.failures = 0;
        }
        r
    }

    /// How long a record is kept: while its window, lock or reservations last, and then
    /// `lockout_max` more, so that lockouts in quick succession keep growing. None: nothing to
    /// keep (the record is deleted).
    pub fn keep_until(r: &Record, limits: &crate::config::Throttle) -> Option<i64> {
        if r == &Record::default() {
            return None;
        }
        let pending = r.pending.iter().map(|(_, at, _)| *at).max().unwrap_or(0);
        Some(
            (r.window_start + limits.window)
                .max(r.locked_until)
                .max(pending)
                + limits.lockout_max,
        )
    }

    /// The whole decision of one [`Op`] over the current records of its keys (index for index),
    /// at `now`: the answer and the records to write back (None: delete). Pure, so that the
    /// Durable Object and the memory store run the same code between one read and one write.
    pub fn apply(op: &Op, records: Vec<Option<Record>>, now: i64) -> (Answer, Vec<Option<Record>>) {
        let limits = op.limits();
        let mut recs: Vec<Record> = op
            .keys
            .iter()
            .zip(records)
            .map(|(k, r)| settle_dead(r.unwrap_or_default(), &limits, k.max, now))
            .collect();
        let answer = match op.action {
            Action::Reserve => {
                let locked = recs.iter().map(|r| r.locked_until - now).max().unwrap_or(0);
                // The same secret as a check in flight is the same guess: not one more.
                let same_guess = |r: &Record| {
                    op.fingerprint.is_some()
                        && r.pending.iter().any(|(_, _, f)| *f == op.fingerprint)
                };
                let full = op.keys.iter().zip(&recs).any(|(k, r)| {
                    !same_guess(r) && r.failures as usize + guesses(&r.pending) >= k.max as usize
                });
                if locked > 0 {
                    Answer::Refused(locked)
                } else if full {
                    // As many checks in flight as failures are left: wait for them.
                    Answer::Refused(1)
                } else {
                    for r in &mut recs {
                        r.pending.push((
                            op.id.clone(),
                            now + RESERVATION_TTL,
                            op.fingerprint.clone(),
                        ));
                    }
                    Answer::Reserved
                }
            }
            Action::Fail | Action::Succeed | Action::Cancel => {
                for (k, r) in op.keys.iter().zip(recs.iter_mut()) {
                    let before = r.pending.len();
                    r.pending.retain(|(id, _, _)| *id != op.id);
                    // Not found: it was counted as a failure when it went stale.
                    let mine = r.pending.len() < before;
                    // The same guess still in flight: the last of them counts it.
                    let again = op.fingerprint.is_some()
                        && r.pending.iter().any(|(_, _, f)| *f == op.fingerprint);
                    match op.action {
                        Action::Fail if mine && !again => {
                            *r = after_failure(Some(std::mem::take(r)), &limits, k.max, now);
                        }
                        Action::Succeed if k.clear_on_success => {
                            r.failures = 0;
                            r.window_start = 0;
                            r.locked_until = 0;
                            r.lockouts = 0;
                        }
                        _ => {}
                    }
                }
                Answer::Done
            }
        };
        let out = recs
            .into_iter()
            .map(|r| keep_until(&r, &limits).map(|_| r))
            .collect();
        (answer, out)
    }

    /// [`apply`] over stored text: the records as read (raw JSON; unreadable counts as
    /// absent), and what to write back per key: `Some((value, expires_at))` or None to delete.
    pub fn apply_raw(
        op: &Op,
        raw: Vec<Option<String>>,
        now: i64,
    ) -> (Answer, Vec<Option<(String, i64)>>) {
        let records = raw
            .into_iter()
            .map(|r| r.and_then(|s| serde_json::from_str::<Record>(&s).ok()))
            .collect();
        let (answer, records) = apply(op, records, now);
        let limits = op.limits();
        let writes = records
            .into_iter()
            .map(|r| {
                let r = r?;
                let until = keep_until(&r, &limits)?;
                Some((serde_json::to_string(&r).ok()?, until))
            })
            .collect();
        (answer, writes)
    }

    /// A reserved attempt: settle it with [`Reservation::failed`], [`Reservation::succeeded`]
    /// or [`Reservation::cancel`]. One that is never settled counts as a failure after
    /// [`RESERVATION_TTL`].
    #[derive(Debug)]
    #[must_use = "a reservation must be settled"]
    pub struct Reservation {
        op: Op,
    }

    /// The fingerprint of `secret` tried for `account`: HMAC-SHA256 keyed with a Worker secret
    /// (the signing key, else `ADMIN_SECRET`); None when there is neither.
    pub fn fingerprint(app: &App, account: &str, secret: &str) -> Option<String> {
        use hmac::{Hmac, Mac};
        let key = super::worker_secret(app)?;
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(&key).ok()?;
        for part in ["throttle-fingerprint", account, secret] {
            mac.update(&(part.len() as u64).to_be_bytes());
            mac.update(part.as_bytes());
        }
        Some(crate::http_util::b64url(&mac.finalize().into_bytes()))
    }

    fn op(app: &App, keys: &Keys, id: String, fingerprint: Option<String>) -> Op {
        let l = &app.config.throttle;
        let mut ks = vec![KeyLimit {
            key: keys.user.clone(),
            max: l.max_failures,
            clear_on_success: true,
        }];
        if let Some(a) = &keys.address {
            ks.push(KeyLimit {
                key: a.clone(),
                max: l.address_max_failures,
                clear_on_success: false,
            });
        }
        Op {
            action: Action::Reserve,
            id,
            fingerprint,
            keys: ks,
            window: l.window,
            lockout: l.lockout,
            lockout_max: l.lockout_max,
        }
    }

    impl Op {
        /// This op on one of its keys only: what one object executes.
        pub fn for_key(&self, key: &KeyLimit) -> Op {
            Op {
                keys: vec![key.clone()],
                ..self.clone()
            }
        }
    }

    /// Reserves one check against the account and then the address, each in one atomic step
    /// on its own key, or refuses it with 429 (releasing what was already reserved).
    pub async fn reserve(app: &App, keys: &Keys, secret: &str) -> Result<Reservation> {
        let fp = fingerprint(app, &keys.user, secret);
        let op = op(app, keys, super::random_id(app), fp);
        for (i, key) in op.keys.iter().enumerate() {
            let refused = match app.platform.state.throttle(&op.for_key(key)).await {
                Ok(Answer::Reserved) => continue,
                Ok(Answer::Refused(wait)) => Error::TooManyRequests {
                    retry_after: wait.max(1),
                },
                Ok(Answer::Done) => Error::Internal("throttle: unexpected answer".into()),
                Err(e) => e.into(),
            };
            // Release the keys reserved before this one (best effort, as `settle`).
            let mut cancel = op.clone();
            cancel.action = Action::Cancel;
            for k in &op.keys[..i] {
                if let Err(e) = app.platform.state.throttle(&cancel.for_key(k)).await {
                    app.platform
                        .log
                        .log(&format!("throttle: could not release a reservation: {e}"));
                }
            }
            return Err(refused);
        }
        Ok(Reservation { op })
    }

    /// Reserves one event against the single counter `key`: at most `max` settled as failures
    /// per `window` seconds, then refused (429) for `window` (the registration limit of
    /// src/oauth/register.rs; settle with [`Reservation::failed`] to count the event).
    pub async fn reserve_one(app: &App, key: &str, max: u32, window: i64) -> Result<Reservation> {
        let op = Op {
            action: Action::Reserve,
            id: super::random_id(app),
            fingerprint: None,
            keys: vec![KeyLimit {
                key: key.to_string(),
                max,
                clear_on_success: false,
            }],
            window,
            lockout: window,
            lockout_max: window,
        };
        match app.platform.state.throttle(&op).await? {
            Answer::Reserved => Ok(Reservation { op }),
            Answer::Refused(wait) => Err(Error::TooManyRequests {
                retry_after: wait.max(1),
            }),
            Answer::Done => Err(Error::Internal("throttle: unexpected answer".into())),
        }
    }

    impl Reservation {
        /// Each key in its own step. Best effort: if the store cannot be reached now, the
        /// reservation stays pending on that key and counts as a failure there once it is
        /// stale, so a wrong secret is counted either way (the answer to the client stays the
        /// truth: a wrong secret is a 400, not a 503).
        async fn settle(mut self, app: &App, action: Action) {
            self.op.action = action;
            for k in &self.op.keys {
                if let Err(e) = app.platform.state.throttle(&self.op.for_key(k)).await {
                    app.platform
                        .log
                        .log(&format!("throttle: could not settle a reservation: {e}"));
                }
            }
        }

        /// A wrong secret: the attempt stays counted, as a failure.
        pub async fn failed(self, app: &App) {
            self.settle(app, Action::Fail).await
        }

        /// A right secret: releases the attempt and clears the account's failures (not the
        /// address's).
        pub async fn succeeded(self, app: &App) {
            self.settle(app, Action::Succeed).await
        }

        /// The check could not be made: releases the attempt.
        pub async fn cancel(self, app: &App) {
            self.settle(app, Action::Cancel).await
        }
    }

    /// Runs `check` (a secret comparison) under a reservation: 429 while the account or the
    /// address is locked or has as many checks in flight as failures left; a `false` counts.
    pub async fn checked<F, Fut>(app: &App, keys: &Keys, secret: &str, check: F) -> Result<bool>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<bool>>,
    {
        let r = reserve(app, keys, secret).await?;
        match check().await {
            Ok(true) => {
                r.succeeded(app).await;
                Ok(true)
            }
            Ok(false) => {
                r.failed(app).await;
                Ok(false)
            }
            Err(e) => {
                r.cancel(app).await;
                Err(e)
            }
        }
    }
}
