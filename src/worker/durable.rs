//! The Durable Object that holds state which must change atomically (codes, refresh families,
//! sessions, revocations), and the [`StateStore`] client the Worker talks to it through.
//!
//! SQLite-backed: `kv(key, value, expires_at)` and `revoked(seq, jti, until)`. Each operation
//! reads and writes with synchronous SQL calls and awaits nothing in between, so a Durable
//! Object's single-threaded execution makes it atomic: of N concurrent `cas` calls with the same
//! expected value, exactly one swaps.
//!
//! Two classes share that code and those tables: `AuthState` (binding `STATE`; the object
//! `auth-state`, which held every record before shards and still holds the revocation feed) and
//! `StateShard` (binding `SHARDS`; objects `shard-{i}`), where the keyed records live, each in
//! the shard of its key ([`crate::config::shard_index`]). Records still in the previous layout
//! move on touch ([`KeyedState::adopt`]) and by the previous object's own drain (an alarm,
//! [`Core::drain`]); docs/scale.md "Keyed state (shards)".

use crate::platform::{BackendError, Cas, Feed, StateStore};
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use worker::{
    durable_object, Env, Headers, Method, ObjectNamespace, Request, RequestInit, Response, Result,
    SqlStorageValue, State,
};

/// The name of the one object that holds the state.
const OBJECT_NAME: &str = "auth-state";

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
enum Op {
    Get {
        key: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        role: Option<Role>,
    },
    Cas {
        key: String,
        expected: Option<String>,
        new: Option<String>,
        expires_at: i64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        role: Option<Role>,
    },
    // The revocation ops. `feed` is set by this version when it calls the replica `feed-{i}`
    // (docs/scale.md "Revocation feeds"); absent, the op has the shape of the versions that
    // wrote only to `auth-state`: such a write is forwarded to every replica.
    Revoke {
        jti: String,
        until: i64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        feed: Option<u16>,
    },
    RevokeMany {
        items: Vec<(String, i64)>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        feed: Option<u16>,
    },
    Since {
        since: u64,
        #[serde(default = "default_page")]
        limit: u32,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        feed: Option<u16>,
    },
    Revoked {
        jti: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        feed: Option<u16>,
    },
    Throttle {
        throttle: crate::state::throttle::Op,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        role: Option<Role>,
    },
}

/// Why a keyed op reaches an object. None: a Worker from before shards (a rolling deploy).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
enum Role {
    /// The key belongs here in the caller's layout.
    Current,
    /// The object is `me` of the caller's previous layout and the keys belong in `shards`
    /// shards: the object starts draining its records there and says whether any are left.
    Previous { me: String, shards: u32 },
}

fn default_page() -> u32 {
    crate::state::REVOCATION_PAGE
}

#[derive(Debug, Serialize, Deserialize)]
struct Reply {
    #[serde(default)]
    value: Option<String>,
    #[serde(default)]
    swapped: bool,
    #[serde(default)]
    cursor: u64,
    #[serde(default)]
    items: Vec<(String, i64)>,
    #[serde(default)]
    until: Option<i64>,
    #[serde(default)]
    throttle: Option<crate::state::throttle::Answer>,
    /// The expiry of `value` (a Get).
    #[serde(default)]
    expires_at: Option<i64>,
    /// To a [`Role::Previous`] op: does the object still hold live records that belong
    /// elsewhere? None (an object from before shards): assume so.
    #[serde(default)]
    more: Option<bool>,
}

struct RowExp {
    value: String,
    expires_at: f64,
}

impl FromRow for RowExp {
    fn from_row(r: &SqlRow) -> Result<Self> {
        Ok(RowExp {
            value: r.text("value")?,
            expires_at: r.num("expires_at")?,
        })
    }
}

struct KeyRow {
    key: String,
    value: String,
    expires_at: f64,
}

impl FromRow for KeyRow {
    fn from_row(r: &SqlRow) -> Result<Self> {
        Ok(KeyRow {
            key: r.text("key")?,
            value: r.text("value")?,
            expires_at: r.num("expires_at")?,
        })
    }
}

struct SpecRow {
    me: String,
    shards: f64,
    done: f64,
    dirty: f64,
    cursor: String,
}

impl FromRow for SpecRow {
    fn from_row(r: &SqlRow) -> Result<Self> {
        Ok(SpecRow {
            me: r.text("me")?,
            shards: r.num("shards")?,
            done: r.num("done")?,
            dirty: r.num("dirty")?,
            cursor: r.text("cursor")?,
        })
    }
}

struct One {
    #[allow(dead_code)]
    one: f64,
}

impl FromRow for One {
    fn from_row(r: &SqlRow) -> Result<Self> {
        Ok(One { one: r.num("one")? })
    }
}

/// The key the drain kick looks up in each previous shard: never a record (no prefix of ours).
const DRAIN_KICK_KEY: &str = "drain-kick";

/// Records one drain alarm moves.
const DRAIN_PAGE: usize = 100;

struct Row {
    value: String,
}

impl FromRow for Row {
    fn from_row(r: &SqlRow) -> Result<Self> {
        Ok(Row {
            value: r.text("value")?,
        })
    }
}

struct RevokedRow {
    seq: f64,
    jti: String,
    until: f64,
}

impl FromRow for RevokedRow {
    fn from_row(r: &SqlRow) -> Result<Self> {
        Ok(RevokedRow {
            seq: r.num("seq")?,
            jti: r.text("jti")?,
            until: r.num("until")?,
        })
    }
}

struct UntilRow {
    until: Option<f64>,
}

impl FromRow for UntilRow {
    fn from_row(r: &SqlRow) -> Result<Self> {
        Ok(UntilRow {
            until: r.opt_num("until")?,
        })
    }
}

/// One row of a SQL query, read by column name by hand. `SqlCursor::to_array` deserialises rows
/// with serde_wasm_bindgen, whose deserializer and one `Deserialize` per row type were about
/// 30 KB of the Worker's wasm; the columns here are only strings and numbers.
pub(crate) struct SqlRow(wasm_bindgen::JsValue);

impl SqlRow {
    fn column(&self, name: &str) -> Result<wasm_bindgen::JsValue> {
        js_sys::Reflect::get(&self.0, &wasm_bindgen::JsValue::from_str(name))
            .map_err(worker::Error::from)
    }

