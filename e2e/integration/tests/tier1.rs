//! agility-core against a real kube-apiserver + etcd (tier 1). Run:
//! `KUBECONFIG=$(e2e/cluster/apiserver.sh up | tail -1) cargo test -p agility-integration -- --test-threads=1 --nocapture`

#![allow(clippy::unwrap_used)] // tests may unwrap (project rule)

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use agility_core::ErrorCategory;
use agility_core::leader::LeaseTiming;
use agility_integration::replica::Replica;
use agility_integration::widget::{self, CONTROLLER, RunningController, Widget, WidgetSpec};
use agility_integration::{TestNamespace, client, wait_for, write_requests};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::api::events::v1::Event;
use kube::api::{
    Api, ApiResource, DynamicObject, ListParams, ObjectMeta, Patch, PatchParams, PostParams,
};
use kube::{Client, ResourceExt};
use serde_json::json;

const FAST_REQUEUE: Duration = Duration::from_millis(200);
const WAIT: Duration = Duration::from_secs(30);

fn widget(name: &str, children: &[&str], message: &str) -> Widget {
    let mut w = Widget::new(
        name,
        WidgetSpec {
            children: children.iter().map(|s| (*s).to_owned()).collect(),
            message: message.into(),
            options: None,
        },
    );
    w.metadata.labels = Some(BTreeMap::from([("test".to_owned(), "tier1".to_owned())]));
    w
}

async fn setup(prefix: &str) -> (Client, TestNamespace) {
    let client = client().await;
    widget::install_crd(&client).await;
    let ns = TestNamespace::create(&client, prefix).await;
    (client, ns)
}

/// Waits until the widget's status says Ready=True for its current generation; returns it.
async fn wait_ready(api: &Api<Widget>, name: &str) -> Widget {
    wait_for(&format!("widget {name} Ready"), WAIT, || async {
        let w = api.get_opt(name).await.ok()??;
        let status = w.status.as_ref()?;
        let ready = status.conditions.iter().find(|c| c.type_ == "Ready")?;
        (ready.status == "True" && status.observed_generation == w.metadata.generation).then_some(w)
    })
    .await
}

async fn config_maps(api: &Api<ConfigMap>) -> BTreeMap<String, String> {
    api.list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|cm| cm.name_any() != "kube-root-ca.crt")
        .map(|cm| (cm.name_any(), cm.resource_version().unwrap_or_default()))
        .collect()
}

async fn wait_reconciles(ctrl: &RunningController, at_least: u64) {
    let target = ctrl.reconciles() + at_least;
    wait_for("more reconciles", WAIT, || async {
        (ctrl.reconciles() >= target).then_some(())
    })
    .await;
}

#[tokio::test]
async fn steady_state_makes_zero_writes() {
    let (client, ns) = setup("steady").await;
    let widgets: Api<Widget> = Api::namespaced(client.clone(), &ns.name);
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), &ns.name);
    widgets
        .create(&PostParams::default(), &widget("w1", &["a", "b"], "hello"))
        .await
        .unwrap();

    let ctrl = RunningController::start(&client, &ns.name, FAST_REQUEUE);
    let ready = wait_ready(&widgets, "w1").await;
    assert!(
        ctrl.health.readiness().ready,
        "watches synced: {:?}",
        ctrl.health.readiness()
    );
    let children = wait_for("2 children", WAIT, || async {
        let c = config_maps(&cms).await;
        (c.len() == 2).then_some(c)
    })
    .await;
    let cm = cms.get("w1-a").await.unwrap();
    assert_eq!(
        cm.labels()["app.kubernetes.io/managed-by"],
        "agility-operator"
    );
    assert_eq!(cm.labels()["agility.dev/controller"], CONTROLLER);
    assert_eq!(cm.owner_references()[0].uid, ready.uid().unwrap());
    assert_eq!(cm.owner_references()[0].controller, Some(true));
    assert!(
        cm.managed_fields()
            .iter()
            .any(|m| m.manager.as_deref() == Some("agility-operator/widget"))
    );

    // Let the first reconciles settle (the status write re-triggers one reconcile), then measure.
    wait_reconciles(&ctrl, 3).await;
    let widget_rv = widgets.get("w1").await.unwrap().resource_version();
    let children_rv = config_maps(&cms).await;
    let writes_before = write_requests(&client, &["configmaps", "widgets"]).await;
    let reconciles_before = ctrl.reconciles();
    wait_reconciles(&ctrl, 20).await;
    let reconciles = ctrl.reconciles() - reconciles_before;
    let writes = write_requests(&client, &["configmaps", "widgets"]).await - writes_before;

    assert_eq!(
        widgets.get("w1").await.unwrap().resource_version(),
        widget_rv,
        "widget (status) rewritten"
    );
    assert_eq!(config_maps(&cms).await, children_rv, "children rewritten");
    assert_eq!(
        children_rv.keys().collect::<Vec<_>>(),
        children.keys().collect::<Vec<_>>()
    );
    assert_eq!(
        writes, 0,
        "write requests to the API server in steady state"
    );
    println!(
        "steady state: {reconciles} reconciles, {writes} write requests, resourceVersions unchanged"
    );

    // Drift repair: a manual edit of a managed field is reverted by the next reconcile.
    cms.patch(
        "w1-a",
        &PatchParams::default(),
        &Patch::Merge(json!({"data": {"message": "edited"}})),
    )
    .await
    .unwrap();
    wait_for("drift repaired", WAIT, || async {
        let cm = cms.get("w1-a").await.ok()?;
        (cm.data.as_ref()?.get("message")? == "hello").then_some(())
    })
    .await;

    ctrl.stop().await.unwrap();
    ns.delete().await;
}

