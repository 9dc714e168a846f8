//! The control plane: deploy and manage functions, and look at the server.
//!
//! | method | path | what |
//! | --- | --- | --- |
//! | PUT | `/v1/functions/{name}` | deploy a component (body); settings as query parameters; `If-Match: <digest>` |
//! | GET | `/v1/functions` | list functions |
//! | GET | `/v1/functions/{name}` | one function: versions, settings, instances |
//! | DELETE | `/v1/functions/{name}` | delete a function |
//! | POST | `/v1/functions/{name}/rollback` | previous version, or `?version=N` |
//! | PATCH | `/v1/functions/{name}/config` | change settings (JSON object or query parameters) |
//! | POST | `/v1/functions/{name}/invoke` | invoke an event function: body in, bytes out |
//! | GET | `/v1/functions/{name}/instances` | every live instance of the function |
//! | GET | `/v1/invocations`, `/v1/invocations/{id}`, `.../result` | async invocations |
//! | POST | `/v1/tokens` | create a scoped token (admin) |
//! | GET | `/v1/tokens` | list created tokens (admin) |
//! | DELETE | `/v1/tokens/{id}` | revoke a token (admin) |
//! | GET | `/metrics` | Prometheus metrics, OpenMetrics text (a token of any scope, unless open) |
//! | GET | `/healthz`, `/readyz` | liveness and readiness (open) |
//!
//! `/v1/...` needs `Authorization: Bearer <token>`, and the token's scope
//! must allow the request (`auth` says what each scope may do; `tokens`
//! owns the tokens). `/metrics` needs one too unless
//! [`ApiState::open_metrics`].

mod auth;
mod cluster;
mod error;
mod invocations;
mod name;
mod tokens;

pub use auth::Caller;
pub use error::ApiError;
pub use tokens::{TokenError, Tokens};

use crate::invoke::{Call, RequestIds, missing, reject};
use crate::metrics::Metrics;
use crate::registry::Registry;
use crate::status::ErrorCode;
use axum::body::Body;
use axum::extract::{Query, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use axum::{Json, Router, middleware};
use http_body_util::{BodyExt, Limited};
use name::Name;
use serde::Deserialize;
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

/// What the control plane's handlers share.
#[derive(Clone)]
pub struct ApiState {
    /// The registry.
    pub registry: Arc<Registry>,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Largest upload.
    pub max_upload: u64,
    /// Set while the server drains; `/readyz` answers 503 then.
    pub draining: Arc<AtomicBool>,
    /// Async invocations, and events invoked over HTTP.
    pub invocations: Arc<crate::invocations::Invocations>,
    /// Request ids (shared with the data plane).
    pub ids: Arc<RequestIds>,
    /// The tokens the control plane accepts.
    pub tokens: Arc<Tokens>,
    /// Whether `/metrics` answers without a token.
    pub open_metrics: bool,
    /// This node's part in a cluster (cluster mode only).
    pub cluster: Option<Arc<crate::cluster::Cluster>>,
    /// Cron and MQTT triggers, for the function view and `/metrics`.
    pub triggers: Arc<crate::triggers::Triggers>,
}

/// The control plane's routes.
pub fn router(state: ApiState) -> Router {
    let mut v1 = Router::new()
        .route("/v1/functions", get(list))
        .route("/v1/functions/{name}", put(deploy).get(show).delete(remove))
        .route("/v1/functions/{name}/rollback", post(rollback))
        .route("/v1/functions/{name}/push", post(cluster::push))
        .route("/v1/nodes", get(cluster::nodes))
        .route("/v1/functions/{name}/invoke", post(invoke))
        .route("/v1/functions/{name}/instances", get(instances))
        .route("/v1/invocations", get(invocations::list))
        .route("/v1/invocations/{id}", get(invocations::show))
        .route("/v1/invocations/{id}/result", get(invocations::result))
        .route(
            "/v1/functions/{name}/config",
            axum::routing::patch(configure),
        )
        .route("/v1/tokens", get(tokens::list).post(tokens::create))
        .route("/v1/tokens/{id}", delete(tokens::revoke));
    let mut open = Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(ready));
    if state.open_metrics {
        open = open.route("/metrics", get(metrics));
    } else {
        v1 = v1.route("/metrics", get(metrics));
    }
    let v1 = v1.route_layer(middleware::from_fn_with_state(
        state.clone(),
        auth::authorize,
    ));
    Router::new()
        .merge(v1)
        .merge(open)
        .fallback(|| async { ApiError::new(ErrorCode::NotFound, "no such endpoint") })
        .layer(middleware::from_fn(close_after_refused_upload))
        .with_state(state)
}

