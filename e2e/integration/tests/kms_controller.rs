//! The KMS's `Cmk` controller against a real API server (tier 1): the real `agility-operator`
//! binary with `--controllers=kms`. 200 keys per namespace and a clear condition for the 201st,
//! zero writes at steady state, a deleted key kept pending deletion and adopted again by a
//! re-created `Cmk` with the same key id.

#![allow(clippy::unwrap_used)] // tests may unwrap (project rule)

use std::process::Stdio;
use std::time::Duration;

use agility_integration::manager::{free_port, operator_binary};
use agility_integration::{TestNamespace, client, wait_for, write_requests};
use agility_kms::crd::Cmk;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Client, CustomResourceExt, ResourceExt};
use tokio::process::Command;

const WAIT: Duration = Duration::from_secs(120);

async fn install_crd(client: &Client) {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    crds.patch(
        "cmks.kms.agility.dev",
        &PatchParams::apply("agility-integration").force(),
        &Patch::Apply(&Cmk::crd()),
    )
    .await
    .unwrap();
    let never = tokio_util::sync::CancellationToken::new();
    assert!(
        agility_core::crd::wait_established(client, "cmks.kms.agility.dev", &never)
            .await
            .unwrap()
    );
}

fn cmk(name: &str) -> Cmk {
    Cmk::new(
        name,
        serde_json::from_value(serde_json::json!({"description": name, "pendingWindowInDays": 7}))
            .unwrap(),
    )
}

fn ready(c: &Cmk) -> Option<(String, String)> {
    let s = c.status.as_ref()?;
    let r = s.conditions.iter().find(|c| c.type_ == "Ready")?;
    (s.observed_generation == c.metadata.generation).then(|| (r.status.clone(), r.reason.clone()))
}

#[tokio::test]
async fn two_hundred_keys_per_namespace_zero_writes_and_deletion_is_recoverable() {
    let client = client().await;
    install_crd(&client).await;
    let kms_ns = TestNamespace::create(&client, "kms-home").await;
    let ns = TestNamespace::create(&client, "kms-keys").await;
    let mut kms = Command::new(operator_binary())
        .args([
            "run",
            "--controllers=kms",
            "--leader-election=false",
            "--http-addr",
            &format!("127.0.0.1:{}", free_port()),
        ])
        .env("POD_NAMESPACE", &kms_ns.name)
        .env("AGILITY_KMS_LISTEN", format!("127.0.0.1:{}", free_port()))
        .env("AGILITY_KMS_SERVICE", "localhost")
        .env("AGILITY_KMS_SWEEP_SECONDS", "1")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .unwrap();

    let cmks: Api<Cmk> = Api::namespaced(client.clone(), &ns.name);
    let t0 = std::time::Instant::now();
    for i in 0..201 {
        cmks.create(&PostParams::default(), &cmk(&format!("key-{i:03}")))
            .await
            .unwrap();
        // Creation order decides who is the 201st.
        if i == 199 {
            tokio::time::sleep(Duration::from_millis(1100)).await;
        }
    }
    let all = wait_for("201 Cmks reconciled", WAIT, || async {
        let l = cmks.list(&ListParams::default()).await.ok()?;
        l.items
            .iter()
            .all(|c| ready(c).is_some())
            .then_some(l.items)
    })
    .await;
    println!("201 Cmks reconciled in {:.1}s", t0.elapsed().as_secs_f64());
    let refused: Vec<_> = all
        .iter()
        .filter(|c| ready(c).is_some_and(|(s, _)| s == "False"))
        .collect();
    assert_eq!(refused.len(), 1, "exactly one key over the limit");
    assert_eq!(refused[0].name_any(), "key-200");
    assert_eq!(ready(refused[0]).unwrap().1, "QuotaExceeded");
    assert!(
        refused[0].status.as_ref().unwrap().key_id.is_none(),
        "no material for the refused key"
    );
    let records: Api<Secret> = Api::namespaced(client.clone(), &kms_ns.name);
    let stored = records
        .list(&ListParams::default().labels("app.kubernetes.io/component=kms-key-material"))
        .await
        .unwrap();
    assert_eq!(stored.items.len(), 200, "one key record per accepted key");

    // Steady state: no writes to Cmks or Secrets.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let before = write_requests(&client, &["cmks", "secrets"]).await;
    tokio::time::sleep(Duration::from_secs(10)).await;
    let after = write_requests(&client, &["cmks", "secrets"]).await;
    println!(
        "writes to cmks/secrets in 10 s of steady state with 201 keys: {}",
        after - before
    );
    assert_eq!(after, before, "steady state makes zero writes");

    // Deleting a key: its record gets a deletion date; the refused key now fits.
    let gone = all.iter().find(|c| c.name_any() == "key-007").unwrap();
    let key_id = gone.status.as_ref().unwrap().key_id.clone().unwrap();
    cmks.delete("key-007", &DeleteParams::default())
        .await
        .unwrap();
    wait_for("deletion date recorded", WAIT, || async {
        let s = records.get(&format!("kms-key-{key_id}")).await.ok()?;
        s.annotations()
            .get("kms.agility.dev/record")?
            .contains("deletionDate")
            .then_some(())
    })
    .await;
    wait_for("key-200 admitted once a place is free", WAIT, || async {
        let c = cmks.get("key-200").await.ok()?;
        (ready(&c)? == ("True".to_owned(), "KeyEnabled".to_owned())).then_some(())
    })
    .await;
    // Re-creating key-007 cancels the deletion: same key id.
    // (Make room again: the namespace is full with key-200 in.)
    cmks.delete("key-199", &DeleteParams::default())
        .await
        .unwrap();
    cmks.create(&PostParams::default(), &cmk("key-007"))
        .await
        .unwrap();
    let back = wait_for("key-007 adopted", WAIT, || async {
        let c = cmks.get("key-007").await.ok()?;
        c.status.as_ref()?.key_id.clone()
    })
    .await;
    assert_eq!(back, key_id, "the re-created Cmk has its old key back");
    let record = records.get(&format!("kms-key-{key_id}")).await.unwrap();
    assert!(
        !record.annotations()["kms.agility.dev/record"].contains("deletionDate"),
        "deletion cancelled"
    );

    kms.kill().await.unwrap();
    ns.delete().await;
    kms_ns.delete().await;
}
