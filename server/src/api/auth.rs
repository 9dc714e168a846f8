//! Who may call the control plane, and what they may do.
//!
//! Every `/v1/...` request (and `/metrics`, unless metrics are open) needs
//! `Authorization: Bearer <token>`: the scheme in any case, spaces around
//! the token ignored. A missing or unknown token is `401 unauthorized`; a
//! valid token whose scope does not allow the request is `403 forbidden`.
//!
//! | scope | may |
//! | --- | --- |
//! | `admin` | everything, tokens included (the bootstrap token is one) |
//! | `read` | every `GET` but `/v1/tokens`: lists, function views, instances, invocations, metrics |
//! | `deploy` | on functions whose names start with its prefix: deploy, configure, roll back, delete, invoke (sync or async, destinations included), and read their views; lists show only those functions; `/metrics` |
//!
//! [`authorize`] decides from the route alone ([`decide`], pure) and leaves
//! the [`Caller`] in the request's extensions; handlers whose answer depends
//! on the function behind an id (invocations) or that list functions ask
//! [`Caller::may_reach`] themselves. A refused request's body is read and
//! dropped (bounded in size and time) before the answer goes out, so that a
//! client in the middle of an upload reads the refusal rather than a reset.

use super::ApiState;
use super::error::ApiError;
use crate::status::ErrorCode;
use crate::store::{TokenRecord, TokenScope};
use axum::extract::rejection::RawPathParamsRejection;
use axum::extract::{FromRequestParts, MatchedPath, RawPathParams, Request, State};
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::Response;
use http::Method;
use http::header::AUTHORIZATION;
use http_body_util::BodyExt;
use std::sync::Arc;
use std::time::Duration;

/// The id a request made with the bootstrap token is logged under.
const BOOTSTRAP_ID: &str = "bootstrap";
/// Longest a refused request's body is read for (see [`drain`]).
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// Who made a request: the token's id and what it may do.
#[derive(Clone, Debug)]
pub struct Caller {
    /// The token's id (`bootstrap` for the bootstrap token).
    pub token: Arc<str>,
    /// What it may do.
    pub scope: TokenScope,
    /// For a deploy token, the start of the names it may reach.
    prefix: Option<Arc<str>>,
}

impl Caller {
    /// The bootstrap token's caller: an admin.
    pub(super) fn bootstrap() -> Self {
        Self {
            token: BOOTSTRAP_ID.into(),
            scope: TokenScope::Admin,
            prefix: None,
        }
    }

    /// The caller presenting the token of `record`.
    pub(super) fn of(record: &TokenRecord) -> Self {
        Self {
            token: record.id.as_str().into(),
            scope: record.scope,
            prefix: record.prefix.as_deref().map(Arc::from),
        }
    }

    /// Whether the caller may see (and, by its scope, act on) `function`:
    /// any function for admin and read tokens, those with its prefix for a
    /// deploy token.
    pub fn may_reach(&self, function: &str) -> bool {
        match self.scope {
            TokenScope::Admin | TokenScope::Read => true,
            TokenScope::Deploy => self
                .prefix
                .as_deref()
                .is_some_and(|p| function.starts_with(p)),
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    /// The caller the control plane's token check found; a handler outside it sees none and
    /// refuses, so that a routing mistake fails closed.
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        parts.extensions.get::<Caller>().cloned().ok_or_else(|| {
            ApiError::new(ErrorCode::Unauthorized, ErrorCode::Unauthorized.message())
        })
    }
}

/// Why a valid token was refused.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Refusal {
    /// Tokens are managed by admin tokens only.
    AdminOnly,
    /// A read token asked for more than a `GET`.
    ReadOnly,
    /// A deploy token named a function outside its prefix.
    OutsidePrefix(String),
    /// A deploy token asked for something that is not about functions.
    NotForDeploy,
}

impl Refusal {
    fn message(&self, caller: &Caller) -> String {
        match self {
            Self::AdminOnly => "only an admin token may manage tokens".to_owned(),
            Self::ReadOnly => "a read token may only read (GET)".to_owned(),
            Self::OutsidePrefix(function) => format!(
                "this deploy token may only reach functions whose names start with {:?}, not {function:?}",
                caller.prefix.as_deref().unwrap_or_default()
            ),
            Self::NotForDeploy => "a deploy token may only manage and invoke functions".to_owned(),
        }
    }
}

