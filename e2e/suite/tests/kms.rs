//! The KMS on the real node with a real AWS SDK (boto3, `e2e/kms/kms_client.py`): a `Cmk`
//! applied with kubectl-style YAML, access keys from Secrets, Encrypt/Decrypt with encryption
//! context over TLS, envelope encryption with a data key, disable/enable reaching every replica,
//! on-demand rotation keeping old ciphertexts readable, schedule deletion and cancel through the
//! API (written back to the `Cmk` object), a foreign namespace refused, material stored wrapped,
//! audit lines and metrics. Prints the numbers.

mod support;

use std::net::SocketAddr;
use std::process::Command;
use std::time::{Duration, Instant};

use agility_e2e::{Reach, TestEnv, TestNamespace, wait};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret};
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, ListParams, LogParams, Patch, PatchParams,
    PostParams,
};
use kube::core::GroupVersionKind;
use serde_json::{Value, json};
use support::{boto3_python, repo};

const KMS_NAMESPACE: &str = "agility-system";
const KMS_SERVICE: &str = "agility-kms";

fn cmk_api(ns: &TestNamespace) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk("kms.agility.dev", "v1alpha1", "Cmk");
    Api::namespaced_with(ns.client().clone(), ns.name(), &ApiResource::from_gvk(&gvk))
}

fn random_token(len: usize) -> String {
    // The node's own /dev/urandom; no RNG crate needed in the test.
    let bytes = std::fs::read("/proc/sys/kernel/random/uuid").unwrap_or_default();
    let mut s: String = String::from_utf8_lossy(&bytes).replace(['-', '\n'], "");
    while s.len() < len {
        let more = std::fs::read("/proc/sys/kernel/random/uuid").unwrap_or_default();
        s.push_str(&String::from_utf8_lossy(&more).replace(['-', '\n'], ""));
    }
    s.truncate(len);
    s
}

/// An access key Secret in the KMS namespace; returns (name, id, secret).
async fn access_key(
    client: &kube::Client,
    name: &str,
    namespaces: &str,
    operations: Option<&str>,
) -> (String, String, String) {
    let id = format!("AKIA{}", random_token(16).to_uppercase());
    let secret = random_token(40);
    let mut data = vec![
        ("accessKeyId", id.clone()),
        ("secretAccessKey", secret.clone()),
        ("namespaces", namespaces.to_owned()),
    ];
    if let Some(ops) = operations {
        data.push(("operations", ops.to_owned()));
    }
    let s = Secret {
        metadata: kube::api::ObjectMeta {
            name: Some(name.to_owned()),
            labels: Some([("kms.agility.dev/access-key".to_owned(), "true".to_owned())].into()),
            ..Default::default()
        },
        data: Some(
            data.into_iter()
                .map(|(k, v)| (k.to_owned(), ByteString(v.into_bytes())))
                .collect(),
        ),
        ..Default::default()
    };
    Api::<Secret>::namespaced(client.clone(), KMS_NAMESPACE)
        .create(&PostParams::default(), &s)
        .await
        .expect("create the access key Secret");
    (name.to_owned(), id, secret)
}

struct Client {
    python: String,
    script: String,
    addr: SocketAddr,
    ca_file: String,
}

impl Client {
    fn attempt(&self, key: &(String, String, String), args: &[&str]) -> std::process::Output {
        Command::new(&self.python)
            .arg(&self.script)
            .args(args)
            .env("KMS_HOST", format!("{KMS_SERVICE}.{KMS_NAMESPACE}.svc"))
            .env("KMS_ADDR", self.addr.to_string())
            .env("KMS_CA_FILE", &self.ca_file)
            .env("KMS_ACCESS_KEY_ID", &key.1)
            .env("KMS_SECRET_ACCESS_KEY", &key.2)
            .output()
            .expect("run the boto3 client")
    }

