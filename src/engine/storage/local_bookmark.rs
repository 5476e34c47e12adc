//! The bookmark workerd serves locally in place of point-in-time recovery's: a counter in
//! row 2 of `_cf_METADATA`, advanced by every getCurrentBookmark(), so that bookmarks sort
//! in the order they were taken, also across restarts, and a database written by either
//! side continues the other's sequence. (D1's Sessions API only needs that order.)

use rusqlite::{Connection, OptionalExtension};

use super::alarm_metadata::CREATE;

const BOOKMARK_KEY: i64 = 2;

/// Advances the counter in the caller's transaction and returns its new value (0 first).
/// Callers switch the SQL policy off (reserved table).
pub fn next(conn: &Connection) -> rusqlite::Result<i64> {
    conn.execute_batch(CREATE)?;
    let stored: Option<Option<i64>> = conn
        .prepare_cached("SELECT value FROM _cf_METADATA WHERE key = ?1")?
        .query_row([BOOKMARK_KEY], |r| r.get(0))
        .optional()?;
    // A negative or non-integer value is not a bookmark anyone wrote: start over.
    let next = match stored.flatten() {
        Some(current) if current >= 0 => current.saturating_add(1),
        _ => 0,
    };
    conn.prepare_cached("INSERT INTO _cf_METADATA VALUES (?1, ?2) ON CONFLICT DO UPDATE SET value = excluded.value")?
        .execute([BOOKMARK_KEY, next])?;
    Ok(next)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_up_from_zero_in_workerds_row() {
        let conn = Connection::open_in_memory().unwrap();
        assert_eq!(next(&conn).unwrap(), 0);
        assert_eq!(next(&conn).unwrap(), 1);
        let raw: i64 = conn.query_row("SELECT value FROM _cf_METADATA WHERE key = 2", [], |r| r.get(0)).unwrap();
        assert_eq!(raw, 1);
        conn.execute("UPDATE _cf_METADATA SET value = 41 WHERE key = 2", []).unwrap();
        assert_eq!(next(&conn).unwrap(), 42, "continues a sequence another runtime wrote");
    }
}