    pub(crate) fn text(&self, name: &str) -> Result<String> {
        self.column(name)?
            .as_string()
            .ok_or_else(|| bad_column(name))
    }

    pub(crate) fn num(&self, name: &str) -> Result<f64> {
        self.column(name)?.as_f64().ok_or_else(|| bad_column(name))
    }

    /// A number or SQL NULL.
    pub(crate) fn opt_num(&self, name: &str) -> Result<Option<f64>> {
        let v = self.column(name)?;
        if v.is_null() || v.is_undefined() {
            Ok(None)
        } else {
            v.as_f64().map(Some).ok_or_else(|| bad_column(name))
        }
    }
}

fn bad_column(name: &str) -> worker::Error {
    worker::Error::RustError(format!("SQL column `{name}`: unexpected type"))
}

/// A row type a query reads ([`Rows::rows`]).
pub(crate) trait FromRow: Sized {
    fn from_row(row: &SqlRow) -> Result<Self>;
}

/// `cursor.rows()`: every row of a query as `T`.
pub(crate) trait Rows {
    fn rows<T: FromRow>(self) -> Result<Vec<T>>;
}

impl Rows for worker::SqlCursor {
    fn rows<T: FromRow>(self) -> Result<Vec<T>> {
        self.map(|row| T::from_row(&SqlRow(row?))).collect()
    }
}

/// The old single object (`auth-state`): the revocation feed, and every keyed record with
/// `STATE_SHARDS = "single"` or before shards.
#[durable_object]
pub struct AuthState {
    core: Core,
}

/// One shard of the keyed records (`shard-{i}`).
#[durable_object]
pub struct StateShard {
    core: Core,
}

/// The code both classes run: same tables, same ops.
pub struct Core {
    state: State,
    env: Env,
    /// A replica's following of `feed-0` ([`Core::follow`]).
    follow: Follow,
}

fn now() -> i64 {
    (js_sys::Date::now() / 1000.0) as i64
}

impl Core {
    fn sql(&self) -> worker::SqlStorage {
        self.state.storage().sql()
    }

    fn current(&self, key: &str, now: i64) -> Result<Option<String>> {
        let rows: Vec<Row> = self
            .sql()
            .exec(
                "SELECT value FROM kv WHERE key = ? AND expires_at > ?",
                vec![
                    SqlStorageValue::from(key.to_string()),
                    SqlStorageValue::Integer(now),
                ],
            )?
            .rows()?;
        Ok(rows.into_iter().next().map(|r| r.value))
    }

    fn put(&self, key: &str, value: &str, expires_at: i64) -> Result<()> {
        self.sql().exec(
            "INSERT INTO kv (key, value, expires_at) VALUES (?, ?, ?) \
             ON CONFLICT(key) DO UPDATE SET value = excluded.value, expires_at = excluded.expires_at",
            vec![
                key.to_string().into(),
                value.to_string().into(),
                SqlStorageValue::Integer(expires_at),
            ],
        )?;
        Ok(())
    }

    /// Adds a revocation unless one of `jti` lasting as long is already there (through the
    /// `revoked_jti` index): a retried, forwarded or followed write adds nothing.
    fn revoke(&self, jti: &str, until: i64) -> Result<()> {
        self.sql().exec(
            "INSERT INTO revoked (jti, until) SELECT ?, ? \
             WHERE NOT EXISTS (SELECT 1 FROM revoked WHERE jti = ? AND until >= ?)",
            vec![
                jti.to_string().into(),
                SqlStorageValue::Integer(until),
                jti.to_string().into(),
                SqlStorageValue::Integer(until),
            ],
        )?;
        Ok(())
    }

    /// Drops revocations past their `until` (through the `revoked_until` index).
    fn sweep_revoked(&self, now: i64) -> Result<()> {
        self.sql().exec(
            "DELETE FROM revoked WHERE until <= ?",
            vec![SqlStorageValue::Integer(now)],
        )?;
        Ok(())
    }

