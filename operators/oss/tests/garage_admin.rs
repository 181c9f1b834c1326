//! The Garage clients against a real Garage 2.5.0 started by `agility_oss::testing`
//! (`$AGILITY_GARAGE_BIN`, default `~/.cache/agility/crates/garage-2.5.0/bin/garage`).
//! The lifecycle test also needs libfaketime (`faketime`, installed by hack/install-tools.sh).

#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt as _;

use agility_oss::garage::{
    BucketUpdate, CorsRule, DesiredRole, Expiration, GarageError, LifecycleRule, Permissions,
    Quotas, WebsiteAccess, WebsiteConfig,
};
use agility_oss::testing::{self, NODE_CAPACITY};

#[tokio::test]
async fn layout_bootstrap_is_idempotent() {
    let garage = testing::start_garage(1, 1).await;
    let admin = garage.admin_client();
    let layout = admin.cluster_layout().await.unwrap();
    assert_eq!(layout.version, 1);
    assert_eq!(layout.roles.len(), 1);
    let desired = vec![DesiredRole {
        node_id: admin.local_node_id().await.unwrap(),
        zone: "zone-0".into(),
        capacity: NODE_CAPACITY,
        tags: vec![],
    }];
    // What start_garage applied is what the operator would ask for: no change, no write.
    assert_eq!(admin.ensure_layout(&desired).await.unwrap(), None);
    assert_eq!(admin.ensure_layout(&desired).await.unwrap(), None);
    assert_eq!(admin.cluster_layout().await.unwrap().version, 1);

    // A changed capacity is one new version, and then steady again.
    let bigger = vec![DesiredRole {
        capacity: 2 * NODE_CAPACITY,
        ..desired[0].clone()
    }];
    assert_eq!(admin.ensure_layout(&bigger).await.unwrap(), Some(2));
    assert_eq!(admin.ensure_layout(&bigger).await.unwrap(), None);
    let layout = admin.cluster_layout().await.unwrap();
    assert_eq!(layout.version, 2);
    assert_eq!(layout.roles[0].capacity, Some(2 * NODE_CAPACITY));
    assert!(layout.staged_role_changes.is_empty());
}

#[tokio::test]
async fn three_nodes_form_one_cluster() {
    let garage = testing::start_garage(3, 3).await;
    let admin = garage.admin_client();
    let status = admin.cluster_status().await.unwrap();
    assert_eq!(status.layout_version, 1);
    assert_eq!(status.nodes.iter().filter(|n| n.is_up).count(), 3);
    assert!(status.nodes.iter().all(|n| n.role.is_some()));
    let health = admin.cluster_health().await.unwrap();
    assert_eq!(health.status, "healthy");
    assert_eq!(health.storage_nodes_up, 3);
    // A bucket written through node 0 is visible through node 2.
    let b = garage.create_bucket_with_key("shared").await;
    let other =
        agility_oss::garage::AdminClient::new(&garage.nodes[2].admin, &garage.token).unwrap();
    assert_eq!(
        other.bucket_by_alias("shared").await.unwrap().id,
        b.bucket_id
    );
}

