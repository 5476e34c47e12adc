//! One fsync for many writers of the same file or directory.
//!
//! fsyncs of one file run one after another in the kernel, so when many objects need the
//! same file on disk — the namespace folder that names their new files, the namespace's
//! alarm index — syncing it once per object makes them queue. Instead each writer takes a
//! ticket after writing, and a sync that starts after the ticket was taken covers it: one
//! thread syncs, the others wait for it (or for the next one), as in a database's group
//! commit.

use std::fs::File;
use std::io;
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex};

/// What to make durable.
#[derive(Debug)]
pub enum SyncSubject {
    /// An open file: its data.
    File(Arc<File>),
    /// A directory, opened for each sync: its entries.
    Directory(PathBuf),
}

#[derive(Debug)]
pub struct GroupSync {
    subject: SyncSubject,
    state: Mutex<Tickets>,
    synced: Condvar,
}

#[derive(Debug, Default)]
struct Tickets {
    /// Tickets handed out (each after a write).
    issued: u64,
    /// Every ticket up to this one is durable.
    durable: u64,
    syncing: bool,
}

/// A write to a GroupSync's subject that must reach the disk.
#[derive(Debug, Clone)]
pub struct Ticket {
    sync: Arc<GroupSync>,
    number: u64,
}

impl GroupSync {
    pub fn new(subject: SyncSubject) -> Arc<GroupSync> {
        Arc::new(GroupSync { subject, state: Mutex::new(Tickets::default()), synced: Condvar::new() })
    }

    /// Call after writing: the ticket to wait on for that write to be durable.
    pub fn ticket(self: &Arc<Self>) -> Ticket {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        state.issued += 1;
        Ticket { sync: self.clone(), number: state.issued }
    }

    fn sync_once(&self) -> io::Result<()> {
        match &self.subject {
            SyncSubject::File(file) => file.sync_data(),
            SyncSubject::Directory(dir) => File::open(dir)?.sync_all(),
        }
    }
}

impl Ticket {
    /// Blocks until the write behind this ticket is durable (syncing, or waiting for a
    /// sync that covers it).
    pub fn wait(&self) -> io::Result<()> {
        let sync = &self.sync;
        let mut state = sync.state.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if state.durable >= self.number {
                return Ok(());
            }
            if state.syncing {
                state = sync.synced.wait(state).unwrap_or_else(|p| p.into_inner());
                continue;
            }
            state.syncing = true;
            let covers = state.issued;
            drop(state);
            let result = sync.sync_once();
            state = sync.state.lock().unwrap_or_else(|p| p.into_inner());
            state.syncing = false;
            if result.is_ok() {
                state.durable = state.durable.max(covers);
            }
            sync.synced.notify_all();
            result?;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_sync_covers_every_ticket_taken_before_it() {
        let dir = std::env::temp_dir().join(format!("open-do-group-sync-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let sync = GroupSync::new(SyncSubject::Directory(dir.clone()));
        let tickets: Vec<Ticket> = (0..100).map(|_| sync.ticket()).collect();
        let threads: Vec<_> = tickets.into_iter().map(|t| std::thread::spawn(move || t.wait())).collect();
        for t in threads {
            t.join().unwrap().unwrap();
        }
        assert_eq!(sync.state.lock().unwrap().durable, 100);
        // A ticket taken later needs a later sync.
        let late = sync.ticket();
        assert_eq!(late.number, 101);
        late.wait().unwrap();
        let _ = std::fs::remove_dir_all(&dir);
    }
}