/// An HTTP/1 request refused with a body that may be unread (a bad name or
/// setting is answered before the upload is read) ends its connection: a
/// client that reused it would find it closed under its next request.
async fn close_after_refused_upload(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let http1 = request.version() < http::Version::HTTP_2;
    let has_body = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .is_some_and(|v| v.as_bytes() != b"0")
        || request.headers().contains_key(header::TRANSFER_ENCODING);
    let mut response = next.run(request).await;
    let refused = response.status().is_client_error() || response.status().is_server_error();
    if http1 && has_body && refused {
        response
            .headers_mut()
            .insert(header::CONNECTION, http::HeaderValue::from_static("close"));
    }
    response
}

/// Settings given as query parameters (`memory=64MiB&reuse=false`),
/// percent-decoded; pairs without a key are dropped.
fn query_pairs(query: Option<&str>) -> Vec<(String, String)> {
    form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .filter(|(k, _)| !k.is_empty())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

/// Refuses a secret given in a URL, where proxies and access logs would
/// keep it.
fn no_secrets_in(pairs: &[(String, String)]) -> Result<(), ApiError> {
    match pairs.iter().find(|(k, _)| k.starts_with("secret.")) {
        Some((key, _)) => Err(ApiError::new(
            ErrorCode::BadRequest,
            format!(
                "`{key}` is in the URL: send secrets in the JSON body of PATCH \
                 /v1/functions/{{name}}/config, never in a query string"
            ),
        )),
        None => Ok(()),
    }
}

async fn deploy(
    State(state): State<ApiState>,
    caller: Caller,
    Name(name): Name,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let mut settings = query_pairs(query.as_deref());
    no_secrets_in(&settings)?;
    let options = cluster::DeployOptions::take(&mut settings)?;
    let bytes = read_upload(&state, &headers, body).await?;
    let bytes = match (&options.source, bytes.is_empty()) {
        (Some(source), true) => cluster::pull_source(&state, &caller, source).await?,
        (Some(_), false) => {
            return Err(ApiError::new(
                ErrorCode::BadRequest,
                "give the component's bytes or source=oci://…, not both",
            ));
        }
        (None, true) => {
            return Err(ApiError::new(
                ErrorCode::BadRequest,
                "the request body must be the component's bytes",
            ));
        }
        (None, false) => bytes,
    };
    let if_match = headers.get(header::IF_MATCH).and_then(|v| v.to_str().ok());
    let result = state
        .registry
        .deploy(&name, bytes, &settings, if_match)
        .await;
    let deployed = result.inspect_err(|_| {
        state
            .metrics
            .server
            .deploy_failures
            .fetch_add(1, Ordering::Relaxed);
    })?;
    let status = if deployed.created {
        state.metrics.server.deploys.fetch_add(1, Ordering::Relaxed);
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    cluster::answer(&state, deployed, status, options.wait).await
}

/// An uploaded component: at most `max_upload` bytes, refused from
/// `Content-Length` before anything is read, and counted as a chunked upload
/// arrives.
async fn read_upload(
    state: &ApiState,
    headers: &HeaderMap,
    body: Body,
) -> Result<axum::body::Bytes, ApiError> {
    let too_large = || {
        ApiError::new(
            ErrorCode::BodyTooLarge,
            format!(
                "the component is larger than the upload limit of {} bytes",
                state.max_upload
            ),
        )
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > state.max_upload) {
        return Err(too_large());
    }
    let limit = usize::try_from(state.max_upload).unwrap_or(usize::MAX);
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(too_large()),
        Err(e) => Err(ApiError::new(
            ErrorCode::BadRequest,
            format!("reading the upload failed: {e}"),
        )),
    }
}

/// Every function the caller may reach (a deploy token sees its prefix's).
async fn list(State(state): State<ApiState>, caller: Caller) -> Json<serde_json::Value> {
    let mut functions = state.registry.list();
    functions.retain(|f| caller.may_reach(&f.name));
    Json(json!({ "functions": functions }))
}

async fn show(State(state): State<ApiState>, Name(name): Name) -> Result<Response, ApiError> {
    let info = state.registry.info(&name, true)?;
    let mut view = serde_json::to_value(&info)
        .map_err(|e| ApiError::new(ErrorCode::Internal, format!("describing the function: {e}")))?;
    // What the triggers and the outbox are doing now, beside the settings
    // that declare them.
    if let Some(object) = view.as_object_mut() {
        let triggers = state.triggers.views_of(name.as_str());
        if !triggers.is_empty() {
            object.insert("triggers".into(), json!(triggers));
        }
        if let Some(outbox) = state.triggers.outbox_of(name.as_str()) {
            object.insert("outbox".into(), json!(outbox));
        }
    }
    Ok(Json(view).into_response())
}

async fn remove(State(state): State<ApiState>, Name(name): Name) -> Result<StatusCode, ApiError> {
    state.registry.delete(&name).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
struct RollbackQuery {
    version: Option<u64>,
}

async fn rollback(
    State(state): State<ApiState>,
    Name(name): Name,
    Query(q): Query<RollbackQuery>,
) -> Result<Response, ApiError> {
    Ok(Json(state.registry.rollback(&name, q.version).await?).into_response())
}

async fn configure(
    State(state): State<ApiState>,
    Name(name): Name,
    RawQuery(query): RawQuery,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let mut settings = query_pairs(query.as_deref());
    no_secrets_in(&settings)?;
    if !body.is_empty() {
        let object: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(&body)
            .map_err(|e| {
                ApiError::new(
                    ErrorCode::BadRequest,
                    format!("the body must be a JSON object of settings: {e}"),
                )
            })?;
        for (key, value) in object {
            let text = match value {
                serde_json::Value::String(s) => s,
                other => other.to_string(),
            };
            settings.push((key, text));
        }
    }
    Ok(Json(state.registry.configure(&name, &settings).await?).into_response())
}

/// Invokes an event function: the request's body is the payload, the
/// answer's body the function's output.
async fn invoke(
    State(state): State<ApiState>,
    Name(name): Name,
    request: axum::extract::Request,
) -> Response {
    let start = Instant::now();
    let request_id = state.ids.of(&request);
    let Some(function) = state.registry.get(name.as_str()) else {
        return missing(
            &state.registry,
            &state.metrics,
            name.as_str(),
            request_id.get(),
        )
        .map(Body::new);
    };
    if !function.runnable.prepared.handles_events() {
        return reject(
            ErrorCode::BadRequest,
            "this function does not export floe:function/event",
            request_id.get(),
        )
        .map(Body::new);
    }
    let call = Call::new(&function, &request_id, start);
    let response = state
        .invocations
        .serve_event(&call, request, crate::invocations::Front::ControlPlane)
        .await;
    call.finish(response.status());
    response.map(Body::new)
}

async fn instances(State(state): State<ApiState>, Name(name): Name) -> Result<Response, ApiError> {
    let list = state.registry.instances(&name)?;
    Ok(Json(json!({ "function": name.as_str(), "instances": list })).into_response())
}

async fn ready(State(state): State<ApiState>) -> Response {
    let draining = state.draining.load(Ordering::Relaxed);
    // A node cut off from etcd keeps serving what it last knew: still
    // ready, but degraded.
    let degraded = state.cluster.as_ref().is_some_and(|c| !c.online());
    // A new node has not converged yet: not ready for traffic (unless etcd
    // cannot be reached; then it serves what it has).
    let starting = state.cluster.as_ref().is_some_and(|c| c.starting());
    let status_word = match (draining, starting, degraded) {
        (true, _, _) => "draining",
        (false, true, _) => "starting",
        (false, false, true) => "degraded",
        (false, false, false) => "ready",
    };
    let cluster = state.cluster.as_ref().map(|c| {
        json!({
            "node": c.id(),
            "etcd": if c.online() { "online" } else { "offline" },
            "synced": c.synced(),
            "pulled": c.storage().transfers().pulled.load(Ordering::Relaxed),
            "pulled_compiled": c.storage().transfers().pulled_compiled.load(Ordering::Relaxed),
        })
    });
    let body = json!({
        "status": status_word,
        "cluster": cluster,
        "ready": !draining,
        "functions": state.registry.list().len(),
        "instances": state.registry.budget().in_use(),
        "allocator": format!("{:?}", state.registry.engine().allocator()).to_lowercase(),
        "gpu": state.registry.engine().gpu_status(),
    });
    let status = if draining || starting {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    };
    (status, Json(body)).into_response()
}

/// The content type of the OpenMetrics text format.
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

async fn metrics(State(state): State<ApiState>) -> Response {
    let rendered = state.metrics.render(
        state.registry.pool_gauges(),
        state.registry.budget().in_use(),
        state.invocations.figures(),
        state.triggers.figures(),
    );
    match rendered {
        Ok(text) => ([(header::CONTENT_TYPE, OPENMETRICS)], text).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "encoding /metrics failed");
            ApiError::new(ErrorCode::Internal, "internal error").into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_settings_are_decoded() {
        let pairs = query_pairs(Some("memory=64MiB&reuse=false&timeout=2%73&x"));
        assert_eq!(
            pairs,
            [
                ("memory".to_owned(), "64MiB".to_owned()),
                ("reuse".to_owned(), "false".to_owned()),
                ("timeout".to_owned(), "2s".to_owned()),
                ("x".to_owned(), String::new()),
            ]
        );
        assert!(query_pairs(None).is_empty());
        let value = |query: &str| query_pairs(Some(query)).remove(0).1;
        assert_eq!(value("a=100%"), "100%");
        assert_eq!(value("a=%e2%82%ac%"), "\u{20ac}%");
        assert_eq!(value("a=%\u{e9}"), "%\u{e9}");
        assert_eq!(value("on_success=my%2Dfn"), "my-fn");
    }
}
