//! The server-wide instance budget, shared by every pool.

use super::{CountGuard, Pool};
use parking_lot::Mutex;
use std::sync::atomic::{AtomicU32, Ordering::Relaxed};
use std::sync::{Arc, Weak};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};

/// The server-wide instance budget (`limits.max_instances_total`), shared by
/// all pools.
///
/// Reserved instances come first: a pool may take a slot only while enough
/// stay free for every other pool to reach its reservation floor (the
/// autoscaler's target), so one function at its burst cannot take the slots
/// another function's reserved instances need. When the budget runs out, an
/// idle instance of another pool that is above its floor is stopped to make
/// room before anyone has to wait.
#[derive(Debug)]
pub struct InstanceBudget {
    permits: Arc<Semaphore>,
    total: u32,
    pools: Mutex<Vec<Weak<Pool>>>,
    /// The pools' floors added up: while more slots than this are free,
    /// nobody's reservation is at risk and the check is skipped.
    floors: AtomicU32,
    /// Requests waiting for a slot; only then are changes announced.
    waiting: AtomicU32,
    /// An instance was parked or stopped, or a floor went down.
    changed: Notify,
}

/// One slot of the server-wide budget, held by a live instance.
#[derive(Debug)]
pub(crate) struct BudgetPermit {
    permit: Option<OwnedSemaphorePermit>,
    budget: Arc<InstanceBudget>,
}

impl Drop for BudgetPermit {
    fn drop(&mut self) {
        // Give the slot back before telling the waiters.
        drop(self.permit.take());
        self.budget.announce();
    }
}

impl InstanceBudget {
    /// A budget of `total` instances.
    pub fn new(total: u32) -> Arc<Self> {
        Arc::new(Self {
            permits: Arc::new(Semaphore::new(total as usize)),
            total,
            pools: Mutex::default(),
            floors: AtomicU32::new(0),
            waiting: AtomicU32::new(0),
            changed: Notify::new(),
        })
    }

    /// Instances alive on the server.
    pub fn in_use(&self) -> u32 {
        self.total - self.permits.available_permits() as u32
    }

    /// The server's instance budget.
    pub fn total(&self) -> u32 {
        self.total
    }

    /// Every pool that still exists (active or retired with live instances).
    pub fn pools(&self) -> Vec<Arc<Pool>> {
        self.pools.lock().iter().filter_map(Weak::upgrade).collect()
    }

    pub(super) fn attach(&self, pool: &Arc<Pool>) {
        let mut pools = self.pools.lock();
        pools.retain(|p| p.strong_count() > 0);
        pools.push(Arc::downgrade(pool));
    }

    /// Slots the other pools still need to reach their floors.
    fn reserved_for_others(&self, asking: &Pool) -> u32 {
        self.pools()
            .iter()
            .filter(|p| !std::ptr::eq(p.as_ref(), asking))
            .map(|p| p.shortfall())
            .sum()
    }

    /// Whether `asking` may take one more slot now.
    fn may_take(&self, asking: &Pool) -> bool {
        let free = self.permits.available_permits() as u32;
        free > 0 && (free > self.floors.load(Relaxed) || free > self.reserved_for_others(asking))
    }

    fn take(self: &Arc<Self>, asking: &Pool) -> Option<BudgetPermit> {
        if !self.may_take(asking) {
            return None;
        }
        let permit = self.permits.clone().try_acquire_owned().ok()?;
        Some(BudgetPermit {
            permit: Some(permit),
            budget: self.clone(),
        })
    }

    pub(super) fn try_acquire(self: &Arc<Self>, asking: &Pool) -> Option<BudgetPermit> {
        if let Some(p) = self.take(asking) {
            return Some(p);
        }
        // Make room: stop the least recently used idle instance of another
        // pool, one above its floor.
        let victim = self
            .pools()
            .into_iter()
            .filter(|p| !std::ptr::eq(p.as_ref(), asking) && p.live() > p.floor())
            .filter_map(|p| p.oldest_idle().map(|t| (t, p)))
            .min_by_key(|(t, _)| *t)
            .map(|(_, p)| p);
        if let Some(pool) = victim {
            pool.evict_oldest_idle();
        }
        self.take(asking)
    }

    /// Waits for a slot: one freed, or one made by stopping an instance that
    /// another pool parks meanwhile.
    pub(super) async fn acquire(self: &Arc<Self>, asking: &Pool) -> Option<BudgetPermit> {
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            self.waiting.fetch_add(1, Relaxed);
            let _waiting = CountGuard(&self.waiting);
            if let Some(permit) = self.try_acquire(asking) {
                return Some(permit);
            }
            changed.await;
        }
    }

    /// Tells requests waiting for a slot to look again.
    pub(super) fn announce(&self) {
        if self.waiting.load(Relaxed) > 0 {
            self.changed.notify_waiters();
        }
    }

    pub(super) fn floor_changed(&self, from: u32, to: u32) {
        if to >= from {
            self.floors.fetch_add(to - from, Relaxed);
        } else {
            self.floors.fetch_sub(from - to, Relaxed);
            self.announce();
        }
    }
}
