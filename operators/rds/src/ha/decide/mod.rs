//! The failover decision of an RdsInstance's primary/standby pair (`<name>-0`, `<name>-1`), as a
//! pure function: one round of probe results in, the actions for the supervisor out. No I/O, no
//! clock: elapsed times are inputs. Read-only replicas are not part of it (never promoted; they
//! follow whichever node is primary).
//!
//! Every node starts `read_only=ON`, so a node is fenced unless the supervisor opened it; the
//! primary is the pod carrying the role label, which the user-facing Service follows.
//!
//! Rules, in the order they apply:
//! * **Never two writable nodes.** Every reachable writable node other than this round's primary
//!   is fenced first, in the same round, before anything else.
//! * **Failure needs two views.** The labelled primary has failed when the operator has not reached
//!   it for `detect_after` and the standby agrees: its IO thread from the primary is not
//!   `Connected`; or it is `Connected` but received nothing recently and `standby_view_grace`
//!   passed (a frozen primary keeps its TCP connections open); or it does not replicate from the
//!   primary (no second view) and `standby_view_grace` passed. A standby that is `Connected` and
//!   receiving means the operator's network failed, not the primary: never fail over then.
//!   A primary whose pod is gone has failed at once: no process is left to be frozen.
//! * **Only a sound standby is promoted**: reachable, not errant, no SQL thread error, no IO error
//!   1236 (its position is not in the primary's binlog).
//! * **RPO-first** promotes only when no acknowledged transaction can be missing: semi-sync
//!   (`SemiSync` or `Sync`) was ON at the last good probe of the primary (AFTER_SYNC: the standby
//!   received every acknowledged commit), or the standby holds the primary's last seen position.
//!   The standby then applies everything it received, however long that takes.
//! * **RTO-first** promotes as soon as the failure is confirmed, applying what the standby received
//!   for at most `max_apply_wait`, and reports a possible loss when RPO-first would have refused.
//! * **A primary that comes back** after a failover is fenced if writable, then rebuilt if errant
//!   (in async modes it may hold transactions the new primary never got), else rejoined.
//! * **A labelled primary that answers read-only** restarted in place (crash-safe, label kept):
//!   it is reopened.
//! * **Standby trouble leaves the primary alone**: errant, IO error 1236 or an SQL error → rebuild;
//!   not replicating from the primary or a stopped thread → rejoin; lag → nothing (it catches up).
//! * **No label**: a writable node was the primary (the labels were lost, e.g. the operator died
//!   mid-failover), so it is adopted. Otherwise the node holding the most data is elected (lowest
//!   ordinal on a tie; errant or broken nodes excluded once the instance has had a primary), after
//!   both nodes answered unless it already holds the last primary position seen.
//! * **Steady state is no action**, so the supervisor makes zero writes.

use std::cmp::Reverse;
use std::time::Duration;

mod gtid;
#[cfg(test)]
mod tests;

pub use gtid::{Gtid, Position, PositionParseError};

/// `ER_MASTER_FATAL_ERROR_READING_BINLOG`: the replica asked for a position the primary's binlog
/// does not have (diverged history, or purged binlogs): only a re-clone fixes it.
pub const ER_GTID_NOT_IN_PRIMARY_BINLOG: u32 = 1236;

/// What the user put first when both cannot be had.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Priority {
    /// Availability: fail over as soon as the failure is confirmed, even if writes may be lost.
    RtoFirst,
    /// Durability: stay down rather than lose an acknowledged write.
    RpoFirst,
}

/// How commits reach the standby.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Replication {
    /// Plain asynchronous replication.
    Async,
    /// Semi-sync AFTER_SYNC that falls back to async after its timeout. Only the standby may
    /// acknowledge (read replicas run with the semi-sync slave plugin off): an ack from a replica
    /// would prove nothing about the standby.
    SemiSync,
    /// Semi-sync configured never to fall back. Still judged by the observed semi-sync status: the
    /// configuration is the intent, the status is the proof.
    Sync,
}

/// `Slave_IO_Running`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IoThread {
    /// Connected to its source.
    Connected,
    /// Running but (re)connecting.
    Connecting,
    /// Not running.
    Stopped,
}

/// One successful probe of a node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Status {
    /// `@@read_only`.
    pub read_only: bool,
    /// The HA node it replicates from, if it is configured as a replica.
    pub replicating_from: Option<String>,
    /// IO thread state.
    pub io_thread: IoThread,
    /// `Slave_SQL_Running`.
    pub sql_thread_running: bool,
    /// `Last_IO_Errno` (0: none).
    pub last_io_errno: u32,
    /// `Last_SQL_Errno` (0: none). The server already retries transient apply errors
    /// (`slave_transaction_retries`), so a stopped SQL thread with an error means the data no
    /// longer matches the events.
    pub last_sql_errno: u32,
    /// Received position (`Gtid_IO_Pos`).
    pub received: Position,
    /// Applied position (`gtid_current_pos`; on a primary it includes its own binlog).
    pub applied: Position,
    /// Holds transactions the current primary lacks (with no labelled primary: the last one).
    pub errant: bool,
    /// The IO thread received something (events or heartbeats: MASTER_HEARTBEAT_PERIOD=1) since
    /// the previous probe round.
    pub received_advanced_recently: bool,
}

