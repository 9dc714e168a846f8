//! A [`Lease`] is one instance lent to one request.
//!
//! [`Lease::handle`] turns the HTTP request into wasi-http resources in the
//! instance's store, runs the guest's `handle` export on its own task, and
//! returns the response as soon as the guest sets it, while the guest goes on
//! writing the body. When the call ends the task gives the instance back to
//! the pool, or discards it if it failed.

use super::body::{CallEnd, GuestBody};
use super::instance::{Instance, Whole};
use super::shared::{Core, Job, Slot};
use super::{InvokeError, Pool};
use crate::bindings::event;
use crate::host::Fired;
use bytes::Bytes;
use http_body_util::BodyExt as _;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, ready};
use std::time::Instant;
use tokio::sync::oneshot;
use wasmtime::component::GuestTaskId;
use wasmtime_wasi_http::WasiHttpView;
use wasmtime_wasi_http::p2::bindings::http::types::Scheme;

/// How a guest call ended.
#[derive(Debug)]
pub enum CallOutcome {
    /// `handle` returned normally.
    Completed,
    /// It trapped, timed out or hit a limit.
    Failed(InvokeError),
}

/// An instance lent to one request. Dropping an unused lease gives the
/// instance back.
pub struct Lease {
    instance: Option<Instance>,
    pool: Arc<Pool>,
}

impl std::fmt::Debug for Lease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lease")
            .field("function", &self.pool.function)
            .field("version", &self.pool.version)
            .field("instance", &self.instance_id())
            .finish()
    }
}

impl Lease {
    pub(crate) fn new(instance: Instance, pool: Arc<Pool>) -> Self {
        Self {
            instance: Some(instance),
            pool,
        }
    }

    /// The leased instance's id.
    pub fn instance_id(&self) -> u64 {
        self.instance.as_ref().map_or(0, Instance::id)
    }

    /// Handles one request. `deadline` bounds the guest's work; the response
    /// may still stream after this returns.
    pub async fn handle<B>(
        mut self,
        request: http::Request<B>,
        deadline: Instant,
    ) -> Result<http::Response<GuestBody>, InvokeError>
    where
        B: http_body::Body<Data = Bytes, Error = wasmtime_wasi_http::Error> + Send + 'static,
    {
        match self.instance.take() {
            Some(Instance::Whole(whole)) => self.handle_whole(*whole, request, deadline).await,
            Some(Instance::Shared(shared)) => {
                let pool = self.pool.clone();
                let timeout = pool.settings.timeout.0;
                let core = shared.core.clone();
                let jobs = shared.sender();
                let task = Arc::new(OnceLock::new());
                let (reply, rx) = oneshot::channel();
                let job = Job::Http {
                    hops: crate::host::outbound::hops_of(request.headers()),
                    request: request.map(|b| b.boxed_unsync()),
                    reply,
                    slot: Slot::new(shared, &pool),
                    task: task.clone(),
                    deadline,
                    limit: pool.settings.max_response_body.bytes(),
                };
                shared_reply(jobs.send(job).is_ok(), rx, &core, &task, deadline, timeout).await?
            }
            None => Err(InvokeError::Internal(anyhow::anyhow!("lease used twice"))),
        }
    }

