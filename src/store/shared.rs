//! A set derived from many KV records (the compiled AccessPolicies, the TokenIntrospectors),
//! cached per isolate and reloaded by one request at a time when it ages.
//!
//! Without this, every request that arrived while the cached set had aged past `CACHE_TTL`
//! listed and read every record itself: under load that was one full reload per concurrent
//! request (tests/load/policy-reload.mjs). Now, while one request reloads an aged set, the
//! others keep using it; it is what this isolate believed a moment ago, and other isolates may
//! see writes up to `CACHE_TTL` late anyway.
//!
//! Requests never wait for another request's load: in workerd a request whose only pending work
//! is a promise that a different request will resolve is cancelled as hung. So after a write,
//! when there is no set at all, each request that arrives before one is cached loads its own.
//!
//! Writes through this isolate apply at once: [`SharedSet::invalidate`] drops the set and bumps
//! a generation. A load that started before the write can finish after it; its answer serves
//! the request that made it but is never cached.

use crate::error::Result;
use std::cell::{Cell, RefCell};
use std::future::Future;
use std::rc::Rc;

pub struct SharedSet<T> {
    value: RefCell<Option<(i64, Rc<T>)>>,
    generation: Cell<u64>,
    /// The newest load in flight: its number and when it began. Cleared when that load ends or
    /// its future is dropped. In workerd a request whose client went away can be neither polled
    /// nor dropped again, so the mark can also stay set forever: one older than `stale_after`
    /// seconds (the store timeout: no load can legitimately wait longer on one call) is dead.
    loading: Cell<Option<(u64, i64)>>,
    loads: Cell<u64>,
}

impl<T> Default for SharedSet<T> {
    fn default() -> Self {
        SharedSet {
            value: RefCell::new(None),
            generation: Cell::new(0),
            loading: Cell::new(None),
            loads: Cell::new(0),
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
    /// Drops the set: the next request loads it again, and loads in flight are not cached.
    pub fn invalidate(&self) {
        *self.value.borrow_mut() = None;
        self.generation.set(self.generation.get() + 1);
    }

    /// The set, fresh within `ttl` seconds of `now`, loading it with `load` if need be. A load
    /// in flight that began more than `stale_after` seconds ago no longer holds others back.
    pub async fn get<F, Fut>(&self, now: i64, ttl: i64, stale_after: i64, load: F) -> Result<Rc<T>>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let cached = self.value.borrow().clone();
        if let Some((at, v)) = cached {
            let loading = self
                .loading
                .get()
                .is_some_and(|(_, since)| now - since <= stale_after);
            if now - at < ttl || loading {
                return Ok(v);
            }
        }
        let generation = self.generation.get();
        let n = self.loads.get() + 1;
        self.loads.set(n);
        self.loading.set(Some((n, now)));
        // However the load ends (also when the request is dropped), it is no longer in flight.
        let _guard = Loading(&self.loading, n);
        let loaded = Rc::new(load().await?);
        if self.generation.get() == generation {
            *self.value.borrow_mut() = Some((now, loaded.clone()));
        }
        Ok(loaded)
    }
}

/// Clears the mark of load `.1` when it ends, unless a newer load has taken the mark over.
struct Loading<'a>(&'a Cell<Option<(u64, i64)>>, u64);

