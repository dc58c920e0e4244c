//! The Catalog: one SQLite-backed Durable Object per resource type (named after it:
//! `AccessPolicy`, `TokenIntrospector`, `Role`, `Scope`, `Client`), the single writer and the
//! authority for that type, and the [`CatalogStore`] client the Worker reaches it through.
//!
//! - Reads, lists and compare-and-set writes are synchronous SQL with nothing awaited between
//!   the read and the write: serialised, no lost write.
//! - It publishes the type's bundle (`bundle/{Type}`, src/store/mod.rs) from its alarm, at most
//!   once a second: a burst of writes is coalesced into one bundle write, so KV's
//!   one-write-per-second-per-key limit holds. It mirrors each changed document to its per-id
//!   KV record (`{Type}/{id}`) before answering the write, unless that key was written less
//!   than a second ago or is being written: then the alarm writes its newest version later.
//!   A failed KV write is retried a second later (the changed ids stay marked until written).
//! - Upgrade: with no state yet, it imports the type's per-id KV records (today's layout) in
//!   pages of [`IMPORT_PAGE`] keys (one list and a read each, inside the per-invocation limit
//!   of 1,000 KV operations), the first page inline, the rest by alarm. Until the import is
//!   complete it answers "importing": the Worker keeps reading the per-id records then, and
//!   refuses writes with 503 (docs/scale.md "Catalog and bundles").

use crate::platform::{BackendError, CatalogGet, CatalogStore, CatalogWrite};
use crate::worker::durable::{FromRow, Rows, SqlRow};
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use std::cell::{Cell, RefCell};
use std::collections::HashSet;
use worker::{
    durable_object, Delay, Env, ObjectNamespace, Request, Response, Result, SqlStorageValue, State,
};

/// Per-id records read per import page (plus one list): under 1,000 KV operations.
const IMPORT_PAGE: u64 = 400;
/// Per-id records mirrored to KV per alarm run.
const MIRROR_PAGE: usize = 400;
/// Milliseconds between two KV writes of the object (KV allows one write per second per key).
const PUBLISH_EVERY_MS: i64 = 1_000;

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
enum Op {
    List {
        rt: String,
    },
    Get {
        rt: String,
        id: String,
    },
    Write {
        rt: String,
        id: String,
        expected: Option<String>,
        new: Option<String>,
    },
}