    /// The op's answer, and whether the drain alarm must be (re)started.
    fn apply(&self, op: Op) -> Result<(Reply, bool)> {
        let now = now();
        let sql = self.sql();
        let mut reply = Reply {
            value: None,
            swapped: false,
            cursor: 0,
            items: Vec::new(),
            until: None,
            throttle: None,
            expires_at: None,
            more: None,
        };
        // The keys this op may write live records to, and who sent it.
        let (role, written): (Option<Role>, Vec<String>) = match &op {
            Op::Get { role, .. } => (role.clone(), Vec::new()),
            Op::Cas { key, new, role, .. } => {
                (role.clone(), new.iter().map(|_| key.clone()).collect())
            }
            Op::Throttle { throttle, role } => (
                role.clone(),
                throttle.keys.iter().map(|k| k.key.clone()).collect(),
            ),
            _ => (Some(Role::Current), Vec::new()),
        };
        let mut wake = false;
        if let Some(Role::Previous { me, shards }) = &role {
            wake |= self.drain_requested(me, *shards, now)?;
        }
        match op {
            Op::Get { key, .. } => {
                let rows: Vec<RowExp> = sql
                    .exec(
                        "SELECT value, expires_at FROM kv WHERE key = ? AND expires_at > ?",
                        vec![key.into(), SqlStorageValue::Integer(now)],
                    )?
                    .rows()?;
                if let Some(r) = rows.into_iter().next() {
                    reply.value = Some(r.value);
                    reply.expires_at = Some(r.expires_at as i64);
                }
            }
            Op::Cas {
                key,
                expected,
                new,
                expires_at,
                ..
            } => {
                // No await between this read and the write below: atomic in a Durable Object.
                let cur = self.current(&key, now)?;
                if cur == expected {
                    match new {
                        Some(v) => {
                            sql.exec(
                                "INSERT INTO kv (key, value, expires_at) VALUES (?, ?, ?) \
                                 ON CONFLICT(key) DO UPDATE SET value = excluded.value, expires_at = excluded.expires_at",
                                vec![key.into(), v.into(), SqlStorageValue::Integer(expires_at)],
                            )?;
                        }
                        None => {
                            sql.exec("DELETE FROM kv WHERE key = ?", vec![key.into()])?;
                        }
                    }
                    sql.exec(
                        "DELETE FROM kv WHERE expires_at <= ?",
                        vec![SqlStorageValue::Integer(now)],
                    )?;
                    reply.swapped = true;
                } else {
                    reply.value = cur;
                }
            }
            Op::Revoke { jti, until, .. } => {
                // O(log n): the insert and the expiry sweep both go through an index.
                self.revoke(&jti, until)?;
                self.sweep_revoked(now)?;
            }
            Op::RevokeMany { items, .. } => {
                for (jti, until) in items {
                    self.revoke(&jti, until)?;
                }
                self.sweep_revoked(now)?;
            }
            Op::Since { since, limit, .. } => {
                // Expired rows go first (through the index), so that a feed nobody writes to any
                // more (auth-state after the upgrade) empties once its revocations have expired.
                self.sweep_revoked(now)?;
                // One page, in feed order; the cursor is the last row read.
                let rows: Vec<RevokedRow> = sql
                    .exec(
                        "SELECT seq, jti, until FROM revoked WHERE seq > ? ORDER BY seq LIMIT ?",
                        vec![
                            SqlStorageValue::Integer(since as i64),
                            SqlStorageValue::Integer(i64::from(limit.clamp(1, 10_000))),
                        ],
                    )?
                    .rows()?;
                reply.cursor = rows.last().map_or(since, |r| r.seq as u64).max(since);
                // Every row read, expired ones too: the caller tells a full page (more to read)
                // by its length, and drops the expired itself. Filtered here, an expired row
                // not yet swept made a full page look like the last one, and the isolate
                // answered "not revoked" for revocations on the pages it had not read.
                reply.items = rows.into_iter().map(|r| (r.jti, r.until as i64)).collect();
            }
            Op::Revoked { jti, .. } => {
                let rows: Vec<UntilRow> = sql
                    .exec(
                        "SELECT MAX(until) AS until FROM revoked WHERE jti = ?",
                        vec![jti.into()],
                    )?
                    .rows()?;
                reply.until = rows
                    .into_iter()
                    .next()
                    .and_then(|r| r.until)
                    .map(|u| u as i64);
            }
            Op::Throttle { throttle: op, .. } => {
                // Reads, the decision and the writes with nothing awaited in between: atomic.
                let raw = op
                    .keys
                    .iter()
                    .map(|k| self.current(&k.key, now))
                    .collect::<Result<Vec<_>>>()?;
                let (answer, writes) = crate::state::throttle::apply_raw(&op, raw, now);
                for (k, w) in op.keys.iter().zip(writes) {
                    match w {
                        Some((v, until)) => self.put(&k.key, &v, until)?,
                        None => {
                            sql.exec("DELETE FROM kv WHERE key = ?", vec![k.key.clone().into()])?;
                        }
                    }
                }
                reply.throttle = Some(answer);
            }
        }
        if !written.is_empty() {
            wake |= self.written(role.as_ref(), &written)?;
        }
        if let Some(Role::Previous { me, shards }) = &role {
            // After this op (the delete of a moved record): maybe nothing is left.
            wake |= self.drain_requested(me, *shards, now)?;
            reply.more = Some(self.spec()?.is_none_or(|s| s.done == 0.0));
        }
        Ok((reply, wake))
    }

    /// The drain's state: `me`, the shard count records go to, done, a record that stayed
    /// behind in this pass (dirty) and the pass's cursor (the last key handled).
    fn spec(&self) -> Result<Option<SpecRow>> {
        let rows: Vec<SpecRow> = self
            .sql()
            .exec(
                "SELECT me, shards, done, dirty, cursor FROM drain WHERE id = 1",
                None,
            )?
            .rows()?;
        Ok(rows.into_iter().next())
    }

    fn any_live(&self, now: i64) -> Result<bool> {
        let rows: Vec<One> = self
            .sql()
            .exec(
                "SELECT 1 AS one FROM kv WHERE expires_at > ? LIMIT 1",
                vec![SqlStorageValue::Integer(now)],
            )?
            .rows()?;
        Ok(!rows.is_empty())
    }

    /// A Worker of the new layout called this object as its previous location: remember
    /// where the records go, and start the drain unless nothing is left. True: set the alarm.
    fn drain_requested(&self, me: &str, shards: u32, now: i64) -> Result<bool> {
        let spec = self.spec()?;
        if spec
            .as_ref()
            .is_some_and(|s| s.me == me && s.shards as u32 == shards)
        {
            // Nothing live at all: done without a pass (the old object, once emptied).
            if spec.as_ref().is_some_and(|s| s.done == 0.0) && !self.any_live(now)? {
                self.sql().exec(
                    "UPDATE drain SET done = 1, dirty = 0, cursor = '' WHERE id = 1",
                    None,
                )?;
            }
            return Ok(false);
        }
        let done = i64::from(!self.any_live(now)?);
        self.sql().exec(
            "INSERT INTO drain (id, me, shards, done, dirty, cursor) VALUES (1, ?, ?, ?, 0, '') \
             ON CONFLICT(id) DO UPDATE SET me = excluded.me, shards = excluded.shards, \
             done = excluded.done, dirty = 0, cursor = ''",
            vec![
                me.to_string().into(),
                SqlStorageValue::Integer(i64::from(shards)),
                SqlStorageValue::Integer(done),
            ],
        )?;
        Ok(done == 0)
    }

    /// After a write of `keys`. A write of a record that belongs elsewhere, from a Worker from
    /// before shards (no role) or of an earlier shard count still running during a rolling
    /// deploy, makes the drain run again. A current-layout write to `auth-state` means
    /// `STATE_SHARDS = "single"` is in force: the drain is dropped.
    fn written(&self, role: Option<&Role>, keys: &[String]) -> Result<bool> {
        let Some(spec) = self.spec()? else {
            return Ok(false);
        };
        if role == Some(&Role::Current) && spec.me == OBJECT_NAME {
            self.sql().exec("DELETE FROM drain WHERE id = 1", None)?;
            return Ok(false);
        }
        let misplaced = |k: &str| {
            crate::config::shard_name(crate::config::shard_index(k, spec.shards as u32)) != spec.me
        };
        if matches!(role, None | Some(Role::Current)) && keys.iter().any(|k| misplaced(k)) {
            self.sql()
                .exec("UPDATE drain SET done = 0, dirty = 1 WHERE id = 1", None)?;
            return Ok(true);
        }
        Ok(false)
    }

