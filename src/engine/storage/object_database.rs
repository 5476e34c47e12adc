//! One object's database: the implicit per-turn transaction, savepoints, the KV table and
//! the SQL API's statements and cursors.
//!
//! An `ObjectDatabase` outlives its open file: the `ObjectStore` may close the file to stay
//! under the descriptor limit and reopen it on the next call, so everything that must
//! survive that (the texts of prepared statements, unsynced state) lives here, and
//! everything tied to the SQLite connection lives in `OpenDatabase`.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::{Connection, ToSql};
use slab::Slab;

use super::alarm_metadata;
use super::commit_watermark::{CommitWatermark, SyncStart};
use super::local_bookmark;
use super::authorizer::{self, AuthorizerState, Denial, TRANSACTION_STATEMENT_MESSAGE};
use super::durability::{Durability, NewFiles, SyncTarget};
use super::group_sync::Ticket;
use super::error::{Result, StorageError};
use super::key_range::KeyRange;
use super::kv_table::KvTable;
use super::location::wal_path;
use super::raw_statement::{RawStatement, SqlParam, SqlValue, Step};
use super::sql_text::{self, MULTI_STATEMENT_PARAMETERS_MESSAGE, NO_STATEMENT_MESSAGE, WRONG_PARAMETER_COUNT_MESSAGE};
use super::connection;
use super::statement_timer::{timeout_message, StatementTimer};


/// Cursor ids are never reused, so a stale id held by JavaScript (after deleteAll or a
/// rollback ended its cursor) cannot reach a newer cursor.
static NEXT_CURSOR: AtomicU32 = AtomicU32::new(1);

/// Receives the rows of a SQL cursor.
pub trait RowSink {
    fn row(&mut self, values: &mut dyn Iterator<Item = SqlValue<'_>>);
    /// True once the sink holds as much as it wants for this call.
    fn full(&self) -> bool;
}

/// What `exec` did: the cursor to read further rows from (None when the statement
/// finished), plus Cloudflare's counters.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct CursorState {
    pub cursor: Option<u32>,
    pub rows_read: u64,
    pub rows_written: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommitOutcome {
    /// No transaction was open.
    Nothing,
    /// Commit number n, as durable as the object's durability asks.
    Durable(u64),
    /// Commit number n; outputs that depend on it wait for a sync (`take_sync_target()`).
    NeedsSync(u64),
}

/// A turn whose writes SQLite rolled back when the time limit interrupted one of them.
const LOST_TURN_MESSAGE: &str = "A SQL statement was interrupted by the time limit and SQLite rolled back this turn's transaction with it, \
     so the Durable Object was reset: what the turn wrote before the statement is undone; earlier turns are intact.";

/// A cursor whose file was closed to stay under the descriptor budget (see `close_for_now`).
const CUT_CURSOR_MESSAGE: &str = "This SQL cursor was closed before its end: too many Durable Object database files were open \
     (each object keeps its file while one of its cursors is unread), so its file was closed. Read cursors to their end, \
     or raise the process's file-descriptor limit (ulimit -n).";

pub struct ObjectDatabase {
    path: Option<PathBuf>,
    durability: Durability,
    /// How long one call may run user SQL before it is interrupted (statement_timer.rs).
    sql_time_limit: Duration,
    /// Pragmas user SQL set on connections closed since (see `connection_settings`),
    /// given to the next one.
    connection_settings: Vec<(String, String)>,
    /// SQLite rolled back the turn's transaction under us (see `limited`): its commit fails.
    lost_turn: bool,
    /// Cursors that were open when the file was closed to make room: reading on fails.
    cut_cursors: HashSet<u32>,
    /// Texts of prepared single statements, by statement id - 1.
    sql_texts: Slab<String>,
    pub(super) db: Option<OpenDatabase>,
    /// Known not to exist on disk: reads answer "nothing" without touching the file system.
    pub(super) known_missing: bool,
    /// Commit numbers and how far they are durable (shared with the sync that runs).
    watermark: Arc<Mutex<CommitWatermark>>,
    /// The file was created since the last sync.
    new_file: bool,
    /// The alarm index got a row for this object since the last sync: sync it too.
    alarm_index: Option<Ticket>,
    /// The folders that name the file, when it was created since the last sync.
    new_file_directories: Vec<Ticket>,
}

pub struct OpenDatabase {
    // Declared before `conn`: statements are finalized before the connection closes.
    cursors: HashMap<u32, Cursor>,
    prepared: Vec<Option<Prepared>>,
    /// None while `_cf_KV` does not exist (nothing was ever put).
    kv: Option<KvTable>,
    /// BEGIN and COMMIT run once per turn; prepared once, they skip the SQL parser.
    begin: RawStatement,
    commit: RawStatement,
    conn: Connection,
    auth: AuthorizerState,
    timer: StatementTimer,
    in_txn: bool,
    savepoints: u32,
}

// SAFETY: SQLite is built thread-safe and the connection opened with SQLITE_OPEN_NO_MUTEX
// ("multi-thread" mode): a connection and its statements may be used from any thread, one
// thread at a time. An OpenDatabase is owned by one thread at a time and moved whole (to
// the closer, see closer.rs), never shared.
unsafe impl Send for OpenDatabase {}

struct Prepared {
    stmt: RawStatement,
    /// A cursor is still reading from it; a new exec of the same text gets its own copy.
    busy: bool,
}

enum CursorStatement {
    Cached(usize),
    Owned(RawStatement),
}

struct Cursor {
    stmt: CursorStatement,
    rows_returned: u64,
    rows_written: u64,
    changes_before: i64,
}

impl ObjectDatabase {
    pub fn new(path: Option<PathBuf>, durability: Durability, sql_time_limit: Duration) -> Self {
        ObjectDatabase {
            path,
            durability,
            sql_time_limit,
            connection_settings: Vec::new(),
            lost_turn: false,
            cut_cursors: HashSet::new(),
            sql_texts: Slab::new(),
            db: None,
            known_missing: false,
            watermark: Arc::default(),
            new_file: false,
            alarm_index: None,
            new_file_directories: Vec::new(),
        }
    }

    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    pub fn is_open(&self) -> bool {
        self.db.is_some()
    }

