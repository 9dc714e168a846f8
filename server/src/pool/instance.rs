//! One live instance: a wasmtime `Store`, the component instantiated in it,
//! and its handlers and hooks, located once when it starts.

use super::lease::CallOutcome;
use super::shared::{self, Shared};
use super::stats::{InstanceState, InstanceStats};
use super::{InvokeError, Pool};
use crate::bindings::event;
use crate::engine::Prepared;
use crate::host::{Fired, LogSource, StoreData};
use crate::metrics::FunctionMetrics;
use crate::metrics::Hook;
use crate::runtime::{Phase, after, classify, new_store, next_instance_id, until};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};
use tokio::sync::OwnedSemaphorePermit;
use wasmtime::Store;
use wasmtime::component::{Resource, TypedFunc};
use wasmtime_wasi_http::p2::bindings::Proxy;
use wasmtime_wasi_http::p2::types::{HostIncomingRequest, HostResponseOutparam};

/// What the idle list holds and a lease lends: a whole WASI 0.2 instance, or
/// one slot of a WASI 0.3 instance that serves several requests at once.
pub(crate) enum Instance {
    Whole(Box<Whole>),
    Shared(Shared),
}

impl Instance {
    /// The instance's id.
    pub(crate) fn id(&self) -> u64 {
        match self {
            Self::Whole(w) => w.id(),
            Self::Shared(s) => s.id(),
        }
    }

    /// Its live figures.
    pub(crate) fn stats(&self) -> &Arc<InstanceStats> {
        match self {
            Self::Whole(w) => &w.stats,
            Self::Shared(s) => &s.core.stats,
        }
    }

    /// When its last request ended.
    pub(crate) fn last_used(&self) -> Instant {
        match self {
            Self::Whole(w) => w.last_used,
            Self::Shared(s) => s.core.last_used(),
        }
    }

    /// Meters the time it spent parked, when it leaves the idle list.
    pub(crate) fn unparked(&self) {
        match self {
            Self::Whole(w) => w.unparked(),
            Self::Shared(_) => {}
        }
    }
}

/// A started WASI 0.2 instance. It holds its slot in the function's and the
/// server's instance budget until it is dropped.
pub(crate) struct Whole {
    pub(crate) store: Store<StoreData>,
    http: Option<Proxy>,
    event: Option<event::Guest>,
    pre_freeze: Option<TypedFunc<(), ()>>,
    pre_stop: Option<TypedFunc<(), ()>>,
    pub(crate) served: u64,
    /// Requests it answered (set a response for).
    pub(crate) answered: u64,
    pub(crate) last_used: Instant,
    /// Host resources it held after its first call: what the guest keeps
    /// for good.
    steady_resources: Option<usize>,
    /// Whether its last call left it holding more than that, and
    /// `kept_resources` more.
    pub(crate) holds_resources: bool,
    kept_resources: usize,
    pub(crate) stats: Arc<InstanceStats>,
    metrics: Arc<FunctionMetrics>,
    pool: Weak<Pool>,
    _permits: Permits,
}

/// The instance's slot in its function's budget and in the server's.
pub(crate) struct Permits {
    pub(crate) _function: OwnedSemaphorePermit,
    pub(crate) _server: super::BudgetPermit,
}

