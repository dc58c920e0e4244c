//! The Durable Object that holds state which must change atomically (codes, refresh families,
//! sessions, revocations), and the [`StateStore`] client the Worker talks to it through.
//!
//! SQLite-backed: `kv(key, value, expires_at)` and `revoked(seq, jti, until)`. Each operation
//! reads and writes with synchronous SQL calls and awaits nothing in between, so a Durable
//! Object's single-threaded execution makes it atomic: of N concurrent `cas` calls with the same
//! expected value, exactly one swaps. One object (named `auth-state`) serves the deployment.

use crate::platform::{BackendError, Cas, StateStore};
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
    },
    Cas {
        key: String,
        expected: Option<String>,
        new: Option<String>,
        expires_at: i64,
    },
    Revoke {
        jti: String,
        until: i64,
    },
    RevokeMany {
        items: Vec<(String, i64)>,
    },
    Since {
        since: u64,
        #[serde(default = "default_page")]
        limit: u32,
    },
    Revoked {
        jti: String,
    },
    Throttle {
        throttle: crate::state::throttle::Op,
    },
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
}

#[derive(Deserialize)]
struct Row {
    value: String,
}

#[derive(Deserialize)]
struct RevokedRow {
    seq: f64,
    jti: String,
    until: f64,
}

#[derive(Deserialize)]
struct UntilRow {
    until: Option<f64>,
}

#[durable_object]
pub struct AuthState {
    state: State,
}

fn now() -> i64 {
    (js_sys::Date::now() / 1000.0) as i64
}

impl AuthState {
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
            .to_array()?;
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

