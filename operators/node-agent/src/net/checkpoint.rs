//! The dead-man timer. Before a change the agent writes a checkpoint (policy, generation, undo
//! record, deadline) to a host directory; it deletes it when the change is confirmed. A
//! checkpoint still present after its deadline means nobody confirmed the change, and whoever
//! notices first reverts it: the watchdog process ([`run_dead_man`], spawned before the change
//! in its own process group so it outlives a SIGKILLed agent), a watchdog sidecar
//! ([`watch_dead_man`]), or the next agent start ([`recover_on_start`]).
//!
//! Exactly one party acts on a checkpoint: confirming renames it to `*.committed`, reverting
//! renames it to `*.reverting` (the claim), and rename is atomic, so a late commit and the
//! watchdog cannot both win. A claim left behind (reverter killed, revert failed) is retried by
//! the next agent start; revert is idempotent.

use std::ffi::OsString;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize, de::DeserializeOwned};
use thiserror::Error;

use crate::crd::network::RenderedBond;
use crate::net::backend::{BackendError, NetworkBackend};
use crate::net::transaction::ClearError;

/// The default host directory (a hostPath volume in the DaemonSet).
pub const DEFAULT_DIR: &str = "/var/lib/agility/node-agent";
/// The checkpoint's file name in that directory.
pub const FILE_NAME: &str = "network-checkpoint.json";

/// What the checkpoint file holds.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Checkpoint<U> {
    /// Unique per transaction, so a watchdog never acts on a later transaction's file.
    pub id: String,
    pub policy: String,
    pub generation: i64,
    pub desired: Vec<RenderedBond>,
    pub undo: U,
    pub created: DateTime<Utc>,
    /// Revert if the change is still unconfirmed at this time.
    pub deadline: DateTime<Utc>,
    pub agent_pid: u32,
}

/// Checkpoint I/O failures.
#[derive(Debug, Error)]
pub enum CheckpointError {
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error("checkpoint {path} is not valid: {source}")]
    Json {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("reverting the checkpoint of policy {policy} generation {generation}: {error}")]
    Revert {
        policy: String,
        generation: i64,
        error: BackendError,
    },
}

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> CheckpointError + 'a {
    move |source| CheckpointError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

/// Result of trying to claim the live checkpoint for reverting.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Claim {
    /// We renamed it; we must revert and then [`CheckpointStore::discard`].
    Claimed,
    /// No live checkpoint, but a claim exists: someone else is reverting (or died doing so).
    HeldByOther,
    /// Neither exists (committed or already reverted).
    Missing,
}

/// The checkpoint file and its siblings (`.tmp`, `.reverting`, `.committed`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckpointStore {
    path: PathBuf,
}

impl CheckpointStore {
    /// A store for the checkpoint file at `path`.
    pub fn new(path: impl Into<PathBuf>) -> CheckpointStore {
        CheckpointStore { path: path.into() }
    }

    /// The store for [`FILE_NAME`] in `dir`.
    pub fn in_dir(dir: impl AsRef<Path>) -> CheckpointStore {
        CheckpointStore::new(dir.as_ref().join(FILE_NAME))
    }

    /// The live checkpoint's path (what `dead-man --checkpoint` takes).
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn sibling(&self, suffix: &str) -> PathBuf {
        let mut name = self.path.as_os_str().to_owned();
        name.push(suffix);
        PathBuf::from(name)
    }

    /// Where a claimed checkpoint lives while it is reverted.
    pub fn claimed_path(&self) -> PathBuf {
        self.sibling(".reverting")
    }

    /// Writes the checkpoint atomically and durably: temp file, fsync, rename, fsync of the
    /// directory (so a power loss cannot leave a change without its record).
    pub fn write<U: Serialize>(&self, checkpoint: &Checkpoint<U>) -> Result<(), CheckpointError> {
        let dir = self.dir();
        fs::create_dir_all(&dir).map_err(io_err("create directory", &dir))?;
        let tmp = self.sibling(".tmp");
        let json =
            serde_json::to_vec_pretty(checkpoint).map_err(|source| CheckpointError::Json {
                path: self.path.clone(),
                source,
            })?;
        let mut file = fs::File::create(&tmp).map_err(io_err("create", &tmp))?;
        file.write_all(&json).map_err(io_err("write", &tmp))?;
        file.sync_all().map_err(io_err("fsync", &tmp))?;
        drop(file);
        fs::rename(&tmp, &self.path).map_err(io_err("rename", &tmp))?;
        sync_dir(&dir)
    }

