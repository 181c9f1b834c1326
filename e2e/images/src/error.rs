//! Errors of the image library.

use std::path::PathBuf;

/// What can go wrong building an image.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file the definition names could not be read.
    #[error("reading {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// Writing the archive failed.
    #[error("writing {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The definitions file is not valid.
    #[error("image definitions: {0}")]
    Definitions(String),
    /// A helper command (ldd, apt-get, gcc, cargo) failed.
    #[error("{command}: {detail}")]
    Command { command: String, detail: String },
    /// JSON encoding of an OCI document failed.
    #[error("encoding OCI json: {0}")]
    Json(#[from] serde_json::Error),
}

/// Result with [`Error`].
pub type Result<T> = std::result::Result<T, Error>;
