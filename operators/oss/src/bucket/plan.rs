//! Pure decisions of the Bucket controller: the name, the admission under the per-namespace
//! limit, the Garage settings a spec wants and what of them differs from the live bucket.

use kube::ResourceExt;

use crate::crd::{Bucket, BucketSpec, CorsRule, Expiration, LifecycleRule};
use crate::garage::settings;
use crate::garage::types::{BucketInfo, BucketUpdate, Quotas, WebsiteAccess};
use crate::store::build::quantity_bytes;

/// Prefix of the Garage key names the operator creates for a namespace's Buckets (the name is
/// also the ownership mark a retained bucket is adopted by).
pub fn key_name(namespace: &str, bucket: &str) -> String {
    format!("agility:{namespace}/{bucket}")
}

/// Name of a key kept (without data access) on a retained bucket, so a new Bucket of the same
/// namespace may adopt it and no other namespace can.
pub fn retained_key_name(namespace: &str, bucket: &str) -> String {
    format!("agility-retained:{namespace}/{bucket}")
}

/// Whether the keys on a bucket show it was made for `namespace` by this operator.
pub fn owned_by_namespace(info: &BucketInfo, namespace: &str) -> bool {
    let live = format!("agility:{namespace}/");
    let kept = format!("agility-retained:{namespace}/");
    info.keys
        .iter()
        .any(|k| k.name.starts_with(&live) || k.name.starts_with(&kept))
}

