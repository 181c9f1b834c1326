//! MariaDB GTID lists (`domain-server-seq`, comma separated) and the comparisons failover needs.
//!
//! Two shapes: a position ([`GtidPos`]: `gtid_binlog_pos`, `gtid_current_pos`, `gtid_slave_pos`,
//! `Gtid_IO_Pos`) has one GTID per replication domain, the last one; a binlog state
//! ([`GtidState`]: `gtid_binlog_state`) has the last GTID of every (domain, server) pair that
//! ever wrote, which is what finds errant transactions a position hides.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

/// One global transaction id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Gtid {
    /// Replication domain.
    pub domain: u32,
    /// `server_id` of the server that first wrote the transaction.
    pub server_id: u32,
    /// Sequence number within the domain.
    pub seq: u64,
}

impl fmt::Display for Gtid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}-{}", self.domain, self.server_id, self.seq)
    }
}

/// A GTID list that does not parse.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum GtidParseError {
    /// An element is not `domain-server-seq` with numbers in range.
    #[error("malformed GTID {0:?}")]
    Malformed(String),
    /// A position names a domain twice.
    #[error("GTID position names domain {0} twice")]
    DuplicateDomain(u32),
    /// A binlog state names a (domain, server) pair twice.
    #[error("GTID state names domain {0} server {1} twice")]
    DuplicateServer(u32, u32),
}

impl FromStr for Gtid {
    type Err = GtidParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || GtidParseError::Malformed(s.to_owned());
        let mut parts = s.trim().split('-');
        let (Some(d), Some(srv), Some(seq), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(bad());
        };
        // `str::parse` takes a leading `+`; MariaDB never writes one.
        let digits = |p: &str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit());
        if !(digits(d) && digits(srv) && digits(seq)) {
            return Err(bad());
        }
        Ok(Gtid {
            domain: d.parse().map_err(|_| bad())?,
            server_id: srv.parse().map_err(|_| bad())?,
            seq: seq.parse().map_err(|_| bad())?,
        })
    }
}

/// Splits a list, skipping the whitespace and newlines MariaDB puts after commas in `SHOW`
/// output; the empty string is the empty list.
fn elements(s: &str) -> impl Iterator<Item = Result<Gtid, GtidParseError>> + '_ {
    s.split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(Gtid::from_str)
}

fn join(gtids: impl Iterator<Item = Gtid>) -> String {
    gtids.map(|g| g.to_string()).collect::<Vec<_>>().join(",")
}

/// A replication position: the last GTID of each domain.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GtidPos {
    by_domain: BTreeMap<u32, Gtid>,
}

impl GtidPos {
    /// The position's GTIDs, by domain.
    pub fn gtids(&self) -> impl Iterator<Item = Gtid> + '_ {
        self.by_domain.values().copied()
    }

    /// The GTID for `domain`.
    pub fn get(&self, domain: u32) -> Option<Gtid> {
        self.by_domain.get(&domain).copied()
    }

    /// No transaction in any domain.
    pub fn is_empty(&self) -> bool {
        self.by_domain.is_empty()
    }

    /// True when this position is at or past `other` in every domain `other` has (server ids are
    /// not compared: with `gtid_strict_mode` a domain's sequence numbers only grow).
    pub fn contains(&self, other: &GtidPos) -> bool {
        other
            .gtids()
            .all(|o| self.get(o.domain).is_some_and(|s| s.seq >= o.seq))
    }

    /// True when this node has transactions the primary at `primary` does not: in some domain it
    /// is further than the primary, or at the same sequence number from another server, or the
    /// primary lacks the domain. A node behind the primary in every domain passes even if its
    /// last transaction was errant; [`GtidState::errant_against`] catches that case.
    pub fn diverged_from(&self, primary: &GtidPos) -> bool {
        self.gtids().any(|g| match primary.get(g.domain) {
            None => true,
            Some(p) => g.seq > p.seq || (g.seq == p.seq && g.server_id != p.server_id),
        })
    }
}

impl FromStr for GtidPos {
    type Err = GtidParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut by_domain = BTreeMap::new();
        for g in elements(s) {
            let g = g?;
            if by_domain.insert(g.domain, g).is_some() {
                return Err(GtidParseError::DuplicateDomain(g.domain));
            }
        }
        Ok(GtidPos { by_domain })
    }
}

impl fmt::Display for GtidPos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&join(self.gtids()))
    }
}

/// A binlog state (`gtid_binlog_state`): the last GTID of every (domain, server) pair.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GtidState {
    by_origin: BTreeMap<(u32, u32), Gtid>,
}

