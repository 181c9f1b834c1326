#![allow(clippy::unwrap_used)]

use super::*;

const A: &str = "db-0";
const B: &str = "db-1";

const T: Timing = Timing {
    detect_after: Duration::from_secs(3),
    standby_view_grace: Duration::from_secs(8),
    max_apply_wait: Duration::from_secs(10),
};

/// db-0's history up to `seq` (domain 0, server 1).
fn pos(seq: u64) -> Position {
    Position::default().with(0, 1, seq)
}

/// db-1's history as primary after the failover, up to `seq` (domain 0, server 2).
fn pos_b(seq: u64) -> Position {
    Position::default().with(0, 2, seq)
}

fn primary_status(applied: Position) -> Status {
    Status {
        read_only: false,
        replicating_from: None,
        io_thread: IoThread::Stopped,
        sql_thread_running: false,
        last_io_errno: 0,
        last_sql_errno: 0,
        received: Position::default(),
        applied,
        errant: false,
        received_advanced_recently: false,
    }
}

fn standby_status(of: &str, at: Position) -> Status {
    Status {
        read_only: true,
        replicating_from: Some(of.to_owned()),
        io_thread: IoThread::Connected,
        sql_thread_running: true,
        last_io_errno: 0,
        last_sql_errno: 0,
        received: at.clone(),
        applied: at,
        errant: false,
        received_advanced_recently: true,
    }
}

/// db-1 after db-0 died: its IO thread reconnects, nothing arrives.
fn lost_primary(at: Position) -> Status {
    Status {
        io_thread: IoThread::Connecting,
        last_io_errno: 2003,
        received_advanced_recently: false,
        ..standby_status(A, at)
    }
}

/// db-1 while db-0 is frozen: still connected, nothing arrives (not even heartbeats).
fn frozen_primary() -> Status {
    Status {
        received_advanced_recently: false,
        ..standby_status(A, pos(100))
    }
}

/// A node that just started and was never given a role.
fn fresh() -> Status {
    Status {
        read_only: true,
        ..primary_status(Position::default())
    }
}

fn up(name: &str, status: Status) -> Node {
    Node {
        name: name.to_owned(),
        pod_exists: true,
        since_last_ok: Duration::ZERO,
        status: Some(status),
    }
}

fn down(name: &str, secs: u64) -> Node {
    down_for(name, Duration::from_secs(secs))
}

fn down_for(name: &str, d: Duration) -> Node {
    Node {
        name: name.to_owned(),
        pod_exists: true,
        since_last_ok: d,
        status: None,
    }
}

fn healthy() -> [Node; 2] {
    [
        up(A, primary_status(pos(100))),
        up(B, standby_status(A, pos(100))),
    ]
}

/// The test's replication axis: the mode plus the semi-sync status seen at the last good probe.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Async,
    SemiOn,
    SemiDegraded,
    Sync,
}

const MODES: [Mode; 4] = [Mode::Async, Mode::SemiOn, Mode::SemiDegraded, Mode::Sync];
const PRIORITIES: [Priority; 2] = [Priority::RtoFirst, Priority::RpoFirst];

fn obs(p: Priority, m: Mode, nodes: [Node; 2], primary: Option<&str>) -> Observation {
    let (replication, semi_sync_was_on) = match m {
        Mode::Async => (Replication::Async, false),
        Mode::SemiOn => (Replication::SemiSync, true),
        Mode::SemiDegraded => (Replication::SemiSync, false),
        Mode::Sync => (Replication::Sync, true),
    };
    Observation {
        priority: p,
        replication,
        nodes,
        primary: primary.map(str::to_owned),
        last_primary_position: Some(pos(100)),
        semi_sync_was_on,
        had_primary: true,
        timing: T,
    }
}

fn steady() -> Decision {
    Decision::default()
}

fn wait(r: WaitReason) -> Decision {
    Decision {
        actions: vec![],
        wait: Some(r),
    }
}

fn acts(actions: Vec<Action>) -> Decision {
    Decision {
        actions,
        wait: None,
    }
}

fn fence(node: &str) -> Action {
    Action::Fence { node: node.into() }
}

