//! The control plane's cluster endpoints and deploy options: `GET
//! /v1/nodes`, `POST /v1/functions/{name}/push`, deploys from an OCI
//! reference (`?source=oci://…`) and deploys that wait for every node
//! (`?wait=all`).

use super::{ApiError, ApiState};
use crate::cluster::Cluster;
use crate::config::HumanDuration;
use crate::registry::Deployed;
use crate::status::ErrorCode;
use axum::Json;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::StatusCode;
use serde::Deserialize;
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

/// The longest `?wait=all` may wait.
const MAX_WAIT: Duration = Duration::from_secs(300);
/// How long `?wait=all` waits when no timeout is given.
const DEFAULT_WAIT: Duration = Duration::from_secs(10);

/// Deploy options that are not function settings, taken out of the query.
#[derive(Debug, Default)]
pub(super) struct DeployOptions {
    /// `wait=all`: answer once every live node serves the new version.
    pub wait: Option<Duration>,
    /// `source=oci://…`: deploy a component already in the registry.
    pub source: Option<String>,
}

impl DeployOptions {
    /// Takes `wait`, `source` and (with `wait`) `timeout` or `wait_timeout`
    /// out of `pairs`; the rest are settings.
    pub(super) fn take(pairs: &mut Vec<(String, String)>) -> Result<Self, ApiError> {
        let mut take = |key: &str| {
            let at = pairs.iter().position(|(k, _)| k == key)?;
            Some(pairs.remove(at).1)
        };
        let wait = take("wait");
        let source = take("source");
        let wait = match wait.as_deref() {
            None => None,
            Some("all") => {
                // With `wait`, `timeout` bounds the wait (the function's own
                // timeout is then set with `PATCH …/config`).
                let bound = take("wait_timeout").or_else(|| take("timeout"));
                let bound = match bound {
                    None => DEFAULT_WAIT,
                    Some(text) => {
                        text.parse::<HumanDuration>()
                            .map_err(|e| {
                                ApiError::new(ErrorCode::BadRequest, format!("wait timeout: {e}"))
                            })?
                            .0
                    }
                };
                Some(bound.min(MAX_WAIT))
            }
            Some(other) => {
                return Err(ApiError::new(
                    ErrorCode::BadRequest,
                    format!("wait must be \"all\", not {other:?}"),
                ));
            }
        };
        Ok(Self { wait, source })
    }
}

fn cluster_only(state: &ApiState) -> Result<&Arc<Cluster>, ApiError> {
    state.cluster.as_ref().ok_or_else(|| {
        ApiError::new(
            ErrorCode::BadRequest,
            "this server is not in cluster mode ([cluster] etcd is not set)",
        )
    })
}

/// The component named by `source` (`oci://host/repo@sha256:…` or
/// `…:tag`), pulled from the cluster's registry.
/// Only repositories of functions the caller may reach are pulled from.
pub(super) async fn pull_source(
    state: &ApiState,
    caller: &super::Caller,
    source: &str,
) -> Result<Bytes, ApiError> {
    let cluster = cluster_only(state)?;
    let reference = source.strip_prefix("oci://").ok_or_else(|| {
        ApiError::new(
            ErrorCode::BadRequest,
            "source must be an OCI reference: oci://host/repository@sha256:… or :tag",
        )
    })?;
    let function = cluster.function_of_reference(reference).ok_or_else(|| {
        ApiError::new(
            ErrorCode::BadRequest,
            format!(
                "source must name a function's repository in the cluster's registry ({})",
                cluster.repository("NAME")
            ),
        )
    })?;
    if !caller.may_reach(&function) {
        return Err(ApiError::new(
            ErrorCode::Forbidden,
            format!("this token may not reach function {function:?}, whose repository that is"),
        ));
    }
    cluster.pull(reference).await.map_err(|e| {
        let code = match e {
            crate::cluster::OciError::BadReference(_)
            | crate::cluster::OciError::NotWasm { .. }
            | crate::cluster::OciError::TooLarge { .. }
            | crate::cluster::OciError::DigestMismatch { .. } => ErrorCode::BadRequest,
            crate::cluster::OciError::NotFound(_) => ErrorCode::NotFound,
            _ => ErrorCode::ClusterUnavailable,
        };
        ApiError::new(code, e.to_string())
    })
}

