//! A set derived from many KV records (the compiled AccessPolicies, the TokenIntrospectors),
//! loaded at most once at a time per isolate.
//!
//! Without this, every request that arrived while the set was missing or stale listed and read
//! every record itself: under load, right after a policy write, 64 concurrent requests made 64
//! full reloads (measured by tests/load/policy-reload.mjs). Now one request loads; the others
//! wait for its answer, or, when the set merely aged past `CACHE_TTL`, keep using the previous
//! set until the new one is in.
//!
//! Writes through this isolate apply at once: [`SharedSet::invalidate`] drops the set and bumps
//! a generation. A load that started before the write can finish after it; its result is then
//! neither cached nor handed to requests that came after the write; they load again.

use crate::error::Result;
use futures::channel::oneshot;
use std::cell::{Cell, RefCell};
use std::future::Future;
use std::rc::Rc;

type Waiter<T> = (u64, oneshot::Sender<Result<Rc<T>>>);

pub struct SharedSet<T> {
    value: RefCell<Option<(i64, Rc<T>)>>,
    generation: Cell<u64>,
    loading: Cell<bool>,
    waiters: RefCell<Vec<Waiter<T>>>,
}

impl<T> Default for SharedSet<T> {
    fn default() -> Self {
        SharedSet {
            value: RefCell::new(None),
            generation: Cell::new(0),
            loading: Cell::new(false),
            waiters: RefCell::new(Vec::new()),
        }
    }
}

impl<T> std::fmt::Debug for SharedSet<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedSet")
            .field("cached", &self.value.borrow().is_some())
            .field("generation", &self.generation.get())
            .field("loading", &self.loading.get())
            .finish()
    }
}

impl<T> SharedSet<T> {
    /// Drops the set: the next request loads it again, and a load in flight does not count.
    pub fn invalidate(&self) {
        *self.value.borrow_mut() = None;
        self.generation.set(self.generation.get() + 1);
    }

    /// The set, fresh within `ttl` seconds of `now`, loading it with `load` if need be.
    pub async fn get<F, Fut>(&self, now: i64, ttl: i64, load: F) -> Result<Rc<T>>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        loop {
            let cached = self.value.borrow().clone();
            if let Some((at, v)) = &cached {
                if now - at < ttl {
                    return Ok(v.clone());
                }
            }
            if !self.loading.get() {
                return self.lead(now, &load).await;
            }
            // Someone is loading. A set that only aged is still what this isolate believed a
            // moment ago: keep using it. After a write there is none: wait for the load.
            if let Some((_, v)) = cached {
                return Ok(v);
            }
            let (tx, rx) = oneshot::channel();
            self.waiters.borrow_mut().push((self.generation.get(), tx));
            match rx.await {
                Ok(answer) => return answer,
                // The loader's answer predates a write we must see: go round and load anew.
                Err(oneshot::Canceled) => continue,
            }
        }
    }

    async fn lead<F, Fut>(&self, now: i64, load: &F) -> Result<Rc<T>>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let generation = self.generation.get();
        self.loading.set(true);
        // If this request is dropped mid-load (the client went away), the guard lets the
        // waiters go: they see Canceled and one of them loads instead.
        let _guard = Loading(self);
        let loaded = load().await.map(Rc::new);
        let current = self.generation.get() == generation;
        if current {
            if let Ok(v) = &loaded {
                *self.value.borrow_mut() = Some((now, v.clone()));
            }
        }
        // Waiters that came before any later write share this answer; later ones are dropped
        // (their receiver sees Canceled) and load again.
        for (seen, tx) in self.waiters.borrow_mut().drain(..) {
            if seen == generation {
                let _ = tx.send(loaded.clone());
            }
        }
        loaded
    }
}

/// Clears the loading mark, and any waiters left, however the load ends.
struct Loading<'a, T>(&'a SharedSet<T>);

