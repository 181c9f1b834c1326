//! Running a command in a pod's container.

use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::AttachParams;
use tokio::io::AsyncReadExt;

use crate::error::{Error, Result};

/// What a command printed and how it exited.
#[derive(Debug, Clone)]
pub struct ExecOutput {
    pub stdout: String,
    pub stderr: String,
    /// 0 on success; the command's exit code otherwise (a command that could not run is an error).
    pub exit_code: i32,
}

/// Runs `command` in `pod` (its first container, or `container`).
pub async fn exec(
    pods: &Api<Pod>,
    pod: &str,
    container: Option<&str>,
    command: &[&str],
) -> Result<ExecOutput> {
    let mut params = AttachParams::default()
        .stdin(false)
        .stdout(true)
        .stderr(true);
    if let Some(c) = container {
        params = params.container(c);
    }
    let fail = |detail: String| Error::Exec {
        pod: pod.to_string(),
        detail,
    };
    let mut proc = pods.exec(pod, command.iter().copied(), &params).await?;
    let status = proc
        .take_status()
        .ok_or_else(|| fail("no status channel".into()))?;
    let mut stdout = String::new();
    let mut stderr = String::new();
    let out_reader = proc.stdout();
    let err_reader = proc.stderr();
    let read_out = async {
        if let Some(mut r) = out_reader {
            let _ = r.read_to_string(&mut stdout).await;
        }
    };
    let read_err = async {
        if let Some(mut r) = err_reader {
            let _ = r.read_to_string(&mut stderr).await;
        }
    };
    tokio::join!(read_out, read_err);
    let status = status.await;
    proc.join().await.map_err(|e| fail(e.to_string()))?;
    let exit_code = outcome(status.as_ref()).map_err(fail)?;
    Ok(ExecOutput {
        stdout,
        stderr,
        exit_code,
    })
}

type Status = k8s_openapi::apimachinery::pkg::apis::meta::v1::Status;

/// The exit code an exec's final Status reports; an error when the command did not run at all
/// (e.g. "executable file not found"), which is not an exit code.
fn outcome(status: Option<&Status>) -> std::result::Result<i32, String> {
    let Some(status) = status else {
        return Err("the connection closed without an exit status".into());
    };
    if status.status.as_deref() == Some("Success") {
        return Ok(0);
    }
    if status.reason.as_deref() == Some("NonZeroExitCode") {
        return exit_code(status).ok_or_else(|| format!("exit status without a code: {status:?}"));
    }
    Err(status
        .message
        .clone()
        .unwrap_or_else(|| format!("{status:?}")))
}

/// The exit code in a failed exec's Status (`details.causes[reason=ExitCode].message`).
fn exit_code(status: &Status) -> Option<i32> {
    status
        .details
        .as_ref()?
        .causes
        .iter()
        .flatten()
        .find(|c| c.reason.as_deref() == Some("ExitCode"))?
        .message
        .as_deref()?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(value: serde_json::Value) -> Status {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn reads_exit_code_from_status() {
        let failed = status(serde_json::json!({
            "status": "Failure",
            "reason": "NonZeroExitCode",
            "details": {"causes": [{"reason": "ExitCode", "message": "3"}]}
        }));
        assert_eq!(exit_code(&failed), Some(3));
        assert_eq!(outcome(Some(&failed)), Ok(3));
        assert_eq!(
            outcome(Some(&status(serde_json::json!({"status": "Success"})))),
            Ok(0)
        );
    }

    #[test]
    fn a_command_that_did_not_run_is_an_error() {
        let not_found = status(serde_json::json!({
            "status": "Failure",
            "reason": "InternalError",
            "message": "exec: \"nope\": executable file not found in $PATH"
        }));
        assert!(
            outcome(Some(&not_found))
                .unwrap_err()
                .contains("executable file not found")
        );
        assert!(outcome(None).is_err());
    }
}
