//! The `_cf_KV` table behind the KV APIs, in workerd's schema, and the three statements
//! every get, put and delete runs.
//!
//! These are the hottest statements in the engine, so they are prepared once per open
//! database and bind keys and values without copying them, instead of going through a
//! statement cache that hashes the SQL text on every call.

use rusqlite::Connection;

use super::authorizer::AuthorizerState;
use super::error::Result;
use super::raw_statement::{RawStatement, SqlValue, Step};

const CREATE: &str = "CREATE TABLE IF NOT EXISTS _cf_KV (key TEXT PRIMARY KEY, value BLOB) WITHOUT ROWID";

pub struct KvTable {
    get: RawStatement,
    put: RawStatement,
    delete: RawStatement,
    auth: AuthorizerState,
}

impl KvTable {
    /// The table's statements, or None when the table does not exist and `create` is false.
    pub fn open(conn: &Connection, auth: &AuthorizerState, create: bool) -> Result<Option<KvTable>> {
        // Our own statements on a reserved table: the SQL policy is off while we prepare.
        auth.set_internal(true);
        let result = (|| {
            if create {
                conn.execute_batch(CREATE)?;
            } else {
                let exists: i64 = conn.query_row(
                    "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = '_cf_KV'",
                    [],
                    |r| r.get(0),
                )?;
                if exists == 0 {
                    return Ok(None);
                }
            }
            // SAFETY: the statements are finalized (dropped) before the connection closes:
            // OpenDatabase declares its KvTable before its Connection.
            let db = unsafe { conn.handle() };
            // SAFETY: `db` is the connection `conn` borrows, open while the table lives (its
            // owner finalizes statements before closing the connection).
            let prepare = |sql: &str| unsafe { RawStatement::prepare(db, sql, true) }.map(|(s, _)| s.expect("one statement"));
            Ok(Some(KvTable {
                get: prepare("SELECT value FROM _cf_KV WHERE key = ?1")?,
                put: prepare("INSERT OR REPLACE INTO _cf_KV (key, value) VALUES (?1, ?2)")?,
                delete: prepare("DELETE FROM _cf_KV WHERE key = ?1")?,
                auth: auth.clone(),
            }))
        })();
        auth.set_internal(false);
        result
    }

    /// Runs `f` with the policy off: stepping may re-prepare after a schema change.
    fn internal<T>(auth: &AuthorizerState, f: impl FnOnce() -> Result<T>) -> Result<T> {
        auth.set_internal(true);
        let r = f();
        auth.set_internal(false);
        r
    }

    /// Appends the value of `key` to `out`; false when there is none.
    pub fn get(&mut self, key: &[u8], out: &mut Vec<u8>) -> Result<bool> {
        let stmt = &mut self.get;
        let r = Self::internal(&self.auth, || {
            stmt.bind_borrowed(1, key, true)?;
            Ok(match stmt.step()? {
                Step::Done => false,
                Step::Row => {
                    if let SqlValue::Blob(b) | SqlValue::Text(b) = stmt.value(0) {
                        out.extend_from_slice(b);
                    }
                    true
                }
            })
        });
        stmt.rewind();
        r
    }

    pub fn put(&mut self, key: &[u8], value: &[u8]) -> Result<()> {
        let stmt = &mut self.put;
        let r = Self::internal(&self.auth, || {
            stmt.bind_borrowed(1, key, true)?;
            stmt.bind_borrowed(2, value, false)?;
            stmt.step().map(drop)
        });
        stmt.rewind();
        r
    }

    pub fn delete(&mut self, key: &[u8]) -> Result<bool> {
        let stmt = &mut self.delete;
        let r = Self::internal(&self.auth, || {
            stmt.bind_borrowed(1, key, true)?;
            stmt.step()?;
            Ok(stmt.changes() > 0)
        });
        stmt.rewind();
        r
    }
}
