//! The safe apply of a network change as a pure, synchronous state machine: no I/O, time is an
//! input. [`Transaction::handle`] takes an event and returns the actions to perform; the async
//! driver ([`enact`], in [`driver`](self) below) performs them and feeds back their results.
//!
//! Idle → Baseline (probes that pass now) → Snapshotting (undo record) → Checkpointing (the
//! dead-man record) → Applying → Verifying (only the baseline probes, retried until the probe
//! timeout) → Committing (delete the checkpoint) → Committed; any failure after the checkpoint
//! → RollingBack → RolledBack | RollbackFailed; failures before it → Aborted (nothing changed).

use std::time::{Duration, Instant};

use crate::crd::network::ProbeSpec;
use crate::net::backend::BackendError;
use crate::net::probe::{ProbeKinds, ProbeReport, kinds_to_string};

/// Timing of a transaction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settings {
    /// The probes the policy enables.
    pub enabled: ProbeKinds,
    /// How long the baseline probes may keep failing after the change (`timeoutSeconds`).
    pub probe_timeout: Duration,
    /// When the dead-man watchdog reverts an unconfirmed change, counted from the checkpoint
    /// write (`rollbackTimeoutSeconds`).
    pub rollback_timeout: Duration,
    /// Pause between probe attempts while verifying.
    pub retry_interval: Duration,
    /// The agent gives up this long before the watchdog's deadline, so the two never race.
    pub margin: Duration,
    /// Revert attempts before giving up (RollbackFailed).
    pub revert_attempts: u32,
}

impl Settings {
    /// From a policy's `probes` section.
    pub fn from_spec(spec: &ProbeSpec) -> Settings {
        Settings {
            enabled: crate::net::probe::enabled_kinds(spec),
            probe_timeout: Duration::from_secs(u64::from(spec.timeout_seconds)),
            rollback_timeout: Duration::from_secs(u64::from(spec.rollback_timeout_seconds)),
            retry_interval: Duration::from_secs(2),
            margin: Duration::from_secs(3),
            revert_attempts: 3,
        }
    }

    /// The last instant the agent itself may act, for a checkpoint written at `written`: the
    /// watchdog's deadline minus the margin, but at least half the rollback timeout.
    pub fn agent_deadline(&self, written: Instant) -> Instant {
        let budget = self
            .rollback_timeout
            .saturating_sub(self.margin)
            .max(self.rollback_timeout / 2);
        written + budget
    }
}

/// Why a transaction ended the way it did (also the enactment's `status.reason`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reason {
    /// The change is being made.
    Applying,
    /// No probe passed before the change, so none is required after it.
    NoBaselineProbes,
    /// The baseline probes passed after the change.
    Committed,
    /// These baseline probes still failed when the probe timeout ran out.
    ProbesFailed(ProbeKinds),
    /// The backend failed to apply.
    ApplyFailed,
    /// Apply did not finish before the agent's deadline.
    ApplyTimedOut,
    /// The undo record could not be taken (nothing was changed).
    SnapshotFailed,
    /// The checkpoint could not be written or removed.
    CheckpointFailed,
    /// The revert itself failed.
    RollbackFailed,
    /// A checkpoint from an earlier agent was found and reverted.
    AgentRestarted,
    /// The dead-man watchdog reverted the change first.
    DeadManTimer,
}

impl Reason {
    /// CamelCase name for status fields.
    pub fn as_str(&self) -> &'static str {
        match self {
            Reason::Applying => "Applying",
            Reason::NoBaselineProbes => "NoBaselineProbes",
            Reason::Committed => "Committed",
            Reason::ProbesFailed(_) => "ProbesFailed",
            Reason::ApplyFailed => "ApplyFailed",
            Reason::ApplyTimedOut => "ApplyTimedOut",
            Reason::SnapshotFailed => "SnapshotFailed",
            Reason::CheckpointFailed => "CheckpointFailed",
            Reason::RollbackFailed => "RollbackFailed",
            Reason::AgentRestarted => "AgentRestarted",
            Reason::DeadManTimer => "DeadManTimer",
        }
    }
}

/// The enactment phase a report sets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    Progressing,
    Available,
    Failing,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Progressing => "Progressing",
            Phase::Available => "Available",
            Phase::Failing => "Failing",
        }
    }
}

/// A status update for the enactment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Report {
    pub phase: Phase,
    pub reason: Reason,
    pub message: String,
}

/// Why removing the checkpoint on commit failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClearError {
    /// The watchdog had already claimed the checkpoint and is reverting.
    ClaimedByWatchdog,
    /// The file could not be removed.
    Io(String),
}

/// What happened (fed to [`Transaction::handle`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    Start,
    BaselineDone(ProbeReport),
    SnapshotDone(Result<(), BackendError>),
    CheckpointWritten(Result<(), String>),
    Applied(Result<(), BackendError>),
    ProbesResult(ProbeReport),
    /// Time passed (the driver sends it when [`Transaction::wake_at`] is reached).
    Tick,
    Reverted(Result<(), BackendError>),
    CheckpointCleared(Result<(), ClearError>),
}

/// What the driver must do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    RunBaselineProbes(ProbeKinds),
    Snapshot,
    /// Write the checkpoint (deadline = now + rollback timeout) and arm the watchdog.
    WriteCheckpoint,
    Apply,
    /// Run these probes, not before the given instant.
    RunProbes {
        probes: ProbeKinds,
        not_before: Instant,
    },
    /// Abandon any in-flight apply or probes, claim the checkpoint and revert.
    Revert,
    ClearCheckpoint,
    Report(Report),
}

/// Where the transaction is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum State {
    Idle,
    Baseline,
    Snapshotting,
    Checkpointing {
        started: Instant,
    },
    Applying {
        deadline: Instant,
    },
    Verifying {
        deadline: Instant,
        failing: ProbeKinds,
        attempts: u32,
    },
    Committing,
    Committed,
    RollingBack {
        reason: Reason,
        attempts: u32,
    },
    RolledBack {
        reason: Reason,
    },
    RollbackFailed {
        reason: Reason,
        error: String,
    },
    Aborted {
        reason: Reason,
    },
}