impl Status {
    /// Everything the node holds, applied or only received.
    fn held(&self) -> Position {
        self.received.union(&self.applied)
    }

    /// May be promoted: its data matches the primary's history and it can apply.
    fn sound(&self) -> bool {
        !self.errant
            && self.last_sql_errno == 0
            && self.last_io_errno != ER_GTID_NOT_IN_PRIMARY_BINLOG
    }
}

/// One HA node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Node {
    /// Pod name.
    pub name: String,
    /// The pod object exists.
    pub pod_exists: bool,
    /// Time since the last successful probe (since the supervisor started if none succeeded).
    pub since_last_ok: Duration,
    /// The last probe's result; `None` when it failed or none was made.
    pub status: Option<Status>,
}

/// Detection and promotion timing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timing {
    /// Failed probes for this long before the primary may count as failed.
    pub detect_after: Duration,
    /// Longest wait, from the primary's last good probe, for the standby to lose the primary too.
    pub standby_view_grace: Duration,
    /// RTO-first: longest wait for the standby to apply what it received before opening it.
    pub max_apply_wait: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            detect_after: Duration::from_secs(3),
            // The standby's view flips ~5 s (slave_net_timeout) after the primary's last heartbeat.
            standby_view_grace: Duration::from_secs(8),
            max_apply_wait: Duration::from_secs(10),
        }
    }
}

/// One probe round of the HA pair.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Observation {
    /// RTO or RPO first.
    pub priority: Priority,
    /// Replication mode.
    pub replication: Replication,
    /// The pair; index = StatefulSet ordinal.
    pub nodes: [Node; 2],
    /// The pod carrying the primary label, if any.
    pub primary: Option<String>,
    /// The primary's `gtid_binlog_pos` at its last good probe (None: never seen).
    pub last_primary_position: Option<Position>,
    /// `Rpl_semi_sync_master_status` was ON at the primary's last good probe.
    pub semi_sync_was_on: bool,
    /// The instance has had a primary (false: first election).
    pub had_primary: bool,
    /// Timing.
    pub timing: Timing,
}

/// How long the promoted standby applies what it received before it is opened for writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ApplyWait {
    /// Until everything received is applied, however long (nothing acknowledged is dropped).
    Complete,
    /// At most this long; what is still unapplied then is lost (the supervisor reports it).
    AtMost(Duration),
}

/// Why a node must be re-cloned from the primary.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RebuildReason {
    /// It holds transactions the primary lacks.
    Errant,
    /// IO error 1236: its position is not in the primary's binlog.
    NotInPrimaryBinlog,
    /// Its SQL thread stopped on an error.
    ApplyError,
}

impl RebuildReason {
    /// CamelCase name (event reason, metric label).
    pub fn as_str(self) -> &'static str {
        match self {
            RebuildReason::Errant => "Errant",
            RebuildReason::NotInPrimaryBinlog => "NotInPrimaryBinlog",
            RebuildReason::ApplyError => "ApplyError",
        }
    }
}

/// Why the pair is not steady although nothing (more) can be done this round.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WaitReason {
    /// The primary missed probes for less than `detect_after`.
    PrimaryUnreachableShort,
    /// The standby is connected to the primary and receiving: the operator's network failed.
    StandbyStillSeesPrimary,
    /// The standby has not confirmed the failure yet and `standby_view_grace` has not passed.
    AwaitingStandbyView,
    /// The primary failed and the standby may not be promoted (errant, apply error, 1236).
    NoCandidate,
    /// RPO-first: the standby may lack acknowledged transactions.
    PossibleDataLoss,
    /// The primary failed and the standby does not answer either.
    BothUnreachable,
    /// The primary is fine, the standby does not answer.
    StandbyUnreachable,
    /// The primary is fine, the standby's IO thread is reconnecting (the server retries itself).
    StandbyReconnecting,
    /// No primary yet: waiting for both nodes to answer so the one with the most data wins.
    WaitingForNodes,
}

