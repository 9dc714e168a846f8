//! A WASI 0.3 instance: one store that serves up to `instance_concurrency`
//! requests at once.
//!
//! The store belongs to a task of its own (the instance's *driver*), which
//! runs wasmtime's event loop (`Store::run_concurrent`) and starts a guest
//! task for every request sent to it. The pool lends such an instance as
//! *slots*: one [`Shared`] handle per request it may serve at once, kept in
//! the idle list beside whole WASI 0.2 instances. A slot lent out is a
//! request in flight; when every slot of an instance is back, it is idle.
//!
//! Deadlines (the contract in the README's "WASI 0.3 functions"):
//! - A request past its timeout answers 504 `timeout` at once, from the
//!   request's side. Its guest task is given up: wasmtime cannot cancel one
//!   task of a store (wasmtime#11833), so the instance stops taking requests
//!   (it drains) and is dropped, which ends the task, as soon as its other
//!   requests are done. They are not disturbed.
//! - Every running task's deadline is in the store: the epoch callback
//!   traps the store when the task running guest code is past its deadline
//!   (a spin, which keeps the store and so this driver's loop from running).
//!   A store that traps, hits its memory limit or is still busy `timeout`
//!   after it began to drain is stopped. Every other request in flight on it
//!   answers 503 `instance_lost` (with `Retry-After`), a response body still
//!   streaming from it is cut, and the instance is never reused.

use super::body::{CallEnd, GuestBody};
use super::instance::Permits;
use super::stats::{InstanceState, InstanceStats};
use super::{InvokeError, Pool};
use crate::bindings::event;
use crate::host::{StoreData, TaskDeadlines};
use crate::metrics::{FunctionMetrics, Hook};
use crate::runtime::{Phase, after, classify_with};
use bytes::Bytes;
use futures::StreamExt as _;
use futures::stream::FuturesUnordered;
use http_body_util::combinators::UnsyncBoxBody;
use parking_lot::Mutex;
use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, OnceLock, Weak};
use std::time::{Duration, Instant};
use tokio::sync::{Notify, mpsc, oneshot};
use wasmtime::component::{Accessor, GuestTaskId, Resource, TypedFunc};
use wasmtime::{AsContextMut as _, Store};
use wasmtime_wasi_http::WasiHttpView as _;
use wasmtime_wasi_http::p3::bindings::http::types::ErrorCode as P3ErrorCode;

/// The request body a WASI 0.3 guest reads.
pub(crate) type RequestBody = UnsyncBoxBody<Bytes, wasmtime_wasi_http::Error>;

type Handle = TypedFunc<
    (Resource<wasmtime_wasi_http::p3::Request>,),
    (Result<Resource<wasmtime_wasi_http::p3::Response>, P3ErrorCode>,),
>;
type EventHandle = TypedFunc<(event::Context, Vec<u8>), (Result<Vec<u8>, event::Error>,)>;
type HookFunc = TypedFunc<(), ()>;

/// What the driver's tasks send back for one HTTP request.
pub(crate) type HttpReply = Result<http::Response<GuestBody>, InvokeError>;
/// What the driver sends back for one event.
pub(crate) type EventResult = Result<Result<Vec<u8>, event::Error>, InvokeError>;

/// One request for the driver.
pub(crate) enum Job {
    Http {
        request: http::Request<RequestBody>,
        reply: oneshot::Sender<HttpReply>,
        /// The slot: released when the response body ends (or the call
        /// fails, or its task ends after it was abandoned).
        slot: Slot,
        task: Arc<OnceLock<GuestTaskId>>,
        deadline: Instant,
        hops: u32,
        limit: u64,
    },
    Event {
        context: event::Context,
        /// The trigger that fired it (`floe:function/trigger`).
        fired: Option<crate::host::Fired>,
        payload: Vec<u8>,
        reply: oneshot::Sender<EventResult>,
        slot: Slot,
        task: Arc<OnceLock<GuestTaskId>>,
        deadline: Instant,
    },
    Hook {
        hook: Hook,
        timeout: Duration,
    },
}