impl State {
    /// Whether the transaction is over.
    pub fn is_terminal(&self) -> bool {
        matches!(
            self,
            State::Committed
                | State::RolledBack { .. }
                | State::RollbackFailed { .. }
                | State::Aborted { .. }
        )
    }
}

/// The machine.
#[derive(Clone, Debug)]
pub struct Transaction {
    settings: Settings,
    state: State,
    baseline: ProbeKinds,
    /// The last failure messages of the baseline probes (for the rollback message).
    last_failures: String,
    /// The agent's own hard deadline, fixed when the checkpoint is written.
    hard_deadline: Option<Instant>,
}

impl Transaction {
    pub fn new(settings: Settings) -> Transaction {
        Transaction {
            settings,
            state: State::Idle,
            baseline: ProbeKinds::new(),
            last_failures: String::new(),
            hard_deadline: None,
        }
    }

    pub fn state(&self) -> &State {
        &self.state
    }

    /// The probes that passed before the change.
    pub fn baseline(&self) -> &ProbeKinds {
        &self.baseline
    }

    /// When the driver must send [`Event::Tick`] if nothing else happened by then.
    pub fn wake_at(&self) -> Option<Instant> {
        match &self.state {
            State::Applying { deadline } | State::Verifying { deadline, .. } => Some(*deadline),
            _ => None,
        }
    }

    /// Advances on `event` at `now`; returns the actions to perform, in order. Events that do
    /// not fit the current state (late results of abandoned work) are ignored.
    pub fn handle(&mut self, event: Event, now: Instant) -> Vec<Action> {
        let state = std::mem::replace(&mut self.state, State::Idle);
        let (next, actions) = self.step(state, event, now);
        self.state = next;
        actions
    }

    fn step(&mut self, state: State, event: Event, now: Instant) -> (State, Vec<Action>) {
        match (state, event) {
            (State::Idle, Event::Start) => (
                State::Baseline,
                vec![Action::RunBaselineProbes(self.settings.enabled.clone())],
            ),
            (State::Baseline, Event::BaselineDone(report)) => {
                // Only enabled probes count, whatever the runner returned.
                self.baseline = report
                    .passed()
                    .intersection(&self.settings.enabled)
                    .copied()
                    .collect();
                let mut actions = Vec::new();
                if self.baseline.is_empty() {
                    actions.push(report_action(
                        Phase::Progressing,
                        Reason::NoBaselineProbes,
                        format!(
                            "no probe passed before the change (enabled: {}); applying without connectivity checks",
                            kinds_to_string(&self.settings.enabled)
                        ),
                    ));
                }
                actions.push(Action::Snapshot);
                (State::Snapshotting, actions)
            }
            (State::Snapshotting, Event::SnapshotDone(Ok(()))) => (
                State::Checkpointing { started: now },
                vec![Action::WriteCheckpoint],
            ),
            (State::Snapshotting, Event::SnapshotDone(Err(e))) => self.abort(
                Reason::SnapshotFailed,
                format!("could not record the current state, nothing changed: {e}"),
                false,
            ),
            (State::Checkpointing { started }, Event::CheckpointWritten(Ok(()))) => {
                let deadline = self.settings.agent_deadline(started);
                self.hard_deadline = Some(deadline);
                (
                    State::Applying { deadline },
                    vec![
                        report_action(
                            Phase::Progressing,
                            Reason::Applying,
                            format!(
                                "applying; probes passing before: {}",
                                kinds_to_string(&self.baseline)
                            ),
                        ),
                        Action::Apply,
                    ],
                )
            }
            (State::Checkpointing { .. }, Event::CheckpointWritten(Err(e))) => self.abort(
                Reason::CheckpointFailed,
                format!("could not write the rollback checkpoint, nothing changed: {e}"),
                true,
            ),
            (State::Applying { .. }, Event::Applied(Ok(()))) => {
                if self.baseline.is_empty() {
                    return (State::Committing, vec![Action::ClearCheckpoint]);
                }
                let hard = self
                    .hard_deadline
                    .unwrap_or(now + self.settings.probe_timeout);
                let deadline = (now + self.settings.probe_timeout).min(hard);
                (
                    State::Verifying {
                        deadline,
                        failing: self.baseline.clone(),
                        attempts: 0,
                    },
                    vec![Action::RunProbes {
                        probes: self.baseline.clone(),
                        not_before: now,
                    }],
                )
            }
            (State::Applying { .. }, Event::Applied(Err(e))) => {
                self.last_failures = e.to_string();
                self.roll_back(Reason::ApplyFailed)
            }
            (State::Applying { deadline }, Event::Tick) if now >= deadline => {
                self.last_failures = "apply did not finish in time".to_string();
                self.roll_back(Reason::ApplyTimedOut)
            }
            (
                State::Verifying {
                    deadline, attempts, ..
                },
                Event::ProbesResult(report),
            ) => {
                let passed = report.passed();
                let failing: ProbeKinds = self.baseline.difference(&passed).copied().collect();
                if failing.is_empty() {
                    return (State::Committing, vec![Action::ClearCheckpoint]);
                }
                let failures = report.failures();
                self.last_failures = failing
                    .iter()
                    .map(|k| {
                        let why = failures.get(k).map_or("not run", String::as_str);
                        format!("{k}: {why}")
                    })
                    .collect::<Vec<_>>()
                    .join("; ");
                if now >= deadline {
                    return self.roll_back(Reason::ProbesFailed(failing));
                }
                (
                    State::Verifying {
                        deadline,
                        failing: failing.clone(),
                        attempts: attempts + 1,
                    },
                    vec![Action::RunProbes {
                        probes: self.baseline.clone(),
                        not_before: now + self.settings.retry_interval,
                    }],
                )
            }
            (
                State::Verifying {
                    deadline, failing, ..
                },
                Event::Tick,
            ) if now >= deadline => {
                if self.last_failures.is_empty() {
                    self.last_failures = "the probes did not finish in time".to_string();
                }
                self.roll_back(Reason::ProbesFailed(failing))
            }
            (State::Committing, Event::CheckpointCleared(Ok(()))) => {
                let message = if self.baseline.is_empty() {
                    "applied (no probe was required)".to_string()
                } else {
                    format!(
                        "applied; probes passing after the change: {}",
                        kinds_to_string(&self.baseline)
                    )
                };
                (
                    State::Committed,
                    vec![report_action(Phase::Available, Reason::Committed, message)],
                )
            }
            (State::Committing, Event::CheckpointCleared(Err(ClearError::ClaimedByWatchdog))) => (
                State::RolledBack {
                    reason: Reason::DeadManTimer,
                },
                vec![report_action(
                    Phase::Failing,
                    Reason::DeadManTimer,
                    "the dead-man watchdog reverted the change before the agent could confirm it"
                        .to_string(),
                )],
            ),
            (State::Committing, Event::CheckpointCleared(Err(ClearError::Io(e)))) => {
                // A checkpoint left behind would be reverted by the watchdog later anyway;
                // revert now so the node and the report agree.
                self.last_failures = format!("could not remove the checkpoint: {e}");
                self.roll_back(Reason::CheckpointFailed)
            }
            (State::RollingBack { reason, .. }, Event::Reverted(Ok(()))) => {
                let message = format!(
                    "rolled back ({}): {}",
                    reason_detail(&reason),
                    self.last_failures
                );
                (
                    State::RolledBack {
                        reason: reason.clone(),
                    },
                    vec![
                        Action::ClearCheckpoint,
                        report_action(Phase::Failing, reason, message),
                    ],
                )
            }
            (State::RollingBack { reason, attempts }, Event::Reverted(Err(e))) => {
                if attempts < self.settings.revert_attempts {
                    return (
                        State::RollingBack {
                            reason,
                            attempts: attempts + 1,
                        },
                        vec![Action::Revert],
                    );
                }
                // The checkpoint stays: the watchdog or the next agent start retries.
                let message = format!(
                    "rollback after {} failed {attempts} times: {e}; the checkpoint is kept for another attempt",
                    reason_detail(&reason)
                );
                (
                    State::RollbackFailed {
                        reason,
                        error: e.to_string(),
                    },
                    vec![report_action(
                        Phase::Failing,
                        Reason::RollbackFailed,
                        message,
                    )],
                )
            }
            (state, _) => (state, Vec::new()),
        }
    }

