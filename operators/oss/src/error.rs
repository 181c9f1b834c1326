//! The controllers' errors and their categories.

use agility_core::{Categorized, ErrorCategory};

use crate::garage::GarageError;

/// A failed reconcile of an ObjectStore, Bucket or BucketAccess.
#[derive(Debug, thiserror::Error)]
pub enum OssError {
    /// Garage refused or did not answer.
    #[error("garage: {action}")]
    Garage {
        /// What the operator was doing.
        action: String,
        #[source]
        source: GarageError,
    },
    /// Something this object needs is not there or not ready yet (the store, the Bucket).
    #[error("{0}")]
    NotReady(String),
    /// The bucket name belongs to something else.
    #[error("bucket name {0:?} is taken in the store by a bucket this namespace does not own")]
    NameTaken(String),
    /// A core failure (apply, status, API).
    #[error(transparent)]
    Core(#[from] agility_core::Error),
}

impl OssError {
    /// Wraps a Garage error with what was being done.
    pub fn garage(action: impl Into<String>) -> impl FnOnce(GarageError) -> OssError {
        let action = action.into();
        move |source| OssError::Garage { action, source }
    }
}

/// `Ok(None)` when Garage says the thing is not there (deleting or revoking something already
/// gone is done), the answer otherwise.
pub fn absent_ok<T>(r: Result<T, GarageError>, action: &str) -> Result<Option<T>> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(e) if e.is_not_found() => Ok(None),
        Err(e) => Err(OssError::garage(action)(e)),
    }
}

impl Categorized for OssError {
    fn category(&self) -> ErrorCategory {
        match self {
            OssError::Garage { .. } => ErrorCategory::DataPlane,
            OssError::NotReady(_) => ErrorCategory::Dependency,
            OssError::NameTaken(_) => ErrorCategory::Conflict,
            OssError::Core(e) => e.category(),
        }
    }
}

/// Result of the controllers.
pub type Result<T, E = OssError> = std::result::Result<T, E>;
