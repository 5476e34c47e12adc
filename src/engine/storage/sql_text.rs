//! Lexical helpers for `ctx.storage.sql.exec()`, which accepts several statements in one string.
//!
//! workerd (`src/workerd/util/sqlite.c++`, `SqliteDatabase::prepareSql`) prepares the query one
//! statement at a time. After each statement it looks at the text SQLite left over (the "tail"):
//! if anything remains, the statement is not the last one, so it must not have parameters and is
//! run at once with its rows discarded; only the last statement is returned to the caller as a
//! cursor. These helpers reproduce the decisions it makes on that text, plus the one check the
//! authorizer cannot make on its own (see [`rename_target`]).

use std::borrow::Cow;

/// Thrown when a query, or the text after a statement that was not the last, holds no statement
/// (for example `""`, `";"`, or `"SELECT 1; -- done"`). Wording from workerd's `prepareSql`.
pub const NO_STATEMENT_MESSAGE: &str = "SQL code did not contain a statement.";

/// Thrown when a statement that is not the last one of a query has `?` parameters. Wording from
/// workerd's `prepareSql`.
pub const MULTI_STATEMENT_PARAMETERS_MESSAGE: &str =
    "When executing multiple SQL statements in a single call, only the last statement can have \
     parameters.";

/// Thrown when the number of bindings differs from the statement's parameter count. Wording from
/// workerd's `SqliteDatabase::Query::checkRequirements`.
pub const WRONG_PARAMETER_COUNT_MESSAGE: &str = "Wrong number of parameter bindings for SQL query.";

/// The whitespace SQLite's tokenizer skips (its `sqlite3Isspace`), which is also exactly the set
/// workerd skips after a statement's tail. Deliberately not `char::is_whitespace`: SQLite does
/// not treat Unicode spaces such as U+00A0 as whitespace.
fn is_sql_space(byte: u8) -> bool {
    matches!(byte, b' ' | b'\t' | b'\n' | b'\r' | b'\x0b' | b'\x0c')
}

/// workerd's rule for whether a prepared statement was the last of the query: `tail` (the text
/// SQLite left after the statement, which starts just past its `;`) is the end of the query only
/// if it holds nothing but whitespace.
///
/// Comments and extra semicolons are *not* skipped, exactly as in workerd: for
/// `"SELECT 1; -- done"` the `SELECT` counts as an intermediate statement (it runs, its rows are
/// discarded) and preparing the remaining `-- done` then yields no statement, which workerd
/// reports as [`NO_STATEMENT_MESSAGE`].
pub fn is_query_end(tail: &str) -> bool {
    tail.bytes().all(is_sql_space)
}

/// The destination of an `ALTER TABLE [schema.]table RENAME TO destination` statement, with its
/// quotes removed, if that is the first statement of `sql`; `None` for any other statement.
///
/// SQLite's authorizer is told which table is being renamed but not its new name (workerd patches
/// SQLite to pass it), so the storage layer checks the destination from the statement text
/// instead. Only the shape of the statement is recognised here; SQLite still parses and validates
/// it. Leading whitespace, comments and empty statements are skipped, as `sqlite3_prepare` does.
pub fn rename_target(sql: &str) -> Option<String> {
    let mut tokens = Tokens {
        rest: skip_trivia_and_semicolons(sql),
    };
    expect_keyword(&mut tokens, "ALTER")?;
    expect_keyword(&mut tokens, "TABLE")?;
    expect_name(&mut tokens)?;
    // The table may be qualified with its schema: `main.t`.
    let mut next = tokens.next()?;
    if matches!(next, Token::Other('.')) {
        expect_name(&mut tokens)?;
        next = tokens.next()?;
    }
    if !next.is_keyword("RENAME") {
        return None;
    }
    // `RENAME [COLUMN] a TO b` renames a column; only `RENAME TO` renames the table. `TO` cannot
    // name a column unquoted, since SQLite never accepts it as an identifier.
    expect_keyword(&mut tokens, "TO")?;
    expect_name(&mut tokens).map(Cow::into_owned)
}

fn expect_keyword(tokens: &mut Tokens<'_>, keyword: &str) -> Option<()> {
    tokens.next()?.is_keyword(keyword).then_some(())
}

