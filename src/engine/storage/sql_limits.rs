//! Per-connection SQLite limits matching Cloudflare's Durable Object SQL storage.
//!
//! The values follow workerd's `SqliteDatabase::setupSecurity` (`src/workerd/util/sqlite.c++`),
//! which starts from the recommendations at <https://www.sqlite.org/security.html>, except where
//! Cloudflare's production limits differ from the open-source runtime; those places say so (see
//! <https://developers.cloudflare.com/durable-objects/platform/limits/>). Every limit applies to the whole
//! connection, so the storage layer's own statements on `_cf_KV` are bound by them too, just as
//! in workerd.

use std::ffi::c_int;

use rusqlite::config::DbConfig;
use rusqlite::{ffi, Connection};

/// Longest string, BLOB or row, in bytes (`SQLITE_LIMIT_LENGTH`).
///
/// Cloudflare documents 2 MB as the maximum string, BLOB or row size, and workerd sets 2,200,000:
/// 2 MiB (2,097,152) plus a margin, because the limit also caps the *record* SQLite assembles for
/// a row, which is the payload plus a header of a few bytes per column, and a KV value is stored
/// as its V8 serialization, a few bytes longer than the value itself. A 2 MiB string or BLOB
/// therefore fits, in `sql.exec()` and in `storage.put()` alike, while 2,200,000 bytes does not:
/// SQLite rejects it with `string or blob too big` (`SQLITE_TOOBIG`) as soon as the row's record
/// exceeds the limit. Both match what workerd does locally.
pub const MAX_VALUE_LENGTH: i32 = 2_200_000;

/// Longest SQL text of one `exec()` call, in bytes (`SQLITE_LIMIT_SQL_LENGTH`).
pub const MAX_SQL_LENGTH: i32 = 100_000;

/// Most columns in a table, index, view, result set, `ORDER BY` or `GROUP BY`
/// (`SQLITE_LIMIT_COLUMN`).
pub const MAX_COLUMNS: i32 = 100;

/// Deepest expression tree (`SQLITE_LIMIT_EXPR_DEPTH`).
pub const MAX_EXPRESSION_DEPTH: i32 = 100;

/// Most terms in a compound `SELECT` (`UNION`, `INTERSECT`, ...) (`SQLITE_LIMIT_COMPOUND_SELECT`).
pub const MAX_COMPOUND_SELECT_TERMS: i32 = 5;

/// Most virtual-machine instructions in one prepared statement (`SQLITE_LIMIT_VDBE_OP`), which
/// bounds the cost of compiling a statement.
pub const MAX_VDBE_OPS: i32 = 25_000;

/// Most arguments to one SQL function call (`SQLITE_LIMIT_FUNCTION_ARG`).
///
/// Cloudflare's production limit is 32, which is what we enforce. The open-source workerd uses
/// SQLite's default of 127 (for large `json_object()` calls), so code that passes 33 to 127
/// arguments runs under `wrangler dev` but fails once deployed; failing here too surfaces that
/// before deployment.
pub const MAX_FUNCTION_ARGUMENTS: i32 = 32;

/// Most attached databases (`SQLITE_LIMIT_ATTACHED`): none, since each object owns exactly one
/// database file. The authorizer denies `ATTACH` as well.
pub const MAX_ATTACHED_DATABASES: i32 = 0;

/// Longest `LIKE` or `GLOB` pattern, in bytes (`SQLITE_LIMIT_LIKE_PATTERN_LENGTH`).
pub const MAX_LIKE_PATTERN_LENGTH: i32 = 50;

/// Most `?` parameters in one statement, and the highest `?NNN` (`SQLITE_LIMIT_VARIABLE_NUMBER`).
pub const MAX_BOUND_PARAMETERS: i32 = 100;

/// Deepest chain of triggers firing triggers (`SQLITE_LIMIT_TRIGGER_DEPTH`).
pub const MAX_TRIGGER_DEPTH: i32 = 10;

/// Helper threads SQLite may start for one sort (`SQLITE_LIMIT_WORKER_THREADS`): none, so a query
/// only ever uses the thread that runs the object.
pub const MAX_WORKER_THREADS: i32 = 0;