impl<T> Drop for Loading<'_, T> {
    fn drop(&mut self) {
        self.0.loading.set(false);
        self.0.waiters.borrow_mut().clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Error;
    use futures::executor::LocalPool;
    use futures::task::LocalSpawnExt;
    use std::cell::Cell;

    /// A load that waits for a signal, counting how often it runs.
    struct Gate {
        runs: Cell<u32>,
        open: RefCell<Option<oneshot::Receiver<()>>>,
    }

    #[test]
    fn concurrent_requests_share_one_load() {
        let set: Rc<SharedSet<u32>> = Rc::new(SharedSet::default());
        let (open, gate_rx) = oneshot::channel();
        let gate = Rc::new(Gate {
            runs: Cell::new(0),
            open: RefCell::new(Some(gate_rx)),
        });
        let mut pool = LocalPool::new();
        let results = Rc::new(RefCell::new(Vec::new()));
        for _ in 0..10 {
            let (set, gate, results) = (set.clone(), gate.clone(), results.clone());
            pool.spawner()
                .spawn_local(async move {
                    let v = set
                        .get(0, 10, || {
                            let gate = gate.clone();
                            async move {
                                gate.runs.set(gate.runs.get() + 1);
                                let rx = gate.open.borrow_mut().take();
                                if let Some(rx) = rx {
                                    let _ = rx.await;
                                }
                                Ok(7)
                            }
                        })
                        .await
                        .unwrap();
                    results.borrow_mut().push(*v);
                })
                .unwrap();
        }
        pool.run_until_stalled();
        assert_eq!(gate.runs.get(), 1, "one load while it is in flight");
        open.send(()).unwrap();
        pool.run_until_stalled();
        assert_eq!(*results.borrow(), vec![7; 10]);
        assert_eq!(gate.runs.get(), 1);
    }

    #[test]
    fn a_write_during_a_load_is_not_lost() {
        let set: Rc<SharedSet<u32>> = Rc::new(SharedSet::default());
        let version = Rc::new(Cell::new(1u32));
        let (open, gate_rx) = oneshot::channel::<()>();
        let gate = Rc::new(RefCell::new(Some(gate_rx)));
        let mut pool = LocalPool::new();
        let first = Rc::new(Cell::new(0));
        let after_write = Rc::new(Cell::new(0));
        {
            let (set, version, gate, first) =
                (set.clone(), version.clone(), gate.clone(), first.clone());
            pool.spawner()
                .spawn_local(async move {
                    let v = set
                        .get(0, 10, || {
                            // The store is read now; the answer comes back after the write.
                            let seen = version.get();
                            let rx = gate.borrow_mut().take();
                            async move {
                                if let Some(rx) = rx {
                                    let _ = rx.await;
                                }
                                Ok(seen)
                            }
                        })
                        .await
                        .unwrap();
                    first.set(*v);
                })
                .unwrap();
        }
        pool.run_until_stalled();
        // A write lands while the load is in flight, then a request arrives.
        version.set(2);
        set.invalidate();
        {
            let (set, version, after_write) = (set.clone(), version.clone(), after_write.clone());
            pool.spawner()
                .spawn_local(async move {
                    let v = set
                        .get(0, 10, || {
                            let seen = version.get();
                            async move { Ok(seen) }
                        })
                        .await
                        .unwrap();
                    after_write.set(*v);
                })
                .unwrap();
        }
        pool.run_until_stalled();
        open.send(()).unwrap();
        pool.run_until_stalled();
        assert_eq!(first.get(), 1, "the early request gets what it loaded");
        assert_eq!(after_write.get(), 2, "the request after the write sees it");
        // And the cache holds the new set, not the late answer of the old load.
        let cached = futures::executor::block_on(set.get(1, 10, || async { Ok(99) })).unwrap();
        assert_eq!(*cached, 2);
    }

    #[test]
    fn a_dropped_loader_does_not_strand_its_waiters() {
        let set: Rc<SharedSet<u32>> = Rc::new(SharedSet::default());
        let mut pool = LocalPool::new();
        // The leader's load never finishes; it is dropped like a cancelled request.
        let leader = {
            let set = set.clone();
            async move {
                let _ = set
                    .get(0, 10, futures::future::pending::<Result<u32>>)
                    .await;
            }
        };
        let leader = pool.spawner().spawn_local_with_handle(leader).unwrap();
        pool.run_until_stalled();
        let got = Rc::new(Cell::new(0));
        {
            let (set, got) = (set.clone(), got.clone());
            pool.spawner()
                .spawn_local(async move {
                    let v = set.get(0, 10, || async { Ok(5) }).await.unwrap();
                    got.set(*v);
                })
                .unwrap();
        }
        pool.run_until_stalled();
        assert_eq!(got.get(), 0, "waiting for the leader");
        drop(leader);
        pool.run_until_stalled();
        assert_eq!(
            got.get(),
            5,
            "the waiter loaded itself once the leader was gone"
        );
    }

    #[test]
    fn an_aged_set_is_served_while_one_request_reloads_and_failures_are_not_cached() {
        let set: SharedSet<u32> = SharedSet::default();
        let v = futures::executor::block_on(set.get(0, 10, || async { Ok(1) })).unwrap();
        assert_eq!(*v, 1);
        // Past the TTL, a failing reload reports its error and keeps nothing.
        let e = futures::executor::block_on(set.get(20, 10, || async {
            Err::<u32, _>(Error::Unavailable("kv down".into()))
        }));
        assert!(matches!(e, Err(Error::Unavailable(_))));
        let v = futures::executor::block_on(set.get(21, 10, || async { Ok(3) })).unwrap();
        assert_eq!(*v, 3);
    }
}
