//! MariaDB GTID positions (`domain-server-seq`, one per replication domain), as
//! `gtid_binlog_pos`, `gtid_current_pos` and `Gtid_IO_Pos` print them.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

/// The last transaction of one replication domain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Gtid {
    /// `server_id` of the server that wrote it.
    pub server: u32,
    /// Sequence number. GTID strict mode keeps it increasing within a domain whichever server
    /// writes, so comparing sequence numbers is comparing history lengths.
    pub seq: u64,
}

/// A GTID position: for each replication domain, its last transaction.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Position {
    domains: BTreeMap<u32, Gtid>,
}

impl Position {
    /// Sets `domain`'s last transaction (builder).
    #[must_use]
    pub fn with(mut self, domain: u32, server: u32, seq: u64) -> Self {
        self.domains.insert(domain, Gtid { server, seq });
        self
    }

    /// The last transaction of `domain`.
    pub fn get(&self, domain: u32) -> Option<Gtid> {
        self.domains.get(&domain).copied()
    }

    /// Number of transactions of `other` this position lacks, over all domains.
    pub fn behind(&self, other: &Position) -> u64 {
        other
            .domains
            .iter()
            .map(|(d, g)| {
                g.seq
                    .saturating_sub(self.domains.get(d).map_or(0, |m| m.seq))
            })
            .fold(0, u64::saturating_add)
    }

    /// Every transaction of `other` is in this position (⊇).
    pub fn contains(&self, other: &Position) -> bool {
        self.behind(other) == 0
    }

    /// Per domain the later of the two (what a node holds: received ∪ applied).
    #[must_use]
    pub fn union(&self, other: &Position) -> Position {
        let mut domains = self.domains.clone();
        for (d, g) in &other.domains {
            let e = domains.entry(*d).or_insert(*g);
            if g.seq > e.seq {
                *e = *g;
            }
        }
        Position { domains }
    }

    /// History length: the sum of the domains' sequence numbers (orders "most data").
    pub fn transactions(&self) -> u64 {
        self.domains
            .values()
            .map(|g| g.seq)
            .fold(0, u64::saturating_add)
    }
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (d, g)) in self.domains.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{d}-{}-{}", g.server, g.seq)?;
        }
        Ok(())
    }
}

/// A string that is not a GTID position.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PositionParseError(pub String);

impl fmt::Display for PositionParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "not a GTID position: {:?}", self.0)
    }
}

impl std::error::Error for PositionParseError {}

impl FromStr for Position {
    type Err = PositionParseError;

    /// Parses `0-1-42,1-2-7`; empty means no transaction. Whitespace around entries is ignored
    /// because multi-domain values may come back with `,\n` separators.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || PositionParseError(s.to_owned());
        let mut pos = Position::default();
        if s.trim().is_empty() {
            return Ok(pos);
        }
        for entry in s.split(',') {
            let mut parts = entry.trim().splitn(3, '-');
            let mut next = || parts.next().ok_or_else(err);
            let domain: u32 = next()?.parse().map_err(|_| err())?;
            let server: u32 = next()?.parse().map_err(|_| err())?;
            let seq: u64 = next()?.parse().map_err(|_| err())?;
            // One entry per domain: a repeat means the input is not what the server prints.
            if pos.domains.insert(domain, Gtid { server, seq }).is_some() {
                return Err(err());
            }
        }
        Ok(pos)
    }
}