/// What the driver and the slots share.
pub(crate) struct Core {
    pub(crate) stats: Arc<InstanceStats>,
    /// Requests served (every one counts for `max_requests_per_instance`).
    pub(crate) served: AtomicU64,
    /// It takes no more requests: it drains, was lost or was stopped.
    closed: AtomicBool,
    /// It was stopped with requests on it.
    lost: AtomicBool,
    /// When it began to drain because a task was abandoned.
    draining_since: Mutex<Option<Instant>>,
    /// Tasks given up at their deadline that still run (the driver's
    /// bookkeeping: it alone adds and removes them).
    abandoned: Mutex<HashSet<GuestTaskId>>,
    /// Each running task's deadline, read by the epoch callback.
    deadlines: TaskDeadlines,
    /// Wakes the driver's loop (it may have drained).
    wake: Notify,
    /// Wakes the driver's watchdog (a drain began).
    watch: Notify,
    /// Requests lent so far (for `max_requests_per_instance`).
    pub(crate) lent: AtomicU64,
    /// The task that last entered guest code: the one that trapped, when
    /// the store traps.
    running: Arc<Mutex<Option<GuestTaskId>>>,
    /// Once the driver has ended with the instance lost: which task
    /// brought it down (when known) and how.
    culprit: OnceLock<Option<(GuestTaskId, Cause)>>,
    /// Tells requests waiting for [`Core::culprit`] that it is set.
    ended: Notify,
    /// When its last request ended.
    last_used: Mutex<Instant>,
    pub(crate) has_pre_freeze: bool,
    /// The function's timeout.
    timeout: Duration,
}

impl Core {
    /// Whether it takes requests.
    pub(crate) fn open(&self) -> bool {
        !self.closed.load(Relaxed)
    }

    /// Whether it was stopped with requests on it.
    pub(crate) fn lost(&self) -> bool {
        self.lost.load(Relaxed)
    }

    /// Takes no more requests; the driver ends once the ones in flight are
    /// done.
    pub(crate) fn close(&self) {
        self.closed.store(true, Relaxed);
        // Both the driver's loop and its watchdog look again (and a permit
        // is left for whichever is not waiting right now).
        self.wake.notify_waiters();
        self.wake.notify_one();
    }

    /// A request was answered 504: its task is given up, and the instance
    /// drains.
    pub(crate) fn drain(&self) {
        self.draining_since.lock().get_or_insert_with(Instant::now);
        self.close();
        self.watch.notify_waiters();
        self.watch.notify_one();
    }

    /// When the driver must stop the store if it is still busy: `timeout`
    /// after the drain began (every request that was in flight then is
    /// past its deadline by that time).
    fn kill_at(&self) -> Option<Instant> {
        self.draining_since
            .lock()
            .map(|since| after(since, self.timeout + Duration::from_millis(100)))
    }

    /// When its last request ended.
    pub(crate) fn last_used(&self) -> Instant {
        *self.last_used.lock()
    }

    pub(crate) fn in_flight(&self) -> u32 {
        self.stats.in_flight.load(Relaxed)
    }

    /// What the request whose guest task is `task` is answered when the
    /// driver dropped it: the trap (or memory limit) when its task brought
    /// the instance down, `instance_lost` otherwise.
    pub(crate) async fn lost_answer(&self, task: Option<GuestTaskId>) -> InvokeError {
        let ended = self.ended.notified();
        tokio::pin!(ended);
        ended.as_mut().enable();
        if self.culprit.get().is_none() {
            // The driver sets it right after dropping the store.
            let _ = tokio::time::timeout(Duration::from_secs(1), ended).await;
        }
        match (self.culprit.get(), task) {
            (Some(Some((culprit, cause))), Some(task)) if *culprit == task => match cause {
                Cause::Memory => InvokeError::MemoryLimit(anyhow::anyhow!(
                    "the instance's memory limit, shared by its requests"
                )),
                // Its own deadline passed while it ran guest code.
                Cause::Deadline => InvokeError::Timeout(self.timeout),
                Cause::Trap => InvokeError::Trap(anyhow::anyhow!("the guest task trapped")),
            },
            _ => InvokeError::InstanceLost("stopped while the request was on it"),
        }
    }
}

/// How the task that brought an instance down failed.
#[derive(Clone, Copy, Debug)]
enum Cause {
    Trap,
    Memory,
    /// The epoch callback stopped it past its deadline.
    Deadline,
}