impl GtidState {
    /// The state's GTIDs, by domain then server.
    pub fn gtids(&self) -> impl Iterator<Item = Gtid> + '_ {
        self.by_origin.values().copied()
    }

    /// This node's GTIDs that the primary's binlog never had: for some (domain, server) the node
    /// is further than the primary. Needs `log_slave_updates` on every node, so a primary's state
    /// records what it replicated too.
    pub fn errant_against(&self, primary: &GtidState) -> Vec<Gtid> {
        self.gtids()
            .filter(|g| {
                primary
                    .by_origin
                    .get(&(g.domain, g.server_id))
                    .is_none_or(|p| g.seq > p.seq)
            })
            .collect()
    }
}

impl FromStr for GtidState {
    type Err = GtidParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut by_origin = BTreeMap::new();
        for g in elements(s) {
            let g = g?;
            if by_origin.insert((g.domain, g.server_id), g).is_some() {
                return Err(GtidParseError::DuplicateServer(g.domain, g.server_id));
            }
        }
        Ok(GtidState { by_origin })
    }
}

impl fmt::Display for GtidState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&join(self.gtids()))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn pos(s: &str) -> GtidPos {
        s.parse().unwrap()
    }

    fn state(s: &str) -> GtidState {
        s.parse().unwrap()
    }

    #[test]
    fn parses_and_formats_positions() {
        assert!(pos("").is_empty());
        assert_eq!(pos("").to_string(), "");
        let p = pos("1-2-7,0-1-100");
        assert_eq!(
            p.get(0),
            Some(Gtid {
                domain: 0,
                server_id: 1,
                seq: 100
            })
        );
        assert_eq!(p.get(1).map(|g| g.seq), Some(7));
        // Sorted by domain, like MariaDB prints it.
        assert_eq!(p.to_string(), "0-1-100,1-2-7");
        assert_eq!(pos(" 0-1-100,\n1-2-7 "), p);
        assert_eq!(
            pos("0-4294967295-18446744073709551615")
                .get(0)
                .map(|g| g.seq),
            Some(u64::MAX)
        );
    }

    #[test]
    fn refuses_malformed_positions() {
        for bad in [
            "0-1",
            "0-1-2-3",
            "a-1-2",
            "0-1-",
            "+0-1-2",
            "0--1-2",
            "0-4294967296-1",
            "0-1-2;DROP",
        ] {
            assert!(
                matches!(bad.parse::<GtidPos>(), Err(GtidParseError::Malformed(_))),
                "{bad}"
            );
        }
        assert_eq!(
            "0-1-5,0-2-6".parse::<GtidPos>(),
            Err(GtidParseError::DuplicateDomain(0))
        );
    }

    #[test]
    fn contains_compares_each_domain() {
        assert!(pos("0-1-100").contains(&pos("")));
        assert!(pos("").contains(&pos("")));
        assert!(!pos("").contains(&pos("0-1-1")));
        assert!(pos("0-1-100").contains(&pos("0-1-100")));
        assert!(pos("0-2-101").contains(&pos("0-1-100")));
        assert!(!pos("0-1-99").contains(&pos("0-1-100")));
        assert!(pos("0-1-100,1-2-7").contains(&pos("1-2-7")));
        assert!(!pos("0-1-100").contains(&pos("0-1-100,1-2-7")));
    }

    #[test]
    fn diverged_from_finds_errant_positions() {
        let primary = pos("0-1-100,1-2-7");
        assert!(!pos("").diverged_from(&primary));
        assert!(!pos("0-1-90").diverged_from(&primary));
        assert!(!pos("0-1-100,1-2-7").diverged_from(&primary));
        // Further than the primary.
        assert!(pos("0-1-101").diverged_from(&primary));
        // Same sequence number, written by another server.
        assert!(pos("0-3-100").diverged_from(&primary));
        // A domain the primary never had.
        assert!(pos("0-1-100,2-3-1").diverged_from(&primary));
        assert!(pos("0-1-1").diverged_from(&pos("")));
    }

    #[test]
    fn states_keep_every_origin() {
        let s = state("0-1-100,0-2-7,1-1-3");
        assert_eq!(s.to_string(), "0-1-100,0-2-7,1-1-3");
        assert_eq!(
            "0-1-1,0-1-2".parse::<GtidState>(),
            Err(GtidParseError::DuplicateServer(0, 1))
        );
    }

    #[test]
    fn errant_against_catches_what_positions_miss() {
        // The replica wrote 0-2-51 locally, then the primary moved on to 0-1-60: by position the
        // replica is merely behind, by state its server-2 transaction is unknown to the primary.
        let primary = state("0-1-60");
        let replica = state("0-1-50,0-2-51");
        assert!(!pos("0-2-51").diverged_from(&pos("0-1-60")));
        assert_eq!(
            replica.errant_against(&primary),
            vec![Gtid {
                domain: 0,
                server_id: 2,
                seq: 51
            }]
        );
        // Server 2 was primary once and the current primary replicated all of it.
        assert!(
            state("0-1-50,0-2-40")
                .errant_against(&state("0-1-60,0-2-40"))
                .is_empty()
        );
        assert!(state("").errant_against(&primary).is_empty());
    }
}