/// A generated bucket name: `<namespace>-<name>-<6 random>`, cut to S3's 63 characters and
/// cleaned to S3's alphabet.
pub fn generate_name(namespace: &str, name: &str) -> String {
    use rand::distr::{Alphanumeric, SampleString};
    let suffix = Alphanumeric
        .sample_string(&mut rand::rng(), 6)
        .to_ascii_lowercase();
    let base: String = format!("{namespace}-{name}")
        .chars()
        .map(|c| {
            let c = c.to_ascii_lowercase();
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect();
    let base = base.trim_matches('-');
    let keep = 63 - suffix.len() - 1;
    let base: String = base.chars().take(keep).collect();
    format!("{}-{suffix}", base.trim_end_matches('-'))
}

/// Whether `bucket` is admitted under the per-namespace limit: the oldest `limit` Buckets of the
/// namespace that are not being deleted are (ties by name), so a new one waits for a place.
pub fn admitted<'a>(
    bucket: &Bucket,
    namespace_buckets: impl Iterator<Item = &'a Bucket>,
    limit: usize,
) -> bool {
    let key = |b: &Bucket| (b.creation_timestamp().map(|t| t.0), b.name_any());
    let me = key(bucket);
    let older = namespace_buckets
        .filter(|b| b.metadata.deletion_timestamp.is_none())
        .filter(|b| b.uid() != bucket.uid())
        .filter(|b| key(b) < me)
        .count();
    older < limit
}

/// The quotas a spec asks for.
pub fn quotas(spec: &BucketSpec) -> Quotas {
    let q = spec.quota.as_ref();
    Quotas {
        max_size: q.and_then(|q| q.max_size.as_ref()).and_then(quantity_bytes),
        max_objects: q
            .and_then(|q| q.max_objects)
            .and_then(|n| u64::try_from(n).ok()),
    }
}

fn cors(rules: &[CorsRule]) -> Vec<settings::CorsRule> {
    rules
        .iter()
        .map(|r| settings::CorsRule {
            id: None,
            allowed_origins: r.allowed_origins.clone(),
            allowed_methods: r
                .allowed_methods
                .iter()
                .map(|m| m.as_str().to_owned())
                .collect(),
            allowed_headers: r.allowed_headers.clone(),
            expose_headers: r.expose_headers.clone(),
            max_age_seconds: r.max_age_seconds.and_then(|s| u64::try_from(s).ok()),
        })
        .collect()
}

fn lifecycle(rules: &[LifecycleRule]) -> Vec<settings::LifecycleRule> {
    rules
        .iter()
        .map(|r| settings::LifecycleRule {
            id: r.id.clone(),
            enabled: r.enabled,
            prefix: r.prefix.clone().filter(|p| !p.is_empty()),
            object_size_greater_than: None,
            object_size_less_than: None,
            expiration: r
                .expiration
                .as_ref()
                .and_then(|e: &Expiration| match (e.days, &e.date) {
                    (Some(d), _) => u64::try_from(d).ok().map(settings::Expiration::AfterDays),
                    (None, Some(date)) => Some(settings::Expiration::AtDate(date.clone())),
                    (None, None) => None,
                }),
            abort_incomplete_multipart_upload_days: r
                .abort_incomplete_multipart_upload_days
                .and_then(|d| u64::try_from(d).ok()),
        })
        .collect()
}

/// The settings of `spec` that differ from the live bucket (empty: nothing to send).
pub fn settings_update(spec: &BucketSpec, live: &BucketInfo) -> BucketUpdate {
    let mut u = BucketUpdate::default();
    let website = match &spec.website {
        Some(w) => WebsiteAccess::Enabled {
            index_document: w.index_document.clone(),
            error_document: w.error_document.clone(),
        },
        None => WebsiteAccess::Disabled,
    };
    let live_website = match (&live.website_access, &live.website_config) {
        (true, Some(c)) => WebsiteAccess::Enabled {
            index_document: c.index_document.clone(),
            error_document: c.error_document.clone(),
        },
        _ => WebsiteAccess::Disabled,
    };
    if website != live_website {
        u.website_access = Some(website);
    }
    let q = quotas(spec);
    if q != live.quotas {
        u.quotas = Some(q);
    }
    let c = cors(&spec.cors);
    if c != live.cors_rules {
        u.cors_rules = Some(c);
    }
    let l = lifecycle(&spec.lifecycle);
    if l != live.lifecycle_rules {
        u.lifecycle_rules = Some(l);
    }
    u
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::crd::{BucketQuota, CorsMethod, Website};
    use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn bucket(name: &str, age_secs: i64) -> Bucket {
        let mut b = Bucket::new(name, BucketSpec::default());
        b.metadata.namespace = Some("shop".into());
        b.metadata.uid = Some(format!("uid-{name}"));
        let t = k8s_openapi::jiff::Timestamp::from_second(1_700_000_000 - age_secs).unwrap();
        b.metadata.creation_timestamp = Some(Time(t));
        b
    }

    fn live() -> BucketInfo {
        serde_json::from_value(serde_json::json!({
            "id": "b1", "created": "2026-12-01T00:00:00Z", "globalAliases": ["pics"],
            "websiteAccess": false, "keys": [], "objects": 0, "bytes": 0,
            "quotas": {"maxSize": null, "maxObjects": null}
        }))
        .unwrap()
    }

    #[test]
    fn the_oldest_hundred_are_admitted_and_the_next_waits() {
        let all: Vec<Bucket> = (0..101)
            .map(|i| bucket(&format!("b{i:03}"), 1000 - i))
            .collect();
        assert!(admitted(&all[99], all.iter(), 100));
        assert!(!admitted(&all[100], all.iter(), 100));
        // One deleted frees a place.
        let mut freed = all.clone();
        freed[0].metadata.deletion_timestamp = freed[0].metadata.creation_timestamp.clone();
        assert!(admitted(&freed[100], freed.iter(), 100));
    }

    #[test]
    fn generated_names_are_valid_s3_names() {
        let n = generate_name("Team.A", "My_Bucket");
        assert!(n.starts_with("team-a-my-bucket-"), "{n}");
        assert!(n.len() <= 63);
        let long = generate_name(&"n".repeat(60), &"x".repeat(60));
        assert_eq!(long.len(), 63);
        assert!(
            long.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        );
        assert_ne!(generate_name("a", "b"), generate_name("a", "b"));
    }

    #[test]
    fn nothing_to_send_when_live_matches() {
        assert!(settings_update(&BucketSpec::default(), &live()).is_empty());
    }

    #[test]
    fn only_changed_settings_are_sent() {
        let spec = BucketSpec {
            website: Some(Website {
                index_document: "index.html".into(),
                error_document: Some("404.html".into()),
            }),
            quota: Some(BucketQuota {
                max_size: Some(Quantity("1Gi".into())),
                max_objects: Some(10),
            }),
            cors: vec![crate::crd::CorsRule {
                allowed_origins: vec!["*".into()],
                allowed_methods: vec![CorsMethod::Get],
                allowed_headers: vec![],
                expose_headers: vec![],
                max_age_seconds: Some(60),
            }],
            ..Default::default()
        };
        let u = settings_update(&spec, &live());
        assert!(matches!(
            u.website_access,
            Some(WebsiteAccess::Enabled { .. })
        ));
        assert_eq!(
            u.quotas,
            Some(Quotas {
                max_size: Some(1 << 30),
                max_objects: Some(10)
            })
        );
        assert_eq!(
            u.cors_rules.as_ref().unwrap()[0].allowed_methods,
            vec!["GET"]
        );
        assert!(u.lifecycle_rules.is_none());
    }

    #[test]
    fn ownership_is_read_from_key_names() {
        let mut info = live();
        assert!(!owned_by_namespace(&info, "shop"));
        info.keys = serde_json::from_value(serde_json::json!([{
            "accessKeyId": "GK1", "name": retained_key_name("shop", "pics"),
            "permissions": {"read": false, "write": false, "owner": true}
        }]))
        .unwrap();
        assert!(owned_by_namespace(&info, "shop"));
        assert!(!owned_by_namespace(&info, "sho"));
        assert!(!owned_by_namespace(&info, "other"));
    }
}
