use super::*;
use crate::crd::network::VlanSpec;

fn plain() -> NetworkState {
    serde_json::from_str(include_str!("../../../tests/fixtures/net/plain.json")).unwrap()
}
fn bonded() -> NetworkState {
    serde_json::from_str(include_str!("../../../tests/fixtures/net/bonded.json")).unwrap()
}

/// What bonded.json runs.
fn desired() -> Vec<RenderedBond> {
    vec![RenderedBond {
        name: "bond0".into(),
        mode: BondMode::ActiveBackup,
        miimon: 100,
        primary: Some("eth1".into()),
        ports: vec!["eth1".into(), "eth2".into()],
        mtu: Some(9000),
        addresses: vec!["10.20.0.5/24".into()],
        routes: vec![RouteSpec {
            destination: "10.30.0.0/16".into(),
            gateway: Some("10.20.0.1".into()),
            metric: None,
        }],
        vlans: vec![VlanSpec {
            id: 100,
            mtu: None,
            addresses: vec!["10.100.0.5/24".into()],
            routes: vec![],
        }],
        ..Default::default()
    }]
}

fn run(state: &mut NetworkState, ops: &[Op]) {
    for op in ops {
        simulate(state, op).unwrap_or_else(|e| panic!("{op}: {e}"));
    }
}

fn pos(ops: &[Op], want: &str) -> usize {
    ops.iter()
        .position(|o| o.to_string().starts_with(want))
        .unwrap_or_else(|| panic!("no {want:?} in {ops:#?}"))
}

/// The parts of a state a revert must restore: everything but the IPv6 link-local addresses
/// (the kernel drops them from ports and makes new ones on up) and the order of lists.
fn restorable(mut s: NetworkState) -> NetworkState {
    for l in &mut s.links {
        l.addresses.retain(|a| !a.cidr.is_link_local());
        l.addresses.sort();
    }
    s.links.sort_by(|a, b| a.name.cmp(&b.name));
    s.routes.sort();
    s
}

#[test]
fn fresh_bond_plan_is_ordered_and_converges() {
    let before = plain();
    let ops = plan(&before, &desired()).unwrap();
    assert!(matches!(ops[0], Op::CreateBond { .. }));
    assert!(pos(&ops, "set bond0 mtu 9000") < pos(&ops, "set eth1 master bond0"));
    assert!(pos(&ops, "set eth1 down") < pos(&ops, "set eth1 master bond0"));
    assert!(pos(&ops, "set bond0 up") < pos(&ops, "create vlan bond0.100 on bond0 id 100"));
    assert!(
        pos(&ops, "add address 10.20.0.5/24 on bond0")
            < pos(
                &ops,
                "add route 10.30.0.0/16 via 10.20.0.1 dev bond0 metric 0"
            )
    );
    // eth2 is down already: no redundant step.
    assert!(!ops.iter().any(|o| o.to_string() == "set eth2 down"));
    let mut after = before.clone();
    run(&mut after, &ops);
    assert_eq!(plan(&after, &desired()).unwrap(), vec![]);
    assert_eq!(after.link("eth2").unwrap().mtu, Some(9000));
}

#[test]
fn recorded_bond_needs_nothing() {
    assert_eq!(plan(&bonded(), &desired()).unwrap(), vec![]);
}

#[test]
fn only_the_agents_addresses_and_routes_are_removed() {
    let mut d = desired();
    d[0].addresses.clear();
    d[0].routes.clear();
    let ops = plan(&bonded(), &d).unwrap();
    let text: Vec<String> = ops.iter().map(Op::to_string).collect();
    assert_eq!(
        text,
        [
            "delete route 10.30.0.0/16 via 10.20.0.1 dev bond0 metric 0",
            "delete address 10.20.0.5/24 on bond0",
        ]
    );
}

#[test]
fn mode_change_releases_ports_first() {
    let mut d = desired();
    d[0].mode = BondMode::BalanceXor;
    d[0].primary = None;
    let ops = plan(&bonded(), &d).unwrap();
    assert!(pos(&ops, "set bond0 down") < pos(&ops, "set bond bond0 mode balance-xor"));
    assert!(pos(&ops, "set eth1 nomaster") < pos(&ops, "set bond bond0 mode balance-xor"));
    assert!(pos(&ops, "set bond bond0 mode balance-xor") < pos(&ops, "set eth1 master bond0"));
    let mut after = bonded();
    run(&mut after, &ops);
    assert_eq!(plan(&after, &d).unwrap(), vec![]);
}