    /// Runs one phase of the boto3 scenario, retrying for `within` (what it depends on reaches
    /// the replicas through their watches); returns its result JSON.
    async fn run(&self, key: &(String, String, String), args: &[&str], within: Duration) -> Value {
        let deadline = Instant::now() + within;
        let out = loop {
            let out = self.attempt(key, args);
            if out.status.success() || Instant::now() >= deadline {
                break out;
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        };
        let stdout = String::from_utf8_lossy(&out.stdout);
        for line in stdout.lines().filter(|l| !l.starts_with('{')) {
            println!("  boto3 {}: {line}", args[0]);
        }
        assert!(
            out.status.success(),
            "boto3 phase {:?} failed:\n{stdout}\n{}",
            args,
            String::from_utf8_lossy(&out.stderr)
        );
        let last = stdout
            .lines()
            .rev()
            .find(|l| l.starts_with('{'))
            .expect("a result line");
        serde_json::from_str::<Value>(last).expect("result JSON")["result"].clone()
    }
}

async fn kms_logs(client: &kube::Client) -> String {
    let pods: Api<Pod> = Api::namespaced(client.clone(), KMS_NAMESPACE);
    let mut all = String::new();
    for p in pods
        .list(&ListParams::default().labels("app.kubernetes.io/component=kms"))
        .await
        .expect("list KMS pods")
        .items
    {
        let name = p.metadata.name.unwrap_or_default();
        all.push_str(
            &pods
                .logs(&name, &LogParams::default())
                .await
                .unwrap_or_default(),
        );
    }
    all
}

#[tokio::test]
async fn cmk_serves_a_real_aws_sdk_and_stays_one_truth() {
    let env = TestEnv::from_env().await.expect("a reachable cluster");
    let ns = env.namespace("kms").await.expect("test namespace");
    let client = ns.client().clone();
    let t0 = Instant::now();
    let yaml = "apiVersion: kms.agility.dev/v1alpha1\nkind: Cmk\nmetadata: {name: orders}\nspec:\n  description: e2e orders key\n  aliases: [alias/orders]\n  pendingWindowInDays: 7\n";
    ns.apply_yaml(yaml).await.expect("apply Cmk");
    let ready = wait::wait_for(
        &cmk_api(&ns),
        "orders",
        Duration::from_secs(120),
        "Cmk Ready",
        |o: &DynamicObject| {
            wait::condition_is(o, "Ready", "True") && o.data["status"]["keyId"].is_string()
        },
    )
    .await
    .expect("Cmk Ready");
    println!(
        "Cmk apply -> Ready with key material: {:.2}s",
        t0.elapsed().as_secs_f64()
    );
    let key_id = ready.data["status"]["keyId"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert_eq!(ready.data["status"]["keyState"], "Enabled");
    assert_eq!(ready.data["status"]["currentVersion"], 1);

    // Stored wrapped: 1 + 12 + 32 + 16 bytes, never the 32 raw bytes.
    let material = Api::<Secret>::namespaced(client.clone(), KMS_NAMESPACE)
        .get(&format!("kms-key-{key_id}"))
        .await
        .expect("key record Secret");
    let v1 = &material.data.as_ref().expect("data")["v1"].0;
    assert_eq!(v1.len(), 61, "wrapped material");

    let mine = access_key(
        &client,
        &format!("e2e-{}", ns.name()),
        ns.name(),
        Some("all"),
    )
    .await;
    let other = access_key(
        &client,
        &format!("e2e-{}-foreign", ns.name()),
        "some-other-namespace",
        None,
    )
    .await;
    let ca = Api::<ConfigMap>::namespaced(client.clone(), KMS_NAMESPACE)
        .get("agility-kms-ca")
        .await
        .expect("CA ConfigMap");
    let ca_file = std::env::temp_dir().join(format!("{}-kms-ca.crt", ns.name()));
    std::fs::write(
        &ca_file,
        ca.data
            .as_ref()
            .and_then(|d| d.get("ca.crt"))
            .expect("ca.crt"),
    )
    .expect("write CA");
    let port = match ns.reach() {
        Reach::Route { .. } => 443,
        Reach::PortForward => 8443,
    };
    let addr = ns
        .reach()
        .service(&client, KMS_NAMESPACE, KMS_SERVICE, port)
        .await
        .expect("KMS address");
    let boto = Client {
        python: boto3_python(),
        script: repo()
            .join("e2e/kms/kms_client.py")
            .to_string_lossy()
            .into_owned(),
        addr,
        ca_file: ca_file.to_string_lossy().into_owned(),
    };
    // Access keys reach the replicas through their watch: the first call may retry briefly.
    let arn = format!("arn:agility:kms:local:{}:key/{key_id}", ns.name());
    boto.run(&other, &["foreign", &arn], Duration::from_secs(30))
        .await;
    let r = boto
        .run(&mine, &["basic", "alias/orders"], Duration::from_secs(30))
        .await;
    println!(
        "DisableKey -> refused on the replica: {:.2}s; EnableKey -> served again: {:.2}s",
        r["disable_seconds"].as_f64().unwrap_or_default(),
        r["enable_seconds"].as_f64().unwrap_or_default()
    );
    assert_eq!(r["key_id"], key_id.as_str());
    // The API wrote to the object, under its own field manager: one truth.
    let o = cmk_api(&ns).get("orders").await.expect("Cmk");
    assert_eq!(o.data["spec"]["enabled"], true);
    let managers: Vec<String> = o
        .metadata
        .managed_fields
        .unwrap_or_default()
        .into_iter()
        .filter_map(|m| m.manager)
        .collect();
    assert!(
        managers.iter().any(|m| m == "agility-kms-api"),
        "managers: {managers:?}"
    );

    // On-demand rotation: a new version, the old ciphertext still decrypts.
    cmk_api(&ns)
        .patch(
            "orders",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"annotations": {"kms.agility.dev/rotate": "1"}}})),
        )
        .await
        .expect("annotate");
    wait::wait_for(
        &cmk_api(&ns),
        "orders",
        Duration::from_secs(60),
        "version 2",
        |o: &DynamicObject| o.data["status"]["currentVersion"] == 2,
    )
    .await
    .expect("rotated");
    let old = r["ciphertext"].as_str().unwrap_or_default().to_owned();
    boto.run(
        &mine,
        &["rotated", "alias/orders", &old],
        Duration::from_secs(30),
    )
    .await;

    // Schedule deletion and cancel it through the API: the object goes and comes back.
    let d = boto
        .run(&mine, &["delete", "alias/orders"], Duration::ZERO)
        .await;
    assert_eq!(d["key_id"], key_id.as_str());
    let back = wait::wait_for(
        &cmk_api(&ns),
        "orders",
        Duration::from_secs(60),
        "re-created and adopted",
        |o: &DynamicObject| {
            o.data["status"]["keyId"] == key_id.as_str() && o.data["spec"]["enabled"] == true
        },
    )
    .await
    .expect("the Cmk is back with the same key");
    assert_eq!(back.data["status"]["currentVersion"], 2, "versions kept");

    let logs = kms_logs(&client).await;
    assert!(
        logs.contains("agility_kms::audit") && logs.contains("\"operation\":\"Decrypt\""),
        "audit lines"
    );
    assert!(!logs.contains("card 4111"), "no plaintext in logs");
    let audited = logs
        .lines()
        .filter(|l| l.contains("agility_kms::audit"))
        .count();
    println!("audit lines written by the KMS replicas: {audited}");

    for (name, _, _) in [&mine, &other] {
        Api::<Secret>::namespaced(client.clone(), KMS_NAMESPACE)
            .delete(name, &DeleteParams::default())
            .await
            .expect("delete the access key Secret");
    }
    let _ = std::fs::remove_file(&ca_file);
    // Deleting the Cmk keeps the material for the pending window (the record gets a date).
    cmk_api(&ns)
        .delete("orders", &DeleteParams::default())
        .await
        .expect("delete Cmk");
    let secrets = Api::<Secret>::namespaced(client.clone(), KMS_NAMESPACE);
    let record = wait::wait_for(
        &secrets,
        &format!("kms-key-{key_id}"),
        Duration::from_secs(90),
        "deletion date recorded",
        |s: &Secret| {
            s.metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get("kms.agility.dev/record"))
                .is_some_and(|r| r.contains("deletionDate"))
        },
    )
    .await
    .expect("pending deletion recorded");
    let rec: Value = serde_json::from_str(
        &record.metadata.annotations.unwrap_or_default()["kms.agility.dev/record"],
    )
    .expect("record");
    println!("deleted Cmk: material kept until {}", rec["deletionDate"]);
    // The test's key must not outlive the test: destroy it now (what the window's end does).
    secrets
        .delete(&format!("kms-key-{key_id}"), &DeleteParams::default())
        .await
        .expect("destroy test key");
    ns.finish().await.expect("clean up");
}
