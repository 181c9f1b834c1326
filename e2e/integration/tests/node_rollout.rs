//! The node controller against a real API server (tier 1): the real `agility-operator` with
//! `--controllers=node`, Node objects without kubelets, and this test playing the agents (it
//! writes the enactments' and pools' status as the agents would). Checks: bad policies fail at
//! apply with the schema's messages, one enactment per selected node, approvals within
//! maxUnavailable, a failure stopping the rollout, zero writes at steady state, and DiskPool
//! entries of several agents merged and summed.

#![allow(clippy::unwrap_used)] // tests may unwrap (project rule)

use std::process::Stdio;
use std::time::Duration;

use agility_integration::manager::{free_port, operator_binary};
use agility_integration::{client, wait_for, write_requests};
use agility_node_agent::crd::disk::DiskPool;
use agility_node_agent::crd::network::{NodeNetworkEnactment, NodeNetworkPolicy};
use k8s_openapi::api::core::v1::Node;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use serde_json::{Value, json};
use tokio::process::Command;

const WAIT: Duration = Duration::from_secs(60);

async fn install_crds(client: &Client) {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let never = tokio_util::sync::CancellationToken::new();
    for crd in agility_node_agent::controller::crds() {
        let name = crd.name_any();
        api.patch(
            &name,
            &PatchParams::apply("agility-integration").force(),
            &Patch::Apply(&crd),
        )
        .await
        .unwrap();
        assert!(
            agility_core::crd::wait_established(client, &name, &never)
                .await
                .unwrap()
        );
    }
}

fn policy(name: &str, selector: &str, bonds: Value) -> NodeNetworkPolicy {
    serde_json::from_value(json!({
        "apiVersion": "node.agility.dev/v1alpha1",
        "kind": "NodeNetworkPolicy",
        "metadata": {"name": name},
        "spec": {"nodeSelector": {"it-rollout": selector}, "maxUnavailable": 1, "bonds": bonds},
    }))
    .unwrap()
}

fn bond() -> Value {
    json!([{"name": "bond0", "mode": "active-backup", "miimon": 100, "ports": {"names": ["eth1", "eth2"]}}])
}

/// Plays the agent of `node`: reports `phase` for `generation`.
async fn report(
    api: &Api<NodeNetworkEnactment>,
    node: &str,
    policy: &str,
    generation: i64,
    phase: &str,
) {
    let name = format!("{node}.{policy}");
    let body = json!({
        "apiVersion": "node.agility.dev/v1alpha1",
        "kind": "NodeNetworkEnactment",
        "status": {"phase": phase, "reason": "Test", "policyGeneration": generation},
    });
    api.patch_status(
        &name,
        &PatchParams::apply(&format!("fake-agent/{node}")).force(),
        &Patch::Apply(&body),
    )
    .await
    .unwrap();
}

fn approved(list: &[NodeNetworkEnactment], generation: i64) -> Vec<String> {
    let mut v: Vec<String> = list
        .iter()
        .filter(|e| e.spec.approved_generation == Some(generation))
        .map(|e| e.spec.node_name.clone())
        .collect();
    v.sort();
    v
}