/// Whether `caller` may send `method` to `route` (the route's pattern, as
/// `/v1/functions/{name}`), for `function` (the `{name}` in the path) and
/// the functions an async invocation names as its destinations.
pub(super) fn decide(
    caller: &Caller,
    method: &Method,
    route: &str,
    function: Option<&str>,
    destinations: &[String],
) -> Result<(), Refusal> {
    if caller.scope == TokenScope::Admin {
        return Ok(());
    }
    if route == "/v1/tokens" || route.starts_with("/v1/tokens/") {
        return Err(Refusal::AdminOnly);
    }
    if caller.scope == TokenScope::Read {
        return if matches!(*method, Method::GET | Method::HEAD) {
            Ok(())
        } else {
            Err(Refusal::ReadOnly)
        };
    }
    // A deploy token.
    let reading = matches!(*method, Method::GET | Method::HEAD);
    match (route, function) {
        // Lists and invocations are filtered (or checked) by the handler.
        ("/metrics" | "/v1/functions" | "/v1/invocations" | "/v1/nodes", _) if reading => Ok(()),
        (r, _) if reading && r.starts_with("/v1/invocations/") => Ok(()),
        (r, Some(name)) if r.starts_with("/v1/functions/{name}") => {
            let outside = std::iter::once(name)
                .chain(destinations.iter().map(String::as_str))
                .find(|f| !caller.may_reach(f));
            match outside {
                Some(f) => Err(Refusal::OutsidePrefix(f.to_owned())),
                None => Ok(()),
            }
        }
        _ => Err(Refusal::NotForDeploy),
    }
}

/// The token in an `Authorization` value: `Bearer <token>`, the scheme in
/// any case, spaces around either part ignored.
pub(super) fn bearer(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim().split_once([' ', '\t'])?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// The functions an async invocation names as destinations
/// (`?on_success=NAME&on_failure=NAME`).
fn destinations(query: Option<&str>) -> Vec<String> {
    form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .filter(|(k, _)| k == "on_success" || k == "on_failure")
        .map(|(_, v)| v.into_owned())
        .collect()
}

/// Authenticates the request's token and checks its scope; the handler
/// runs only when both pass, with the [`Caller`] in its extensions.
pub(super) async fn authorize(
    State(state): State<ApiState>,
    params: Result<RawPathParams, RawPathParamsRejection>,
    mut request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    match check(&state, params.ok().as_ref(), &request) {
        Ok(caller) => {
            request.extensions_mut().insert(caller);
            Ok(next.run(request).await)
        }
        Err(refusal) => {
            drain(request, state.max_upload).await;
            Err(refusal)
        }
    }
}

/// Who sends `request`, or why it is refused.
fn check(
    state: &ApiState,
    params: Option<&RawPathParams>,
    request: &Request,
) -> Result<Caller, ApiError> {
    let presented = request
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(bearer);
    let Some(presented) = presented else {
        let error = ApiError::new(
            ErrorCode::Unauthorized,
            "send a control-plane token as `Authorization: Bearer <token>` (the admin token is in the data directory's `token` file)",
        );
        return Err(error);
    };
    let Some(caller) = state.tokens.authenticate(presented) else {
        let error = ApiError::new(ErrorCode::Unauthorized, "the bearer token is not valid");
        return Err(error);
    };
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| request.uri().path(), |m| m.as_str());
    let function = params.and_then(|params| {
        params
            .iter()
            .find(|(key, _)| *key == "name")
            .map(|(_, value)| value)
    });
    let destinations = if route.ends_with("/invoke") {
        destinations(request.uri().query())
    } else {
        Vec::new()
    };
    let method = request.method();
    if let Err(refusal) = decide(&caller, method, route, function, &destinations) {
        tracing::debug!(token = %caller.token, scope = %caller.scope, %method, %route, ?refusal, "control-plane request refused");
        return Err(ApiError::new(
            ErrorCode::Forbidden,
            refusal.message(&caller),
        ));
    }
    Ok(caller)
}

