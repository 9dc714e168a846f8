//! Async invocation requests: `POST /{name}` with `Prefer: respond-async`
//! on the data plane, or `?mode=async` on either plane. The payload is
//! stored durably, then `202 Accepted` answers with the invocation's id and
//! a `Location` to poll.

use super::{DataPlane, ResponseBody, reject};
use crate::invocations::{Submission, SubmitError};
use crate::pool::DEFAULT_RETRY_AFTER;
use crate::registry::Function;
use crate::status::{ErrorCode, error_response};
use bytes::Bytes;
use http::header::LOCATION;
use http::{HeaderValue, Request, Response, StatusCode};
use http_body_util::Full;

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
        for (key, value) in request.uri().query().map(form_pairs).unwrap_or_default() {
            match key.as_str() {
                "mode" if value == "async" => mode_async = true,
                "mode" if value == "sync" => {}
                "mode" => return Err(format!("mode {value:?} is not `sync` or `async`")),
                "on_success" => this.on_success = Some(value),
                "on_failure" => this.on_failure = Some(value),
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

fn form_pairs(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (k.to_owned(), v.to_owned())
        })
        .collect()
}

impl DataPlane {
    pub(super) async fn accept_async(
        &self,
        function: &Function,
        request: AsyncRequest,
        payload: Bytes,
        content_type: Option<String>,
        request_id: &str,
    ) -> Response<ResponseBody> {
        let Some(invocations) = self.invocations.get() else {
            return reject(
                ErrorCode::BadRequest,
                "async invocations are not enabled on this server",
                request_id,
            );
        };
        let submission = Submission {
            function: function.name.to_string(),
            payload,
            content_type,
            idempotency_key: request.idempotency_key,
            on_success: request.on_success,
            on_failure: request.on_failure,
        };
        match invocations.submit(submission).await {
            Ok(accepted) => {
                let body = serde_json::to_vec(&accepted).unwrap_or_default();
                let mut response = Response::new(ResponseBody::Full(Full::new(Bytes::from(body))));
                *response.status_mut() = StatusCode::ACCEPTED;
                let headers = response.headers_mut();
                headers.insert(
                    http::header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                );
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
                    tracing::error!(function = %function.name, error = %e, "accepting an async invocation failed");
                }
                let retry_after =
                    matches!(e, SubmitError::QueueFull(_)).then_some(DEFAULT_RETRY_AFTER);
                error_response(code, &e.to_string(), request_id, retry_after, None)
                    .map(ResponseBody::Full)
            }
        }
    }
}
