//! Resources over a KV namespace, with a short-lived isolate-memory cache.
//!
//! Key layout (docs/reference.md "Storage"):
//! - `Client/{id}`, `User/{id}`, `AccessPolicy/{id}`, `Role/{id}`, `Scope/{id}`, ...: the
//!   resource JSON (hashes included).
//! - `idx/User/email/{lowercased email}`: the id of the User with that email.
//!
//! - `bundle/{Type}` for AccessPolicy, TokenIntrospector, Role, Scope: `{"version": n, "docs":
//!   [...]}`, every document of the type; `bundle/Client`: `{"version": n, "origins": {id:
//!   [origin, ...]}}`, the CORS origins each Client registers. Written only by the Catalog
//!   ([`CatalogStore`], docs/scale.md "Catalog and bundles"), at most once a second per type.
//!
//! With a Catalog (the Worker), those five types are written, read and listed by the admin API
//! through it (strongly consistent, compare-and-set: no lost write), and the hot path loads a
//! type with one KV get of its bundle per `CACHE_TTL` however many documents there are. A write
//! through this isolate applies here at once: its answer carries the type's new version, and a
//! bundle older than that is not used by this isolate (it asks the Catalog instead).
//!
//! KV is eventually consistent and read on every request, so reads are cached in isolate
//! memory for `ttl` seconds (Config `CACHE_TTL`, default 10 s); a write through this isolate
//! drops its own cache at once. Another isolate sees a change after its cache entry expires
//! plus KV's own propagation (up to ~60 s between locations).

pub mod memory;
mod shared;

use crate::error::{Error, Result};
use crate::model::ResourceType;
use crate::platform::{CatalogGet, CatalogStore, CatalogWrite, Clock, KvStore};
use crate::policy::CompiledPolicy;
use serde_json::Value;
use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

/// Most cached documents per isolate; past it the cache starts over.
const MAX_CACHED_DOCS: usize = 10_000;
/// Most remembered successful secret checks per isolate.
const MAX_VERIFIED: usize = 10_000;

/// The compiled AccessPolicies and their ids, index for index.
#[derive(Debug, Clone, Default)]
pub struct PolicySet {
    pub ids: Vec<String>,
    pub policies: Vec<CompiledPolicy>,
}

type DocCache = HashMap<String, (i64, Option<Rc<Value>>)>;

/// Isolate-memory caches. One per isolate, shared by every request it serves. Debug prints
/// sizes only: the cached documents hold hashes and introspector secrets.
#[derive(Default)]
pub struct Cache {
    docs: RefCell<DocCache>,
    policies: shared::SharedSet<PolicySet>,
    introspectors: shared::SharedSet<Vec<Value>>,
    roles: shared::SharedSet<crate::model::role::RoleSet>,
    scopes: shared::SharedSet<crate::model::scope::ScopeSet>,
    verified: RefCell<HashMap<[u8; 32], i64>>,
    /// Per type, the newest catalog version a write through this isolate produced: an older
    /// bundle is not used here.
    min_versions: RefCell<HashMap<&'static str, u64>>,
    /// Revoked access tokens (see [`crate::state::Revocations`]).
    pub revocations: crate::state::Revocations,
    /// JWKS and introspection answers of external issuers.
    pub external: crate::external::ExternalCache,
    /// Our own access tokens that verified, until their `exp`.
    pub tokens: crate::token_cache::TokenCache,
    /// The origins Clients register for CORS.
    pub cors: crate::cors::CorsCache,
    /// Client ID Metadata Documents and self-registered clients' JWKS (src/oauth/cimd.rs).
    pub cimd: crate::oauth::cimd::CimdCache,
}

impl std::fmt::Debug for Cache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cache")
            .field("docs", &self.docs.borrow().len())
            .field("verified", &self.verified.borrow().len())
            .field("tokens", &self.tokens.len())
            .finish_non_exhaustive()
    }
}

