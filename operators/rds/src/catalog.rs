//! The instance-class catalogue of the suite we model (MySQL-compatible, primary + standby):
//! one table used by the CRD schema (the enum of accepted codes), the planner (CPU, memory,
//! buffer pool, max_connections) and docs/rds.md (a unit test keeps them equal).

/// One instance class (per node: the primary and the standby each get it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InstanceClass {
    /// The code users put in `spec.instanceClass`.
    pub code: &'static str,
    /// The family as the catalogue names it.
    pub family: &'static str,
    /// CPU cores.
    pub cores: u32,
    /// Memory in GiB (the container limit; the InnoDB buffer pool gets most of it).
    pub memory_gib: u32,
    /// `max_connections`.
    pub max_connections: u32,
    /// The IOPS the class promises (reported; enforced only by the storage class).
    pub iops: u32,
}

const fn class(
    code: &'static str,
    family: &'static str,
    cores: u32,
    memory_gib: u32,
    max_connections: u32,
    iops: u32,
) -> InstanceClass {
    InstanceClass {
        code,
        family,
        cores,
        memory_gib,
        max_connections,
        iops,
    }
}

const GENERAL: &str = "general";
const DEDICATED: &str = "dedicated";

/// Every class, in catalogue order.
pub const CLASSES: &[InstanceClass] = &[
    class("rds.mysql.t1.small", GENERAL, 1, 1, 300, 600),
    class("rds.mysql.s1.small", GENERAL, 1, 2, 600, 1000),
    class("rds.mysql.s2.large", GENERAL, 2, 4, 1200, 2000),
    class("rds.mysql.s2.xlarge", GENERAL, 2, 8, 2000, 4000),
    class("rds.mysql.s3.large", GENERAL, 4, 8, 2000, 5000),
    class("rds.mysql.m1.medium", GENERAL, 4, 16, 4000, 7000),
    class("rds.mysql.c1.large", DEDICATED, 8, 16, 4000, 8000),
    class("rds.mysql.c1.xlarge", DEDICATED, 8, 32, 8000, 12000),
    class("rds.mysql.c2.xlarge", DEDICATED, 16, 64, 16000, 14000),
    class("rds.mysql.c2.xlp2", DEDICATED, 16, 96, 24000, 16000),
];

/// The class with this code.
pub fn find(code: &str) -> Option<&'static InstanceClass> {
    CLASSES.iter().find(|c| c.code == code)
}

/// Every code (the CRD enum).
pub fn codes() -> Vec<&'static str> {
    CLASSES.iter().map(|c| c.code).collect()
}

/// The catalogue as a Markdown table (docs/rds.md embeds it; a unit test keeps them equal).
pub fn markdown_table() -> String {
    let mut out = String::from(
        "| Class | Family | CPU cores | Memory (GiB) | max_connections | IOPS |\n|---|---|---|---|---|---|\n",
    );
    for c in CLASSES {
        out.push_str(&format!(
            "| `{}` | {} | {} | {} | {} | {} |\n",
            c.code, c.family, c.cores, c.memory_gib, c.max_connections, c.iops
        ));
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests may unwrap (project rule)
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_and_grow_with_size() {
        let mut seen = std::collections::BTreeSet::new();
        for c in CLASSES {
            assert!(seen.insert(c.code), "duplicate {}", c.code);
            assert!(c.code.starts_with("rds.mysql."));
            assert!(c.max_connections >= 300 && c.cores >= 1 && c.memory_gib >= 1);
        }
        for w in CLASSES.windows(2) {
            assert!(
                w[1].memory_gib >= w[0].memory_gib,
                "{} then {}",
                w[0].code,
                w[1].code
            );
        }
    }

    #[test]
    fn docs_embed_the_catalogue() {
        let docs = include_str!("../../../docs/rds.md");
        assert!(
            docs.contains(&markdown_table()),
            "docs/rds.md must contain the catalogue table exactly:\n{}",
            markdown_table()
        );
    }

    #[test]
    fn find_by_code() {
        assert_eq!(find("rds.mysql.s2.large").unwrap().cores, 2);
        assert!(find("rds.mysql.nope").is_none());
    }
}
