//! How far one object's commits have reached the disk: the single owner of that state.
//!
//! Commits are numbered per database (not per JavaScript instance: an object that was
//! reset gets a new instance, with the same database and the same numbers). A sync takes
//! every commit made so far, and while it runs no second one starts for the same
//! database: commits made meanwhile wait for the next (group commit). An instance that
//! wants its commits durable while another instance's sync runs waits for that sync to end
//! and asks again, instead of taking nothing and calling itself durable.

use super::error::{Result, StorageError};

/// What [`CommitWatermark::start_sync`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncStart {
    /// Every commit is durable: nothing to sync.
    Durable,
    /// A sync now covers every commit made so far; finish it with [`CommitWatermark::finish_sync`].
    Started,
    /// A sync is running already; ask again when it finished.
    Running,
}

#[derive(Debug, Default)]
pub struct CommitWatermark {
    /// Commits that wrote something, numbered from 1.
    committed: u64,
    /// Commits a sync has taken (running, or done).
    taken: u64,
    /// Every commit up to this one is durable.
    durable: u64,
    syncing: bool,
    /// A sync failed: what was written may not be on disk, and a later fsync's success
    /// would not prove it is (the kernel may have dropped the failed pages), so no later
    /// commit of this database is called durable.
    failed: Option<String>,
}

impl CommitWatermark {
    /// A commit wrote: its number. `durable` when nothing more is needed to keep it (an
    /// in-memory database, or relaxed durability).
    pub fn committed(&mut self, durable: bool) -> u64 {
        self.committed += 1;
        if durable && !self.syncing && self.taken + 1 == self.committed {
            self.taken = self.committed;
            self.durable = self.committed;
        }
        self.committed
    }

    /// Commits made so far and how many of them are durable.
    pub fn position(&self) -> (u64, u64) {
        (self.committed, self.durable)
    }

    /// Whether a commit waits for a sync, or a sync runs.
    #[cfg(test)]
    fn is_busy(&self) -> bool {
        self.syncing || self.taken < self.committed
    }

    /// Takes every commit so far for one sync, unless one runs already.
    pub fn start_sync(&mut self) -> Result<SyncStart> {
        if let Some(message) = &self.failed {
            return Err(StorageError::error(message.clone()));
        }
        if self.syncing {
            return Ok(SyncStart::Running);
        }
        if self.taken == self.committed {
            return Ok(SyncStart::Durable);
        }
        self.syncing = true;
        self.taken = self.committed;
        Ok(SyncStart::Started)
    }

    /// Commits a sync has taken so far.
    pub fn taken(&self) -> u64 {
        self.taken
    }

    /// The sync just started could not run (its WAL could not be opened: no descriptor left,
    /// say): nothing was lost, and nothing was made durable, so its commits wait for the
    /// next sync as if it had never started.
    pub fn abandon_sync(&mut self, taken_before: u64) {
        self.syncing = false;
        self.taken = taken_before;
    }

    /// The running sync ended; returns how many commits are durable now.
    pub fn finish_sync(&mut self, result: std::result::Result<(), String>) -> Result<u64> {
        if !self.syncing {
            return Ok(self.durable);
        }
        self.syncing = false;
        match result {
            Ok(()) => {
                self.durable = self.taken;
                Ok(self.durable)
            }
            Err(message) => {
                let message = format!("fsync failed: {message}");
                self.failed = Some(message.clone());
                Err(StorageError::error(message))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sync_covers_the_commits_made_before_it_and_one_runs_at_a_time() {
        let mut w = CommitWatermark::default();
        assert_eq!(w.start_sync().unwrap(), SyncStart::Durable);
        assert_eq!(w.committed(false), 1);
        assert!(w.is_busy());
        assert_eq!(w.start_sync().unwrap(), SyncStart::Started);
        assert_eq!(w.committed(false), 2);
        // The second commit came after the sync began: it waits for the next one.
        assert_eq!(w.start_sync().unwrap(), SyncStart::Running);
        assert_eq!(w.finish_sync(Ok(())).unwrap(), 1);
        assert!(w.is_busy());
        assert_eq!(w.start_sync().unwrap(), SyncStart::Started);
        assert_eq!(w.finish_sync(Ok(())).unwrap(), 2);
        assert!(!w.is_busy());
        assert_eq!(w.position(), (2, 2));
    }

    #[test]
    fn commits_that_need_no_sync_are_durable_at_once_unless_an_earlier_one_is_not() {
        let mut w = CommitWatermark::default();
        assert_eq!(w.committed(true), 1);
        assert_eq!(w.position(), (1, 1));
        assert!(!w.is_busy());
    }

    #[test]
    fn an_abandoned_sync_leaves_its_commits_to_the_next() {
        let mut w = CommitWatermark::default();
        w.committed(false);
        assert_eq!(w.start_sync().unwrap(), SyncStart::Started);
        w.abandon_sync(0);
        assert!(w.is_busy(), "commit 1 still waits for a sync");
        assert_eq!(w.start_sync().unwrap(), SyncStart::Started);
        assert_eq!(w.finish_sync(Ok(())).unwrap(), 1);
    }

    #[test]
    fn a_failed_sync_leaves_every_later_commit_not_durable() {
        let mut w = CommitWatermark::default();
        w.committed(false);
        w.start_sync().unwrap();
        assert!(w.finish_sync(Err("EIO".into())).is_err());
        w.committed(false);
        assert!(w.start_sync().unwrap_err().to_string().contains("fsync failed: EIO"));
        assert_eq!(w.position(), (2, 0));
    }
}
