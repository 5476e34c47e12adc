//! Every object's database in this process, behind small integer handles, with the number
//! of open files bounded by an LRU so that touching any number of objects works under a
//! low file-descriptor limit (each open database holds two: the file and its WAL).
//!
//! A handle is a slot and the slot's generation. `rekey` gives an object a new handle and
//! voids the old one, so that code of a reset instance, still holding the old handle, can
//! no longer touch storage; a removed object's slot can be reused without its old handles
//! reaching the new occupant.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use lru::LruCache;
use slab::Slab;

use std::sync::Arc;

use super::alarm_index::{AlarmIndex, IndexedAlarm};
use super::closer::{give_back_freed_memory, Closer, CLOSES_WORTH_A_TRIM};
use super::group_sync::{GroupSync, SyncSubject};
use super::commit_watermark::SyncStart;
use super::durability::{Durability, SyncTarget};
use super::error::{Result, StorageError};
use super::folder_lock::FolderLock;
use super::location::Location;
use super::object_database::{CursorState, ObjectDatabase, RowSink};
use super::raw_statement::SqlParam;

pub type Handle = u32;
/// Slots of the object table (a handle's low bits).
type Slot = usize;

const SLOT_BITS: u32 = 20;
const SLOT_MASK: u32 = (1 << SLOT_BITS) - 1;
/// Objects registered at once (evicted objects free their slots).
const MAX_SLOTS: usize = 1 << SLOT_BITS;

const CLOSED: &str = "this Durable Object's storage is closed";
const RESET: &str = "This Durable Object was reset; its earlier instance can no longer use storage.";

pub struct ObjectStore {
    objects: Slab<ObjectDatabase>,
    /// Each slot's current generation (the high bits of its valid handle).
    generations: Vec<u16>,
    /// Slots of file-backed objects whose database is open, least recently used last.
    open_files: LruCache<Slot, ()>,
    max_open: usize,
    /// The slot used last, whose LRU position need not be refreshed again.
    last_used: Option<Slot>,
    /// Each slot's last use, as the idle epoch it fell in (see `close_idle_files`).
    touched: Vec<u32>,
    idle_epoch: u32,
    idle_epoch_began: Instant,
    /// An empty in-memory database with the SQL policy, which answers reads of objects
    /// that have no file yet (created on first use).
    empty: Option<ObjectDatabase>,
    /// Cursors open on `empty`, with the slot of the object that opened each.
    empty_cursors: HashMap<u32, Slot>,
    /// Each namespace folder's alarm index, opened on first use.
    alarm_indexes: HashMap<PathBuf, AlarmIndex>,
    /// Syncs of the folders that name new object files, shared by the files created in them.
    directory_syncs: HashMap<PathBuf, Arc<GroupSync>>,
    /// The namespace folders registries of this thread serve (see folder_lock.rs).
    folder_locks: Slab<FolderLock>,
    /// Closes the files of objects that went away, off this thread.
    closer: Closer,
}

impl Default for ObjectStore {
    fn default() -> Self {
        ObjectStore::new(default_max_open_files())
    }
}

/// Leaves room for everything else the process opens: three eighths of the descriptor
/// limit go to databases, each holding two (the file and its WAL; fsyncs open the WAL for
/// themselves, see durability.rs).
fn default_max_open_files() -> usize {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    let soft = if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } == 0 { lim.rlim_cur as usize } else { 1024 };
    (soft * 3 / 16).clamp(8, 4096)
}

impl ObjectStore {
    pub fn new(max_open: usize) -> Self {
        super::connection::configure_process();
        ObjectStore {
            objects: Slab::new(),
            generations: Vec::new(),
            open_files: LruCache::unbounded(),
            max_open: max_open.max(1),
            last_used: None,
            touched: Vec::new(),
            idle_epoch: 0,
            idle_epoch_began: Instant::now(),
            empty: None,
            empty_cursors: HashMap::new(),
            alarm_indexes: HashMap::new(),
            directory_syncs: HashMap::new(),
            folder_locks: Slab::new(),
            closer: Closer::default(),
        }
    }

