//! Online server parameters: `SET GLOBAL` for the variables a caller allows, written only when the
//! value differs so a steady state makes no writes.

use super::connection::Connection;
use super::error::DataplaneError;
use super::probe::single_row;
use super::quote;
use super::row::{flag, text};

/// A value for `SET GLOBAL`.
#[derive(Clone, Debug, PartialEq)]
pub enum GlobalValue {
    /// An integer variable (`max_connections`).
    Int(i64),
    /// A numeric variable with a fraction (`long_query_time`): MariaDB refuses quoted numbers.
    Float(f64),
    /// A boolean variable, written `ON`/`OFF`.
    Bool(bool),
    /// A string or enum variable, written as a quoted literal.
    Text(String),
}

impl GlobalValue {
    fn sql(&self, name: &str) -> Result<String, DataplaneError> {
        Ok(match self {
            GlobalValue::Int(i) => i.to_string(),
            GlobalValue::Float(f) if f.is_finite() => f.to_string(),
            GlobalValue::Float(_) => {
                return Err(DataplaneError::InvalidValue(name.to_owned()));
            }
            GlobalValue::Bool(true) => "ON".to_owned(),
            GlobalValue::Bool(false) => "OFF".to_owned(),
            GlobalValue::Text(s) => quote::string(s)?,
        })
    }

    /// Whether the server's current text already means this value.
    fn matches(&self, current: &str) -> bool {
        match self {
            GlobalValue::Int(i) => current.trim().parse::<i64>().is_ok_and(|c| c == *i),
            GlobalValue::Float(f) => current.trim().parse::<f64>().is_ok_and(|c| c == *f),
            GlobalValue::Bool(b) => flag(current) == *b,
            GlobalValue::Text(s) => current == s,
        }
    }
}

/// A variable name fit to be written unquoted after `@@GLOBAL.`: letters, digits, `_`.
fn checked_name(name: &str) -> Result<&str, DataplaneError> {
    if !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        Ok(name)
    } else {
        Err(DataplaneError::NotAllowed(name.to_owned()))
    }
}

/// The global variable's current value as text (None for NULL).
pub(crate) async fn read_global(
    conn: &mut Connection,
    name: &str,
) -> Result<Option<String>, DataplaneError> {
    let name = checked_name(name)?;
    let row = single_row(conn, &format!("SELECT @@GLOBAL.{name} AS v"), name).await?;
    Ok(text(&row, "v"))
}

/// Sets a global variable the server's built-ins already accept (no validation here), when it
/// differs. `allowed` is the caller's allow-list (case-insensitive); anything else is refused
/// before the server sees it. Returns whether it wrote.
pub async fn set_global(
    conn: &mut Connection,
    name: &str,
    value: &GlobalValue,
    allowed: &[&str],
) -> Result<bool, DataplaneError> {
    if !allowed.iter().any(|a| a.eq_ignore_ascii_case(name)) {
        return Err(DataplaneError::NotAllowed(name.to_owned()));
    }
    let name = checked_name(name)?;
    let sql_value = value.sql(name)?;
    let current = read_global(conn, name).await?.unwrap_or_default();
    if value.matches(&current) {
        return Ok(false);
    }
    conn.execute(&format!("SET GLOBAL {name} = {sql_value}"))
        .await?;
    Ok(true)
}

/// `SET GLOBAL name = ON|OFF` unless it already is; for the crate's own fixed variables.
pub(crate) async fn ensure_flag(
    conn: &mut Connection,
    name: &str,
    on: bool,
) -> Result<bool, DataplaneError> {
    let name = checked_name(name)?;
    let current = read_global(conn, name).await?.unwrap_or_default();
    if flag(&current) == on {
        return Ok(false);
    }
    let v = if on { "ON" } else { "OFF" };
    conn.execute(&format!("SET GLOBAL {name} = {v}")).await?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_plain_words() {
        assert!(checked_name("max_connections").is_ok());
        for bad in ["", "read_only=0", "a b", "x;DROP", "`x`", "a.b"] {
            assert!(checked_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn values_render_and_compare() {
        assert_eq!(GlobalValue::Int(-3).sql("v").ok().as_deref(), Some("-3"));
        assert_eq!(
            GlobalValue::Float(0.5).sql("v").ok().as_deref(),
            Some("0.5")
        );
        assert!(GlobalValue::Float(f64::NAN).sql("v").is_err());
        assert_eq!(GlobalValue::Bool(true).sql("v").ok().as_deref(), Some("ON"));
        assert_eq!(
            GlobalValue::Text("a'b".into()).sql("v").ok().as_deref(),
            Some("'a''b'")
        );
        assert!(GlobalValue::Int(151).matches("151"));
        assert!(GlobalValue::Float(0.5).matches("0.500000"));
        assert!(GlobalValue::Bool(false).matches("0") && GlobalValue::Bool(true).matches("ON"));
        assert!(!GlobalValue::Text("AFTER_SYNC".into()).matches("AFTER_COMMIT"));
    }
}