    fn revoke(&self, jti: &str, until: i64) -> Result<()> {
        self.sql().exec(
            "INSERT INTO revoked (jti, until) VALUES (?, ?)",
            vec![jti.to_string().into(), SqlStorageValue::Integer(until)],
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

    fn apply(&self, op: Op) -> Result<Reply> {
        let now = now();
        let sql = self.sql();
        let mut reply = Reply {
            value: None,
            swapped: false,
            cursor: 0,
            items: Vec::new(),
            until: None,
            throttle: None,
        };
        match op {
            Op::Get { key } => reply.value = self.current(&key, now)?,
            Op::Cas {
                key,
                expected,
                new,
                expires_at,
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
            Op::Revoke { jti, until } => {
                // O(log n): the insert and the expiry sweep both go through an index.
                self.revoke(&jti, until)?;
                self.sweep_revoked(now)?;
            }
            Op::RevokeMany { items } => {
                for (jti, until) in items {
                    self.revoke(&jti, until)?;
                }
                self.sweep_revoked(now)?;
            }
            Op::Since { since, limit } => {
                // One page, in feed order; the cursor is the last row read.
                let rows: Vec<RevokedRow> = sql
                    .exec(
                        "SELECT seq, jti, until FROM revoked WHERE seq > ? ORDER BY seq LIMIT ?",
                        vec![
                            SqlStorageValue::Integer(since as i64),
                            SqlStorageValue::Integer(i64::from(limit.clamp(1, 10_000))),
                        ],
                    )?
                    .to_array()?;
                reply.cursor = rows.last().map_or(since, |r| r.seq as u64).max(since);
                // Every row read, expired ones too: the caller tells a full page (more to read)
                // by its length, and drops the expired itself. Filtered here, an expired row
                // not yet swept made a full page look like the last one, and the isolate
                // answered "not revoked" for revocations on the pages it had not read.
                reply.items = rows.into_iter().map(|r| (r.jti, r.until as i64)).collect();
            }
            Op::Revoked { jti } => {
                let rows: Vec<UntilRow> = sql
                    .exec(
                        "SELECT MAX(until) AS until FROM revoked WHERE jti = ?",
                        vec![jti.into()],
                    )?
                    .to_array()?;
                reply.until = rows
                    .into_iter()
                    .next()
                    .and_then(|r| r.until)
                    .map(|u| u as i64);
            }
            Op::Throttle { throttle: op } => {
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
        Ok(reply)
    }
}

impl worker::DurableObject for AuthState {
    fn new(state: State, _env: Env) -> Self {
        let sql = state.storage().sql();
        let setup = [
            "CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value TEXT NOT NULL, expires_at INTEGER NOT NULL)",
            "CREATE INDEX IF NOT EXISTS kv_expiry ON kv (expires_at)",
            "CREATE TABLE IF NOT EXISTS revoked (seq INTEGER PRIMARY KEY AUTOINCREMENT, jti TEXT NOT NULL, until INTEGER NOT NULL)",
            // The expiry sweep on every revocation and the point lookup of a not yet caught-up
            // isolate, both O(log n) (without them the sweep read the whole table each time).
            "CREATE INDEX IF NOT EXISTS revoked_until ON revoked (until)",
            "CREATE INDEX IF NOT EXISTS revoked_jti ON revoked (jti)",
        ];
        for s in setup {
            if let Err(e) = sql.exec(s, None) {
                worker::console_error!("AuthState schema: {e}");
            }
        }
        AuthState { state }
    }

    async fn fetch(&self, mut req: Request) -> Result<Response> {
        let op: Op = match req.json().await {
            Ok(op) => op,
            Err(e) => return Response::error(format!("bad op: {e}"), 400),
        };
        match self.apply(op) {
            Ok(reply) => Response::from_json(&reply),
            Err(e) => Response::error(format!("state: {e}"), 500),
        }
    }
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
        let err = |e: worker::Error| BackendError(format!("durable object: {e}"));
        super::stats::object(&self.stats, name);
        let stub = self
            .ns
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
        let req = Request::new_with_init("https://auth-state.internal/op", &init).map_err(err)?;
        let mut resp = stub.fetch_with_request(req).await.map_err(err)?;
        if resp.status_code() != 200 {
            let text = resp.text().await.unwrap_or_default();
            return Err(BackendError(format!(
                "durable object answered {}: {text}",
                resp.status_code()
            )));
        }
        resp.json().await.map_err(err)
    }

    /// The keyed operations ([`StateStore::get`], [`StateStore::cas`], [`StateStore::throttle`])
    /// on the object `name`.
    pub async fn get(
        &self,
        name: &str,
        key: &str,
    ) -> std::result::Result<Option<String>, BackendError> {
        Ok(self.call(name, &Op::Get { key: key.into() }).await?.value)
    }

    pub async fn cas(
        &self,
        name: &str,
        key: &str,
        expected: Option<&str>,
        new: Option<&str>,
        expires_at: i64,
    ) -> std::result::Result<Cas, BackendError> {
        let r = self
            .call(
                name,
                &Op::Cas {
                    key: key.into(),
                    expected: expected.map(str::to_string),
                    new: new.map(str::to_string),
                    expires_at,
                },
            )
            .await?;
        Ok(if r.swapped {
            Cas::Swapped
        } else {
            Cas::Conflict(r.value)
        })
    }

    pub async fn throttle(
        &self,
        name: &str,
        op: &crate::state::throttle::Op,
    ) -> std::result::Result<crate::state::throttle::Answer, BackendError> {
        self.call(
            name,
            &Op::Throttle {
                throttle: op.clone(),
            },
        )
        .await?
        .throttle
        .ok_or_else(|| BackendError("durable object: no throttle answer".into()))
    }

    /// The revocation feed of the object `name`.
    pub async fn revoke_jti(
        &self,
        name: &str,
        jti: &str,
        until: i64,
    ) -> std::result::Result<(), BackendError> {
        self.call(
            name,
            &Op::Revoke {
                jti: jti.into(),
                until,
            },
        )
        .await
        .map(|_| ())
    }

    pub async fn revocations_since(
        &self,
        name: &str,
        since: u64,
        limit: u32,
    ) -> std::result::Result<(u64, Vec<(String, i64)>), BackendError> {
        let r = self.call(name, &Op::Since { since, limit }).await?;
        Ok((r.cursor, r.items))
    }

    pub async fn revoked_until(
        &self,
        name: &str,
        jti: &str,
    ) -> std::result::Result<Option<i64>, BackendError> {
        Ok(self
            .call(name, &Op::Revoked { jti: jti.into() })
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
/// counters live: today the one object [`OBJECT_NAME`].
pub struct KeyedState {
    pub client: ObjectClient,
}

impl KeyedState {
    fn object_for(&self, _key: &str) -> &'static str {
        OBJECT_NAME
    }
}

/// Where access-token revocations are written and read: today the one object [`OBJECT_NAME`].
pub struct RevocationFeed {
    pub client: ObjectClient,
}

#[async_trait(?Send)]
impl StateStore for DurableState {
    async fn get(&self, key: &str) -> std::result::Result<Option<String>, BackendError> {
        let k = &self.keyed;
        k.client.get(k.object_for(key), key).await
    }

    async fn cas(
        &self,
        key: &str,
        expected: Option<&str>,
        new: Option<&str>,
        expires_at: i64,
    ) -> std::result::Result<Cas, BackendError> {
        let k = &self.keyed;
        k.client
            .cas(k.object_for(key), key, expected, new, expires_at)
            .await
    }

    async fn revoke_jti(&self, jti: &str, until: i64) -> std::result::Result<(), BackendError> {
        self.feed.client.revoke_jti(OBJECT_NAME, jti, until).await
    }

    async fn revocations_since(
        &self,
        since: u64,
        limit: u32,
    ) -> std::result::Result<(u64, Vec<(String, i64)>), BackendError> {
        self.feed
            .client
            .revocations_since(OBJECT_NAME, since, limit)
            .await
    }

    async fn revoked_until(&self, jti: &str) -> std::result::Result<Option<i64>, BackendError> {
        self.feed.client.revoked_until(OBJECT_NAME, jti).await
    }

    async fn throttle(
        &self,
        op: &crate::state::throttle::Op,
    ) -> std::result::Result<crate::state::throttle::Answer, BackendError> {
        let k = &self.keyed;
        let name = op
            .keys
            .first()
            .map_or(OBJECT_NAME, |key| k.object_for(&key.key));
        k.client.throttle(name, op).await
    }
}
