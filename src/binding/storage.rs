//! Storage functions for `lib/native.ts`. Each takes the object's handle first.

use std::cell::RefCell;

use napi::bindgen_prelude::Uint8ArraySlice;
use napi::Env;
use napi_derive::napi;

use super::errors::{throw, OrThrow};
use super::output::deliver;
use super::wire::{self, put_bytes, RowWriter};
use crate::engine::storage::{
    CommitOutcome, CursorState, Durability, KeyRange, ListOptions, Location, ObjectStore, StorageError, SyncStart,
};

thread_local! {
    /// Storage is used only from the JavaScript thread that created it.
    static STORE: RefCell<ObjectStore> = RefCell::new(ObjectStore::default());
}

fn with_store<T>(f: impl FnOnce(&mut ObjectStore) -> T) -> T {
    STORE.with_borrow_mut(f)
}

/// Registers an object's storage and returns its handle. Creates nothing on disk.
#[napi]
pub fn storage_open(env: Env, data_dir: String, unique_key: String, id_hex: String, durability: String, sql_time_limit_ms: f64) -> napi::Result<u32> {
    let Some(durability) = Durability::parse(&durability) else {
        return throw(&env, StorageError::type_error(format!("durability must be \"full\" or \"relaxed\", not {durability:?}")));
    };
    let sql_time_limit = std::time::Duration::from_secs_f64(sql_time_limit_ms.clamp(1.0, 1e12) / 1000.0);
    with_store(|s| s.add(&Location::parse(&data_dir), &unique_key, &id_hex, durability, sql_time_limit)).or_throw(&env)
}

/// The object's alarm time in ms since the epoch, or null. Reading a never-written object
/// creates no file.
#[napi]
pub fn alarm_get(env: Env, handle: u32) -> napi::Result<Option<f64>> {
    with_store(|s| match s.database(handle, false)? {
        None => Ok(None),
        Some(db) => db.alarm(),
    })
    .map(|ms| ms.map(|ms| ms as f64))
    .or_throw(&env)
}

/// Sets (a time in ms since the epoch) or clears (null) the alarm, as a write of this turn.
/// `name` is the name the object was addressed by, if any (kept in the alarm index).
#[napi]
pub fn alarm_set(env: Env, handle: u32, millis: Option<f64>, name: Option<String>) -> napi::Result<()> {
    with_store(|s| s.set_alarm(handle, millis.map(|ms| ms as i64), name.as_deref())).or_throw(&env)
}

/// Advances the object's local bookmark (a write of this turn) and returns it.
#[napi]
pub fn local_bookmark_next(env: Env, handle: u32) -> napi::Result<f64> {
    with_store(|s| s.next_local_bookmark(handle)).map(|b| b as f64).or_throw(&env)
}

/// The object was found to have no alarm: its row leaves the namespace's alarm index.
#[napi]
pub fn alarm_forget(env: Env, handle: u32) -> napi::Result<()> {
    with_store(|s| s.forget_alarm(handle)).or_throw(&env)
}

/// An alarm the index knows of: object id (hex), its name if known, time in ms.
#[napi(object)]
pub struct IndexedAlarmEntry {
    pub id: String,
    pub name: Option<String>,
    pub time: f64,
}

/// Closes the namespace's alarm index (its registry closed).
#[napi]
pub fn alarm_index_close(env: Env, data_dir: String, unique_key: String) -> napi::Result<()> {
    with_store(|s| s.close_alarm_index(&Location::parse(&data_dir), &unique_key)).or_throw(&env)
}

/// Every object of the namespace with an alarm, by the namespace's alarm index (which is
/// built from the object files the first time).
#[napi]
pub fn alarm_index_entries(env: Env, data_dir: String, unique_key: String) -> napi::Result<Vec<IndexedAlarmEntry>> {
    with_store(|s| s.indexed_alarms(&Location::parse(&data_dir), &unique_key))
        .map(|entries| entries.into_iter().map(|e| IndexedAlarmEntry { id: e.id_hex, name: e.name, time: e.time_ms as f64 }).collect())
        .or_throw(&env)
}

/// Gives the object a new handle and voids `handle` (the object was reset: its old
/// instance must not reach storage any more).
#[napi]
pub fn storage_rekey(env: Env, handle: u32) -> napi::Result<u32> {
    with_store(|s| s.rekey(handle)).or_throw(&env)
}

/// Throws unless `unique_key` can name a namespace's folder under dataDir.
#[napi]
pub fn check_namespace_key(env: Env, unique_key: String) -> napi::Result<()> {
    crate::engine::storage::location::check_unique_key(&unique_key).or_throw(&env)
}

