//! The instance-class catalogue of the suite we model: one table, used by the CRD schema (the enum
//! of accepted codes), the builders (memory, CPU, maxclients) and the docs (docs/redis.md).

/// Which edition a class belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClassEdition {
    /// Master + replica (or the single-node cache variant).
    Standard,
    /// Sharded: `shards` × (master + replica).
    Cluster,
}

/// One instance class.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InstanceClass {
    /// The code users put in `spec.instanceClass`.
    pub code: &'static str,
    /// Standard or cluster.
    pub edition: ClassEdition,
    /// The tier as the catalogue names it.
    pub tier: &'static str,
    /// Memory of the whole instance in GiB (`maxmemory`, split over shards for cluster classes).
    pub memory_gib: u32,
    /// CPU cores of the whole instance (split over shards for cluster classes).
    pub cores: u32,
    /// Maximum client connections of the whole instance (`maxclients`, split over shards).
    pub max_connections: u32,
    /// Bandwidth in MB/s (reported; enforced only where the CNI chain has the bandwidth plugin).
    pub bandwidth_mbps: u32,
    /// Shards for cluster classes; 1 for standard classes. `None`: the user chooses (`spec.shards`).
    pub shards: Option<u32>,
}

const fn std_class(
    code: &'static str,
    tier: &'static str,
    gib: u32,
    conns: u32,
    bw: u32,
) -> InstanceClass {
    InstanceClass {
        code,
        edition: ClassEdition::Standard,
        tier,
        memory_gib: gib,
        cores: 1,
        max_connections: conns,
        bandwidth_mbps: bw,
        shards: Some(1),
    }
}

const fn cluster_class(
    code: &'static str,
    tier: &'static str,
    gib: u32,
    cores: u32,
    conns: u32,
    bw: u32,
    shards: Option<u32>,
) -> InstanceClass {
    InstanceClass {
        code,
        edition: ClassEdition::Cluster,
        tier,
        memory_gib: gib,
        cores,
        max_connections: conns,
        bandwidth_mbps: bw,
        shards,
    }
}

const DR: &str = "standard-dr";
const HIGH: &str = "standard-high";
const CLUSTER: &str = "cluster";
const CLUSTER_DR: &str = "cluster-dr";

/// Every class, in catalogue order.
pub const CLASSES: &[InstanceClass] = &[
    std_class(
        "redis.logic.sharding.drredissdb1g.1db.0rodb.4proxy.default",
        DR,
        1,
        10_000,
        10,
    ),
    std_class(
        "redis.logic.sharding.drredissdb2g.1db.0rodb.4proxy.default",
        DR,
        2,
        10_000,
        16,
    ),
    std_class(
        "redis.logic.sharding.drredissdb4g.1db.0rodb.4proxy.default",
        DR,
        4,
        10_000,
        24,
    ),
    std_class(
        "redis.logic.sharding.drredissdb8g.1db.0rodb.4proxy.default",
        DR,
        8,
        10_000,
        24,
    ),
    std_class(
        "redis.logic.sharding.drredissdb16g.1db.0rodb.4proxy.default",
        DR,
        16,
        10_000,
        32,
    ),
    std_class(
        "redis.logic.sharding.drredissdb32g.1db.0rodb.4proxy.default",
        DR,
        32,
        10_000,
        32,
    ),
    std_class("redis.master.small.special2x", HIGH, 1, 20_000, 48),
    std_class("redis.master.mid.special2x", HIGH, 2, 20_000, 48),
    std_class("redis.master.stand.special2x", HIGH, 4, 20_000, 48),
    std_class("redis.master.large.special1x", HIGH, 8, 20_000, 48),
    std_class("redis.master.2xlarge.special1x", HIGH, 16, 20_000, 48),
    std_class("redis.master.4xlarge.special1x", HIGH, 32, 20_000, 48),
    cluster_class(
        "redis.sharding.small.default",
        CLUSTER,
        16,
        4,
        80_000,
        384,
        None,
    ),
    cluster_class(
        "redis.sharding.mid.default",
        CLUSTER,
        32,
        8,
        80_000,
        384,
        None,
    ),
    cluster_class(
        "redis.sharding.large.default",
        CLUSTER,
        64,
        8,
        80_000,
        384,
        None,
    ),
    cluster_class(
        "redis.sharding.2xlarge.default",
        CLUSTER,
        128,
        16,
        160_000,
        768,
        None,
    ),
    cluster_class(
        "redis.sharding.4xlarge.default",
        CLUSTER,
        256,
        16,
        160_000,
        768,
        None,
    ),
    cluster_class(
        "redis.logic.sharding.drredismdb16g.8db.0rodb.8proxy.default",
        CLUSTER_DR,
        16,
        8,
        80_000,
        384,
        Some(8),
    ),
    cluster_class(
        "redis.logic.sharding.drredismdb32g.8db.0rodb.8proxy.default",
        CLUSTER_DR,
        32,
        8,
        80_000,
        384,
        Some(8),
    ),
    cluster_class(
        "redis.logic.sharding.drredismdb64g.8db.0rodb.8proxy.default",
        CLUSTER_DR,
        64,
        8,
        80_000,
        384,
        Some(8),
    ),
    cluster_class(
        "redis.logic.sharding.drredismdb128g.16db.0rodb.16proxy.default",
        CLUSTER_DR,
        128,
        16,
        160_000,
        768,
        Some(16),
    ),
    cluster_class(
        "redis.logic.sharding.drredismdb256g.16db.0rodb.16proxy.default",
        CLUSTER_DR,
        256,
        16,
        160_000,
        768,
        Some(16),
    ),
];