    /// True while closing the file would lose or split work in progress: an open turn or
    /// savepoint. Commits waiting for their fsync do not hold the file: the sync opens the
    /// WAL by its name (durability.rs).
    pub fn is_busy(&self) -> bool {
        self.db.as_ref().is_some_and(|db| db.in_txn || db.savepoints > 0)
    }

    fn watermark(&self) -> MutexGuard<'_, CommitWatermark> {
        self.watermark.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Commits made so far and how many of them are durable.
    pub fn commit_position(&self) -> (u64, u64) {
        self.watermark().position()
    }

    /// A cursor is still reading: closing the file would end it (see `close_for_now`), so
    /// files without one are closed first.
    pub fn has_cursors(&self) -> bool {
        self.db.as_ref().is_some_and(|db| !db.cursors.is_empty())
    }

    /// Opens the file (creating it when `create`); false when it does not exist and
    /// `create` is false.
    pub(super) fn open(&mut self, create: bool) -> Result<bool> {
        if self.db.is_some() {
            return Ok(true);
        }
        let existed = match &self.path {
            None => true,
            Some(p) => p.exists(),
        };
        if !existed && !create {
            self.known_missing = true;
            return Ok(false);
        }
        let connection::Opened { conn, auth, timer } = connection::open(self.path.as_deref(), create, self.durability)?;
        // SAFETY: the statements are finalized before the connection closes (field order).
        let raw = unsafe { conn.handle() };
        // SAFETY: `raw` is the open connection `db` owns; statements are finalized first.
        let transaction = |sql| unsafe { RawStatement::prepare(raw, sql, true) }.map(|(s, _)| s.expect("one statement"));
        auth.set_internal(true);
        let statements = transaction("BEGIN").and_then(|begin| Ok((begin, transaction("COMMIT")?)));
        auth.set_internal(false);
        let (begin, commit) = statements?;
        let mut db = OpenDatabase {
            cursors: HashMap::new(),
            prepared: Vec::new(),
            kv: None,
            begin,
            commit,
            conn,
            auth,
            timer,
            in_txn: false,
            savepoints: 0,
        };
        db.kv = KvTable::open(&db.conn, &db.auth, false)?;
        for (name, value) in &self.connection_settings {
            // Checked by the authorizer when user SQL set them: an allowed name, a boolean.
            db.internal(|conn| conn.execute_batch(&format!("PRAGMA {name} = {value}")))?;
        }
        self.db = Some(db);
        self.known_missing = false;
        if !existed {
            self.new_file = true;
        }
        Ok(true)
    }

    /// Closes the file to make room for others (the caller checked `is_busy`): quickly,
    /// without SQLite's checkpoint on close (which would copy pages and fsync). The WAL
    /// stays beside the file and the next open reads it back; committed data is where it
    /// was, and a commit still waiting for its fsync gets it all the same (the sync opens
    /// the WAL itself). Cursors still open end here; reading them on fails with an error
    /// that says why, rather than ending as if the rows were all read.
    pub(super) fn close_for_now(&mut self) {
        if let Some(db) = &self.db {
            let _ = db.conn.set_db_config(rusqlite::config::DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, true);
            self.cut_cursors.extend(db.cursors.keys());
            // Pragmas set on this connection: the next one gets them (with those it had).
            for (name, value) in db.auth.connection_settings() {
                self.connection_settings.retain(|(set, _)| *set != name);
                self.connection_settings.push((name, value));
            }
        }
        self.db = None;
    }