    fn dir(&self) -> PathBuf {
        match self.path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        }
    }

    /// Reads the live checkpoint (None if there is none).
    pub fn read<U: DeserializeOwned>(&self) -> Result<Option<Checkpoint<U>>, CheckpointError> {
        read_json(&self.path)
    }

    /// Reads a claimed checkpoint (None if there is none).
    pub fn read_claimed<U: DeserializeOwned>(
        &self,
    ) -> Result<Option<Checkpoint<U>>, CheckpointError> {
        read_json(&self.claimed_path())
    }

    /// Claims the live checkpoint for reverting.
    pub fn claim(&self) -> Result<Claim, CheckpointError> {
        let claimed = self.claimed_path();
        match fs::rename(&self.path, &claimed) {
            Ok(()) => {
                sync_dir(&self.dir())?;
                Ok(Claim::Claimed)
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(if claimed.exists() {
                Claim::HeldByOther
            } else {
                Claim::Missing
            }),
            Err(e) => Err(io_err("rename", &self.path)(e)),
        }
    }

    /// Confirms the change: removes the live checkpoint unless a reverter claimed it first.
    pub fn commit(&self) -> Result<(), ClearError> {
        let committed = self.sibling(".committed");
        match fs::rename(&self.path, &committed) {
            Ok(()) => {
                // The rename is the commit; leftovers of the marker are harmless.
                let _ = fs::remove_file(&committed);
                let _ = sync_dir(&self.dir());
                Ok(())
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Err(ClearError::ClaimedByWatchdog),
            Err(e) => Err(ClearError::Io(format!(
                "rename {}: {e}",
                self.path.display()
            ))),
        }
    }

    /// Removes the live checkpoint, the claim and the temp file (after a revert or an aborted
    /// write).
    pub fn discard(&self) -> Result<(), CheckpointError> {
        for path in [self.path.clone(), self.claimed_path(), self.sibling(".tmp")] {
            match fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(io_err("remove", &path)(e)),
            }
        }
        sync_dir(&self.dir())
    }

    /// Waits until no claim exists (another party finished reverting), up to `limit`.
    pub async fn wait_claim_released(&self, limit: Duration) -> bool {
        let claimed = self.claimed_path();
        let started = tokio::time::Instant::now();
        while claimed.exists() {
            if started.elapsed() >= limit {
                return false;
            }
            tokio::time::sleep(POLL).await;
        }
        true
    }
}

const POLL: Duration = Duration::from_millis(200);

fn read_json<U: DeserializeOwned>(path: &Path) -> Result<Option<Checkpoint<U>>, CheckpointError> {
    let bytes = match fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_err("read", path)(e)),
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|source| CheckpointError::Json {
            path: path.to_path_buf(),
            source,
        })
}

fn sync_dir(dir: &Path) -> Result<(), CheckpointError> {
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err("fsync", dir))
}

/// A new transaction id (time and pid make it unique on one node).
pub fn new_id() -> String {
    let now = Utc::now();
    format!(
        "{}-{}-{}",
        now.timestamp(),
        now.timestamp_subsec_nanos(),
        std::process::id()
    )
}

/// What a watchdog did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DeadManOutcome {
    /// No checkpoint when it started.
    NothingToDo,
    /// The checkpoint disappeared before the deadline: the change was confirmed (or reverted
    /// by the agent).
    Confirmed,
    /// A different transaction's checkpoint replaced ours; not ours to handle.
    Superseded,
    /// Someone else claimed it at the deadline.
    ClaimedByOther,
    /// We reverted the change.
    Reverted { policy: String, generation: i64 },
}

/// How often the watchdog re-reads the checkpoint.
const WATCH_POLL: Duration = Duration::from_millis(500);
/// Revert attempts by a watchdog before it leaves the claim for the next agent start.
const WATCH_REVERT_ATTEMPTS: u32 = 3;

