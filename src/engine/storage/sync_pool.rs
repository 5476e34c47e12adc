//! The threads that run fsyncs, so that the objects' commits reach the disk in parallel.
//!
//! Why not the host's thread pool: libuv has 4 threads by default, shared with file and
//! DNS work, and a fast disk takes many fsyncs at once (on this project's VM, 64
//! increments in flight over 1,000 objects run at ~3.7k/s with 4 threads and ~8k/s with
//! 32). A thread here spends its life blocked in fsync, so many of them cost no CPU. They
//! start on demand, up to `max_threads`, and park when there is nothing to do.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex};

use super::durability::SyncTarget;

/// Called on a pool thread when a job is done: its token, and how many of its database's
/// commits are durable now (or why the fsync failed).
pub type Completion = Box<dyn Fn(u32, Result<u64, String>) + Send + Sync>;

pub struct SyncPool {
    shared: Arc<Shared>,
}

struct Shared {
    state: Mutex<State>,
    work: Condvar,
    max_threads: usize,
    done: Completion,
}

#[derive(Default)]
struct State {
    jobs: VecDeque<(u32, SyncTarget)>,
    threads: usize,
    idle: usize,
}

impl SyncPool {
    pub fn new(max_threads: usize, done: Completion) -> SyncPool {
        SyncPool {
            shared: Arc::new(Shared { state: Mutex::new(State::default()), work: Condvar::new(), max_threads: max_threads.max(1), done }),
        }
    }

    /// Runs `target` on a pool thread; `done(token, result)` follows.
    pub fn submit(&self, token: u32, target: SyncTarget) {
        let mut state = self.shared.state.lock().unwrap_or_else(|p| p.into_inner());
        state.jobs.push_back((token, target));
        if state.idle > 0 {
            drop(state);
            self.shared.work.notify_one();
        } else if state.threads < self.shared.max_threads {
            state.threads += 1;
            drop(state);
            let shared = self.shared.clone();
            let spawned = std::thread::Builder::new().name("open-do-fsync".into()).spawn(move || work(&shared));
            if spawned.is_err() {
                // No thread to be had: the jobs wait for the threads that exist.
                self.shared.state.lock().unwrap_or_else(|p| p.into_inner()).threads -= 1;
            }
        }
    }
}

fn work(shared: &Shared) {
    let mut state = shared.state.lock().unwrap_or_else(|p| p.into_inner());
    loop {
        if let Some((token, target)) = state.jobs.pop_front() {
            drop(state);
            (shared.done)(token, target.run());
            state = shared.state.lock().unwrap_or_else(|p| p.into_inner());
        } else {
            state.idle += 1;
            state = shared.work.wait(state).unwrap_or_else(|p| p.into_inner());
            state.idle -= 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::storage::commit_watermark::CommitWatermark;
    use std::sync::mpsc;

    #[test]
    fn runs_every_job_once_and_reports_its_token() {
        let (tx, rx) = mpsc::channel();
        let tx = Mutex::new(tx);
        let pool = SyncPool::new(4, Box::new(move |token, result| tx.lock().unwrap().send((token, result.is_ok())).unwrap()));
        for token in 0..100 {
            let watermark = Arc::new(Mutex::new(CommitWatermark::default()));
            watermark.lock().unwrap().committed(false);
            watermark.lock().unwrap().start_sync().unwrap();
            pool.submit(token, SyncTarget { watermark, wal: None, taken_before: 0, new_files: None, alarm_index: None });
        }
        let mut seen: Vec<u32> = (0..100).map(|_| rx.recv().unwrap()).map(|(t, ok)| if ok { t } else { u32::MAX }).collect();
        seen.sort();
        assert_eq!(seen, (0..100).collect::<Vec<_>>());
        assert!(pool.shared.state.lock().unwrap().threads <= 4);
    }
}
