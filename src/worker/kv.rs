//! [`KvStore`] over a Workers KV namespace. Every failure (KV down, its 429 for too many writes
//! to one key, a timeout after `STORE_TIMEOUT_MS`) is a [`BackendError`], so the client sees
//! 503 with `Retry-After`, never a 500.

use super::outbound::with_timeout;
use crate::platform::{BackendError, KvStore};
use async_trait::async_trait;
use std::future::Future;

pub struct WorkerKv {
    pub kv: worker::kv::KvStore,
    pub timeout_ms: u32,
    /// `make scale`'s counts (src/worker/stats.rs); None in production.
    pub stats: Option<std::rc::Rc<super::stats::Stats>>,
}

fn err(what: &str, e: impl std::fmt::Display) -> BackendError {
    BackendError(format!("kv {what}: {e}"))
}

impl WorkerKv {
    async fn timed<T>(
        &self,
        what: &str,
        fut: impl Future<Output = Result<T, BackendError>>,
    ) -> Result<T, BackendError> {
        with_timeout(self.timeout_ms, fut).await.unwrap_or_else(|| {
            Err(err(
                what,
                format!("no answer within {} ms", self.timeout_ms),
            ))
        })
    }
}

#[async_trait(?Send)]
impl KvStore for WorkerKv {
    async fn get(&self, key: &str) -> Result<Option<String>, BackendError> {
        super::stats::kv(&self.stats, super::stats::KvOp::Get);
        self.timed("get", async {
            self.kv.get(key).text().await.map_err(|e| err("get", e))
        })
        .await
    }

    async fn put(&self, key: &str, value: &str) -> Result<(), BackendError> {
        super::stats::kv(&self.stats, super::stats::KvOp::Put);
        self.timed("put", async {
            self.kv
                .put(key, value)
                .map_err(|e| err("put", e))?
                .execute()
                .await
                .map_err(|e| err("put", e))
        })
        .await
    }

    async fn delete(&self, key: &str) -> Result<(), BackendError> {
        super::stats::kv(&self.stats, super::stats::KvOp::Delete);
        self.timed("delete", async {
            self.kv.delete(key).await.map_err(|e| err("delete", e))
        })
        .await
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>, BackendError> {
        self.timed("list", self.list_all(prefix)).await
    }
}

impl WorkerKv {
    async fn list_all(&self, prefix: &str) -> Result<Vec<String>, BackendError> {
        let mut out = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut q = self.kv.list().prefix(prefix.to_string());
            if let Some(c) = cursor.take() {
                q = q.cursor(c);
            }
            super::stats::kv(&self.stats, super::stats::KvOp::List);
            let page = q.execute().await.map_err(|e| err("list", e))?;
            out.extend(page.keys.into_iter().map(|k| k.name));
            match page.cursor {
                Some(c) if !page.list_complete && !c.is_empty() => cursor = Some(c),
                _ => break,
            }
        }
        Ok(out)
    }
}