    /// One page of the drain: moves live records that belong in another shard there (copy
    /// into the shard if absent there, then delete here if unchanged; a record changed here
    /// meanwhile has its copy undone and stays for the next pass). Returns when to run again
    /// (ms from now), or None when the drain is done.
    async fn drain(&self) -> Result<Option<i64>> {
        let Some(spec) = self.spec()? else {
            return Ok(None);
        };
        if spec.done != 0.0 {
            return Ok(None);
        }
        let now = now();
        let rows: Vec<KeyRow> = self
            .sql()
            .exec(
                "SELECT key, value, expires_at FROM kv WHERE key > ? AND expires_at > ? ORDER BY key LIMIT ?",
                vec![
                    spec.cursor.clone().into(),
                    SqlStorageValue::Integer(now),
                    SqlStorageValue::Integer(DRAIN_PAGE as i64),
                ],
            )?
            .rows()?;
        let shards = ObjectClient {
            ns: self.env.durable_object("SHARDS")?,
            timeout_ms: 10_000,
            stats: None,
        };
        let mut stayed = false;
        for r in &rows {
            let target =
                crate::config::shard_name(crate::config::shard_index(&r.key, spec.shards as u32));
            if target == spec.me {
                continue;
            }
            let exp = r.expires_at as i64;
            let copied = match shards
                .cas(
                    &target,
                    &r.key,
                    None,
                    Some(&r.value),
                    exp,
                    Some(Role::Current),
                )
                .await
            {
                Ok(c) => c == Cas::Swapped,
                Err(e) => {
                    worker::console_error!("drain: {e}");
                    stayed = true;
                    continue;
                }
            };
            // Awaited above: compare again before deleting.
            match self.current(&r.key, now)? {
                Some(v) if v == r.value => {
                    self.sql()
                        .exec("DELETE FROM kv WHERE key = ?", vec![r.key.clone().into()])?;
                }
                // Moved (or removed) meanwhile by another mover: the shard's copy stands.
                None => {}
                Some(_) => {
                    if copied {
                        let _ = shards
                            .cas(
                                &target,
                                &r.key,
                                Some(&r.value),
                                None,
                                0,
                                Some(Role::Current),
                            )
                            .await;
                    }
                    stayed = true;
                }
            }
        }
        // The spec may have changed while awaiting (a new layout, or dropped).
        let Some(now_spec) = self.spec()? else {
            return Ok(None);
        };
        if now_spec.me != spec.me || now_spec.shards != spec.shards {
            return Ok(Some(0));
        }
        let dirty = now_spec.dirty != 0.0 || stayed;
        if rows.len() == DRAIN_PAGE {
            let last = rows.last().map(|r| r.key.clone()).unwrap_or_default();
            self.sql().exec(
                "UPDATE drain SET cursor = ?, dirty = ? WHERE id = 1",
                vec![last.into(), SqlStorageValue::Integer(i64::from(dirty))],
            )?;
            return Ok(Some(0));
        }
        // The end of a pass: done if nothing stayed behind in it.
        self.sql().exec(
            "UPDATE drain SET cursor = '', dirty = 0, done = ? WHERE id = 1",
            vec![SqlStorageValue::Integer(i64::from(!dirty))],
        )?;
        Ok(dirty.then_some(2_000))
    }

    fn setup(state: &State) {
        let sql = state.storage().sql();
        let setup = [
            "CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value TEXT NOT NULL, expires_at INTEGER NOT NULL)",
            "CREATE INDEX IF NOT EXISTS kv_expiry ON kv (expires_at)",
            "CREATE TABLE IF NOT EXISTS revoked (seq INTEGER PRIMARY KEY AUTOINCREMENT, jti TEXT NOT NULL, until INTEGER NOT NULL)",
            // The expiry sweep on every revocation and the point lookup of a not yet caught-up
            // isolate, both O(log n) (without them the sweep read the whole table each time).
            "CREATE INDEX IF NOT EXISTS revoked_until ON revoked (until)",
            "CREATE INDEX IF NOT EXISTS revoked_jti ON revoked (jti)",
            // The drain of records left from a previous layout (one row at most).
            "CREATE TABLE IF NOT EXISTS drain (id INTEGER PRIMARY KEY, me TEXT NOT NULL, shards INTEGER NOT NULL, done INTEGER NOT NULL, dirty INTEGER NOT NULL, cursor TEXT NOT NULL)",
        ];
        for s in setup {
            if let Err(e) = sql.exec(s, None) {
                worker::console_error!("state schema: {e}");
            }
        }
    }

    async fn wake_at(&self, ms_from_now: i64) {
        // An i64 is an offset from now (worker::ScheduledTime), not a time.
        if let Err(e) = self.state.storage().set_alarm(ms_from_now.max(1)).await {
            worker::console_error!("state: could not set the drain alarm: {e}");
        }
    }

    async fn fetch(&self, mut req: Request) -> Result<Response> {
        let op: Op = match req.json().await {
            Ok(op) => op,
            Err(e) => return Response::error(format!("bad op: {e}"), 400),
        };
        // A replica other than feed-0 first takes what feed-0 has that it lacks.
        if let Op::Since { feed: Some(i), .. } | Op::Revoked { feed: Some(i), .. } = &op {
            if *i != 0 {
                if let Err(e) = self.follow().await {
                    return Response::error(format!("feed-{i} following feed-0: {e}"), 503);
                }
            }
        }
        // A write in the old shape (a Worker of an earlier version, which knows only
        // auth-state) goes on to every replica before it is answered.
        let forward = match &op {
            Op::Revoke {
                jti,
                until,
                feed: None,
            } => Some(vec![(jti.clone(), *until)]),
            Op::RevokeMany { items, feed: None } => Some(items.clone()),
            _ => None,
        };
        let (reply, wake) = match self.apply(op) {
            Ok(r) => r,
            Err(e) => return Response::error(format!("state: {e}"), 500),
        };
        if wake {
            self.wake_at(1).await;
        }
        if let Some(items) = forward {
            if let Err(e) = self.forward(&items).await {
                return Response::error(format!("forwarding to the feeds: {e}"), 503);
            }
        }
        Response::from_json(&reply)
    }
}

/// A replica's following of `feed-0`: when it last completed (ms), and the one in progress.
#[derive(Default)]
struct Follow {
    done_at: std::cell::Cell<f64>,
    running: std::cell::Cell<Option<(u64, f64)>>,
    runs: std::cell::Cell<u64>,
}

struct CursorRow {
    cursor: f64,
}

