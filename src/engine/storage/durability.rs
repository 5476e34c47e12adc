//! Making commits durable without blocking the JavaScript thread.
//!
//! Commits run with `synchronous=NORMAL`: COMMIT appends to the WAL (so a killed process
//! loses nothing) but does not fsync. In `Full` durability — the default, workerd's level —
//! the caller then fsyncs the WAL on a worker thread (`SyncTarget::run`) and holds every
//! output that depends on the commit until that returns. Commits of one object that pile up
//! while a sync runs share the next sync (group commit), and different objects sync in
//! parallel, where workerd syncs one commit after another.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use super::commit_watermark::CommitWatermark;
use super::group_sync::Ticket;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// A commit is on disk (fsync) before anything that depends on it is released.
    Full,
    /// A commit survives a killed process but not a power cut.
    Relaxed,
}

impl Durability {
    pub fn parse(text: &str) -> Option<Durability> {
        match text {
            "full" => Some(Durability::Full),
            "relaxed" => Some(Durability::Relaxed),
            _ => None,
        }
    }
}

/// What to fsync so that everything committed so far on one object is on disk.
#[derive(Debug)]
pub struct SyncTarget {
    /// The database's commit numbers: the sync that ends marks the commits it covers
    /// durable there, on whichever thread ran it.
    pub watermark: Arc<Mutex<CommitWatermark>>,
    /// The database's WAL, opened by the sync itself: a database need not stay open, nor
    /// hold a descriptor, while its commits wait for their fsync (see `sync_wal`).
    pub wal: Option<PathBuf>,
    /// Commits a sync had taken before this one (to give the commits back if the WAL
    /// cannot be opened: see `run`).
    pub taken_before: u64,
    /// Set for a database created since its last sync: the new file and the directory
    /// entries that name it must reach the disk too.
    pub new_files: Option<NewFiles>,
    /// The namespace's alarm index, when a commit set an alarm (see alarm_index.rs).
    pub alarm_index: Option<Ticket>,
}

/// A database created since its last sync. SQLite wrote and fsynced its first page when it
/// switched the new file to WAL (at its default synchronous=FULL, before we lower it), so
/// what is left is the directory entries that name it.
///
/// Never open the database file itself to fsync it: closing any descriptor of a file drops
/// every POSIX lock this process holds on it, SQLite's exclusive lock included, and a
/// second process could then open the object and write under us (seen: two processes on
/// one folder corrupted a file within seconds).
#[derive(Debug, Clone)]
pub struct NewFiles {
    /// The folders that name the new file (shared with the other new files in them).
    pub directories: Vec<Ticket>,
}

impl SyncTarget {
    /// Blocking; call it off the JavaScript thread. Returns how many of the database's
    /// commits are durable now.
    pub fn run(self) -> Result<u64, String> {
        let result = match self.sync() {
            Ok(()) => Ok(()),
            Err(SyncError::NotStarted(e)) => {
                // Nothing was synced, and nothing failed: the commits wait for the next sync
                // (the caller's error says why this one could not run). Not a failed fsync,
                // which would be for good.
                let mut watermark = self.watermark.lock().unwrap_or_else(|p| p.into_inner());
                watermark.abandon_sync(self.taken_before);
                return Err(e.to_string());
            }
            Err(SyncError::Failed(e)) => Err(e.to_string()),
        };
        if result.is_ok() {
            SYNCS_COMPLETED.fetch_add(1, Ordering::Relaxed);
        }
        let mut watermark = self.watermark.lock().unwrap_or_else(|p| p.into_inner());
        watermark.finish_sync(result).map_err(|e| e.to_string())
    }

    fn sync(&self) -> Result<(), SyncError> {
        if let Some(delay) = test_delay() {
            std::thread::sleep(delay);
        }
        // Opened before anything else is synced, so that if it cannot be, nothing was.
        let wal = match &self.wal {
            Some(path) => open_wal(path).map_err(SyncError::NotStarted)?,
            None => None,
        };
        if let Some(wal) = wal {
            wal.sync_data().map_err(SyncError::Failed)?;
        }
        if let Some(index) = &self.alarm_index {
            index.wait().map_err(SyncError::Failed)?;
        }
        if let Some(new) = &self.new_files {
            for dir in &new.directories {
                dir.wait().map_err(SyncError::Failed)?;
            }
        }
        Ok(())
    }
}

enum SyncError {
    /// The WAL could not be opened (no descriptor left, say): nothing was synced.
    NotStarted(io::Error),
    /// An fsync failed: what it covered may not be on disk.
    Failed(io::Error),
}

/// Opens a WAL to fsync it through a descriptor of our own. The data SQLite wrote through
/// its descriptor is the file's, whichever descriptor syncs it, so the database may be
/// closed and reopened meanwhile: closed to make room, SQLite leaves the WAL where it is;
/// closed for good, it checkpointed the WAL into the database file, synced that and removed
/// the WAL, so a missing WAL (None) has nothing left to sync. The path is absolute (the
/// registry resolves its folder), so a change of working directory cannot make a WAL look
/// missing. Closing our descriptor drops no lock: object files are opened without SQLite's
/// locks, and ours is on the database file (file_lock.rs), never opened here.
fn open_wal(wal: &Path) -> io::Result<Option<File>> {
    match File::open(wal) {
        Ok(file) => Ok(Some(file)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io::Error::new(e.kind(), format!("cannot open the WAL {}: {e}", wal.display()))),
    }
}

/// Syncs that completed in this process (a test hook: tests check that an output never
/// leaves before the sync that covers its writes).
static SYNCS_COMPLETED: AtomicU64 = AtomicU64::new(0);

pub fn syncs_completed() -> u64 {
    SYNCS_COMPLETED.load(Ordering::Relaxed)
}

/// OPEN_DO_TEST_FSYNC_DELAY_MS (tests only): each sync waits this long first, so that
/// tests can order events around a sync in flight.
fn test_delay() -> Option<Duration> {
    static DELAY: OnceLock<Option<Duration>> = OnceLock::new();
    *DELAY.get_or_init(|| std::env::var("OPEN_DO_TEST_FSYNC_DELAY_MS").ok()?.parse().ok().map(Duration::from_millis))
}
