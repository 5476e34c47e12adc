//! Which objects of a namespace have an alarm: one small SQLite file per namespace folder
//! (`<dataDir>/<uniqueKey>/open-do-alarms.sqlite`), so that after a restart every pending
//! alarm fires, also for objects nothing touches (workerd keeps the same in its
//! metadata.sqlite since 2026-02).
//!
//! The objects' own `_cf_METADATA` stays the truth; the index only says whom to wake. A row
//! is written when an alarm is set, and fsynced with the object's commit, so an alarm the
//! caller saw acknowledged always has its row. Rows are removed only once an object was
//! found to have no alarm, so a rolled-back deleteAlarm() never loses one; a stale row
//! costs one look at the object.
//!
//! Removals are therefore only hints, and are written in batches: an autocommitted DELETE
//! per fired alarm cost ~40 µs on the JavaScript thread (a third of an alarm run when
//! 2,500 fire together). Pending ones are written together once REMOVALS_PER_WRITE gather,
//! before the rows are read, and when the index closes; one lost to a crash is a stale row.

use std::collections::HashSet;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rusqlite::{Connection, OpenFlags};

use super::alarm_metadata;
use super::error::{Result, StorageError};
use super::group_sync::{GroupSync, SyncSubject, Ticket};
use super::location::wal_path;

pub const INDEX_FILE: &str = "open-do-alarms.sqlite";

/// How many removals wait before they are written, in one transaction.
const REMOVALS_PER_WRITE: usize = 256;

pub struct AlarmIndex {
    conn: Connection,
    path: PathBuf,
    /// Syncs the index's WAL, once for all the commits that wrote rows meanwhile.
    sync: Option<Arc<GroupSync>>,
    /// Objects whose rows are to go, not yet written (see the module's comment).
    removals: HashSet<String>,
}

/// One object with an alarm, as the index knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexedAlarm {
    pub id_hex: String,
    /// The name the object was addressed by, if any (ctx.id.name when its alarm wakes it).
    pub name: Option<String>,
    pub time_ms: i64,
}

impl AlarmIndex {
    /// Opens (creating) the index of the namespace folder `dir`. With `scan`, a new index is
    /// filled from the folder's object files (written by workerd, or by an older open-do);
    /// callers scan only while none of those objects is open.
    pub fn open(dir: &Path, scan: bool) -> Result<AlarmIndex> {
        std::fs::create_dir_all(dir).map_err(|e| StorageError::io("cannot create the data folder", e))?;
        let path = dir.join(INDEX_FILE);
        let existed = path.exists();
        let conn = Connection::open(&path)?;
        // Never wait on the JavaScript thread for another process's lock (see connection.rs).
        conn.busy_timeout(std::time::Duration::ZERO)?;
        conn.pragma_update(None, "locking_mode", "EXCLUSIVE")?;
        let _: String = conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.execute_batch("CREATE TABLE IF NOT EXISTS alarms (id TEXT PRIMARY KEY, name TEXT, time INTEGER NOT NULL) WITHOUT ROWID")?;
        let mut index = AlarmIndex { conn, path, sync: None, removals: HashSet::new() };
        if !existed && scan {
            index.scan(dir)?;
        }
        Ok(index)
    }

    /// Records that object `id_hex` has an alarm at `time_ms` (the caller syncs `wal()`).
    pub fn set(&mut self, id_hex: &str, name: Option<&str>, time_ms: i64) -> Result<()> {
        // A removal still pending for this object is out of date: it has an alarm again.
        self.removals.remove(id_hex);
        self.conn
            .prepare_cached(
                "INSERT INTO alarms (id, name, time) VALUES (?1, ?2, ?3) \
                 ON CONFLICT(id) DO UPDATE SET time = excluded.time, name = coalesce(excluded.name, alarms.name)",
            )?
            .execute(rusqlite::params![id_hex, name, time_ms])?;
        Ok(())
    }

    /// Forgets object `id_hex` (it was found to have no alarm), with the next batch.
    pub fn remove(&mut self, id_hex: &str) -> Result<()> {
        self.removals.insert(id_hex.to_owned());
        if self.removals.len() >= REMOVALS_PER_WRITE {
            self.write_removals()?;
        }
        Ok(())
    }

    /// Writes the pending removals, in one transaction.
    pub fn write_removals(&mut self) -> Result<()> {
        if self.removals.is_empty() {
            return Ok(());
        }
        let tx = self.conn.transaction()?;
        {
            let mut delete = tx.prepare_cached("DELETE FROM alarms WHERE id = ?1")?;
            for id_hex in &self.removals {
                delete.execute([id_hex])?;
            }
        }
        tx.commit()?;
        self.removals.clear();
        Ok(())
    }

