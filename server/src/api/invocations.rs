//! `/v1/invocations`: the state, result and dead letters of async
//! invocations.

use super::{ApiError, ApiState};
use crate::invocations::{InvocationRecord, Status};
use crate::status::ErrorCode;
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

/// Most invocations one listing returns.
const MAX_LIST: usize = 1000;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ListQuery {
    status: Option<Status>,
    function: Option<String>,
    limit: Option<usize>,
}

/// `GET /v1/invocations?status=dead&function=NAME&limit=N`: newest first.
/// `status=dead` lists the dead-letter store.
pub(super) async fn list(
    State(state): State<ApiState>,
    Query(q): Query<ListQuery>,
) -> Json<serde_json::Value> {
    let limit = q.limit.unwrap_or(100).min(MAX_LIST);
    let list = state
        .invocations
        .list(q.status, q.function.as_deref(), limit)
        .await;
    Json(json!({
        "queue_depth": state.invocations.depth(),
        "invocations": list,
    }))
}

/// `GET /v1/invocations/{id}`: status, attempts, error, result size.
pub(super) async fn show(
    State(state): State<ApiState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    Ok(Json(record(&state, &id).await?).into_response())
}

/// `GET /v1/invocations/{id}/result`: the bytes the function returned.
pub(super) async fn result(
    State(state): State<ApiState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let record = record(&state, &id).await?;
    if record.status != Status::Succeeded {
        return Err(ApiError::new(
            ErrorCode::Conflict,
            format!(
                "the invocation has no result (it is {})",
                serde_json::to_value(record.status)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default()
            ),
        ));
    }
    let bytes = state
        .invocations
        .result(&id)
        .await
        .ok_or_else(|| ApiError::new(ErrorCode::Internal, "the stored result is missing"))?;
    Ok(([(header::CONTENT_TYPE, "application/octet-stream")], bytes).into_response())
}

async fn record(state: &ApiState, id: &str) -> Result<InvocationRecord, ApiError> {
    state
        .invocations
        .get(id)
        .await
        .ok_or_else(|| ApiError::new(ErrorCode::NotFound, "no such invocation"))
}