fn expect_name<'a>(tokens: &mut Tokens<'a>) -> Option<Cow<'a, str>> {
    match tokens.next()? {
        Token::Name { text, .. } => Some(text),
        Token::Other(_) => None,
    }
}

/// Skips whitespace, comments and `;` (empty statements).
fn skip_trivia_and_semicolons(mut sql: &str) -> &str {
    loop {
        sql = skip_trivia(sql);
        match sql.strip_prefix(';') {
            Some(rest) => sql = rest,
            None => return sql,
        }
    }
}

/// Skips whitespace and comments, the text SQLite's tokenizer discards between tokens.
fn skip_trivia(mut sql: &str) -> &str {
    loop {
        let trimmed = sql.trim_start_matches(|c: char| c.is_ascii() && is_sql_space(c as u8));
        sql = if let Some(comment) = trimmed.strip_prefix("--") {
            // A line comment ends at the newline (or the end of the text).
            comment.find('\n').map_or("", |end| &comment[end + 1..])
        } else if let Some(comment) = trimmed.strip_prefix("/*") {
            // An unterminated block comment swallows the rest of the text.
            comment.find("*/").map_or("", |end| &comment[end + 2..])
        } else {
            return trimmed;
        };
    }
}

/// The few token shapes [`rename_target`] needs to recognise a statement.
enum Token<'a> {
    /// An identifier or keyword. `quoted` names written as `"x"`, `` `x` ``, `[x]` or `'x'`
    /// (SQLite accepts a string literal as a name), whose text has had its quotes removed; only
    /// a bare word can be a keyword.
    Name { text: Cow<'a, str>, quoted: bool },
    /// Any other character: punctuation, operators, digits. Numbers and blobs come out as several
    /// of these, which is harmless because none of the shapes we match contains them.
    Other(char),
}

impl Token<'_> {
    fn is_keyword(&self, keyword: &str) -> bool {
        matches!(self, Token::Name { text, quoted: false } if text.eq_ignore_ascii_case(keyword))
    }
}

/// Splits SQL into [`Token`]s, skipping whitespace and comments. Stops at an unterminated quote,
/// which SQLite would reject anyway.
struct Tokens<'a> {
    rest: &'a str,
}

impl<'a> Iterator for Tokens<'a> {
    type Item = Token<'a>;

    fn next(&mut self) -> Option<Token<'a>> {
        let sql = skip_trivia(self.rest);
        let first = sql.chars().next()?;
        let (token, len) = match first {
            '"' | '`' | '\'' => {
                let (text, len) = dequote(sql, first)?;
                (Token::Name { text, quoted: true }, len)
            }
            '[' => {
                let end = sql.find(']')?;
                (
                    Token::Name {
                        text: Cow::Borrowed(&sql[1..end]),
                        quoted: true,
                    },
                    end + 1,
                )
            }
            c if is_identifier_start(c) => {
                let len = sql
                    .find(|c: char| !is_identifier_char(c))
                    .unwrap_or(sql.len());
                (
                    Token::Name {
                        text: Cow::Borrowed(&sql[..len]),
                        quoted: false,
                    },
                    len,
                )
            }
            c => (Token::Other(c), c.len_utf8()),
        };
        self.rest = &sql[len..];
        Some(token)
    }
}

/// Reads a token quoted with `quote` (always an ASCII character), in which a doubled quote stands
/// for one quote character. Returns the unquoted text and the token's length in `sql`.
fn dequote(sql: &str, quote: char) -> Option<(Cow<'_, str>, usize)> {
    let body = &sql[1..];
    // Only a doubled quote forces a copy; most names are borrowed as they are.
    let mut unescaped: Option<String> = None;
    let mut start = 0;
    loop {
        let end = start + body[start..].find(quote)?;
        if body[end + 1..].starts_with(quote) {
            unescaped
                .get_or_insert_with(String::new)
                .push_str(&body[start..=end]);
            start = end + 2;
        } else {
            let text = match unescaped {
                None => Cow::Borrowed(&body[..end]),
                Some(mut text) => {
                    text.push_str(&body[start..end]);
                    Cow::Owned(text)
                }
            };
            // The opening quote, the body, the closing quote.
            return Some((text, end + 2));
        }
    }
}