impl Op {
    fn rt(&self) -> &str {
        match self {
            Op::List { rt } | Op::Get { rt, .. } | Op::Write { rt, .. } => rt,
        }
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Reply {
    importing: bool,
    #[serde(default)]
    version: u64,
    #[serde(default)]
    docs: Vec<String>,
    #[serde(default)]
    value: Option<String>,
    #[serde(default)]
    swapped: bool,
    /// The write would take the type over [`crate::platform::CATALOG_MAX_BYTES`].
    #[serde(default)]
    too_large: bool,
}

struct SizeRow {
    n: f64,
}

impl FromRow for SizeRow {
    fn from_row(r: &SqlRow) -> Result<Self> {
        Ok(SizeRow { n: r.num("n")? })
    }
}

struct Body {
    body: String,
}

impl FromRow for Body {
    fn from_row(r: &SqlRow) -> Result<Self> {
        Ok(Body {
            body: r.text("body")?,
        })
    }
}

struct MetaRow {
    v: String,
}

impl FromRow for MetaRow {
    fn from_row(r: &SqlRow) -> Result<Self> {
        Ok(MetaRow { v: r.text("v")? })
    }
}

struct DirtyRow {
    id: String,
    seq: f64,
}

impl FromRow for DirtyRow {
    fn from_row(r: &SqlRow) -> Result<Self> {
        Ok(DirtyRow {
            id: r.text("id")?,
            seq: r.num("seq")?,
        })
    }
}

#[durable_object]
pub struct Catalog {
    state: State,
    env: Env,
    /// An import page is running in this instance (inline or by alarm).
    importing: Cell<bool>,
    /// Ids whose per-id KV record is being written right now: no second write of the same key
    /// starts until it ends (it could land after a newer one).
    inflight: RefCell<HashSet<String>>,
}

fn now_ms() -> i64 {
    js_sys::Date::now() as i64
}

type Sql = worker::SqlStorage;

fn meta(sql: &Sql, k: &str) -> Result<Option<String>> {
    let rows: Vec<MetaRow> = sql
        .exec("SELECT v FROM meta WHERE k = ?", vec![k.to_string().into()])?
        .rows()?;
    Ok(rows.into_iter().next().map(|r| r.v))
}

fn meta_num(sql: &Sql, k: &str) -> Result<i64> {
    Ok(meta(sql, k)?.and_then(|v| v.parse().ok()).unwrap_or(0))
}

fn set_meta(sql: &Sql, k: &str, v: &str) -> Result<()> {
    sql.exec(
        "INSERT INTO meta (k, v) VALUES (?, ?) ON CONFLICT(k) DO UPDATE SET v = excluded.v",
        vec![k.to_string().into(), v.to_string().into()],
    )?;
    Ok(())
}

fn doc(sql: &Sql, id: &str) -> Result<Option<String>> {
    let rows: Vec<Body> = sql
        .exec(
            "SELECT body FROM docs WHERE id = ?",
            vec![id.to_string().into()],
        )?
        .rows()?;
    Ok(rows.into_iter().next().map(|r| r.body))
}

/// When the per-id record of `id` was last written to KV (ms), 0 if never.
fn written_at(sql: &Sql, id: &str) -> Result<i64> {
    struct At {
        at: f64,
    }
    impl FromRow for At {
        fn from_row(r: &SqlRow) -> Result<Self> {
            Ok(At { at: r.num("at")? })
        }
    }
    let rows: Vec<At> = sql
        .exec(
            "SELECT at FROM written WHERE id = ?",
            vec![id.to_string().into()],
        )?
        .rows()?;
    Ok(rows.into_iter().next().map_or(0, |r| r.at as i64))
}

fn set_written(sql: &Sql, id: &str, at: i64) -> Result<()> {
    sql.exec(
        "INSERT INTO written (id, at) VALUES (?, ?) ON CONFLICT(id) DO UPDATE SET at = excluded.at",
        vec![id.to_string().into(), SqlStorageValue::Integer(at)],
    )?;
    Ok(())
}

fn all_docs(sql: &Sql) -> Result<Vec<String>> {
    let rows: Vec<Body> = sql
        .exec("SELECT body FROM docs ORDER BY id", None)?
        .rows()?;
    Ok(rows.into_iter().map(|r| r.body).collect())
}

impl Catalog {
    fn sql(&self) -> Sql {
        self.state.storage().sql()
    }

    fn imported(&self) -> Result<bool> {
        Ok(meta(&self.sql(), "imported")?.is_some())
    }

    fn kv(&self) -> Result<worker::kv::KvStore> {
        self.env.kv("RESOURCES")
    }

    /// One page of the import of `rt`'s per-id KV records; true when the import is complete.
    async fn import_page(&self, rt: &str) -> Result<bool> {
        if self.imported()? {
            return Ok(true);
        }
        let kv = self.kv()?;
        let prefix = format!("{rt}/");
        let mut q = kv.list().prefix(prefix.clone()).limit(IMPORT_PAGE);
        if let Some(c) = meta(&self.sql(), "import_cursor")? {
            q = q.cursor(c);
        }
        let page = q.execute().await?;
        let names: Vec<String> = page.keys.into_iter().map(|k| k.name).collect();
        let reads = names.iter().map(|k| kv.get(k).text());
        let values = futures::future::join_all(reads).await;
        let sql = self.sql();
        for (name, value) in names.iter().zip(values) {
            // A record that is not JSON was skipped by the old loads too.
            if let Some(v) = value? {
                if serde_json::from_str::<serde_json::Value>(&v).is_ok() {
                    sql.exec(
                        "INSERT INTO docs (id, body) VALUES (?, ?) \
                         ON CONFLICT(id) DO UPDATE SET body = excluded.body",
                        vec![name[prefix.len()..].to_string().into(), v.into()],
                    )?;
                }
            }
        }
        let done = page.list_complete || page.cursor.as_deref().is_none_or(str::is_empty);
        if done {
            let v = meta_num(&sql, "version")? + 1;
            set_meta(&sql, "version", &v.to_string())?;
            set_meta(&sql, "imported", "1")?;
            sql.exec("DELETE FROM meta WHERE k = 'import_cursor'", None)?;
        } else if let Some(c) = page.cursor {
            set_meta(&sql, "import_cursor", &c)?;
        }
        Ok(done)
    }

    /// Makes sure `rt` is imported: runs one page inline (or waits a little for the page
    /// another request runs); false while pages remain (the alarm continues them).
    async fn ensure_imported(&self, rt: &str) -> Result<bool> {
        if self.imported()? {
            return Ok(true);
        }
        if self.importing.get() {
            for _ in 0..40 {
                Delay::from(std::time::Duration::from_millis(50)).await;
                if !self.importing.get() {
                    break;
                }
            }
            return self.imported();
        }
        self.importing.set(true);
        let r = self.import_page(rt).await;
        self.importing.set(false);
        self.schedule(0).await?;
        r
    }

    /// Writes `id`'s per-id KV record now, before the write is answered, unless that key was
    /// written less than a second ago or is being written (then the alarm does it later).
    /// So a single change is in KV when acknowledged, and a burst stays within KV's limit.
    async fn mirror_now(&self, rt: &str, id: &str) -> Result<()> {
        let sql = self.sql();
        let now = now_ms();
        if self.inflight.borrow().contains(id) || now - written_at(&sql, id)? < PUBLISH_EVERY_MS {
            return Ok(());
        }
        let seq = {
            let rows: Vec<DirtyRow> = sql
                .exec(
                    "SELECT id, seq FROM dirty WHERE id = ?",
                    vec![id.to_string().into()],
                )?
                .rows()?;
            match rows.into_iter().next() {
                Some(r) => r.seq as i64,
                None => return Ok(()),
            }
        };
        let body = doc(&sql, id)?;
        let kv = self.kv()?;
        set_written(&sql, id, now)?;
        self.inflight.borrow_mut().insert(id.to_string());
        let key = format!("{rt}/{id}");
        let r = async {
            match &body {
                Some(b) => kv.put(&key, b.as_str())?.execute().await,
                None => kv.delete(&key).await,
            }
        }
        .await;
        self.inflight.borrow_mut().remove(id);
        match r {
            Ok(()) => {
                sql.exec(
                    "DELETE FROM dirty WHERE id = ? AND seq <= ?",
                    vec![id.to_string().into(), SqlStorageValue::Integer(seq)],
                )?;
            }
            Err(e) => worker::console_error!("catalog {key}: KV write failed: {e}"),
        }
        Ok(())
    }

    /// Sets the alarm to run in `delay_ms` (or sooner, if it is set sooner already).
    async fn schedule(&self, delay_ms: i64) -> Result<()> {
        let storage = self.state.storage();
        let at = now_ms() + delay_ms.max(0);
        match storage.get_alarm().await? {
            Some(t) if t <= at => Ok(()),
            _ => storage.set_alarm(delay_ms.max(0)).await,
        }
    }

    fn apply(&self, op: Op) -> Result<Reply> {
        let sql = self.sql();
        let mut reply = Reply {
            version: meta_num(&sql, "version")? as u64,
            ..Reply::default()
        };
        match op {
            Op::List { .. } => reply.docs = all_docs(&sql)?,
            Op::Get { id, .. } => reply.value = doc(&sql, &id)?,
            Op::Write {
                id,
                expected,
                new,
                rt: op_rt,
            } => {
                // No await between this read and the writes: serialised in the object.
                let cur = doc(&sql, &id)?;
                if cur != expected {
                    reply.value = cur;
                    return Ok(reply);
                }
                if let (Some(body), true) = (&new, op_rt != "Client") {
                    let others: Vec<SizeRow> = sql
                        .exec(
                            "SELECT COALESCE(SUM(LENGTH(CAST(body AS BLOB))), 0) AS n FROM docs WHERE id != ?",
                            vec![id.clone().into()],
                        )?
                        .rows()?;
                    let others = others.first().map_or(0.0, |r| r.n) as usize;
                    if others + body.len() > crate::platform::CATALOG_MAX_BYTES {
                        reply.too_large = true;
                        return Ok(reply);
                    }
                }
                match new {
                    Some(body) => sql.exec(
                        "INSERT INTO docs (id, body) VALUES (?, ?) \
                         ON CONFLICT(id) DO UPDATE SET body = excluded.body",
                        vec![id.clone().into(), body.into()],
                    )?,
                    None => sql.exec("DELETE FROM docs WHERE id = ?", vec![id.clone().into()])?,
                };
                reply.version += 1;
                let v = reply.version as i64;
                set_meta(&sql, "version", &v.to_string())?;
                sql.exec(
                    "INSERT INTO dirty (id, seq) VALUES (?, ?) \
                     ON CONFLICT(id) DO UPDATE SET seq = excluded.seq",
                    vec![id.into(), SqlStorageValue::Integer(v)],
                )?;
                reply.swapped = true;
            }
        }
        Ok(reply)
    }

    /// Writes the bundle and the changed per-id records to KV, if the last KV write was at
    /// least [`PUBLISH_EVERY_MS`] ago; else (or when more is left) sets the alarm for later.
    async fn publish(&self, rt: &str) -> Result<()> {
        let sql = self.sql();
        let now = now_ms();
        let last = meta_num(&sql, "published_at")?;
        if now - last < PUBLISH_EVERY_MS {
            return self.schedule(last + PUBLISH_EVERY_MS - now).await;
        }
        let version = meta_num(&sql, "version")?;
        let published = meta_num(&sql, "published")?;
        let dirty: Vec<DirtyRow> = sql
            .exec(
                "SELECT id, seq FROM dirty ORDER BY seq LIMIT ?",
                vec![SqlStorageValue::Integer(MIRROR_PAGE as i64)],
            )?
            .rows()?;
        if version <= published && dirty.is_empty() {
            return Ok(());
        }
        // Everything written below is read now, in one synchronous step.
        let bundle = (version > published)
            .then(|| all_docs(&sql).map(|d| crate::store::bundle_body(rt, version as u64, &d)))
            .transpose()?;
        let mut mirror = Vec::new();
        for r in &dirty {
            let busy = self.inflight.borrow().contains(&r.id);
            if busy || now - written_at(&sql, &r.id)? < PUBLISH_EVERY_MS {
                continue; // stays marked: the next run writes it
            }
            set_written(&sql, &r.id, now)?;
            mirror.push((r.id.clone(), r.seq as i64, doc(&sql, &r.id)?));
        }
        for (id, _, _) in &mirror {
            self.inflight.borrow_mut().insert(id.clone());
        }
        set_meta(&sql, "published_at", &now.to_string())?;
        let kv = self.kv()?;
        if let Some(b) = bundle {
            let key = crate::store::bundle_key(rt);
            match kv.put(&key, b)?.execute().await {
                Ok(()) => set_meta(&sql, "published", &version.to_string())?,
                Err(e) => worker::console_error!("catalog {rt}: bundle write failed: {e}"),
            }
        }
        let writes = mirror.iter().map(|(id, _, body)| {
            let key = format!("{rt}/{id}");
            let kv = &kv;
            async move {
                match body {
                    Some(b) => kv.put(&key, b.as_str())?.execute().await,
                    None => kv.delete(&key).await,
                }
            }
        });
        let results = futures::future::join_all(writes).await;
        for (id, _, _) in &mirror {
            self.inflight.borrow_mut().remove(id);
        }
        for ((id, seq, _), r) in mirror.iter().zip(results) {
            match r {
                // Only if not changed again meanwhile (then its newer seq stays marked).
                Ok(()) => {
                    sql.exec(
                        "DELETE FROM dirty WHERE id = ? AND seq <= ?",
                        vec![id.clone().into(), SqlStorageValue::Integer(*seq)],
                    )?;
                }
                Err(e) => worker::console_error!("catalog {rt}/{id}: KV write failed: {e}"),
            }
        }
        let left: Vec<DirtyRow> = sql
            .exec("SELECT id, seq FROM dirty LIMIT 1", None)?
            .rows()?;
        if !left.is_empty() || meta_num(&sql, "published")? < meta_num(&sql, "version")? {
            self.schedule(PUBLISH_EVERY_MS).await?;
        }
        Ok(())
    }
}

impl worker::DurableObject for Catalog {
    fn new(state: State, env: Env) -> Self {
        let sql = state.storage().sql();
        let setup = [
            "CREATE TABLE IF NOT EXISTS docs (id TEXT PRIMARY KEY, body TEXT NOT NULL)",
            "CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v TEXT NOT NULL)",
            // Ids whose per-id KV record is behind, with the version that changed them.
            "CREATE TABLE IF NOT EXISTS dirty (id TEXT PRIMARY KEY, seq INTEGER NOT NULL)",
            "CREATE INDEX IF NOT EXISTS dirty_seq ON dirty (seq)",
            // When each per-id record was last written to KV (ms): at most once a second.
            "CREATE TABLE IF NOT EXISTS written (id TEXT PRIMARY KEY, at INTEGER NOT NULL)",
        ];
        for s in setup {
            if let Err(e) = sql.exec(s, None) {
                worker::console_error!("Catalog schema: {e}");
            }
        }
        Catalog {
            state,
            env,
            importing: Cell::new(false),
            inflight: RefCell::new(HashSet::new()),
        }
    }

    async fn fetch(&self, mut req: Request) -> Result<Response> {
        let op: Op = match req.json().await {
            Ok(op) => op,
            Err(e) => return Response::error(format!("bad op: {e}"), 400),
        };
        let rt = op.rt().to_string();
        let known = crate::model::ResourceType::parse(&rt).is_some_and(crate::store::in_catalog);
        if !known {
            return Response::error(format!("not a catalog type: {rt}"), 400);
        }
        let run = async {
            set_meta(&self.sql(), "type", &rt)?;
            if !self.ensure_imported(&rt).await? {
                return Ok(Reply {
                    importing: true,
                    ..Reply::default()
                });
            }
            let written = match &op {
                Op::Write { id, .. } => Some(id.clone()),
                _ => None,
            };
            let reply = self.apply(op)?;
            if let Some(id) = written.filter(|_| reply.swapped) {
                // The write is committed: a failure here only leaves the record to the alarm.
                if let Err(e) = self.mirror_now(&rt, &id).await {
                    worker::console_error!("catalog {rt}/{id}: {e}");
                }
            }
            if reply.swapped || meta(&self.sql(), "published")?.is_none() {
                let wait = meta_num(&self.sql(), "published_at")? + PUBLISH_EVERY_MS - now_ms();
                self.schedule(wait).await?;
            }
            Ok::<_, worker::Error>(reply)
        };
        match run.await {
            Ok(reply) => Response::from_json(&reply),
            Err(e) => Response::error(format!("catalog: {e}"), 500),
        }
    }

    async fn alarm(&self) -> Result<Response> {
        let Some(rt) = meta(&self.sql(), "type")? else {
            return Response::ok("idle");
        };
        if !self.imported()? {
            if !self.importing.get() {
                self.importing.set(true);
                let r = self.import_page(&rt).await;
                self.importing.set(false);
                r?;
            }
            self.schedule(0).await?;
            return Response::ok("importing");
        }
        self.publish(&rt).await?;
        Response::ok("published")
    }
}

/// The Worker's [`CatalogStore`]: calls the object named after the type.
pub struct CatalogClient {
    pub ns: ObjectNamespace,
    pub timeout_ms: u32,
    /// `make scale`'s counts (src/worker/stats.rs); None in production.
    pub stats: Option<std::rc::Rc<super::stats::Stats>>,
}

impl CatalogClient {
    async fn call(&self, op: &Op) -> std::result::Result<Reply, BackendError> {
        super::outbound::with_timeout(self.timeout_ms, self.call_once(op))
            .await
            .unwrap_or_else(|| {
                Err(BackendError(format!(
                    "catalog: no answer within {} ms",
                    self.timeout_ms
                )))
            })
    }

    async fn call_once(&self, op: &Op) -> std::result::Result<Reply, BackendError> {
        let name = op.rt();
        super::stats::object(&self.stats, &format!("catalog-{name}"));
        super::durable::post_json(&self.ns, name, "catalog", op).await
    }
}

#[async_trait(?Send)]
impl CatalogStore for CatalogClient {
    async fn list(
        &self,
        rt: &str,
    ) -> std::result::Result<Option<(u64, Vec<String>)>, BackendError> {
        let r = self.call(&Op::List { rt: rt.into() }).await?;
        Ok((!r.importing).then_some((r.version, r.docs)))
    }

    async fn get(&self, rt: &str, id: &str) -> std::result::Result<CatalogGet, BackendError> {
        let r = self
            .call(&Op::Get {
                rt: rt.into(),
                id: id.into(),
            })
            .await?;
        Ok(if r.importing {
            CatalogGet::Importing
        } else {
            CatalogGet::Found(r.value)
        })
    }

    async fn write(
        &self,
        rt: &str,
        id: &str,
        expected: Option<&str>,
        new: Option<&str>,
    ) -> std::result::Result<CatalogWrite, BackendError> {
        let r = self
            .call(&Op::Write {
                rt: rt.into(),
                id: id.into(),
                expected: expected.map(str::to_string),
                new: new.map(str::to_string),
            })
            .await?;
        Ok(if r.importing {
            CatalogWrite::Importing
        } else if r.too_large {
            CatalogWrite::TooLarge
        } else if r.swapped {
            CatalogWrite::Done(r.version)
        } else {
            CatalogWrite::Conflict(r.value)
        })
    }
}