/// Locks the folder of namespace `unique_key` under `data_dir` for a registry (one process
/// at a time serves it); throws at once, naming the holder, if another one does. Returns the
/// lock's id for `namespace_unlock`, or null for in-memory storage.
#[napi]
pub fn namespace_lock(env: Env, data_dir: String, unique_key: String) -> napi::Result<Option<u32>> {
    with_store(|s| s.lock_namespace(&Location::parse(&data_dir), &unique_key)).or_throw(&env)
}

/// Releases a folder `namespace_lock` took.
#[napi]
pub fn namespace_unlock(lock: u32) {
    with_store(|s| s.unlock_namespace(lock));
}

/// Forgets an object's storage (commit first). Its data stays on disk.
#[napi]
pub fn storage_close(handle: u32) {
    with_store(|s| s.remove(handle));
}

/// How many database files are open right now (bounded by the descriptor budget).
#[napi]
pub fn storage_open_files() -> u32 {
    with_store(|s| s.open_file_count() as u32)
}

/// Closes the files of objects that used no storage for `idleMs` or more (at most twice
/// that; see ObjectStore::close_idle_files). Returns how many it closed.
#[napi]
pub fn storage_close_idle_files(idle_ms: u32) -> u32 {
    with_store(|s| s.close_idle_files(std::time::Duration::from_millis(idle_ms as u64)) as u32)
}

/// How many database files may be open at once (see ObjectStore::max_open_files).
#[napi]
pub fn storage_file_budget() -> u32 {
    with_store(|s| s.max_open_files() as u32)
}

// Keys arrive as UTF-8 in a buffer the caller reuses, with their length: converting a JS
// string through napi costs more than the SQLite lookup it is used for.

/// -1 when the key is absent, else the value's byte length (see output.rs for overflow).
#[napi]
pub fn kv_get(env: Env, handle: u32, key: &[u8], key_len: u32, mut out: Uint8ArraySlice<'_>) -> napi::Result<i32> {
    // SAFETY: JS is blocked in this call, so nothing else touches the buffer.
    let out = unsafe { out.as_mut() };
    let key = prefix(key, key_len);
    let (found, len) = deliver(out, |buf| {
        with_store(|s| match s.database(handle, false)? {
            None => Ok(false),
            Some(db) => db.kv_get(key, buf),
        })
    });
    Ok(if found.or_throw(&env)? { len as i32 } else { -1 })
}

#[napi]
pub fn kv_put(env: Env, handle: u32, key: &[u8], key_len: u32, value: &[u8]) -> napi::Result<()> {
    let key = prefix(key, key_len);
    with_store(|s| s.writable(handle)?.kv_put(key, value)).or_throw(&env)
}

#[napi]
pub fn kv_delete(env: Env, handle: u32, key: &[u8], key_len: u32) -> napi::Result<bool> {
    let key = prefix(key, key_len);
    with_store(|s| match s.database(handle, false)? {
        None => Ok(false),
        Some(db) => db.kv_delete(key),
    })
    .or_throw(&env)
}

/// Looks up several keys (u32-length-prefixed, see wire.rs); writes the entries that exist,
/// sorted by key bytes and without duplicates (Cloudflare's order for `get(keys[])`).
/// Returns the byte length.
#[napi]
pub fn kv_get_many(env: Env, handle: u32, keys: &[u8], keys_len: u32, mut out: Uint8ArraySlice<'_>) -> napi::Result<u32> {
    // SAFETY: JS is blocked in this call, so nothing else touches the buffer.
    let out = unsafe { out.as_mut() };
    let mut keys = wire::decode_strings(prefix(keys, keys_len)).or_else(|e| throw(&env, StorageError::error(e)))?;
    keys.sort_unstable();
    keys.dedup();
    let (result, len) = deliver(out, |buf| {
        with_store(|s| {
            let Some(db) = s.database(handle, false)? else { return Ok(()) };
            let mut value = Vec::new();
            for key in &keys {
                value.clear();
                if db.kv_get(key, &mut value)? {
                    put_bytes(buf, key);
                    put_bytes(buf, &value);
                }
            }
            Ok::<_, StorageError>(())
        })
    });
    result.or_throw(&env)?;
    Ok(len as u32)
}

/// Lists a key range as KV entries; returns the byte length. `options` holds start,
/// startAfter, end and prefix as optional strings (see wire.rs).
#[napi]
pub fn kv_list(
    env: Env,
    handle: u32,
    options: &[u8],
    options_len: u32,
    reverse: bool,
    limit: Option<f64>,
    mut out: Uint8ArraySlice<'_>,
) -> napi::Result<u32> {
    // SAFETY: JS is blocked in this call, so nothing else touches the buffer.
    let out = unsafe { out.as_mut() };
    let [start, start_after, end, prefix_] =
        wire::decode_optional_strings::<4>(prefix(options, options_len)).or_else(|e| throw(&env, StorageError::error(e)))?;
    let options = ListOptions { start, start_after, end, prefix: prefix_, reverse, limit };
    let Some(range) = KeyRange::new(&options).or_throw(&env)? else { return Ok(0) };
    let (result, len) = deliver(out, |buf| {
        with_store(|s| match s.database(handle, false)? {
            None => Ok(0),
            Some(db) => db.kv_list(&range, |k, v| {
                put_bytes(buf, k);
                put_bytes(buf, v);
            }),
        })
    });
    result.or_throw(&env)?;
    Ok(len as u32)
}