impl Cache {
    /// Remembers that a secret checked out against a stored hash, until `until`.
    /// The key is a SHA-256 over (id, secret, stored hash): a changed hash misses.
    pub fn remember_verified(&self, key: [u8; 32], until: i64) {
        let mut v = self.verified.borrow_mut();
        if v.len() >= MAX_VERIFIED {
            v.clear();
        }
        v.insert(key, until);
    }

    pub fn was_verified(&self, key: &[u8; 32], now: i64) -> bool {
        self.verified
            .borrow()
            .get(key)
            .is_some_and(|until| *until > now)
    }

    fn invalidate(&self, key: &str, rt: ResourceType) {
        self.docs.borrow_mut().remove(key);
        match rt {
            ResourceType::AccessPolicy => self.policies.invalidate(),
            ResourceType::TokenIntrospector => self.introspectors.invalidate(),
            ResourceType::Role => self.roles.invalidate(),
            ResourceType::Scope => self.scopes.invalidate(),
            ResourceType::Client => self.cors.clear(),
            _ => {}
        }
    }
}

/// The types the Catalog holds and publishes as bundles.
pub fn in_catalog(rt: ResourceType) -> bool {
    matches!(
        rt,
        ResourceType::AccessPolicy
            | ResourceType::TokenIntrospector
            | ResourceType::Role
            | ResourceType::Scope
            | ResourceType::Client
    )
}

/// The KV key of a type's bundle.
pub fn bundle_key(rt: &str) -> String {
    format!("bundle/{rt}")
}

/// The bundle record of a type: every document, or for Client the CORS origins by client id.
pub fn bundle_body(rt: &str, version: u64, docs: &[String]) -> String {
    let parsed = docs
        .iter()
        .filter_map(|d| serde_json::from_str::<Value>(d).ok());
    if rt == ResourceType::Client.name() {
        let origins: serde_json::Map<String, Value> = parsed
            .filter_map(|d| {
                let id = d.get("id")?.as_str()?.to_string();
                let o = crate::cors::client_origins(&d);
                (!o.is_empty()).then(|| (id, Value::from(o)))
            })
            .collect();
        serde_json::json!({"version": version, "origins": origins}).to_string()
    } else {
        serde_json::json!({"version": version, "docs": parsed.collect::<Vec<_>>()}).to_string()
    }
}

fn parse_docs(raw: &[String]) -> Vec<Value> {
    raw.iter()
        .filter_map(|s| serde_json::from_str::<Value>(s).ok())
        .collect()
}

pub fn resource_key(rt: ResourceType, id: &str) -> String {
    format!("{}/{id}", rt.name())
}

fn email_key(email: &str) -> String {
    format!("idx/User/email/{email}")
}

/// KV key of the re-hash of a credential imported from Aidbox (`rehash/User/{id}`,
/// `rehash/Client/{id}`): `{"from": <the imported hash>, "to": <our hash of the same secret>}`.
/// The resource itself is never rewritten by a sign-in (KV has no compare-and-set: writing the
/// whole record back from a stale read could undo an administrator's password change); the
/// record applies only while the resource still holds `from`.
fn rehash_key(kind: &str, id: &str) -> String {
    format!("rehash/{kind}/{id}")
}

/// Typed access to the resources in KV.
pub struct Repo<'a> {
    pub kv: &'a dyn KvStore,
    /// The Catalog, when there is one (see the module doc).
    pub catalog: Option<&'a dyn CatalogStore>,
    pub cache: &'a Cache,
    pub clock: &'a dyn Clock,
    pub ttl: i64,
    /// Seconds after which a policy or introspector load in flight counts as dead (the store
    /// timeout; see `shared::SharedSet`).
    pub stale_after: i64,
}