    fn handle_of(&self, slot: Slot) -> Handle {
        (self.generations[slot] as u32) << SLOT_BITS | slot as u32
    }

    /// The slot `handle` names, if the handle is still valid.
    fn slot(&self, handle: Handle) -> Result<Slot> {
        let slot = (handle & SLOT_MASK) as Slot;
        if !self.objects.contains(slot) {
            return Err(StorageError::error(CLOSED));
        }
        if self.handle_of(slot) != handle {
            return Err(StorageError::error(RESET));
        }
        Ok(slot)
    }

    /// Voids `handle` and returns the object's new one (same database, same state).
    pub fn rekey(&mut self, handle: Handle) -> Result<Handle> {
        let slot = self.slot(handle)?;
        // The old instance's cursors end with it (its handle can no longer close them).
        self.objects[slot].end_cursors();
        self.close_empty_cursors(slot);
        self.generations[slot] = self.generations[slot].wrapping_add(1) & (u16::MAX >> 4);
        Ok(self.handle_of(slot))
    }

    /// Registers an object; nothing touches the disk until it is read or written.
    pub fn add(&mut self, location: &Location, unique_key: &str, id_hex: &str, durability: Durability, sql_time_limit: Duration) -> Result<Handle> {
        let path = location.object_path(unique_key, id_hex)?;
        let in_memory = path.is_none();
        if self.objects.vacant_key() >= MAX_SLOTS {
            return Err(StorageError::error(format!("more than {MAX_SLOTS} Durable Objects are registered at once")));
        }
        let slot = self.objects.insert(ObjectDatabase::new(path, durability, sql_time_limit));
        if self.generations.len() <= slot {
            self.generations.resize(slot + 1, 0);
            self.touched.resize(slot + 1, 0);
        }
        self.touched[slot] = self.idle_epoch;
        if in_memory {
            // An in-memory database cannot be closed and reopened: it stays open.
            if let Err(e) = self.objects[slot].open(true) {
                self.objects.remove(slot);
                return Err(e);
            }
        }
        Ok(self.handle_of(slot))
    }

    /// Forgets an object, closing its file. Its committed data stays on disk; its handles
    /// stop working.
    pub fn remove(&mut self, handle: Handle) {
        let Ok(slot) = self.slot(handle) else { return };
        let mut object = self.objects.remove(slot);
        // Closing checkpoints and fsyncs: not on this thread (see closer.rs).
        if let (Some(path), Some(db)) = (object.path().map(Path::to_path_buf), object.take_open()) {
            self.closer.close(path, Box::new(db));
        }
        self.close_empty_cursors(slot);
        self.generations[slot] = self.generations[slot].wrapping_add(1) & (u16::MAX >> 4);
        self.open_files.pop(&slot);
        if self.last_used == Some(slot) {
            self.last_used = None;
        }
    }

    /// The object's database, opened if needed. With `create` false, None means the object
    /// was never written and reading it must not create a file.
    pub fn database(&mut self, handle: Handle, create: bool) -> Result<Option<&mut ObjectDatabase>> {
        let slot = self.slot(handle)?;
        self.touched[slot] = self.idle_epoch;
        let obj = &self.objects[slot];
        if obj.is_open() {
            if self.last_used != Some(slot) && obj.path().is_some() {
                self.open_files.promote(&slot);
                self.last_used = Some(slot);
            }
            return Ok(Some(&mut self.objects[slot]));
        }
        if !create && obj.known_missing {
            return Ok(None);
        }
        if let Some(path) = obj.path() {
            // The same file may still be closing after the object's last eviction.
            self.closer.wait_for(path);
            self.make_room();
        }
        let obj = &mut self.objects[slot];
        if !obj.open(create)? {
            return Ok(None);
        }
        if obj.path().is_some() {
            self.open_files.put(slot, ());
            self.last_used = Some(slot);
        }
        Ok(Some(&mut self.objects[slot]))
    }