impl Instance {
    /// Starts a new instance of `pool`'s component, bounded by `deadline`,
    /// and runs its `init` when the function initializes per instance. A
    /// WASI 0.3 one comes back as its first slot.
    pub(crate) async fn start(
        pool: &Arc<Pool>,
        permits: Permits,
        deadline: Instant,
    ) -> Result<Self, InvokeError> {
        let id = next_instance_id();
        let stats = Arc::new(InstanceStats::new(
            id,
            pool.version,
            pool.runnable.init_mode(),
            pool.settings.memory.bytes() >> 20,
        ));
        pool.register(&stats);
        // Until the instance exists (and its drop takes over), a failed or
        // abandoned start takes its entry out of the pool's view.
        let mut starting = Starting {
            pool,
            id,
            armed: true,
        };
        let (per_sec, burst) = pool.ctx.engine.host_limits().log_rate;
        let source = Arc::new(LogSource::new(
            pool.function.clone(),
            pool.version,
            id,
            per_sec,
            burst,
        ));
        let settings = &pool.settings;
        let mut state = StoreData::new(
            source,
            settings.memory.as_usize(),
            pool.ctx.engine.host_limits(),
            deadline,
            pool.outbound.clone(),
        );
        state.config = pool.config.clone();
        if settings.publish_broker().is_some() {
            state.outbox = pool
                .ctx
                .engine
                .outboxes()
                .get(&pool.function)
                .inspect_err(|e| tracing::error!(function = %pool.function, error = %e, "opening the outbox failed"))
                .ok();
        }
        #[cfg(feature = "gpu")]
        {
            state.gpu = Some(
                pool.ctx
                    .engine
                    .gpu()
                    .access(pool.function.clone(), stats.gpu.clone()),
            );
        }
        let mut store = new_store(&pool.ctx.engine, state);
        let prepared: &Prepared = &pool.runnable.prepared;
        let instance = match until(deadline, prepared.pre.instantiate_async(&mut store)).await {
            Some(Ok(instance)) => instance,
            Some(Err(e)) if e.is::<wasmtime::PoolConcurrencyLimitError>() => {
                return Err(pool.overloaded("instance pool exhausted"));
            }
            Some(Err(e)) => return Err(classify(e, &store, settings.timeout.0, Phase::Start)),
            None => return Err(InvokeError::Timeout(settings.timeout.0)),
        };
        if prepared.is_p3() {
            let shared = start_shared(pool, store, instance, stats, permits, deadline).await?;
            starting.armed = false;
            return Ok(Self::Shared(shared));
        }
        let loaded = (|| -> wasmtime::Result<_> {
            let http = prepared
                .http
                .as_ref()
                .map(|i| i.load(&mut store, &instance))
                .transpose()?;
            let event = prepared
                .event
                .as_ref()
                .map(|i| i.load(&mut store, &instance))
                .transpose()?;
            let hooks = &prepared.hooks;
            let pre_freeze = hooks
                .pre_freeze
                .map(|i| instance.get_typed_func(&mut store, i))
                .transpose()?;
            let pre_stop = hooks
                .pre_stop
                .map(|i| instance.get_typed_func(&mut store, i))
                .transpose()?;
            let init = match (pool.runnable.init_per_instance, hooks.init) {
                (true, Some(i)) => {
                    Some(instance.get_typed_func::<(), (Result<(), String>,)>(&mut store, i)?)
                }
                _ => None,
            };
            Ok((http, event, pre_freeze, pre_stop, init))
        })();
        let (http, event, pre_freeze, pre_stop, init) =
            loaded.map_err(|e| InvokeError::Instantiate(e.into()))?;
        let mut instance = Whole {
            store,
            http,
            event,
            pre_freeze,
            pre_stop,
            served: 0,
            answered: 0,
            last_used: Instant::now(),
            steady_resources: None,
            holds_resources: false,
            kept_resources: pool.ctx.engine.host_limits().max_kept_resources,
            stats,
            metrics: pool.metrics.clone(),
            pool: Arc::downgrade(pool),
            _permits: permits,
        };
        starting.armed = false;
        if let Some(init) = init {
            let init_deadline = deadline.min(after(Instant::now(), settings.init_timeout.0));
            instance.store.data_mut().deadline = init_deadline;
            instance.store.set_epoch_deadline(1);
            let start = Instant::now();
            let result = until(init_deadline, init.call_async(&mut instance.store, ())).await;
            let elapsed = start.elapsed();
            let failed = !matches!(result, Some(Ok((Ok(()),))));
            instance.record_hook(Hook::Init, elapsed, failed);
            match result {
                Some(Ok((Ok(()),))) => {}
                Some(Ok((Err(message),))) => {
                    return Err(InvokeError::Instantiate(anyhow::anyhow!(
                        "init failed: {message}"
                    )));
                }
                Some(Err(e)) => {
                    return Err(classify(
                        e,
                        &instance.store,
                        settings.init_timeout.0,
                        Phase::Start,
                    ));
                }
                None => return Err(InvokeError::Timeout(settings.init_timeout.0)),
            }
        }
        instance
            .stats
            .set_memory(instance.store.data().limiter.memory_used());
        Ok(Self::Whole(Box::new(instance)))
    }
}

