//! The product controllers this binary can run. Adding a product is one dependency in Cargo.toml
//! and one line in [`all`].

use agility_core::ProductController;

/// Every product controller, in a stable order.
pub fn all() -> Vec<Box<dyn ProductController>> {
    vec![
        Box::new(agility_redis::RedisController),
        Box::new(agility_rds::RdsController),
        Box::new(agility_kms::KmsController),
        Box::new(agility_oss::OssController),
        Box::new(agility_node_agent::controller::NodeController),
    ]
}

/// Selects the controllers named in `--controllers` (None = all). Unknown names are an error
/// listing the known ones, so a typo in Helm values fails loudly instead of running nothing.
pub fn select(
    available: Vec<Box<dyn ProductController>>,
    wanted: Option<&[String]>,
) -> Result<Vec<Box<dyn ProductController>>, String> {
    let Some(wanted) = wanted else {
        return Ok(available);
    };
    let wanted: Vec<&str> = wanted
        .iter()
        .map(|s| s.trim())
        .filter(|s| !s.is_empty())
        .collect();
    let known: Vec<&str> = available.iter().map(|p| p.name()).collect();
    let unknown: Vec<&str> = wanted
        .iter()
        .copied()
        .filter(|w| !known.contains(w))
        .collect();
    if !unknown.is_empty() {
        return Err(format!(
            "unknown controller(s): {} (known: {})",
            unknown.join(", "),
            if known.is_empty() {
                "none".to_owned()
            } else {
                known.join(", ")
            }
        ));
    }
    Ok(available
        .into_iter()
        .filter(|p| wanted.contains(&p.name()))
        .collect())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests may unwrap (project rule)
mod tests {
    use super::*;
    use agility_core::ControllerContext;
    use agility_core::product::BoxFuture;
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;

    struct Named(&'static str);
    impl ProductController for Named {
        fn name(&self) -> &'static str {
            self.0
        }
        fn crds(&self) -> Vec<CustomResourceDefinition> {
            Vec::new()
        }
        fn run(&self, _ctx: ControllerContext) -> BoxFuture<'static, agility_core::Result<()>> {
            Box::pin(async { Ok(()) })
        }
    }

    fn names(v: &[Box<dyn ProductController>]) -> Vec<&'static str> {
        v.iter().map(|p| p.name()).collect()
    }

    fn available() -> Vec<Box<dyn ProductController>> {
        vec![
            Box::new(Named("redis")),
            Box::new(Named("kms")),
            Box::new(Named("oss")),
        ]
    }

    #[test]
    fn selects_all_by_default_and_subsets_in_registry_order() {
        assert_eq!(
            names(&select(available(), None).unwrap()),
            vec!["redis", "kms", "oss"]
        );
        let wanted = vec!["oss".to_owned(), "redis".to_owned()];
        assert_eq!(
            names(&select(available(), Some(&wanted)).unwrap()),
            vec!["redis", "oss"]
        );
        let none = vec![String::new()];
        assert!(select(available(), Some(&none)).unwrap().is_empty());
    }

    #[test]
    fn unknown_names_fail_with_the_known_list() {
        let wanted = vec!["redis".to_owned(), "rediss".to_owned()];
        let err = select(available(), Some(&wanted)).err().unwrap();
        assert_eq!(
            err,
            "unknown controller(s): rediss (known: redis, kms, oss)"
        );
    }

    #[test]
    fn registry_names_are_unique_and_valid() {
        let all = all();
        let mut seen = std::collections::BTreeSet::new();
        for p in &all {
            let n = p.name();
            assert!(
                n.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'),
                "{n}"
            );
            assert!(seen.insert(n), "duplicate controller {n}");
        }
    }
}