    /// The object's database, which must exist (opened or created) for a write.
    pub fn writable(&mut self, handle: Handle) -> Result<&mut ObjectDatabase> {
        Ok(self.database(handle, true)?.expect("created on demand"))
    }

    /// Closes the least recently used idle files until one more fits.
    fn make_room(&mut self) {
        while self.open_files.len() >= self.max_open {
            // An object in the middle of a turn, or with a commit to sync, keeps its file. One
            // with an unread cursor keeps it too, unless nothing else can go: cursors that
            // code dropped unread (they end only when the garbage collector finds them) must
            // not hold files without bound.
            let idle = |cursors_too: bool| {
                self.open_files
                    .iter()
                    .rev()
                    .map(|(h, _)| *h)
                    .find(|slot| self.objects.get(*slot).is_some_and(|o| !o.is_busy() && (cursors_too || !o.has_cursors())))
            };
            let Some(victim) = idle(false).or_else(|| idle(true)) else { return };
            self.open_files.pop(&victim);
            if self.last_used == Some(victim) {
                self.last_used = None;
            }
            // Closed here: without a checkpoint a close is quick, and handing it to another
            // thread measured slower (SQLite's and the allocator's locks, on two cores).
            if let Some(o) = self.objects.get_mut(victim) {
                o.close_for_now();
            }
        }
    }

    /// Closes the files of objects that used no storage for at least `idle` (and at most
    /// twice that after the last call), as `make_room` would: an object in memory does not need its file open,
    /// and an open connection holds ~80 KiB. Returns how many were closed. Time is counted
    /// in epochs of `idle`, advanced by these calls, so a storage call costs no clock read.
    pub fn close_idle_files(&mut self, idle: Duration) -> usize {
        if self.idle_epoch_began.elapsed() < idle {
            return 0;
        }
        self.idle_epoch = self.idle_epoch.wrapping_add(1);
        self.idle_epoch_began = Instant::now();
        // Untouched during all of the epoch that just ended: least recently used first, so
        // the walk stops at the first file used since.
        let stale = |touched: u32| self.idle_epoch.wrapping_sub(touched) >= 2;
        let victims: Vec<Slot> = self
            .open_files
            .iter()
            .rev()
            .map(|(slot, _)| *slot)
            .take_while(|slot| stale(self.touched[*slot]))
            .filter(|slot| self.objects.get(*slot).is_some_and(|o| !o.is_busy() && !o.has_cursors()))
            .collect();
        for &slot in &victims {
            self.open_files.pop(&slot);
            if self.last_used == Some(slot) {
                self.last_used = None;
            }
            self.objects[slot].close_for_now();
        }
        if victims.len() >= CLOSES_WORTH_A_TRIM {
            give_back_freed_memory();
        }
        victims.len()
    }

