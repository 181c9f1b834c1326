//! The controllers' errors and their categories.

use agility_core::{Categorized, ErrorCategory};

/// A failed reconcile of an RdsInstance, RdsAccount or RdsDatabase.
#[derive(Debug, thiserror::Error)]
pub enum RdsError {
    /// The spec cannot be planned.
    #[error("invalid spec")]
    Plan(#[from] crate::plan::PlanError),
    /// The instance an account or database names does not exist (yet).
    #[error("RdsInstance {0} not found")]
    InstanceMissing(String),
    /// The instance has no primary to run statements on yet.
    #[error("RdsInstance {0} has no primary yet")]
    NoPrimary(String),
    /// A second Privileged account.
    #[error("RdsInstance {instance} already has the Privileged account {existing}")]
    SecondPrivileged {
        /// The instance.
        instance: String,
        /// The account that has it.
        existing: String,
    },
    /// The user's password Secret is missing or unusable.
    #[error("password Secret {secret}: {reason}")]
    Password {
        /// `namespace/name`.
        secret: String,
        /// What is wrong.
        reason: String,
    },
    /// MariaDB refused or did not answer.
    #[error("MariaDB: {0}")]
    Dataplane(#[from] crate::dataplane::DataplaneError),
    /// A core failure (apply, status, API).
    #[error(transparent)]
    Core(#[from] agility_core::Error),
}

impl Categorized for RdsError {
    fn category(&self) -> ErrorCategory {
        match self {
            RdsError::Plan(_) | RdsError::SecondPrivileged { .. } => ErrorCategory::InvalidSpec,
            RdsError::InstanceMissing(_) | RdsError::NoPrimary(_) | RdsError::Password { .. } => {
                ErrorCategory::Dependency
            }
            RdsError::Dataplane(_) => ErrorCategory::DataPlane,
            RdsError::Core(e) => e.category(),
        }
    }
}