/// The first `len` bytes of a buffer the caller reuses.
fn prefix(bytes: &[u8], len: u32) -> &[u8] {
    &bytes[..(len as usize).min(bytes.len())]
}

#[napi]
pub fn delete_all(env: Env, handle: u32) -> napi::Result<()> {
    with_store(|s| match s.database(handle, false)? {
        None => Ok(()),
        Some(db) => db.delete_all(),
    })
    .or_throw(&env)
}

/// A statement id for a single-statement query, 0 when the query holds several, or
/// u32::MAX when the object has no file yet (run it with `sqlExecText`, uncached: reads
/// must not create the file).
#[napi]
pub fn sql_prepare(env: Env, handle: u32, query: String) -> napi::Result<u32> {
    with_store(|s| match s.database(handle, false)? {
        None => Ok(u32::MAX),
        Some(db) => db.sql_prepare(&query).map(|id| id.unwrap_or(0)),
    })
    .or_throw(&env)
}

#[napi]
pub fn sql_forget(handle: u32, stmt_id: u32) {
    with_store(|s| {
        if let Ok(db) = s.writable(handle) {
            db.sql_forget(stmt_id)
        }
    });
}

#[napi]
pub fn sql_columns(env: Env, handle: u32, stmt_id: u32) -> napi::Result<Vec<String>> {
    with_store(|s| s.writable(handle)?.sql_column_names(stmt_id)).or_throw(&env)
}

/// Layout of a SQL result in `out`: a header of u32 cursor id (0 = finished), u32 rows in
/// this batch, f64 rowsRead, f64 rowsWritten, u32 column count (u32::MAX: the statement's
/// own, which the caller has cached); then the rows; then, when the count is given, the
/// column names.
const HEADER: usize = 28;

fn sql_result(
    out: &mut [u8],
    run: impl FnOnce(&mut RowWriter<'_>) -> Result<(CursorState, Option<Vec<String>>), StorageError>,
) -> (Result<(), StorageError>, usize) {
    let soft_limit = out.len().max(1024);
    deliver(out, |buf| {
        buf.resize(HEADER, 0);
        let mut writer = RowWriter { out: buf, rows: 0, soft_limit };
        let (state, columns) = run(&mut writer)?;
        let count = writer.rows;
        buf[0..4].copy_from_slice(&state.cursor.unwrap_or(0).to_le_bytes());
        buf[4..8].copy_from_slice(&count.to_le_bytes());
        buf[8..16].copy_from_slice(&(state.rows_read as f64).to_le_bytes());
        buf[16..24].copy_from_slice(&(state.rows_written as f64).to_le_bytes());
        let column_count = columns.as_ref().map_or(u32::MAX, |c| c.len() as u32);
        buf[24..28].copy_from_slice(&column_count.to_le_bytes());
        for name in columns.iter().flatten() {
            put_bytes(buf, name.as_bytes());
        }
        Ok(())
    })
}

fn finish_sql(env: &Env, (result, len): (Result<(), StorageError>, usize)) -> napi::Result<u32> {
    result.or_throw(env)?;
    Ok(len as u32)
}

/// Parameters arrive in a buffer the caller reuses, with their byte length.
fn params_or_throw<'a>(env: &Env, params: &'a [u8], len: u32) -> napi::Result<Vec<crate::engine::storage::SqlParam<'a>>> {
    wire::decode_params(prefix(params, len)).or_else(|e| throw(env, StorageError::error(e)))
}

/// Runs a prepared statement to its first row. Returns the result's byte length.
#[napi]
pub fn sql_exec(env: Env, handle: u32, stmt_id: u32, params: &[u8], params_len: u32, mut out: Uint8ArraySlice<'_>) -> napi::Result<u32> {
    // SAFETY: JS is blocked in this call, so nothing else touches the buffer.
    let out = unsafe { out.as_mut() };
    let params = params_or_throw(&env, params, params_len)?;
    let result = sql_result(out, |w| Ok((with_store(|s| s.writable(handle)?.sql_exec(stmt_id, &params, w))?, None)));
    finish_sql(&env, result)
}