impl FromRow for CursorRow {
    fn from_row(r: &SqlRow) -> Result<Self> {
        Ok(CursorRow {
            cursor: r.num("cursor")?,
        })
    }
}

impl Core {
    /// The client this object calls the replicas with (the `STATE` namespace, the Worker's
    /// `STORE_TIMEOUT_MS`).
    fn feeds_client(&self) -> std::result::Result<(ObjectClient, u16), BackendError> {
        let var = |n: &str| {
            self.env
                .var(n)
                .ok()
                .map(|v| v.to_string())
                .filter(|v| !v.trim().is_empty())
        };
        let feeds =
            crate::config::revocation_feeds(var("REVOCATION_FEEDS")).map_err(BackendError)?;
        let timeout_ms = var("STORE_TIMEOUT_MS")
            .and_then(|v| v.trim().parse::<u32>().ok())
            .unwrap_or(10_000)
            .clamp(100, 60_000);
        let ns = self
            .env
            .durable_object("STATE")
            .map_err(|e| BackendError(format!("binding STATE: {e}")))?;
        Ok((
            ObjectClient {
                ns,
                timeout_ms,
                stats: None,
            },
            feeds,
        ))
    }

    /// Writes revocations of the old shape to every replica (marked, so none forwards again).
    async fn forward(&self, items: &[(String, i64)]) -> std::result::Result<(), BackendError> {
        let (client, feeds) = self.feeds_client()?;
        RevocationFeed { client, feeds }.revoke_many(items).await
    }

    /// Takes into this replica every live revocation `feed-0` has that it has not taken yet
    /// (from the cursor kept in `feed_follow`, page by page to the end), at most once a second;
    /// concurrent requests wait for the one in progress. `feed-0` receives every write of
    /// every configuration, so a replica that a smaller `REVOCATION_FEEDS` did not write to
    /// (new, or unused for a while) is whole again before it answers.
    async fn follow(&self) -> std::result::Result<(), BackendError> {
        let f = &self.follow;
        let (client, _) = self.feeds_client()?;
        loop {
            let now = js_sys::Date::now();
            if now - f.done_at.get() < (crate::state::REVOCATION_POLL_SECS * 1000) as f64 {
                return Ok(());
            }
            match f.running.get() {
                Some((_, since)) if now - since <= f64::from(client.timeout_ms) => {
                    worker::Delay::from(std::time::Duration::from_millis(5)).await;
                }
                _ => break,
            }
        }
        let started = js_sys::Date::now();
        let n = f.runs.get() + 1;
        f.runs.set(n);
        f.running.set(Some((n, started)));
        let result = self.follow_once(&client).await;
        if f.running.get().is_some_and(|(m, _)| m == n) {
            f.running.set(None);
        }
        if result.is_ok() {
            f.done_at.set(f.done_at.get().max(started));
        }
        result
    }

    async fn follow_once(&self, client: &ObjectClient) -> std::result::Result<(), BackendError> {
        let err = |e: worker::Error| BackendError(format!("feed storage: {e}"));
        let sql = self.sql();
        sql.exec(
            "CREATE TABLE IF NOT EXISTS feed_follow (id INTEGER PRIMARY KEY, cursor INTEGER NOT NULL)",
            None,
        )
        .map_err(err)?;
        let rows: Vec<CursorRow> = sql
            .exec("SELECT cursor FROM feed_follow WHERE id = 0", None)
            .map_err(err)?
            .rows()
            .map_err(err)?;
        let mut cursor = rows.first().map_or(0, |r| r.cursor as u64);
        let page = crate::state::REVOCATION_PAGE;
        loop {
            let (next, items) = client
                .revocations_since(&feed_name(0), Some(0), cursor, page)
                .await?;
            let now = now();
            for (jti, until) in &items {
                if *until > now {
                    self.revoke(jti, *until).map_err(err)?;
                }
            }
            cursor = cursor.max(next);
            sql.exec(
                "INSERT INTO feed_follow (id, cursor) VALUES (0, ?) \
                 ON CONFLICT(id) DO UPDATE SET cursor = MAX(cursor, excluded.cursor)",
                vec![SqlStorageValue::Integer(cursor as i64)],
            )
            .map_err(err)?;
            if items.len() < page as usize {
                break;
            }
        }
        self.sweep_revoked(now()).map_err(err)
    }

    async fn alarm(&self) -> Result<Response> {
        match self.drain().await {
            Ok(Some(ms)) => self.wake_at(ms).await,
            Ok(None) => {}
            Err(e) => {
                worker::console_error!("drain: {e}");
                self.wake_at(10_000).await;
            }
        }
        Response::ok("")
    }
}

impl worker::DurableObject for AuthState {
    fn new(state: State, env: Env) -> Self {
        Core::setup(&state);
        AuthState {
            core: Core {
                state,
                env,
                follow: Follow::default(),
            },
        }
    }

    async fn fetch(&self, req: Request) -> Result<Response> {
        self.core.fetch(req).await
    }

    async fn alarm(&self) -> Result<Response> {
        self.core.alarm().await
    }
}

impl worker::DurableObject for StateShard {
    fn new(state: State, env: Env) -> Self {
        Core::setup(&state);
        StateShard {
            core: Core {
                state,
                env,
                follow: Follow::default(),
            },
        }
    }

    async fn fetch(&self, req: Request) -> Result<Response> {
        self.core.fetch(req).await
    }

    async fn alarm(&self) -> Result<Response> {
        self.core.alarm().await
    }
}

/// Sends `op` as JSON to the object `name` of `ns` and reads its JSON answer. Any failure or an
/// answer other than 200 is a [`BackendError`] that starts with `what`.
pub(super) async fn post_json<O: Serialize, R: serde::de::DeserializeOwned>(
    ns: &ObjectNamespace,
    name: &str,
    what: &str,
    op: &O,
) -> std::result::Result<R, BackendError> {
    let err = |e: worker::Error| BackendError(format!("{what}: {e}"));
    let stub = ns
        .id_from_name(name)
        .map_err(err)?
        .get_stub()
        .map_err(err)?;
    let body = serde_json::to_string(op).map_err(|e| BackendError(e.to_string()))?;
    let headers = Headers::new();
    headers
        .set("content-type", "application/json")
        .map_err(err)?;
    let mut init = RequestInit::new();
    init.with_method(Method::Post)
        .with_headers(headers)
        .with_body(Some(body.into()));
    let req = Request::new_with_init("https://object.internal/op", &init).map_err(err)?;
    let mut resp = stub.fetch_with_request(req).await.map_err(err)?;
    if resp.status_code() != 200 {
        let text = resp.text().await.unwrap_or_default();
        return Err(BackendError(format!(
            "{what} answered {}: {text}",
            resp.status_code()
        )));
    }
    resp.json().await.map_err(err)
}