#[tokio::test]
async fn undesired_children_are_pruned() {
    let (client, ns) = setup("prune").await;
    let widgets: Api<Widget> = Api::namespaced(client.clone(), &ns.name);
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), &ns.name);
    widgets
        .create(&PostParams::default(), &widget("w1", &["a", "b", "c"], "x"))
        .await
        .unwrap();
    // Carries our labels but no owner reference: not ours to delete.
    let foreign = ConfigMap {
        metadata: ObjectMeta {
            name: Some("w1-foreign".into()),
            labels: Some(agility_core::labels::standard(
                "widget", CONTROLLER, "w1", "config",
            )),
            ..Default::default()
        },
        ..Default::default()
    };
    cms.create(&PostParams::default(), &foreign).await.unwrap();

    let ctrl = RunningController::start(&client, &ns.name, Duration::from_secs(60));
    wait_for("3 children", WAIT, || async {
        (config_maps(&cms).await.len() == 4).then_some(())
    })
    .await;
    wait_ready(&widgets, "w1").await;
    let kept_rv = cms.get("w1-a").await.unwrap().resource_version();

    widgets
        .patch(
            "w1",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"children": ["a"]}})),
        )
        .await
        .unwrap();
    let start = Instant::now();
    let left = wait_for("b and c pruned", WAIT, || async {
        let c = config_maps(&cms).await;
        (!c.contains_key("w1-b") && !c.contains_key("w1-c")).then_some(c)
    })
    .await;
    println!("pruned 2 children in {} ms", start.elapsed().as_millis());
    assert_eq!(
        left.keys().cloned().collect::<Vec<_>>(),
        vec!["w1-a".to_owned(), "w1-foreign".to_owned()]
    );
    assert_eq!(
        left["w1-a"],
        kept_rv.unwrap_or_default(),
        "the still-desired child was not rewritten"
    );
    let w = wait_ready(&widgets, "w1").await;
    assert_eq!(w.status.unwrap().children, 1);

    ctrl.stop().await.unwrap();
    ns.delete().await;
}

