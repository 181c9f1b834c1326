//! Node selection by a policy's or pool's `nodeSelector` (equality on labels; empty = all).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Node;
use kube::{Resource, ResourceExt};

/// True when every selector entry is among the node's labels.
pub fn selects(selector: &BTreeMap<String, String>, labels: &BTreeMap<String, String>) -> bool {
    selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

/// Names of the selected nodes, sorted.
pub fn selected_nodes<'a>(
    selector: &BTreeMap<String, String>,
    nodes: impl IntoIterator<Item = &'a Node>,
) -> Vec<String> {
    let mut names: Vec<String> = nodes
        .into_iter()
        .filter(|n| n.meta().deletion_timestamp.is_none() && selects(selector, n.labels()))
        .map(|n| n.name_any())
        .collect();
    names.sort();
    names.dedup();
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_selects_all_and_entries_must_all_match() {
        let labels: BTreeMap<String, String> =
            [("a".into(), "1".into()), ("b".into(), "2".into())].into();
        assert!(selects(&BTreeMap::new(), &labels));
        assert!(selects(&[("a".into(), "1".into())].into(), &labels));
        assert!(!selects(&[("a".into(), "2".into())].into(), &labels));
        assert!(!selects(&[("c".into(), "1".into())].into(), &labels));
    }
}