fn rejoin(node: &str, source: &str) -> Action {
    Action::Rejoin {
        node: node.into(),
        source: source.into(),
    }
}

fn rebuild(node: &str, source: &str, reason: RebuildReason) -> Action {
    Action::Rebuild {
        node: node.into(),
        source: source.into(),
        reason,
    }
}

fn adopt(primary: &str) -> Action {
    Action::Adopt {
        primary: primary.into(),
    }
}

fn bootstrap(primary: &str) -> Action {
    Action::Bootstrap {
        primary: primary.into(),
    }
}

/// db-0 → db-1, with the apply wait each priority asks for.
fn failover_action(p: Priority, possible_loss: bool) -> Action {
    Action::Failover {
        from: A.into(),
        to: B.into(),
        apply: match p {
            Priority::RpoFirst => ApplyWait::Complete,
            Priority::RtoFirst => ApplyWait::AtMost(T.max_apply_wait),
        },
        possible_loss,
    }
}

fn failover(p: Priority, possible_loss: bool) -> Decision {
    acts(vec![failover_action(p, possible_loss)])
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Scenario {
    None,
    PrimaryUnreachableShort,
    PrimaryCrash,
    PrimaryFrozenGraceElapsed,
    PrimaryFrozenGracePending,
    OperatorPartitionedFromPrimary,
    StandbyDown,
    BothDown,
    StandbyBehindLastPrimaryPosition,
    StandbyErrantPrimaryCrash,
    StandbyErrantPrimaryUp,
    StandbySqlErrorPrimaryCrash,
    StandbySqlErrorPrimaryUp,
    StandbyNotInPrimaryBinlog,
    StandbyReplicationStopped,
    StandbyLagging,
    StandbyReconnecting,
    OldPrimaryBackWritable,
    OldPrimaryBackErrant,
    OldPrimaryBackClean,
    FirstBootstrap,
    OperatorRestartNoLabel,
}

const SCENARIOS: [Scenario; 22] = [
    Scenario::None,
    Scenario::PrimaryUnreachableShort,
    Scenario::PrimaryCrash,
    Scenario::PrimaryFrozenGraceElapsed,
    Scenario::PrimaryFrozenGracePending,
    Scenario::OperatorPartitionedFromPrimary,
    Scenario::StandbyDown,
    Scenario::BothDown,
    Scenario::StandbyBehindLastPrimaryPosition,
    Scenario::StandbyErrantPrimaryCrash,
    Scenario::StandbyErrantPrimaryUp,
    Scenario::StandbySqlErrorPrimaryCrash,
    Scenario::StandbySqlErrorPrimaryUp,
    Scenario::StandbyNotInPrimaryBinlog,
    Scenario::StandbyReplicationStopped,
    Scenario::StandbyLagging,
    Scenario::StandbyReconnecting,
    Scenario::OldPrimaryBackWritable,
    Scenario::OldPrimaryBackErrant,
    Scenario::OldPrimaryBackClean,
    Scenario::FirstBootstrap,
    Scenario::OperatorRestartNoLabel,
];

fn situation(sc: Scenario, p: Priority, m: Mode) -> Observation {
    use Scenario as S;
    let primary_up = || up(A, primary_status(pos(100)));
    let labelled_a = |b: Status, a: Node| obs(p, m, [a, up(B, b)], Some(A));
    let sql_error = |s: Status| Status {
        sql_thread_running: false,
        last_sql_errno: 1062,
        ..s
    };
    // After a failover to db-1, which has written on since.
    let after_failover = |a: Status| {
        let mut o = obs(p, m, [up(A, a), up(B, primary_status(pos_b(120)))], Some(B));
        o.last_primary_position = Some(pos_b(120));
        o
    };
    match sc {
        S::None => obs(p, m, healthy(), Some(A)),
        S::PrimaryUnreachableShort => labelled_a(lost_primary(pos(100)), down(A, 2)),
        S::PrimaryCrash => labelled_a(lost_primary(pos(100)), down(A, 4)),
        S::PrimaryFrozenGraceElapsed => labelled_a(frozen_primary(), down(A, 9)),
        S::PrimaryFrozenGracePending => labelled_a(frozen_primary(), down(A, 7)),
        S::OperatorPartitionedFromPrimary => labelled_a(standby_status(A, pos(100)), down(A, 60)),
        S::StandbyDown => obs(p, m, [primary_up(), down(B, 60)], Some(A)),
        S::BothDown => obs(p, m, [down(A, 60), down(B, 60)], Some(A)),
        S::StandbyBehindLastPrimaryPosition => labelled_a(lost_primary(pos(90)), down(A, 4)),
        S::StandbyErrantPrimaryCrash => labelled_a(
            Status {
                errant: true,
                ..lost_primary(pos(100))
            },
            down(A, 4),
        ),
        S::StandbyErrantPrimaryUp => labelled_a(
            Status {
                errant: true,
                ..standby_status(A, pos(100))
            },
            primary_up(),
        ),
        S::StandbySqlErrorPrimaryCrash => labelled_a(sql_error(lost_primary(pos(100))), down(A, 4)),
        S::StandbySqlErrorPrimaryUp => {
            labelled_a(sql_error(standby_status(A, pos(100))), primary_up())
        }
        S::StandbyNotInPrimaryBinlog => labelled_a(
            Status {
                io_thread: IoThread::Stopped,
                last_io_errno: ER_GTID_NOT_IN_PRIMARY_BINLOG,
                ..standby_status(A, pos(100))
            },
            primary_up(),
        ),
        S::StandbyReplicationStopped => labelled_a(
            Status {
                io_thread: IoThread::Stopped,
                sql_thread_running: false,
                ..standby_status(A, pos(100))
            },
            primary_up(),
        ),
        S::StandbyLagging => labelled_a(
            Status {
                received: pos(90),
                applied: pos(70),
                ..standby_status(A, pos(100))
            },
            primary_up(),
        ),
        S::StandbyReconnecting => labelled_a(
            Status {
                io_thread: IoThread::Connecting,
                last_io_errno: 2003,
                ..standby_status(A, pos(100))
            },
            primary_up(),
        ),
        S::OldPrimaryBackWritable => after_failover(primary_status(pos(100))),
        S::OldPrimaryBackErrant => after_failover(Status {
            read_only: true,
            errant: true,
            ..primary_status(pos(105))
        }),
        S::OldPrimaryBackClean => after_failover(Status {
            read_only: true,
            ..primary_status(pos(100))
        }),
        S::FirstBootstrap => {
            let mut o = obs(p, m, [up(A, fresh()), up(B, fresh())], None);
            o.had_primary = false;
            o.last_primary_position = None;
            o
        }
        S::OperatorRestartNoLabel => obs(p, m, healthy(), None),
    }
}

fn expected(sc: Scenario, p: Priority, m: Mode) -> Decision {
    use Priority::{RpoFirst, RtoFirst};
    use RebuildReason as R;
    use Scenario as S;
    use WaitReason as W;
    match sc {
        S::None | S::StandbyLagging => steady(),
        S::PrimaryUnreachableShort => wait(W::PrimaryUnreachableShort),
        S::PrimaryCrash | S::PrimaryFrozenGraceElapsed => failover(p, false),
        S::PrimaryFrozenGracePending => wait(W::AwaitingStandbyView),
        S::OperatorPartitionedFromPrimary => wait(W::StandbyStillSeesPrimary),
        S::StandbyDown => wait(W::StandbyUnreachable),
        S::BothDown => wait(W::BothUnreachable),
        S::StandbyBehindLastPrimaryPosition => match (p, m) {
            (RpoFirst, Mode::SemiOn | Mode::Sync) => failover(p, false),
            (RpoFirst, Mode::Async | Mode::SemiDegraded) => wait(W::PossibleDataLoss),
            (RtoFirst, Mode::SemiOn | Mode::Sync) => failover(p, false),
            (RtoFirst, Mode::Async | Mode::SemiDegraded) => failover(p, true),
        },
        S::StandbyErrantPrimaryCrash | S::StandbySqlErrorPrimaryCrash => wait(W::NoCandidate),
        S::StandbyErrantPrimaryUp => acts(vec![rebuild(B, A, R::Errant)]),
        S::StandbySqlErrorPrimaryUp => acts(vec![rebuild(B, A, R::ApplyError)]),
        S::StandbyNotInPrimaryBinlog => acts(vec![rebuild(B, A, R::NotInPrimaryBinlog)]),
        S::StandbyReplicationStopped => acts(vec![rejoin(B, A)]),
        S::StandbyReconnecting => wait(W::StandbyReconnecting),
        S::OldPrimaryBackWritable => acts(vec![fence(A), rejoin(A, B)]),
        S::OldPrimaryBackErrant => acts(vec![rebuild(A, B, R::Errant)]),
        S::OldPrimaryBackClean => acts(vec![rejoin(A, B)]),
        S::FirstBootstrap => acts(vec![bootstrap(A)]),
        S::OperatorRestartNoLabel => acts(vec![adopt(A)]),
    }
}

#[test]
fn every_priority_mode_and_failure() {
    let mut checked = 0;
    for sc in SCENARIOS {
        for p in PRIORITIES {
            for m in MODES {
                assert_eq!(
                    decide(&situation(sc, p, m)),
                    expected(sc, p, m),
                    "{sc:?} {p:?} {m:?}"
                );
                checked += 1;
            }
        }
    }
    assert_eq!(checked, 22 * 2 * 4);
}

fn rpo_async(nodes: [Node; 2], primary: Option<&str>) -> Observation {
    obs(Priority::RpoFirst, Mode::Async, nodes, primary)
}

fn rto_async(nodes: [Node; 2], primary: Option<&str>) -> Observation {
    obs(Priority::RtoFirst, Mode::Async, nodes, primary)
}

#[test]
fn position_parses_prints_and_compares() {
    let p: Position = "0-1-100,1-2-7".parse().unwrap();
    assert_eq!(p, pos(100).with(1, 2, 7));
    assert_eq!(p.to_string(), "0-1-100,1-2-7");
    assert_eq!(p.get(1), Some(Gtid { server: 2, seq: 7 }));
    assert_eq!(" 0-1-100,\n1-2-7 ".parse::<Position>().unwrap(), p);
    assert_eq!("".parse::<Position>().unwrap(), Position::default());
    assert_eq!(Position::default().to_string(), "");
    for bad in ["0-1", "a-1-2", "0-1-2-3", "0-1-5,0-2-6", "0-1-5,", "-1-2"] {
        assert_eq!(
            bad.parse::<Position>(),
            Err(PositionParseError(bad.into())),
            "{bad}"
        );
    }
    let q = pos(90).with(1, 2, 9);
    assert!(!p.contains(&q), "domain 1 is behind");
    assert_eq!(p.behind(&q), 2);
    assert_eq!(q.behind(&p), 10);
    assert!(
        p.contains(&pos(100)),
        "a missing domain in the other is nothing to lack"
    );
    assert!(!pos(100).contains(&p));
    assert!(p.contains(&Position::default()));
    assert!(Position::default().contains(&Position::default()));
    // The server id does not matter: strict mode numbers a domain's history across servers.
    assert!(pos_b(120).contains(&pos(100)));
    assert_eq!(p.union(&q), pos(100).with(1, 2, 9));
    assert_eq!(p.union(&q).transactions(), 109);
}

#[test]
fn failure_counts_from_exactly_detect_after() {
    let at = |d: Duration| rto_async([down_for(A, d), up(B, lost_primary(pos(100)))], Some(A));
    assert_eq!(
        decide(&at(T.detect_after - Duration::from_millis(1))),
        wait(WaitReason::PrimaryUnreachableShort)
    );
    assert_eq!(
        decide(&at(T.detect_after)),
        failover(Priority::RtoFirst, false)
    );
}

#[test]
fn a_frozen_primary_counts_as_failed_from_exactly_the_grace() {
    let at = |d: Duration| rpo_async([down_for(A, d), up(B, frozen_primary())], Some(A));
    assert_eq!(
        decide(&at(T.standby_view_grace - Duration::from_millis(1))),
        wait(WaitReason::AwaitingStandbyView)
    );
    assert_eq!(
        decide(&at(T.standby_view_grace)),
        failover(Priority::RpoFirst, false)
    );
}

#[test]
fn a_receiving_standby_blocks_failover_however_long() {
    for p in PRIORITIES {
        let o = obs(
            p,
            Mode::SemiOn,
            [down(A, 3600), up(B, standby_status(A, pos(100)))],
            Some(A),
        );
        assert_eq!(decide(&o), wait(WaitReason::StandbyStillSeesPrimary));
    }
}

#[test]
fn a_standby_that_does_not_replicate_from_the_primary_gives_no_second_view() {
    let standby = Status {
        replicating_from: None,
        io_thread: IoThread::Stopped,
        received_advanced_recently: false,
        ..standby_status(A, pos(100))
    };
    let at = |secs| rpo_async([down(A, secs), up(B, standby.clone())], Some(A));
    assert_eq!(decide(&at(4)), wait(WaitReason::AwaitingStandbyView));
    assert_eq!(decide(&at(8)), failover(Priority::RpoFirst, false));
    // Connected and receiving, but from somewhere else: says nothing about the primary.
    let elsewhere = Status {
        replicating_from: Some("10.0.0.9".into()),
        ..standby_status(A, pos(100))
    };
    let o = rpo_async([down(A, 4), up(B, elsewhere)], Some(A));
    assert_eq!(decide(&o), wait(WaitReason::AwaitingStandbyView));
}

#[test]
fn a_gone_primary_pod_fails_over_without_waiting() {
    let mut gone = down(A, 1);
    gone.pod_exists = false;
    let o = rpo_async([gone.clone(), up(B, frozen_primary())], Some(A));
    assert_eq!(decide(&o), failover(Priority::RpoFirst, false));
    let both = rpo_async([gone, down(B, 1)], Some(A));
    assert_eq!(decide(&both), wait(WaitReason::BothUnreachable));
}

#[test]
fn sync_without_semi_sync_seen_on_is_judged_like_async() {
    let mut o = obs(
        Priority::RpoFirst,
        Mode::Sync,
        [down(A, 4), up(B, lost_primary(pos(90)))],
        Some(A),
    );
    o.semi_sync_was_on = false;
    assert_eq!(decide(&o), wait(WaitReason::PossibleDataLoss));
    // Async mode never trusts the flag.
    let mut o = rpo_async([down(A, 4), up(B, lost_primary(pos(90)))], Some(A));
    o.semi_sync_was_on = true;
    assert_eq!(decide(&o), wait(WaitReason::PossibleDataLoss));
}

#[test]
fn an_unknown_last_primary_position_proves_nothing() {
    let nodes = || [down(A, 4), up(B, lost_primary(pos(100)))];
    let mut o = rpo_async(nodes(), Some(A));
    o.last_primary_position = None;
    assert_eq!(decide(&o), wait(WaitReason::PossibleDataLoss));
    let mut o = rto_async(nodes(), Some(A));
    o.last_primary_position = None;
    assert_eq!(decide(&o), failover(Priority::RtoFirst, true));
}

#[test]
fn received_but_unapplied_transactions_count_as_held() {
    let standby = Status {
        applied: pos(60),
        ..lost_primary(pos(100))
    };
    let o = rpo_async([down(A, 4), up(B, standby)], Some(A));
    assert_eq!(decide(&o), failover(Priority::RpoFirst, false));
}

#[test]
fn rto_first_applies_for_at_most_max_apply_wait() {
    let mut o = rto_async([down(A, 4), up(B, lost_primary(pos(100)))], Some(A));
    o.timing.max_apply_wait = Duration::from_secs(42);
    assert_eq!(
        decide(&o).actions,
        vec![Action::Failover {
            from: A.into(),
            to: B.into(),
            apply: ApplyWait::AtMost(Duration::from_secs(42)),
            possible_loss: false,
        }]
    );
}

#[test]
fn a_standby_with_io_error_1236_is_never_promoted() {
    for p in PRIORITIES {
        let standby = Status {
            io_thread: IoThread::Stopped,
            last_io_errno: ER_GTID_NOT_IN_PRIMARY_BINLOG,
            ..lost_primary(pos(100))
        };
        let o = obs(p, Mode::SemiOn, [down(A, 4), up(B, standby)], Some(A));
        assert_eq!(decide(&o), wait(WaitReason::NoCandidate));
    }
}

#[test]
fn a_writable_standby_beside_a_healthy_primary_is_fenced_first() {
    let writable = Status {
        read_only: false,
        ..standby_status(A, pos(100))
    };
    let o = rpo_async(
        [up(A, primary_status(pos(100))), up(B, writable.clone())],
        Some(A),
    );
    assert_eq!(decide(&o), acts(vec![fence(B)]));
    let took_writes = Status {
        errant: true,
        ..writable
    };
    let o = rpo_async(
        [up(A, primary_status(pos(100))), up(B, took_writes)],
        Some(A),
    );
    assert_eq!(
        decide(&o),
        acts(vec![fence(B), rebuild(B, A, RebuildReason::Errant)])
    );
}

#[test]
fn a_writable_standby_is_fenced_while_the_primary_is_in_doubt() {
    let writable = |s: Status| Status {
        read_only: false,
        ..s
    };
    let o = rpo_async(
        [down(A, 1), up(B, writable(lost_primary(pos(100))))],
        Some(A),
    );
    assert_eq!(
        decide(&o),
        Decision {
            actions: vec![fence(B)],
            wait: Some(WaitReason::PrimaryUnreachableShort)
        }
    );
    let errant = Status {
        errant: true,
        ..writable(lost_primary(pos(100)))
    };
    let o = rpo_async([down(A, 4), up(B, errant)], Some(A));
    assert_eq!(
        decide(&o),
        Decision {
            actions: vec![fence(B)],
            wait: Some(WaitReason::NoCandidate)
        }
    );
}

#[test]
fn a_writable_candidate_is_promoted_not_fenced() {
    let writable = Status {
        read_only: false,
        ..lost_primary(pos(100))
    };
    let o = rpo_async([down(A, 4), up(B, writable)], Some(A));
    assert_eq!(decide(&o), failover(Priority::RpoFirst, false));
}

#[test]
fn a_writable_errant_old_primary_is_fenced_then_rebuilt() {
    let a = Status {
        errant: true,
        ..primary_status(pos(105))
    };
    let mut o = rto_async([up(A, a), up(B, primary_status(pos_b(120)))], Some(B));
    o.last_primary_position = Some(pos_b(120));
    assert_eq!(
        decide(&o),
        acts(vec![fence(A), rebuild(A, B, RebuildReason::Errant)])
    );
}

#[test]
fn a_labelled_primary_that_restarted_read_only_is_reopened() {
    let restarted = Status {
        read_only: true,
        ..primary_status(pos(100))
    };
    let o = rpo_async([up(A, restarted), up(B, lost_primary(pos(100)))], Some(A));
    assert_eq!(
        decide(&o),
        Decision {
            actions: vec![adopt(A)],
            wait: Some(WaitReason::StandbyReconnecting)
        }
    );
}

#[test]
fn bootstrap_waits_for_both_nodes() {
    for nodes in [
        [up(A, fresh()), down(B, 60)],
        [down(A, 60), up(B, fresh())],
        [down(A, 60), down(B, 60)],
    ] {
        let mut o = rto_async(nodes, None);
        o.had_primary = false;
        o.last_primary_position = None;
        assert_eq!(decide(&o), wait(WaitReason::WaitingForNodes));
    }
}

#[test]
fn bootstrap_prefers_the_most_data_then_ordinal_zero() {
    let with = |applied: Position| Status { applied, ..fresh() };
    let elect = |a: Position, b: Position| {
        let mut o = rpo_async([up(A, with(a)), up(B, with(b))], None);
        o.had_primary = false;
        o.last_primary_position = None;
        decide(&o)
    };
    assert_eq!(elect(pos(3), pos(5)), acts(vec![bootstrap(B)]));
    assert_eq!(elect(pos(5), pos(3)), acts(vec![bootstrap(A)]));
    assert_eq!(elect(pos(5), pos(5)), acts(vec![bootstrap(A)]));
    // Nothing replicated before the first election: errant means nothing yet.
    let mut o = rpo_async(
        [
            up(A, fresh()),
            up(
                B,
                Status {
                    errant: true,
                    ..with(pos(5))
                },
            ),
        ],
        None,
    );
    o.had_primary = false;
    assert_eq!(decide(&o), acts(vec![bootstrap(B)]));
}

#[test]
fn without_a_label_the_most_advanced_sound_node_is_adopted() {
    let restarted = |errant| Status {
        read_only: true,
        errant,
        ..primary_status(pos(100))
    };
    let standby = |errant| Status {
        errant,
        ..lost_primary(pos(90))
    };
    let adopt_of = |a, b| decide(&rpo_async([up(A, restarted(a)), up(B, standby(b))], None));
    assert_eq!(adopt_of(false, false), acts(vec![adopt(A)]));
    assert_eq!(adopt_of(true, false), acts(vec![adopt(B)]));
    assert_eq!(adopt_of(true, true), wait(WaitReason::NoCandidate));
}

#[test]
fn without_a_label_a_silent_node_is_waited_for_unless_nothing_seen_is_missing() {
    let o = rpo_async([down(A, 60), up(B, lost_primary(pos(100)))], None);
    assert_eq!(decide(&o), acts(vec![adopt(B)]));
    for p in PRIORITIES {
        let o = obs(
            p,
            Mode::Async,
            [down(A, 60), up(B, lost_primary(pos(90)))],
            None,
        );
        assert_eq!(decide(&o), wait(WaitReason::WaitingForNodes));
    }
    let errant = Status {
        errant: true,
        ..lost_primary(pos(100))
    };
    let o = rpo_async([down(A, 60), up(B, errant)], None);
    assert_eq!(decide(&o), wait(WaitReason::WaitingForNodes));
    let o = rpo_async([down(A, 60), down(B, 60)], None);
    assert_eq!(decide(&o), wait(WaitReason::WaitingForNodes));
}

#[test]
fn without_a_label_a_writable_node_is_adopted_and_a_second_one_fenced() {
    let o = rpo_async(
        [
            up(A, primary_status(pos(90))),
            up(B, primary_status(pos(100))),
        ],
        None,
    );
    assert_eq!(decide(&o), acts(vec![fence(A), adopt(B)]));
    // Writable wins over more data: only the supervisor opens a node, so it was the primary.
    let o = rpo_async(
        [
            up(A, standby_status(B, pos(100))),
            up(B, primary_status(pos(90))),
        ],
        None,
    );
    assert_eq!(decide(&o), acts(vec![adopt(B)]));
}

#[test]
fn a_label_on_an_unknown_pod_counts_as_no_label() {
    let o = rpo_async(healthy(), Some("db-7"));
    assert_eq!(decide(&o), acts(vec![adopt(A)]));
}

#[test]
fn steady_is_the_default_decision() {
    assert!(Decision::default().is_steady());
    assert!(decide(&rpo_async(healthy(), Some(A))).is_steady());
    assert!(!wait(WaitReason::StandbyUnreachable).is_steady());
    assert!(!acts(vec![fence(A)]).is_steady());
}

#[test]
fn reason_names_are_camel_case_and_distinct() {
    use WaitReason as W;
    let waits = [
        W::PrimaryUnreachableShort,
        W::StandbyStillSeesPrimary,
        W::AwaitingStandbyView,
        W::NoCandidate,
        W::PossibleDataLoss,
        W::BothUnreachable,
        W::StandbyUnreachable,
        W::StandbyReconnecting,
        W::WaitingForNodes,
    ];
    let rebuilds = [
        RebuildReason::Errant,
        RebuildReason::NotInPrimaryBinlog,
        RebuildReason::ApplyError,
    ];
    let names: Vec<&str> = waits
        .iter()
        .map(|w| w.as_str())
        .chain(rebuilds.iter().map(|r| r.as_str()))
        .collect();
    for (i, n) in names.iter().enumerate() {
        assert!(n.starts_with(|c: char| c.is_ascii_uppercase()), "{n}");
        assert!(n.chars().all(|c| c.is_ascii_alphanumeric()), "{n}");
        assert!(!names[..i].contains(n), "{n} twice");
    }
    assert_eq!(W::PossibleDataLoss.as_str(), "PossibleDataLoss");
    assert_eq!(format!("{:?}", W::NoCandidate), W::NoCandidate.as_str());
}
