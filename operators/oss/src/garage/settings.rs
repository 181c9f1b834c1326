//! Bucket CORS and lifecycle rules in plain Rust types, and their conversion to and from the
//! JSON Garage's admin API uses for them. Garage reuses its S3 XML structs there, so the JSON
//! keys are the XML element names, with plain values (checked against Garage 2.5.0; its
//! `$value` renames only matter to the XML serializer):
//! `{"ID": "web", "AllowedOrigin": ["*"], "AllowedMethod": ["GET"], "MaxAgeSeconds": 600}` and
//! `{"Status": "Enabled", "Filter": {"Prefix": "tmp/"}, "Expiration": {"Days": 1}}`.

/// A CORS rule (S3 `CORSRule`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CorsRule {
    pub id: Option<String>,
    /// Origins (`*` or `https://example.com`, one `*` wildcard allowed).
    pub allowed_origins: Vec<String>,
    /// Methods: `GET`, `PUT`, `POST`, `DELETE`, `HEAD`.
    pub allowed_methods: Vec<String>,
    pub allowed_headers: Vec<String>,
    pub expose_headers: Vec<String>,
    pub max_age_seconds: Option<u64>,
}

/// A lifecycle rule (S3 `Rule`) with Garage's filters (prefix and object size).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LifecycleRule {
    pub id: Option<String>,
    pub enabled: bool,
    /// Applies only to keys with this prefix.
    pub prefix: Option<String>,
    /// Applies only to objects larger than this many bytes.
    pub object_size_greater_than: Option<u64>,
    /// Applies only to objects smaller than this many bytes.
    pub object_size_less_than: Option<u64>,
    pub expiration: Option<Expiration>,
    /// Aborts multipart uploads unfinished after this many days.
    pub abort_incomplete_multipart_upload_days: Option<u64>,
}

/// When a lifecycle rule expires objects.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Expiration {
    /// This many days after the object's creation (Garage counts from the midnight UTC that
    /// follows it, and its worker runs once a day at midnight UTC).
    AfterDays(u64),
    /// From this date (`YYYY-MM-DD`) on.
    AtDate(String),
}

/// Garage's JSON forms.
pub(crate) mod wire {
    use serde::{Deserialize, Deserializer, Serialize};

    use super::{CorsRule, Expiration, LifecycleRule};

    /// Negative numbers cannot be valid sizes or days; clamp instead of failing a whole read.
    fn non_negative(x: i64) -> u64 {
        u64::try_from(x).unwrap_or(0)
    }

    fn signed(x: u64) -> i64 {
        i64::try_from(x).unwrap_or(i64::MAX)
    }