#[tokio::test]
async fn buckets_and_keys() {
    let garage = testing::start_garage(1, 1).await;
    let admin = garage.admin_client();
    let bucket = admin.create_bucket("photos").await.unwrap();
    assert_eq!(bucket.global_aliases, vec!["photos"]);
    let found = admin.bucket_by_alias("photos").await.unwrap();
    assert_eq!(found.id, bucket.id);
    assert_eq!(admin.bucket_info(&bucket.id).await.unwrap().id, bucket.id);
    let dup = admin.create_bucket("photos").await.unwrap_err();
    assert!(dup.is_conflict(), "{dup:?}");
    assert!(
        admin
            .bucket_by_alias("missing")
            .await
            .unwrap_err()
            .is_not_found()
    );

    let key = admin.create_key("photos-rw").await.unwrap();
    let secret = key.secret_access_key.clone().unwrap();
    let info = admin.key_info(&key.access_key_id, true).await.unwrap();
    assert_eq!(info.secret_access_key.as_deref(), Some(secret.as_str()));
    assert_eq!(
        admin
            .key_info(&key.access_key_id, false)
            .await
            .unwrap()
            .secret_access_key,
        None
    );
    assert!(
        admin
            .list_keys()
            .await
            .unwrap()
            .iter()
            .any(|k| k.id == key.access_key_id && k.name == "photos-rw")
    );

    let after = admin
        .allow_bucket_key(&bucket.id, &key.access_key_id, Permissions::ALL)
        .await
        .unwrap();
    assert_eq!(after.keys[0].permissions, Permissions::ALL);
    let after = admin
        .deny_bucket_key(
            &bucket.id,
            &key.access_key_id,
            Permissions {
                owner: true,
                write: true,
                ..Permissions::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(after.keys[0].permissions, Permissions::READ);
    let info = admin.key_info(&key.access_key_id, false).await.unwrap();
    assert_eq!(info.buckets[0].id, bucket.id);
    assert_eq!(info.buckets[0].permissions, Permissions::READ);

    // The key works for S3 reads, not writes.
    let s3 = garage.s3_client(&key.access_key_id, &secret);
    assert!(s3.list_all_keys("photos", None).await.unwrap().is_empty());
    let denied = s3
        .put_object("photos", "x", Bytes::from_static(b"x"))
        .await
        .unwrap_err();
    assert!(
        matches!(denied, GarageError::Unauthorized { status: 403, .. }),
        "{denied:?}"
    );

    admin.delete_key(&key.access_key_id).await.unwrap();
    assert!(
        admin
            .key_info(&key.access_key_id, false)
            .await
            .unwrap_err()
            .is_not_found()
    );
    admin.delete_bucket(&bucket.id).await.unwrap();
    assert!(
        admin
            .bucket_info(&bucket.id)
            .await
            .unwrap_err()
            .is_not_found()
    );
}

#[tokio::test]
async fn website_quotas_cors_lifecycle_round_trip() {
    let garage = testing::start_garage(1, 1).await;
    let admin = garage.admin_client();
    let bucket = admin.create_bucket("site").await.unwrap();
    let cors = vec![
        CorsRule {
            id: Some("web".into()),
            allowed_origins: vec!["https://a.example".into(), "https://*.b.example".into()],
            allowed_methods: vec!["GET".into(), "HEAD".into(), "PUT".into()],
            allowed_headers: vec!["*".into()],
            expose_headers: vec!["ETag".into()],
            max_age_seconds: Some(3600),
        },
        CorsRule {
            allowed_origins: vec!["*".into()],
            allowed_methods: vec!["GET".into()],
            ..CorsRule::default()
        },
    ];
    let lifecycle = vec![
        LifecycleRule {
            id: Some("tmp".into()),
            enabled: true,
            prefix: Some("tmp/".into()),
            expiration: Some(Expiration::AfterDays(1)),
            ..LifecycleRule::default()
        },
        LifecycleRule {
            id: Some("big".into()),
            enabled: false,
            prefix: Some("big/".into()),
            object_size_greater_than: Some(1 << 20),
            object_size_less_than: Some(1 << 30),
            expiration: Some(Expiration::AtDate("2031-06-01".into())),
            abort_incomplete_multipart_upload_days: Some(3),
        },
        LifecycleRule {
            id: Some("uploads".into()),
            enabled: true,
            abort_incomplete_multipart_upload_days: Some(1),
            ..LifecycleRule::default()
        },
    ];
    let quotas = Quotas {
        max_size: Some(10 << 30),
        max_objects: Some(100_000),
    };
    let update = BucketUpdate {
        website_access: Some(WebsiteAccess::Enabled {
            index_document: "index.html".into(),
            error_document: Some("404.html".into()),
        }),
        quotas: Some(quotas),
        cors_rules: Some(cors.clone()),
        lifecycle_rules: Some(lifecycle.clone()),
    };
    let answered = admin.update_bucket(&bucket.id, &update).await.unwrap();
    let read = admin.bucket_info(&bucket.id).await.unwrap();
    assert_eq!(answered, read);
    assert!(read.website_access);
    assert_eq!(
        read.website_config,
        Some(WebsiteConfig {
            index_document: "index.html".into(),
            error_document: Some("404.html".into()),
        })
    );
    assert_eq!(read.quotas, quotas);
    assert_eq!(read.cors_rules, cors);
    assert_eq!(read.lifecycle_rules, lifecycle);

    // A partial update leaves the other settings alone.
    let only_quota = BucketUpdate {
        quotas: Some(Quotas {
            max_size: None,
            max_objects: Some(5),
        }),
        ..BucketUpdate::default()
    };
    let read = admin.update_bucket(&bucket.id, &only_quota).await.unwrap();
    assert_eq!(read.quotas.max_objects, Some(5));
    assert_eq!(read.quotas.max_size, None);
    assert_eq!(read.cors_rules, cors);
    assert!(read.website_access);

    // Empty lists and `Disabled` remove the settings.
    let clear = BucketUpdate {
        website_access: Some(WebsiteAccess::Disabled),
        quotas: Some(Quotas::default()),
        cors_rules: Some(vec![]),
        lifecycle_rules: Some(vec![]),
    };
    let read = admin.update_bucket(&bucket.id, &clear).await.unwrap();
    assert!(!read.website_access);
    assert_eq!(read.website_config, None);
    assert_eq!(read.quotas, Quotas::default());
    assert!(read.cors_rules.is_empty());
    assert!(read.lifecycle_rules.is_empty());

    // Garage validates what it is given.
    let bad = BucketUpdate {
        cors_rules: Some(vec![CorsRule {
            allowed_origins: vec!["*".into()],
            allowed_methods: vec!["NOT A METHOD".into()],
            ..CorsRule::default()
        }]),
        ..BucketUpdate::default()
    };
    let e = admin.update_bucket(&bucket.id, &bad).await.unwrap_err();
    assert!(matches!(&e, GarageError::Api { status: 400, .. }), "{e:?}");
}

#[tokio::test]
async fn empty_bucket_then_delete() {
    let garage = testing::start_garage(1, 1).await;
    let admin = garage.admin_client();
    let b = garage.create_bucket_with_key("full").await;
    let s3 = garage.s3_client(&b.key_id, &b.secret);

    let puts = futures::stream::iter(0..1500)
        .map(|i| {
            let s3 = s3.clone();
            async move {
                s3.put_object(
                    "full",
                    &format!("dir{}/obj {i:04}", i % 7),
                    Bytes::from(vec![b'x'; 100]),
                )
                .await
            }
        })
        .buffer_unordered(16)
        .collect::<Vec<_>>()
        .await;
    assert!(
        puts.iter().all(|r| r.is_ok()),
        "{:?}",
        puts.iter().find(|r| r.is_err())
    );
    let upload = s3
        .create_multipart_upload("full", "big/unfinished.bin")
        .await
        .unwrap();
    s3.upload_part(
        "full",
        "big/unfinished.bin",
        &upload,
        1,
        Bytes::from(vec![b'y'; 1 << 20]),
    )
    .await
    .unwrap();
    assert_eq!(s3.list_all_keys("full", None).await.unwrap().len(), 1500);
    let info = admin.bucket_info(&b.bucket_id).await.unwrap();
    assert_eq!(info.objects, 1500);
    assert_eq!(info.unfinished_multipart_uploads, 1);

    let e = admin.delete_bucket(&b.bucket_id).await.unwrap_err();
    assert!(matches!(e, GarageError::BucketNotEmpty { .. }), "{e:?}");

    let emptied = s3.empty_bucket("full").await.unwrap();
    assert_eq!(emptied.objects, 1500);
    assert_eq!(emptied.uploads, 1);
    assert!(s3.list_all_keys("full", None).await.unwrap().is_empty());
    assert!(
        s3.list_multipart_uploads("full", None, None)
            .await
            .unwrap()
            .uploads
            .is_empty()
    );
    admin.delete_bucket(&b.bucket_id).await.unwrap();
    assert!(
        admin
            .bucket_by_alias("full")
            .await
            .unwrap_err()
            .is_not_found()
    );
}

/// Seconds from now to `date` (UTC, `YYYY-MM-DD HH:MM:SS`): how far ahead Garage's faked
/// clock is, so our S3 signatures fall within its 15-minute window.
fn offset_to(date: &str) -> i64 {
    let t = chrono::NaiveDateTime::parse_from_str(date, "%Y-%m-%d %H:%M:%S")
        .unwrap()
        .and_utc();
    t.timestamp() - chrono::Utc::now().timestamp()
}

/// Garage's lifecycle worker runs once per day (at start for a day it has not done yet, then at
/// midnight UTC), and expires an object when `today - (its creation day + 1) >= Days`. So: write
/// on day D under a faked clock, restart three days later, and the worker's run for D+3 must
/// delete `tmp/a` and keep `keep/b`.
#[tokio::test]
async fn lifecycle_rule_expires_objects_days_later() {
    let Some(_) = testing::libfaketime() else {
        panic!("libfaketime is missing: apt-get install faketime (hack/install-tools.sh)");
    };
    let day_d = "2030-01-01 10:00:00";
    let day_d3 = "2030-01-04 10:00:00";
    let mut garage =
        testing::start_garage_with_env(1, 1, &testing::faketime_env(day_d).unwrap()).await;
    let admin = garage.admin_client();
    let b = garage.create_bucket_with_key("aging").await;
    // The fake clock really is in effect: Garage stamps the bucket with day D.
    let info = admin.bucket_info(&b.bucket_id).await.unwrap();
    assert_eq!(info.created.date_naive().to_string(), "2030-01-01");

    admin
        .update_bucket(
            &b.bucket_id,
            &BucketUpdate {
                lifecycle_rules: Some(vec![LifecycleRule {
                    id: Some("tmp".into()),
                    enabled: true,
                    prefix: Some("tmp/".into()),
                    expiration: Some(Expiration::AfterDays(1)),
                    ..LifecycleRule::default()
                }]),
                ..BucketUpdate::default()
            },
        )
        .await
        .unwrap();
    let s3 = garage
        .s3_client(&b.key_id, &b.secret)
        .with_clock_offset(offset_to(day_d));
    s3.put_object("aging", "tmp/a", Bytes::from_static(b"a"))
        .await
        .unwrap();
    s3.put_object("aging", "keep/b", Bytes::from_static(b"b"))
        .await
        .unwrap();
    assert_eq!(
        s3.list_all_keys("aging", None).await.unwrap(),
        vec!["keep/b", "tmp/a"]
    );

    garage
        .restart(&testing::faketime_env(day_d3).unwrap())
        .await;
    let s3 = garage
        .s3_client(&b.key_id, &b.secret)
        .with_clock_offset(offset_to(day_d3));
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let keys = s3.list_all_keys("aging", None).await.unwrap();
        if keys == vec!["keep/b"] {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "tmp/a not expired after restart at D+3: {keys:?}; log: {}",
            garage.nodes[0].log.display()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // And it was the lifecycle worker's run for D+3 that did it.
    let wanted = "Lifecycle worker finished for 2030-01-04, objects expired: 1,";
    loop {
        let log = std::fs::read_to_string(&garage.nodes[0].log).unwrap();
        if log.contains(wanted) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no {wanted:?} in the log:\n{log}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