/// A slot of a WASI 0.3 instance: the right to send it one request. The
/// instance's driver ends when every slot is gone.
pub(crate) struct Shared {
    pub(crate) core: Arc<Core>,
    jobs: mpsc::UnboundedSender<Job>,
}

impl Shared {
    pub(crate) fn id(&self) -> u64 {
        self.core.stats.id
    }

    /// Another slot of the same instance.
    pub(crate) fn another(&self) -> Self {
        Self {
            core: self.core.clone(),
            jobs: self.jobs.clone(),
        }
    }

    /// Sends `job` to the driver; `false` when it has ended.
    pub(crate) fn send(&self, job: Job) -> bool {
        self.jobs.send(job).is_ok()
    }

    /// The way to the driver.
    pub(crate) fn sender(&self) -> mpsc::UnboundedSender<Job> {
        self.jobs.clone()
    }
}

/// A slot lent to a request, given back to its pool when dropped.
pub(crate) struct Slot {
    shared: Option<Shared>,
    pool: Weak<Pool>,
}

impl Slot {
    pub(crate) fn new(shared: Shared, pool: &Arc<Pool>) -> Self {
        Self {
            shared: Some(shared),
            pool: Arc::downgrade(pool),
        }
    }

    pub(crate) fn core(&self) -> Option<&Arc<Core>> {
        self.shared.as_ref().map(|s| &s.core)
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Some(shared) = self.shared.take()
            && let Some(pool) = self.pool.upgrade()
        {
            pool.release_slot(shared);
        }
    }
}

/// What a new WASI 0.3 instance needs from its pool.
pub(crate) struct Start {
    pub(crate) store: Store<StoreData>,
    pub(crate) instance: wasmtime::component::Instance,
    pub(crate) stats: Arc<InstanceStats>,
    pub(crate) metrics: Arc<FunctionMetrics>,
    pub(crate) permits: Permits,
    pub(crate) timeout: Duration,
    pub(crate) hook_timeout: Duration,
}

/// Starts the driver of an instantiated WASI 0.3 component; returns its
/// first slot.
pub(crate) fn spawn(pool: &Arc<Pool>, start: Start) -> Result<Shared, InvokeError> {
    let Start {
        mut store,
        instance,
        stats,
        metrics,
        permits,
        timeout,
        hook_timeout,
    } = start;
    let prepared = &pool.runnable.prepared;
    let funcs = (|| -> wasmtime::Result<Funcs> {
        let handle = prepared
            .http_p3
            .map(|i| instance.get_typed_func(&mut store, i))
            .transpose()?;
        let event = prepared
            .event_handle
            .map(|i| instance.get_typed_func(&mut store, i))
            .transpose()?;
        let hooks = &prepared.hooks;
        Ok(Funcs {
            handle,
            event,
            pre_freeze: hooks
                .pre_freeze
                .map(|i| instance.get_typed_func(&mut store, i))
                .transpose()?,
            pre_stop: hooks
                .pre_stop
                .map(|i| instance.get_typed_func(&mut store, i))
                .transpose()?,
        })
    })()
    .map_err(|e| InvokeError::Instantiate(e.into()))?;
    let deadlines = TaskDeadlines::default();
    // Which task runs guest code, for telling which request trapped.
    let running: Arc<Mutex<Option<GuestTaskId>>> = Arc::default();
    let cell = running.clone();
    store.call_hook(move |mut ctx, hook| {
        if matches!(
            hook,
            wasmtime::CallHook::CallingWasm | wasmtime::CallHook::ReturningFromHost
        ) && let Ok(stack) = ctx.async_call_stack()
            && let Some(root) = stack.last()
        {
            *cell.lock() = Some(root);
        }
        Ok(())
    });
    store.data_mut().task_deadlines = Some(deadlines.clone());
    // One store serves many requests: only the driver's watchdog and the
    // abandoned-task check stop it, never a single request's deadline.
    store.data_mut().deadline = after(Instant::now(), Duration::from_secs(365 * 24 * 3600));
    let core = Arc::new(Core {
        stats,
        served: AtomicU64::new(0),
        closed: AtomicBool::new(false),
        lost: AtomicBool::new(false),
        draining_since: Mutex::new(None),
        abandoned: Mutex::default(),
        deadlines,
        wake: Notify::new(),
        watch: Notify::new(),
        lent: AtomicU64::new(0),
        running: running.clone(),
        culprit: OnceLock::new(),
        ended: Notify::new(),
        last_used: Mutex::new(Instant::now()),
        has_pre_freeze: funcs.pre_freeze.is_some(),
        timeout,
    });
    let (jobs, rx) = mpsc::unbounded_channel();
    let driver = Driver {
        core: core.clone(),
        funcs,
        metrics,
        pool: Arc::downgrade(pool),
        hook_timeout,
    };
    // On the pool's task tracker: shutdown waits for `pre-stop`.
    pool.ctx.background.spawn(driver.run(store, rx, permits));
    Ok(Shared { core, jobs })
}

