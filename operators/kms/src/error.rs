//! API errors with AWS KMS's error codes (`__type`) and HTTP statuses, so SDKs raise the
//! exceptions applications already handle.

/// A refused or failed KMS request.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum KmsError {
    /// No such key or alias (or not visible to the caller).
    #[error("{0}")]
    NotFound(String),
    /// The key is disabled.
    #[error("{0}")]
    Disabled(String),
    /// The key's state does not allow the operation (e.g. pending deletion).
    #[error("{0}")]
    InvalidState(String),
    /// The ciphertext, key or encryption context is wrong.
    #[error("the ciphertext, key or encryption context is wrong")]
    InvalidCiphertext,
    /// The ciphertext was made under another key than the one named.
    #[error("{0}")]
    IncorrectKey(String),
    /// A parameter is out of range or malformed.
    #[error("{0}")]
    Validation(String),
    /// The request body is not the expected JSON.
    #[error("{0}")]
    Serialization(String),
    /// The caller may not do this.
    #[error("{0}")]
    AccessDenied(String),
    /// The access key is unknown.
    #[error("the security token included in the request is invalid")]
    UnrecognizedClient,
    /// The signature does not match.
    #[error("{0}")]
    InvalidSignature(String),
    /// The Authorization header is missing or malformed.
    #[error("{0}")]
    IncompleteSignature(String),
    /// Authentication is missing.
    #[error("missing authentication token")]
    MissingAuthenticationToken,
    /// Too many keys in the namespace.
    #[error("{0}")]
    LimitExceeded(String),
    /// An operation this service does not implement.
    #[error("{0}")]
    UnsupportedOperation(String),
    /// Something failed on our side.
    #[error("{0}")]
    Internal(String),
}

impl KmsError {
    /// The AWS error code (`__type` in the JSON body).
    pub fn code(&self) -> &'static str {
        match self {
            KmsError::NotFound(_) => "NotFoundException",
            KmsError::Disabled(_) => "DisabledException",
            KmsError::InvalidState(_) => "KMSInvalidStateException",
            KmsError::InvalidCiphertext => "InvalidCiphertextException",
            KmsError::IncorrectKey(_) => "IncorrectKeyException",
            KmsError::Validation(_) => "ValidationException",
            KmsError::Serialization(_) => "SerializationException",
            KmsError::AccessDenied(_) => "AccessDeniedException",
            KmsError::UnrecognizedClient => "UnrecognizedClientException",
            KmsError::InvalidSignature(_) => "InvalidSignatureException",
            KmsError::IncompleteSignature(_) => "IncompleteSignature",
            KmsError::MissingAuthenticationToken => "MissingAuthenticationTokenException",
            KmsError::LimitExceeded(_) => "LimitExceededException",
            KmsError::UnsupportedOperation(_) => "UnsupportedOperationException",
            KmsError::Internal(_) => "KMSInternalException",
        }
    }

    /// The HTTP status AWS answers with.
    pub fn status(&self) -> u16 {
        match self {
            KmsError::AccessDenied(_)
            | KmsError::UnrecognizedClient
            | KmsError::InvalidSignature(_)
            | KmsError::IncompleteSignature(_)
            | KmsError::MissingAuthenticationToken => 403,
            KmsError::Internal(_) => 500,
            _ => 400,
        }
    }

    /// The JSON body: `{"__type": code, "message": text}`.
    pub fn body(&self) -> serde_json::Value {
        serde_json::json!({ "__type": self.code(), "message": self.to_string() })
    }

    /// A bounded label for metrics and audit lines.
    pub fn result_label(&self) -> &'static str {
        self.code()
    }
}