    fn roll_back(&mut self, reason: Reason) -> (State, Vec<Action>) {
        (
            State::RollingBack {
                reason,
                attempts: 1,
            },
            vec![Action::Revert],
        )
    }

    fn abort(&mut self, reason: Reason, message: String, clear: bool) -> (State, Vec<Action>) {
        let mut actions = Vec::new();
        if clear {
            actions.push(Action::ClearCheckpoint);
        }
        actions.push(report_action(Phase::Failing, reason.clone(), message));
        (State::Aborted { reason }, actions)
    }
}

fn report_action(phase: Phase, reason: Reason, message: String) -> Action {
    Action::Report(Report {
        phase,
        reason,
        message,
    })
}

fn reason_detail(reason: &Reason) -> String {
    match reason {
        Reason::ProbesFailed(kinds) => format!("probes failed: {}", kinds_to_string(kinds)),
        Reason::ApplyFailed => "apply failed".to_string(),
        Reason::ApplyTimedOut => "apply timed out".to_string(),
        Reason::CheckpointFailed => "checkpoint failed".to_string(),
        other => other.as_str().to_string(),
    }
}

pub use driver::{EnactRequest, Outcome, enact};

/// Runs a [`Transaction`] against a real (or fake) backend, probes and checkpoint store.
mod driver {
    use std::future::Future;
    use std::time::Instant;

    use chrono::Utc;

    use super::{Action, ClearError, Event, Phase, Reason, Report, Settings, State, Transaction};
    use crate::crd::network::RenderedBond;
    use crate::net::backend::{BackendError, NetworkBackend};
    use crate::net::checkpoint::{Checkpoint, CheckpointStore, Claim, DeadManCommand, new_id};
    use crate::net::probe::{ProbeKinds, ProbeReport, Probes};