impl WaitReason {
    /// CamelCase name (status reason, metric label).
    pub fn as_str(self) -> &'static str {
        match self {
            WaitReason::PrimaryUnreachableShort => "PrimaryUnreachableShort",
            WaitReason::StandbyStillSeesPrimary => "StandbyStillSeesPrimary",
            WaitReason::AwaitingStandbyView => "AwaitingStandbyView",
            WaitReason::NoCandidate => "NoCandidate",
            WaitReason::PossibleDataLoss => "PossibleDataLoss",
            WaitReason::BothUnreachable => "BothUnreachable",
            WaitReason::StandbyUnreachable => "StandbyUnreachable",
            WaitReason::StandbyReconnecting => "StandbyReconnecting",
            WaitReason::WaitingForNodes => "WaitingForNodes",
        }
    }
}

/// One action for the supervisor, carried out in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Stop `node` accepting writes now: `read_only=ON` and kill client sessions (delete its pod
    /// with no grace period if that fails), and remove its label.
    Fence {
        /// The node.
        node: String,
    },
    /// First election: label `primary` and open it for writes.
    Bootstrap {
        /// The node.
        primary: String,
    },
    /// Label `primary` (if it is not) and, if it is read-only, apply what it received and open it.
    Adopt {
        /// The node.
        primary: String,
    },
    /// Fence `from` (remove its label, delete its pod with no grace period), let `to` apply what
    /// it received as `apply` says, stop its replication, open it for writes, label it.
    Failover {
        /// The failed primary.
        from: String,
        /// The promoted standby.
        to: String,
        /// How long `to` applies before it is opened.
        apply: ApplyWait,
        /// `to` may lack transactions the primary acknowledged.
        possible_loss: bool,
    },
    /// Point `node` at `source` (`MASTER_USE_GTID=slave_pos`) and start its threads.
    Rejoin {
        /// The node.
        node: String,
        /// The primary.
        source: String,
    },
    /// Re-clone `node` from `source`.
    Rebuild {
        /// The node.
        node: String,
        /// The primary.
        source: String,
        /// Why.
        reason: RebuildReason,
    },
}

/// The decision of one round. Steady state is the default: no action, no wait.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Decision {
    /// In order: fences, then the election or failover, then the standby's repair.
    pub actions: Vec<Action>,
    /// Why the pair is not steady and this round cannot fix it.
    pub wait: Option<WaitReason>,
}

impl Decision {
    /// Nothing to do and nothing wrong.
    pub fn is_steady(&self) -> bool {
        self.actions.is_empty() && self.wait.is_none()
    }
}

/// What the election part of a round settled.
struct Round {
    /// The node that is (or becomes) primary this round; any other writable node is fenced.
    primary: Option<usize>,
    /// Bootstrap, Adopt or Failover.
    elect: Option<Action>,
    wait: Option<WaitReason>,
    /// The primary answers: look after the standby too.
    tend_standby: bool,
}

impl Round {
    fn hold(primary: Option<usize>, reason: WaitReason) -> Self {
        Round {
            primary,
            elect: None,
            wait: Some(reason),
            tend_standby: false,
        }
    }
}

/// Decides one round. See the module docs for the rules.
pub fn decide(obs: &Observation) -> Decision {
    let labelled = obs
        .primary
        .as_deref()
        .and_then(|p| obs.nodes.iter().position(|n| n.name == p));
    let round = match labelled {
        Some(p) => labelled_round(obs, p),
        None => unlabelled_round(obs),
    };
    let mut d = Decision {
        actions: Vec::new(),
        wait: round.wait,
    };
    for (i, n) in obs.nodes.iter().enumerate() {
        if Some(i) != round.primary && n.status.as_ref().is_some_and(|s| !s.read_only) {
            d.actions.push(Action::Fence {
                node: n.name.clone(),
            });
        }
    }
    d.actions.extend(round.elect);
    if let (true, Some(p)) = (round.tend_standby, round.primary) {
        let source = &obs.nodes[p].name;
        match tend(&obs.nodes[1 - p], source) {
            Tend::Ok => {}
            Tend::Act(a) => d.actions.push(a),
            Tend::Wait(w) => d.wait = Some(w),
        }
    }
    d
}