/// SQLite identifiers start with a letter, `_`, or any non-ASCII character.
fn is_identifier_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_' || !c.is_ascii()
}

/// After the first character, SQLite identifiers may also hold digits and `$`.
fn is_identifier_char(c: char) -> bool {
    is_identifier_start(c) || c.is_ascii_digit() || c == '$'
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_end_accepts_only_whitespace() {
        assert!(is_query_end(""));
        assert!(is_query_end(" \t\r\n\x0b\x0c"));
        // workerd treats a trailing comment, an extra `;` or a Unicode space as more SQL.
        assert!(!is_query_end(" -- done"));
        assert!(!is_query_end("/* done */"));
        assert!(!is_query_end(";"));
        assert!(!is_query_end("\u{a0}"));
        assert!(!is_query_end(" SELECT 2"));
    }

    #[test]
    fn finds_the_destination_of_a_table_rename() {
        assert_eq!(
            rename_target("ALTER TABLE t RENAME TO u").as_deref(),
            Some("u")
        );
        assert_eq!(
            rename_target("alter table t rename to _cf_KV;").as_deref(),
            Some("_cf_KV")
        );
        assert_eq!(
            rename_target("ALTER TABLE main.t RENAME TO u").as_deref(),
            Some("u")
        );
        assert_eq!(
            rename_target("ALTER TABLE \"main\".\"t\" RENAME TO u").as_deref(),
            Some("u")
        );
        assert_eq!(
            rename_target("  -- migrate\n; /* go */ ALTER\nTABLE t\tRENAME /* to */ TO u")
                .as_deref(),
            Some("u")
        );
    }

    #[test]
    fn unquotes_the_destination() {
        assert_eq!(
            rename_target("ALTER TABLE t RENAME TO \"_cf_x\"").as_deref(),
            Some("_cf_x")
        );
        assert_eq!(
            rename_target("ALTER TABLE t RENAME TO `_cf_x`").as_deref(),
            Some("_cf_x")
        );
        assert_eq!(
            rename_target("ALTER TABLE t RENAME TO [_cf_x]").as_deref(),
            Some("_cf_x")
        );
        assert_eq!(
            rename_target("ALTER TABLE t RENAME TO '_cf_x'").as_deref(),
            Some("_cf_x")
        );
        assert_eq!(
            rename_target("ALTER TABLE t RENAME TO \"a\"\"b\"").as_deref(),
            Some("a\"b")
        );
        assert_eq!(
            rename_target("ALTER TABLE t RENAME TO 'it''s'").as_deref(),
            Some("it's")
        );
        assert_eq!(
            rename_target("ALTER TABLE \"o\"\"ld\" RENAME TO n").as_deref(),
            Some("n")
        );
        assert_eq!(
            rename_target("ALTER TABLE t RENAME TO \"\"").as_deref(),
            Some("")
        );
        assert_eq!(
            rename_target("ALTER TABLE t RENAME TO ünï").as_deref(),
            Some("ünï")
        );
        assert_eq!(
            rename_target("ALTER TABLE t RENAME TO a$1").as_deref(),
            Some("a$1")
        );
    }

    #[test]
    fn ignores_other_statements() {
        assert_eq!(
            rename_target("ALTER TABLE t RENAME COLUMN a TO _cf_b"),
            None
        );
        assert_eq!(rename_target("ALTER TABLE t RENAME a TO _cf_b"), None);
        assert_eq!(rename_target("ALTER TABLE t ADD COLUMN _cf_c"), None);
        assert_eq!(
            rename_target("SELECT 'ALTER TABLE t RENAME TO _cf_x'"),
            None
        );
        assert_eq!(
            rename_target("-- ALTER TABLE t RENAME TO _cf_x\nSELECT 1"),
            None
        );
        assert_eq!(rename_target("\"ALTER\" TABLE t RENAME TO u"), None);
        assert_eq!(rename_target("ALTER TABLE t RENAME TO"), None);
        assert_eq!(
            rename_target("ALTER TABLE t RENAME TO \"unterminated"),
            None
        );
        assert_eq!(rename_target(""), None);
        // Only the first statement is inspected; the caller checks each one as it comes.
        assert_eq!(
            rename_target("SELECT 1; ALTER TABLE t RENAME TO _cf_x"),
            None
        );
    }
}
