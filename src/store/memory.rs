//! In-memory [`KvStore`], [`StateStore`](crate::platform::StateStore) and
//! [`HttpClient`](crate::platform::HttpClient) for tests and tools, with fault injection:
//! `failing` makes every call fail; `fail_after(n)` lets the next `n` calls through and fails
//! every one after (so a test can cut a multi-step write after each of its steps). A failing
//! call changes nothing, like a backend that was not reached.

use crate::platform::{BackendError, KvStore};
use async_trait::async_trait;
use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;

/// A countdown of calls that still succeed; `None`: no countdown.
#[derive(Debug, Default)]
pub struct Countdown(Cell<Option<u64>>);

impl Countdown {
    pub fn set(&self, n: Option<u64>) {
        self.0.set(n);
    }

    /// True when this call must fail.
    fn tick(&self) -> bool {
        match self.0.get() {
            None => false,
            Some(0) => true,
            Some(n) => {
                self.0.set(Some(n - 1));
                false
            }
        }
    }
}

#[derive(Debug, Default)]
pub struct MemoryKv {
    data: RefCell<BTreeMap<String, String>>,
    /// When set, every call fails as if KV were down.
    pub failing: Cell<bool>,
    /// Number of calls made, to check caching.
    pub calls: Cell<u64>,
    /// Calls still let through before every later one fails (see the module docs).
    pub countdown: Countdown,
    /// While set, `list` never answers (a request that never resumes; tests of stuck marks).
    pub hang_lists: Cell<bool>,
}

impl MemoryKv {
    pub fn new() -> Self {
        Self::default()
    }

    /// Lets the next `n` calls through, then fails every call.
    pub fn fail_after(&self, n: u64) {
        self.countdown.set(Some(n));
    }

    /// Ends every injected failure.
    pub fn heal(&self) {
        self.failing.set(false);
        self.countdown.set(None);
    }

    fn enter(&self) -> Result<(), BackendError> {
        self.calls.set(self.calls.get() + 1);
        if self.countdown.tick() || self.failing.get() {
            Err(BackendError("kv: injected failure".into()))
        } else {
            Ok(())
        }
    }

    /// A snapshot of everything stored, for assertions.
    pub fn dump(&self) -> BTreeMap<String, String> {
        self.data.borrow().clone()
    }
}

#[async_trait(?Send)]
impl KvStore for MemoryKv {
    async fn get(&self, key: &str) -> Result<Option<String>, BackendError> {
        self.enter()?;
        Ok(self.data.borrow().get(key).cloned())
    }

    async fn put(&self, key: &str, value: &str) -> Result<(), BackendError> {
        self.enter()?;
        self.data.borrow_mut().insert(key.into(), value.into());
        Ok(())
    }

    async fn delete(&self, key: &str) -> Result<(), BackendError> {
        self.enter()?;
        self.data.borrow_mut().remove(key);
        Ok(())
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>, BackendError> {
        self.enter()?;
        if self.hang_lists.get() {
            futures::future::pending::<()>().await;
        }
        Ok(self
            .data
            .borrow()
            .range(prefix.to_string()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(k, _)| k.clone())
            .collect())
    }
}

/// An in-memory [`StateStore`] for tests: atomic by construction (one thread, no awaits inside
/// an operation), with a clock for expiry and switchable failure.
pub struct MemoryState {
    clock: std::rc::Rc<dyn crate::platform::Clock>,
    data: RefCell<BTreeMap<String, (String, i64)>>,
    /// The revocation feed by sequence number, and the same by `jti` for point lookups: both
    /// O(log n) per insert.
    revoked: RefCell<BTreeMap<u64, (String, i64)>>,
    revoked_by_jti: RefCell<BTreeMap<String, i64>>,
    /// The old single feed ([`Feed::Old`](crate::platform::Feed::Old)), which only
    /// [`MemoryState::revoke_old`] writes: state left by an earlier version. Every replica
    /// reads `revoked` (every write reaches every replica).
    old: RefCell<BTreeMap<u64, (String, i64)>>,
    /// The feed of every `revocations_since` and `revoked_until` call, in order.
    pub feed_reads: RefCell<Vec<crate::platform::Feed>>,
    /// While set, `revocations_since` and `list`-like loads never answer (a request that
    /// never resumes; tests of stuck marks).
    pub hang_polls: Cell<bool>,
    pub failing: Cell<bool>,
    /// Calls still let through before every later one fails (see the module docs).
    pub countdown: Countdown,
    /// Number of calls made.
    pub calls: Cell<u64>,
    /// The most keys one `throttle` op named (the core sends one per op: in the Worker the
    /// account's and the address's records live in different objects).
    pub throttle_keys_max: Cell<usize>,
}

impl MemoryState {
    pub fn new(clock: std::rc::Rc<dyn crate::platform::Clock>) -> Self {
        MemoryState {
            clock,
            data: RefCell::new(BTreeMap::new()),
            revoked: RefCell::new(BTreeMap::new()),
            revoked_by_jti: RefCell::new(BTreeMap::new()),
            old: RefCell::new(BTreeMap::new()),
            feed_reads: RefCell::new(Vec::new()),
            hang_polls: Cell::new(false),
            failing: Cell::new(false),
            countdown: Countdown::default(),
            calls: Cell::new(0),
            throttle_keys_max: Cell::new(0),
        }
    }

