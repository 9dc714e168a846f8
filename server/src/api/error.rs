//! Control-plane errors as responses.

use crate::registry::RegistryError;
use crate::status::{ErrorCode, error_response};
use axum::response::{IntoResponse, Response};

/// An error answered by the control plane.
#[derive(Debug)]
pub struct ApiError {
    code: ErrorCode,
    message: String,
    details: Option<serde_json::Value>,
}

impl ApiError {
    /// An error with `code` and a message for the client.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            details: None,
        }
    }
}

impl From<RegistryError> for ApiError {
    fn from(e: RegistryError) -> Self {
        let code = e.code();
        let details = match &e {
            RegistryError::Component(crate::engine::ComponentError::MissingImports(imports)) => {
                serde_json::to_value(serde_json::json!({ "missing_imports": imports })).ok()
            }
            _ => None,
        };
        crate::status::log_failure!(
            code,
            error = &e as &dyn std::error::Error,
            "control-plane request failed"
        );
        // Registry errors are written for the operator who sent the request:
        // they name the function, the setting or the import at fault.
        let message = match &e {
            RegistryError::Internal(_) | RegistryError::Store(_) => "internal error".to_owned(),
            other => other.to_string(),
        };
        Self {
            code,
            message,
            details,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        error_response(self.code, &self.message, "", None, self.details).into_response()
    }
}
