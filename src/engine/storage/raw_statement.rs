//! A prepared statement driven through SQLite's C API.
//!
//! The SQL API needs cursors that stay open across calls from JavaScript and step lazily,
//! which rusqlite's borrowing `Statement`/`Rows` cannot express. A `RawStatement` owns its
//! `sqlite3_stmt` and finalizes it on drop; its owner (`OpenDatabase`) declares statements
//! before the connection so they are always finalized first.

use std::ffi::CStr;
use std::os::raw::c_int;
use std::ptr;

use rusqlite::ffi;

use super::error::{Result, StorageError};

/// A value bound to a `?` placeholder, already mapped from JavaScript the way Cloudflare
/// maps it (numbers are REAL, booleans the strings "true"/"false", ...).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SqlParam<'a> {
    Null,
    Real(f64),
    Text(&'a [u8]),
    Blob(&'a [u8]),
}

/// A column value of the current row, borrowed from SQLite until the next step.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SqlValue<'a> {
    Null,
    Integer(i64),
    Real(f64),
    Text(&'a [u8]),
    Blob(&'a [u8]),
}

/// What an empty text or blob points at: SQLite treats a null pointer as NULL, and a
/// statement may read a SQLITE_STATIC binding until it is reset, so it must live forever.
static EMPTY: [u8; 1] = [0];

pub struct RawStatement {
    stmt: *mut ffi::sqlite3_stmt,
    db: *mut ffi::sqlite3,
}

pub enum Step {
    Row,
    Done,
}

impl RawStatement {
    /// Prepares the first statement of `sql`. Returns None when `sql` holds no statement
    /// (only whitespace or comments), and the byte offset where the next statement starts.
    ///
    /// # Safety
    /// `db` must be an open connection, used by no other thread during the call, that
    /// outlives the statement (its owner finalizes statements before closing it).
    pub unsafe fn prepare(db: *mut ffi::sqlite3, sql: &str, persistent: bool) -> Result<(Option<RawStatement>, usize)> {
        let mut stmt = ptr::null_mut();
        let mut tail = ptr::null();
        let flags = if persistent { ffi::SQLITE_PREPARE_PERSISTENT } else { 0 };
        let rc = unsafe {
            ffi::sqlite3_prepare_v3(
                db,
                sql.as_ptr().cast(),
                sql.len() as c_int,
                flags,
                &mut stmt,
                &mut tail,
            )
        };
        if rc != ffi::SQLITE_OK {
            // SAFETY: `db` is open (the caller's promise).
            return Err(unsafe { last_error(db, rc) });
        }
        let consumed = if tail.is_null() { sql.len() } else { tail as usize - sql.as_ptr() as usize };
        Ok(((!stmt.is_null()).then_some(RawStatement { stmt, db }), consumed))
    }

    pub fn parameter_count(&self) -> usize {
        unsafe { ffi::sqlite3_bind_parameter_count(self.stmt) as usize }
    }

    pub fn is_readonly(&self) -> bool {
        unsafe { ffi::sqlite3_stmt_readonly(self.stmt) != 0 }
    }

    pub fn bind_all(&mut self, params: &[SqlParam<'_>]) -> Result<()> {
        for (i, p) in params.iter().enumerate() {
            let idx = (i + 1) as c_int;
            let rc = unsafe {
                match *p {
                    SqlParam::Null => ffi::sqlite3_bind_null(self.stmt, idx),
                    SqlParam::Real(v) => ffi::sqlite3_bind_double(self.stmt, idx, v),
                    SqlParam::Text(t) => ffi::sqlite3_bind_text64(
                        self.stmt,
                        idx,
                        t.as_ptr().cast(),
                        t.len() as u64,
                        ffi::SQLITE_TRANSIENT(),
                        ffi::SQLITE_UTF8 as u8,
                    ),
                    SqlParam::Blob(b) => ffi::sqlite3_bind_blob64(
                        self.stmt,
                        idx,
                        if b.is_empty() { EMPTY.as_ptr().cast() } else { b.as_ptr().cast() },
                        b.len() as u64,
                        ffi::SQLITE_TRANSIENT(),
                    ),
                }
            };
            if rc != ffi::SQLITE_OK {
                // SAFETY: a statement's connection outlives it.
                return Err(unsafe { last_error(self.db, rc) });
            }
        }
        Ok(())
    }

    /// Binds text or a blob without copying it. The caller must reset the statement before
    /// `bytes` goes away (SQLite may read it until then).
    pub fn bind_borrowed(&mut self, index: usize, bytes: &[u8], text: bool) -> Result<()> {
        let ptr = if bytes.is_empty() { EMPTY.as_ptr() } else { bytes.as_ptr() };
        let rc = unsafe {
            if text {
                ffi::sqlite3_bind_text64(self.stmt, index as c_int, ptr.cast(), bytes.len() as u64, ffi::SQLITE_STATIC(), ffi::SQLITE_UTF8 as u8)
            } else {
                ffi::sqlite3_bind_blob64(self.stmt, index as c_int, ptr.cast(), bytes.len() as u64, ffi::SQLITE_STATIC())
            }
        };
        if rc != ffi::SQLITE_OK {
            // SAFETY: a statement's connection outlives it.
                return Err(unsafe { last_error(self.db, rc) });
        }
        Ok(())
    }

    /// Rows changed by the last completed INSERT, UPDATE or DELETE on this connection.
    pub fn changes(&self) -> u64 {
        unsafe { ffi::sqlite3_changes64(self.db) as u64 }
    }

    pub fn step(&mut self) -> Result<Step> {
        match unsafe { ffi::sqlite3_step(self.stmt) } {
            ffi::SQLITE_ROW => Ok(Step::Row),
            ffi::SQLITE_DONE => Ok(Step::Done),
            rc => {
                // SAFETY: a statement's connection outlives it.
                let err = unsafe { last_error(self.db, rc) };
                unsafe { ffi::sqlite3_reset(self.stmt) };
                Err(err)
            }
        }
    }

    /// Ends the current execution; bindings stay (see `reset` to clear them too).
    pub fn rewind(&mut self) {
        unsafe { ffi::sqlite3_reset(self.stmt) };
    }

    /// Makes the statement ready for its next execution.
    pub fn reset(&mut self) {
        unsafe {
            ffi::sqlite3_reset(self.stmt);
            ffi::sqlite3_clear_bindings(self.stmt);
        }
    }

    pub fn column_count(&self) -> usize {
        unsafe { ffi::sqlite3_column_count(self.stmt) as usize }
    }

    pub fn column_name(&self, i: usize) -> String {
        unsafe {
            let p = ffi::sqlite3_column_name(self.stmt, i as c_int);
            if p.is_null() { String::new() } else { CStr::from_ptr(p).to_string_lossy().into_owned() }
        }
    }

    /// The value of column `i` in the current row; valid until the next step or reset.
    pub fn value(&self, i: usize) -> SqlValue<'_> {
        let i = i as c_int;
        unsafe {
            match ffi::sqlite3_column_type(self.stmt, i) {
                ffi::SQLITE_INTEGER => SqlValue::Integer(ffi::sqlite3_column_int64(self.stmt, i)),
                ffi::SQLITE_FLOAT => SqlValue::Real(ffi::sqlite3_column_double(self.stmt, i)),
                ffi::SQLITE_TEXT => {
                    let p = ffi::sqlite3_column_text(self.stmt, i);
                    let n = ffi::sqlite3_column_bytes(self.stmt, i) as usize;
                    SqlValue::Text(if p.is_null() { &[] } else { std::slice::from_raw_parts(p, n) })
                }
                ffi::SQLITE_BLOB => {
                    let p = ffi::sqlite3_column_blob(self.stmt, i) as *const u8;
                    let n = ffi::sqlite3_column_bytes(self.stmt, i) as usize;
                    SqlValue::Blob(if p.is_null() { &[] } else { std::slice::from_raw_parts(p, n) })
                }
                _ => SqlValue::Null,
            }
        }
    }

    /// Rows SQLite visited in full-table scans so far: our stand-in for Cloudflare's
    /// rows-read counter (which comes from a patched SQLite) beyond the rows returned.
    pub fn fullscan_steps(&self) -> u64 {
        unsafe { ffi::sqlite3_stmt_status(self.stmt, ffi::SQLITE_STMTSTATUS_FULLSCAN_STEP, 0) as u64 }
    }
}

impl Drop for RawStatement {
    fn drop(&mut self) {
        unsafe { ffi::sqlite3_finalize(self.stmt) };
    }
}

/// The error SQLite reported last on `db`, formatted as workerd formats it.
///
/// # Safety
/// `db` must be an open connection that no other thread uses during the call.
pub unsafe fn last_error(db: *mut ffi::sqlite3, rc: c_int) -> StorageError {
    let (code, message, offset) = unsafe {
        let msg = ffi::sqlite3_errmsg(db);
        let msg = if msg.is_null() { String::new() } else { CStr::from_ptr(msg).to_string_lossy().into_owned() };
        let ext = ffi::sqlite3_extended_errcode(db);
        (if ext & 0xff == rc & 0xff { ext } else { rc }, msg, ffi::sqlite3_error_offset(db))
    };
    // workerd reports where in the SQL text the error is, when SQLite knows.
    let err = if offset >= 0 {
        rusqlite::Error::SqlInputError { error: ffi::Error::new(code), msg: message, sql: String::new(), offset }
    } else {
        rusqlite::Error::SqliteFailure(ffi::Error::new(code), Some(message))
    };
    StorageError::from(err)
}