    pub fn entries(&mut self) -> Result<Vec<IndexedAlarm>> {
        // Reading does not depend on it: a removal that cannot be written is a stale row.
        let _ = self.write_removals();
        let mut stmt = self.conn.prepare_cached("SELECT id, name, time FROM alarms ORDER BY time")?;
        let rows = stmt.query_map([], |r| Ok(IndexedAlarm { id_hex: r.get(0)?, name: r.get(1)?, time_ms: r.get(2)? }))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// After a write: the ticket an object's commit waits on for the row to be durable.
    pub fn ticket(&mut self) -> Result<Ticket> {
        if self.sync.is_none() {
            let file = File::open(wal_path(&self.path)).map_err(|e| StorageError::io("cannot open the alarm index's WAL", e))?;
            self.sync = Some(GroupSync::new(SyncSubject::File(Arc::new(file))));
        }
        Ok(self.sync.as_ref().expect("set").ticket())
    }

    /// Whether `dir` has an index file.
    pub fn exists(dir: &Path) -> bool {
        dir.join(INDEX_FILE).exists()
    }

    /// The alarms stored in the folder's object files (without an index).
    pub fn scan_files(dir: &Path) -> Result<Vec<IndexedAlarm>> {
        let mut found = Vec::new();
        let Ok(entries) = std::fs::read_dir(dir) else { return Ok(found) };
        for entry in entries.flatten() {
            let file_name = entry.file_name();
            let Some(id_hex) = file_name.to_str().and_then(|n| n.strip_suffix(".sqlite")) else { continue };
            if id_hex.len() != 64 || !id_hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                continue;
            }
            let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
            // A file we cannot read (locked by another process, damaged) has no alarm to offer.
            let Ok(object) = Connection::open_with_flags(entry.path(), flags) else { continue };
            // A file another connection holds is skipped at once, not waited for.
            let _ = object.busy_timeout(std::time::Duration::ZERO);
            if let Ok(Some(time_ms)) = alarm_metadata::get(&object) {
                found.push(IndexedAlarm { id_hex: id_hex.to_ascii_lowercase(), name: None, time_ms });
            }
        }
        Ok(found)
    }

    /// Fills a new index from the alarms stored in the folder's object files.
    fn scan(&mut self, dir: &Path) -> Result<()> {
        for alarm in AlarmIndex::scan_files(dir)? {
            self.set(&alarm.id_hex, None, alarm.time_ms)?;
        }
        Ok(())
    }
}

impl Drop for AlarmIndex {
    fn drop(&mut self) {
        // Best effort: a removal that does not reach the file leaves a stale row, a hint.
        let _ = self.write_removals();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_one_row_per_object_and_scans_existing_folders() {
        let dir = std::env::temp_dir().join(format!("open-do-alarm-index-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        // An object file written before any index existed.
        let id = "ab".repeat(32);
        {
            let object = Connection::open(dir.join(format!("{id}.sqlite"))).unwrap();
            alarm_metadata::set(&object, Some(42)).unwrap();
        }
        let mut index = AlarmIndex::open(&dir, true).unwrap();
        assert_eq!(index.entries().unwrap(), vec![IndexedAlarm { id_hex: id.clone(), name: None, time_ms: 42 }]);
        index.set(&id, Some("room"), 50).unwrap();
        index.set(&"cd".repeat(32), None, 10).unwrap();
        let entries = index.entries().unwrap();
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[1], IndexedAlarm { id_hex: id.clone(), name: Some("room".into()), time_ms: 50 });
        index.remove(&id).unwrap();
        assert_eq!(index.entries().unwrap().len(), 1);
        // Removals wait for a batch; a set in between keeps the row; closing writes the rest.
        let others: Vec<String> = (0..10).map(|i| format!("{i:064x}")).collect();
        for other in &others {
            index.set(other, None, 7).unwrap();
            index.remove(other).unwrap();
        }
        index.set(&others[0], None, 8).unwrap();
        let count = |conn: &Connection| conn.query_row("SELECT count(*) FROM alarms", [], |r| r.get::<_, i64>(0)).unwrap();
        assert_eq!(count(&index.conn), 11, "removals not yet written");
        assert!(index.entries().unwrap().iter().any(|e| e.id_hex == others[0] && e.time_ms == 8));
        assert_eq!(count(&index.conn), 2, "written before the rows are read");
        index.remove(&others[0]).unwrap();
        assert!(index.ticket().is_ok());
        drop(index);
        assert_eq!(AlarmIndex::open(&dir, false).unwrap().entries().unwrap().len(), 1, "closing wrote the pending removal");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