#[tokio::test]
async fn policies_roll_out_node_by_node_and_stop_at_the_failure_limit() {
    let client = client().await;
    install_crds(&client).await;
    let tag = format!("{:x}", std::process::id());
    let nodes: Api<Node> = Api::all(client.clone());
    let names: Vec<String> = ["a", "b", "c"]
        .iter()
        .map(|n| format!("it-{tag}-{n}"))
        .collect();
    for n in &names {
        let node: Node = serde_json::from_value(json!({
            "metadata": {"name": n, "labels": {"it-rollout": tag}},
        }))
        .unwrap();
        nodes.create(&PostParams::default(), &node).await.unwrap();
    }
    let policies: Api<NodeNetworkPolicy> = Api::all(client.clone());

    // Bad input fails at apply, with the schema's message.
    let bad = [
        (
            json!([{"name": "bond0", "mode": "active-backup", "lacpRate": "fast", "ports": {"names": ["eth1"]}}]),
            "lacpRate applies to mode 802.3ad only",
        ),
        (
            json!([{"name": "bond0", "mode": "active-backup", "primary": "eth9", "ports": {"names": ["eth1"]}}]),
            "primary must be one of ports.names",
        ),
        (
            json!([{"name": "bond0", "mode": "balance-rr", "miimon": 100, "updelay": 150, "ports": {"names": ["eth1"]}}]),
            "multiples of miimon",
        ),
        (
            json!([{"name": "bond0", "mode": "802.3ad", "ports": {}}]),
            "name at least one port",
        ),
        (
            json!([{"name": "bond0", "mode": "802.3ad", "ports": {"names": ["eth1"]}, "addresses": ["10.0.0.1"]}]),
            "addresses must be CIDRs",
        ),
    ];
    for (bonds, message) in bad {
        let err = policies
            .create(
                &PostParams::default(),
                &policy(&format!("bad-{tag}"), &tag, bonds),
            )
            .await
            .unwrap_err();
        assert!(
            err.to_string().contains(message),
            "{message:?} not in {err}"
        );
    }

    let mut operator = Command::new(operator_binary())
        .args([
            "run",
            "--controllers=node",
            "--leader-election=false",
            "--http-addr",
            &format!("127.0.0.1:{}", free_port()),
        ])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .unwrap();

    let pname = format!("uplink-{tag}");
    policies
        .create(&PostParams::default(), &policy(&pname, &tag, bond()))
        .await
        .unwrap();
    let enactments: Api<NodeNetworkEnactment> = Api::all(client.clone());
    let selector = format!("node.agility.dev/policy={pname}");
    let list = wait_for("one enactment per node, one approved", WAIT, || async {
        let l = enactments
            .list(&ListParams::default().labels(&selector))
            .await
            .ok()?
            .items;
        (l.len() == 3 && approved(&l, 1).len() == 1).then_some(l)
    })
    .await;
    let first = approved(&list, 1);
    assert_eq!(
        first,
        vec![names[0].clone()],
        "name order, maxUnavailable 1"
    );
    for e in &list {
        assert_eq!(e.owner_references()[0].name, pname, "owned by the policy");
    }

    // The first node succeeds: the next one is approved.
    report(&enactments, &names[0], &pname, 1, "Available").await;
    wait_for("second node approved", WAIT, || async {
        let l = enactments
            .list(&ListParams::default().labels(&selector))
            .await
            .ok()?
            .items;
        (approved(&l, 1).len() == 2).then_some(())
    })
    .await;
    // The second fails: failures reach maxUnavailable, the third is never approved.
    report(&enactments, &names[1], &pname, 1, "Failing").await;
    let aborted = wait_for("rollout aborted", WAIT, || async {
        let p = policies.get(&pname).await.ok()?;
        let s = p.status.clone()?;
        (s.phase.as_deref() == Some("Aborted")).then_some(s)
    })
    .await;
    assert_eq!(
        (
            aborted.matched_nodes,
            aborted.available_nodes,
            aborted.failing_nodes
        ),
        (3, 1, 1)
    );
    let c = aborted
        .conditions
        .iter()
        .find(|c| c.type_ == "Aborted")
        .unwrap();
    assert_eq!(
        (c.status.as_str(), c.reason.as_str()),
        ("True", "FailuresReachedLimit")
    );
    let l = enactments
        .list(&ListParams::default().labels(&selector))
        .await
        .unwrap()
        .items;
    assert_eq!(approved(&l, 1).len(), 2, "the third node stays unapproved");

    // Steady state: no writes.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let resources = ["nodenetworkenactments", "nodenetworkpolicies"];
    let before = write_requests(&client, &resources).await;
    tokio::time::sleep(Duration::from_secs(8)).await;
    assert_eq!(
        write_requests(&client, &resources).await,
        before,
        "zero writes at steady state"
    );

    // A fixed policy (new generation) starts over, within the limit again.
    let mut p = policies.get(&pname).await.unwrap();
    p.spec.bonds[0].miimon = 200;
    policies
        .replace(&pname, &PostParams::default(), &p)
        .await
        .unwrap();
    wait_for("generation 2 approved on one node", WAIT, || async {
        let l = enactments
            .list(&ListParams::default().labels(&selector))
            .await
            .ok()?
            .items;
        (approved(&l, 2).len() == 1).then_some(())
    })
    .await;

    // DiskPool: entries of several agents merge; the controller sums them up.
    let pools: Api<DiskPool> = Api::all(client.clone());
    let pool_name = format!("fast-{tag}");
    let pool: DiskPool = serde_json::from_value(json!({
        "apiVersion": "node.agility.dev/v1alpha1", "kind": "DiskPool",
        "metadata": {"name": pool_name},
        "spec": {"nodeSelector": {"it-rollout": tag}, "devices": {"types": ["SSD"]}},
    }))
    .unwrap();
    pools.create(&PostParams::default(), &pool).await.unwrap();
    for (i, n) in names.iter().enumerate() {
        let entry = json!({"nodeName": n, "phase": "Ready", "volumeGroup": format!("agility-{pool_name}"),
                           "thinPoolBytes": (i as u64 + 1) << 30, "usedBytes": 1u64 << 20});
        let body = json!({"apiVersion": "node.agility.dev/v1alpha1", "kind": "DiskPool", "status": {"nodes": [entry]}});
        pools
            .patch_status(
                &pool_name,
                &PatchParams::apply(&format!("fake-agent/{n}")).force(),
                &Patch::Apply(&body),
            )
            .await
            .unwrap();
    }
    let ready = wait_for("pool Ready with totals", WAIT, || async {
        let s = pools.get(&pool_name).await.ok()?.status?;
        let r = s.conditions.iter().find(|c| c.type_ == "Ready")?;
        (r.status == "True").then_some(s)
    })
    .await;
    assert_eq!(ready.nodes.len(), 3, "every agent's entry kept");
    assert_eq!(ready.capacity_bytes, Some(6 << 30));
    assert_eq!(ready.capacity.as_deref(), Some("6Gi"));
    assert_eq!(ready.ready_nodes, Some(3));

    operator.kill().await.unwrap();
    let _ = policies.delete(&pname, &DeleteParams::default()).await;
    let _ = pools.delete(&pool_name, &DeleteParams::default()).await;
    for n in &names {
        let _ = nodes.delete(n, &DeleteParams::default()).await;
    }
}