    /// Lets the next `n` calls through, then fails every call.
    pub fn fail_after(&self, n: u64) {
        self.countdown.set(Some(n));
    }

    /// Ends every injected failure.
    pub fn heal(&self) {
        self.failing.set(false);
        self.countdown.set(None);
    }

    /// A snapshot of the live records, for assertions.
    pub fn dump(&self) -> BTreeMap<String, String> {
        let now = self.clock.now();
        self.data
            .borrow()
            .iter()
            .filter(|(_, (_, e))| *e > now)
            .map(|(k, (v, _))| (k.clone(), v.clone()))
            .collect()
    }

    /// A revocation in the old single feed, as an earlier version left it.
    pub fn revoke_old(&self, jti: &str, until: i64) {
        let mut r = self.old.borrow_mut();
        let seq = r.last_key_value().map_or(1, |(k, _)| k + 1);
        r.insert(seq, (jti.to_string(), until));
    }

    /// The revoked access-token `jti`s, for assertions.
    pub fn revoked(&self) -> Vec<String> {
        self.revoked
            .borrow()
            .values()
            .map(|(j, _)| j.clone())
            .collect()
    }

    fn enter(&self) -> Result<(), BackendError> {
        self.calls.set(self.calls.get() + 1);
        if self.countdown.tick() || self.failing.get() {
            Err(BackendError("state: injected failure".into()))
        } else {
            Ok(())
        }
    }

    fn current(&self, key: &str) -> Option<String> {
        let now = self.clock.now();
        self.data
            .borrow()
            .get(key)
            .filter(|(_, exp)| *exp > now)
            .map(|(v, _)| v.clone())
    }

