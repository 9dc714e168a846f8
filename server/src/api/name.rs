//! The `{name}` of a function's path, as a [`FunctionName`]: a name that is
//! not a valid function name is refused before the handler runs, with the
//! same `400 bad_request` every bad name gets.

use super::ApiError;
use crate::registry::FunctionName;
use crate::status::ErrorCode;
use axum::extract::rejection::PathRejection;
use axum::extract::{FromRequestParts, Path};
use axum::http::request::Parts;

/// A valid function name taken from the request's path.
#[derive(Debug)]
pub(super) struct Name(pub(super) FunctionName);

impl<S: Send + Sync> FromRequestParts<S> for Name {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match Path::<FunctionName>::from_request_parts(parts, state).await {
            Ok(Path(name)) => Ok(Self(name)),
            Err(PathRejection::FailedToDeserializePathParams(e)) => Err(ApiError::new(
                ErrorCode::BadRequest,
                e.into_kind().to_string(),
            )),
            Err(e) => Err(ApiError::new(ErrorCode::BadRequest, e.body_text())),
        }
    }
}
