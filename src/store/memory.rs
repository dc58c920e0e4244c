//! An in-memory [`KvStore`] for tests and tools, with switchable failure for fault tests.

use crate::platform::{BackendError, KvStore};
use async_trait::async_trait;
use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;

#[derive(Debug, Default)]
pub struct MemoryKv {
    data: RefCell<BTreeMap<String, String>>,
    /// When set, every call fails as if KV were down.
    pub failing: Cell<bool>,
    /// Number of calls made, to check caching.
    pub calls: Cell<u64>,
}

impl MemoryKv {
    pub fn new() -> Self {
        Self::default()
    }

    fn enter(&self) -> Result<(), BackendError> {
        self.calls.set(self.calls.get() + 1);
        if self.failing.get() {
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
        Ok(self
            .data
            .borrow()
            .range(prefix.to_string()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(k, _)| k.clone())
            .collect())
    }
}
