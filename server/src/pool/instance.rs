//! One live instance: a wasmtime `Store` and the component instantiated in it.

use super::lease::CallOutcome;
use super::stats::InstanceStats;
use super::{InvokeError, Pool};
use crate::host::{InstanceState, LogSource};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Instant;
use tokio::sync::OwnedSemaphorePermit;
use wasmtime::component::Resource;
use wasmtime::{Store, Trap, UpdateDeadline};
use wasmtime_wasi_http::p2::bindings::Proxy;
use wasmtime_wasi_http::p2::types::{HostIncomingRequest, HostResponseOutparam};

static NEXT_INSTANCE_ID: AtomicU64 = AtomicU64::new(1);

/// A started instance. It holds its slot in the function's and the server's
/// instance budget until it is dropped.
pub(crate) struct Instance {
    pub(crate) store: Store<InstanceState>,
    proxy: Proxy,
    pub(crate) served: u64,
    pub(crate) last_used: Instant,
    pub(crate) stats: Arc<InstanceStats>,
    pool: Weak<Pool>,
    _permits: Permits,
}

/// The instance's slot in its function's budget and in the server's.
pub(crate) struct Permits {
    pub(crate) _function: OwnedSemaphorePermit,
    pub(crate) _server: OwnedSemaphorePermit,
}

impl Instance {
    /// Starts a new instance of `pool`'s component, bounded by `deadline`.
    pub(crate) async fn start(
        pool: &Arc<Pool>,
        permits: Permits,
        deadline: Instant,
    ) -> Result<Self, InvokeError> {
        let id = NEXT_INSTANCE_ID.fetch_add(1, Ordering::Relaxed);
        let source = Arc::new(LogSource {
            function: pool.function.clone(),
            version: pool.version,
            instance: id,
        });
        let state = InstanceState::new(
            source,
            pool.settings.memory.as_usize(),
            pool.engine.table_elements(),
            deadline,
        );
        let mut store = Store::new(pool.engine.engine(), state);
        store.limiter(|s| &mut s.limiter);
        // Once per epoch tick, guest code comes here: past the deadline it
        // traps, otherwise it yields to the runtime so that one busy guest
        // cannot hold a worker thread.
        store.epoch_deadline_callback(|ctx| {
            if Instant::now() >= ctx.data().deadline {
                Ok(UpdateDeadline::Interrupt)
            } else {
                Ok(UpdateDeadline::Yield(1))
            }
        });
        store.set_epoch_deadline(1);
        let instantiate = pool.pre.instantiate_async(&mut store);
        let proxy = match tokio::time::timeout_at(deadline.into(), instantiate).await {
            Ok(Ok(proxy)) => proxy,
            Ok(Err(e)) if e.is::<wasmtime::PoolConcurrencyLimitError>() => {
                return Err(pool.overloaded("instance pool exhausted"));
            }
            Ok(Err(e)) => return Err(classify(e, &store, pool.settings.timeout.0, Phase::Start)),
            Err(_) => return Err(InvokeError::Timeout(pool.settings.timeout.0)),
        };
        let stats = Arc::new(InstanceStats::new(id));
        stats.set_memory(store.data().limiter.memory_used());
        pool.register(&stats);
        Ok(Self {
            store,
            proxy,
            served: 0,
            last_used: Instant::now(),
            stats,
            pool: Arc::downgrade(pool),
            _permits: permits,
        })
    }

    /// The instance's id.
    pub(crate) fn id(&self) -> u64 {
        self.stats.id
    }

    /// Runs `incoming-handler.handle` for one request, within `deadline`.
    pub(crate) async fn call(
        &mut self,
        request: Resource<HostIncomingRequest>,
        response: Resource<HostResponseOutparam>,
        deadline: Instant,
        timeout: std::time::Duration,
    ) -> CallOutcome {
        let start = Instant::now();
        self.stats.set_busy(true);
        let call =
            self.proxy
                .wasi_http_incoming_handler()
                .call_handle(&mut self.store, request, response);
        let outcome = match tokio::time::timeout_at(deadline.into(), call).await {
            Ok(Ok(())) => CallOutcome::Completed,
            Ok(Err(e)) => CallOutcome::Failed(classify(e, &self.store, timeout, Phase::Call)),
            Err(_) => CallOutcome::Failed(InvokeError::Timeout(timeout)),
        };
        self.served += 1;
        self.last_used = Instant::now();
        let memory = self.store.data().limiter.memory_used();
        let resources = self.store.data_mut().resource_count();
        self.stats
            .record_request(start.elapsed(), memory, resources);
        self.stats.set_busy(false);
        outcome
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        if let Some(pool) = self.pool.upgrade() {
            pool.unregister(self.stats.id);
        }
    }
}

fn is_interrupt(e: &wasmtime::Error) -> bool {
    e.downcast_ref::<Trap>() == Some(&Trap::Interrupt)
}

/// Where a wasmtime error came from.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Phase {
    Start,
    Call,
}

/// What a failed instantiation or call means for the request.
fn classify(
    e: wasmtime::Error,
    store: &Store<InstanceState>,
    timeout: std::time::Duration,
    phase: Phase,
) -> InvokeError {
    if is_interrupt(&e) {
        InvokeError::Timeout(timeout)
    } else if store.data().limiter.limit_hit() {
        InvokeError::MemoryLimit(e.into())
    } else if phase == Phase::Start {
        InvokeError::Instantiate(e.into())
    } else {
        InvokeError::Trap(e.into())
    }
}