    /// Hands over the open connection, to be closed elsewhere (the object is going away).
    pub(super) fn take_open(&mut self) -> Option<OpenDatabase> {
        self.db.take()
    }

    /// Ends every cursor (the instance that opened them was reset).
    pub fn end_cursors(&mut self) {
        self.cut_cursors.clear();
        if let Some(db) = self.db.as_mut() {
            db.end_cursors();
        }
    }

    /// True when `cursor` ended because its file was closed to make room (and forgets it).
    pub(super) fn take_cut_cursor(&mut self, cursor: u32) -> bool {
        self.cut_cursors.remove(&cursor)
    }

    fn db(&mut self) -> &mut OpenDatabase {
        self.db.as_mut().expect("the ObjectStore opens the database before using it")
    }

    // ---- KV -------------------------------------------------------------------------

    pub fn kv_get(&mut self, key: &[u8], out: &mut Vec<u8>) -> Result<bool> {
        match &mut self.db().kv {
            None => Ok(false),
            Some(kv) => kv.get(key, out),
        }
    }

    pub fn kv_put(&mut self, key: &[u8], value: &[u8]) -> Result<()> {
        let db = self.db();
        db.begin_implicit()?;
        if db.kv.is_none() {
            db.kv = KvTable::open(&db.conn, &db.auth, true)?;
        }
        db.kv.as_mut().expect("created").put(key, value)
    }

    pub fn kv_delete(&mut self, key: &[u8]) -> Result<bool> {
        let db = self.db();
        if db.kv.is_none() {
            return Ok(false);
        }
        db.begin_implicit()?;
        db.kv.as_mut().expect("exists").delete(key)
    }

    /// Lists a range, calling `entry(key, value)` in order; returns how many were listed.
    pub fn kv_list(&mut self, range: &KeyRange, mut entry: impl FnMut(&[u8], &[u8])) -> Result<u64> {
        let db = self.db();
        if db.kv.is_none() {
            return Ok(0);
        }
        let mut sql = String::from("SELECT key, value FROM _cf_KV WHERE 1");
        let mut params: Vec<ToSqlOutput<'_>> = Vec::with_capacity(3);
        if let Some((start, inclusive)) = &range.lower {
            sql.push_str(if *inclusive { " AND key >= ?" } else { " AND key > ?" });
            params.push(ToSqlOutput::Borrowed(ValueRef::Text(start)));
        }
        if let Some(end) = &range.upper {
            sql.push_str(" AND key < ?");
            params.push(ToSqlOutput::Borrowed(ValueRef::Text(end)));
        }
        sql.push_str(if range.reverse { " ORDER BY key DESC LIMIT ?" } else { " ORDER BY key LIMIT ?" });
        let limit = range.limit.map_or(-1, |l| l.min(i64::MAX as u64) as i64);
        params.push(ToSqlOutput::from(limit));
        db.internal(|conn| {
            let mut stmt = conn.prepare_cached(&sql)?;
            let refs: Vec<&dyn ToSql> = params.iter().map(|p| p as &dyn ToSql).collect();
            let mut rows = stmt.query(refs.as_slice())?;
            let mut n = 0;
            while let Some(row) = rows.next()? {
                let key = row.get_ref(0)?.as_bytes().unwrap_or_default();
                let value = match row.get_ref(1)? {
                    ValueRef::Blob(b) | ValueRef::Text(b) => b,
                    _ => &[],
                };
                entry(key, value);
                n += 1;
            }
            Ok(n)
        })
    }

    // ---- alarm ----------------------------------------------------------------------

    /// The alarm time (ms since the epoch), if one is set.
    pub fn alarm(&mut self) -> Result<Option<i64>> {
        self.db().internal(alarm_metadata::get)
    }

    /// The next sync of this object also waits for `index` (a row about it was written there).
    pub fn sync_alarm_index_with_commit(&mut self, index: Ticket) {
        self.alarm_index = Some(index);
    }

    /// True once after open() created the file: the caller hands in the folders' tickets.
    pub(super) fn created_file(&self) -> bool {
        self.new_file && self.new_file_directories.is_empty()
    }

    pub(super) fn set_new_file_directories(&mut self, tickets: Vec<Ticket>) {
        self.new_file_directories = tickets;
    }

    /// Sets or clears the alarm, as a write of the current turn.
    pub fn set_alarm(&mut self, millis: Option<i64>) -> Result<()> {
        let db = self.db();
        db.begin_implicit()?;
        db.internal(|conn| alarm_metadata::set(conn, millis))
    }

