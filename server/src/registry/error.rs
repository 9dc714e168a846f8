//! Why a control-plane operation on a function failed.

use super::InvalidName;
use crate::config::SettingsError;
use crate::engine::ComponentError;
use crate::status::ErrorCode;
use crate::store::{Digest, StoreError};

/// A deploy, rollback, reconfiguration or deletion that failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RegistryError {
    /// The name is not a valid function name.
    #[error(transparent)]
    InvalidName(#[from] InvalidName),
    /// No function has this name.
    #[error("no function named {0:?}")]
    NotFound(String),
    /// The uploaded component cannot be deployed.
    #[error(transparent)]
    Component(#[from] ComponentError),
    /// A setting is unknown or out of bounds.
    #[error(transparent)]
    Settings(#[from] SettingsError),
    /// `If-Match` names another digest than the active version's.
    #[error("If-Match {expected} does not match the active version ({})", .active.map_or("none".to_owned(), |d| d.to_string()))]
    PreconditionFailed {
        /// The digest the client expected.
        expected: Digest,
        /// The active version's digest, if there is one.
        active: Option<Digest>,
    },
    /// `If-Match` is not a digest.
    #[error("If-Match must be a component digest (sha256:...): {0:?}")]
    BadPrecondition(String),
    /// There is no version to roll back to.
    #[error("function {name} has no version {which} to roll back to")]
    NoSuchVersion {
        /// The function.
        name: String,
        /// The version asked for, or "before the active one".
        which: String,
    },
    /// The server holds `limits.max_functions` already.
    #[error("this server holds its maximum of {0} functions")]
    TooManyFunctions(u32),
    /// The stored code of a function is damaged beyond repair.
    #[error("function {name} cannot be loaded: {reason}")]
    Unavailable {
        /// The function.
        name: String,
        /// Why.
        reason: String,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The cluster's etcd or registry failed or cannot be reached; nothing
    /// was changed.
    #[error("cluster: {0}")]
    Cluster(String),
    /// Another node changed the function since it was read (retried by the
    /// registry; seen by a client only when it keeps happening).
    #[error("function {0} was changed by another node at the same time; retry")]
    Conflict(String),
    /// A task of the registry failed (panicked or was cancelled).
    #[error("internal error: {0}")]
    Internal(#[source] tokio::task::JoinError),
}

impl RegistryError {
    /// The error code clients see.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::InvalidName(_) | Self::Settings(_) | Self::BadPrecondition(_) => {
                ErrorCode::BadRequest
            }
            Self::NotFound(_) => ErrorCode::NotFound,
            Self::Component(c) => c.code(),
            Self::PreconditionFailed { .. } => ErrorCode::PreconditionFailed,
            Self::NoSuchVersion { .. } | Self::TooManyFunctions(_) => ErrorCode::Conflict,
            Self::Unavailable { .. } => ErrorCode::Unavailable,
            Self::Cluster(_) => ErrorCode::ClusterUnavailable,
            Self::Conflict(_) => ErrorCode::Conflict,
            Self::Store(_) | Self::Internal(_) => ErrorCode::Internal,
        }
    }
}
