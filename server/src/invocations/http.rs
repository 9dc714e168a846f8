//! Events that arrive over HTTP (`POST /{name}` on the data plane, `POST
//! /v1/functions/{name}/invoke` on the control plane): run now, or, with
//! `Prefer: respond-async` or `?mode=async`, stored durably and answered
//! `202 Accepted` with the invocation's id and a `Location` to poll.

use super::{Invocations, Submission, SubmitError};
use crate::invoke::{Call, PayloadError, ResponseBody, event_response, failure_response, reject};
use crate::pool::DEFAULT_RETRY_AFTER;
use crate::status::{ErrorCode, error_response};
use bytes::Bytes;
use http::header::{CONTENT_TYPE, LOCATION};
use http::{HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::Full;

/// Which front end an event came in by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Front {
    /// The data plane: anyone who can reach it.
    DataPlane,
    /// The control plane: a token holder.
    ControlPlane,
}

/// What an async request asked for.
#[derive(Debug, Default)]
pub(super) struct AsyncRequest {
    idempotency_key: Option<String>,
    on_success: Option<String>,
    on_failure: Option<String>,
}

impl AsyncRequest {
    /// `Some` when `request` asks to be run asynchronously.
    pub(super) fn of<B>(request: &Request<B>) -> Result<Option<Self>, String> {
        let prefer = request
            .headers()
            .get_all("prefer")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|p| p.trim().eq_ignore_ascii_case("respond-async"));
        let mut this = Self::default();
        let mut mode_async = false;
        let query = request.uri().query().unwrap_or_default();
        for (key, value) in form_urlencoded::parse(query.as_bytes()) {
            match key.as_ref() {
                "mode" if value == "async" => mode_async = true,
                "mode" if value == "sync" => {}
                "mode" => return Err(format!("mode {value:?} is not `sync` or `async`")),
                "on_success" => this.on_success = Some(value.into_owned()),
                "on_failure" => this.on_failure = Some(value.into_owned()),
                _ => {}
            }
        }
        if !(prefer || mode_async) {
            if this.on_success.is_some() || this.on_failure.is_some() {
                return Err("destinations (on_success, on_failure) need mode=async".into());
            }
            return Ok(None);
        }
        this.idempotency_key = match request.headers().get("idempotency-key") {
            None => None,
            Some(v) => Some(
                v.to_str()
                    .map_err(|_| "Idempotency-Key must be printable ASCII".to_owned())?
                    .to_owned(),
            ),
        };
        Ok(Some(this))
    }
}

impl Invocations {
    /// Serves an event that arrived over HTTP on `call`'s function: the
    /// body is the payload; the answer is the function's output, or `202`
    /// when the request asked to run asynchronously.
    pub async fn serve_event<B>(
        &self,
        call: &Call<'_>,
        request: Request<B>,
        front: Front,
    ) -> Response<ResponseBody>
    where
        B: http_body::Body<Data = Bytes> + Send + Unpin + 'static,
        B::Error: std::fmt::Display,
    {
        let request_id = call.request_id();
        if request.method() != Method::POST {
            return reject(
                ErrorCode::MethodNotAllowed,
                "an event function takes POST, with the payload as the body",
                request_id,
            );
        }
        let content_type = request
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let async_request = match AsyncRequest::of(&request) {
            Ok(a) => a,
            Err(message) => return reject(ErrorCode::BadRequest, &message, request_id),
        };
        // Nothing is read, let alone stored, for an async request the data
        // plane may not take.
        if let Some(a) = &async_request
            && front == Front::DataPlane
            && let Err(e) = self.data_plane_may_store(call, a)
        {
            return reject(e.code(), &e.to_string(), request_id);
        }
        let payload = match call.payload(request).await {
            Ok(payload) => payload,
            Err(PayloadError::TooLarge(e)) => return failure_response(&e, request_id),
            Err(PayloadError::Unreadable) => {
                return reject(
                    ErrorCode::BadRequest,
                    "reading the payload failed",
                    request_id,
                );
            }
        };
        match async_request {
            Some(a) => self.accept(call, a, payload, content_type).await,
            None => event_response(call.event(&payload, content_type, None).await, request_id),
        }
    }

    /// Whether the data plane may accept `request` for later: the function
    /// and its destinations must all have `async = true`.
    fn data_plane_may_store(
        &self,
        call: &Call<'_>,
        request: &AsyncRequest,
    ) -> Result<(), SubmitError> {
        if !call.function().pool.settings().async_invocations {
            return Err(SubmitError::NotAsync);
        }
        for dest in [&request.on_success, &request.on_failure]
            .into_iter()
            .flatten()
        {
            let open = self
                .registry
                .get(dest)
                .is_some_and(|f| f.pool.settings().async_invocations);
            if !open {
                return Err(SubmitError::BadRequest(format!(
                    "destination {dest:?} is not a function that takes async invocations here"
                )));
            }
        }
        Ok(())
    }

    async fn accept(
        &self,
        call: &Call<'_>,
        request: AsyncRequest,
        payload: Bytes,
        content_type: Option<String>,
    ) -> Response<ResponseBody> {
        let submission = Submission {
            function: call.function().name.to_string(),
            payload,
            content_type,
            idempotency_key: request.idempotency_key,
            on_success: request.on_success,
            on_failure: request.on_failure,
            fired: None,
        };
        match self.submit(submission).await {
            Ok(accepted) => {
                let body = serde_json::to_vec(&accepted).unwrap_or_default();
                let mut response = Response::new(ResponseBody::Full(Full::new(Bytes::from(body))));
                *response.status_mut() = StatusCode::ACCEPTED;
                let headers = response.headers_mut();
                headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
                if let Ok(location) =
                    HeaderValue::from_str(&format!("/v1/invocations/{}", accepted.id))
                {
                    headers.insert(LOCATION, location);
                }
                response
            }
            Err(e) => {
                let code = e.code();
                if code == ErrorCode::Internal {
                    tracing::error!(function = %call.function().name, error = %e, "accepting an async invocation failed");
                }
                let retry_after =
                    matches!(e, SubmitError::QueueFull(_) | SubmitError::StorageFull(_))
                        .then_some(DEFAULT_RETRY_AFTER);
                error_response(code, &e.to_string(), call.request_id(), retry_after, None)
                    .map(ResponseBody::Full)
            }
        }
    }
}