/// Runs a WASI 0.3 instance's per-instance `init` (when it has one) and
/// starts its driver.
async fn start_shared(
    pool: &Arc<Pool>,
    mut store: Store<StoreData>,
    instance: wasmtime::component::Instance,
    stats: Arc<InstanceStats>,
    permits: Permits,
    deadline: Instant,
) -> Result<Shared, InvokeError> {
    let settings = &pool.settings;
    if pool.runnable.init_per_instance
        && let Some(index) = pool.runnable.prepared.hooks.init
    {
        let init = instance
            .get_typed_func::<(), (Result<(), String>,)>(&mut store, index)
            .map_err(|e| InvokeError::Instantiate(e.into()))?;
        let init_deadline = deadline.min(after(Instant::now(), settings.init_timeout.0));
        store.data_mut().deadline = init_deadline;
        store.set_epoch_deadline(1);
        let start = Instant::now();
        let result = until(
            init_deadline,
            store.run_concurrent(async |acc| init.call_concurrent(acc, ()).await),
        )
        .await;
        let took = start.elapsed();
        let failed = !matches!(result, Some(Ok(Ok((Ok(()),)))));
        stats.record_hook(Hook::Init, took, failed);
        stats.meter.hook(took, stats.memory_mib);
        pool.metrics.record_hook(Hook::Init, took, failed);
        pool.metrics.meter.hook(took, stats.memory_mib);
        match result {
            Some(Ok(Ok((Ok(()),)))) => {}
            Some(Ok(Ok((Err(message),)))) => {
                return Err(InvokeError::Instantiate(anyhow::anyhow!(
                    "init failed: {message}"
                )));
            }
            Some(Ok(Err(e)) | Err(e)) => {
                return Err(classify(e, &store, settings.init_timeout.0, Phase::Start));
            }
            None => return Err(InvokeError::Timeout(settings.init_timeout.0)),
        }
    }
    stats.set_memory(store.data().limiter.memory_used());
    shared::spawn(
        pool,
        shared::Start {
            store,
            instance,
            stats,
            metrics: pool.metrics.clone(),
            permits,
            timeout: settings.timeout.0,
            hook_timeout: settings.hook_timeout.0,
        },
    )
}

impl Whole {
    /// The instance's id.
    pub(crate) fn id(&self) -> u64 {
        self.stats.id
    }

    /// Whether the function exports `pre-freeze`.
    pub(crate) fn has_pre_freeze(&self) -> bool {
        self.pre_freeze.is_some()
    }

    /// Whether the function exports `pre-stop`.
    pub(crate) fn has_pre_stop(&self) -> bool {
        self.pre_stop.is_some()
    }

    fn begin(&mut self, deadline: Instant, hops: u32) -> Instant {
        let data = self.store.data_mut();
        data.deadline = deadline;
        data.outbound.begin_call(hops);
        self.store.set_epoch_deadline(1);
        self.stats.set_state(InstanceState::Busy);
        Instant::now()
    }

    fn end(&mut self, start: Instant) {
        self.served += 1;
        self.last_used = Instant::now();
        let memory = self.store.data().limiter.memory_used();
        let resources = self.store.data_mut().resource_count();
        // An instance that keeps what its calls create would grow the host's
        // memory with every request: past `max_kept_resources` more than it
        // held after its first call it is retired rather than reused. (The
        // handles a guest opens lazily and keeps, and the few a JavaScript
        // or Python runtime accumulates, stay well under it.)
        let steady = *self.steady_resources.get_or_insert(resources);
        self.holds_resources = resources > steady + self.kept_resources;
        let took = start.elapsed();
        self.stats.record_request(took, memory, resources);
        self.stats.meter.invocation(took, self.stats.memory_mib);
        self.metrics.meter.invocation(took, self.stats.memory_mib);
    }

    /// Meters a hook call, apart from requests.
    fn record_hook(&self, hook: Hook, took: Duration, failed: bool) {
        self.stats.record_hook(hook, took, failed);
        self.stats.meter.hook(took, self.stats.memory_mib);
        self.metrics.record_hook(hook, took, failed);
        self.metrics.meter.hook(took, self.stats.memory_mib);
    }

