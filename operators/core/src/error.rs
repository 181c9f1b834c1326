//! Errors of the controller core and the bounded category every reconcile error maps to.
//!
//! The category is what operators alert on (metric label) and what users see first (event reason,
//! Ready condition reason), so it is a small closed set with stable names. The full cause chain goes
//! into the event note and the Ready condition message.

use std::fmt;

/// The bounded set of failure kinds. Used as the event reason, the Ready condition reason and the
/// `category` label of `agility_reconcile_errors_total`; never add values casually (label cardinality,
/// dashboards and alerts depend on them).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ErrorCategory {
    /// The object's spec is invalid or cannot be decoded; retrying cannot help until it changes.
    InvalidSpec,
    /// The Kubernetes API rejected or failed a request (other than a write conflict).
    KubeApi,
    /// A write lost an optimistic-concurrency race (HTTP 409); retried soon.
    Conflict,
    /// Something this object depends on (a referenced object, a Secret) is missing or not ready.
    Dependency,
    /// The product's data plane (the engine behind the pods) failed or is unreachable.
    DataPlane,
    /// A bug or an impossible state in the operator itself.
    Internal,
}

impl ErrorCategory {
    /// Every category, in a stable order (used to pre-register metric label values).
    pub const ALL: [ErrorCategory; 6] = [
        ErrorCategory::InvalidSpec,
        ErrorCategory::KubeApi,
        ErrorCategory::Conflict,
        ErrorCategory::Dependency,
        ErrorCategory::DataPlane,
        ErrorCategory::Internal,
    ];

    /// Stable CamelCase name: the event reason, the condition reason and the metric label value.
    pub fn reason(self) -> &'static str {
        match self {
            ErrorCategory::InvalidSpec => "InvalidSpec",
            ErrorCategory::KubeApi => "KubeApiError",
            ErrorCategory::Conflict => "Conflict",
            ErrorCategory::Dependency => "DependencyNotReady",
            ErrorCategory::DataPlane => "DataPlaneError",
            ErrorCategory::Internal => "InternalError",
        }
    }

    /// True when retrying with the same input cannot succeed, so the runner waits for the object
    /// to change instead of retrying on a timer (no hot loop on a bad spec).
    pub fn waits_for_change(self) -> bool {
        matches!(self, ErrorCategory::InvalidSpec)
    }
}

impl fmt::Display for ErrorCategory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.reason())
    }
}

/// Implemented by every error a reconcile function may return, so the runner can classify it
/// without knowing the product.
pub trait Categorized: std::error::Error + Send + Sync + 'static {
    /// The bounded category of this error.
    fn category(&self) -> ErrorCategory;
}

/// The core's error type. Products usually wrap it (`#[error(transparent)] Core(#[from] Error)`) in
/// their own error enum and delegate [`Categorized::category`]; they may also use it directly.
///
/// Display strings never repeat the source; [`cause_chain`] joins the chain, so messages are not
/// duplicated in events and conditions.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The spec is invalid (a check the schema cannot express failed).
    #[error("invalid spec: {0}")]
    InvalidSpec(String),

    /// The object could not be decoded into the product's type (schema/version skew, or a field of
    /// the wrong type inside a preserve-unknown-fields subtree).
    #[error("cannot decode {kind} {name}")]
    Decode {
        /// Kind of the object.
        kind: String,
        /// `namespace/name` of the object.
        name: String,
        /// Why decoding failed.
        #[source]
        source: serde_json::Error,
    },

    /// A Kubernetes API call failed; `action` says what we were doing.
    #[error("{action}")]
    Kube {
        /// What the operator tried, e.g. "apply ConfigMap demo/cfg".
        action: String,
        /// The client error.
        #[source]
        source: KubeError,
    },

    /// A dependency is missing or not ready.
    #[error("dependency not ready: {0}")]
    Dependency(String),

    /// The data plane failed.
    #[error("data plane: {message}")]
    DataPlane {
        /// What failed.
        message: String,
        /// The underlying error, if any.
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },

    /// A bug or impossible state.
    #[error("internal error: {0}")]
    Internal(String),

    /// Serializing a desired object or a status failed (a bug in a builder).
    #[error("cannot serialize {what}")]
    Serialize {
        /// What was being serialized.
        what: String,
        /// The serde error.
        #[source]
        source: serde_json::Error,
    },
}

impl Error {
    /// Wraps a kube client error with what we were doing.
    pub fn kube(action: impl Into<String>, source: kube::Error) -> Self {
        Error::Kube {
            action: action.into(),
            source: KubeError(source),
        }
    }

    /// A data-plane error with an underlying cause.
    pub fn data_plane(
        message: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Error::DataPlane {
            message: message.into(),
            source: Some(Box::new(source)),
        }
    }
}

impl Categorized for Error {
    fn category(&self) -> ErrorCategory {
        match self {
            Error::InvalidSpec(_) | Error::Decode { .. } => ErrorCategory::InvalidSpec,
            Error::Kube { source, .. } => source.category(),
            Error::Dependency(_) => ErrorCategory::Dependency,
            Error::DataPlane { .. } => ErrorCategory::DataPlane,
            Error::Internal(_) | Error::Serialize { .. } => ErrorCategory::Internal,
        }
    }
}

