//! One process at a time serves a namespace folder (`<dataDir>/<uniqueKey>`).
//!
//! Two processes serving the same objects would each believe it owns them: they interleave
//! commits, lose updates and, once SQLite's own locks are lost (see below), corrupt files.
//! So a registry takes an exclusive `flock` on each namespace folder it serves, held for
//! its lifetime and released by the kernel when the process ends, however it ends (even
//! by SIGKILL): a second process fails at once, with a line naming the folder and, where
//! the system says, the process that holds it.
//!
//! Why flock on the folder itself: it adds no file to workerd's layout, and flock locks
//! belong to the open file description, so — unlike the POSIX record locks SQLite uses,
//! which belong to the process and vanish when *any* descriptor of the file is closed —
//! nothing else this process opens or closes can drop it. The two kinds of lock do not
//! interact on Linux's local filesystems.
//!
//! NFS emulates flock with byte-range locks, which need a descriptor open for writing, so a
//! folder (open read-only) cannot be locked there; we then lock a file in it,
//! `open-do.lock`, instead.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use super::error::{Result, StorageError};

/// An exclusive lock on a namespace folder, released when dropped.
#[derive(Debug)]
pub struct FolderLock {
    // Held open for the lock; closing it releases the lock.
    _folder: File,
}

impl FolderLock {
    /// Creates the folder if needed and locks it, or fails at once if another open
    /// description (another process, or another registry of this one) holds it.
    pub fn acquire(path: &Path) -> Result<FolderLock> {
        std::fs::create_dir_all(path).map_err(|e| StorageError::io(&format!("cannot create the data folder {}", path.display()), e))?;
        let folder = File::open(path).map_err(|e| StorageError::io(&format!("cannot open the data folder {}", path.display()), e))?;
        let (file, result) = match lock(&folder) {
            // NFS (see above): lock a file of the folder instead.
            Err(e) if matches!(e.raw_os_error(), Some(libc::EBADF | libc::ENOLCK | libc::EOPNOTSUPP)) => {
                let file = OpenOptions::new()
                    .read(true)
                    .write(true)
                    .create(true)
                    .truncate(false)
                    .open(path.join(LOCK_FILE))
                    .map_err(|e| StorageError::io(&format!("cannot create the lock file of the data folder {}", path.display()), e))?;
                let result = lock(&file);
                (file, result)
            }
            result => (folder, result),
        };
        match result {
            Ok(()) => Ok(FolderLock { _folder: file }),
            Err(e) if e.raw_os_error() == Some(libc::EWOULDBLOCK) => {
                let holder = file.metadata().ok().and_then(|m| holder_of(m.dev(), m.ino()));
                Err(StorageError::error(in_use_message(path, holder)))
            }
            Err(e) => Err(StorageError::io(&format!("cannot lock the data folder {}", path.display()), e)),
        }
    }
}

/// Where the lock is taken on filesystems that cannot lock a folder (NFS).
const LOCK_FILE: &str = "open-do.lock";

fn lock(file: &File) -> io::Result<()> {
    // SAFETY: flock on a descriptor we own; it touches no memory.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

fn in_use_message(path: &Path, holder: Option<u32>) -> String {
    let who = match holder {
        Some(pid) if pid == std::process::id() => format!("this process (pid {pid}), through another Registry that is still open"),
        Some(pid) => match command_of(pid) {
            Some(command) => format!("another process (pid {pid}: {command})"),
            None => format!("another process (pid {pid})"),
        },
        None => "another process".to_owned(),
    };
    format!(
        "The Durable Object folder {} is in use by {who}; one process at a time may serve its objects. \
         Stop that process, or give this Registry another dataDir.",
        path.display()
    )
}

/// The process holding a flock on the file (device, inode), as /proc/locks tells (Linux).
fn holder_of(dev: u64, ino: u64) -> Option<u32> {
    let locks = std::fs::read_to_string("/proc/locks").ok()?;
    // Lines look like "3: FLOCK  ADVISORY  WRITE 1234 08:01:5678 0 EOF"; the device is
    // "major:minor" in hex, the inode decimal.
    let (major, minor) = (libc::major(dev), libc::minor(dev));
    let file = format!("{major:02x}:{minor:02x}:{ino}");
    locks.lines().find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let at = fields.iter().position(|f| *f == "FLOCK")?;
        let (pid, id) = (fields.get(at + 3)?, fields.get(at + 4)?);
        // Pid 0: the holder is in another pid namespace (a container sharing the volume).
        (*id == file).then(|| pid.parse().ok().filter(|pid: &u32| *pid != 0)).flatten()
    })
}

/// A short form of a process's command line, if the system shows it.
fn command_of(pid: u32) -> Option<String> {
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let words: Vec<String> = raw.split(|b| *b == 0).filter(|w| !w.is_empty()).map(|w| String::from_utf8_lossy(w).into_owned()).collect();
    if words.is_empty() {
        return None;
    }
    let mut command = words.join(" ");
    if command.len() > 120 {
        let mut end = 117;
        while !command.is_char_boundary(end) {
            end -= 1;
        }
        command.truncate(end);
        command.push_str("...");
    }
    Some(command)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_on_a_folder_fails_at_once_and_names_the_holder() {
        let dir = tempfile::tempdir().unwrap();
        let folder = dir.path().join("Counter");
        let first = FolderLock::acquire(&folder).unwrap();
        let second = FolderLock::acquire(&folder).unwrap_err();
        assert!(second.message.contains(&folder.display().to_string()), "{}", second.message);
        assert!(second.message.contains(&format!("this process (pid {})", std::process::id())), "{}", second.message);
        drop(first);
        FolderLock::acquire(&folder).expect("released when dropped");
    }

    #[test]
    fn closing_another_descriptor_of_the_folder_keeps_the_lock() {
        let dir = tempfile::tempdir().unwrap();
        let _lock = FolderLock::acquire(dir.path()).unwrap();
        drop(File::open(dir.path()).unwrap());
        assert!(FolderLock::acquire(dir.path()).is_err());
    }
}