/// Runs a multi-statement query; the result carries the last statement's column names.
#[napi]
pub fn sql_exec_text(env: Env, handle: u32, query: String, params: &[u8], params_len: u32, mut out: Uint8ArraySlice<'_>) -> napi::Result<u32> {
    // SAFETY: JS is blocked in this call, so nothing else touches the buffer.
    let out = unsafe { out.as_mut() };
    let params = params_or_throw(&env, params, params_len)?;
    let result = sql_result(out, |w| {
        let (state, names) = with_store(|s| s.sql_exec_text(handle, &query, &params, w))?;
        Ok((state, Some(names)))
    });
    finish_sql(&env, result)
}

/// Reads the next batch of rows of an open cursor.
#[napi]
pub fn sql_next(env: Env, handle: u32, cursor: u32, mut out: Uint8ArraySlice<'_>) -> napi::Result<u32> {
    // SAFETY: JS is blocked in this call, so nothing else touches the buffer.
    let out = unsafe { out.as_mut() };
    let result = sql_result(out, |w| Ok((with_store(|s| s.sql_next(handle, cursor, w))?, None)));
    finish_sql(&env, result)
}

#[napi]
pub fn sql_close_cursor(handle: u32, cursor: u32) {
    with_store(|s| s.sql_close_cursor(handle, cursor));
}

#[napi]
pub fn database_size(env: Env, handle: u32) -> napi::Result<f64> {
    with_store(|s| match s.database(handle, false)? {
        None => Ok(0),
        Some(db) => db.database_size(),
    })
    .map(|n| n as f64)
    .or_throw(&env)
}

#[napi]
pub fn savepoint_begin(env: Env, handle: u32) -> napi::Result<u32> {
    with_store(|s| s.writable(handle)?.savepoint_begin()).or_throw(&env)
}

#[napi]
pub fn savepoint_end(env: Env, handle: u32, commit: bool) -> napi::Result<()> {
    with_store(|s| s.writable(handle)?.savepoint_end(commit)).or_throw(&env)
}

/// Commits the turn's writes: 0 nothing was pending, 1 committed and durable, 2 committed
/// and waiting for `syncObject()`.
#[napi]
pub fn commit(env: Env, handle: u32) -> napi::Result<f64> {
    let outcome = with_store(|s| match s.database(handle, false)? {
        None => Ok(CommitOutcome::Nothing),
        Some(db) => db.commit(),
    })
    .or_throw(&env)?;
    // One number, as this runs once per turn: 0 nothing was written; n > 0 commit n, which
    // needs a sync; -n commit n, durable already.
    Ok(match outcome {
        CommitOutcome::Nothing => 0.0,
        CommitOutcome::Durable(n) => -(n as f64),
        CommitOutcome::NeedsSync(n) => n as f64,
    })
}

/// The object's commit numbers: [made so far, durable so far]. They belong to its
/// database, so a reset instance's successor goes on where it stopped.
#[napi(ts_return_type = "[committed: number, durable: number]")]
pub fn commit_position(env: Env, handle: u32) -> napi::Result<Vec<f64>> {
    let (committed, durable) = with_store(|s| s.commit_position(handle)).or_throw(&env)?;
    Ok(vec![committed as f64, durable as f64])
}

/// Syncs completed in this process (a test hook; see durability.rs).
#[napi]
pub fn syncs_completed() -> f64 {
    crate::engine::storage::syncs_completed() as f64
}

#[napi]
pub fn rollback(handle: u32) {
    with_store(|s| {
        if let Ok(Some(db)) = s.database(handle, false) {
            db.rollback()
        }
    });
}

/// Makes every commit of the object so far durable, on this thread; returns how many of
/// its commits are durable, or -1 when a sync of it runs already (wait for that one). Used
/// when this is the only sync to do: handing it to a pool thread and back costs two
/// cross-CPU wake-ups, which on a virtual machine can cost as much as the fsync itself.
#[napi]
pub fn sync_object_now(env: Env, handle: u32) -> napi::Result<f64> {
    let (start, target) = with_store(|s| s.take_sync_target(handle)).or_throw(&env)?;
    match (start, target) {
        (SyncStart::Running, _) => Ok(-1.0),
        (_, Some(target)) => target.run().map(|n| n as f64).map_err(StorageError::error).or_throw(&env),
        (_, None) => with_store(|s| s.commit_position(handle)).map(|(_, durable)| durable as f64).or_throw(&env),
    }
}

/// Starts making every commit of the object so far durable on the fsync pool (see
/// sync_pool.rs). 0: every commit is durable already; 1: started, and the callback given
/// to `syncInit` reports its end with `token`; 2: a sync of the object runs already (its
/// starter hears when it ends).
#[napi]
pub fn sync_start(env: Env, handle: u32, token: u32) -> napi::Result<u32> {
    let (start, target) = with_store(|s| s.take_sync_target(handle)).or_throw(&env)?;
    match (start, target) {
        (SyncStart::Started, Some(target)) => super::sync_pool::submit(&env, token, target).map(|()| 1),
        (SyncStart::Running, _) => Ok(2),
        _ => Ok(0),
    }
}