/// Each limit (a `SQLITE_LIMIT_*` id) and the value [`apply`] gives it.
const LIMITS: [(c_int, i32); 12] = [
    (ffi::SQLITE_LIMIT_LENGTH, MAX_VALUE_LENGTH),
    (ffi::SQLITE_LIMIT_SQL_LENGTH, MAX_SQL_LENGTH),
    (ffi::SQLITE_LIMIT_COLUMN, MAX_COLUMNS),
    (ffi::SQLITE_LIMIT_EXPR_DEPTH, MAX_EXPRESSION_DEPTH),
    (ffi::SQLITE_LIMIT_COMPOUND_SELECT, MAX_COMPOUND_SELECT_TERMS),
    (ffi::SQLITE_LIMIT_VDBE_OP, MAX_VDBE_OPS),
    (ffi::SQLITE_LIMIT_FUNCTION_ARG, MAX_FUNCTION_ARGUMENTS),
    (ffi::SQLITE_LIMIT_ATTACHED, MAX_ATTACHED_DATABASES),
    (
        ffi::SQLITE_LIMIT_LIKE_PATTERN_LENGTH,
        MAX_LIKE_PATTERN_LENGTH,
    ),
    (ffi::SQLITE_LIMIT_VARIABLE_NUMBER, MAX_BOUND_PARAMETERS),
    (ffi::SQLITE_LIMIT_TRIGGER_DEPTH, MAX_TRIGGER_DEPTH),
    (ffi::SQLITE_LIMIT_WORKER_THREADS, MAX_WORKER_THREADS),
];