struct Funcs {
    handle: Option<Handle>,
    event: Option<EventHandle>,
    pre_freeze: Option<HookFunc>,
    pre_stop: Option<HookFunc>,
}

struct Driver {
    core: Arc<Core>,
    funcs: Funcs,
    metrics: Arc<FunctionMetrics>,
    pool: Weak<Pool>,
    hook_timeout: Duration,
}

/// How the driver's event loop ended.
enum End {
    /// Every slot is gone (the pool let the instance go) or it drained.
    Done,
    /// A guest call trapped: the store cannot be entered again.
    Trapped(&'static str),
}

impl Driver {
    async fn run(
        self,
        mut store: Store<StoreData>,
        mut jobs: mpsc::UnboundedReceiver<Job>,
        permits: Permits,
    ) {
        let core = self.core.clone();
        let mut interrupted = false;
        let ended = {
            let run = store.run_concurrent(async |acc| self.serve(acc, &mut jobs).await);
            tokio::pin!(run);
            loop {
                // Armed before reading the drain's start, so that a drain
                // beginning in between is not missed.
                let watch = core.watch.notified();
                tokio::pin!(watch);
                watch.as_mut().enable();
                let kill_at = core.kill_at();
                tokio::select! {
                    biased;
                    ended = &mut run => break match ended {
                        Ok(End::Trapped(reason)) => {
                            core.lost.store(true, Relaxed);
                            End::Trapped(reason)
                        }
                        Ok(end) => end,
                        Err(e) => {
                            core.lost.store(true, Relaxed);
                            interrupted = e.downcast_ref::<wasmtime::Trap>() == Some(&wasmtime::Trap::Interrupt);
                            tracing::debug!(instance = core.stats.id, error = %format!("{e:#}"), "the event loop failed");
                            End::Trapped("the instance's event loop failed")
                        }
                    },
                    () = sleep_until(kill_at) => {
                        core.lost.store(true, Relaxed);
                        *core.running.lock() = None;
                        break End::Trapped("it was still busy past the timeout after a request was given up");
                    }
                    () = watch => {}
                }
            }
        };
        let lost = matches!(ended, End::Trapped(_));
        let culprit = lost
            .then(|| core.running.lock().take())
            .flatten()
            .map(|task| {
                let cause = if interrupted {
                    Cause::Deadline
                } else if store.data().limiter.limit_hit() {
                    Cause::Memory
                } else {
                    Cause::Trap
                };
                (task, cause)
            });
        let _ = core.culprit.set(culprit);
        core.ended.notify_waiters();
        if let End::Trapped(reason) = ended {
            tracing::warn!(
                instance = core.stats.id,
                reason,
                "a WASI 0.3 instance was stopped; the requests still on it are answered 503 instance_lost"
            );
        }
        core.close();
        core.stats.set_state(InstanceState::Stopping);
        // The requests still waiting in the queue get their answer.
        jobs.close();
        while let Ok(job) = jobs.try_recv() {
            refuse(job, lost);
        }
        if let Some(pool) = self.pool.upgrade() {
            pool.purge_slots(core.stats.id);
        }
        if !lost
            && let Some(pre_stop) = self.funcs.pre_stop
            && core.draining_since.lock().is_none()
        {
            let timeout = self.hook_timeout;
            let start = Instant::now();
            let result = tokio::time::timeout(
                timeout,
                store.run_concurrent(async |acc| pre_stop.call_concurrent(acc, ()).await),
            )
            .await;
            let failed = !matches!(result, Ok(Ok(Ok(()))));
            self.record_hook(Hook::PreStop, start.elapsed(), failed);
        }
        drop(store);
        drop(permits);
        if let Some(pool) = self.pool.upgrade() {
            pool.unregister(core.stats.id);
        }
    }

