//! Closing databases off the JavaScript thread.
//!
//! Closing a WAL database for good checkpoints it: SQLite copies the WAL's pages into the
//! file and fsyncs both, a millisecond or so each. Evicting idle objects closes their
//! files, and a sweep may evict thousands, so on the JavaScript thread that froze every
//! object (100 evictions took 58 ms). Here a thread of its own closes them, started when
//! there is something to close and gone when there is not.
//!
//! A file being closed still holds its lock (file_lock.rs), so whoever opens it again —
//! this process re-touching the object, or another process once the registry released its
//! folder — first waits for that close (`wait_for`, `wait_all`). Closing our descriptor
//! after a new connection had opened the file would also drop the new connection's lock.

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

/// Something to close: dropping it closes the file (and checkpoints it).
pub type Closing = Box<dyn Send>;

#[derive(Default)]
pub struct Closer {
    shared: Arc<Shared>,
}

#[derive(Default)]
struct Shared {
    state: Mutex<State>,
    /// Signalled whenever a close finishes.
    closed: Condvar,
}

#[derive(Default)]
struct State {
    queue: VecDeque<(PathBuf, Closing)>,
    /// Files queued or being closed, with how many closes of each are pending.
    pending: HashMap<PathBuf, usize>,
    /// A thread is draining the queue.
    running: bool,
}

impl Closer {
    /// Closes `what` (the open database of `path`) on the closer's thread. If no thread
    /// can be started, it is closed here.
    pub fn close(&self, path: PathBuf, what: Closing) {
        let mut state = self.lock();
        *state.pending.entry(path.clone()).or_default() += 1;
        state.queue.push_back((path, what));
        if state.running {
            return;
        }
        state.running = true;
        drop(state);
        let shared = self.shared.clone();
        if std::thread::Builder::new().name("open-do-close".into()).spawn(move || drain(&shared)).is_err() {
            drain(&self.shared);
        }
    }

    /// Blocks until no close of `path` is pending.
    pub fn wait_for(&self, path: &Path) {
        let mut state = self.lock();
        while state.pending.contains_key(path) {
            state = self.shared.closed.wait(state).unwrap_or_else(|p| p.into_inner());
        }
    }

    /// Blocks until every pending close is done.
    pub fn wait_all(&self) {
        let mut state = self.lock();
        while !state.pending.is_empty() {
            state = self.shared.closed.wait(state).unwrap_or_else(|p| p.into_inner());
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.shared.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Closes after which freeing memory is worth a trim (which holds the allocator's lock while
/// it walks the free memory: not after every eviction of a steady trickle).
pub const CLOSES_WORTH_A_TRIM: usize = 32;

/// Returns the memory freed by closed connections to the system. glibc's allocator keeps
/// freed memory for reuse, and what thousands of connections freed, scattered among live
/// allocations, stays in the process otherwise (RSS did not move when 2,000 closed).
pub fn give_back_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases free memory of the allocator's own arenas.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Closes what is queued, then ends (the next close starts a new thread), giving the
/// memory the closed connections held back to the system after many.
fn drain(shared: &Shared) {
    let mut closed = 0;
    let mut state = shared.state.lock().unwrap_or_else(|p| p.into_inner());
    while let Some((path, what)) = state.queue.pop_front() {
        drop(state);
        drop(what);
        closed += 1;
        state = shared.state.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = state.pending.get_mut(&path) {
            *n -= 1;
            if *n == 0 {
                state.pending.remove(&path);
            }
        }
        shared.closed.notify_all();
    }
    state.running = false;
    drop(state);
    if closed >= CLOSES_WORTH_A_TRIM {
        give_back_freed_memory();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    struct Slow(Arc<AtomicUsize>);
    impl Drop for Slow {
        fn drop(&mut self) {
            std::thread::sleep(Duration::from_millis(20));
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn closes_off_this_thread_and_waits_per_file_and_for_all() {
        let closer = Closer::default();
        let done = Arc::new(AtomicUsize::new(0));
        let a = PathBuf::from("/a");
        for i in 0..5 {
            closer.close(if i == 0 { a.clone() } else { PathBuf::from(format!("/b{i}")) }, Box::new(Slow(done.clone())));
        }
        // The caller did not wait for the five 20 ms closes.
        assert!(done.load(Ordering::SeqCst) < 5);
        closer.wait_for(&a);
        assert!(done.load(Ordering::SeqCst) >= 1);
        closer.wait_all();
        assert_eq!(done.load(Ordering::SeqCst), 5);
        // A later close starts a thread again.
        closer.close(a.clone(), Box::new(Slow(done.clone())));
        closer.wait_all();
        assert_eq!(done.load(Ordering::SeqCst), 6);
    }
}
