//! Every object's database in this process, behind small integer handles, with the number
//! of open files bounded by an LRU so that touching any number of objects works under a
//! low file-descriptor limit (each open database holds two: the file and its WAL).

use lru::LruCache;
use slab::Slab;

use super::durability::{Durability, SyncTarget};
use super::error::{Result, StorageError};
use super::location::Location;
use super::object_database::{CursorState, ObjectDatabase, RowSink};
use super::raw_statement::SqlParam;

pub type Handle = u32;

pub struct ObjectStore {
    objects: Slab<ObjectDatabase>,
    /// Handles of file-backed objects whose database is open, least recently used last.
    open_files: LruCache<Handle, ()>,
    max_open: usize,
    /// The handle used last, whose LRU position need not be refreshed again.
    last_used: Option<Handle>,
    /// An empty in-memory database with the SQL policy, which answers reads of objects
    /// that have no file yet (created on first use).
    empty: Option<ObjectDatabase>,
}

impl Default for ObjectStore {
    fn default() -> Self {
        ObjectStore::new(default_max_open_files())
    }
}

/// Leaves room for everything else the process opens: an eighth of the descriptor limit
/// in databases, each holding three (the file, its WAL, and our handle on the WAL for fsync).
fn default_max_open_files() -> usize {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    let soft = if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } == 0 { lim.rlim_cur as usize } else { 1024 };
    (soft / 8).clamp(8, 4096)
}

impl ObjectStore {
    pub fn new(max_open: usize) -> Self {
        ObjectStore { objects: Slab::new(), open_files: LruCache::unbounded(), max_open: max_open.max(1), last_used: None, empty: None }
    }

    /// Registers an object; nothing touches the disk until it is read or written.
    pub fn add(&mut self, location: &Location, unique_key: &str, id_hex: &str, durability: Durability) -> Result<Handle> {
        let path = location.object_path(unique_key, id_hex)?;
        let in_memory = path.is_none();
        let handle = self.objects.insert(ObjectDatabase::new(path, durability)) as Handle;
        if in_memory {
            // An in-memory database cannot be closed and reopened: it stays open.
            if let Err(e) = self.objects[handle as usize].open(true) {
                self.objects.remove(handle as usize);
                return Err(e);
            }
        }
        Ok(handle)
    }

    /// Forgets an object, closing its file. Its committed data stays on disk.
    pub fn remove(&mut self, handle: Handle) {
        if self.objects.try_remove(handle as usize).is_some() {
            self.open_files.pop(&handle);
            if self.last_used == Some(handle) {
                self.last_used = None;
            }
        }
    }

    pub fn handles(&self) -> Vec<Handle> {
        self.objects.iter().map(|(h, _)| h as Handle).collect()
    }

    fn object(&mut self, handle: Handle) -> Result<&mut ObjectDatabase> {
        self.objects
            .get_mut(handle as usize)
            .ok_or_else(|| StorageError::error("this Durable Object's storage is closed"))
    }

    /// The object's database, opened if needed. With `create` false, None means the object
    /// was never written and reading it must not create a file.
    pub fn database(&mut self, handle: Handle, create: bool) -> Result<Option<&mut ObjectDatabase>> {
        let obj = self.objects.get(handle as usize).ok_or_else(|| StorageError::error("this Durable Object's storage is closed"))?;
        if obj.is_open() {
            if self.last_used != Some(handle) && obj.path().is_some() {
                self.open_files.promote(&handle);
                self.last_used = Some(handle);
            }
            return Ok(Some(self.object(handle)?));
        }
        if !create && obj.known_missing {
            return Ok(None);
        }
        if obj.path().is_some() {
            self.make_room();
        }
        let obj = self.object(handle)?;
        if !obj.open(create)? {
            return Ok(None);
        }
        if obj.path().is_some() {
            self.open_files.put(handle, ());
            self.last_used = Some(handle);
        }
        Ok(Some(self.object(handle)?))
    }

    /// The object's database, which must exist (opened or created) for a write.
    pub fn writable(&mut self, handle: Handle) -> Result<&mut ObjectDatabase> {
        Ok(self.database(handle, true)?.expect("created on demand"))
    }

    /// Closes the least recently used idle files until one more fits.
    fn make_room(&mut self) {
        while self.open_files.len() >= self.max_open {
            // An object in the middle of a turn keeps its file; skip to the next one.
            let victim = self
                .open_files
                .iter()
                .rev()
                .map(|(h, _)| *h)
                .find(|h| self.objects.get(*h as usize).is_some_and(|o| !o.is_busy()));
            let Some(victim) = victim else { return };
            self.open_files.pop(&victim);
            if self.last_used == Some(victim) {
                self.last_used = None;
            }
            if let Some(o) = self.objects.get_mut(victim as usize) {
                o.close();
            }
        }
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
        if self.database(handle, false)?.is_none() {
            if self.empty.is_none() {
                let mut empty = ObjectDatabase::new(None, Durability::Relaxed);
                empty.open(true)?;
                self.empty = Some(empty);
            }
            let empty = self.empty.as_mut().expect("created");
            if let Some(result) = empty.sql_exec_text_if_readonly(query, params, sink)? {
                return Ok(result);
            }
        }
        self.writable(handle)?.sql_exec_text(query, params, sink)
    }

    pub fn open_file_count(&self) -> usize {
        self.open_files.len()
    }

    pub fn take_sync_target(&mut self, handle: Handle) -> Result<Option<SyncTarget>> {
        match self.objects.get_mut(handle as usize) {
            None => Ok(None),
            Some(o) => o.take_sync_target(),
        }
    }
}