    /// The event loop: takes jobs while it is open, and serves them
    /// concurrently.
    async fn serve(
        &self,
        acc: &Accessor<StoreData>,
        jobs: &mut mpsc::UnboundedReceiver<Job>,
    ) -> End {
        let mut calls = FuturesUnordered::new();
        loop {
            if !self.core.open() && self.drained() {
                return End::Done;
            }
            tokio::select! {
                biased;
                Some(result) = calls.next(), if !calls.is_empty() => {
                    if let Err(reason) = result {
                        return End::Trapped(reason);
                    }
                }
                job = jobs.recv() => match job {
                    None => {
                        // Every slot is gone: finish what runs, then end.
                        while let Some(result) = calls.next().await {
                            if let Err(reason) = result {
                                return End::Trapped(reason);
                            }
                        }
                        return End::Done;
                    }
                    Some(Job::Hook { hook, timeout }) => {
                        if let Err(reason) = self.hook(acc, hook, timeout).await {
                            return End::Trapped(reason);
                        }
                    }
                    Some(job) => calls.push(self.call(acc, job)),
                },
                () = self.core.wake.notified() => {}
            }
        }
    }

    /// Whether only abandoned tasks (or nothing) are left.
    fn drained(&self) -> bool {
        self.core.in_flight() as usize <= self.core.abandoned.lock().len()
    }