impl Repo<'_> {
    async fn get_key(&self, key: &str) -> Result<Option<Rc<Value>>> {
        let now = self.clock.now();
        if let Some((at, v)) = self.cache.docs.borrow().get(key) {
            if now - at < self.ttl {
                return Ok(v.clone());
            }
        }
        let raw = self.kv.get(key).await?;
        let doc = match raw {
            Some(s) => Some(Rc::new(serde_json::from_str::<Value>(&s).map_err(|e| {
                Error::Internal(format!("stored record {key} is not JSON: {e}"))
            })?)),
            None => None,
        };
        let mut docs = self.cache.docs.borrow_mut();
        if docs.len() >= MAX_CACHED_DOCS {
            docs.clear();
        }
        docs.insert(key.to_string(), (now, doc.clone()));
        Ok(doc)
    }

    pub async fn get(&self, rt: ResourceType, id: &str) -> Result<Option<Rc<Value>>> {
        self.get_key(&resource_key(rt, id)).await
    }

    fn catalog_for(&self, rt: ResourceType) -> Option<&dyn CatalogStore> {
        self.catalog.filter(|_| in_catalog(rt))
    }

    /// The stored record as it is, bypassing the cache: from the Catalog for its types (while
    /// it still imports a type: the old per-id KV record), else from KV.
    pub async fn get_raw(&self, rt: ResourceType, id: &str) -> Result<Option<String>> {
        if let Some(c) = self.catalog_for(rt) {
            if let CatalogGet::Found(v) = c.get(rt.name(), id).await? {
                return Ok(v);
            }
        }
        Ok(self.kv.get(&resource_key(rt, id)).await?)
    }

    /// Reads a resource bypassing the cache (for read-modify-write).
    pub async fn get_fresh(&self, rt: ResourceType, id: &str) -> Result<Option<Value>> {
        match self.get_raw(rt, id).await? {
            Some(s) => serde_json::from_str(&s)
                .map(Some)
                .map_err(|e| Error::Internal(format!("stored record {rt}/{id} is not JSON: {e}"))),
            None => Ok(None),
        }
    }

    /// Writes (`new`) or deletes (`None`) a resource if it is still `expected` (the raw record
    /// [`Repo::get_raw`] returned; None: absent). `Ok(false)`: it changed meanwhile, nothing was
    /// written. Without a Catalog (or for other types) KV has no compare-and-set: it just
    /// writes. The change applies in this isolate at once.
    pub async fn write(
        &self,
        rt: ResourceType,
        id: &str,
        expected: Option<&str>,
        new: Option<&Value>,
    ) -> Result<bool> {
        let Some(c) = self.catalog_for(rt) else {
            match new {
                Some(doc) => self.put(rt, id, doc).await?,
                None => self.delete(rt, id).await?,
            }
            return Ok(true);
        };
        let body = new
            .map(serde_json::to_string)
            .transpose()
            .map_err(|e| Error::Internal(e.to_string()))?;
        let key = resource_key(rt, id);
        self.cache.invalidate(&key, rt);
        match c.write(rt.name(), id, expected, body.as_deref()).await? {
            CatalogWrite::Done(version) => {
                {
                    let mut m = self.cache.min_versions.borrow_mut();
                    let v = m.entry(rt.name()).or_insert(0);
                    *v = (*v).max(version);
                }
                self.cache.invalidate(&key, rt);
                // The per-id record in KV follows within a second or so; this isolate reads
                // the new one from now on.
                self.cache
                    .docs
                    .borrow_mut()
                    .insert(key, (self.clock.now(), new.cloned().map(Rc::new)));
                Ok(true)
            }
            CatalogWrite::Conflict(_) => Ok(false),
            CatalogWrite::Importing => Err(Error::Unavailable(format!(
                "the catalog is still importing the {rt} records of the previous version"
            ))),
            CatalogWrite::TooLarge => Err(Error::Conflict(format!(
                "the {rt} resources would take more than {} bytes together, the most one KV \
                 bundle holds (docs/scale.md \"Catalog and bundles\"); nothing was written",
                crate::platform::CATALOG_MAX_BYTES
            ))),
        }
    }

    pub async fn put(&self, rt: ResourceType, id: &str, doc: &Value) -> Result<()> {
        let key = resource_key(rt, id);
        let body = serde_json::to_string(doc).map_err(|e| Error::Internal(e.to_string()))?;
        self.cache.invalidate(&key, rt);
        self.kv.put(&key, &body).await?;
        self.cache.invalidate(&key, rt);
        Ok(())
    }

    pub async fn delete(&self, rt: ResourceType, id: &str) -> Result<()> {
        let key = resource_key(rt, id);
        self.cache.invalidate(&key, rt);
        self.kv.delete(&key).await?;
        self.cache.invalidate(&key, rt);
        Ok(())
    }

    /// Every resource of a type, ordered by id, strongly consistent where there is a Catalog
    /// (the admin API). Records that are not JSON are skipped.
    pub async fn list(&self, rt: ResourceType) -> Result<Vec<Value>> {
        if let Some(c) = self.catalog_for(rt) {
            if let Some((_, docs)) = c.list(rt.name()).await? {
                return Ok(parse_docs(&docs));
            }
        }
        self.list_kv(rt).await
    }

    /// Every resource of a type for the hot path: one KV get of its bundle (see the module
    /// doc); the Catalog's own list when the bundle is missing or older than a write this
    /// isolate made; the per-id records while the Catalog still imports them.
    pub async fn load(&self, rt: ResourceType) -> Result<Vec<Value>> {
        let Some(c) = self.catalog_for(rt) else {
            return self.list_kv(rt).await;
        };
        if let Some(b) = self.fresh_bundle(rt).await? {
            if let Some(Value::Array(docs)) = b.get("docs") {
                return Ok(docs.clone());
            }
        }
        match c.list(rt.name()).await? {
            Some((_, docs)) => Ok(parse_docs(&docs)),
            None => self.list_kv(rt).await,
        }
    }

    /// The bundle of `rt` in KV, unless it is older than a write this isolate made.
    async fn fresh_bundle(&self, rt: ResourceType) -> Result<Option<Value>> {
        let min = self
            .cache
            .min_versions
            .borrow()
            .get(rt.name())
            .copied()
            .unwrap_or(0);
        Ok(self
            .kv
            .get(&bundle_key(rt.name()))
            .await?
            .and_then(|s| serde_json::from_str::<Value>(&s).ok())
            .filter(|b| b.get("version").and_then(Value::as_u64).unwrap_or(0) >= min))
    }

    /// The CORS origins every Client registers ([`crate::cors::client_origins`]): from
    /// `bundle/Client` where there is a Catalog, as [`Repo::load`] does.
    pub async fn cors_origins(&self) -> Result<std::collections::BTreeSet<String>> {
        let from_docs =
            |docs: &[Value]| docs.iter().flat_map(crate::cors::client_origins).collect();
        let rt = ResourceType::Client;
        let Some(c) = self.catalog_for(rt) else {
            return Ok(from_docs(&self.list_kv(rt).await?));
        };
        if let Some(b) = self.fresh_bundle(rt).await? {
            if let Some(Value::Object(by_id)) = b.get("origins") {
                return Ok(by_id
                    .values()
                    .filter_map(Value::as_array)
                    .flatten()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect());
            }
        }
        match c.list(rt.name()).await? {
            Some((_, docs)) => Ok(from_docs(&parse_docs(&docs))),
            None => Ok(from_docs(&self.list_kv(rt).await?)),
        }
    }

    /// Every per-id KV record of a type (the layout without a Catalog): a list and a read each.
    pub async fn list_kv(&self, rt: ResourceType) -> Result<Vec<Value>> {
        let prefix = format!("{}/", rt.name());
        let keys = self.kv.list(&prefix).await?;
        let reads = keys.iter().map(|k| self.kv.get(k));
        let values = futures::future::join_all(reads).await;
        let mut out = Vec::with_capacity(values.len());
        for v in values {
            if let Some(s) = v? {
                if let Ok(doc) = serde_json::from_str::<Value>(&s) {
                    out.push(doc);
                }
            }
        }
        Ok(out)
    }

    /// All AccessPolicies, compiled, cached for `ttl`. A stored policy that no longer compiles
    /// (written around the API) is left out rather than failing every request.
    pub async fn policies(&self) -> Result<Rc<PolicySet>> {
        let load = || async {
            let docs = self.load(ResourceType::AccessPolicy).await?;
            let mut set = PolicySet::default();
            for d in &docs {
                let Some(id) = d.get("id").and_then(Value::as_str) else {
                    continue;
                };
                if let Ok(p) = CompiledPolicy::compile(d) {
                    set.ids.push(id.to_string());
                    set.policies.push(p);
                }
            }
            Ok(set)
        };
        self.cache
            .policies
            .get(self.clock.now(), self.ttl, self.stale_after, load)
            .await
    }

    /// All TokenIntrospectors, cached for `ttl` like the policies: every external bearer token
    /// needs them, and a KV list per request would cost a read per introspector.
    pub async fn introspectors(&self) -> Result<Rc<Vec<Value>>> {
        let load = || self.load(ResourceType::TokenIntrospector);
        self.cache
            .introspectors
            .get(self.clock.now(), self.ttl, self.stale_after, load)
            .await
    }

    /// Every Role, by User, cached for `ttl` like the policies: every request with a user
    /// needs the user's Roles for its policy request (`role`, `session.role`, `roleName`).
    pub async fn roles(&self) -> Result<Rc<crate::model::role::RoleSet>> {
        let load = || async {
            let docs = self.load(ResourceType::Role).await?;
            Ok(crate::model::role::RoleSet::from_docs(&docs))
        };
        self.cache
            .roles
            .get(self.clock.now(), self.ttl, self.stale_after, load)
            .await
    }

    /// Every Scope's value, by id, cached for `ttl` like the policies (the scope ceiling of
    /// a Client that refers to Scopes).
    pub async fn scopes(&self) -> Result<Rc<crate::model::scope::ScopeSet>> {
        let load = || async {
            let docs = self.load(ResourceType::Scope).await?;
            Ok(crate::model::scope::ScopeSet::from_docs(&docs))
        };
        self.cache
            .scopes
            .get(self.clock.now(), self.ttl, self.stale_after, load)
            .await
    }

    pub async fn user_id_by_email(&self, email: &str) -> Result<Option<String>> {
        Ok(self
            .get_key(&email_key(email))
            .await?
            .and_then(|v| v.as_str().map(str::to_string)))
    }

    pub async fn put_email_index(&self, email: &str, user_id: &str) -> Result<()> {
        let key = email_key(email);
        self.cache.docs.borrow_mut().remove(&key);
        self.kv
            .put(&key, &Value::String(user_id.into()).to_string())
            .await?;
        self.cache.docs.borrow_mut().remove(&key);
        Ok(())
    }

    /// Our hash of `kind/id`'s imported credential hash `stored`, if a sign-in made one
    /// ([`rehash_key`]); `None` when there is none or it was made for another hash.
    pub async fn rehashed(&self, kind: &str, id: &str, stored: &str) -> Result<Option<String>> {
        let doc = self.get_key(&rehash_key(kind, id)).await?;
        Ok(doc.and_then(|d| {
            (d.get("from").and_then(Value::as_str) == Some(stored))
                .then(|| d.get("to").and_then(Value::as_str).map(str::to_string))
                .flatten()
        }))
    }

    /// Records `to` (our hash) as the re-hash of `kind/id`'s imported hash `from`.
    pub async fn put_rehash(&self, kind: &str, id: &str, from: &str, to: &str) -> Result<()> {
        let key = rehash_key(kind, id);
        let body = serde_json::json!({"from": from, "to": to}).to_string();
        self.cache.docs.borrow_mut().remove(&key);
        self.kv.put(&key, &body).await?;
        self.cache.docs.borrow_mut().remove(&key);
        Ok(())
    }

    pub async fn delete_rehash(&self, kind: &str, id: &str) -> Result<()> {
        let key = rehash_key(kind, id);
        self.cache.docs.borrow_mut().remove(&key);
        self.kv.delete(&key).await?;
        self.cache.docs.borrow_mut().remove(&key);
        Ok(())
    }

    pub async fn delete_email_index(&self, email: &str) -> Result<()> {
        let key = email_key(email);
        self.cache.docs.borrow_mut().remove(&key);
        self.kv.delete(&key).await?;
        self.cache.docs.borrow_mut().remove(&key);
        Ok(())
    }
}
