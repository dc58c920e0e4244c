//! [`KvStore`] over a Workers KV namespace.

use crate::platform::{BackendError, KvStore};
use async_trait::async_trait;

pub struct WorkerKv(pub worker::kv::KvStore);

fn err(what: &str, e: impl std::fmt::Display) -> BackendError {
    BackendError(format!("kv {what}: {e}"))
}

#[async_trait(?Send)]
impl KvStore for WorkerKv {
    async fn get(&self, key: &str) -> Result<Option<String>, BackendError> {
        self.0.get(key).text().await.map_err(|e| err("get", e))
    }

    async fn put(&self, key: &str, value: &str) -> Result<(), BackendError> {
        self.0
            .put(key, value)
            .map_err(|e| err("put", e))?
            .execute()
            .await
            .map_err(|e| err("put", e))
    }

    async fn delete(&self, key: &str) -> Result<(), BackendError> {
        self.0.delete(key).await.map_err(|e| err("delete", e))
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>, BackendError> {
        let mut out = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut q = self.0.list().prefix(prefix.to_string());
            if let Some(c) = cursor.take() {
                q = q.cursor(c);
            }
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