    /// Number of live records, for assertions.
    pub fn len(&self) -> usize {
        let now = self.clock.now();
        self.data
            .borrow()
            .values()
            .filter(|(_, e)| *e > now)
            .count()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[async_trait(?Send)]
impl crate::platform::StateStore for MemoryState {
    async fn get(&self, key: &str) -> Result<Option<String>, BackendError> {
        self.enter()?;
        Ok(self.current(key))
    }

    async fn cas(
        &self,
        key: &str,
        expected: Option<&str>,
        new: Option<&str>,
        expires_at: i64,
    ) -> Result<crate::platform::Cas, BackendError> {
        self.enter()?;
        let cur = self.current(key);
        if cur.as_deref() != expected {
            return Ok(crate::platform::Cas::Conflict(cur));
        }
        let mut d = self.data.borrow_mut();
        match new {
            Some(v) => {
                d.insert(key.to_string(), (v.to_string(), expires_at));
            }
            None => {
                d.remove(key);
            }
        }
        Ok(crate::platform::Cas::Swapped)
    }

    async fn revoke_jti(&self, jti: &str, until: i64) -> Result<(), BackendError> {
        self.enter()?;
        let mut r = self.revoked.borrow_mut();
        let seq = r.last_key_value().map_or(1, |(k, _)| k + 1);
        r.insert(seq, (jti.to_string(), until));
        let mut by = self.revoked_by_jti.borrow_mut();
        let e = by.entry(jti.to_string()).or_insert(until);
        *e = (*e).max(until);
        Ok(())
    }

    async fn revocations_since(
        &self,
        feed: crate::platform::Feed,
        since: u64,
        limit: u32,
    ) -> Result<(u64, Vec<(String, i64)>), BackendError> {
        self.enter()?;
        self.feed_reads.borrow_mut().push(feed);
        if self.hang_polls.get() {
            futures::future::pending::<()>().await;
        }
        let r = match feed {
            crate::platform::Feed::Old => self.old.borrow(),
            crate::platform::Feed::Replica(_) => self.revoked.borrow(),
        };
        let page: Vec<(u64, (String, i64))> = r
            .range(since + 1..)
            .take(limit as usize)
            .map(|(k, v)| (*k, v.clone()))
            .collect();
        let cursor = page.last().map_or(since, |(k, _)| *k);
        Ok((cursor, page.into_iter().map(|(_, v)| v).collect()))
    }

    async fn revoked_until(
        &self,
        feed: crate::platform::Feed,
        jti: &str,
    ) -> Result<Option<i64>, BackendError> {
        self.enter()?;
        self.feed_reads.borrow_mut().push(feed);
        Ok(match feed {
            crate::platform::Feed::Old => self
                .old
                .borrow()
                .values()
                .filter(|(j, _)| j == jti)
                .map(|(_, u)| *u)
                .max(),
            crate::platform::Feed::Replica(_) => self.revoked_by_jti.borrow().get(jti).copied(),
        })
    }

    async fn throttle(
        &self,
        op: &crate::state::throttle::Op,
    ) -> Result<crate::state::throttle::Answer, BackendError> {
        self.enter()?;
        self.throttle_keys_max
            .set(self.throttle_keys_max.get().max(op.keys.len()));
        // No await from here on: atomic, like the Durable Object.
        let now = self.clock.now();
        let raw = op.keys.iter().map(|k| self.current(&k.key)).collect();
        let (answer, writes) = crate::state::throttle::apply_raw(op, raw, now);
        let mut d = self.data.borrow_mut();
        for (k, w) in op.keys.iter().zip(writes) {
            match w {
                Some(v) => {
                    d.insert(k.key.clone(), v);
                }
                None => {
                    d.remove(&k.key);
                }
            }
        }
        Ok(answer)
    }
}

/// An [`HttpClient`](crate::platform::HttpClient) for tests: canned answers by URL, a log of
/// calls, and switchable failure.
#[derive(Debug, Default)]
pub struct MemoryHttp {
    pub routes: RefCell<BTreeMap<String, (u16, String)>>,
    pub calls: RefCell<Vec<(String, String, Option<String>)>>,
    pub failing: Cell<bool>,
    /// Calls still let through before every later one fails (see the module docs).
    pub countdown: Countdown,
}

impl MemoryHttp {
    pub fn route(&self, url: &str, status: u16, body: &str) {
        self.routes
            .borrow_mut()
            .insert(url.to_string(), (status, body.to_string()));
    }

    /// How many calls went to `url`.
    pub fn count(&self, url: &str) -> usize {
        self.calls
            .borrow()
            .iter()
            .filter(|(_, u, _)| u == url)
            .count()
    }
}

#[async_trait(?Send)]
impl crate::platform::HttpClient for MemoryHttp {
    async fn send(
        &self,
        method: &str,
        url: &str,
        headers: &[(&str, &str)],
        body: Option<&str>,
    ) -> Result<(u16, String), BackendError> {
        let auth = headers
            .iter()
            .find(|(k, _)| *k == "authorization")
            .map(|(_, v)| format!("auth={v};"))
            .unwrap_or_default();
        self.calls.borrow_mut().push((
            method.to_string(),
            url.to_string(),
            body.map(|b| format!("{auth}{b}")),
        ));
        if self.countdown.tick() || self.failing.get() {
            return Err(BackendError("http: injected failure".into()));
        }
        Ok(self
            .routes
            .borrow()
            .get(url)
            .cloned()
            .unwrap_or((404, "not found".into())))
    }
}