#[test]
fn runtime_options_change_in_place() {
    let mut d = desired();
    d[0].miimon = 200;
    d[0].updelay = 400;
    let ops = plan(&bonded(), &d).unwrap();
    let text: Vec<String> = ops.iter().map(Op::to_string).collect();
    assert_eq!(text, ["set bond bond0 miimon 200 updelay 400"]);
}

#[test]
fn revert_restores_after_any_prefix_of_the_plan() {
    let before = plain();
    let undo = undo_record(&before, &desired()).unwrap();
    let json = serde_json::to_string(&undo).unwrap();
    assert_eq!(serde_json::from_str::<UndoRecord>(&json).unwrap(), undo);
    let ops = plan(&before, &desired()).unwrap();
    for k in 0..=ops.len() {
        let mut s = before.clone();
        run(&mut s, &ops[..k]);
        let rev = revert_plan(&s, &undo).unwrap();
        run(&mut s, &rev);
        assert_eq!(
            restorable(s.clone()),
            restorable(before.clone()),
            "after {k} steps"
        );
        assert_eq!(revert_plan(&s, &undo).unwrap(), vec![], "after {k} steps");
    }
}

#[test]
fn revert_of_a_change_to_an_existing_bond() {
    let before = bonded();
    let mut d = desired();
    d[0].mode = BondMode::BalanceXor;
    d[0].primary = None;
    d[0].ports = vec!["eth1".into()];
    d[0].addresses = vec!["10.21.0.5/24".into()];
    d[0].routes.clear();
    let undo = undo_record(&before, &d).unwrap();
    assert_eq!(
        undo.removed_addresses,
        [("bond0".to_string(), "10.20.0.5/24".parse().unwrap())]
    );
    let ops = plan(&before, &d).unwrap();
    for k in 0..=ops.len() {
        let mut s = before.clone();
        run(&mut s, &ops[..k]);
        let rev = revert_plan(&s, &undo).unwrap();
        run(&mut s, &rev);
        let (got, want) = (restorable(s.clone()), restorable(before.clone()));
        for (g, w) in got.links.iter().zip(&want.links) {
            // The simulator does not model which port the bond picks as active.
            let mut g = g.clone();
            g.bond_port = w.bond_port.clone();
            if let (Some(gb), Some(wb)) = (g.bond.as_mut(), w.bond.as_ref()) {
                gb.active_port = wb.active_port.clone();
                gb.lacp_rate = wb.lacp_rate;
                gb.transmit_hash_policy = wb.transmit_hash_policy;
            }
            assert_eq!(&g, w, "after {k} steps");
        }
        assert_eq!(got.routes, want.routes, "after {k} steps");
        assert_eq!(revert_plan(&s, &undo).unwrap(), vec![], "after {k} steps");
    }
}

#[test]
fn ipv6_routes_and_addresses() {
    let mut d = desired();
    d[0].addresses.push("fd00:20::5/64".into());
    d[0].routes.push(RouteSpec {
        destination: "fd00:30::/48".into(),
        gateway: Some("fd00:20::1".into()),
        metric: None,
    });
    let ops = plan(&bonded(), &d).unwrap();
    let text: Vec<String> = ops.iter().map(Op::to_string).collect();
    assert_eq!(
        text,
        [
            "add address fd00:20::5/64 on bond0",
            "add route fd00:30::/48 via fd00:20::1 dev bond0 metric 1024",
        ]
    );
    let mut s = bonded();
    run(&mut s, &ops);
    assert_eq!(plan(&s, &d).unwrap(), vec![]);
}

#[test]
fn a_non_bond_of_that_name_is_refused() {
    let mut d = desired();
    d[0].name = "eth5".into();
    assert!(matches!(
        plan(&plain(), &d),
        Err(PlanError::NameTaken { .. })
    ));
}
