//! What the operator tells the gateway: per-bucket rules Garage does not enforce itself. The
//! operator writes it as JSON to the store's rules ConfigMap; every gateway replica watches it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::crd::{Acl, RefererRules};

/// The whole rule set of one store.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct GatewayConfig {
    /// Rules by bucket name (global alias). Buckets not listed are private without Referer rules.
    #[serde(default)]
    pub buckets: BTreeMap<String, BucketRules>,
}

/// The rules of one bucket.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct BucketRules {
    /// Who may use the bucket without a signature.
    #[serde(default)]
    pub acl: Acl,
    /// Referer anti-leech for anonymous and presigned requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub referer: Option<RefererRules>,
}