#[tokio::test]
async fn status_is_written_only_when_it_changes() {
    let (client, ns) = setup("status").await;
    let widgets: Api<Widget> = Api::namespaced(client.clone(), &ns.name);
    widgets
        .create(&PostParams::default(), &widget("w1", &["a"], "one"))
        .await
        .unwrap();
    let ctrl = RunningController::start(&client, &ns.name, FAST_REQUEUE);
    let first = wait_ready(&widgets, "w1").await;
    wait_reconciles(&ctrl, 3).await;
    let settled = widgets.get("w1").await.unwrap();
    let status_writes = || async { write_requests(&client, &["widgets"]).await };
    let before = status_writes().await;
    wait_reconciles(&ctrl, 15).await;
    assert_eq!(
        widgets.get("w1").await.unwrap().resource_version(),
        settled.resource_version()
    );
    assert_eq!(
        status_writes().await - before,
        0,
        "status writes without a change"
    );

    // A spec change (new generation) changes observedGeneration: exactly one status write, and
    // Ready stays True so its lastTransitionTime does not move.
    let ready_time = |w: &Widget| {
        w.status
            .as_ref()
            .and_then(|s| s.conditions.iter().find(|c| c.type_ == "Ready"))
            .map(|c| c.last_transition_time.clone())
    };
    let before = status_writes().await;
    widgets
        .patch(
            "w1",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"message": "two"}})),
        )
        .await
        .unwrap();
    let second = wait_ready(&widgets, "w1").await;
    assert_eq!(second.metadata.generation, Some(2));
    assert_eq!(second.status.as_ref().unwrap().observed_generation, Some(2));
    assert_eq!(
        ready_time(&second),
        ready_time(&first),
        "lastTransitionTime is stable"
    );
    wait_reconciles(&ctrl, 10).await;
    // The spec patch itself is one write; the status update another; nothing else.
    let writes = status_writes().await - before;
    assert_eq!(writes, 2, "spec patch + one status write");
    println!("spec change: {writes} writes to widgets (1 spec patch by the test, 1 status write)");

    ctrl.stop().await.unwrap();
    ns.delete().await;
}

#[tokio::test]
async fn malformed_object_does_not_stop_the_controller() {
    let (client, ns) = setup("malformed").await;
    let widgets: Api<Widget> = Api::namespaced(client.clone(), &ns.name);
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), &ns.name);
    let resource = ApiResource::erase::<Widget>(&());
    let dynamic: Api<DynamicObject> = Api::namespaced_with(client.clone(), &ns.name, &resource);

    widgets
        .create(&PostParams::default(), &widget("good-1", &["a"], "x"))
        .await
        .unwrap();
    // The schema accepts any object under spec.options; the Rust type wants an integer.
    let bad: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "test.agility.dev/v1alpha1", "kind": "Widget",
        "metadata": {"name": "bad"},
        "spec": {"children": ["a"], "message": "x", "options": {"replicas": "many"}}
    }))
    .unwrap();
    dynamic.create(&PostParams::default(), &bad).await.unwrap();
    widgets
        .create(&PostParams::default(), &widget("good-2", &["a"], "x"))
        .await
        .unwrap();

    // Proof that this object breaks a typed list (what a naive typed watcher would do forever).
    let typed_list = widgets.list(&ListParams::default()).await;
    assert!(
        typed_list.is_err(),
        "a typed list should fail to decode the malformed object"
    );
    println!(
        "typed list of the namespace fails: {}",
        typed_list.err().map(|e| e.to_string()).unwrap_or_default()
    );

    // The malformed object is already there when the controller lists (initial list) ...
    let ctrl = RunningController::start(&client, &ns.name, FAST_REQUEUE);
    wait_ready(&widgets, "good-1").await;
    wait_ready(&widgets, "good-2").await;
    // ... and objects created afterwards (watch phase) are reconciled too.
    widgets
        .create(&PostParams::default(), &widget("good-3", &["a"], "x"))
        .await
        .unwrap();
    wait_ready(&widgets, "good-3").await;
    for name in ["good-1-a", "good-2-a", "good-3-a"] {
        assert!(cms.get_opt(name).await.unwrap().is_some(), "{name}");
    }
    assert!(cms.get_opt("bad-a").await.unwrap().is_none());

    // The malformed object reports why, in status and in an event.
    let condition = wait_for("bad Ready=False", WAIT, || async {
        let obj = dynamic.get("bad").await.ok()?;
        let conds = obj.data.pointer("/status/conditions")?.as_array()?.clone();
        conds
            .into_iter()
            .find(|c| c["type"] == "Ready" && c["status"] == "False")
    })
    .await;
    assert_eq!(condition["reason"], "InvalidSpec");
    let message = condition["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("cannot decode Widget") && message.contains("invalid type"),
        "{message}"
    );
    let events: Api<Event> = Api::namespaced(client.clone(), &ns.name);
    let event = wait_for("InvalidSpec event", WAIT, || async {
        let list = events.list(&ListParams::default()).await.ok()?;
        list.items.into_iter().find(|e| {
            e.reason.as_deref() == Some("InvalidSpec")
                && e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some("bad")
        })
    })
    .await;
    assert_eq!(event.type_.as_deref(), Some("Warning"));
    assert_eq!(
        event.reporting_controller.as_deref(),
        Some("agility-operator/widget")
    );

    // No hot loop: while the good objects requeue every 200ms, the invalid one waits for a change.
    let failures_before = ctrl
        .metrics
        .failures(CONTROLLER, ErrorCategory::InvalidSpec);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let failures = ctrl
        .metrics
        .failures(CONTROLLER, ErrorCategory::InvalidSpec)
        - failures_before;
    assert!(
        failures <= 1,
        "invalid object retried {failures} times in 3s"
    );
    println!("invalid object: {failures} retries in 3s (waits for a change)");

    // Fixing it is a change: it gets reconciled and becomes Ready.
    dynamic
        .patch(
            "bad",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"options": {"replicas": 2}}})),
        )
        .await
        .unwrap();
    wait_ready(&widgets, "bad").await;
    assert_eq!(
        cms.get("bad-a").await.unwrap().data.unwrap()["replicas"],
        "2"
    );

    ctrl.stop().await.unwrap();
    ns.delete().await;
}

