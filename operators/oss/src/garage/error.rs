//! Errors of the Garage clients (admin API and S3), classified so callers can branch on what
//! matters to a reconcile: absent, already there, not empty, bad credentials, or anything else.

use std::time::Duration;

use serde::Deserialize;

/// Result of the Garage clients.
pub type Result<T, E = GarageError> = std::result::Result<T, E>;

/// An error talking to Garage.
#[derive(Debug, thiserror::Error)]
pub enum GarageError {
    /// The bucket, key, upload or node does not exist (404, or a `NoSuch*` code).
    #[error("not found ({code}): {message}")]
    NotFound { code: String, message: String },
    /// The name is taken (409: `BucketAlreadyExists`, `KeyAlreadyExists`, ...).
    #[error("conflict ({code}): {message}")]
    Conflict { code: String, message: String },
    /// `DeleteBucket` on a bucket that still holds objects or uploads (409 `BucketNotEmpty`).
    #[error("bucket not empty: {message}")]
    BucketNotEmpty { message: String },
    /// The admin token or the S3 signature was refused (401/403).
    #[error("unauthorized ({status}): {message}")]
    Unauthorized { status: u16, message: String },
    /// Any other error answer of Garage.
    #[error("garage error {status} ({code}): {message}")]
    Api {
        status: u16,
        code: String,
        message: String,
    },
    /// The request never got an answer (connection refused, reset, ...).
    #[error("transport: {0}")]
    Transport(String),
    /// No complete answer within the client's timeout.
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    /// The answer was not what the API documents (undecodable JSON or XML).
    #[error("invalid response: {0}")]
    InvalidResponse(String),
    /// The request could not be built (bad base URL, unsignable request, ...).
    #[error("invalid request: {0}")]
    InvalidRequest(String),
}

impl GarageError {
    /// Whether the thing asked for does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(self, GarageError::NotFound { .. })
    }

    /// Whether the name asked for is taken.
    pub fn is_conflict(&self) -> bool {
        matches!(self, GarageError::Conflict { .. })
    }

    /// Garage's error code, when it answered with one.
    pub fn code(&self) -> Option<&str> {
        match self {
            GarageError::NotFound { code, .. }
            | GarageError::Conflict { code, .. }
            | GarageError::Api { code, .. } => Some(code),
            GarageError::BucketNotEmpty { .. } => Some("BucketNotEmpty"),
            _ => None,
        }
    }

    /// Whether retrying the same request later may succeed (Garage down, overloaded or
    /// still forming its cluster).
    pub fn is_transient(&self) -> bool {
        match self {
            GarageError::Transport(_) | GarageError::Timeout(_) => true,
            GarageError::Api { status, .. } => *status >= 500,
            _ => false,
        }
    }

    /// Classifies an error answer from its status and Garage's code.
    pub(crate) fn from_status(status: u16, code: Option<String>, message: String) -> Self {
        let code = code.unwrap_or_default();
        match (status, code.as_str()) {
            (_, "BucketNotEmpty") => GarageError::BucketNotEmpty { message },
            (_, c) if c.starts_with("NoSuch") => GarageError::NotFound { code, message },
            (_, "BucketAlreadyExists" | "BucketAlreadyOwnedByYou" | "KeyAlreadyExists") => {
                GarageError::Conflict { code, message }
            }
            (404, _) => GarageError::NotFound { code, message },
            (409, _) => GarageError::Conflict { code, message },
            (401 | 403, _) => GarageError::Unauthorized { status, message },
            _ => GarageError::Api {
                status,
                code,
                message,
            },
        }
    }

    /// An admin API error answer: JSON `{"code", "message", "path", "region"}`; anything else
    /// (a proxy's HTML page) is kept as the message.
    pub(crate) fn from_admin_body(status: u16, body: &[u8]) -> Self {
        #[derive(Deserialize)]
        struct Body {
            code: Option<String>,
            message: Option<String>,
        }
        match serde_json::from_slice::<Body>(body) {
            Ok(b) => Self::from_status(status, b.code, b.message.unwrap_or_default()),
            Err(_) => Self::from_status(status, None, truncated(body)),
        }
    }

    /// An S3 error answer: XML `<Error><Code/><Message/></Error>` (HEAD answers have no body).
    pub(crate) fn from_s3_body(status: u16, body: &[u8]) -> Self {
        #[derive(Deserialize)]
        #[serde(rename_all = "PascalCase")]
        struct Body {
            code: Option<String>,
            message: Option<String>,
        }
        let parsed = std::str::from_utf8(body)
            .ok()
            .and_then(|s| quick_xml::de::from_str::<Body>(s).ok());
        match parsed {
            Some(b) => Self::from_status(status, b.code, b.message.unwrap_or_default()),
            None => Self::from_status(status, None, truncated(body)),
        }
    }
}

/// The start of a body, for messages (an error page may be large).
fn truncated(body: &[u8]) -> String {
    let s = String::from_utf8_lossy(body);
    s.chars().take(512).collect()
}