/// The watchdog for one checkpoint (`agility-node-agent dead-man --checkpoint <path>`): sleeps
/// until the deadline (polling, so it exits soon after a commit) and, if the same checkpoint is
/// still there, claims and reverts it.
pub async fn run_dead_man<B: NetworkBackend>(
    path: &Path,
    backend: &B,
) -> Result<DeadManOutcome, CheckpointError> {
    let store = CheckpointStore::new(path);
    let Some(first) = store.read::<B::Undo>()? else {
        return Ok(DeadManOutcome::NothingToDo);
    };
    loop {
        let remaining = (first.deadline - Utc::now())
            .to_std()
            .unwrap_or(Duration::ZERO);
        if remaining.is_zero() {
            break;
        }
        tokio::time::sleep(remaining.min(WATCH_POLL)).await;
        match store.read::<B::Undo>()? {
            None => return Ok(DeadManOutcome::Confirmed),
            Some(current) if current.id != first.id => return Ok(DeadManOutcome::Superseded),
            Some(_) => {}
        }
    }
    match store.read::<B::Undo>()? {
        None => return Ok(DeadManOutcome::Confirmed),
        Some(current) if current.id != first.id => return Ok(DeadManOutcome::Superseded),
        Some(_) => {}
    }
    match store.claim()? {
        Claim::Claimed => revert_claimed(&store, backend, WATCH_REVERT_ATTEMPTS).await,
        Claim::HeldByOther => Ok(DeadManOutcome::ClaimedByOther),
        Claim::Missing => Ok(DeadManOutcome::Confirmed),
    }
}

/// The watchdog as a long-running loop (for a sidecar container, which survives the agent's
/// container): reverts any live checkpoint whose deadline has passed. Returns only on an error
/// reading the directory or the file.
pub async fn watch_dead_man<B: NetworkBackend>(
    store: &CheckpointStore,
    backend: &B,
    poll: Duration,
) -> Result<(), CheckpointError> {
    loop {
        if let Some(cp) = store.read::<B::Undo>()?
            && cp.deadline <= Utc::now()
            && store.claim()? == Claim::Claimed
        {
            match revert_claimed(store, backend, WATCH_REVERT_ATTEMPTS).await {
                Ok(outcome) => {
                    tracing::warn!(?outcome, "dead-man watchdog reverted an unconfirmed change")
                }
                Err(e) => tracing::error!(error = %e, "dead-man watchdog could not revert"),
            }
        }
        tokio::time::sleep(poll).await;
    }
}

/// Reverts the claimed checkpoint and removes it; on failure the claim stays for a retry.
async fn revert_claimed<B: NetworkBackend>(
    store: &CheckpointStore,
    backend: &B,
    attempts: u32,
) -> Result<DeadManOutcome, CheckpointError> {
    let Some(cp) = store.read_claimed::<B::Undo>()? else {
        return Ok(DeadManOutcome::ClaimedByOther);
    };
    let mut last = None;
    for attempt in 1..=attempts.max(1) {
        match backend.revert(&cp.undo).await {
            Ok(()) => {
                store.discard()?;
                return Ok(DeadManOutcome::Reverted {
                    policy: cp.policy,
                    generation: cp.generation,
                });
            }
            Err(e) => {
                tracing::warn!(attempt, error = %e, "revert failed");
                last = Some(e);
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }
    Err(CheckpointError::Revert {
        policy: cp.policy,
        generation: cp.generation,
        error: last.unwrap_or_else(|| BackendError::Other("revert not attempted".into())),
    })
}

/// What [`recover_on_start`] found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recovery {
    pub policy: String,
    pub generation: i64,
    /// False when a watchdog held the claim and finished the revert itself.
    pub reverted_by_agent: bool,
}

/// On agent start: a checkpoint (or a claim left by an interrupted revert) means an earlier
/// change was never confirmed; revert it now. The agent should then report the enactment of
/// `policy` as Failing with reason AgentRestarted before enacting anything.
pub async fn recover_on_start<B: NetworkBackend>(
    store: &CheckpointStore,
    backend: &B,
) -> Result<Option<Recovery>, CheckpointError> {
    // A claim left behind first: its reverter died or failed.
    if store.read_claimed::<B::Undo>()?.is_some() {
        return recovered(store, backend).await.map(Some);
    }
    let Some(live) = store.read::<B::Undo>()? else {
        return Ok(None);
    };
    match store.claim()? {
        Claim::Claimed => recovered(store, backend).await.map(Some),
        Claim::HeldByOther => {
            // A watchdog claimed it a moment ago; let it finish.
            store.wait_claim_released(Duration::from_secs(30)).await;
            Ok(Some(Recovery {
                policy: live.policy,
                generation: live.generation,
                reverted_by_agent: false,
            }))
        }
        Claim::Missing => Ok(Some(Recovery {
            policy: live.policy,
            generation: live.generation,
            reverted_by_agent: false,
        })),
    }
}

async fn recovered<B: NetworkBackend>(
    store: &CheckpointStore,
    backend: &B,
) -> Result<Recovery, CheckpointError> {
    match revert_claimed(store, backend, 2).await? {
        DeadManOutcome::Reverted { policy, generation } => Ok(Recovery {
            policy,
            generation,
            reverted_by_agent: true,
        }),
        _ => Ok(Recovery {
            policy: String::new(),
            generation: 0,
            reverted_by_agent: false,
        }),
    }
}

/// How to start the watchdog process: `program args... --checkpoint <path>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeadManCommand {
    pub program: PathBuf,
    pub args: Vec<OsString>,
}