/// A client of one kind of Durable Object: calls the object named `name` with an [`Op`]. A call
/// that fails, answers other than 200, or takes longer than `timeout_ms` (`STORE_TIMEOUT_MS`) is
/// a [`BackendError`] (503 for the client). A timed-out `cas` may still have been applied by the
/// object; every caller of `cas` is written so that a retry after such an answer is safe (a
/// consumed code answers `invalid_grant`, a rotated refresh token counts as reuse).
pub struct ObjectClient {
    pub ns: ObjectNamespace,
    pub timeout_ms: u32,
    /// `make scale`'s counts (src/worker/stats.rs); None in production.
    pub stats: Option<std::rc::Rc<super::stats::Stats>>,
}

impl ObjectClient {
    async fn call(&self, name: &str, op: &Op) -> std::result::Result<Reply, BackendError> {
        super::outbound::with_timeout(self.timeout_ms, self.call_once(name, op))
            .await
            .unwrap_or_else(|| {
                Err(BackendError(format!(
                    "durable object: no answer within {} ms",
                    self.timeout_ms
                )))
            })
    }

    async fn call_once(&self, name: &str, op: &Op) -> std::result::Result<Reply, BackendError> {
        super::stats::object(&self.stats, name);
        post_json(&self.ns, name, "durable object", op).await
    }

    /// The keyed operations ([`StateStore::get`], [`StateStore::cas`], [`StateStore::throttle`])
    /// on the object `name`.
    async fn get(
        &self,
        name: &str,
        key: &str,
        role: Option<Role>,
    ) -> std::result::Result<Reply, BackendError> {
        self.call(
            name,
            &Op::Get {
                key: key.into(),
                role,
            },
        )
        .await
    }

    async fn cas(
        &self,
        name: &str,
        key: &str,
        expected: Option<&str>,
        new: Option<&str>,
        expires_at: i64,
        role: Option<Role>,
    ) -> std::result::Result<Cas, BackendError> {
        let r = self
            .call(
                name,
                &Op::Cas {
                    key: key.into(),
                    expected: expected.map(str::to_string),
                    new: new.map(str::to_string),
                    expires_at,
                    role,
                },
            )
            .await?;
        Ok(if r.swapped {
            Cas::Swapped
        } else {
            Cas::Conflict(r.value)
        })
    }

    async fn throttle(
        &self,
        name: &str,
        op: &crate::state::throttle::Op,
    ) -> std::result::Result<crate::state::throttle::Answer, BackendError> {
        self.call(
            name,
            &Op::Throttle {
                throttle: op.clone(),
                role: Some(Role::Current),
            },
        )
        .await?
        .throttle
        .ok_or_else(|| BackendError("durable object: no throttle answer".into()))
    }

    /// The revocation ops on the object `name`; `feed` marks a call to a replica.
    pub async fn revoke_many(
        &self,
        name: &str,
        feed: Option<u16>,
        items: &[(String, i64)],
    ) -> std::result::Result<(), BackendError> {
        let op = match items {
            [(jti, until)] => Op::Revoke {
                jti: jti.clone(),
                until: *until,
                feed,
            },
            _ => Op::RevokeMany {
                items: items.to_vec(),
                feed,
            },
        };
        self.call(name, &op).await.map(|_| ())
    }

    pub async fn revocations_since(
        &self,
        name: &str,
        feed: Option<u16>,
        since: u64,
        limit: u32,
    ) -> std::result::Result<(u64, Vec<(String, i64)>), BackendError> {
        let r = self.call(name, &Op::Since { since, limit, feed }).await?;
        Ok((r.cursor, r.items))
    }

    pub async fn revoked_until(
        &self,
        name: &str,
        feed: Option<u16>,
        jti: &str,
    ) -> std::result::Result<Option<i64>, BackendError> {
        Ok(self
            .call(
                name,
                &Op::Revoked {
                    jti: jti.into(),
                    feed,
                },
            )
            .await?
            .until)
    }
}

/// The Worker's [`StateStore`]: the keyed records ([`KeyedState`]) and the revocation feed
/// ([`RevocationFeed`]), each over its own objects.
pub struct DurableState {
    pub keyed: KeyedState,
    pub feed: RevocationFeed,
}

/// Where codes, refresh families, sessions, launches, grants, `jti` records and throttle
/// counters live: the shard of their key ([`crate::config::StateLayout`]), or the one object
/// [`OBJECT_NAME`] with `STATE_SHARDS = "single"`. Every op is one call to one object; a record
/// still in the previous layout is moved first ([`KeyedState::adopt`]).
pub struct KeyedState {
    /// The `STATE` namespace (`auth-state`).
    pub client: ObjectClient,
    /// The `SHARDS` namespace (`shard-{i}`); None with the single layout.
    pub shards: Option<ObjectClient>,
    pub layout: crate::config::StateLayout,
    /// `STATE_PREVIOUS_LOOKUPS` ([`PREVIOUS_LOOKUPS_PER_SECOND`]).
    pub previous_budget: u32,
}

thread_local! {
    /// Objects of the previous layout that said they hold nothing more to move: this isolate
    /// no longer consults them.
    static PREVIOUS_EMPTY: std::cell::RefCell<std::collections::HashSet<String>> =
        std::cell::RefCell::new(std::collections::HashSet::new());
    /// The previous shards this isolate has called to start their drains: (random start,
    /// how many so far) ([`KeyedState::kick_previous_shard`]).
    static PREVIOUS_KICKED: std::cell::Cell<Option<(u32, u32)>> = const { std::cell::Cell::new(None) };
    /// This isolate's look-ups in the previous layout in the current second: (second, count).
    static PREVIOUS_LOOKUPS: std::cell::Cell<(i64, u32)> = const { std::cell::Cell::new((0, 0)) };
}