/// A kube client error with a readable Display: kube's own Display of API errors embeds the whole
/// `Status` debug dump, which is noise in events and conditions.
#[derive(Debug)]
pub struct KubeError(pub kube::Error);

impl KubeError {
    /// Conflicts (409) are retried soon and counted apart; everything else is a KubeApi error.
    pub fn category(&self) -> ErrorCategory {
        match &self.0 {
            kube::Error::Api(status) if status.code == 409 => ErrorCategory::Conflict,
            _ => ErrorCategory::KubeApi,
        }
    }

    /// The HTTP status code when the API server answered with an error status.
    pub fn code(&self) -> Option<u16> {
        match &self.0 {
            kube::Error::Api(status) => Some(status.code),
            _ => None,
        }
    }
}

impl fmt::Display for KubeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            kube::Error::Api(status) => {
                write!(f, "API server answered {} {}", status.code, status.reason)?;
                if !status.message.is_empty() {
                    write!(f, ": {}", status.message)?;
                }
                Ok(())
            }
            other => write!(f, "{other}"),
        }
    }
}

impl std::error::Error for KubeError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.0 {
            // The Status is already fully rendered above.
            kube::Error::Api(_) => None,
            other => other.source(),
        }
    }
}

/// Joins an error and all its sources with ": ", skipping a source whose text the previous message
/// already ends with (some libraries embed their source in Display).
pub fn cause_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut out = err.to_string();
    let mut current = err.source();
    while let Some(cause) = current {
        let text = cause.to_string();
        if !text.is_empty() && !out.ends_with(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        current = cause.source();
    }
    out
}

/// Convenience alias for results with the core [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests may unwrap (project rule)
mod tests {
    use super::*;
    use kube::core::Status;

    fn api_error(code: u16, reason: &str, message: &str) -> kube::Error {
        let mut status = Status::failure(message, reason);
        status.code = code;
        kube::Error::Api(Box::new(status))
    }

    #[test]
    fn categories_have_stable_unique_reasons() {
        let reasons: std::collections::BTreeSet<_> =
            ErrorCategory::ALL.iter().map(|c| c.reason()).collect();
        assert_eq!(reasons.len(), ErrorCategory::ALL.len());
        assert_eq!(ErrorCategory::InvalidSpec.reason(), "InvalidSpec");
        assert_eq!(ErrorCategory::KubeApi.reason(), "KubeApiError");
        assert_eq!(ErrorCategory::Conflict.reason(), "Conflict");
        assert_eq!(ErrorCategory::Dependency.reason(), "DependencyNotReady");
        assert_eq!(ErrorCategory::DataPlane.reason(), "DataPlaneError");
        assert_eq!(ErrorCategory::Internal.reason(), "InternalError");
        for reason in reasons {
            // Event reasons must be CamelCase without separators.
            assert!(
                reason.chars().all(|c| c.is_ascii_alphanumeric()),
                "{reason}"
            );
            assert!(
                reason.starts_with(|c: char| c.is_ascii_uppercase()),
                "{reason}"
            );
        }
    }

    #[test]
    fn variants_map_to_categories() {
        let decode = serde_json::from_str::<u32>("\"x\"").unwrap_err();
        let cases: Vec<(Error, ErrorCategory)> = vec![
            (Error::InvalidSpec("x".into()), ErrorCategory::InvalidSpec),
            (
                Error::Decode {
                    kind: "Widget".into(),
                    name: "a/b".into(),
                    source: decode,
                },
                ErrorCategory::InvalidSpec,
            ),
            (
                Error::kube("apply", api_error(409, "Conflict", "c")),
                ErrorCategory::Conflict,
            ),
            (
                Error::kube("apply", api_error(500, "InternalError", "boom")),
                ErrorCategory::KubeApi,
            ),
            (
                Error::kube("get", api_error(404, "NotFound", "nf")),
                ErrorCategory::KubeApi,
            ),
            (
                Error::Dependency("secret".into()),
                ErrorCategory::Dependency,
            ),
            (
                Error::data_plane("ping", std::io::Error::other("refused")),
                ErrorCategory::DataPlane,
            ),
            (Error::Internal("bug".into()), ErrorCategory::Internal),
        ];
        for (err, want) in cases {
            assert_eq!(err.category(), want, "{err}");
        }
    }

    #[test]
    fn only_invalid_spec_waits_for_change() {
        for c in ErrorCategory::ALL {
            assert_eq!(c.waits_for_change(), c == ErrorCategory::InvalidSpec, "{c}");
        }
    }

    #[test]
    fn cause_chain_includes_every_source_once() {
        let err = Error::data_plane("PING redis-0", std::io::Error::other("connection refused"));
        assert_eq!(
            cause_chain(&err),
            "data plane: PING redis-0: connection refused"
        );

        let err = Error::kube(
            "apply ConfigMap ns/cfg",
            api_error(422, "Invalid", "data: bad"),
        );
        assert_eq!(
            cause_chain(&err),
            "apply ConfigMap ns/cfg: API server answered 422 Invalid: data: bad"
        );

        let decode = serde_json::from_str::<u32>("\"x\"").unwrap_err();
        let err = Error::Decode {
            kind: "Widget".into(),
            name: "ns/w".into(),
            source: decode,
        };
        let chain = cause_chain(&err);
        assert!(
            chain.starts_with("cannot decode Widget ns/w: invalid type: string \"x\""),
            "{chain}"
        );
    }
}
