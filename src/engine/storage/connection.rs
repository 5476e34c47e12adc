//! Opening one object's SQLite database the way every connection must be configured.

use std::path::Path;

use rusqlite::{Connection, OpenFlags};

use super::authorizer::{self, AuthorizerState};
use super::durability::Durability;
use super::error::{Result, StorageError};
use super::file_lock::{self, LockFailure};
use super::sql_limits;
use super::statement_timer::StatementTimer;

/// The WAL size, in pages, at which a commit checkpoints and the WAL starts over, for
/// databases whose every commit is fsynced (see `open`).
const FULL_DURABILITY_WAL_PAGES: i64 = 100;

/// Process-wide SQLite settings, which must precede SQLite's initialization (its first
/// connection): the store calls this when it is created.
///
/// A process holds thousands of connections (one per object whose file is open), so what
/// each reserves up front counts. By default, in this build, every connection reserves
/// 48 KiB of lookaside memory for small allocations and allocates 20 pages of page cache in
/// one block on its first read, while an object's database is often a few pages. With no
/// block and a small lookaside (100 slots of 128 bytes), a loaded object with a one-table
/// database takes 85 KiB instead of 192 (2,000 objects, RSS, this project's VM); with no
/// lookaside at all, 73 KiB, but a turn of 10,000 INSERTs ran ~10% slower.
pub fn configure_process() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        use rusqlite::ffi;
        use std::ffi::{c_int, c_void};
        // SAFETY: called before any connection of this process opens (else sqlite3_config
        // returns SQLITE_MISUSE and changes nothing, which is harmless).
        unsafe {
            ffi::sqlite3_config(ffi::SQLITE_CONFIG_LOOKASIDE, 128 as c_int, 100 as c_int);
            ffi::sqlite3_config(ffi::SQLITE_CONFIG_PAGECACHE, std::ptr::null_mut::<c_void>(), 0 as c_int, 0 as c_int);
        }
    });
}

/// An open connection with what watches over user SQL on it.
pub struct Opened {
    pub conn: Connection,
    pub auth: AuthorizerState,
    pub timer: StatementTimer,
}

/// Opens (creating if asked) a database file, or a private in-memory database when `path`
/// is None, with workerd's journal mode, Cloudflare's SQL policy and our time limit installed.
pub fn open(path: Option<&Path>, create: bool, durability: Durability) -> Result<Opened> {
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
            // Our lock, not SQLite's (see file_lock.rs), taken before anything is read but
            // the header SQLite reads at open.
            let conn = Connection::open_with_flags_and_vfs(path, flags, file_lock::VFS)?;
            file_lock::lock(&conn, path).map_err(|failure| match failure {
                LockFailure::Held => locked_by_another_process(path),
                LockFailure::Other(e) => e,
            })?;
            return configure(conn, durability).map_err(StorageError::from);
        }
    };
    configure(conn, durability).map_err(StorageError::from)
}

/// Another process holds the file (our own processes are kept apart by the folder lock, so
/// this is another program: wrangler dev, or a SQLite shell).
fn locked_by_another_process(path: &Path) -> StorageError {
    StorageError::error(format!(
        "The Durable Object database {} is locked by another process \
         (wrangler dev, or another program using the file); stop it and try again.",
        path.display()
    ))
}

fn configure(mut conn: Connection, durability: Durability) -> rusqlite::Result<Opened> {
    // Never wait for a lock: the thread that waits is the JavaScript thread, and the
    // holder is another process that will not let go soon (see locked_by_another_process).
    conn.busy_timeout(std::time::Duration::ZERO)?;
    // One process owns an object at a time (file_lock.rs keeps others out); exclusive
    // locking mode lets WAL run without a -shm file, which the lockless VFS could not
    // share anyway, so each open object costs two file descriptors. It must precede the
    // switch to WAL.
    conn.pragma_update(None, "locking_mode", "EXCLUSIVE")?;
    // WAL is workerd's journal mode. On a new file the switch writes its first page through
    // a rollback journal and, at synchronous=FULL (set here rather than left to the build's
    // default), fsyncs it and the folder: durability.rs relies on that. synchronous=NORMAL
    // then makes a commit survive a killed process; durability against power loss comes from our own fsync of the WAL before
    // anything that depends on the commit is released (see `durability`), which we do off
    // the JavaScript thread instead of inside COMMIT.
    conn.pragma_update(None, "synchronous", "FULL")?;
    let _: String = conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    if durability == Durability::Full {
        // Where every commit is fsynced, keep the WAL small so that it is reused soon. An
        // fsync that must also persist the file's growth makes the filesystem commit its
        // journal, and costs nearly twice one that overwrites blocks the WAL already has
        // (ext4 on this project's VM: 300 µs against 170 µs). With SQLite's default of 1,000
        // pages every object pays that for its first 1,000 commits after each open; with 100
        // for its first 100, and the checkpoints this adds (one per 100 pages, two fsyncs
        // and the pages it copies) cost far less than they save. Without per-commit fsyncs
        // the growth costs nothing, so "relaxed" keeps SQLite's default and its fewer
        // checkpoints.
        conn.pragma_update(None, "wal_autocheckpoint", FULL_DURABILITY_WAL_PAGES)?;
    }
    conn.set_prepared_statement_cache_capacity(32);
    sql_limits::apply(&conn)?;
    let auth = AuthorizerState::default();
    authorizer::install(&conn, auth.clone())?;
    let timer = StatementTimer::install(&mut conn)?;
    Ok(Opened { conn, auth, timer })
}