    #[derive(Clone, Debug, Serialize, Deserialize)]
    pub struct Cors {
        #[serde(rename = "ID", default, skip_serializing_if = "Option::is_none")]
        id: Option<String>,
        #[serde(
            rename = "MaxAgeSeconds",
            default,
            skip_serializing_if = "Option::is_none"
        )]
        max_age_seconds: Option<i64>,
        #[serde(rename = "AllowedOrigin", default)]
        allowed_origins: Vec<String>,
        #[serde(rename = "AllowedMethod", default)]
        allowed_methods: Vec<String>,
        #[serde(rename = "AllowedHeader", default)]
        allowed_headers: Vec<String>,
        #[serde(rename = "ExposeHeader", default)]
        expose_headers: Vec<String>,
    }

    impl From<&CorsRule> for Cors {
        fn from(r: &CorsRule) -> Self {
            Cors {
                id: r.id.clone(),
                max_age_seconds: r.max_age_seconds.map(signed),
                allowed_origins: r.allowed_origins.clone(),
                allowed_methods: r.allowed_methods.clone(),
                allowed_headers: r.allowed_headers.clone(),
                expose_headers: r.expose_headers.clone(),
            }
        }
    }

    impl From<Cors> for CorsRule {
        fn from(r: Cors) -> Self {
            CorsRule {
                id: r.id,
                allowed_origins: r.allowed_origins,
                allowed_methods: r.allowed_methods,
                allowed_headers: r.allowed_headers,
                expose_headers: r.expose_headers,
                max_age_seconds: r.max_age_seconds.map(non_negative),
            }
        }
    }

    #[derive(Clone, Debug, Default, Serialize, Deserialize)]
    pub struct Filter {
        #[serde(rename = "And", default, skip_serializing_if = "Option::is_none")]
        and: Option<Box<Filter>>,
        #[serde(rename = "Prefix", default, skip_serializing_if = "Option::is_none")]
        prefix: Option<String>,
        #[serde(
            rename = "ObjectSizeGreaterThan",
            default,
            skip_serializing_if = "Option::is_none"
        )]
        size_gt: Option<i64>,
        #[serde(
            rename = "ObjectSizeLessThan",
            default,
            skip_serializing_if = "Option::is_none"
        )]
        size_lt: Option<i64>,
    }

    #[derive(Clone, Debug, Serialize, Deserialize)]
    pub struct Expire {
        #[serde(rename = "Days", default, skip_serializing_if = "Option::is_none")]
        days: Option<i64>,
        #[serde(rename = "Date", default, skip_serializing_if = "Option::is_none")]
        date: Option<String>,
    }

    #[derive(Clone, Debug, Serialize, Deserialize)]
    pub struct AbortMpu {
        #[serde(rename = "DaysAfterInitiation")]
        days: i64,
    }

    #[derive(Clone, Debug, Serialize, Deserialize)]
    pub struct Lifecycle {
        #[serde(rename = "ID", default, skip_serializing_if = "Option::is_none")]
        id: Option<String>,
        #[serde(rename = "Status")]
        status: String,
        #[serde(rename = "Filter", default, skip_serializing_if = "Option::is_none")]
        filter: Option<Filter>,
        #[serde(
            rename = "Expiration",
            default,
            skip_serializing_if = "Option::is_none"
        )]
        expiration: Option<Expire>,
        #[serde(
            rename = "AbortIncompleteMultipartUpload",
            default,
            skip_serializing_if = "Option::is_none"
        )]
        abort_incomplete_mpu: Option<AbortMpu>,
    }

    impl From<&LifecycleRule> for Lifecycle {
        fn from(r: &LifecycleRule) -> Self {
            let conditions = Filter {
                and: None,
                prefix: r.prefix.clone(),
                size_gt: r.object_size_greater_than.map(signed),
                size_lt: r.object_size_less_than.map(signed),
            };
            let count = usize::from(conditions.prefix.is_some())
                + usize::from(conditions.size_gt.is_some())
                + usize::from(conditions.size_lt.is_some());
            // Garage (like S3) refuses several conditions unless wrapped in `And`.
            let filter = match count {
                0 => None,
                1 => Some(conditions),
                _ => Some(Filter {
                    and: Some(Box::new(conditions)),
                    ..Filter::default()
                }),
            };
            Lifecycle {
                id: r.id.clone(),
                status: if r.enabled { "Enabled" } else { "Disabled" }.to_owned(),
                filter,
                expiration: r.expiration.as_ref().map(|e| match e {
                    Expiration::AfterDays(d) => Expire {
                        days: Some(signed(*d)),
                        date: None,
                    },
                    Expiration::AtDate(d) => Expire {
                        days: None,
                        date: Some(d.clone()),
                    },
                }),
                abort_incomplete_mpu: r
                    .abort_incomplete_multipart_upload_days
                    .map(|d| AbortMpu { days: signed(d) }),
            }
        }
    }

    impl From<Lifecycle> for LifecycleRule {
        fn from(r: Lifecycle) -> Self {
            let filter = r
                .filter
                .map(|f| match f.and {
                    Some(inner) => *inner,
                    None => f,
                })
                .unwrap_or_default();
            LifecycleRule {
                id: r.id,
                enabled: r.status == "Enabled",
                prefix: filter.prefix,
                object_size_greater_than: filter.size_gt.map(non_negative),
                object_size_less_than: filter.size_lt.map(non_negative),
                expiration: r.expiration.and_then(|e| match (e.days, e.date) {
                    (Some(d), _) => Some(Expiration::AfterDays(non_negative(d))),
                    (None, Some(d)) => Some(Expiration::AtDate(d)),
                    (None, None) => None,
                }),
                abort_incomplete_multipart_upload_days: r
                    .abort_incomplete_mpu
                    .map(|a| non_negative(a.days)),
            }
        }
    }

    /// `corsRules` of an `UpdateBucket` body.
    pub fn cors_json(rules: &[CorsRule]) -> serde_json::Value {
        let rules: Vec<Cors> = rules.iter().map(Cors::from).collect();
        serde_json::to_value(rules).unwrap_or(serde_json::Value::Null)
    }

    /// `lifecycleRules` of an `UpdateBucket` body.
    pub fn lifecycle_json(rules: &[LifecycleRule]) -> serde_json::Value {
        let rules: Vec<Lifecycle> = rules.iter().map(Lifecycle::from).collect();
        serde_json::to_value(rules).unwrap_or(serde_json::Value::Null)
    }

    /// `corsRules` of `GetBucketInfo` (absent or `null`: none).
    pub fn de_cors<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<CorsRule>, D::Error> {
        let rules: Option<Vec<Cors>> = Option::deserialize(d)?;
        Ok(rules
            .unwrap_or_default()
            .into_iter()
            .map(CorsRule::from)
            .collect())
    }

    /// `lifecycleRules` of `GetBucketInfo` (absent or `null`: none).
    pub fn de_lifecycle<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<LifecycleRule>, D::Error> {
        let rules: Option<Vec<Lifecycle>> = Option::deserialize(d)?;
        Ok(rules
            .unwrap_or_default()
            .into_iter()
            .map(LifecycleRule::from)
            .collect())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn cors_json_is_xml_shaped() {
        let rule = CorsRule {
            id: Some("web".into()),
            allowed_origins: vec!["https://a.example".into()],
            allowed_methods: vec!["GET".into(), "PUT".into()],
            allowed_headers: vec!["*".into()],
            expose_headers: vec![],
            max_age_seconds: Some(600),
        };
        assert_eq!(
            wire::cors_json(std::slice::from_ref(&rule)),
            serde_json::json!([{
                "ID": "web",
                "MaxAgeSeconds": 600,
                "AllowedOrigin": ["https://a.example"],
                "AllowedMethod": ["GET", "PUT"],
                "AllowedHeader": ["*"],
                "ExposeHeader": [],
            }])
        );
        let back: Vec<wire::Cors> =
            serde_json::from_value(wire::cors_json(std::slice::from_ref(&rule))).unwrap();
        assert_eq!(CorsRule::from(back[0].clone()), rule);
    }

    #[test]
    fn lifecycle_filters_are_wrapped_in_and_when_several() {
        let one = LifecycleRule {
            enabled: true,
            prefix: Some("tmp/".into()),
            expiration: Some(Expiration::AfterDays(1)),
            ..LifecycleRule::default()
        };
        assert_eq!(
            wire::lifecycle_json(std::slice::from_ref(&one)),
            serde_json::json!([{
                "Status": "Enabled",
                "Filter": {"Prefix": "tmp/"},
                "Expiration": {"Days": 1},
            }])
        );
        let two = LifecycleRule {
            object_size_greater_than: Some(10),
            abort_incomplete_multipart_upload_days: Some(2),
            expiration: Some(Expiration::AtDate("2030-01-01".into())),
            ..one
        };
        let json = wire::lifecycle_json(std::slice::from_ref(&two));
        assert_eq!(
            json[0]["Filter"],
            serde_json::json!({"And": {"Prefix": "tmp/", "ObjectSizeGreaterThan": 10}})
        );
        assert_eq!(
            json[0]["AbortIncompleteMultipartUpload"],
            serde_json::json!({"DaysAfterInitiation": 2})
        );
        let back: Vec<wire::Lifecycle> = serde_json::from_value(json).unwrap();
        assert_eq!(LifecycleRule::from(back[0].clone()), two);
    }
}
