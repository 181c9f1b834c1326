//! The node agent on the real node: its DaemonSet runs, the node's NodeNetworkState is published
//! (with the node's real interfaces), and loop devices this test attaches appear as NodeDisk
//! objects with the right eligibility: a blank one is eligible, one with a filesystem is not
//! (HasSignature). Detaching them marks the objects `present: false` instead of deleting them.
//! Prints how long each took.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use agility_e2e::{TestEnv, wait};
use k8s_openapi::api::apps::v1::DaemonSet;
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, ListParams};
use kube::core::GroupVersionKind;
use serde_json::Value;

const NAMESPACE: &str = "agility-node-system";

fn node_api(client: &kube::Client, kind: &str) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk("node.agility.dev", "v1alpha1", kind);
    Api::all_with(client.clone(), &ApiResource::from_gvk(&gvk))
}

/// A loop device over a sparse file; detached (and the file removed) on drop.
struct Loop {
    device: String,
    file: PathBuf,
}

impl Loop {
    fn attach(name: &str, mib: u64) -> Loop {
        let file =
            std::env::temp_dir().join(format!("agility-e2e-{name}-{}.img", std::process::id()));
        let f = std::fs::File::create(&file).expect("backing file");
        f.set_len(mib << 20).expect("sparse size");
        let out = Command::new("losetup")
            .args(["--find", "--show"])
            .arg(&file)
            .output()
            .expect("losetup");
        assert!(
            out.status.success(),
            "losetup: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Loop {
            device: String::from_utf8_lossy(&out.stdout).trim().to_owned(),
            file,
        }
    }
}

impl Drop for Loop {
    fn drop(&mut self) {
        let _ = Command::new("losetup").args(["-d", &self.device]).status();
        let _ = std::fs::remove_file(&self.file);
    }
}

fn status_of<'a>(o: &'a DynamicObject, field: &str) -> Option<&'a Value> {
    o.data.get("status").and_then(|s| s.get(field))
}

async fn disk_with_path(
    api: &Api<DynamicObject>,
    node: &str,
    path: &str,
    within: Duration,
) -> DynamicObject {
    let deadline = Instant::now() + within;
    loop {
        let list = api
            .list(&ListParams::default().labels(&format!("node.agility.dev/node={node}")))
            .await
            .expect("list NodeDisks");
        if let Some(d) = list.items.into_iter().find(|d| {
            status_of(d, "path").and_then(Value::as_str) == Some(path)
                && status_of(d, "present").and_then(Value::as_bool) == Some(true)
        }) {
            return d;
        }
        assert!(
            Instant::now() < deadline,
            "no NodeDisk for {path} on {node} within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test]
async fn the_agent_publishes_network_state_and_loop_disks() {
    let env = TestEnv::from_env().await.expect("a reachable cluster");
    let client = env.client().clone();
    let ds_api: Api<DaemonSet> = Api::namespaced(client.clone(), NAMESPACE);
    let ds = wait::wait_for(
        &ds_api,
        "agility-node-agent",
        Duration::from_secs(120),
        "node agent DaemonSet ready",
        |d: &DaemonSet| {
            d.status.as_ref().is_some_and(|s| {
                s.desired_number_scheduled > 0 && s.number_ready == s.desired_number_scheduled
            })
        },
    )
    .await
    .expect("the node agent runs on every node");
    println!(
        "node agent DaemonSet ready on {} node(s)",
        ds.status.map(|s| s.number_ready).unwrap_or(0)
    );

    let nodes: Api<k8s_openapi::api::core::v1::Node> = Api::all(client.clone());
    let node = nodes
        .list(&ListParams::default())
        .await
        .expect("nodes")
        .items
        .remove(0);
    let node_name = node.metadata.name.clone().expect("node name");

    // The network state of the node: its real interfaces, loopback included.
    let states = node_api(&client, "NodeNetworkState");
    let state = wait::wait_for(
        &states,
        &node_name,
        Duration::from_secs(60),
        "NodeNetworkState published",
        |o: &DynamicObject| {
            status_of(o, "interfaceCount")
                .and_then(Value::as_u64)
                .unwrap_or(0)
                > 0
        },
    )
    .await
    .expect("the node's network state");
    let names: Vec<&str> = status_of(&state, "interfaces")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(|i| i["name"].as_str()).collect())
        .unwrap_or_default();
    assert!(names.contains(&"lo"), "interfaces: {names:?}");
    println!(
        "NodeNetworkState {node_name}: {} interfaces ({})",
        names.len(),
        names.join(", ")
    );

    // Disks: a blank loop device is eligible, one carrying ext4 is refused.
    let disks = node_api(&client, "NodeDisk");
    let blank = Loop::attach("blank", 1100);
    let formatted = Loop::attach("ext4", 1100);
    let mkfs = Command::new("mkfs.ext4")
        .args(["-q", "-F", &formatted.device])
        .status()
        .expect("mkfs.ext4");
    assert!(mkfs.success());
    let started = Instant::now();
    let b = disk_with_path(&disks, &node_name, &blank.device, Duration::from_secs(60)).await;
    let f = disk_with_path(
        &disks,
        &node_name,
        &formatted.device,
        Duration::from_secs(60),
    )
    .await;
    println!(
        "loop devices attached -> NodeDisks published: {:.2}s",
        started.elapsed().as_secs_f64()
    );
    assert_eq!(
        status_of(&b, "eligible").and_then(Value::as_bool),
        Some(true),
        "blank disk: {:?}",
        b.data["status"]
    );
    assert_eq!(status_of(&b, "type").and_then(Value::as_str), Some("Loop"));
    assert_eq!(
        status_of(&f, "eligible").and_then(Value::as_bool),
        Some(false),
        "ext4 disk: {:?}",
        f.data["status"]
    );
    let reasons = status_of(&f, "ineligibleReasons")
        .cloned()
        .unwrap_or_default();
    assert!(
        reasons.to_string().contains("HasSignature"),
        "reasons: {reasons}"
    );
    // Named from the backing file (stable across re-attach), never from the loopN device name.
    let name = b.metadata.name.clone().unwrap_or_default();
    let device = blank.device.trim_start_matches("/dev/").to_owned();
    assert!(name.contains("agility-e2e-blank"), "{name}");
    assert!(
        !name.contains(&format!("-{device}-")) && !name.ends_with(&device),
        "{name}"
    );

    // Detached disks are marked, not deleted.
    let blank_name = b.metadata.name.clone().expect("name");
    let formatted_name = f.metadata.name.clone().expect("name");
    drop(blank);
    drop(formatted);
    let gone = wait::wait_for(
        &disks,
        &blank_name,
        Duration::from_secs(60),
        "detached disk marked absent",
        |o: &DynamicObject| status_of(o, "present").and_then(Value::as_bool) == Some(false),
    )
    .await
    .expect("the detached disk is marked, not deleted");
    assert_eq!(
        status_of(&gone, "eligible").and_then(Value::as_bool),
        Some(false)
    );
    for name in [blank_name, formatted_name] {
        let _ = disks.delete(&name, &DeleteParams::default()).await;
    }
}
