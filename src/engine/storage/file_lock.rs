//! The lock on an open object file that keeps other programs out, taken by us rather than
//! by SQLite's default VFS, because SQLite's costs time in proportion to the open files.
//!
//! SQLite's "unix" VFS keeps every file it has locked in one linked list, and walks it twice
//! on each open (to find the file's lock record and a descriptor to reuse). A process
//! holding thousands of object files open paid for that walk on every reopen: with 2,500
//! files open, opening and reading one more took 213 µs against 66 µs with none open, and
//! 915 µs with 5,000 (a Rust micro-benchmark on this project's VM), which was most of the
//! cost of 10,000 alarms falling due at once.
//!
//! So object files are opened through the "unix-none" VFS, which keeps no list and takes
//! no lock, in exclusive locking mode (which lets WAL run without shared memory), and we
//! take the lock an exclusive SQLite connection would hold ourselves: a POSIX write lock on
//! SQLite's lock bytes (PENDING_BYTE through the SHARED range), on SQLite's own descriptor,
//! for as long as the connection is open. Another program using SQLite on the file (wrangler
//! dev, a SQLite shell) sees the file locked, as before, and one that holds it makes our
//! open fail at once. Closing the connection closes the descriptor, which releases the lock.
//!
//! POSIX locks belong to the process and the file: closing *any* descriptor this process
//! has on the file drops them (see folder_lock.rs). Nothing in this crate opens an object
//! file a second time while it is open (the alarm index's scan of a folder reads its files
//! before any of them is opened); keep it so.

use std::ffi::{c_int, c_void};
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use rusqlite::{ffi, Connection};

use super::error::{Result, StorageError};

/// The VFS object files are opened with (see the module comment).
pub const VFS: &str = "unix-none";

/// SQLite's lock bytes (sqlite3.c, `PENDING_BYTE`, `SHARED_FIRST`, `SHARED_SIZE`): an
/// exclusive lock is a write lock on the pending byte, the reserved byte and the shared range.
const LOCK_START: i64 = 0x4000_0000;
const LOCK_LEN: i64 = 2 + 510;

/// The first fields of SQLite's `unixFile` (sqlite3.c, `struct unixFile`), the `sqlite3_file`
/// every unix VFS hands out: the descriptor follows three pointers. `descriptor()` checks
/// what it reads before trusting it.
#[repr(C)]
struct UnixFileHead {
    methods: *const ffi::sqlite3_io_methods,
    vfs: *mut ffi::sqlite3_vfs,
    inode: *mut c_void,
    fd: c_int,
}

/// Why the lock could not be taken.
pub enum LockFailure {
    /// Another process holds a lock on the file.
    Held,
    Other(StorageError),
}

/// Takes the exclusive lock on `conn`'s main database file, which is `path`, opened
/// through `VFS`.
pub fn lock(conn: &Connection, path: &Path) -> std::result::Result<(), LockFailure> {
    let fd = descriptor(conn, path).map_err(LockFailure::Other)?;
    let lock = libc::flock {
        l_type: libc::F_WRLCK as libc::c_short,
        l_whence: libc::SEEK_SET as libc::c_short,
        l_start: LOCK_START,
        l_len: LOCK_LEN,
        l_pid: 0,
    };
    // SAFETY: `fd` is an open descriptor (checked by `descriptor`) and `lock` a valid flock.
    if unsafe { libc::fcntl(fd, libc::F_SETLK, &lock) } == 0 {
        return Ok(());
    }
    let err = io::Error::last_os_error();
    match err.raw_os_error() {
        Some(libc::EAGAIN) | Some(libc::EACCES) => Err(LockFailure::Held),
        _ => Err(LockFailure::Other(StorageError::io(&format!("cannot lock {}", path.display()), err))),
    }
}

