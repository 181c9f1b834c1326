//! Label and annotation keys the operator puts on every child object, and their builders.

use std::collections::BTreeMap;

/// `app.kubernetes.io/name`: the application (the product, e.g. `redis`).
pub const NAME: &str = "app.kubernetes.io/name";
/// `app.kubernetes.io/instance`: the owning custom object's name.
pub const INSTANCE: &str = "app.kubernetes.io/instance";
/// `app.kubernetes.io/component`: the child's role (e.g. `server`, `config`).
pub const COMPONENT: &str = "app.kubernetes.io/component";
/// `app.kubernetes.io/part-of`: always [`PART_OF_VALUE`].
pub const PART_OF: &str = "app.kubernetes.io/part-of";
/// `app.kubernetes.io/managed-by`: always [`MANAGED_BY_VALUE`].
pub const MANAGED_BY: &str = "app.kubernetes.io/managed-by";
/// `agility.dev/controller`: the controller that owns the child; pruning selects on it so one
/// controller never deletes another's children.
pub const CONTROLLER: &str = "agility.dev/controller";
/// Annotation holding the hash of the last applied desired object (see [`crate::apply`]).
pub const APPLIED_HASH: &str = "agility.dev/applied-hash";

/// Value of [`PART_OF`].
pub const PART_OF_VALUE: &str = "agility";
/// Value of [`MANAGED_BY`].
pub const MANAGED_BY_VALUE: &str = "agility-operator";

/// Kubernetes limits label values to 63 characters.
const MAX_LABEL_VALUE: usize = 63;

/// The standard labels of a child object.
///
/// `product` is the app name, `instance` the owner's name, `component` the child's role.
pub fn standard(
    product: &str,
    controller: &str,
    instance: &str,
    component: &str,
) -> BTreeMap<String, String> {
    let mut labels = selector(controller, instance);
    labels.insert(NAME.into(), label_value(product));
    labels.insert(COMPONENT.into(), label_value(component));
    labels.insert(PART_OF.into(), PART_OF_VALUE.into());
    labels
}

/// The labels that identify the children of one owner for one controller (a subset of
/// [`standard`]); used as the list selector when pruning.
pub fn selector(controller: &str, instance: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (MANAGED_BY.to_owned(), MANAGED_BY_VALUE.to_owned()),
        (CONTROLLER.to_owned(), label_value(controller)),
        (INSTANCE.to_owned(), label_value(instance)),
    ])
}

/// Renders labels as a label selector string (`k=v,k2=v2`).
pub fn selector_string(labels: &BTreeMap<String, String>) -> String {
    labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// Makes any object name a valid label value: names may be up to 253 characters, label values only
/// 63. Long values keep a readable prefix and get a stable hash suffix so they stay unique.
pub fn label_value(value: &str) -> String {
    let cleaned: String = value
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '-'
            }
        })
        .collect();
    if cleaned.len() <= MAX_LABEL_VALUE && cleaned == value {
        return cleaned;
    }
    let suffix = format!("{:016x}", crate::apply::fnv1a64(value.as_bytes()));
    // prefix + '-' + 16 hex digits = 63
    let prefix: String = cleaned.chars().take(MAX_LABEL_VALUE - 17).collect();
    let prefix = prefix.trim_end_matches(|c: char| !c.is_ascii_alphanumeric());
    format!("{prefix}-{suffix}")
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests may unwrap (project rule)
mod tests {
    use super::*;

    #[test]
    fn standard_labels_carry_every_key() {
        let l = standard("redis", "redis", "cache", "server");
        assert_eq!(l[NAME], "redis");
        assert_eq!(l[INSTANCE], "cache");
        assert_eq!(l[COMPONENT], "server");
        assert_eq!(l[PART_OF], "agility");
        assert_eq!(l[MANAGED_BY], "agility-operator");
        assert_eq!(l[CONTROLLER], "redis");
        assert_eq!(l.len(), 6);
    }

    #[test]
    fn selector_is_subset_of_standard_and_renders_sorted() {
        let s = selector("redis", "cache");
        let l = standard("redis", "redis", "cache", "server");
        for (k, v) in &s {
            assert_eq!(l.get(k), Some(v));
        }
        assert_eq!(
            selector_string(&s),
            "agility.dev/controller=redis,app.kubernetes.io/instance=cache,app.kubernetes.io/managed-by=agility-operator"
        );
    }

    #[test]
    fn label_values_are_valid_and_stable() {
        assert_eq!(label_value("cache"), "cache");
        let long = "a".repeat(200);
        let v = label_value(&long);
        assert_eq!(v.len(), 63);
        assert_eq!(v, label_value(&long), "stable");
        assert_ne!(v, label_value(&"a".repeat(201)), "unique");
        let odd = label_value("x/y");
        assert!(odd.starts_with("x-y-"), "{odd}");
        assert!(odd.len() <= 63);
        assert!(v.chars().last().is_some_and(|c| c.is_ascii_alphanumeric()));
    }
}