    /// Advances the object's local bookmark (see local_bookmark), as a write of its turn.
    pub fn next_local_bookmark(&mut self) -> Result<i64> {
        let db = self.db();
        db.begin_implicit()?;
        db.internal(local_bookmark::next)
    }

    /// `deleteAll()` on a SQLite-backed object: every KV entry and every SQL table, view,
    /// index and trigger, and the alarm, atomically with the rest of the turn.
    pub fn delete_all(&mut self) -> Result<()> {
        let db = self.db();
        // Open cursors would make DROP fail with "database table is locked"; Cloudflare's
        // deleteAll wipes the database under them, so they end here.
        db.end_cursors();
        db.begin_implicit()?;
        db.internal(|conn| {
            // Dropping a parent table before its children must not trip foreign keys;
            // deferred checks run at commit, when nothing is left to check.
            conn.execute_batch("PRAGMA defer_foreign_keys = ON")?;
            let mut objects: Vec<(String, String, bool)> = conn
                .prepare(
                    "SELECT type, name, coalesce(sql, '') LIKE 'CREATE VIRTUAL%' FROM sqlite_master \
                     WHERE type IN ('table', 'view') AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' \
                     AND name NOT LIKE '\\_cf\\_%' ESCAPE '\\'",
                )?
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
                .collect::<rusqlite::Result<_>>()?;
            // Views first, then virtual tables (which drop their own shadow tables).
            objects.sort_by_key(|(kind, _, virt)| (kind != "view", !virt));
            for (kind, name, _) in objects {
                let kind = if kind == "view" { "VIEW" } else { "TABLE" };
                conn.execute_batch(&format!("DROP {kind} IF EXISTS \"{}\"", name.replace('"', "\"\"")))?;
            }
            if conn.query_row("SELECT count(*) FROM sqlite_master WHERE name = '_cf_KV'", [], |r| r.get::<_, i64>(0))? > 0 {
                conn.execute_batch("DELETE FROM _cf_KV")?;
            }
            // Since compatibility date 2026-02-24, deleteAll() deletes the alarm too.
            if alarm_metadata::get(conn)?.is_some() {
                alarm_metadata::set(conn, None)?;
            }
            Ok(())
        })
    }

    // ---- SQL ------------------------------------------------------------------------

    /// Prepares `query` for repeated execution. Returns its statement id, or None when the
    /// query holds several statements (those run through `sql_exec_text` every time,
    /// because a later statement may depend on what an earlier one creates).
    pub fn sql_prepare(&mut self, query: &str) -> Result<Option<u32>> {
        let db = self.db();
        let (stmt, consumed) = db.prepare_user(query)?;
        let Some(stmt) = stmt else { return Err(StorageError::error(NO_STATEMENT_MESSAGE)) };
        if !sql_text::is_query_end(&query[consumed..]) {
            return Ok(None);
        }
        let id = self.sql_texts.insert(query.to_owned());
        let db = self.db.as_mut().expect("open");
        if db.prepared.len() <= id {
            db.prepared.resize_with(id + 1, || None);
        }
        db.prepared[id] = Some(Prepared { stmt, busy: false });
        Ok(Some(id as u32 + 1))
    }

    /// Drops a statement the caller no longer caches.
    pub fn sql_forget(&mut self, stmt_id: u32) {
        let idx = stmt_id as usize - 1;
        if self.sql_texts.try_remove(idx).is_none() {
            return;
        }
        let Some(db) = self.db.as_mut() else { return };
        let Some(prepared) = db.prepared.get_mut(idx).and_then(Option::take) else { return };
        // A cursor still reading it takes it over, so the id can be reused at once.
        if let Some(c) = db.cursors.values_mut().find(|c| matches!(c.stmt, CursorStatement::Cached(i) if i == idx)) {
            c.stmt = CursorStatement::Owned(prepared.stmt);
        }
    }

    pub fn sql_column_names(&mut self, stmt_id: u32) -> Result<Vec<String>> {
        let idx = stmt_id as usize - 1;
        self.ensure_prepared(idx)?;
        let p = self.db().prepared[idx].as_ref().expect("prepared");
        Ok((0..p.stmt.column_count()).map(|i| p.stmt.column_name(i)).collect())
    }

    fn ensure_prepared(&mut self, idx: usize) -> Result<()> {
        let text = self.sql_texts.get(idx).ok_or_else(|| StorageError::error("unknown SQL statement"))?;
        let db = self.db.as_mut().expect("open");
        if db.prepared.get(idx).is_some_and(Option::is_some) {
            return Ok(());
        }
        let (stmt, _) = db.prepare_user(text)?;
        if db.prepared.len() <= idx {
            db.prepared.resize_with(idx + 1, || None);
        }
        db.prepared[idx] = stmt.map(|stmt| Prepared { stmt, busy: false });
        Ok(())
    }

