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
    /// 0 on success; the exit code the runtime reported otherwise.
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
    let exit_code = match status {
        Some(s) if s.status.as_deref() == Some("Success") => 0,
        Some(s) => exit_code(&s).unwrap_or(-1),
        None => -1,
    };
    Ok(ExecOutput {
        stdout,
        stderr,
        exit_code,
    })
}

/// The exit code in a failed exec's Status (`details.causes[reason=ExitCode].message`).
fn exit_code(status: &k8s_openapi::apimachinery::pkg::apis::meta::v1::Status) -> Option<i32> {
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

    #[test]
    fn reads_exit_code_from_status() {
        let status = serde_json::from_value(serde_json::json!({
            "status": "Failure",
            "reason": "NonZeroExitCode",
            "details": {"causes": [{"reason": "ExitCode", "message": "3"}]}
        }))
        .unwrap();
        assert_eq!(exit_code(&status), Some(3));
    }
}
