//! Errors of disk discovery, probing and LVM.

use std::path::PathBuf;

/// What went wrong while reading the host or running a tool.
#[derive(Debug, thiserror::Error)]
pub enum DiskError {
    #[error("reading {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: unexpected content {content:?}")]
    Parse { path: PathBuf, content: String },
    #[error("running {command}: {source}")]
    Spawn {
        command: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{command} timed out after {secs} s")]
    Timeout { command: String, secs: u64 },
    #[error("{command} exited with {code:?}: {stderr}")]
    Failed {
        command: String,
        code: Option<i32>,
        stderr: String,
    },
    #[error("{command}: unreadable output: {detail}")]
    Output { command: String, detail: String },
}

impl DiskError {
    pub(crate) fn read(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        DiskError::Read {
            path: path.into(),
            source,
        }
    }
}
