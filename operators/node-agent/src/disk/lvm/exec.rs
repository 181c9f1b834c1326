//! Running a plan's steps and reading LVM's reports, through `lvm <command>` with timeouts.

use crate::disk::command::{CommandRunner, describe, failed};
use crate::disk::error::DiskError;
use crate::disk::probe::LvmCli;

use super::plan::Step;
use super::report::{LV_FIELDS, LvmReport, PV_FIELDS, VG_FIELDS, parse_lvs, parse_pvs, parse_vgs};

/// A step that failed; the steps before it ran.
#[derive(Debug, thiserror::Error)]
#[error("{step:?} failed after {done} step(s): {source}")]
pub struct LvmError {
    pub step: Step,
    pub done: usize,
    #[source]
    pub source: DiskError,
}

/// Runs the steps in order, stopping at the first failure. `wipefs -a` opens the device
/// exclusively, so the kernel refuses it on a device that got mounted since discovery; likewise
/// pvcreate refuses a device in use and, with no terminal, every lvm confirmation is answered no.
pub async fn execute(
    steps: &[Step],
    runner: &dyn CommandRunner,
    lvm: &LvmCli,
) -> Result<(), LvmError> {
    for (done, step) in steps.iter().enumerate() {
        let (cmd, args) = step.command();
        let (program, args) = if cmd == "wipefs" {
            ("wipefs".to_string(), args)
        } else {
            let a: Vec<&str> = args.iter().map(String::as_str).collect();
            (lvm.program.clone(), lvm.args(cmd, &a))
        };
        tracing::info!(command = %describe(&program, &args), "disk pool step");
        let result = match runner.run(&program, &args, lvm.timeout).await {
            Ok(out) if out.success() => Ok(()),
            Ok(out) => Err(failed(&program, &args, &out)),
            Err(e) => Err(e),
        };
        result.map_err(|source| LvmError {
            step: step.clone(),
            done,
            source,
        })?;
    }
    Ok(())
}

/// `pvs`, `vgs` and `lvs` of this node.
pub async fn read_report(runner: &dyn CommandRunner, lvm: &LvmCli) -> Result<LvmReport, DiskError> {
    let pvs = report(runner, lvm, "pvs", PV_FIELDS).await?;
    let vgs = report(runner, lvm, "vgs", VG_FIELDS).await?;
    let lvs = report(runner, lvm, "lvs", LV_FIELDS).await?;
    let bad = |what: &str, e: super::report::ReportError| DiskError::Output {
        command: format!("{} {what}", lvm.program),
        detail: e.to_string(),
    };
    Ok(LvmReport {
        pvs: parse_pvs(&pvs).map_err(|e| bad("pvs", e))?,
        vgs: parse_vgs(&vgs).map_err(|e| bad("vgs", e))?,
        lvs: parse_lvs(&lvs).map_err(|e| bad("lvs", e))?,
    })
}

/// The arguments of a JSON report of `cmd` (`pvs`, `vgs`, `lvs`) with `fields`, in bytes.
pub(crate) fn report_args(lvm: &LvmCli, cmd: &str, fields: &str) -> Vec<String> {
    lvm.args(
        cmd,
        &[
            "--reportformat",
            "json",
            "--units",
            "b",
            "--nosuffix",
            "-o",
            fields,
        ],
    )
}

/// Runs one JSON report and returns its output.
pub(crate) async fn report(
    runner: &dyn CommandRunner,
    lvm: &LvmCli,
    cmd: &str,
    fields: &str,
) -> Result<String, DiskError> {
    let args = report_args(lvm, cmd, fields);
    let out = runner.run(&lvm.program, &args, lvm.timeout).await?;
    if !out.success() {
        return Err(failed(&lvm.program, &args, &out));
    }
    Ok(out.stdout)
}