impl Drop for Loading<'_> {
    fn drop(&mut self) {
        if self.0.get().is_some_and(|(n, _)| n == self.1) {
            self.0.set(None);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Error;
    use futures::channel::oneshot;
    use futures::executor::{block_on, LocalPool};
    use futures::task::LocalSpawnExt;

    #[test]
    fn an_aged_set_is_reloaded_by_one_request_while_the_others_use_it() {
        let set: Rc<SharedSet<u32>> = Rc::new(SharedSet::default());
        assert_eq!(*block_on(set.get(0, 10, 5, || async { Ok(1) })).unwrap(), 1);
        let (open, gate) = oneshot::channel::<()>();
        let runs = Rc::new(Cell::new(0));
        let seen = Rc::new(RefCell::new(Vec::new()));
        let mut pool = LocalPool::new();
        let mut gate = Some(gate);
        for _ in 0..10 {
            let (set, runs, seen) = (set.clone(), runs.clone(), seen.clone());
            let gate = gate.take();
            pool.spawner()
                .spawn_local(async move {
                    let v = set
                        .get(20, 10, 5, || async move {
                            runs.set(runs.get() + 1);
                            if let Some(g) = gate {
                                let _ = g.await;
                            }
                            Ok(2)
                        })
                        .await
                        .unwrap();
                    seen.borrow_mut().push(*v);
                })
                .unwrap();
        }
        pool.run_until_stalled();
        assert_eq!(runs.get(), 1, "one reload while it is in flight");
        assert_eq!(
            seen.borrow().len(),
            9,
            "the others went on with the aged set"
        );
        assert!(seen.borrow().iter().all(|v| *v == 1));
        open.send(()).unwrap();
        pool.run_until_stalled();
        assert_eq!(seen.borrow().last(), Some(&2));
        assert_eq!(
            *block_on(set.get(21, 10, 5, || async { Ok(99) })).unwrap(),
            2
        );
    }

    #[test]
    fn a_write_during_a_load_is_not_lost() {
        let set: Rc<SharedSet<u32>> = Rc::new(SharedSet::default());
        let version = Rc::new(Cell::new(1u32));
        let (open, gate) = oneshot::channel::<()>();
        let mut pool = LocalPool::new();
        let first = Rc::new(Cell::new(0));
        {
            let (set, version, first) = (set.clone(), version.clone(), first.clone());
            pool.spawner()
                .spawn_local(async move {
                    let v = set
                        .get(0, 10, 5, || {
                            // The store is read now; the answer comes back after the write.
                            let seen = version.get();
                            async move {
                                let _ = gate.await;
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
        // A write lands while that load is in flight; the next request must see it.
        version.set(2);
        set.invalidate();
        let v = version.get();
        assert_eq!(
            *block_on(set.get(0, 10, 5, || async move { Ok(v) })).unwrap(),
            2
        );
        open.send(()).unwrap();
        pool.run_until_stalled();
        assert_eq!(first.get(), 1, "the early request gets what it loaded");
        // The late answer of the old load did not replace the new set.
        assert_eq!(
            *block_on(set.get(1, 10, 5, || async { Ok(99) })).unwrap(),
            2
        );
    }

    #[test]
    fn a_dropped_load_is_no_longer_in_flight() {
        let set: Rc<SharedSet<u32>> = Rc::new(SharedSet::default());
        assert_eq!(*block_on(set.get(0, 10, 5, || async { Ok(1) })).unwrap(), 1);
        let mut pool = LocalPool::new();
        let handle = {
            let set = set.clone();
            pool.spawner()
                .spawn_local_with_handle(async move {
                    let _ = set
                        .get(20, 10, 5, futures::future::pending::<Result<u32>>)
                        .await;
                })
                .unwrap()
        };
        pool.run_until_stalled();
        // While it hangs, others use the aged set...
        assert_eq!(
            *block_on(set.get(20, 10, 5, || async { Ok(5) })).unwrap(),
            1
        );
        drop(handle);
        pool.run_until_stalled();
        // ...and once it is gone (a cancelled request), the next request reloads.
        assert_eq!(
            *block_on(set.get(20, 10, 5, || async { Ok(5) })).unwrap(),
            5
        );
    }

    /// A request that never resumes (workerd: the client went away; its future is neither
    /// polled nor dropped again) must not hold the reload back for the isolate's whole life.
    #[test]
    fn an_abandoned_load_stops_holding_others_back_after_the_store_timeout() {
        use std::task::{Context, Poll};
        let set: SharedSet<u32> = SharedSet::default();
        assert_eq!(*block_on(set.get(0, 10, 5, || async { Ok(1) })).unwrap(), 1);
        // At t=20 (aged) a request starts the reload and hangs in it...
        let mut stuck = Box::pin(set.get(20, 10, 5, futures::future::pending::<Result<u32>>));
        let waker = futures::task::noop_waker();
        assert!(matches!(
            stuck.as_mut().poll(&mut Context::from_waker(&waker)),
            Poll::Pending
        ));
        // ...and is abandoned: never polled again, never dropped.
        std::mem::forget(stuck);
        // Within the store timeout the others still use the aged set...
        assert_eq!(
            *block_on(set.get(25, 10, 5, || async { Ok(7) })).unwrap(),
            1
        );
        // ...after it, the mark is dead and the next request reloads.
        assert_eq!(
            *block_on(set.get(26, 10, 5, || async { Ok(7) })).unwrap(),
            7
        );
        assert_eq!(
            *block_on(set.get(27, 10, 5, || async { Ok(8) })).unwrap(),
            7
        );
    }

    #[test]
    fn failures_are_not_cached() {
        let set: SharedSet<u32> = SharedSet::default();
        assert_eq!(*block_on(set.get(0, 10, 5, || async { Ok(1) })).unwrap(), 1);
        let e = block_on(set.get(20, 10, 5, || async {
            Err::<u32, _>(Error::Unavailable("kv down".into()))
        }));
        assert!(matches!(e, Err(Error::Unavailable(_))));
        assert_eq!(
            *block_on(set.get(21, 10, 5, || async { Ok(3) })).unwrap(),
            3
        );
    }
}
