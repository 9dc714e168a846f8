//! An instance's wasmtime store, its deadline, and what a failed call
//! means: the pieces that serving requests (the pool) and running `init` at
//! deploy (preinit) share.

use super::InvokeError;
use crate::engine::FloeEngine;
use crate::host::StoreData;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use wasmtime::component::ResourceTableError;
use wasmtime::{Store, Trap, UpdateDeadline};

static NEXT_INSTANCE_ID: AtomicU64 = AtomicU64::new(1);

/// A new instance id, unique in this process.
pub fn next_instance_id() -> u64 {
    NEXT_INSTANCE_ID.fetch_add(1, Ordering::Relaxed)
}

/// A store for one instance of `function`, with its limits, and the epoch
/// callback that enforces `store.data().deadline`.
pub fn new_store(engine: &FloeEngine, state: StoreData) -> Store<StoreData> {
    let mut store = Store::new(engine.engine(), state);
    store.limiter(|s| &mut s.limiter);
    // Once per epoch tick, guest code comes here: past the deadline it
    // traps, otherwise it yields to the runtime so that one busy guest
    // cannot hold a worker thread. In a WASI 0.3 instance, a task still
    // running guest code past its own deadline (a spin) traps the instance:
    // it cannot be cancelled alone.
    store.epoch_deadline_callback(|mut ctx| {
        let now = Instant::now();
        if now >= ctx.data().deadline {
            return Ok(UpdateDeadline::Interrupt);
        }
        if let Some(deadlines) = ctx.data().task_deadlines.clone()
            && let Ok(stack) = ctx.async_call_stack()
            && let Some(root) = stack.last()
            && deadlines.lock().get(&root).is_some_and(|d| now >= *d)
        {
            return Ok(UpdateDeadline::Interrupt);
        }
        Ok(UpdateDeadline::Yield(1))
    });
    store.set_epoch_deadline(1);
    store
}

/// Runs `work` until `deadline`; `None` when the deadline passed first.
///
/// This bounds the time a guest spends waiting in host calls; guest code
/// itself is interrupted by the epoch callback.
pub async fn until<F: std::future::Future>(deadline: Instant, work: F) -> Option<F::Output> {
    tokio::time::timeout_at(deadline.into(), work).await.ok()
}

fn is_interrupt(e: &wasmtime::Error) -> bool {
    e.downcast_ref::<Trap>() == Some(&Trap::Interrupt)
}

/// Where a wasmtime error came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Instantiation (and a per-instance `init`).
    Start,
    /// A call of an export or a hook.
    Call,
}

/// What a failed instantiation, call or hook means.
pub fn classify(
    e: wasmtime::Error,
    store: &Store<StoreData>,
    timeout: Duration,
    phase: Phase,
) -> InvokeError {
    classify_with(e, store.data().limiter.limit_hit(), timeout, phase)
}

/// [`classify`], given whether the instance hit its memory limit.
pub fn classify_with(
    e: wasmtime::Error,
    limit_hit: bool,
    timeout: Duration,
    phase: Phase,
) -> InvokeError {
    if is_interrupt(&e) {
        InvokeError::Timeout(timeout)
    } else if limit_hit {
        InvokeError::MemoryLimit(e.into())
    } else if e.chain().any(|c| {
        matches!(
            c.downcast_ref::<ResourceTableError>(),
            Some(ResourceTableError::Full)
        )
    }) {
        InvokeError::ResourceLimit(e.into())
    } else if phase == Phase::Start {
        InvokeError::Instantiate(e.into())
    } else {
        InvokeError::Trap(e.into())
    }
}

/// `start + d`, saturating instead of overflowing.
pub fn after(start: Instant, d: Duration) -> Instant {
    start
        .checked_add(d)
        .unwrap_or_else(|| start + Duration::from_secs(24 * 3600))
}