impl DeadManCommand {
    /// This binary's `dead-man` subcommand.
    pub fn current_exe() -> io::Result<DeadManCommand> {
        Ok(DeadManCommand {
            program: std::env::current_exe()?,
            args: vec!["dead-man".into()],
        })
    }

    /// Starts the watchdog in its own process group, so signals to the agent's group do not
    /// reach it and it outlives the agent; a task reaps it when it exits.
    pub fn spawn(&self, checkpoint: &Path) -> io::Result<u32> {
        let mut child = tokio::process::Command::new(&self.program)
            .args(&self.args)
            .arg("--checkpoint")
            .arg(checkpoint)
            .stdin(std::process::Stdio::null())
            .process_group(0)
            .kill_on_drop(false)
            .spawn()?;
        let pid = child.id().unwrap_or(0);
        tokio::spawn(async move {
            let _ = child.wait().await;
        });
        Ok(pid)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::time::Instant;

    use super::*;
    use crate::net::backend::fake::FakeBackend;

    fn checkpoint(deadline_ms: i64, undo: Vec<String>) -> Checkpoint<Vec<String>> {
        let now = Utc::now();
        Checkpoint {
            id: new_id(),
            policy: "uplink".into(),
            generation: 3,
            desired: Vec::new(),
            undo,
            created: now,
            deadline: now + chrono::Duration::milliseconds(deadline_ms),
            agent_pid: 1,
        }
    }

    fn changed_backend() -> FakeBackend {
        let b = FakeBackend::new();
        b.applied.lock().unwrap().push("bond0".into());
        b
    }

    #[test]
    fn write_read_roundtrip_and_claim_protocol() {
        let dir = tempfile::tempdir().unwrap();
        let store = CheckpointStore::in_dir(dir.path().join("sub"));
        assert!(store.read::<Vec<String>>().unwrap().is_none());
        let cp = checkpoint(1000, vec!["eth1".into()]);
        store.write(&cp).unwrap();
        assert_eq!(store.read::<Vec<String>>().unwrap().unwrap(), cp);
        assert!(!store.path().with_extension("json.tmp").exists());
        assert_eq!(store.claim().unwrap(), Claim::Claimed);
        assert_eq!(store.claim().unwrap(), Claim::HeldByOther);
        // A commit after the claim loses.
        assert_eq!(store.commit(), Err(ClearError::ClaimedByWatchdog));
        assert_eq!(store.read_claimed::<Vec<String>>().unwrap().unwrap(), cp);
        store.discard().unwrap();
        assert_eq!(store.claim().unwrap(), Claim::Missing);
        store.write(&cp).unwrap();
        assert_eq!(store.commit(), Ok(()));
        assert_eq!(store.claim().unwrap(), Claim::Missing);
    }

    #[test]
    fn corrupt_checkpoint_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let store = CheckpointStore::in_dir(dir.path());
        std::fs::write(store.path(), b"{not json").unwrap();
        assert!(matches!(
            store.read::<Vec<String>>(),
            Err(CheckpointError::Json { .. })
        ));
    }

