//! Running the host tools that have no kernel API (wipefs, blkid, smartctl, lvm), with timeouts.

use std::time::Duration;

use futures::future::BoxFuture;
use tokio::process::Command;

use super::error::DiskError;

/// What a finished command returned.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CommandOutput {
    /// Exit code; `None` when killed by a signal.
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl CommandOutput {
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }
}

/// Runs a program; a seam so the prober and the LVM executor are testable without the tools.
pub trait CommandRunner: Send + Sync {
    fn run<'a>(
        &'a self,
        program: &'a str,
        args: &'a [String],
        timeout: Duration,
    ) -> BoxFuture<'a, Result<CommandOutput, DiskError>>;
}

/// The real runner: tokio processes, killed when the timeout passes.
#[derive(Clone, Copy, Debug, Default)]
pub struct ProcessRunner;

impl CommandRunner for ProcessRunner {
    fn run<'a>(
        &'a self,
        program: &'a str,
        args: &'a [String],
        timeout: Duration,
    ) -> BoxFuture<'a, Result<CommandOutput, DiskError>> {
        Box::pin(async move {
            let command = describe(program, args);
            let child = Command::new(program)
                .args(args)
                // Stable English messages; lvm complains about inherited descriptors otherwise.
                .env("LC_ALL", "C")
                .env("LVM_SUPPRESS_FD_WARNINGS", "1")
                .stdin(std::process::Stdio::null())
                .kill_on_drop(true)
                .output();
            match tokio::time::timeout(timeout, child).await {
                Err(_) => Err(DiskError::Timeout {
                    command,
                    secs: timeout.as_secs(),
                }),
                Ok(Err(source)) => Err(DiskError::Spawn { command, source }),
                Ok(Ok(out)) => Ok(CommandOutput {
                    code: out.status.code(),
                    stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
                    stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
                }),
            }
        })
    }
}

/// `program arg1 arg2` for messages.
pub fn describe(program: &str, args: &[String]) -> String {
    std::iter::once(program)
        .chain(args.iter().map(String::as_str))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The error for a command that ran but failed.
pub fn failed(program: &str, args: &[String], out: &CommandOutput) -> DiskError {
    DiskError::Failed {
        command: describe(program, args),
        code: out.code,
        stderr: out.stderr.trim().to_string(),
    }
}