/// Default of `STATE_PREVIOUS_LOOKUPS`: most look-ups one isolate makes in the previous layout
/// per second. Every miss in a shard is a look-up there until the previous layout is empty, and
/// forged refresh tokens, codes or session cookies all miss: without a budget an
/// unauthenticated caller would drive the old object at their own rate during a migration.
/// Past it the request is a 503 with `Retry-After` (a real record from before the upgrade is
/// found on the retry, or has been moved by the drain meanwhile). docs/scale.md "Upgrading".
pub const PREVIOUS_LOOKUPS_PER_SECOND: u32 = 200;

/// Takes one look-up from this isolate's budget (`per_second`) for the second `now`.
fn previous_lookup_allowed(now: i64, per_second: u32) -> bool {
    PREVIOUS_LOOKUPS.with(|c| {
        let (second, used) = c.get();
        let used = if second == now { used } else { 0 };
        if used >= per_second {
            c.set((now, used));
            return false;
        }
        c.set((now, used + 1));
        true
    })
}

/// Keys created with a fresh 128- or 256-bit random part (`state::create` refuses a
/// collision): no record of the previous layout can hold them, so creating one needs no look
/// there. (`grants/{user}`, `jti/..` and throttle keys are named after their owner: they do.)
fn fresh_random_key(key: &str) -> bool {
    ["code/", "session/", "rt/", "launch/", "par/"]
        .iter()
        .any(|p| key.starts_with(p))
}

impl KeyedState {
    /// The layout from `STATE_SHARDS` / `STATE_SHARDS_PREVIOUS` (already checked at config
    /// load) and the namespaces.
    pub fn from_env(
        env: &Env,
        timeout_ms: u32,
        stats: Option<std::rc::Rc<super::stats::Stats>>,
    ) -> Result<KeyedState> {
        let var = |n: &str| env.var(n).ok().map(|v| v.to_string());
        let layout = crate::config::state_layout(var("STATE_SHARDS"), var("STATE_SHARDS_PREVIOUS"))
            .map_err(worker::Error::RustError)?;
        let shards = match layout {
            crate::config::StateLayout::Single => None,
            crate::config::StateLayout::Shards { .. } => Some(ObjectClient {
                ns: env.durable_object("SHARDS")?,
                timeout_ms,
                stats: stats.clone(),
            }),
        };
        Ok(KeyedState {
            client: ObjectClient {
                ns: env.durable_object("STATE")?,
                timeout_ms,
                stats,
            },
            shards,
            layout,
            previous_budget: match var("STATE_PREVIOUS_LOOKUPS").filter(|v| !v.trim().is_empty()) {
                None => PREVIOUS_LOOKUPS_PER_SECOND,
                Some(v) => v.trim().parse::<u32>().ok().filter(|n| *n >= 1).ok_or_else(|| {
                    worker::Error::RustError(format!(
                        "configuration: STATE_PREVIOUS_LOOKUPS must be a whole number of at least 1, got {v:?}"
                    ))
                })?,
            },
        })
    }

    /// The object `key` lives in.
    fn object_for(&self, key: &str) -> (&ObjectClient, String) {
        match (self.layout, &self.shards) {
            (crate::config::StateLayout::Shards { count, .. }, Some(c)) => (
                c,
                crate::config::shard_name(crate::config::shard_index(key, count)),
            ),
            _ => (&self.client, OBJECT_NAME.to_string()),
        }
    }

    /// Where `key` lived in the previous layout, with the role to call it with; None when
    /// there is no previous layout, it is the same object, or it said it holds nothing more.
    fn previous_for(&self, key: &str) -> Option<(&ObjectClient, String, Role)> {
        let crate::config::StateLayout::Shards { count, previous } = self.layout else {
            return None;
        };
        let (client, name) = match previous {
            crate::config::Previous::Single => (&self.client, OBJECT_NAME.to_string()),
            crate::config::Previous::Shards(n) => (
                self.shards.as_ref()?,
                crate::config::shard_name(crate::config::shard_index(key, n)),
            ),
        };
        if name == self.object_for(key).1 || PREVIOUS_EMPTY.with(|e| e.borrow().contains(&name)) {
            return None;
        }
        Some((
            client,
            name.clone(),
            Role::Previous {
                me: name,
                shards: count,
            },
        ))
    }

    /// With `STATE_SHARDS_PREVIOUS = N`, an object of the previous layout drains only once a
    /// Worker of the new layout has called it as such, and a previous shard that no look-up
    /// happens to reach would keep its records (found on touch, but never moved). So each
    /// keyed look-up (whatever its key) also calls the next previous shard this isolate has not
    /// called yet (from a random start; a look-up of an absent key, which starts its drain),
    /// until it has called all N: one extra call on each of an isolate's first N look-ups, no
    /// burst. A shard that answers it holds nothing more is not consulted again. A failure is
    /// only logged: its records stay reachable by move on touch, and other isolates call it.
    async fn kick_previous_shard(&self) {
        let crate::config::StateLayout::Shards {
            count,
            previous: crate::config::Previous::Shards(n),
        } = self.layout
        else {
            return;
        };
        let Some(client) = self.shards.as_ref() else {
            return;
        };
        let next = PREVIOUS_KICKED.with(|k| {
            let (start, done) = k.get().unwrap_or_else(|| {
                let mut b = [0u8; 4];
                let _ = getrandom::getrandom(&mut b);
                (u32::from_le_bytes(b) % n.max(1), 0)
            });
            if done >= n {
                k.set(Some((start, done)));
                return None;
            }
            k.set(Some((start, done + 1)));
            Some((start + done) % n)
        });
        let Some(i) = next else {
            return;
        };
        let name = crate::config::shard_name(i);
        if PREVIOUS_EMPTY.with(|e| e.borrow().contains(&name)) {
            return;
        }
        let role = Role::Previous {
            me: name.clone(),
            shards: count,
        };
        match client.get(&name, DRAIN_KICK_KEY, Some(role)).await {
            Ok(r) if r.more == Some(false) => {
                PREVIOUS_EMPTY.with(|e| e.borrow_mut().insert(name));
            }
            Ok(_) => {}
            Err(e) => worker::console_error!("previous layout: could not reach {name}: {e}"),
        }
    }