    /// Runs one request; `Err` when the store trapped.
    async fn call(&self, acc: &Accessor<StoreData>, job: Job) -> Result<(), &'static str> {
        match job {
            Job::Http {
                request,
                reply,
                slot,
                task,
                deadline,
                hops,
                limit,
            } => {
                let Some(handle) = self.funcs.handle else {
                    let _ = reply.send(Err(InvokeError::NotHttp));
                    return Ok(());
                };
                // Nobody waits for it any more (its deadline passed while it
                // queued, or the client went): not started at all.
                if reply.is_closed() || Instant::now() >= deadline {
                    return Ok(());
                }
                let start = Instant::now();
                // A server request's URI has no authority: the guest sees
                // the Host header's (as WASI 0.2 guests do).
                let authority = request.uri().authority().cloned().or_else(|| {
                    request
                        .headers()
                        .get(http::header::HOST)
                        .and_then(|h| h.to_str().ok())
                        .and_then(|h| h.parse().ok())
                });
                let (mut req, io) = wasmtime_wasi_http::p3::Request::from_http(
                    crate::host::outbound::incoming_hooks(),
                    request,
                );
                req.scheme = Some(http::uri::Scheme::HTTP);
                req.authority = Some(
                    authority.unwrap_or_else(|| http::uri::Authority::from_static("localhost")),
                );
                let started = acc.with(|mut s| -> wasmtime::Result<_> {
                    let data = s.data_mut();
                    data.outbound.join_call(hops);
                    let req = data.http().table.push(req)?;
                    handle.start_call_concurrent(s.as_context_mut(), (req,))
                });
                let started = started.map(|call| (call, io));
                let (call, io) = match started {
                    Ok(started) => started,
                    Err(e) => {
                        acc.with(|mut s| s.data_mut().outbound.leave_call());
                        let _ = reply.send(Err(InvokeError::BadRequest(format!("{e:#}"))));
                        return Ok(());
                    }
                };
                let _ = task.set(call.task());
                self.core.deadlines.lock().insert(call.task(), deadline);
                let mut reply = Some(reply);
                let finished = self
                    .finish(
                        acc,
                        handle.finish_call_concurrent(acc, call),
                        call_task(&task),
                        deadline,
                        &mut reply,
                    )
                    .await;
                let outcome = match finished {
                    Ok((Ok(response),)) => acc.with(|mut s| {
                        let response = s.data_mut().http().table.delete(response)?;
                        response.into_http(&mut s, io)
                    }),
                    Ok((Err(code),)) => {
                        answer(
                            &mut reply,
                            Err(InvokeError::GuestError(format!("{code:?}"))),
                        );
                        self.ended(acc, start);
                        return Ok(());
                    }
                    Err(Failure::Abandoned) => {
                        self.ended(acc, start);
                        answer(&mut reply, Err(InvokeError::Timeout(self.core.timeout)));
                        return Ok(());
                    }
                    Err(Failure::Trap(e)) => {
                        answer(&mut reply, Err(e));
                        return Err("a request trapped");
                    }
                };
                self.ended(acc, start);
                match outcome {
                    Ok(response) => {
                        let declared = response
                            .headers()
                            .get(http::header::CONTENT_LENGTH)
                            .and_then(|v| v.to_str().ok())
                            .and_then(|v| v.parse().ok());
                        let response = response.map(|body| {
                            GuestBody::new(body, CallEnd::Shared(slot), limit, declared)
                        });
                        answer(&mut reply, Ok(response));
                    }
                    Err(e) => {
                        answer(&mut reply, Err(InvokeError::Internal(e.into())));
                    }
                }
                Ok(())
            }
            Job::Event {
                context,
                fired,
                payload,
                reply,
                slot,
                task,
                deadline,
            } => {
                let _slot = slot;
                let Some(handle) = self.funcs.event else {
                    let _ = reply.send(Err(InvokeError::NotEvent));
                    return Ok(());
                };
                if reply.is_closed() || Instant::now() >= deadline {
                    return Ok(());
                }
                let start = Instant::now();
                // What `floe:function/trigger` answers for this request,
                // while it runs.
                let fired_key = fired.map(|fired| {
                    let key = context.request_id.clone();
                    acc.with(|mut s| s.data_mut().fired.insert(key.clone(), fired));
                    key
                });
                let call = acc.with(|mut s| {
                    s.data_mut().outbound.join_call(0);
                    let call = handle.start_call_concurrent(s.as_context_mut(), (context, payload));
                    if call.is_err() {
                        s.data_mut().outbound.leave_call();
                    }
                    call
                });
                let call = match call {
                    Ok(call) => call,
                    Err(e) => {
                        if let Some(key) = &fired_key {
                            acc.with(|mut s| s.data_mut().fired.remove(key));
                        }
                        let _ = reply.send(Err(InvokeError::Internal(e.into())));
                        return Ok(());
                    }
                };
                let _ = task.set(call.task());
                self.core.deadlines.lock().insert(call.task(), deadline);
                let mut reply = Some(reply);
                let finished = self
                    .finish(
                        acc,
                        handle.finish_call_concurrent(acc, call),
                        call_task(&task),
                        deadline,
                        &mut reply,
                    )
                    .await;
                self.ended(acc, start);
                if let Some(key) = fired_key {
                    acc.with(|mut s| s.data_mut().fired.remove(&key));
                }
                match finished {
                    Ok((result,)) => {
                        answer(&mut reply, Ok(result));
                        Ok(())
                    }
                    Err(Failure::Abandoned) => {
                        answer(&mut reply, Err(InvokeError::Timeout(self.core.timeout)));
                        Ok(())
                    }
                    Err(Failure::Trap(e)) => {
                        answer(&mut reply, Err(e));
                        Err("a request trapped")
                    }
                }
            }
            Job::Hook { .. } => Ok(()),
        }
    }

    /// Waits for a guest call; past `deadline` the task is abandoned (its
    /// request has been answered 504) and followed until it ends.
    async fn finish<R, T>(
        &self,
        acc: &Accessor<StoreData>,
        call: impl Future<Output = wasmtime::Result<R>>,
        task: Option<GuestTaskId>,
        deadline: Instant,
        reply: &mut Option<oneshot::Sender<Result<T, InvokeError>>>,
    ) -> Result<R, Failure> {
        tokio::pin!(call);
        let result = tokio::select! {
            result = &mut call => Some(result),
            () = tokio::time::sleep_until(deadline.into()) => None,
        };
        let (result, abandoned) = match result {
            Some(result) => (result, false),
            None => {
                if let Some(task) = task {
                    self.core.abandoned.lock().insert(task);
                }
                // Answered now, whatever becomes of the task.
                answer(reply, Err(InvokeError::Timeout(self.core.timeout)));
                self.core.drain();
                (call.await, true)
            }
        };
        if let Some(task) = task {
            self.core.abandoned.lock().remove(&task);
            self.core.deadlines.lock().remove(&task);
        }
        // It may have been the last one the drain waited for.
        self.core.wake.notify_one();
        match result {
            Ok(_) if abandoned => Err(Failure::Abandoned),
            Ok(r) => Ok(r),
            Err(e) => {
                let limit_hit = acc.with(|mut s| s.data_mut().limiter.limit_hit());
                Err(Failure::Trap(classify_with(
                    e,
                    limit_hit,
                    self.core.timeout,
                    Phase::Call,
                )))
            }
        }
    }

