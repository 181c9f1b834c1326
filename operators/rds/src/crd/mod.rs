//! The kinds of group `rds.agility.dev`: [`RdsInstance`], [`RdsAccount`], [`RdsDatabase`].
//! Validation lives in the schema where it can (enums, ranges, patterns, CEL for cross-field and
//! immutable rules) so bad input fails at apply time.

mod account;
mod database;
mod instance;

pub use account::*;
pub use database::*;
pub use instance::*;

/// API group.
pub const GROUP: &str = "rds.agility.dev";

/// What deleting an object does to the data it stands for.
#[derive(
    serde::Serialize,
    serde::Deserialize,
    schemars::JsonSchema,
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
)]
pub enum DeletionPolicy {
    /// Keep it (volumes, database, account).
    #[default]
    Retain,
    /// Delete it with the object.
    Delete,
}
