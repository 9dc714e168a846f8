//! `/v1/invocations`: the state, result and dead letters of async
//! invocations. A deploy token sees only the invocations of the functions
//! its prefix reaches.

use super::{ApiError, ApiState, Caller};
use crate::invocations::{InvocationRecord, Status};
use crate::status::ErrorCode;
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, Uri, header};
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
    caller: Caller,
    Query(q): Query<ListQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let limit = q.limit.unwrap_or(100).min(MAX_LIST);
    if let Some(function) = q.function.as_deref() {
        reachable(&caller, function)?;
    }
    let wanted = |f: &str| q.function.as_deref().is_none_or(|w| f == w) && caller.may_reach(f);
    let list = state.invocations.list(q.status, wanted, limit).await;
    Ok(Json(json!({
        "queue_depth": state.invocations.depth(),
        "invocations": list,
    })))
}

/// `GET /v1/invocations/{id}`: status, attempts, error, result size. In a
/// cluster, an invocation another node owns is asked of that node.
pub(super) async fn show(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    if let Some(answer) = forward(&state, &id, &uri, &headers).await {
        return answer;
    }
    Ok(Json(record(&state, &caller, &id).await?).into_response())
}

/// `GET /v1/invocations/{id}/result`: the bytes the function returned.
pub(super) async fn result(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    if let Some(answer) = forward(&state, &id, &uri, &headers).await {
        return answer;
    }
    let record = record(&state, &caller, &id).await?;
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

async fn record(state: &ApiState, caller: &Caller, id: &str) -> Result<InvocationRecord, ApiError> {
    let record = state
        .invocations
        .get(id)
        .await
        .ok_or_else(|| ApiError::new(ErrorCode::NotFound, "no such invocation"))?;
    reachable(caller, &record.function)?;
    Ok(record)
}

/// Marks a request one node forwarded to another (never forwarded again).
const FORWARDED: &str = "floe-forwarded";

/// The answer of the node that owns invocation `id`, when another node of
/// the cluster does: `None` when this node answers itself.
async fn forward(
    state: &ApiState,
    id: &str,
    uri: &Uri,
    headers: &HeaderMap,
) -> Option<Result<Response, ApiError>> {
    let cluster = state.cluster.as_ref()?;
    let owner = crate::invocations::owner_of(id)?;
    if owner == cluster.id() || headers.contains_key(FORWARDED) {
        return None;
    }
    let unavailable = |why: String| {
        Some(Err(ApiError::new(
            ErrorCode::OwnerUnavailable,
            format!("invocation {id} belongs to node {owner}, which {why}"),
        )))
    };
    let url = match cluster.control_url(owner).await {
        Ok(Some(url)) => url,
        Ok(None) => return unavailable("is not live".into()),
        Err(e) => return unavailable(format!("cannot be looked up ({e})")),
    };
    let path = uri.path_and_query().map_or(uri.path(), |p| p.as_str());
    let mut outgoing = cluster
        .http()
        .get(format!("{url}{path}"))
        .header(FORWARDED, "1");
    if let Some(auth) = headers.get(header::AUTHORIZATION) {
        outgoing = outgoing.header(header::AUTHORIZATION, auth.clone());
    }
    let response = match outgoing.send().await {
        Ok(response) => response,
        Err(e) => return unavailable(format!("did not answer ({e})")),
    };
    let status = response.status();
    let content_type = response.headers().get(header::CONTENT_TYPE).cloned();
    let body = match response.bytes().await {
        Ok(body) => body,
        Err(e) => return unavailable(format!("broke off its answer ({e})")),
    };
    let mut answer = (status, body).into_response();
    if let Some(content_type) = content_type {
        answer
            .headers_mut()
            .insert(header::CONTENT_TYPE, content_type);
    }
    Some(Ok(answer))
}

/// `403 forbidden` unless `caller` may reach `function`.
fn reachable(caller: &Caller, function: &str) -> Result<(), ApiError> {
    if caller.may_reach(function) {
        Ok(())
    } else {
        Err(ApiError::new(
            ErrorCode::Forbidden,
            format!("this token may not reach function {function:?}"),
        ))
    }
}