#[tokio::test]
async fn one_leader_and_fast_handover() {
    let (client, ns) = setup("leader").await;
    let lease_name = "agility-operator";
    let timing = LeaseTiming::default();
    let leases: Api<Lease> = Api::namespaced(client.clone(), &ns.name);
    let holder = || async {
        leases
            .get_opt(lease_name)
            .await
            .ok()
            .flatten()
            .and_then(|l| l.spec?.holder_identity)
            .filter(|h| !h.is_empty())
    };

    let a = Replica::start(&client, &ns.name, lease_name, "replica-a", timing);
    wait_for("a leads", WAIT, || async { a.is_leader().then_some(()) }).await;
    let b = Replica::start(&client, &ns.name, lease_name, "replica-b", timing);
    // b sees a live lease and stays standby for several of its rounds.
    tokio::time::sleep(timing.retry_interval * 3).await;
    assert!(a.is_leader() && !b.is_leader(), "exactly one leader");
    assert_eq!(holder().await.as_deref(), Some("replica-a"));

    // The leader's controller reconciles.
    let widgets: Api<Widget> = Api::namespaced(client.clone(), &ns.name);
    widgets
        .create(&PostParams::default(), &widget("w1", &["a"], "x"))
        .await
        .unwrap();
    wait_ready(&widgets, "w1").await;

    // Graceful exit: the lease is released and b takes over within one retry interval.
    let start = Instant::now();
    a.shutdown().await;
    wait_for("b leads", WAIT, || async { b.is_leader().then_some(()) }).await;
    let graceful = start.elapsed();
    assert_eq!(holder().await.as_deref(), Some("replica-b"));
    println!(
        "leader takeover after graceful exit (lease released): {} ms",
        graceful.as_millis()
    );
    assert!(
        graceful <= timing.retry_interval + Duration::from_secs(2),
        "{graceful:?}"
    );

    // The new leader's controller reconciles new objects.
    widgets
        .create(&PostParams::default(), &widget("w2", &["a"], "x"))
        .await
        .unwrap();
    wait_ready(&widgets, "w2").await;

    // Crash of the leader (no release): a standby takes over once the lease expires.
    let c = Replica::start(&client, &ns.name, lease_name, "replica-c", timing);
    tokio::time::sleep(timing.retry_interval * 2).await;
    assert!(b.is_leader() && !c.is_leader(), "exactly one leader");
    let start = Instant::now();
    b.crash();
    // Poll by hand: besides waiting, check that c never leads while the lease names someone else.
    loop {
        let leads = c.is_leader();
        let named = holder().await;
        assert!(
            !leads || named.as_deref() == Some("replica-c"),
            "c leads while the lease names {named:?}"
        );
        if leads {
            break;
        }
        assert!(
            start.elapsed() < timing.lease_duration * 3,
            "c never took over"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let crash = start.elapsed();
    assert_eq!(holder().await.as_deref(), Some("replica-c"));
    println!(
        "leader takeover after crash (lease expiry, {}s lease): {} ms",
        timing.lease_duration.as_secs(),
        crash.as_millis()
    );
    assert!(
        crash >= timing.lease_duration - timing.renew_interval,
        "took over before the lease could expire: {crash:?}"
    );
    assert!(
        crash <= timing.lease_duration + timing.retry_interval * 2 + Duration::from_secs(1),
        "{crash:?}"
    );
    let transitions = leases
        .get(lease_name)
        .await
        .unwrap()
        .spec
        .and_then(|s| s.lease_transitions);
    assert_eq!(transitions, Some(2), "a -> b -> c");

    widgets
        .create(&PostParams::default(), &widget("w3", &["a"], "x"))
        .await
        .unwrap();
    wait_ready(&widgets, "w3").await;

    c.shutdown().await;
    ns.delete().await;
}

#[tokio::test]
async fn manager_processes_elect_one_leader_and_hand_over() {
    use agility_integration::manager::{ManagerProcess, operator_binary};
    let (client, ns) = setup("managers").await;
    let binary = operator_binary();
    let leases: Api<Lease> = Api::namespaced(client.clone(), &ns.name);
    let holder = || async {
        leases
            .get_opt("agility-operator")
            .await
            .ok()
            .flatten()
            .and_then(|l| l.spec?.holder_identity)
            .filter(|h| !h.is_empty())
    };
    let mut a = ManagerProcess::start(&binary, &ns.name, "manager-a");
    wait_for("manager-a leads", WAIT, || async {
        (holder().await.as_deref() == Some("manager-a")).then_some(())
    })
    .await;
    let mut b = ManagerProcess::start(&binary, &ns.name, "manager-b");
    // Both become Ready: the leader with its (zero) controllers synced, the standby as standby.
    for m in [&a, &b] {
        let body = wait_for("readyz 200", WAIT, || async {
            m.get("/readyz")
                .await
                .filter(|(code, _)| *code == 200)
                .map(|(_, b)| b)
        })
        .await;
        println!("{} /readyz: {body}", m.identity);
    }
    let leader_gauge = |text: &str| text.lines().any(|l| l == "agility_leader 1");
    assert!(leader_gauge(&a.get("/metrics").await.unwrap().1));
    assert!(!leader_gauge(&b.get("/metrics").await.unwrap().1));
    assert_eq!(holder().await.as_deref(), Some("manager-a"));

    // SIGTERM to the leader: it releases the lease and exits 0; the standby takes over.
    let start = Instant::now();
    a.signal("TERM").await;
    wait_for("manager-b leads", WAIT, || async {
        (holder().await.as_deref() == Some("manager-b")).then_some(())
    })
    .await;
    let graceful = start.elapsed();
    assert_eq!(a.wait().await, Some(0), "leader exits cleanly on SIGTERM");
    println!(
        "manager takeover after SIGTERM of the leader: {} ms",
        graceful.as_millis()
    );
    wait_for("manager-b leader gauge", WAIT, || async {
        b.get("/metrics")
            .await
            .filter(|(_, t)| leader_gauge(t))
            .map(|_| ())
    })
    .await;

    // SIGKILL of the leader (no release): a new standby takes over after the lease expires.
    let mut c = ManagerProcess::start(&binary, &ns.name, "manager-c");
    wait_for("manager-c ready", WAIT, || async {
        c.get("/readyz")
            .await
            .filter(|(code, _)| *code == 200)
            .map(|_| ())
    })
    .await;
    let start = Instant::now();
    b.signal("KILL").await;
    assert_eq!(b.wait().await, None, "killed by a signal");
    wait_for("manager-c leads", Duration::from_secs(40), || async {
        (holder().await.as_deref() == Some("manager-c")).then_some(())
    })
    .await;
    println!(
        "manager takeover after SIGKILL of the leader (15s lease): {} ms",
        start.elapsed().as_millis()
    );

    c.signal("TERM").await;
    assert_eq!(c.wait().await, Some(0));
    assert_eq!(holder().await, None, "the last leader released the lease");
    ns.delete().await;
}