    async fn handle_whole<B>(
        &mut self,
        mut instance: Whole,
        request: http::Request<B>,
        deadline: Instant,
    ) -> Result<http::Response<GuestBody>, InvokeError>
    where
        B: http_body::Body<Data = Bytes, Error = wasmtime_wasi_http::Error> + Send + 'static,
    {
        let pool = self.pool.clone();
        let timeout = pool.settings.timeout.0;
        let hops = crate::host::outbound::hops_of(request.headers());
        let response_limit = pool.settings.max_response_body.bytes();

        let (response_tx, mut response_rx) = oneshot::channel();
        // Whether the guest set a response: one that returns without doing so
        // is broken (it will not answer the next request either) and retired.
        let responded = Arc::new(AtomicBool::new(false));
        let set = responded.clone();
        let resources = {
            let mut http = instance.store.data_mut().http();
            http.new_incoming_request(Scheme::Http, request)
                .and_then(|req| {
                    let out = http.new_response_outparam_from_callback(move |response| {
                        set.store(true, Ordering::Relaxed);
                        let _ = response_tx.send(response);
                    })?;
                    Ok((req, out))
                })
        };
        let (req, out) = match resources {
            Ok(r) => r,
            Err(e) => {
                pool.release(instance, &CallOutcome::Completed);
                return Err(InvokeError::BadRequest(format!("{e:#}")));
            }
        };

        let mut call = InlineCall(Some(Box::pin(async move {
            let answered_before = instance.answered > 0;
            let mut outcome = instance.call_http(req, out, deadline, timeout, hops).await;
            if matches!(outcome, CallOutcome::Completed) {
                if responded.load(Ordering::Relaxed) {
                    instance.answered += 1;
                } else {
                    // It answered before and not now: a component that
                    // answers one request per instance.
                    // Served again elsewhere only when this call reached
                    // nothing outside: no side effect is repeated.
                    let quiet = instance.store.data().outbound.requests_made() == 0;
                    outcome = CallOutcome::Failed(
                        if answered_before && pool.answers_once(instance.id()) && quiet {
                            InvokeError::AnswersOnce
                        } else {
                            InvokeError::NoResponse
                        },
                    );
                }
            }
            pool.release(instance, &outcome);
            outcome
        })));

        tokio::select! {
            biased;
            // Most calls end before anyone has to wait for them: the guest
            // sets the response, writes a body that fits the channel, and
            // returns, all in this first poll, on this task.
            outcome = &mut call => match response_rx.try_recv() {
                // Nothing has gone to the client yet: a failed call answers
                // with its failure, whatever head the guest had set.
                _ if matches!(outcome, CallOutcome::Failed(_)) => Err(failure(outcome)),
                Ok(Ok(response)) => Ok(guest_response(response, CallEnd::Known(Some(outcome)), response_limit)),
                Ok(Err(code)) => Err(InvokeError::GuestError(format!("{code:?}"))),
                Err(_) => Err(failure(outcome)),
            },
            response = &mut response_rx => match response {
                // The head is ready while the guest still writes the body:
                // the guest goes on on a task of its own.
                Ok(Ok(response)) => {
                    let end = call.detach();
                    Ok(guest_response(response, CallEnd::Later(end), response_limit))
                }
                Ok(Err(code)) => Err(InvokeError::GuestError(format!("{code:?}"))),
                // The outparam is gone without a response: the call is ending.
                Err(_) => Err(failure(call.await)),
            },
        }
    }
}

type CallFuture = Pin<Box<dyn Future<Output = CallOutcome> + Send>>;

/// A guest call run on the request's own task. It moves to a task of its
/// own when the response must go out before the call ends ([`Self::detach`]),
/// or when it is dropped unfinished (the client went away): a guest always
/// runs to completion (or its timeout), and its instance goes back to the
/// pool.
struct InlineCall(Option<CallFuture>);

impl InlineCall {
    /// Runs the rest of the call on its own task; the receiver gets its
    /// outcome.
    fn detach(&mut self) -> oneshot::Receiver<CallOutcome> {
        let (tx, rx) = oneshot::channel();
        if let Some(call) = self.0.take() {
            tokio::spawn(async move {
                let _ = tx.send(call.await);
            });
        }
        rx
    }
}

impl Future for InlineCall {
    type Output = CallOutcome;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<CallOutcome> {
        let Some(call) = self.0.as_mut() else {
            return Poll::Pending;
        };
        let outcome = ready!(call.as_mut().poll(cx));
        self.0 = None;
        Poll::Ready(outcome)
    }
}

impl Drop for InlineCall {
    fn drop(&mut self) {
        if let Some(call) = self.0.take()
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            runtime.spawn(call);
        }
    }
}

