//! Opening one object's SQLite database the way every connection must be configured.

use std::path::Path;

use rusqlite::{Connection, OpenFlags};

use super::authorizer::{self, AuthorizerState};
use super::error::{Result, StorageError};
use super::sql_limits;

/// Opens (creating if asked) a database file, or a private in-memory database when `path`
/// is None, with workerd's journal mode and Cloudflare's SQL policy installed.
pub fn open(path: Option<&Path>, create: bool) -> Result<(Connection, AuthorizerState)> {
    let conn = match path {
        None => Connection::open_in_memory()?,
        Some(path) => {
            if create {
                if let Some(dir) = path.parent() {
                    std::fs::create_dir_all(dir).map_err(|e| StorageError::io("cannot create the data folder", e))?;
                }
            }
            let mut flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
            if create {
                flags |= OpenFlags::SQLITE_OPEN_CREATE;
            }
            Connection::open_with_flags(path, flags)?
        }
    };
    // One process owns an object at a time: exclusive locking keeps a second process (or a
    // second registry on the same folder) out, and lets WAL run without a -shm file, so
    // each open object costs two file descriptors. It must precede the switch to WAL.
    conn.pragma_update(None, "locking_mode", "EXCLUSIVE")?;
    // WAL is workerd's journal mode. synchronous=NORMAL makes a commit survive a killed
    // process; durability against power loss comes from our own fsync of the WAL before
    // anything that depends on the commit is released (see `durability`), which we do off
    // the JavaScript thread instead of inside COMMIT.
    let _: String = conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.set_prepared_statement_cache_capacity(32);
    sql_limits::apply(&conn)?;
    let auth = AuthorizerState::default();
    authorizer::install(&conn, auth.clone())?;
    Ok((conn, auth))
}
