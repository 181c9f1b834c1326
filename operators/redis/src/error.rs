//! The controller's errors and their categories.

use agility_core::{Categorized, ErrorCategory};

/// A failed reconcile of a RedisInstance.
#[derive(Debug, thiserror::Error)]
pub enum RedisError {
    /// The spec cannot be planned.
    #[error("invalid spec")]
    Plan(#[from] crate::plan::PlanError),
    /// The user's password Secret is missing or lacks the key.
    #[error("password Secret {secret}: {reason}")]
    PasswordMissing {
        /// `namespace/name`.
        secret: String,
        /// What is wrong.
        reason: String,
    },
    /// The user's password cannot be used.
    #[error(
        "password in Secret {secret} is not usable: 8-128 printable ASCII characters without quotes, backslash, space, '%', '@', ':' or '/'"
    )]
    PasswordUnusable {
        /// `namespace/name`.
        secret: String,
    },
    /// The user's TLS Secret is missing, incomplete or unreadable.
    #[error("TLS Secret {secret}: {reason}")]
    TlsSecret {
        /// `namespace/name`.
        secret: String,
        /// What is wrong.
        reason: String,
    },
    /// Issuing the operator's certificate failed.
    #[error("issuing the TLS certificate: {0}")]
    Tls(String),
    /// A core failure (apply, status, API).
    #[error(transparent)]
    Core(#[from] agility_core::Error),
}

impl Categorized for RedisError {
    fn category(&self) -> ErrorCategory {
        match self {
            RedisError::Plan(_) | RedisError::PasswordUnusable { .. } => ErrorCategory::InvalidSpec,
            RedisError::PasswordMissing { .. } | RedisError::TlsSecret { .. } => {
                ErrorCategory::Dependency
            }
            RedisError::Tls(_) => ErrorCategory::Internal,
            RedisError::Core(e) => e.category(),
        }
    }
}
