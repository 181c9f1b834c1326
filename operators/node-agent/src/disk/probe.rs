//! Probes that need a tool: on-disk signatures (there may be no udev, so we read the device
//! ourselves through libblkid's tools), SMART health, and LVM's physical volumes.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use serde::Deserialize;

use super::command::{CommandRunner, ProcessRunner, describe, failed};
use super::error::DiskError;
use super::lvm::exec::{report, report_args};
use super::lvm::report::{PV_FIELDS, Pv, parse_pvs};

/// A signature found on a device: a filesystem, RAID member, LVM PV or partition table.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Signature {
    /// `ext4`, `xfs`, `LVM2_member`, `dos`, `gpt`, `swap`, ...
    pub kind: String,
    pub offset: Option<String>,
    pub uuid: Option<String>,
    pub label: Option<String>,
}

/// The probes discovery needs. Implementations must time out rather than hang.
pub trait Prober: Send + Sync {
    /// Every signature on the device (empty when blank).
    fn signatures<'a>(
        &'a self,
        device: &'a Path,
    ) -> BoxFuture<'a, Result<Vec<Signature>, DiskError>>;
    /// SMART overall health (`PASSED`/`FAILED`); `None` when the device or host has no SMART.
    fn smart_health<'a>(
        &'a self,
        device: &'a Path,
    ) -> BoxFuture<'a, Result<Option<String>, DiskError>>;
    /// LVM's physical volumes on this host.
    fn physical_volumes(&self) -> BoxFuture<'_, Result<Vec<Pv>, DiskError>>;
}

/// How to run `lvm` (shared by the prober and the pool executor).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LvmCli {
    pub program: String,
    /// Passed as `--config` (e.g. `devices { scan = "/host/dev" }` in a container).
    pub config: Option<String>,
    pub timeout: Duration,
}

impl Default for LvmCli {
    fn default() -> Self {
        LvmCli {
            program: "lvm".into(),
            config: None,
            timeout: Duration::from_secs(60),
        }
    }
}

impl LvmCli {
    /// The argument list of `lvm <command> [--config ...] <args>`.
    pub fn args(&self, command: &str, args: &[&str]) -> Vec<String> {
        let mut v = vec![command.to_string()];
        if let Some(c) = &self.config {
            v.push("--config".into());
            v.push(c.clone());
        }
        v.extend(args.iter().map(|s| s.to_string()));
        v
    }
}

/// The real prober: `wipefs --no-act --json` (falling back to `blkid -p` where wipefs is
/// missing), `smartctl --json -H`, `lvm pvs --reportformat json`.
#[derive(Clone)]
pub struct SystemProber {
    pub runner: Arc<dyn CommandRunner>,
    /// Per-command timeout of wipefs/blkid/smartctl.
    pub timeout: Duration,
    /// Ask smartctl at all (it may be absent from the image; absent means no SMART data).
    pub smart: bool,
    pub lvm: LvmCli,
}

impl Default for SystemProber {
    fn default() -> Self {
        SystemProber {
            runner: Arc::new(ProcessRunner),
            timeout: Duration::from_secs(10),
            smart: true,
            lvm: LvmCli::default(),
        }
    }
}

fn is_not_found(e: &DiskError) -> bool {
    matches!(e, DiskError::Spawn { source, .. } if source.kind() == std::io::ErrorKind::NotFound)
}

impl SystemProber {
    async fn blkid(&self, device: &Path) -> Result<Vec<Signature>, DiskError> {
        let args = vec!["-p".into(), "-o".into(), "export".into(), path_arg(device)];
        let out = self.runner.run("blkid", &args, self.timeout).await?;
        match out.code {
            Some(0) => Ok(parse_blkid_export(&out.stdout)),
            // blkid's "nothing found".
            Some(2) => Ok(Vec::new()),
            _ => Err(failed("blkid", &args, &out)),
        }
    }
}

fn path_arg(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

impl Prober for SystemProber {
    fn signatures<'a>(
        &'a self,
        device: &'a Path,
    ) -> BoxFuture<'a, Result<Vec<Signature>, DiskError>> {
        Box::pin(async move {
            let args = vec!["--no-act".into(), "--json".into(), path_arg(device)];
            match self.runner.run("wipefs", &args, self.timeout).await {
                Ok(out) if out.success() => {
                    parse_wipefs_json(&out.stdout).map_err(|detail| DiskError::Output {
                        command: describe("wipefs", &args),
                        detail,
                    })
                }
                Ok(out) => Err(failed("wipefs", &args, &out)),
                Err(e) if is_not_found(&e) => self.blkid(device).await,
                Err(e) => Err(e),
            }
        })
    }

    fn smart_health<'a>(
        &'a self,
        device: &'a Path,
    ) -> BoxFuture<'a, Result<Option<String>, DiskError>> {
        Box::pin(async move {
            if !self.smart {
                return Ok(None);
            }
            let args = vec!["--json".into(), "-H".into(), path_arg(device)];
            let out = match self.runner.run("smartctl", &args, self.timeout).await {
                Err(e) if is_not_found(&e) => return Ok(None),
                other => other?,
            };
            // smartctl's exit code is a bit mask (bit 3: disk failing); the JSON says it all.
            parse_smartctl_json(&out.stdout).map_err(|detail| DiskError::Output {
                command: describe("smartctl", &args),
                detail,
            })
        })
    }

    fn physical_volumes(&self) -> BoxFuture<'_, Result<Vec<Pv>, DiskError>> {
        Box::pin(async move {
            let json = report(self.runner.as_ref(), &self.lvm, "pvs", PV_FIELDS).await?;
            parse_pvs(&json).map_err(|e| DiskError::Output {
                command: describe(&self.lvm.program, &report_args(&self.lvm, "pvs", PV_FIELDS)),
                detail: e.to_string(),
            })
        })
    }
}