/// Reference throughput of one non-cluster instance (a cluster instance: this times its shards).
pub const REFERENCE_QPS: (u32, u32) = (80_000, 100_000);

/// Shards of a cluster class that leaves the count to the user, when `spec.shards` is unset.
pub const DEFAULT_CLUSTER_SHARDS: u32 = 3;

/// Looks a class up by code.
pub fn find(code: &str) -> Option<&'static InstanceClass> {
    CLASSES.iter().find(|c| c.code == code)
}

/// Every code (the CRD enum).
pub fn codes() -> Vec<&'static str> {
    CLASSES.iter().map(|c| c.code).collect()
}

/// Codes of one edition, for the CEL rule that pairs classes with editions.
pub fn codes_of(edition: ClassEdition) -> Vec<&'static str> {
    CLASSES
        .iter()
        .filter(|c| c.edition == edition)
        .map(|c| c.code)
        .collect()
}

/// The catalogue as a Markdown table (docs/redis.md embeds it; a unit test keeps them equal).
pub fn markdown_table() -> String {
    let mut out = String::from(
        "| Code | Tier | Memory | Cores | Connections | Bandwidth | Shards |\n|---|---|---|---|---|---|---|\n",
    );
    for c in CLASSES {
        let shards = c.shards.map_or_else(
            || format!("spec.shards (default {DEFAULT_CLUSTER_SHARDS})"),
            |s| s.to_string(),
        );
        out.push_str(&format!(
            "| `{}` | {} | {} GB | {} | {} | {} MB/s | {} |\n",
            c.code, c.tier, c.memory_gib, c.cores, c.max_connections, c.bandwidth_mbps, shards
        ));
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn catalogue_has_the_modelled_suites_classes() {
        assert_eq!(CLASSES.len(), 22);
        assert_eq!(codes_of(ClassEdition::Standard).len(), 12);
        let dr8 = find("redis.logic.sharding.drredissdb8g.1db.0rodb.4proxy.default").unwrap();
        assert_eq!(
            (dr8.memory_gib, dr8.bandwidth_mbps, dr8.max_connections),
            (8, 24, 10_000)
        );
        let high = find("redis.master.stand.special2x").unwrap();
        assert_eq!(
            (high.memory_gib, high.max_connections, high.bandwidth_mbps),
            (4, 20_000, 48)
        );
        let big = find("redis.sharding.2xlarge.default").unwrap();
        assert_eq!(
            (
                big.memory_gib,
                big.cores,
                big.max_connections,
                big.bandwidth_mbps
            ),
            (128, 16, 160_000, 768)
        );
        let dr16 = find("redis.logic.sharding.drredismdb256g.16db.0rodb.16proxy.default").unwrap();
        assert_eq!(
            (dr16.shards, dr16.edition),
            (Some(16), ClassEdition::Cluster)
        );
        assert!(find("redis.master.huge").is_none());
    }

    #[test]
    fn codes_are_unique() {
        let mut codes = codes();
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), CLASSES.len());
    }

    #[test]
    fn the_docs_carry_the_same_table() {
        let docs = include_str!("../../../docs/redis.md");
        let table = markdown_table();
        assert!(
            docs.contains(&table),
            "docs/redis.md is out of date; the table is:\n{table}"
        );
    }
}
