//! The object's alarm time, stored as workerd stores it: row 1 of `_cf_METADATA`, in
//! nanoseconds since the Unix epoch, NULL (or no row, or no table) when none is set. A
//! database written by either side shows the other the same alarm.

use rusqlite::{Connection, OptionalExtension};

pub(super) const CREATE: &str = "CREATE TABLE IF NOT EXISTS _cf_METADATA (key INTEGER PRIMARY KEY, value BLOB)";
const ALARM_KEY: i64 = 1;
const NANOS_PER_MILLI: i64 = 1_000_000;

/// The alarm time in ms since the epoch. Callers switch the SQL policy off (reserved table).
pub fn get(conn: &Connection) -> rusqlite::Result<Option<i64>> {
    let exists: i64 = conn.query_row("SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = '_cf_METADATA'", [], |r| r.get(0))?;
    if exists == 0 {
        return Ok(None);
    }
    let nanos: Option<Option<i64>> = conn
        .prepare_cached("SELECT value FROM _cf_METADATA WHERE key = ?1")?
        .query_row([ALARM_KEY], |r| r.get(0))
        .optional()?;
    Ok(nanos.flatten().map(|ns| ns.div_euclid(NANOS_PER_MILLI)))
}

/// Sets (Some) or clears (None) the alarm, in the caller's transaction.
pub fn set(conn: &Connection, millis: Option<i64>) -> rusqlite::Result<()> {
    conn.execute_batch(CREATE)?;
    let nanos = millis.map(|ms| ms.saturating_mul(NANOS_PER_MILLI));
    conn.prepare_cached("INSERT INTO _cf_METADATA VALUES (?1, ?2) ON CONFLICT DO UPDATE SET value = excluded.value")?
        .execute(rusqlite::params![ALARM_KEY, nanos])?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_in_workerds_format() {
        let conn = Connection::open_in_memory().unwrap();
        assert_eq!(get(&conn).unwrap(), None, "no table");
        set(&conn, Some(1_700_000_000_123)).unwrap();
        assert_eq!(get(&conn).unwrap(), Some(1_700_000_000_123));
        let raw: i64 = conn.query_row("SELECT value FROM _cf_METADATA WHERE key = 1", [], |r| r.get(0)).unwrap();
        assert_eq!(raw, 1_700_000_000_123_000_000);
        set(&conn, None).unwrap();
        assert_eq!(get(&conn).unwrap(), None);
    }
}
