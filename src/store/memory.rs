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
    /// Response headers of a route, for [`crate::platform::HttpClient::get_limited`].
    pub route_headers: RefCell<BTreeMap<String, Vec<(String, String)>>>,
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

    async fn get_limited(
        &self,
        url: &str,
        accept: &str,
        max_bytes: usize,
    ) -> Result<crate::platform::Limited, BackendError> {
        let (status, body) = self.send("GET", url, &[("accept", accept)], None).await?;
        let headers = self
            .route_headers
            .borrow()
            .get(url)
            .cloned()
            .unwrap_or_default();
        Ok(crate::platform::Limited {
            status,
            headers,
            body: (body.len() <= max_bytes).then(|| body.into_bytes()),
        })
    }
}

/// An in-memory [`CatalogStore`](crate::platform::CatalogStore) over a [`MemoryKv`]: the
/// authority for the catalog types, which publishes each type's bundle (`bundle/{Type}`) and
/// mirrors the per-id record into the KV at once after every write (natively there is no
/// per-key write limit to coalesce for). On the first use of a type it imports that type's
/// per-id records already in the KV, as the Worker's Catalog object does.
/// One type's version and documents by id.
type CatalogType = (u64, BTreeMap<String, String>);

pub struct MemoryCatalog {
    kv: std::rc::Rc<MemoryKv>,
    types: RefCell<BTreeMap<String, CatalogType>>,
    /// Number of bundle writes, by type.
    pub published: RefCell<BTreeMap<String, u64>>,
}

impl MemoryCatalog {
    pub fn new(kv: std::rc::Rc<MemoryKv>) -> Self {
        MemoryCatalog {
            kv,
            types: RefCell::new(BTreeMap::new()),
            published: RefCell::new(BTreeMap::new()),
        }
    }

    async fn ensure(&self, rt: &str) -> Result<(), BackendError> {
        if self.types.borrow().contains_key(rt) {
            return Ok(());
        }
        let prefix = format!("{rt}/");
        let mut docs = BTreeMap::new();
        for key in self.kv.list(&prefix).await? {
            if let Some(v) = self.kv.get(&key).await? {
                docs.insert(key[prefix.len()..].to_string(), v);
            }
        }
        self.types
            .borrow_mut()
            .entry(rt.into())
            .or_insert((1, docs));
        self.publish(rt).await
    }

    async fn publish(&self, rt: &str) -> Result<(), BackendError> {
        let body = {
            let types = self.types.borrow();
            let (version, docs) = &types[rt];
            super::bundle_body(rt, *version, &docs.values().cloned().collect::<Vec<_>>())
        };
        self.kv.put(&super::bundle_key(rt), &body).await?;
        *self.published.borrow_mut().entry(rt.into()).or_insert(0) += 1;
        Ok(())
    }
}

#[async_trait(?Send)]
impl crate::platform::CatalogStore for MemoryCatalog {
    async fn list(&self, rt: &str) -> Result<Option<(u64, Vec<String>)>, BackendError> {
        self.ensure(rt).await?;
        let types = self.types.borrow();
        let (v, docs) = &types[rt];
        Ok(Some((*v, docs.values().cloned().collect())))
    }

    async fn get(&self, rt: &str, id: &str) -> Result<crate::platform::CatalogGet, BackendError> {
        self.ensure(rt).await?;
        Ok(crate::platform::CatalogGet::Found(
            self.types.borrow()[rt].1.get(id).cloned(),
        ))
    }

    async fn write(
        &self,
        rt: &str,
        id: &str,
        expected: Option<&str>,
        new: Option<&str>,
    ) -> Result<crate::platform::CatalogWrite, BackendError> {
        self.ensure(rt).await?;
        let version = {
            let mut types = self.types.borrow_mut();
            let (v, docs) = types.get_mut(rt).expect("ensured");
            let cur = docs.get(id).cloned();
            if cur.as_deref() != expected {
                return Ok(crate::platform::CatalogWrite::Conflict(cur));
            }
            if let (Some(n), true) = (new, rt != "Client") {
                let others: usize = docs
                    .iter()
                    .filter(|(k, _)| k.as_str() != id)
                    .map(|(_, d)| d.len())
                    .sum();
                if others + n.len() > crate::platform::CATALOG_MAX_BYTES {
                    return Ok(crate::platform::CatalogWrite::TooLarge);
                }
            }
            match new {
                Some(n) => docs.insert(id.into(), n.into()),
                None => docs.remove(id),
            };
            *v += 1;
            *v
        };
        let key = format!("{rt}/{id}");
        match new {
            Some(n) => self.kv.put(&key, n).await?,
            None => self.kv.delete(&key).await?,
        }
        self.publish(rt).await?;
        Ok(crate::platform::CatalogWrite::Done(version))
    }
}

