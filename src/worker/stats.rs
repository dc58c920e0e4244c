//! Per-request counts of storage work, for `make scale` (tests/scale/): KV operations by kind
//! and the Durable Object each call went to. Off unless the Worker runs with the variable
//! `SCALE_STATS = "1"`; then every response carries them in `x-edge-stats`, e.g.
//! `kv_get=1;kv_put=0;kv_delete=0;kv_list=0;do=shard-3,feed-0`. Never set it in production:
//! the header tells a caller which objects its request reached.

use std::cell::{Cell, RefCell};

/// The response header that carries the counts.
pub const HEADER: &str = "x-edge-stats";

#[derive(Debug, Default)]
pub struct Stats {
    kv_get: Cell<u32>,
    kv_put: Cell<u32>,
    kv_delete: Cell<u32>,
    kv_list: Cell<u32>,
    objects: RefCell<Vec<String>>,
}

/// One KV operation.
#[derive(Debug, Clone, Copy)]
pub enum KvOp {
    Get,
    Put,
    Delete,
    /// One page of a listing (a page is one KV operation).
    List,
}

impl Stats {
    pub fn kv(&self, op: KvOp) {
        let c = match op {
            KvOp::Get => &self.kv_get,
            KvOp::Put => &self.kv_put,
            KvOp::Delete => &self.kv_delete,
            KvOp::List => &self.kv_list,
        };
        c.set(c.get() + 1);
    }

    /// A call to the Durable Object named `name`.
    pub fn object(&self, name: &str) {
        self.objects.borrow_mut().push(name.to_string());
    }

    /// The header value (see the module doc).
    pub fn header(&self) -> String {
        format!(
            "kv_get={};kv_put={};kv_delete={};kv_list={};do={}",
            self.kv_get.get(),
            self.kv_put.get(),
            self.kv_delete.get(),
            self.kv_list.get(),
            self.objects.borrow().join(",")
        )
    }
}

/// Records into `stats` when there is one.
pub fn kv(stats: &Option<std::rc::Rc<Stats>>, op: KvOp) {
    if let Some(s) = stats {
        s.kv(op);
    }
}

/// Records a Durable Object call into `stats` when there is one.
pub fn object(stats: &Option<std::rc::Rc<Stats>>, name: &str) {
    if let Some(s) = stats {
        s.object(name);
    }
}