    /// Runs SQL on an object. Reads of an object that was never written are answered by an
    /// empty database, so they create no file; the first statement that writes creates it.
    pub fn sql_exec_text(
        &mut self,
        handle: Handle,
        query: &str,
        params: &[SqlParam<'_>],
        sink: &mut dyn RowSink,
    ) -> Result<(CursorState, Vec<String>)> {
        let Some(db) = self.database(handle, false)? else {
            let slot = self.slot(handle)?;
            let limit = self.objects[slot].sql_time_limit();
            if self.empty.is_none() {
                let mut empty = ObjectDatabase::new(None, Durability::Relaxed, limit);
                empty.open(true)?;
                self.empty = Some(empty);
            }
            let empty = self.empty.as_mut().expect("created");
            if let Some(result) = empty.sql_exec_text_if_readonly(query, params, sink, limit)? {
                if let Some(cursor) = result.0.cursor {
                    self.empty_cursors.insert(cursor, slot);
                }
                return Ok(result);
            }
            return self.writable(handle)?.sql_exec_text(query, params, sink);
        };
        db.sql_exec_text(query, params, sink)
    }

    /// Reads further rows of a cursor of the object's.
    pub fn sql_next(&mut self, handle: Handle, cursor: u32, sink: &mut dyn RowSink) -> Result<CursorState> {
        let slot = self.slot(handle)?;
        if self.empty_cursors.get(&cursor) == Some(&slot) {
            let limit = self.objects[slot].sql_time_limit();
            let empty = self.empty.as_mut().expect("it holds the cursor");
            let state = empty.sql_next_with_limit(cursor, sink, limit);
            if !matches!(state, Ok(CursorState { cursor: Some(_), .. })) {
                self.empty_cursors.remove(&cursor);
            }
            return state;
        }
        match self.database(handle, false)? {
            Some(db) => db.sql_next(cursor, sink),
            // No file, and not one of its cursors on the empty database: nothing to read.
            None => Ok(CursorState::default()),
        }
    }

    /// Abandons a cursor before its end.
    pub fn sql_close_cursor(&mut self, handle: Handle, cursor: u32) {
        let Ok(slot) = self.slot(handle) else { return };
        if self.empty_cursors.get(&cursor) == Some(&slot) {
            self.empty_cursors.remove(&cursor);
            if let Some(empty) = self.empty.as_mut() {
                empty.sql_close_cursor(cursor);
            }
        } else {
            // A closed file has no open cursors: nothing to reopen it for.
            self.objects[slot].sql_close_cursor(cursor);
        }
    }

    /// Ends the cursors an object had open on the empty database (it went away).
    fn close_empty_cursors(&mut self, slot: Slot) {
        let Some(empty) = self.empty.as_mut() else { return };
        self.empty_cursors.retain(|cursor, owner| {
            if *owner == slot {
                empty.sql_close_cursor(*cursor);
            }
            *owner != slot
        });
    }

    // ---- alarms -------------------------------------------------------------------

    /// Sets or clears an object's alarm (a write of its turn). A set alarm also gets its
    /// row in the namespace's alarm index, synced with the object's commit. `name` is the
    /// name the object was addressed by, for its id when the alarm wakes it.
    pub fn set_alarm(&mut self, handle: Handle, millis: Option<i64>, name: Option<&str>) -> Result<()> {
        let db = match millis {
            Some(_) => self.writable(handle)?,
            // Clearing the alarm of an object with no file changes nothing: create none.
            None => match self.database(handle, false)? {
                Some(db) => db,
                None => return Ok(()),
            },
        };
        db.set_alarm(millis)?;
        let (Some(time), Some(path)) = (millis, db.path().map(Path::to_path_buf)) else { return Ok(()) };
        let (dir, id_hex) = object_dir_and_id(&path);
        let index = self.alarm_index(&dir)?;
        index.set(&id_hex, name, time)?;
        let ticket = index.ticket()?;
        let slot = self.slot(handle)?;
        self.objects[slot].sync_alarm_index_with_commit(ticket);
        Ok(())
    }

    /// Advances an object's local bookmark (creating its file, as any write does).
    pub fn next_local_bookmark(&mut self, handle: Handle) -> Result<i64> {
        self.writable(handle)?.next_local_bookmark()
    }

    /// Drops an object's row from its namespace's alarm index (it was found to have no alarm).
    pub fn forget_alarm(&mut self, handle: Handle) -> Result<()> {
        let slot = self.slot(handle)?;
        let Some(path) = self.objects[slot].path().map(Path::to_path_buf) else { return Ok(()) };
        let (dir, id_hex) = object_dir_and_id(&path);
        self.alarm_index(&dir)?.remove(&id_hex)
    }

    /// The objects of a namespace that have an alarm, by the index (none in memory).
    pub fn indexed_alarms(&mut self, location: &Location, unique_key: &str) -> Result<Vec<IndexedAlarm>> {
        let Some(some_object) = location.object_path(unique_key, &"0".repeat(64))? else { return Ok(Vec::new()) };
        let dir = some_object.parent().expect("an object file has a folder").to_path_buf();
        // A namespace without an index and without stored alarms gets no file (nothing is
        // written before an object writes).
        if !self.alarm_indexes.contains_key(&dir) && !AlarmIndex::exists(&dir) {
            // A folder written elsewhere: its files are the only record (and none is open
            // yet: objects open after their namespace is registered).
            if AlarmIndex::scan_files(&dir)?.is_empty() {
                return Ok(Vec::new());
            }
            let index = AlarmIndex::open(&dir, true)?;
            self.alarm_indexes.insert(dir.clone(), index);
        }
        self.alarm_index(&dir)?.entries()
    }

    /// Closes a namespace's alarm index (its registry closed), releasing the file for
    /// other processes.
    pub fn close_alarm_index(&mut self, location: &Location, unique_key: &str) -> Result<()> {
        if let Some(some_object) = location.object_path(unique_key, &"0".repeat(64))? {
            self.alarm_indexes.remove(some_object.parent().expect("an object file has a folder"));
        }
        Ok(())
    }

    // ---- namespace folders --------------------------------------------------------

    /// Locks the folder of namespace `unique_key` for the caller (a registry) until
    /// `unlock_namespace`; fails at once if another process or registry serves it. Returns
    /// the lock's id, or None for in-memory storage (which has no folder to share).
    pub fn lock_namespace(&mut self, location: &Location, unique_key: &str) -> Result<Option<u32>> {
        let Some(some_object) = location.object_path(unique_key, &"0".repeat(64))? else { return Ok(None) };
        let lock = FolderLock::acquire(some_object.parent().expect("an object file has a folder"))?;
        Ok(Some(self.folder_locks.insert(lock) as u32))
    }

    /// Releases a namespace folder (its registry closed, having closed its objects): once
    /// their files are closed, so that the next process to open them finds them free.
    pub fn unlock_namespace(&mut self, lock: u32) {
        self.closer.wait_all();
        self.folder_locks.try_remove(lock as usize);
    }

    fn alarm_index(&mut self, dir: &Path) -> Result<&mut AlarmIndex> {
        if !self.alarm_indexes.contains_key(dir) {
            let index = AlarmIndex::open(dir, false)?;
            self.alarm_indexes.insert(dir.to_path_buf(), index);
        }
        Ok(self.alarm_indexes.get_mut(dir).expect("inserted"))
    }

    pub fn open_file_count(&self) -> usize {
        self.open_files.len()
    }

    /// How many files may be open at once; objects busy with a commit may take a few more.
    pub fn max_open_files(&self) -> usize {
        self.max_open
    }

    /// What to fsync for the commits made so far. Works with a voided handle too: the
    /// commits of a reset instance still reach the disk.
    /// The object's commit numbers: made so far, and durable so far.
    pub fn commit_position(&self, handle: Handle) -> Result<(u64, u64)> {
        Ok(self.objects[self.slot(handle)?].commit_position())
    }

    pub fn take_sync_target(&mut self, handle: Handle) -> Result<(SyncStart, Option<SyncTarget>)> {
        let slot = self.slot(handle)?;
        let obj = &mut self.objects[slot];
        if obj.created_file() {
            // The new file's name, and its WAL's (both exist by now), must reach the disk
            // too: a ticket on each folder's shared sync, taken after they were created.
            let folders: Vec<PathBuf> = obj.path().expect("a created file").ancestors().skip(1).take(2).map(Path::to_path_buf).collect();
            let tickets = folders
                .into_iter()
                .map(|dir| self.directory_syncs.entry(dir.clone()).or_insert_with(|| GroupSync::new(SyncSubject::Directory(dir))).ticket())
                .collect();
            self.objects[slot].set_new_file_directories(tickets);
        }
        self.objects[slot].take_sync_target()
    }
}

/// An object file's namespace folder and id: `<dir>/<idHex>.sqlite`.
fn object_dir_and_id(path: &Path) -> (PathBuf, String) {
    let dir = path.parent().expect("an object file has a folder").to_path_buf();
    let id = path.file_stem().and_then(|s| s.to_str()).unwrap_or_default().to_owned();
    (dir, id)
}