/// Applies Cloudflare's limits to `conn`, and turns on SQLite's defensive mode as workerd does.
///
/// Defensive mode disables the SQL features that can corrupt a database on purpose: writes to
/// `sqlite_master` through `PRAGMA writable_schema`, `PRAGMA journal_mode=OFF`, and direct writes
/// to the shadow tables behind FTS5 and R*Tree tables (`INSERT INTO docs_data ...`), which must
/// only change through their virtual table.
///
/// Call once, right after opening the connection.
pub fn apply(conn: &Connection) -> rusqlite::Result<()> {
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_DEFENSIVE, true)?;
    for (limit, value) in LIMITS {
        // rusqlite's `Connection::set_limit` sits behind its `limits` feature, which this crate
        // does not enable. `sqlite3_limit` cannot fail; it returns the previous value.
        // SAFETY: the handle is valid while `conn` lives, and `limit` is a valid limit id.
        unsafe { ffi::sqlite3_limit(conn.handle(), limit, value) };
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::storage::authorizer::sqlite_error_message;
    use rusqlite::params;

    const MIB: usize = 1024 * 1024;

    fn connection() -> Connection {
        let conn = Connection::open_in_memory().unwrap();
        apply(&conn).unwrap();
        conn.execute_batch("CREATE TABLE t(id INTEGER PRIMARY KEY, v)")
            .unwrap();
        conn
    }

    /// Runs every statement of `sql`, reporting failures the way workerd words them.
    fn run(conn: &Connection, sql: &str) -> Result<(), String> {
        conn.execute_batch(sql)
            .map_err(|e| sqlite_error_message(&e))
    }

    fn insert(conn: &Connection, value: impl rusqlite::ToSql) -> Result<(), String> {
        conn.execute("INSERT INTO t(v) VALUES (?)", params![value])
            .map(drop)
            .map_err(|e| sqlite_error_message(&e))
    }

    #[test]
    fn sets_every_limit() {
        let conn = connection();
        for (limit, value) in LIMITS {
            // A negative new value reads the limit without changing it.
            // SAFETY: the handle is valid while `conn` lives.
            let current = unsafe { ffi::sqlite3_limit(conn.handle(), limit, -1) };
            assert_eq!(current, value, "limit {limit}");
        }
    }

    #[test]
    fn turns_on_defensive_mode() {
        let conn = connection();
        run(&conn, "CREATE VIRTUAL TABLE docs USING fts5(body)").unwrap();
        let error = run(&conn, "DELETE FROM docs_data").unwrap_err();
        assert_eq!(error, "table docs_data may not be modified: SQLITE_ERROR");
        run(
            &conn,
            "INSERT INTO docs VALUES ('through the virtual table is fine')",
        )
        .unwrap();
    }

    #[test]
    fn accepts_a_two_mebibyte_value() {
        let conn = connection();
        insert(&conn, vec![7u8; 2 * MIB]).unwrap();
        insert(&conn, "x".repeat(2 * MIB)).unwrap();
        run(&conn, "INSERT INTO t(v) VALUES (zeroblob(2097152))").unwrap();
        run(&conn, "INSERT INTO t(v) VALUES (randomblob(2097152))").unwrap();
    }

    #[test]
    fn accepts_a_kv_row_holding_a_two_mebibyte_value() {
        // `storage.put(key, value)` stores the V8 serialization of the value, a few bytes longer
        // than a 2 MiB payload, next to its key.
        let conn = connection();
        run(
            &conn,
            "CREATE TABLE kv(key TEXT PRIMARY KEY, value BLOB) WITHOUT ROWID",
        )
        .unwrap();
        let serialized = vec![0u8; 2 * MIB + 16];
        conn.execute(
            "INSERT INTO kv VALUES (?, ?)",
            params!["some-key", serialized],
        )
        .unwrap();
    }

    #[test]
    fn rejects_a_2_200_000_byte_value() {
        let conn = connection();
        let too_big = "string or blob too big: SQLITE_TOOBIG";
        assert_eq!(insert(&conn, vec![7u8; 2_200_000]).unwrap_err(), too_big);
        assert_eq!(insert(&conn, "x".repeat(2_200_000)).unwrap_err(), too_big);
        // Longer still, the value is refused as it is bound, with the same message.
        assert_eq!(insert(&conn, vec![7u8; 3 * MIB]).unwrap_err(), too_big);
        assert_eq!(
            run(&conn, "INSERT INTO t(v) VALUES (zeroblob(2200000))").unwrap_err(),
            too_big
        );
        assert_eq!(
            run(&conn, "SELECT randomblob(2200001)").unwrap_err(),
            too_big
        );
    }

    #[test]
    fn limits_bound_parameters_to_100() {
        let conn = connection();
        let placeholders = |n| vec!["?"; n].join(", ");
        let ok = format!("SELECT {}", placeholders(100));
        assert_eq!(conn.prepare(&ok).unwrap().parameter_count(), 100);

        let error = run(&conn, &format!("SELECT {}", placeholders(101))).unwrap_err();
        assert!(
            error.starts_with("too many SQL variables at offset "),
            "{error}"
        );
        assert!(error.ends_with(": SQLITE_ERROR"), "{error}");
        let error = run(&conn, "SELECT ?101").unwrap_err();
        assert!(
            error.starts_with("variable number must be between ?1 and ?100"),
            "{error}"
        );
    }

    #[test]
    fn limits_function_arguments_to_32() {
        let conn = connection();
        let args = |n| vec!["1"; n].join(", ");
        run(&conn, &format!("SELECT max({})", args(32))).unwrap();
        let error = run(&conn, &format!("SELECT max({})", args(33))).unwrap_err();
        assert!(
            error.starts_with("too many arguments on function max"),
            "{error}"
        );
    }

    #[test]
    fn limits_columns_to_100() {
        let conn = connection();
        let columns = |n| {
            (0..n)
                .map(|i| format!("c{i}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        run(&conn, &format!("CREATE TABLE wide({})", columns(100))).unwrap();
        let error = run(&conn, &format!("CREATE TABLE wider({})", columns(101))).unwrap_err();
        assert!(error.starts_with("too many columns on wider"), "{error}");
    }

    #[test]
    fn limits_sql_text_to_100_000_bytes() {
        let conn = connection();
        let padded = |len: usize| format!("SELECT 1{}", " ".repeat(len - "SELECT 1".len()));
        run(&conn, &padded(100_000)).unwrap();
        assert_eq!(
            run(&conn, &padded(100_001)).unwrap_err(),
            "statement too long: SQLITE_TOOBIG"
        );
    }

    #[test]
    fn limits_compound_selects_to_5_terms() {
        let conn = connection();
        let union = |n| vec!["SELECT 1"; n].join(" UNION ALL ");
        run(&conn, &union(5)).unwrap();
        let error = run(&conn, &union(6)).unwrap_err();
        assert!(
            error.starts_with("too many terms in compound SELECT"),
            "{error}"
        );
    }

    #[test]
    fn limits_like_patterns_to_50_bytes() {
        let conn = connection();
        let like = |n| format!("SELECT 'a' LIKE '{}'", "%".repeat(n));
        run(&conn, &like(50)).unwrap();
        let error = run(&conn, &like(51)).unwrap_err();
        assert_eq!(error, "LIKE or GLOB pattern too complex: SQLITE_ERROR");
    }

    #[test]
    fn limits_expression_depth_to_100() {
        let conn = connection();
        // Each `(1 + ...)` adds a level to the tree below the innermost `1`.
        let nested = |n| (0..n).fold("1".to_owned(), |inner, _| format!("(1 + {inner})"));
        run(&conn, &format!("SELECT {}", nested(99))).unwrap();
        let error = run(&conn, &format!("SELECT {}", nested(100))).unwrap_err();
        assert_eq!(
            error,
            "Expression tree is too large (maximum depth 100): SQLITE_ERROR"
        );
    }

    #[test]
    fn limits_trigger_depth_to_10() {
        let conn = connection();
        // Inserting n fires the trigger 20 - n levels deep.
        run(
            &conn,
            "CREATE TABLE chain(n INTEGER);
             CREATE TRIGGER next AFTER INSERT ON chain WHEN new.n < 20
             BEGIN INSERT INTO chain VALUES (new.n + 1); END;
             PRAGMA recursive_triggers = ON;",
        )
        .unwrap();
        run(&conn, "INSERT INTO chain VALUES (11)").unwrap();
        let error = run(&conn, "INSERT INTO chain VALUES (10)").unwrap_err();
        assert_eq!(error, "triggers nested too deep: SQLITE_ERROR");
    }

    #[test]
    fn allows_no_attached_databases() {
        // Even without the authorizer, which denies ATTACH first.
        let conn = connection();
        let error = run(&conn, "ATTACH ':memory:' AS other").unwrap_err();
        assert_eq!(error, "too many attached databases - max 0: SQLITE_ERROR");
    }
}