    #[tokio::test]
    async fn checkpoint_found_at_start_is_reverted() {
        let dir = tempfile::tempdir().unwrap();
        let store = CheckpointStore::in_dir(dir.path());
        store.write(&checkpoint(60_000, vec![])).unwrap();
        let backend = changed_backend();
        let rec = recover_on_start(&store, &backend).await.unwrap().unwrap();
        assert_eq!(
            rec,
            Recovery {
                policy: "uplink".into(),
                generation: 3,
                reverted_by_agent: true
            }
        );
        assert!(backend.applied().is_empty());
        assert!(!store.path().exists() && !store.claimed_path().exists());
        assert_eq!(recover_on_start(&store, &backend).await.unwrap(), None);
    }

    #[tokio::test]
    async fn dead_man_reverts_after_the_deadline() {
        let dir = tempfile::tempdir().unwrap();
        let store = CheckpointStore::in_dir(dir.path());
        store.write(&checkpoint(300, vec![])).unwrap();
        let backend = changed_backend();
        let started = Instant::now();
        let out = run_dead_man(store.path(), &backend).await.unwrap();
        assert_eq!(
            out,
            DeadManOutcome::Reverted {
                policy: "uplink".into(),
                generation: 3
            }
        );
        assert!(started.elapsed() >= Duration::from_millis(250));
        assert!(backend.applied().is_empty());
        assert!(!store.path().exists() && !store.claimed_path().exists());
    }

    #[tokio::test]
    async fn dead_man_does_nothing_once_committed() {
        let dir = tempfile::tempdir().unwrap();
        let store = CheckpointStore::in_dir(dir.path());
        store.write(&checkpoint(1500, vec![])).unwrap();
        let backend = changed_backend();
        let committer = {
            let store = store.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(200)).await;
                store.commit()
            })
        };
        let started = Instant::now();
        let out = run_dead_man(store.path(), &backend).await.unwrap();
        assert_eq!(out, DeadManOutcome::Confirmed);
        assert_eq!(committer.await.unwrap(), Ok(()));
        assert!(
            started.elapsed() < Duration::from_millis(1200),
            "exits soon after the commit"
        );
        assert_eq!(backend.applied(), vec!["bond0"]);
        assert!(backend.calls().is_empty());
    }

    #[tokio::test]
    async fn dead_man_ignores_a_later_transaction() {
        let dir = tempfile::tempdir().unwrap();
        let store = CheckpointStore::in_dir(dir.path());
        store.write(&checkpoint(800, vec![])).unwrap();
        let backend = changed_backend();
        let replacer = {
            let store = store.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(100)).await;
                let mut next = checkpoint(60_000, vec![]);
                next.id = "other".into();
                store.write(&next).unwrap();
            })
        };
        let out = run_dead_man(store.path(), &backend).await.unwrap();
        replacer.await.unwrap();
        assert_eq!(out, DeadManOutcome::Superseded);
        assert!(backend.calls().is_empty());
        assert_eq!(
            run_dead_man(&dir.path().join("none"), &backend)
                .await
                .unwrap(),
            DeadManOutcome::NothingToDo
        );
    }

    #[tokio::test]
    async fn watcher_reverts_overdue_checkpoints() {
        let dir = tempfile::tempdir().unwrap();
        let store = CheckpointStore::in_dir(dir.path());
        store.write(&checkpoint(100, vec![])).unwrap();
        let backend = changed_backend();
        let _ = tokio::time::timeout(
            Duration::from_millis(600),
            watch_dead_man(&store, &backend, Duration::from_millis(50)),
        )
        .await;
        assert!(backend.applied().is_empty());
        assert!(!store.path().exists());
    }

    #[tokio::test]
    async fn spawns_the_watchdog_with_the_checkpoint_path() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("args");
        let cmd = DeadManCommand {
            program: "/bin/sh".into(),
            args: vec![
                "-c".into(),
                format!("echo \"$@\" > {}", out.display()).into(),
                "sh".into(),
            ],
        };
        cmd.spawn(Path::new("/x/cp.json")).unwrap();
        for _ in 0..50 {
            if out.exists() && !std::fs::read_to_string(&out).unwrap().is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(
            std::fs::read_to_string(&out).unwrap().trim(),
            "--checkpoint /x/cp.json"
        );
    }
}