    /// Move on touch: if `key` is still in its previous location, copy it into its shard
    /// (with its expiry, only if absent there) and delete it there if unchanged. A record
    /// changed there meanwhile (a Worker from before shards, during a rolling deploy) has its
    /// copy undone, and the move starts over. Two movers at once are safe: the second one's
    /// copy conflicts and its delete either finds the record gone or deletes the same value.
    async fn adopt(&self, key: &str) -> std::result::Result<(), BackendError> {
        self.kick_previous_shard().await;
        let Some((prev, pname, role)) = self.previous_for(key) else {
            return Ok(());
        };
        let (target, tname) = self.object_for(key);
        if !previous_lookup_allowed(now(), self.previous_budget) {
            return Err(BackendError(format!(
                "previous layout: this isolate's {} look-ups a second are spent",
                self.previous_budget
            )));
        }
        for _ in 0..4 {
            let r = prev.get(&pname, key, Some(role.clone())).await?;
            if r.more == Some(false) {
                PREVIOUS_EMPTY.with(|e| e.borrow_mut().insert(pname.clone()));
            }
            let Some(value) = r.value else {
                return Ok(());
            };
            let Some(exp) = r.expires_at else {
                return Err(BackendError(
                    "durable object: the previous layout gave no expiry".into(),
                ));
            };
            let copied = target
                .cas(&tname, key, None, Some(&value), exp, Some(Role::Current))
                .await?
                == Cas::Swapped;
            match prev
                .cas(&pname, key, Some(&value), None, 0, Some(role.clone()))
                .await?
            {
                // Deleted by us, or already by another mover: the shard's copy stands.
                Cas::Swapped | Cas::Conflict(None) => return Ok(()),
                Cas::Conflict(Some(_)) => {
                    if copied {
                        target
                            .cas(&tname, key, Some(&value), None, 0, Some(Role::Current))
                            .await?;
                    }
                }
            }
        }
        Err(BackendError(format!(
            "durable object: could not move {key} from the previous layout (contention)"
        )))
    }
}

/// The object of replica `i`.
fn feed_name(i: u16) -> String {
    format!("feed-{i}")
}

/// Where access-token revocations are written and read: `feeds` replicas (`feed-0` ..), each
/// written by every revocation and read by the isolates that picked it; and, for what earlier
/// versions wrote, the old single feed in [`OBJECT_NAME`] (docs/scale.md "Revocation feeds").
pub struct RevocationFeed {
    pub client: ObjectClient,
    /// `REVOCATION_FEEDS`.
    pub feeds: u16,
}

impl RevocationFeed {
    /// The object of `feed`, and the marker its ops carry.
    fn object(feed: Feed) -> (String, Option<u16>) {
        match feed {
            Feed::Replica(i) => (feed_name(i), Some(i)),
            Feed::Old => (OBJECT_NAME.to_string(), None),
        }
    }

    /// Writes to every replica at once; succeeds only when every one has answered that it
    /// holds them (a retry adds nothing where they are already held).
    pub async fn revoke_many(
        &self,
        items: &[(String, i64)],
    ) -> std::result::Result<(), BackendError> {
        let writes = (0..self.feeds.max(1)).map(|i| async move {
            self.client
                .revoke_many(&feed_name(i), Some(i), items)
                .await
                .map_err(|e| BackendError(format!("feed-{i}: {e}")))
        });
        let failed: Vec<BackendError> = futures::future::join_all(writes)
            .await
            .into_iter()
            .filter_map(std::result::Result::err)
            .collect();
        match failed.into_iter().next() {
            None => Ok(()),
            Some(e) => Err(BackendError(format!("revocation not in every feed: {e}"))),
        }
    }
}

#[async_trait(?Send)]
impl StateStore for DurableState {
    async fn get(&self, key: &str) -> std::result::Result<Option<String>, BackendError> {
        let k = &self.keyed;
        let (c, name) = k.object_for(key);
        let found = c.get(&name, key, Some(Role::Current)).await?.value;
        k.kick_previous_shard().await;
        if found.is_some() || k.previous_for(key).is_none() {
            return Ok(found);
        }
        k.adopt(key).await?;
        Ok(c.get(&name, key, Some(Role::Current)).await?.value)
    }

    async fn cas(
        &self,
        key: &str,
        expected: Option<&str>,
        new: Option<&str>,
        expires_at: i64,
    ) -> std::result::Result<Cas, BackendError> {
        let k = &self.keyed;
        let (c, name) = k.object_for(key);
        // A creation must not shadow a record still in the previous layout.
        if expected.is_none() && !fresh_random_key(key) {
            k.adopt(key).await?;
        }
        let r = c
            .cas(&name, key, expected, new, expires_at, Some(Role::Current))
            .await?;
        if r != Cas::Conflict(None) || expected.is_none() || k.previous_for(key).is_none() {
            return Ok(r);
        }
        k.adopt(key).await?;
        c.cas(&name, key, expected, new, expires_at, Some(Role::Current))
            .await
    }
    async fn revoke_jti(&self, jti: &str, until: i64) -> std::result::Result<(), BackendError> {
        self.feed.revoke_many(&[(jti.to_string(), until)]).await
    }

    async fn revoke_many(&self, items: &[(String, i64)]) -> std::result::Result<(), BackendError> {
        self.feed.revoke_many(items).await
    }

    async fn revocations_since(
        &self,
        feed: Feed,
        since: u64,
        limit: u32,
    ) -> std::result::Result<(u64, Vec<(String, i64)>), BackendError> {
        let (name, marker) = RevocationFeed::object(feed);
        self.feed
            .client
            .revocations_since(&name, marker, since, limit)
            .await
    }

    async fn revoked_until(
        &self,
        feed: Feed,
        jti: &str,
    ) -> std::result::Result<Option<i64>, BackendError> {
        let (name, marker) = RevocationFeed::object(feed);
        self.feed.client.revoked_until(&name, marker, jti).await
    }

    /// A throttle op over keys of one object (the core sends one key per op: throttle
    /// module docs); keys in different objects are refused, never half applied.
    async fn throttle(
        &self,
        op: &crate::state::throttle::Op,
    ) -> std::result::Result<crate::state::throttle::Answer, BackendError> {
        let k = &self.keyed;
        let Some(first) = op.keys.first() else {
            return Err(BackendError("throttle: an op without keys".into()));
        };
        let (c, name) = k.object_for(&first.key);
        if op.keys.iter().any(|x| k.object_for(&x.key).1 != name) {
            return Err(BackendError("throttle: one op over several objects".into()));
        }
        for x in &op.keys {
            k.adopt(&x.key).await?;
        }
        c.throttle(&name, op).await
    }
}
