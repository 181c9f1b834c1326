//! Reading text-protocol rows by column name (MariaDB's `SHOW SLAVE STATUS` has ~60 columns whose
//! order moves between versions), tolerating NULL.

use mysql_async::{Row, Value};

/// The column's value as text; None for NULL or a missing column. Names match case-insensitively
/// (`information_schema` spells them in capitals, `SHOW` statements in mixed case).
pub(crate) fn text(row: &Row, name: &str) -> Option<String> {
    let index = row
        .columns_ref()
        .iter()
        .position(|c| c.name_str().eq_ignore_ascii_case(name))?;
    match row.as_ref(index)? {
        Value::NULL => None,
        Value::Bytes(b) => Some(String::from_utf8_lossy(b).into_owned()),
        Value::Int(i) => Some(i.to_string()),
        Value::UInt(u) => Some(u.to_string()),
        Value::Float(f) => Some(f.to_string()),
        Value::Double(d) => Some(d.to_string()),
        other => Some(other.as_sql(true)),
    }
}

/// The column as an unsigned number; None for NULL, a missing column or text that is not one.
pub(crate) fn uint(row: &Row, name: &str) -> Option<u64> {
    text(row, name)?.trim().parse().ok()
}

/// A MariaDB boolean as text: `1`/`ON`/`YES` (and their opposites).
pub(crate) fn flag(value: &str) -> bool {
    matches!(
        value.trim().to_ascii_uppercase().as_str(),
        "1" | "ON" | "YES" | "TRUE"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_accept_every_spelling() {
        for on in ["1", "ON", "on", "YES", " true "] {
            assert!(flag(on), "{on}");
        }
        for off in ["0", "OFF", "NO", "", "Connecting"] {
            assert!(!flag(off), "{off}");
        }
    }
}