/// Reads and drops what is left of a refused request's body (an upload,
/// say): up to `limit` bytes (the largest upload), for up to
/// [`DRAIN_TIMEOUT`]. A server that answers and closes while the client
/// still sends resets the client's socket, and the client reports a broken
/// connection instead of the refusal.
async fn drain(request: Request, limit: u64) {
    let declared = request
        .headers()
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n == 0 || n > limit) {
        return;
    }
    let mut body = request.into_body();
    let mut seen = 0u64;
    let read = async {
        while let Some(Ok(frame)) = body.frame().await {
            seen += frame.data_ref().map_or(0, |d| d.len() as u64);
            if seen > limit {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(DRAIN_TIMEOUT, read).await;
}

/// Compares without an early exit, so timing does not reveal the token.
pub(super) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caller(scope: TokenScope, prefix: Option<&str>) -> Caller {
        Caller {
            token: "t".into(),
            scope,
            prefix: prefix.map(Arc::from),
        }
    }

    #[test]
    fn tokens_compare_exactly() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
    }

    #[test]
    fn the_bearer_scheme_is_matched_in_any_case() {
        assert_eq!(bearer("Bearer abc"), Some("abc"));
        assert_eq!(bearer("bearer abc"), Some("abc"));
        assert_eq!(bearer("BEARER abc"), Some("abc"));
        assert_eq!(bearer("  Bearer   abc  "), Some("abc"));
        assert_eq!(bearer("Bearer\tabc"), Some("abc"));
        assert_eq!(bearer("Bearer "), None);
        assert_eq!(bearer("Bearer"), None);
        assert_eq!(bearer("Basic abc"), None);
        assert_eq!(bearer("Bearerabc"), None);
    }

    #[test]
    fn destinations_are_read_from_the_query() {
        assert_eq!(
            destinations(Some("mode=async&on_success=a&on_failure=b%2Dc")),
            ["a", "b-c"]
        );
        assert!(destinations(None).is_empty());
    }

    #[test]
    fn admins_may_do_anything() {
        let admin = caller(TokenScope::Admin, None);
        for (method, route) in [
            (Method::POST, "/v1/tokens"),
            (Method::DELETE, "/v1/tokens/{id}"),
            (Method::PUT, "/v1/functions/{name}"),
            (Method::GET, "/metrics"),
        ] {
            assert_eq!(decide(&admin, &method, route, Some("x"), &[]), Ok(()));
        }
    }

    #[test]
    fn read_tokens_may_only_get() {
        let read = caller(TokenScope::Read, None);
        for route in [
            "/v1/functions",
            "/v1/functions/{name}",
            "/v1/functions/{name}/instances",
            "/v1/invocations",
            "/v1/invocations/{id}/result",
            "/metrics",
        ] {
            assert_eq!(decide(&read, &Method::GET, route, Some("x"), &[]), Ok(()));
        }
        for (method, route) in [
            (Method::PUT, "/v1/functions/{name}"),
            (Method::DELETE, "/v1/functions/{name}"),
            (Method::POST, "/v1/functions/{name}/invoke"),
            (Method::PATCH, "/v1/functions/{name}/config"),
        ] {
            assert_eq!(
                decide(&read, &method, route, Some("x"), &[]),
                Err(Refusal::ReadOnly)
            );
        }
        assert_eq!(
            decide(&read, &Method::GET, "/v1/tokens", None, &[]),
            Err(Refusal::AdminOnly)
        );
    }

    #[test]
    fn deploy_tokens_are_held_to_their_prefix() {
        let deploy = caller(TokenScope::Deploy, Some("team-a-"));
        let ok = |method: Method, route: &str, name: Option<&str>| {
            decide(&deploy, &method, route, name, &[])
        };
        assert_eq!(
            ok(Method::PUT, "/v1/functions/{name}", Some("team-a-x")),
            Ok(())
        );
        assert_eq!(
            ok(Method::GET, "/v1/functions/{name}", Some("team-a-x")),
            Ok(())
        );
        assert_eq!(
            ok(Method::DELETE, "/v1/functions/{name}", Some("team-a-x")),
            Ok(())
        );
        assert_eq!(
            ok(
                Method::POST,
                "/v1/functions/{name}/rollback",
                Some("team-a-x")
            ),
            Ok(())
        );
        assert_eq!(
            ok(
                Method::PATCH,
                "/v1/functions/{name}/config",
                Some("team-a-x")
            ),
            Ok(())
        );
        assert_eq!(ok(Method::GET, "/v1/functions", None), Ok(()));
        assert_eq!(ok(Method::GET, "/v1/invocations/{id}", None), Ok(()));
        assert_eq!(ok(Method::GET, "/metrics", None), Ok(()));
        assert_eq!(
            ok(Method::PUT, "/v1/functions/{name}", Some("other")),
            Err(Refusal::OutsidePrefix("other".into()))
        );
        assert_eq!(
            ok(
                Method::GET,
                "/v1/functions/{name}/instances",
                Some("team-b-x")
            ),
            Err(Refusal::OutsidePrefix("team-b-x".into()))
        );
        assert_eq!(
            ok(Method::POST, "/v1/tokens", None),
            Err(Refusal::AdminOnly)
        );
        assert_eq!(
            ok(Method::POST, "/v1/something-new", None),
            Err(Refusal::NotForDeploy)
        );
        // An async invocation may not hand its result to another team.
        let invoke = "/v1/functions/{name}/invoke";
        assert_eq!(
            decide(
                &deploy,
                &Method::POST,
                invoke,
                Some("team-a-x"),
                &["team-a-y".into()]
            ),
            Ok(())
        );
        assert_eq!(
            decide(
                &deploy,
                &Method::POST,
                invoke,
                Some("team-a-x"),
                &["other".into()]
            ),
            Err(Refusal::OutsidePrefix("other".into()))
        );
        // An empty prefix reaches every function.
        let all = caller(TokenScope::Deploy, Some(""));
        assert_eq!(
            decide(
                &all,
                &Method::PUT,
                "/v1/functions/{name}",
                Some("anything"),
                &[]
            ),
            Ok(())
        );
    }
}