/// Answers a deploy: with `wait`, once every live node serves the new
/// version (201), or when the wait ends with some behind (202, naming them).
pub(super) async fn answer(
    state: &ApiState,
    deployed: Deployed,
    status: StatusCode,
    wait: Option<Duration>,
) -> Result<Response, ApiError> {
    let (Some(wait), Some(cluster)) = (wait, state.cluster.as_ref()) else {
        return Ok((status, Json(deployed)).into_response());
    };
    let mut body = serde_json::to_value(&deployed).unwrap_or_default();
    // The deploy is committed whatever happens here: an etcd that goes
    // away during the wait leaves it unknown who serves it (202).
    let status = match cluster
        .wait_all(&deployed.name, deployed.version, wait)
        .await
    {
        Ok(behind) if behind.is_empty() => {
            body["behind"] = json!([]);
            status
        }
        Ok(behind) => {
            body["behind"] = json!(behind);
            StatusCode::ACCEPTED
        }
        Err(e) => {
            body["behind"] = serde_json::Value::Null;
            body["wait_error"] = json!(e.to_string());
            StatusCode::ACCEPTED
        }
    };
    Ok((status, Json(body)).into_response())
}

/// `GET /v1/nodes`: every live node and the version it serves of each
/// function (outside cluster mode, this node alone).
pub(super) async fn nodes(State(state): State<ApiState>) -> Result<Response, ApiError> {
    let Some(cluster) = state.cluster.as_ref() else {
        return Ok(Json(json!({
            "cluster": false,
            "nodes": [{ "id": "local", "serving": state.registry.serving() }],
        }))
        .into_response());
    };
    let nodes = cluster
        .nodes()
        .await
        .map_err(|e| ApiError::new(ErrorCode::ClusterUnavailable, e.to_string()))?;
    Ok(Json(json!({ "cluster": true, "this": cluster.id(), "nodes": nodes })).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct PushQuery {
    tag: Option<String>,
}

/// `POST /v1/functions/{name}/push?tag=T`: stores the uploaded component in
/// the registry as an artifact of `name`, without deploying it.
pub(super) async fn push(
    State(state): State<ApiState>,
    super::name::Name(name): super::name::Name,
    Query(q): Query<PushQuery>,
    headers: http::HeaderMap,
    body: axum::body::Body,
) -> Result<Response, ApiError> {
    let cluster = cluster_only(&state)?;
    let bytes = super::read_upload(&state, &headers, body).await?;
    if let Some(tag) = &q.tag
        && !valid_tag(tag)
    {
        return Err(ApiError::new(
            ErrorCode::BadRequest,
            "a tag is 1 to 128 letters, digits, '_', '.' and '-', not starting with '.' or '-'",
        ));
    }
    if !wasmparser::Parser::is_component(&bytes) {
        return Err(ApiError::new(
            ErrorCode::InvalidComponent,
            "the body must be a WebAssembly component",
        ));
    }
    let (reference, digest) = cluster
        .push(name.as_str(), &bytes, q.tag.as_deref())
        .await
        .map_err(|e| ApiError::new(ErrorCode::ClusterUnavailable, e.to_string()))?;
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "name": name.as_str(),
            "reference": format!("oci://{reference}"),
            "digest": digest,
            "size": bytes.len(),
        })),
    )
        .into_response())
}

/// An OCI tag: `[A-Za-z0-9_][A-Za-z0-9._-]{0,127}`.
fn valid_tag(tag: &str) -> bool {
    let mut bytes = tag.bytes();
    bytes
        .next()
        .is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_')
        && tag.len() <= 128
        && bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(q: &str) -> Vec<(String, String)> {
        super::super::query_pairs(Some(q))
    }

    #[test]
    fn wait_takes_its_timeout_and_leaves_settings() {
        let mut p = pairs("wait=all&timeout=5s&memory=64MiB");
        let o = DeployOptions::take(&mut p).unwrap();
        assert_eq!(o.wait, Some(Duration::from_secs(5)));
        assert_eq!(p, vec![("memory".to_owned(), "64MiB".to_owned())]);

        let mut p = pairs("timeout=5s");
        let o = DeployOptions::take(&mut p).unwrap();
        assert_eq!(o.wait, None);
        assert_eq!(p.len(), 1, "without wait, timeout is the function's");

        let mut p = pairs("wait=all&wait_timeout=2s&timeout=9s");
        let o = DeployOptions::take(&mut p).unwrap();
        assert_eq!(o.wait, Some(Duration::from_secs(2)));
        assert_eq!(p, vec![("timeout".to_owned(), "9s".to_owned())]);

        assert!(DeployOptions::take(&mut pairs("wait=some")).is_err());
        assert!(DeployOptions::take(&mut pairs("wait=all&timeout=soon")).is_err());
    }

    #[test]
    fn tags() {
        assert!(valid_tag("v1.2-rc_3"));
        assert!(!valid_tag(".x"));
        assert!(!valid_tag(""));
        assert!(!valid_tag("a/b"));
        assert!(!valid_tag(&"a".repeat(129)));
    }
}