    /// Meters the time it spent parked, when it leaves the idle list.
    pub(crate) fn unparked(&self) {
        if let Some(parked) = self.stats.unparked() {
            self.stats.meter.frozen(parked);
            self.metrics.meter.frozen(parked);
        }
    }

    /// Runs `incoming-handler.handle` for one request, within `deadline`.
    pub(crate) async fn call_http(
        &mut self,
        request: Resource<HostIncomingRequest>,
        response: Resource<HostResponseOutparam>,
        deadline: Instant,
        timeout: Duration,
        hops: u32,
    ) -> CallOutcome {
        let Some(proxy) = self.http.take() else {
            return CallOutcome::Failed(InvokeError::NotHttp);
        };
        let start = self.begin(deadline, hops);
        let call =
            proxy
                .wasi_http_incoming_handler()
                .call_handle(&mut self.store, request, response);
        let outcome = match until(deadline, call).await {
            Some(Ok(())) => CallOutcome::Completed,
            Some(Err(e)) => CallOutcome::Failed(classify(e, &self.store, timeout, Phase::Call)),
            None => CallOutcome::Failed(InvokeError::Timeout(timeout)),
        };
        self.http = Some(proxy);
        self.end(start);
        outcome
    }

    /// Runs `event.handle` for one event, within `deadline`. The result is
    /// `None` when the call failed (see the outcome).
    pub(crate) async fn call_event(
        &mut self,
        context: &event::Context,
        fired: Option<&Fired>,
        payload: &[u8],
        deadline: Instant,
        timeout: Duration,
    ) -> (CallOutcome, Option<Result<Vec<u8>, event::Error>>) {
        let Some(guest) = self.event.take() else {
            return (CallOutcome::Failed(InvokeError::NotEvent), None);
        };
        let start = self.begin(deadline, 0);
        let fired_key = fired.map(|fired| {
            let key = context.request_id.clone();
            self.store
                .data_mut()
                .fired
                .insert(key.clone(), fired.clone());
            key
        });
        let call = guest.call_handle(&mut self.store, context, payload);
        let (outcome, result) = match until(deadline, call).await {
            Some(Ok(result)) => (CallOutcome::Completed, Some(result)),
            Some(Err(e)) => (
                CallOutcome::Failed(classify(e, &self.store, timeout, Phase::Call)),
                None,
            ),
            None => (CallOutcome::Failed(InvokeError::Timeout(timeout)), None),
        };
        if let Some(key) = fired_key {
            self.store.data_mut().fired.remove(&key);
        }
        self.event = Some(guest);
        self.end(start);
        (outcome, result)
    }

    /// Runs `pre-freeze` or `pre-stop`, within `timeout`. Hook time is
    /// metered apart from request time.
    pub(crate) async fn call_hook(
        &mut self,
        hook: Hook,
        timeout: Duration,
    ) -> Result<(), InvokeError> {
        let func = match hook {
            Hook::PreFreeze => self.pre_freeze,
            Hook::PreStop => self.pre_stop,
            Hook::Init => None,
        };
        let Some(func) = func else {
            return Ok(());
        };
        let deadline = after(Instant::now(), timeout);
        let data = self.store.data_mut();
        data.deadline = deadline;
        data.outbound.begin_call(0);
        self.store.set_epoch_deadline(1);
        let start = Instant::now();
        let result = match until(deadline, func.call_async(&mut self.store, ())).await {
            Some(Ok(())) => Ok(()),
            Some(Err(e)) => Err(classify(e, &self.store, timeout, Phase::Call)),
            None => Err(InvokeError::Timeout(timeout)),
        };
        self.record_hook(hook, start.elapsed(), result.is_err());
        result
    }
}

impl Drop for Whole {
    fn drop(&mut self) {
        if let Some(pool) = self.pool.upgrade() {
            pool.unregister(self.stats.id);
        }
    }
}

/// An instance being started, listed in its pool before it exists.
struct Starting<'a> {
    pool: &'a Pool,
    id: u64,
    armed: bool,
}

impl Drop for Starting<'_> {
    fn drop(&mut self) {
        if self.armed {
            self.pool.forget(self.id);
        }
    }
}