    /// Runs a prepared statement up to its first row (Cloudflare runs `exec` eagerly, so
    /// writes happen even if the cursor is never read).
    pub fn sql_exec(&mut self, stmt_id: u32, params: &[SqlParam<'_>], sink: &mut dyn RowSink) -> Result<CursorState> {
        self.limited(|db| db.sql_exec_unlimited(stmt_id, params, sink))
    }

    fn sql_exec_unlimited(&mut self, stmt_id: u32, params: &[SqlParam<'_>], sink: &mut dyn RowSink) -> Result<CursorState> {
        let idx = stmt_id as usize - 1;
        self.ensure_prepared(idx)?;
        let db = self.db.as_mut().expect("open");
        let prepared = db.prepared[idx].as_mut().expect("prepared");
        let stmt = if prepared.busy {
            // Like workerd: re-running a text whose cursor is still open uses a one-off copy.
            CursorStatement::Owned(db.prepare_user(&self.sql_texts[idx])?.0.expect("it prepared before"))
        } else {
            prepared.busy = true;
            CursorStatement::Cached(idx)
        };
        db.start_cursor(stmt, params, sink)
    }

    /// Runs a query of one or more statements: all but the last run to completion with
    /// their rows discarded; the cursor reads the last. As in workerd, a statement is the
    /// last only when nothing but whitespace follows it.
    pub fn sql_exec_text(&mut self, query: &str, params: &[SqlParam<'_>], sink: &mut dyn RowSink) -> Result<(CursorState, Vec<String>)> {
        self.limited(|db| db.sql_exec_text_unlimited(query, params, sink))
    }

    fn sql_exec_text_unlimited(&mut self, query: &str, params: &[SqlParam<'_>], sink: &mut dyn RowSink) -> Result<(CursorState, Vec<String>)> {
        let db = self.db();
        let mut rest = query;
        loop {
            let (stmt, consumed) = db.prepare_user(rest)?;
            let Some(mut stmt) = stmt else { return Err(StorageError::error(NO_STATEMENT_MESSAGE)) };
            let tail = &rest[consumed..];
            if sql_text::is_query_end(tail) {
                let columns = (0..stmt.column_count()).map(|i| stmt.column_name(i)).collect();
                let state = db.start_cursor(CursorStatement::Owned(stmt), params, sink)?;
                return Ok((state, columns));
            }
            if stmt.parameter_count() > 0 {
                return Err(StorageError::error(MULTI_STATEMENT_PARAMETERS_MESSAGE));
            }
            if !stmt.is_readonly() {
                db.begin_implicit()?;
            }
            while let Step::Row = stmt.step()? {}
            rest = tail;
        }
    }

    /// Like `sql_exec_text`, but only when every statement of `query` just reads; returns
    /// None, having changed nothing, at the first statement that would write. Used on an
    /// empty database to answer reads of an object that has no file yet without creating
    /// one, under that object's time limit. The cursor reads lazily, as any other does.
    pub fn sql_exec_text_if_readonly(
        &mut self,
        query: &str,
        params: &[SqlParam<'_>],
        sink: &mut dyn RowSink,
        sql_time_limit: Duration,
    ) -> Result<Option<(CursorState, Vec<String>)>> {
        self.sql_time_limit = sql_time_limit;
        self.limited(|db| db.sql_exec_text_if_readonly_unlimited(query, params, sink))
    }

    fn sql_exec_text_if_readonly_unlimited(
        &mut self,
        query: &str,
        params: &[SqlParam<'_>],
        sink: &mut dyn RowSink,
    ) -> Result<Option<(CursorState, Vec<String>)>> {
        let db = self.db();
        let mut rest = query;
        db.auth.refuse_connection_settings();
        db.auth.take_sets_connection();
        loop {
            // A pragma that sets the connection's behaviour is the object's own business: it
            // is refused here (SQLite would apply it while preparing) and runs on the object's
            // file, which it creates, not on the database all objects share.
            let prepared = db.prepare_user(rest);
            if db.auth.take_sets_connection() {
                return Ok(None);
            }
            let (stmt, consumed) = prepared?;
            let Some(mut stmt) = stmt else { return Err(StorageError::error(NO_STATEMENT_MESSAGE)) };
            if !stmt.is_readonly() {
                return Ok(None);
            }
            let tail = &rest[consumed..];
            if sql_text::is_query_end(tail) {
                let columns = (0..stmt.column_count()).map(|i| stmt.column_name(i)).collect();
                let state = db.start_cursor(CursorStatement::Owned(stmt), params, sink)?;
                return Ok(Some((state, columns)));
            }
            if stmt.parameter_count() > 0 {
                return Err(StorageError::error(MULTI_STATEMENT_PARAMETERS_MESSAGE));
            }
            while let Step::Row = stmt.step()? {}
            rest = tail;
        }
    }

    /// Reads up to the sink's capacity of further rows.
    pub fn sql_next(&mut self, cursor: u32, sink: &mut dyn RowSink) -> Result<CursorState> {
        if self.take_cut_cursor(cursor) {
            return Err(StorageError::error(CUT_CURSOR_MESSAGE));
        }
        self.limited(|db| db.db().continue_cursor(cursor, sink))
    }

    /// `sql_next` under the limit of the object the cursor belongs to (the empty database
    /// serves cursors of many objects).
    pub fn sql_next_with_limit(&mut self, cursor: u32, sink: &mut dyn RowSink, sql_time_limit: Duration) -> Result<CursorState> {
        self.sql_time_limit = sql_time_limit;
        self.sql_next(cursor, sink)
    }

    pub fn sql_time_limit(&self) -> Duration {
        self.sql_time_limit
    }

    /// Runs one call's user SQL under the time limit. A statement the limit interrupted
    /// fails with an error that says so; if SQLite rolled back the turn's transaction with
    /// it (it does whenever a write is interrupted, statement journal or not), the turn's
    /// earlier writes are gone, so its commit must fail and reset the object rather than
    /// release outputs that depended on them. "Earlier writes" is judged by whether the
    /// transaction was open before the call, which errs on the side of a reset.
    fn limited<T>(&mut self, run: impl FnOnce(&mut Self) -> Result<T>) -> Result<T> {
        let limit = self.sql_time_limit;
        let db = self.db();
        let timer = db.timer.clone();
        // Writes made before this call (a transaction already open) are what a rollback
        // would take from the turn; a transaction this call opened held only its own.
        let earlier_writes = db.in_txn;
        let result = {
            let _armed = timer.arm(limit);
            run(self)
        };
        if result.is_ok() || !timer.fired() {
            return result;
        }
        let db = self.db();
        if db.in_txn && db.conn.is_autocommit() {
            db.end_cursors();
            db.in_txn = false;
            db.savepoints = 0;
            if db.reload_kv_table().is_err() {
                db.kv = None;
            }
            self.lost_turn |= earlier_writes;
        }
        Err(StorageError::error(timeout_message(limit)))
    }

    /// Abandons a cursor before its end.
    pub fn sql_close_cursor(&mut self, cursor: u32) {
        self.cut_cursors.remove(&cursor);
        if let Some(db) = self.db.as_mut() {
            db.finish_cursor(cursor);
        }
    }

    /// Bytes in use: (page_count - freelist_count) * page_size.
    pub fn database_size(&mut self) -> Result<u64> {
        let Some(db) = self.db.as_mut() else { return Ok(0) };
        db.internal(|conn| {
            conn.query_row(
                "SELECT (SELECT page_count FROM pragma_page_count()) - (SELECT freelist_count FROM pragma_freelist_count()), \
                 (SELECT page_size FROM pragma_page_size())",
                [],
                |r| Ok(r.get::<_, i64>(0)?.max(0) as u64 * r.get::<_, i64>(1)? as u64),
            )
        })
    }

    // ---- transactions ---------------------------------------------------------------

    /// Opens a savepoint (`transactionSync`, `transaction`) inside the turn's transaction;
    /// returns the new depth.
    pub fn savepoint_begin(&mut self) -> Result<u32> {
        let db = self.db();
        db.begin_implicit()?;
        let name = format!("_cf_sync_savepoint_{}", db.savepoints);
        db.internal(|conn| conn.execute_batch(&format!("SAVEPOINT {name}")))?;
        db.savepoints += 1;
        Ok(db.savepoints)
    }

    /// Closes the innermost savepoint, keeping (`commit`) or undoing its writes.
    pub fn savepoint_end(&mut self, commit: bool) -> Result<()> {
        if self.lost_turn {
            // SQLite rolled back the savepoints with the turn (see `limited`); the commit
            // will fail. Closing them must not replace the time-limit error the caller sees.
            return Ok(());
        }
        let db = self.db();
        if db.savepoints == 0 {
            return Err(StorageError::error("no transaction is open"));
        }
        db.savepoints -= 1;
        let name = format!("_cf_sync_savepoint_{}", db.savepoints);
        let sql = if commit { format!("RELEASE {name}") } else { format!("ROLLBACK TO {name}; RELEASE {name}") };
        db.internal(|conn| conn.execute_batch(&sql))?;
        if !commit {
            db.reload_kv_table()?;
        }
        Ok(())
    }

    /// Commits the turn's implicit transaction: whether it wrote, and its number if so.
    pub fn commit(&mut self) -> Result<CommitOutcome> {
        let durability = self.durability;
        let on_disk = self.path.is_some();
        if std::mem::take(&mut self.lost_turn) {
            self.rollback();
            return Err(StorageError::error(LOST_TURN_MESSAGE));
        }
        let Some(db) = self.db.as_mut() else { return Ok(CommitOutcome::Nothing) };
        if !db.in_txn || db.savepoints > 0 {
            return Ok(CommitOutcome::Nothing);
        }
        if let Err(e) = db.step_internal(|db| &mut db.commit) {
            db.rollback_all();
            return Err(e);
        }
        db.in_txn = false;
        let needs_sync = durability == Durability::Full && on_disk;
        let number = self.watermark().committed(!needs_sync);
        Ok(if needs_sync { CommitOutcome::NeedsSync(number) } else { CommitOutcome::Durable(number) })
    }

    /// Throws away the turn's uncommitted writes (the object is being reset).
    pub fn rollback(&mut self) {
        self.lost_turn = false;
        if let Some(db) = self.db.as_mut() {
            db.rollback_all();
        }
    }

    /// Starts a sync of every commit so far: what to fsync, unless every commit is durable
    /// already or a sync runs (see [`SyncStart`]).
    pub fn take_sync_target(&mut self) -> Result<(SyncStart, Option<SyncTarget>)> {
        let taken_before = self.watermark().taken();
        let start = self.watermark().start_sync()?;
        if start != SyncStart::Started {
            return Ok((start, None));
        }
        Ok((start, Some(self.sync_target(taken_before))))
    }

    fn sync_target(&mut self, taken_before: u64) -> SyncTarget {
        let path = self.path.as_ref().expect("only files need syncs");
        let directories = std::mem::take(&mut self.new_file_directories);
        let new_files = std::mem::take(&mut self.new_file).then(|| NewFiles { directories });
        SyncTarget { watermark: self.watermark.clone(), wal: Some(wal_path(path)), taken_before, new_files, alarm_index: self.alarm_index.take() }
    }
}

impl OpenDatabase {
    /// Runs our own statements with the SQL policy switched off (see AuthorizerState).
    fn internal<T>(&self, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> Result<T> {
        self.auth.set_internal(true);
        let result = f(&self.conn);
        self.auth.set_internal(false);
        result.map_err(StorageError::from)
    }

    /// After a rollback the KV table may be gone (if the rolled-back writes created it).
    fn reload_kv_table(&mut self) -> Result<()> {
        self.kv = None;
        self.kv = KvTable::open(&self.conn, &self.auth, false)?;
        Ok(())
    }

    /// Runs one of our prepared statements that returns no rows.
    fn step_internal(&mut self, stmt: impl FnOnce(&mut Self) -> &mut RawStatement) -> Result<()> {
        self.auth.set_internal(true);
        let auth = self.auth.clone();
        let stmt = stmt(self);
        let result = stmt.step().map(drop);
        stmt.rewind();
        auth.set_internal(false);
        result
    }

    /// Every write of a turn joins one transaction, committed when the turn ends.
    fn begin_implicit(&mut self) -> Result<()> {
        if !self.in_txn {
            self.step_internal(|db| &mut db.begin)?;
            self.in_txn = true;
        }
        Ok(())
    }

    /// Ends every open cursor and readies every prepared statement for its next run.
    fn end_cursors(&mut self) {
        self.cursors.clear();
        for p in self.prepared.iter_mut().flatten() {
            p.stmt.reset();
            p.busy = false;
        }
    }

    fn rollback_all(&mut self) {
        self.end_cursors();
        if !self.conn.is_autocommit() {
            let _ = self.internal(|conn| conn.execute_batch("ROLLBACK"));
        }
        self.in_txn = false;
        self.savepoints = 0;
        if self.reload_kv_table().is_err() {
            self.kv = None;
        }
    }

    /// Prepares user SQL under the policy, turning a denied transaction statement into
    /// Cloudflare's explanation.
    fn prepare_user(&self, sql: &str) -> Result<(Option<RawStatement>, usize)> {
        // SAFETY: the handle is valid while `self.conn` lives; the statement is owned by
        // `self` (or a cursor of `self`) and finalized before the connection closes.
        let raw = unsafe { self.conn.handle() };
        let (stmt, consumed) = unsafe { RawStatement::prepare(raw, sql, true) }.map_err(|e| match self.auth.take_denial() {
            Some(Denial::TransactionStatement) => StorageError::error(TRANSACTION_STATEMENT_MESSAGE),
            _ => e,
        })?;
        // The authorizer is not told the new name of a RENAME; check it from the text.
        authorizer::check_rename(&sql[..consumed])?;
        Ok((stmt, consumed))
    }

    fn start_cursor(&mut self, stmt: CursorStatement, params: &[SqlParam<'_>], sink: &mut dyn RowSink) -> Result<CursorState> {
        let mut cursor = Cursor { stmt, rows_returned: 0, rows_written: 0, changes_before: self.conn.total_changes() as i64 };
        let writes = match self.bind(&mut cursor, params) {
            Ok(writes) => writes,
            Err(e) => {
                self.release(cursor);
                return Err(e);
            }
        };
        // Cloudflare steps to the first row inside exec(); the rest come lazily. A statement
        // that writes runs to its end here (its RETURNING rows are buffered), so the turn's
        // COMMIT never meets an unfinished write.
        self.step(None, cursor, sink, if writes { StepMode::All } else { StepMode::First })
    }

    /// Binds the parameters; returns whether the statement writes (and then opens the turn's
    /// transaction).
    fn bind(&mut self, cursor: &mut Cursor, params: &[SqlParam<'_>]) -> Result<bool> {
        let stmt = statement_of(&mut self.prepared, cursor);
        if stmt.parameter_count() != params.len() {
            return Err(StorageError::error(WRONG_PARAMETER_COUNT_MESSAGE));
        }
        stmt.bind_all(params)?;
        let writes = !stmt.is_readonly();
        if writes {
            self.begin_implicit()?;
        }
        Ok(writes)
    }

    fn continue_cursor(&mut self, id: u32, sink: &mut dyn RowSink) -> Result<CursorState> {
        match self.cursors.remove(&id) {
            // Finished, or closed by deleteAll()/a rollback: nothing more to read.
            None => Ok(CursorState::default()),
            Some(cursor) => self.step(Some(id), cursor, sink, StepMode::Batch),
        }
    }

    /// Steps a cursor; keeps it (under `id`, or a new id) only while rows remain.
    fn step(&mut self, id: Option<u32>, mut cursor: Cursor, sink: &mut dyn RowSink, mode: StepMode) -> Result<CursorState> {
        let stmt = statement_of(&mut self.prepared, &mut cursor);
        let stepped = step_rows(stmt, sink, mode);
        let fullscan = stmt.fullscan_steps();
        cursor.rows_returned += stepped.as_ref().map_or(0, |(n, _)| *n);
        cursor.rows_written = (self.conn.total_changes() as i64 - cursor.changes_before).max(0) as u64;
        // Cloudflare counts rows read from tables with a patched SQLite. Stock SQLite counts
        // the advances of full scans (n - 1 for n rows), so a scan read that many plus one;
        // rows found through an index are at least the rows returned.
        let scanned = if fullscan > 0 { fullscan + 1 } else { 0 };
        let mut state = CursorState {
            cursor: None,
            rows_read: cursor.rows_returned.max(scanned),
            rows_written: cursor.rows_written,
        };
        match stepped {
            Err(e) => {
                self.release(cursor);
                Err(e)
            }
            Ok((_, true)) => {
                self.release(cursor);
                Ok(state)
            }
            Ok((_, false)) => {
                let id = id.unwrap_or_else(|| NEXT_CURSOR.fetch_add(1, Ordering::Relaxed));
                self.cursors.insert(id, cursor);
                state.cursor = Some(id);
                Ok(state)
            }
        }
    }

    fn finish_cursor(&mut self, id: u32) {
        if let Some(cursor) = self.cursors.remove(&id) {
            self.release(cursor);
        }
    }

    /// Returns a cursor's statement: a cached one is reset for its next use.
    fn release(&mut self, cursor: Cursor) {
        if let CursorStatement::Cached(idx) = cursor.stmt {
            if let Some(p) = self.prepared.get_mut(idx).and_then(Option::as_mut) {
                p.stmt.reset();
                p.busy = false;
            }
        }
    }
}

fn statement_of<'a>(prepared: &'a mut [Option<Prepared>], cursor: &'a mut Cursor) -> &'a mut RawStatement {
    match &mut cursor.stmt {
        CursorStatement::Cached(idx) => &mut prepared[*idx].as_mut().expect("prepared").stmt,
        CursorStatement::Owned(s) => s,
    }
}

/// Steps `stmt`, handing rows to `sink`; returns how many rows and whether it finished.
fn step_rows(stmt: &mut RawStatement, sink: &mut dyn RowSink, mode: StepMode) -> Result<(u64, bool)> {
    let mut returned = 0;
    loop {
        match stmt.step()? {
            Step::Done => return Ok((returned, true)),
            Step::Row => {
                let n = stmt.column_count();
                sink.row(&mut (0..n).map(|i| stmt.value(i)));
                returned += 1;
                let stop = match mode {
                    StepMode::First => true,
                    StepMode::Batch => sink.full(),
                    StepMode::All => false,
                };
                if stop {
                    return Ok((returned, false));
                }
            }
        }
    }
}

#[derive(Clone, Copy)]
enum StepMode {
    /// Up to the first row.
    First,
    /// As many rows as the sink wants.
    Batch,
    /// To the end.
    All,
}