impl Lease {
    /// Handles one event: `payload` in, the function's bytes out, within
    /// `deadline`.
    pub async fn invoke_event(
        mut self,
        context: &event::Context,
        fired: Option<&Fired>,
        payload: &[u8],
        deadline: Instant,
    ) -> Result<EventReply, InvokeError> {
        let pool = self.pool.clone();
        let timeout = pool.settings.timeout.0;
        let limit = pool.settings.max_response_body.bytes();
        let mut instance = match self.instance.take() {
            Some(Instance::Whole(whole)) => *whole,
            Some(Instance::Shared(shared)) => {
                let core = shared.core.clone();
                let jobs = shared.sender();
                let task = Arc::new(OnceLock::new());
                let (reply, rx) = oneshot::channel();
                let job = Job::Event {
                    context: context.clone(),
                    fired: fired.cloned(),
                    payload: payload.to_vec(),
                    reply,
                    slot: Slot::new(shared, &pool),
                    task: task.clone(),
                    deadline,
                };
                let result =
                    shared_reply(jobs.send(job).is_ok(), rx, &core, &task, deadline, timeout)
                        .await??;
                return event_reply(CallOutcome::Completed, Some(result), limit);
            }
            None => return Err(InvokeError::Internal(anyhow::anyhow!("lease used twice"))),
        };
        // The call runs on a task of its own so that a caller going away
        // cannot cut it (the instance would be lost, and its state torn).
        let task = tokio::spawn({
            let context = context.clone();
            let fired = fired.cloned();
            let payload = payload.to_vec();
            async move {
                let (outcome, result) = instance
                    .call_event(&context, fired.as_ref(), &payload, deadline, timeout)
                    .await;
                pool.release(instance, &outcome);
                (outcome, result)
            }
        });
        let (outcome, result) = task.await.map_err(|e| {
            InvokeError::Internal(anyhow::anyhow!("the event call's task failed: {e}"))
        })?;
        event_reply(outcome, result, limit)
    }
}

/// Waits for a WASI 0.3 instance's answer to a job (`sent`: it reached the
/// driver). Past `deadline` the request answers 504 and its guest task is
/// abandoned (see `shared`).
async fn shared_reply<R>(
    sent: bool,
    rx: oneshot::Receiver<R>,
    core: &Core,
    task: &OnceLock<GuestTaskId>,
    deadline: Instant,
    timeout: std::time::Duration,
) -> Result<R, InvokeError> {
    if !sent {
        return Err(InvokeError::InstanceLost("the instance had ended"));
    }
    match tokio::time::timeout_at(deadline.into(), rx).await {
        Ok(Ok(reply)) => Ok(reply),
        // Its deadline passed meanwhile: that is its answer.
        Ok(Err(_)) if Instant::now() >= deadline => Err(InvokeError::Timeout(timeout)),
        Ok(Err(_)) => Err(core.lost_answer(task.get().copied()).await),
        Err(_) => {
            // The driver gives the task up too, when it is not stuck in a
            // spin (which the epoch callback ends).
            core.drain();
            Err(InvokeError::Timeout(timeout))
        }
    }
}

/// What an event call's outcome and result answer.
fn event_reply(
    outcome: CallOutcome,
    result: Option<Result<Vec<u8>, event::Error>>,
    limit: u64,
) -> Result<EventReply, InvokeError> {
    {
        match (outcome, result) {
            (CallOutcome::Failed(e), _) => Err(e),
            (CallOutcome::Completed, Some(Ok(bytes))) if bytes.len() as u64 > limit => {
                Err(InvokeError::ResponseTooLarge { limit })
            }
            (CallOutcome::Completed, Some(Ok(bytes))) => Ok(EventReply::Output(bytes)),
            (CallOutcome::Completed, Some(Err(event::Error::InvalidInput(message)))) => {
                Ok(EventReply::InvalidInput(message))
            }
            (CallOutcome::Completed, Some(Err(event::Error::Failed(message)))) => {
                Ok(EventReply::Failed(message))
            }
            (CallOutcome::Completed, None) => Err(InvokeError::NoResponse),
        }
    }
}

/// What an event function answered.
#[derive(Debug)]
pub enum EventReply {
    /// Its output bytes.
    Output(Vec<u8>),
    /// It refused the payload (`error.invalid-input`).
    InvalidInput(String),
    /// It failed (`error.failed`).
    Failed(String),
}

/// The guest's response, with its body guarded by the call's outcome.
fn guest_response(
    response: http::Response<wasmtime_wasi_http::p2::body::HyperOutgoingBody>,
    end: CallEnd,
    limit: u64,
) -> http::Response<GuestBody> {
    let declared = response
        .headers()
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    response.map(|body| GuestBody::new(body, end, limit, declared))
}

fn failure(outcome: CallOutcome) -> InvokeError {
    match outcome {
        CallOutcome::Completed => InvokeError::NoResponse,
        CallOutcome::Failed(err) => err,
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        match self.instance.take() {
            Some(Instance::Whole(whole)) => self.pool.release(*whole, &CallOutcome::Completed),
            Some(Instance::Shared(shared)) => self.pool.release_slot(shared),
            None => {}
        }
    }
}