    /// Records the end of a request's guest call.
    fn ended(&self, acc: &Accessor<StoreData>, start: Instant) {
        let took = start.elapsed();
        let (memory, resources) = acc.with(|mut s| {
            let data = s.data_mut();
            data.outbound.leave_call();
            (data.limiter.memory_used(), data.resource_count())
        });
        let stats = &self.core.stats;
        stats.record_request(took, memory, resources);
        stats.meter.invocation(took, stats.memory_mib);
        self.metrics.meter.invocation(took, stats.memory_mib);
        *self.core.last_used.lock() = Instant::now();
    }

    /// Runs a hook alone (no request is in flight for `pre-freeze`).
    async fn hook(
        &self,
        acc: &Accessor<StoreData>,
        hook: Hook,
        timeout: Duration,
    ) -> Result<(), &'static str> {
        let func = match hook {
            Hook::PreFreeze => self.funcs.pre_freeze,
            Hook::PreStop => self.funcs.pre_stop,
            Hook::Init => None,
        };
        let Some(func) = func else { return Ok(()) };
        let stats = &self.core.stats;
        stats.set_state(InstanceState::Freezing);
        let start = Instant::now();
        let deadline = after(start, timeout);
        let call = acc.with(|mut s| func.start_call_concurrent(s.as_context_mut(), ()));
        let result = match call {
            Ok(call) => {
                // A hook that spins past its time is stopped by the epoch
                // callback: the timer below is not polled while it spins.
                let task = call.task();
                self.core.deadlines.lock().insert(task, deadline);
                let result =
                    tokio::time::timeout(timeout, func.finish_call_concurrent(acc, call)).await;
                self.core.deadlines.lock().remove(&task);
                result
            }
            Err(e) => Ok(Err(e)),
        };
        let failed = !matches!(result, Ok(Ok(())));
        self.record_hook(hook, start.elapsed(), failed);
        if self.core.in_flight() == 0 {
            stats.set_state(InstanceState::Frozen);
        } else {
            stats.set_state(InstanceState::Busy);
        }
        match result {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err("pre-freeze trapped"),
            Err(_) => Err("pre-freeze ran past hook_timeout"),
        }
    }

    fn record_hook(&self, hook: Hook, took: Duration, failed: bool) {
        let stats = &self.core.stats;
        stats.record_hook(hook, took, failed);
        stats.meter.hook(took, stats.memory_mib);
        self.metrics.record_hook(hook, took, failed);
        self.metrics.meter.hook(took, stats.memory_mib);
    }
}

enum Failure {
    /// The request was answered 504; its task has ended since.
    Abandoned,
    /// The call trapped (or hit a limit): the store is gone.
    Trap(InvokeError),
}

/// Sends `value` to the request, unless it was answered already.
fn answer<T>(reply: &mut Option<oneshot::Sender<T>>, value: T) {
    if let Some(reply) = reply.take() {
        let _ = reply.send(value);
    }
}

fn call_task(task: &OnceLock<GuestTaskId>) -> Option<GuestTaskId> {
    task.get().copied()
}

/// Answers a job the driver will not run.
fn refuse(job: Job, lost: bool) {
    let error = || {
        if lost {
            InvokeError::InstanceLost("stopped before the request started")
        } else {
            InvokeError::InstanceLost("the instance ended before the request started")
        }
    };
    match job {
        Job::Http { reply, .. } => {
            let _ = reply.send(Err(error()));
        }
        Job::Event { reply, .. } => {
            let _ = reply.send(Err(error()));
        }
        Job::Hook { .. } => {}
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}