fn labelled_round(obs: &Observation, p: usize) -> Round {
    let t = &obs.timing;
    let primary = &obs.nodes[p];
    let s = 1 - p;
    let standby = &obs.nodes[s];
    if let Some(ps) = &primary.status {
        // Restarted in place (read_only=ON by default) with its label and data: reopen it.
        let elect = ps.read_only.then(|| Action::Adopt {
            primary: primary.name.clone(),
        });
        return Round {
            primary: Some(p),
            elect,
            wait: None,
            tend_standby: true,
        };
    }
    if primary.pod_exists && primary.since_last_ok < t.detect_after {
        return Round::hold(Some(p), WaitReason::PrimaryUnreachableShort);
    }
    let Some(ss) = &standby.status else {
        return Round::hold(Some(p), WaitReason::BothUnreachable);
    };
    if primary.pod_exists {
        let replicates = ss.replicating_from.as_deref() == Some(primary.name.as_str());
        let connected = replicates && ss.io_thread == IoThread::Connected;
        if connected && ss.received_advanced_recently {
            return Round::hold(Some(p), WaitReason::StandbyStillSeesPrimary);
        }
        let standby_lost_it = replicates && !connected;
        if !standby_lost_it && primary.since_last_ok < t.standby_view_grace {
            return Round::hold(Some(p), WaitReason::AwaitingStandbyView);
        }
    }
    if !ss.sound() {
        return Round::hold(Some(p), WaitReason::NoCandidate);
    }
    let acked = obs.replication != Replication::Async && obs.semi_sync_was_on;
    let covered = obs
        .last_primary_position
        .as_ref()
        .is_some_and(|last| ss.held().contains(last));
    let safe = acked || covered;
    let apply = match obs.priority {
        Priority::RpoFirst if !safe => {
            return Round::hold(Some(p), WaitReason::PossibleDataLoss);
        }
        Priority::RpoFirst => ApplyWait::Complete,
        Priority::RtoFirst => ApplyWait::AtMost(t.max_apply_wait),
    };
    Round {
        primary: Some(s),
        elect: Some(Action::Failover {
            from: primary.name.clone(),
            to: standby.name.clone(),
            apply,
            possible_loss: !safe,
        }),
        wait: None,
        // The old primary is down: nothing to tend until it returns.
        tend_standby: false,
    }
}

fn unlabelled_round(obs: &Observation) -> Round {
    let up: Vec<(usize, &Status)> = obs
        .nodes
        .iter()
        .enumerate()
        .filter_map(|(i, n)| n.status.as_ref().map(|s| (i, s)))
        .collect();
    let most_data = |&&(i, s): &&(usize, &Status)| (s.held().transactions(), Reverse(i));
    // Only the supervisor opens a node, so a writable one was the primary whose label got lost.
    if let Some(&(i, _)) = up
        .iter()
        .filter(|(_, s)| !s.read_only)
        .max_by_key(most_data)
    {
        return Round {
            primary: Some(i),
            elect: Some(Action::Adopt {
                primary: obs.nodes[i].name.clone(),
            }),
            wait: None,
            // Errant is judged against the labelled primary: tend the standby next round.
            tend_standby: false,
        };
    }
    let bootstrap = !obs.had_primary;
    // Before the first election nothing replicated yet, so errant and apply state mean nothing.
    let best = up
        .iter()
        .filter(|(_, s)| bootstrap || s.sound())
        .max_by_key(most_data);
    let all_up = up.len() == obs.nodes.len();
    let Some(&(i, s)) = best else {
        let reason = if all_up {
            WaitReason::NoCandidate
        } else {
            WaitReason::WaitingForNodes
        };
        return Round::hold(None, reason);
    };
    // The silent node may hold more data, unless this one already has everything we saw.
    let covered = obs
        .last_primary_position
        .as_ref()
        .is_some_and(|last| s.held().contains(last));
    if !all_up && !covered {
        return Round::hold(None, WaitReason::WaitingForNodes);
    }
    let primary = obs.nodes[i].name.clone();
    Round {
        primary: Some(i),
        elect: Some(if bootstrap {
            Action::Bootstrap { primary }
        } else {
            Action::Adopt { primary }
        }),
        wait: None,
        tend_standby: false,
    }
}

enum Tend {
    Ok,
    Act(Action),
    Wait(WaitReason),
}

/// The standby of a primary that answers.
fn tend(standby: &Node, source: &str) -> Tend {
    let Some(s) = &standby.status else {
        return Tend::Wait(WaitReason::StandbyUnreachable);
    };
    let rebuild = |reason| {
        Tend::Act(Action::Rebuild {
            node: standby.name.clone(),
            source: source.to_owned(),
            reason,
        })
    };
    if s.errant {
        return rebuild(RebuildReason::Errant);
    }
    if s.last_io_errno == ER_GTID_NOT_IN_PRIMARY_BINLOG {
        return rebuild(RebuildReason::NotInPrimaryBinlog);
    }
    if s.last_sql_errno != 0 {
        return rebuild(RebuildReason::ApplyError);
    }
    if s.replicating_from.as_deref() != Some(source)
        || s.io_thread == IoThread::Stopped
        || !s.sql_thread_running
    {
        return Tend::Act(Action::Rejoin {
            node: standby.name.clone(),
            source: source.to_owned(),
        });
    }
    if s.io_thread == IoThread::Connecting {
        // Restarting it every round would only add writes to a flaky link.
        return Tend::Wait(WaitReason::StandbyReconnecting);
    }
    Tend::Ok
}