#[cfg(test)]
mod catalog_tests {
    use super::*;
    use crate::testing::TestApp;
    use serde_json::json;
    use std::rc::Rc;

    fn with_catalog(t: &mut TestApp) -> Rc<MemoryCatalog> {
        let c = Rc::new(MemoryCatalog::new(t.kv.clone()));
        t.app.platform.catalog = Some(c.clone());
        c
    }

    fn admin_list(t: &TestApp, path: &str) -> serde_json::Value {
        t.call(
            TestApp::req("GET", path)
                .header("authorization", TestApp::root())
                .body(Vec::new())
                .unwrap(),
        )
        .json()
    }

    fn policy(uri: &str) -> serde_json::Value {
        json!({"engine": "matcho", "matcho": {"uri": uri},
               "link": [{"id": "app", "resourceType": "Client"}]})
    }

    fn status(t: &TestApp, path: &str) -> u16 {
        let req = TestApp::req("GET", path)
            .header("authorization", TestApp::basic("app", "app-secret-1"))
            .body(Vec::new())
            .unwrap();
        match t.send(req) {
            crate::context::Outcome::Forward(_) => 200,
            crate::context::Outcome::Respond(r) => r.status().as_u16(),
            crate::context::Outcome::Asset { .. } => 0,
        }
    }

    /// Past the policies (the demo origin may still answer 404 for an unknown patient).
    fn allowed(t: &TestApp, path: &str) -> bool {
        !matches!(status(t, path), 401 | 403)
    }

    #[test]
    fn policies_load_with_one_kv_get_however_many_there_are() {
        let mut t = TestApp::new();
        let catalog = with_catalog(&mut t);
        t.admin_put(
            "/Client/app",
            json!({"secret": "app-secret-1", "grant_types": ["basic"]}),
        );
        for i in 0..300 {
            let r = t.admin_put(
                &format!("/AccessPolicy/p-{i}"),
                policy(&format!("/Patient/p-{i}")),
            );
            assert!(r.status() == 201, "{i}");
        }
        assert!(allowed(&t, "/Patient/p-299"));
        // A cold isolate: a fresh cache.
        t.app.cache = Rc::new(crate::store::Cache::default());
        let before = t.kv.calls.get();
        assert!(allowed(&t, "/Patient/p-150"));
        assert_eq!(status(&t, "/Patient/p-300"), 403);
        let used = t.kv.calls.get() - before;
        assert!(used <= 3, "{used} KV calls");
        assert!(catalog.published.borrow()["AccessPolicy"] >= 300);
        let list = admin_list(&t, "/AccessPolicy");
        assert_eq!(list["total"], 300);
    }

    #[test]
    fn records_in_the_per_id_layout_are_imported_on_first_use() {
        let mut t = TestApp::new();
        t.admin_put(
            "/Client/app",
            json!({"secret": "app-secret-1", "grant_types": ["basic"]}),
        );
        for i in 0..20 {
            let mut doc = policy(&format!("/Patient/old-{i}"));
            doc["id"] = json!(format!("old-{i}"));
            doc["resourceType"] = json!("AccessPolicy");
            futures::executor::block_on(
                t.kv.put(&format!("AccessPolicy/old-{i}"), &doc.to_string()),
            )
            .unwrap();
        }
        // The upgrade: the same KV, now with a Catalog.
        with_catalog(&mut t);
        t.app.cache = Rc::new(crate::store::Cache::default());
        assert!(allowed(&t, "/Patient/old-7"));
        assert_eq!(status(&t, "/Patient/new"), 403);
        assert_eq!(admin_list(&t, "/AccessPolicy")["total"], 20);
        assert!(t.kv.dump().contains_key("bundle/AccessPolicy"));
    }

    #[test]
    fn a_write_on_a_stale_read_is_refused_by_the_catalog() {
        use crate::platform::{CatalogStore, CatalogWrite};
        let kv = Rc::new(MemoryKv::new());
        let c = MemoryCatalog::new(kv);
        let w = |e: Option<&str>, n: &str| {
            futures::executor::block_on(c.write("Role", "r", e, Some(n))).unwrap()
        };
        assert_eq!(w(None, "{\"a\":1}"), CatalogWrite::Done(2));
        assert_eq!(
            w(None, "{\"a\":2}"),
            CatalogWrite::Conflict(Some("{\"a\":1}".into()))
        );
        assert_eq!(w(Some("{\"a\":1}"), "{\"a\":2}"), CatalogWrite::Done(3));
    }
}