    /// One change to make.
    pub struct EnactRequest<'a> {
        pub policy: &'a str,
        pub generation: i64,
        pub desired: &'a [RenderedBond],
        pub store: &'a CheckpointStore,
        /// The watchdog process to start once the checkpoint is written (None: rely on a
        /// sidecar watchdog and on the check at agent start).
        pub watchdog: Option<&'a DeadManCommand>,
        /// Called with each report as it happens (e.g. to update the enactment's status).
        pub on_report: Option<&'a (dyn Fn(&Report) + Send + Sync)>,
    }

    /// How a transaction ended.
    #[derive(Clone, Debug, PartialEq, Eq)]
    pub struct Outcome {
        /// The terminal state (Committed, RolledBack, RollbackFailed or Aborted).
        pub state: State,
        /// The final report (phase Available or Failing, reason, message).
        pub report: Report,
        /// Probes that passed before the change.
        pub probes_before: ProbeKinds,
        /// Every report, in order.
        pub reports: Vec<Report>,
    }

    /// Runs the safe apply of `request.desired` to its end.
    pub async fn enact<B, P>(
        backend: &B,
        probes: &P,
        request: EnactRequest<'_>,
        settings: &Settings,
    ) -> Outcome
    where
        B: NetworkBackend,
        P: Probes + ?Sized,
    {
        let mut txn = Transaction::new(settings.clone());
        let mut undo: Option<B::Undo> = None;
        let mut claimed = false;
        let mut reports = Vec::new();
        let mut queue: std::collections::VecDeque<Action> =
            txn.handle(Event::Start, Instant::now()).into();
        while let Some(action) = queue.pop_front() {
            let event = match action {
                Action::Report(report) => {
                    if let Some(f) = request.on_report {
                        f(&report);
                    }
                    reports.push(report);
                    continue;
                }
                Action::RunBaselineProbes(kinds) => {
                    // Bounded by the probe timeout in case a probe ignores its own.
                    let report = tokio::time::timeout(settings.probe_timeout, probes.run(&kinds))
                        .await
                        .unwrap_or_else(|_| {
                            ProbeReport::from_sets(&kinds, &ProbeKinds::new(), "timed out")
                        });
                    Event::BaselineDone(report)
                }
                Action::Snapshot => match backend.snapshot(request.desired).await {
                    Ok(u) => {
                        undo = Some(u);
                        Event::SnapshotDone(Ok(()))
                    }
                    Err(e) => Event::SnapshotDone(Err(e)),
                },
                Action::WriteCheckpoint => {
                    Event::CheckpointWritten(write_checkpoint(&request, settings, undo.as_ref()))
                }
                Action::Apply => match until_wake(&txn, backend.apply(request.desired)).await {
                    Some(result) => Event::Applied(result),
                    None => Event::Tick,
                },
                Action::RunProbes {
                    probes: kinds,
                    not_before,
                } => {
                    let wait = tokio::time::sleep_until(not_before.into());
                    match until_wake(&txn, async {
                        wait.await;
                        probes.run(&kinds).await
                    })
                    .await
                    {
                        Some(report) => Event::ProbesResult(report),
                        None => Event::Tick,
                    }
                }
                Action::Revert => Event::Reverted(
                    revert(backend, &request, undo.as_ref(), &mut claimed, settings).await,
                ),
                Action::ClearCheckpoint => {
                    if *txn.state() == State::Committing {
                        Event::CheckpointCleared(request.store.commit())
                    } else {
                        let result = request
                            .store
                            .discard()
                            .map_err(|e| ClearError::Io(e.to_string()));
                        if let Err(e) = &result {
                            tracing::warn!(error = ?e, "could not remove the checkpoint");
                        }
                        Event::CheckpointCleared(result)
                    }
                }
            };
            queue.extend(txn.handle(event, Instant::now()));
        }
        let report = reports.last().cloned().unwrap_or(Report {
            phase: Phase::Failing,
            reason: Reason::RollbackFailed,
            message: "the transaction stopped without a report".to_string(),
        });
        Outcome {
            state: txn.state().clone(),
            report,
            probes_before: txn.baseline().clone(),
            reports,
        }
    }

    /// Runs `fut` until it finishes or the machine's wake time passes (None).
    async fn until_wake<F: Future>(txn: &Transaction, fut: F) -> Option<F::Output> {
        match txn.wake_at() {
            Some(at) => tokio::time::timeout_at(at.into(), fut).await.ok(),
            None => Some(fut.await),
        }
    }

    fn write_checkpoint<U: serde::Serialize>(
        request: &EnactRequest<'_>,
        settings: &Settings,
        undo: Option<&U>,
    ) -> Result<(), String> {
        let undo = undo.ok_or_else(|| "no undo record".to_string())?;
        let created = Utc::now();
        let rollback = chrono::Duration::from_std(settings.rollback_timeout)
            .map_err(|e| format!("rollback timeout: {e}"))?;
        let checkpoint = Checkpoint {
            id: new_id(),
            policy: request.policy.to_string(),
            generation: request.generation,
            desired: request.desired.to_vec(),
            undo,
            created,
            deadline: created + rollback,
            agent_pid: std::process::id(),
        };
        request
            .store
            .write(&checkpoint)
            .map_err(|e| e.to_string())?;
        if let Some(cmd) = request.watchdog {
            // Without its watchdog the change would only be reverted at the next agent start.
            let pid = cmd.spawn(request.store.path()).map_err(|e| {
                format!("start the dead-man watchdog {}: {e}", cmd.program.display())
            })?;
            tracing::info!(pid, deadline = %checkpoint.deadline, "dead-man watchdog armed");
        }
        Ok(())
    }

    async fn revert<B: NetworkBackend>(
        backend: &B,
        request: &EnactRequest<'_>,
        undo: Option<&B::Undo>,
        claimed: &mut bool,
        settings: &Settings,
    ) -> Result<(), BackendError> {
        let undo = undo.ok_or_else(|| BackendError::Other("no undo record".into()))?;
        if !*claimed {
            match request.store.claim() {
                Ok(Claim::Claimed) | Ok(Claim::Missing) => *claimed = true,
                Ok(Claim::HeldByOther) => {
                    // The watchdog is already reverting; let it finish rather than race it.
                    return if request
                        .store
                        .wait_claim_released(settings.rollback_timeout)
                        .await
                    {
                        Ok(())
                    } else {
                        Err(BackendError::Other(
                            "the dead-man watchdog's revert did not finish".into(),
                        ))
                    };
                }
                // Revert anyway: the node matters more than the record.
                Err(e) => {
                    tracing::warn!(error = %e, "could not claim the checkpoint");
                    *claimed = true;
                }
            }
        }
        backend.revert(undo).await
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;
    use crate::net::probe::{ProbeKind, ProbeReport};

    use ProbeKind::{ApiServer as Api, DefaultGateway as Gw, Dns};

    fn settings() -> Settings {
        Settings {
            enabled: [Api, Gw, Dns].into_iter().collect(),
            probe_timeout: Duration::from_secs(20),
            rollback_timeout: Duration::from_secs(60),
            retry_interval: Duration::from_secs(2),
            margin: Duration::from_secs(3),
            revert_attempts: 3,
        }
    }

    fn kinds(k: &[ProbeKind]) -> ProbeKinds {
        k.iter().copied().collect()
    }

    fn probes(passed: &[ProbeKind]) -> ProbeReport {
        ProbeReport::from_sets(&kinds(&[Api, Gw, Dns]), &kinds(passed), "unreachable")
    }

    fn err() -> BackendError {
        BackendError::Netlink {
            operation: "set eth1 master bond0".into(),
            message: "EBUSY".into(),
        }
    }

    /// The events of a run up to applying (all passing before unless `baseline` says).
    fn to_applying(baseline: &[ProbeKind]) -> Vec<(u64, Event)> {
        vec![
            (0, Event::Start),
            (1, Event::BaselineDone(probes(baseline))),
            (2, Event::SnapshotDone(Ok(()))),
            (3, Event::CheckpointWritten(Ok(()))),
        ]
    }

    fn with(mut head: Vec<(u64, Event)>, tail: Vec<(u64, Event)>) -> Vec<(u64, Event)> {
        head.extend(tail);
        head
    }

    /// Runs events (at millisecond offsets) and returns the final state and all actions.
    fn run(events: Vec<(u64, Event)>) -> (State, Vec<Action>, Transaction) {
        let t0 = Instant::now();
        let mut txn = Transaction::new(settings());
        let mut actions = Vec::new();
        for (ms, e) in events {
            actions.extend(txn.handle(e, t0 + Duration::from_millis(ms)));
        }
        (txn.state().clone(), actions, txn)
    }

    fn names(actions: &[Action]) -> Vec<String> {
        actions
            .iter()
            .map(|a| match a {
                Action::RunBaselineProbes(_) => "baseline".to_string(),
                Action::Snapshot => "snapshot".into(),
                Action::WriteCheckpoint => "checkpoint".into(),
                Action::Apply => "apply".into(),
                Action::RunProbes { probes, .. } => format!("probes({})", kinds_to_string(probes)),
                Action::Revert => "revert".into(),
                Action::ClearCheckpoint => "clear".into(),
                Action::Report(r) => format!("report({},{})", r.phase.as_str(), r.reason.as_str()),
            })
            .collect()
    }

    fn last_report(actions: &[Action]) -> Report {
        actions
            .iter()
            .rev()
            .find_map(|a| match a {
                Action::Report(r) => Some(r.clone()),
                _ => None,
            })
            .unwrap()
    }

    #[test]
    fn table() {
        struct Case {
            name: &'static str,
            events: Vec<(u64, Event)>,
            state: &'static str,
            actions: &'static [&'static str],
        }
        let all = &[Api, Gw, Dns][..];
        let cases = vec![
            Case {
                name: "all probes pass: commit",
                events: with(
                    to_applying(all),
                    vec![
                        (10, Event::Applied(Ok(()))),
                        (20, Event::ProbesResult(probes(all))),
                        (21, Event::CheckpointCleared(Ok(()))),
                    ],
                ),
                state: "Committed",
                actions: &[
                    "baseline",
                    "snapshot",
                    "checkpoint",
                    "report(Progressing,Applying)",
                    "apply",
                    "probes(ApiServer, DefaultGateway, Dns)",
                    "clear",
                    "report(Available,Committed)",
                ],
            },
            Case {
                name: "only the baseline probes are required",
                events: with(
                    to_applying(&[Api]),
                    vec![
                        (10, Event::Applied(Ok(()))),
                        (20, Event::ProbesResult(probes(&[Api]))),
                        (21, Event::CheckpointCleared(Ok(()))),
                    ],
                ),
                state: "Committed",
                actions: &[
                    "baseline",
                    "snapshot",
                    "checkpoint",
                    "report(Progressing,Applying)",
                    "apply",
                    "probes(ApiServer)",
                    "clear",
                    "report(Available,Committed)",
                ],
            },
            Case {
                name: "a probe fails then recovers before the timeout",
                events: with(
                    to_applying(all),
                    vec![
                        (10, Event::Applied(Ok(()))),
                        (20, Event::ProbesResult(probes(&[Api, Gw]))),
                        (2100, Event::ProbesResult(probes(all))),
                        (2101, Event::CheckpointCleared(Ok(()))),
                    ],
                ),
                state: "Committed",
                actions: &[
                    "baseline",
                    "snapshot",
                    "checkpoint",
                    "report(Progressing,Applying)",
                    "apply",
                    "probes(ApiServer, DefaultGateway, Dns)",
                    "probes(ApiServer, DefaultGateway, Dns)",
                    "clear",
                    "report(Available,Committed)",
                ],
            },
            Case {
                name: "probes keep failing: roll back at the timeout",
                events: with(
                    to_applying(all),
                    vec![
                        (10, Event::Applied(Ok(()))),
                        (20, Event::ProbesResult(probes(&[Gw]))),
                        (20_010, Event::Tick),
                        (20_100, Event::Reverted(Ok(()))),
                    ],
                ),
                state: "RolledBack",
                actions: &[
                    "baseline",
                    "snapshot",
                    "checkpoint",
                    "report(Progressing,Applying)",
                    "apply",
                    "probes(ApiServer, DefaultGateway, Dns)",
                    "probes(ApiServer, DefaultGateway, Dns)",
                    "revert",
                    "clear",
                    "report(Failing,ProbesFailed)",
                ],
            },
            Case {
                name: "a failing result after the deadline rolls back",
                events: with(
                    to_applying(all),
                    vec![
                        (10, Event::Applied(Ok(()))),
                        (20_020, Event::ProbesResult(probes(&[]))),
                        (20_100, Event::Reverted(Ok(()))),
                    ],
                ),
                state: "RolledBack",
                actions: &[
                    "baseline",
                    "snapshot",
                    "checkpoint",
                    "report(Progressing,Applying)",
                    "apply",
                    "probes(ApiServer, DefaultGateway, Dns)",
                    "revert",
                    "clear",
                    "report(Failing,ProbesFailed)",
                ],
            },
            Case {
                name: "an early tick does nothing",
                events: with(
                    to_applying(all),
                    vec![(10, Event::Applied(Ok(()))), (100, Event::Tick)],
                ),
                state: "Verifying",
                actions: &[
                    "baseline",
                    "snapshot",
                    "checkpoint",
                    "report(Progressing,Applying)",
                    "apply",
                    "probes(ApiServer, DefaultGateway, Dns)",
                ],
            },
            Case {
                name: "no probe passed before: proceed, say so, commit without checks",
                events: with(
                    to_applying(&[]),
                    vec![
                        (10, Event::Applied(Ok(()))),
                        (11, Event::CheckpointCleared(Ok(()))),
                    ],
                ),
                state: "Committed",
                actions: &[
                    "baseline",
                    "report(Progressing,NoBaselineProbes)",
                    "snapshot",
                    "checkpoint",
                    "report(Progressing,Applying)",
                    "apply",
                    "clear",
                    "report(Available,Committed)",
                ],
            },
            Case {
                name: "apply fails: revert what was done",
                events: with(
                    to_applying(all),
                    vec![
                        (10, Event::Applied(Err(err()))),
                        (20, Event::Reverted(Ok(()))),
                    ],
                ),
                state: "RolledBack",
                actions: &[
                    "baseline",
                    "snapshot",
                    "checkpoint",
                    "report(Progressing,Applying)",
                    "apply",
                    "revert",
                    "clear",
                    "report(Failing,ApplyFailed)",
                ],
            },
            Case {
                name: "apply hangs past the agent deadline (60 s - 3 s margin)",
                events: with(
                    to_applying(all),
                    vec![
                        (56_000, Event::Tick),
                        (57_003, Event::Tick),
                        (57_100, Event::Reverted(Ok(()))),
                    ],
                ),
                state: "RolledBack",
                actions: &[
                    "baseline",
                    "snapshot",
                    "checkpoint",
                    "report(Progressing,Applying)",
                    "apply",
                    "revert",
                    "clear",
                    "report(Failing,ApplyTimedOut)",
                ],
            },
            Case {
                name: "a late apply result after the timeout is ignored",
                events: with(
                    to_applying(all),
                    vec![
                        (57_003, Event::Tick),
                        (57_004, Event::Applied(Ok(()))),
                        (57_100, Event::Reverted(Ok(()))),
                    ],
                ),
                state: "RolledBack",
                actions: &[
                    "baseline",
                    "snapshot",
                    "checkpoint",
                    "report(Progressing,Applying)",
                    "apply",
                    "revert",
                    "clear",
                    "report(Failing,ApplyTimedOut)",
                ],
            },
            Case {
                name: "revert fails, then succeeds on retry",
                events: with(
                    to_applying(all),
                    vec![
                        (10, Event::Applied(Err(err()))),
                        (20, Event::Reverted(Err(err()))),
                        (30, Event::Reverted(Ok(()))),
                    ],
                ),
                state: "RolledBack",
                actions: &[
                    "baseline",
                    "snapshot",
                    "checkpoint",
                    "report(Progressing,Applying)",
                    "apply",
                    "revert",
                    "revert",
                    "clear",
                    "report(Failing,ApplyFailed)",
                ],
            },
            Case {
                name: "revert keeps failing: RollbackFailed, checkpoint kept",
                events: with(
                    to_applying(all),
                    vec![
                        (10, Event::Applied(Err(err()))),
                        (20, Event::Reverted(Err(err()))),
                        (30, Event::Reverted(Err(err()))),
                        (40, Event::Reverted(Err(err()))),
                    ],
                ),
                state: "RollbackFailed",
                actions: &[
                    "baseline",
                    "snapshot",
                    "checkpoint",
                    "report(Progressing,Applying)",
                    "apply",
                    "revert",
                    "revert",
                    "revert",
                    "report(Failing,RollbackFailed)",
                ],
            },
            Case {
                name: "snapshot fails: abort, nothing changed, no checkpoint",
                events: vec![
                    (0, Event::Start),
                    (1, Event::BaselineDone(probes(all))),
                    (2, Event::SnapshotDone(Err(err()))),
                ],
                state: "Aborted",
                actions: &["baseline", "snapshot", "report(Failing,SnapshotFailed)"],
            },
            Case {
                name: "checkpoint write fails: abort before any change",
                events: vec![
                    (0, Event::Start),
                    (1, Event::BaselineDone(probes(all))),
                    (2, Event::SnapshotDone(Ok(()))),
                    (3, Event::CheckpointWritten(Err("read-only".into()))),
                ],
                state: "Aborted",
                actions: &[
                    "baseline",
                    "snapshot",
                    "checkpoint",
                    "clear",
                    "report(Failing,CheckpointFailed)",
                ],
            },
            Case {
                name: "commit loses the race to the watchdog",
                events: with(
                    to_applying(all),
                    vec![
                        (10, Event::Applied(Ok(()))),
                        (20, Event::ProbesResult(probes(all))),
                        (
                            21,
                            Event::CheckpointCleared(Err(ClearError::ClaimedByWatchdog)),
                        ),
                    ],
                ),
                state: "RolledBack",
                actions: &[
                    "baseline",
                    "snapshot",
                    "checkpoint",
                    "report(Progressing,Applying)",
                    "apply",
                    "probes(ApiServer, DefaultGateway, Dns)",
                    "clear",
                    "report(Failing,DeadManTimer)",
                ],
            },
            Case {
                name: "checkpoint cannot be removed on commit: revert",
                events: with(
                    to_applying(all),
                    vec![
                        (10, Event::Applied(Ok(()))),
                        (20, Event::ProbesResult(probes(all))),
                        (
                            21,
                            Event::CheckpointCleared(Err(ClearError::Io("EIO".into()))),
                        ),
                        (30, Event::Reverted(Ok(()))),
                    ],
                ),
                state: "RolledBack",
                actions: &[
                    "baseline",
                    "snapshot",
                    "checkpoint",
                    "report(Progressing,Applying)",
                    "apply",
                    "probes(ApiServer, DefaultGateway, Dns)",
                    "clear",
                    "revert",
                    "clear",
                    "report(Failing,CheckpointFailed)",
                ],
            },
            Case {
                name: "events out of order are ignored",
                events: vec![
                    (0, Event::Applied(Ok(()))),
                    (1, Event::Start),
                    (2, Event::Reverted(Ok(()))),
                    (3, Event::Start),
                ],
                state: "Baseline",
                actions: &["baseline"],
            },
        ];
        for case in cases {
            let (state, actions, _) = run(case.events);
            let state_name = format!("{state:?}");
            assert!(
                state_name.starts_with(case.state),
                "{}: state {state_name}, want {}",
                case.name,
                case.state
            );
            assert_eq!(names(&actions), case.actions, "{}", case.name);
        }
    }

    #[test]
    fn probes_failed_names_the_failing_probes() {
        let (state, actions, _) = run(with(
            to_applying(&[Api, Dns]),
            vec![
                (10, Event::Applied(Ok(()))),
                (20, Event::ProbesResult(probes(&[Dns]))),
                (20_010, Event::Tick),
                (20_100, Event::Reverted(Ok(()))),
            ],
        ));
        assert_eq!(
            state,
            State::RolledBack {
                reason: Reason::ProbesFailed(kinds(&[Api]))
            }
        );
        let r = last_report(&actions);
        assert!(
            r.message.contains("probes failed: ApiServer"),
            "{}",
            r.message
        );
        assert!(
            r.message.contains("ApiServer: unreachable"),
            "{}",
            r.message
        );
        assert!(!r.message.contains("Dns:"), "{}", r.message);
    }

    #[test]
    fn disabled_probes_are_not_in_the_baseline() {
        let mut s = settings();
        s.enabled = kinds(&[Api]);
        let mut txn = Transaction::new(s);
        let t0 = Instant::now();
        assert_eq!(
            txn.handle(Event::Start, t0),
            vec![Action::RunBaselineProbes(kinds(&[Api]))]
        );
        txn.handle(Event::BaselineDone(probes(&[Api, Dns])), t0);
        assert_eq!(txn.baseline(), &kinds(&[Api]));
    }

    #[test]
    fn verify_deadline_is_capped_by_the_dead_man_deadline() {
        let mut s = settings();
        s.probe_timeout = Duration::from_secs(300);
        s.rollback_timeout = Duration::from_secs(30);
        let t0 = Instant::now();
        let mut txn = Transaction::new(s);
        txn.handle(Event::Start, t0);
        txn.handle(Event::BaselineDone(probes(&[Api])), t0);
        txn.handle(Event::SnapshotDone(Ok(())), t0);
        txn.handle(Event::CheckpointWritten(Ok(())), t0);
        assert_eq!(txn.wake_at(), Some(t0 + Duration::from_secs(27)));
        txn.handle(Event::Applied(Ok(())), t0 + Duration::from_secs(1));
        assert_eq!(txn.wake_at(), Some(t0 + Duration::from_secs(27)));
    }

    #[test]
    fn retries_wait_the_retry_interval() {
        let (_, actions, txn) = run(with(
            to_applying(&[Api]),
            vec![
                (10, Event::Applied(Ok(()))),
                (20, Event::ProbesResult(probes(&[]))),
            ],
        ));
        let Some(Action::RunProbes { not_before, .. }) = actions.last() else {
            panic!("{actions:?}")
        };
        let Some(deadline) = txn.wake_at() else {
            panic!()
        };
        // Retry at +20 ms + 2 s; the deadline is 20 s after the apply at +10 ms.
        assert_eq!(
            deadline.duration_since(*not_before),
            Duration::from_millis(17_990)
        );
    }

    #[test]
    fn agent_deadline_keeps_half_of_a_short_timeout() {
        let mut s = settings();
        s.rollback_timeout = Duration::from_secs(5);
        s.margin = Duration::from_secs(4);
        let t0 = Instant::now();
        assert_eq!(s.agent_deadline(t0), t0 + Duration::from_millis(2500));
    }

    #[test]
    fn settings_from_spec() {
        let s = Settings::from_spec(&ProbeSpec::default());
        assert_eq!(s.probe_timeout, Duration::from_secs(20));
        assert_eq!(s.rollback_timeout, Duration::from_secs(60));
        assert_eq!(s.enabled.len(), 3);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod driver_tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;
    use crate::crd::network::RenderedBond;
    use crate::net::backend::fake::{Behaviour, FakeBackend};
    use crate::net::checkpoint::{Checkpoint, CheckpointStore};
    use crate::net::probe::fake::{FakeProbes, Pb};
    use crate::net::probe::{ProbeKind, ProbeKinds};

    fn fast() -> Settings {
        Settings {
            enabled: ProbeKind::ALL.into_iter().collect(),
            probe_timeout: Duration::from_millis(400),
            rollback_timeout: Duration::from_secs(3),
            retry_interval: Duration::from_millis(50),
            margin: Duration::from_secs(1),
            revert_attempts: 2,
        }
    }

    fn bonds() -> Vec<RenderedBond> {
        ["bond0", "bond1"]
            .iter()
            .map(|n| RenderedBond {
                name: n.to_string(),
                ports: vec!["eth1".into()],
                ..RenderedBond::default()
            })
            .collect()
    }

    async fn go(
        backend: &FakeBackend,
        probes: &FakeProbes,
        store: &CheckpointStore,
        s: &Settings,
    ) -> Outcome {
        let desired = bonds();
        enact(
            backend,
            probes,
            EnactRequest {
                policy: "uplink",
                generation: 4,
                desired: &desired,
                store,
                watchdog: None,
                on_report: None,
            },
            s,
        )
        .await
    }

    fn leftovers(store: &CheckpointStore) -> bool {
        store.path().exists() || store.claimed_path().exists()
    }

    #[tokio::test]
    async fn success_commits_and_clears_the_checkpoint() {
        let dir = tempfile::tempdir().unwrap();
        let store = CheckpointStore::in_dir(dir.path());
        let backend = FakeBackend::new();
        let probes = FakeProbes::all(Pb::Pass);
        let out = go(&backend, &probes, &store, &fast()).await;
        assert_eq!(out.state, State::Committed, "{out:?}");
        assert_eq!(out.report.phase, Phase::Available);
        assert_eq!(backend.applied(), vec!["bond0", "bond1"]);
        assert_eq!(backend.calls(), vec!["snapshot", "apply"]);
        assert_eq!(out.probes_before.len(), 3);
        assert!(!leftovers(&store));
    }

    #[tokio::test]
    async fn probe_failure_rolls_back() {
        let dir = tempfile::tempdir().unwrap();
        let store = CheckpointStore::in_dir(dir.path());
        let backend = FakeBackend::new();
        let all_pass: Vec<_> = ProbeKind::ALL.iter().map(|&k| (k, Pb::Pass)).collect();
        let probes = FakeProbes::new(vec![
            all_pass,
            vec![
                (ProbeKind::DefaultGateway, Pb::Pass),
                (ProbeKind::Dns, Pb::Pass),
            ],
        ]);
        let started = std::time::Instant::now();
        let out = go(&backend, &probes, &store, &fast()).await;
        let api: ProbeKinds = [ProbeKind::ApiServer].into_iter().collect();
        assert_eq!(
            out.state,
            State::RolledBack {
                reason: Reason::ProbesFailed(api)
            }
        );
        assert!(started.elapsed() >= Duration::from_millis(400));
        assert!(backend.applied().is_empty(), "reverted");
        assert_eq!(backend.calls(), vec!["snapshot", "apply", "revert"]);
        // Baseline + several retries within 400 ms at 50 ms intervals.
        assert!(probes.rounds().len() >= 4, "{:?}", probes.rounds());
        assert!(!leftovers(&store));
    }

    #[tokio::test]
    async fn hanging_probes_roll_back_at_the_timeout() {
        let dir = tempfile::tempdir().unwrap();
        let store = CheckpointStore::in_dir(dir.path());
        let backend = FakeBackend::new();
        let all_pass: Vec<_> = ProbeKind::ALL.iter().map(|&k| (k, Pb::Pass)).collect();
        let hang: Vec<_> = ProbeKind::ALL.iter().map(|&k| (k, Pb::Hang)).collect();
        let probes = FakeProbes::new(vec![all_pass, hang]);
        let started = std::time::Instant::now();
        let out = go(&backend, &probes, &store, &fast()).await;
        assert!(
            matches!(
                out.state,
                State::RolledBack {
                    reason: Reason::ProbesFailed(_)
                }
            ),
            "{out:?}"
        );
        assert!(started.elapsed() < Duration::from_secs(2));
        assert!(backend.applied().is_empty());
    }

    #[tokio::test]
    async fn apply_failure_midway_reverts_the_partial_change() {
        let dir = tempfile::tempdir().unwrap();
        let store = CheckpointStore::in_dir(dir.path());
        let mut backend = FakeBackend::new();
        backend.apply = Behaviour::Fail(BackendError::Netlink {
            operation: "create bond1".into(),
            message: "EEXIST".into(),
        });
        backend.apply_partial = 1;
        let probes = FakeProbes::all(Pb::Pass);
        let out = go(&backend, &probes, &store, &fast()).await;
        assert_eq!(
            out.state,
            State::RolledBack {
                reason: Reason::ApplyFailed
            }
        );
        assert!(
            out.report.message.contains("create bond1"),
            "{}",
            out.report.message
        );
        assert!(backend.applied().is_empty());
        assert!(!leftovers(&store));
    }

    #[tokio::test]
    async fn no_probe_passing_before_commits_and_says_so() {
        let dir = tempfile::tempdir().unwrap();
        let store = CheckpointStore::in_dir(dir.path());
        let backend = FakeBackend::new();
        let probes = FakeProbes::all(Pb::Fail);
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen2 = seen.clone();
        let on_report = move |r: &Report| seen2.lock().unwrap().push(r.reason.clone());
        let desired = bonds();
        let out = enact(
            &backend,
            &probes,
            EnactRequest {
                policy: "uplink",
                generation: 1,
                desired: &desired,
                store: &store,
                watchdog: None,
                on_report: Some(&on_report),
            },
            &fast(),
        )
        .await;
        assert_eq!(out.state, State::Committed);
        assert_eq!(
            *seen.lock().unwrap(),
            vec![
                Reason::NoBaselineProbes,
                Reason::Applying,
                Reason::Committed
            ]
        );
        assert_eq!(probes.rounds().len(), 1, "only the baseline round");
    }

    #[tokio::test]
    async fn apply_that_hangs_is_reverted_and_the_checkpoint_holds_the_undo_meanwhile() {
        let dir = tempfile::tempdir().unwrap();
        let store = CheckpointStore::in_dir(dir.path());
        let mut backend = FakeBackend::new();
        backend.applied.lock().unwrap().push("eth9".into());
        backend.apply = Behaviour::Hang;
        backend.apply_partial = 1;
        let probes = FakeProbes::all(Pb::Pass);
        let s = fast();
        let watcher = {
            let store = store.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(500)).await;
                store.read::<Vec<String>>().unwrap()
            })
        };
        let out = go(&backend, &probes, &store, &s).await;
        assert_eq!(
            out.state,
            State::RolledBack {
                reason: Reason::ApplyTimedOut
            }
        );
        let cp: Checkpoint<Vec<String>> = watcher.await.unwrap().unwrap();
        assert_eq!(cp.undo, vec!["eth9"]);
        assert_eq!(cp.policy, "uplink");
        assert_eq!(cp.generation, 4);
        assert_eq!(backend.applied(), vec!["eth9"]);
        assert!(!leftovers(&store));
    }

    #[tokio::test]
    async fn revert_failure_keeps_the_claim_for_the_next_start() {
        let dir = tempfile::tempdir().unwrap();
        let store = CheckpointStore::in_dir(dir.path());
        let mut backend = FakeBackend::new();
        backend.apply = Behaviour::Fail(BackendError::Other("boom".into()));
        *backend.reverts.lock().unwrap() = vec![
            Behaviour::Fail(BackendError::Other("r1".into())),
            Behaviour::Fail(BackendError::Other("r2".into())),
        ];
        let probes = FakeProbes::all(Pb::Pass);
        let out = go(&backend, &probes, &store, &fast()).await;
        assert!(matches!(out.state, State::RollbackFailed { .. }), "{out:?}");
        assert_eq!(out.report.reason, Reason::RollbackFailed);
        assert!(store.claimed_path().exists());
        // The next start reverts it.
        let rec = crate::net::checkpoint::recover_on_start(&store, &backend)
            .await
            .unwrap()
            .unwrap();
        assert!(rec.reverted_by_agent);
        assert!(backend.applied().is_empty());
        assert!(!leftovers(&store));
    }

    #[tokio::test]
    async fn snapshot_failure_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = CheckpointStore::in_dir(dir.path());
        let mut backend = FakeBackend::new();
        backend.snapshot = Behaviour::Fail(BackendError::Unsupported("bonding".into()));
        let probes = FakeProbes::all(Pb::Pass);
        let out = go(&backend, &probes, &store, &fast()).await;
        assert_eq!(
            out.state,
            State::Aborted {
                reason: Reason::SnapshotFailed
            }
        );
        assert_eq!(backend.calls(), vec!["snapshot"]);
        assert!(!leftovers(&store));
    }

    #[tokio::test]
    async fn unwritable_checkpoint_aborts_before_applying() {
        let dir = tempfile::tempdir().unwrap();
        // The checkpoint's directory is a file: create_dir_all fails.
        let blocker = dir.path().join("blocker");
        std::fs::write(&blocker, b"").unwrap();
        let store = CheckpointStore::in_dir(&blocker);
        let backend = FakeBackend::new();
        let probes = FakeProbes::all(Pb::Pass);
        let out = go(&backend, &probes, &store, &fast()).await;
        assert_eq!(
            out.state,
            State::Aborted {
                reason: Reason::CheckpointFailed
            }
        );
        assert_eq!(backend.calls(), vec!["snapshot"]);
    }
}