/// SQLite's descriptor for `conn`'s main file, read out of its `unixFile` and trusted only
/// once it is shown to be one: the file came from `VFS`, and the descriptor refers to the
/// file at `path` (same device and inode).
fn descriptor(conn: &Connection, path: &Path) -> Result<c_int> {
    let layout_changed = || StorageError::error("this build of SQLite keeps its file descriptor elsewhere (open-do's file_lock.rs must be updated)");
    let mut file: *mut ffi::sqlite3_file = std::ptr::null_mut();
    // SAFETY: the connection is open; FILE_POINTER writes one pointer to `file`.
    let rc = unsafe { ffi::sqlite3_file_control(conn.handle(), c"main".as_ptr(), ffi::SQLITE_FCNTL_FILE_POINTER, (&mut file as *mut *mut ffi::sqlite3_file).cast()) };
    if rc != ffi::SQLITE_OK || file.is_null() {
        return Err(layout_changed());
    }
    let vfs_name = std::ffi::CString::new(VFS).expect("no NUL");
    // SAFETY: sqlite3_vfs_find only reads the name.
    let vfs = unsafe { ffi::sqlite3_vfs_find(vfs_name.as_ptr()) };
    // SAFETY: an open file of `VFS` is a unixFile, which starts with these fields; the
    // VFS pointer is checked before the descriptor is used.
    let head = unsafe { &*(file as *const UnixFileHead) };
    if vfs.is_null() || head.vfs != vfs || head.methods.is_null() {
        return Err(layout_changed());
    }
    let fd = head.fd;
    let mut stat: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: fstat writes into `stat`; a bad descriptor fails with EBADF.
    if fd < 0 || unsafe { libc::fstat(fd, &mut stat) } != 0 {
        return Err(layout_changed());
    }
    let meta = std::fs::metadata(path).map_err(|e| StorageError::io(&format!("cannot stat {}", path.display()), e))?;
    if meta.dev() != stat.st_dev || meta.ino() != stat.st_ino {
        return Err(layout_changed());
    }
    Ok(fd)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rusqlite::OpenFlags;

    fn open(path: &Path) -> Connection {
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        Connection::open_with_flags_and_vfs(path, flags, VFS).unwrap()
    }

    fn temp_file(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("open-do-file-lock-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir.join("object.sqlite")
    }

    /// Whether another process could take a shared (reading) lock on SQLite's range now.
    fn readable_by_another_process(path: &Path) -> bool {
        // F_GETLK answers for locks of *other* processes only, so a child asks.
        let file = std::fs::File::open(path).unwrap();
        use std::os::fd::AsRawFd;
        let fd = file.as_raw_fd();
        // SAFETY: fork in a test thread; the child only calls async-signal-safe functions.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            let probe = libc::flock { l_type: libc::F_RDLCK as libc::c_short, l_whence: libc::SEEK_SET as libc::c_short, l_start: LOCK_START + 2, l_len: 510, l_pid: 0 };
            let free = unsafe { libc::fcntl(fd, libc::F_SETLK, &probe) } == 0;
            unsafe { libc::_exit(if free { 0 } else { 1 }) };
        }
        let mut status = 0;
        unsafe { libc::waitpid(pid, &mut status, 0) };
        // Closing `file` here would drop this process's locks: keep it until the test ends.
        std::mem::forget(file);
        libc::WEXITSTATUS(status) == 0
    }

    #[test]
    fn the_lock_keeps_other_processes_out_while_the_connection_is_open() {
        let path = temp_file("held");
        let conn = open(&path);
        conn.execute_batch("PRAGMA locking_mode=EXCLUSIVE; PRAGMA journal_mode=WAL; CREATE TABLE t(x);").unwrap();
        assert!(readable_by_another_process(&path), "nothing holds it before lock()");
        assert!(lock(&conn, &path).is_ok());
        assert!(!readable_by_another_process(&path), "locked while open");
    }

    #[test]
    fn the_descriptor_is_the_files_own() {
        let path = temp_file("descriptor");
        let conn = open(&path);
        let fd = descriptor(&conn, &path).unwrap();
        let meta = std::fs::metadata(&path).unwrap();
        let mut stat: libc::stat = unsafe { std::mem::zeroed() };
        assert_eq!(unsafe { libc::fstat(fd, &mut stat) }, 0);
        assert_eq!((stat.st_dev, stat.st_ino), (meta.dev(), meta.ino()));
        // A connection of another VFS is refused rather than trusted.
        let other_path = temp_file("default-vfs");
        let other = Connection::open(&other_path).unwrap();
        assert!(descriptor(&other, &other_path).is_err());
    }
}
