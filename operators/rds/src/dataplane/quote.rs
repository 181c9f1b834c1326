//! Quoting of identifiers and string literals for the statements this crate builds.
//!
//! String literals are quoted for a session whose `sql_mode` has `NO_BACKSLASH_ESCAPES`, which
//! [`Connection`](super::Connection) sets on every session it opens: then a single quote doubled
//! is the only escape, and a backslash is an ordinary character. That is the one quoting that
//! cannot be subverted by a trailing backslash, and it does not depend on the server's defaults.
//! NUL has no spelling in that mode (and MariaDB forbids it in identifiers), so it is refused.

/// Input that cannot be quoted.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum QuoteError {
    /// MariaDB has no empty identifier.
    #[error("empty identifier")]
    EmptyIdentifier,
    /// MariaDB refuses NUL in identifiers.
    #[error("identifier {0:?} contains NUL")]
    NulInIdentifier(String),
    /// A string literal with NUL cannot be written with `NO_BACKSLASH_ESCAPES`.
    #[error("string literal contains NUL")]
    NulInString,
}

/// An identifier in backticks, inner backticks doubled: ``a`b`` becomes `` `a``b` ``.
pub fn ident(name: &str) -> Result<String, QuoteError> {
    if name.is_empty() {
        return Err(QuoteError::EmptyIdentifier);
    }
    if name.contains('\0') {
        return Err(QuoteError::NulInIdentifier(name.to_owned()));
    }
    Ok(format!("`{}`", name.replace('`', "``")))
}

/// A string literal in single quotes, inner quotes doubled. Only valid on a session with
/// `NO_BACKSLASH_ESCAPES` (every [`Connection`](super::Connection)).
pub fn string(value: &str) -> Result<String, QuoteError> {
    if value.contains('\0') {
        // Never echo the value: it may be a password.
        return Err(QuoteError::NulInString);
    }
    Ok(format!("'{}'", value.replace('\'', "''")))
}

/// An account name, `'user'@'host'`.
pub fn account(user: &str, host: &str) -> Result<String, QuoteError> {
    Ok(format!("{}@{}", string(user)?, string(host)?))
}

/// The database-name pattern a `GRANT ... ON pattern.*` needs to mean exactly `name`: in grant
/// patterns `_` and `%` are wildcards (so a grant on `app_1` would also cover `appX1`), and `\`
/// escapes them. This is also how the pattern reads back from `SCHEMA_PRIVILEGES.TABLE_SCHEMA`.
pub fn db_pattern(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 2);
    for c in name.chars() {
        if matches!(c, '_' | '%' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_double_backticks() {
        assert_eq!(ident("db1"), Ok("`db1`".to_owned()));
        assert_eq!(ident("a`b"), Ok("`a``b`".to_owned()));
        assert_eq!(
            ident("x`; DROP DATABASE mysql; --"),
            Ok("`x``; DROP DATABASE mysql; --`".to_owned())
        );
        assert_eq!(ident("``"), Ok("``````".to_owned()));
        // Quotes and backslashes are plain characters inside backticks.
        assert_eq!(ident("a'b\\"), Ok("`a'b\\`".to_owned()));
    }

    #[test]
    fn identifiers_refuse_empty_and_nul() {
        assert_eq!(ident(""), Err(QuoteError::EmptyIdentifier));
        assert!(matches!(ident("a\0b"), Err(QuoteError::NulInIdentifier(_))));
    }

    #[test]
    fn strings_double_quotes_and_keep_backslashes() {
        assert_eq!(string("pw"), Ok("'pw'".to_owned()));
        assert_eq!(string(""), Ok("''".to_owned()));
        assert_eq!(string("it's"), Ok("'it''s'".to_owned()));
        // With NO_BACKSLASH_ESCAPES a trailing backslash cannot swallow the closing quote.
        assert_eq!(string("x\\"), Ok("'x\\'".to_owned()));
        assert_eq!(
            string("\\'; DROP USER root; --"),
            Ok("'\\''; DROP USER root; --'".to_owned())
        );
        assert_eq!(string("\"ü\n"), Ok("'\"ü\n'".to_owned()));
        assert_eq!(string("a\0"), Err(QuoteError::NulInString));
    }

    #[test]
    fn quoted_strings_have_balanced_quotes() {
        for hostile in ["'", "''", "'''", "\\'", "'\\", "a'--", "%_'`\""] {
            let q = string(hostile).unwrap_or_default();
            let inner = &q[1..q.len() - 1];
            // Every quote inside comes in pairs, so none ends the literal early.
            assert!(
                inner.replace("''", "").find('\'').is_none(),
                "{hostile:?} -> {q}"
            );
            assert_eq!(inner.replace("''", "'"), hostile);
        }
    }

    #[test]
    fn accounts_quote_both_parts() {
        assert_eq!(account("app", "%"), Ok("'app'@'%'".to_owned()));
        assert_eq!(account("o'neil", "%"), Ok("'o''neil'@'%'".to_owned()));
    }

    #[test]
    fn db_patterns_escape_wildcards() {
        assert_eq!(db_pattern("app"), "app");
        assert_eq!(db_pattern("app_1"), "app\\_1");
        assert_eq!(db_pattern("100%"), "100\\%");
        assert_eq!(db_pattern("a\\b"), "a\\\\b");
    }
}