#[derive(Deserialize)]
struct WipefsJson {
    #[serde(default)]
    signatures: Vec<WipefsSig>,
}

#[derive(Deserialize)]
struct WipefsSig {
    #[serde(rename = "type", default)]
    kind: Option<String>,
    #[serde(default)]
    offset: Option<String>,
    #[serde(default)]
    uuid: Option<String>,
    #[serde(default)]
    label: Option<String>,
}

/// `wipefs --no-act --json` output; some versions print nothing at all for a blank device.
pub fn parse_wipefs_json(text: &str) -> Result<Vec<Signature>, String> {
    if text.trim().is_empty() {
        return Ok(Vec::new());
    }
    let parsed: WipefsJson = serde_json::from_str(text).map_err(|e| e.to_string())?;
    Ok(parsed
        .signatures
        .into_iter()
        .map(|s| Signature {
            kind: s.kind.unwrap_or_else(|| "unknown".into()),
            offset: s.offset,
            uuid: s.uuid,
            label: s.label,
        })
        .collect())
}

/// `blkid -p -o export` output (one signature at most: blkid reports the first it trusts).
pub fn parse_blkid_export(text: &str) -> Vec<Signature> {
    let kv: BTreeMap<&str, &str> = text
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim(), v.trim()))
        .collect();
    let kind = kv.get("TYPE").or_else(|| kv.get("PTTYPE"));
    kind.map(|k| Signature {
        kind: k.to_string(),
        offset: None,
        uuid: kv
            .get("UUID")
            .or_else(|| kv.get("PTUUID"))
            .map(|s| s.to_string()),
        label: kv.get("LABEL").map(|s| s.to_string()),
    })
    .into_iter()
    .collect()
}

#[derive(Deserialize)]
struct SmartJson {
    #[serde(default)]
    smart_status: Option<SmartStatus>,
    #[serde(default)]
    smartctl: Option<SmartctlMeta>,
}
#[derive(Deserialize)]
struct SmartStatus {
    passed: bool,
}
#[derive(Deserialize)]
struct SmartctlMeta {
    #[serde(default)]
    exit_status: i64,
}

/// `smartctl --json -H`: `PASSED`/`FAILED`, or `None` when the device could not be asked (bits 1
/// and 2 of exit_status: bad command line, device open failed) or has no SMART status.
pub fn parse_smartctl_json(text: &str) -> Result<Option<String>, String> {
    let parsed: SmartJson = serde_json::from_str(text).map_err(|e| e.to_string())?;
    let exit = parsed.smartctl.map(|m| m.exit_status).unwrap_or(0);
    if exit & 0b11 != 0 {
        return Ok(None);
    }
    Ok(parsed
        .smart_status
        .map(|s| if s.passed { "PASSED" } else { "FAILED" }.to_string()))
}

/// A prober answering from recorded outputs (tests, benches, the agent's dry runs).
#[derive(Clone, Debug)]
pub struct FakeProber {
    /// Device path → signatures, or an error message.
    pub signatures: BTreeMap<PathBuf, Result<Vec<Signature>, String>>,
    pub smart: BTreeMap<PathBuf, Option<String>>,
    pub pvs: Result<Vec<Pv>, String>,
}

impl FakeProber {
    pub fn new() -> Self {
        FakeProber {
            signatures: BTreeMap::new(),
            smart: BTreeMap::new(),
            pvs: Ok(Vec::new()),
        }
    }
}

impl Default for FakeProber {
    fn default() -> Self {
        FakeProber::new()
    }
}

fn fake_error(what: &str, msg: &str) -> DiskError {
    DiskError::Failed {
        command: what.to_string(),
        code: Some(1),
        stderr: msg.to_string(),
    }
}

impl Prober for FakeProber {
    fn signatures<'a>(
        &'a self,
        device: &'a Path,
    ) -> BoxFuture<'a, Result<Vec<Signature>, DiskError>> {
        Box::pin(async move {
            match self.signatures.get(device) {
                Some(Ok(s)) => Ok(s.clone()),
                Some(Err(m)) => Err(fake_error("wipefs", m)),
                None => Ok(Vec::new()),
            }
        })
    }
    fn smart_health<'a>(
        &'a self,
        device: &'a Path,
    ) -> BoxFuture<'a, Result<Option<String>, DiskError>> {
        Box::pin(async move { Ok(self.smart.get(device).cloned().flatten()) })
    }
    fn physical_volumes(&self) -> BoxFuture<'_, Result<Vec<Pv>, DiskError>> {
        Box::pin(async move { self.pvs.clone().map_err(|m| fake_error("lvm pvs", &m)) })
    }
}
