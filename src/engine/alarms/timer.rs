//! The alarm timer: one thread that sleeps until the earliest due alarm and reports what
//! has fallen due in batches.
//!
//! An ordered set of (due time, key) rather than a hashed wheel: alarms are set to the
//! millisecond and are few per object, inserting and cancelling is O(log n), and taking
//! what is due is a walk from the front. Everything due at one wake-up is reported in
//! batches of up to `MAX_BATCH` keys, one call each, so 10,000 alarms due at the same
//! millisecond cost the host ten calls rather than 10,000 (each call is a trip across
//! threads into JavaScript). The thread starts with the first alarm and parks while there is
//! none, so an idle timer costs nothing; it never keeps the host process alive (the host's
//! callback decides that).

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Names an alarm: the host maps keys to objects.
pub type AlarmKey = u32;

/// Called on the timer thread with alarms that fell due, earliest first.
pub type Fire = Box<dyn Fn(Vec<AlarmKey>) + Send + Sync>;

/// The most keys one call reports.
pub const MAX_BATCH: usize = 1024;

pub struct AlarmTimer {
    shared: Arc<Shared>,
}

struct Shared {
    state: Mutex<State>,
    wake: Condvar,
    fire: Fire,
}

#[derive(Default)]
struct State {
    queue: BTreeSet<(i64, AlarmKey)>,
    due: HashMap<AlarmKey, i64>,
    running: bool,
}

/// Milliseconds since the Unix epoch, the unit alarm times come in.
pub fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

impl AlarmTimer {
    pub fn new(fire: Fire) -> AlarmTimer {
        AlarmTimer { shared: Arc::new(Shared { state: Mutex::new(State::default()), wake: Condvar::new(), fire }) }
    }

    /// Sets `key` to fall due at `at_ms` (replacing an earlier time); a past time is due now.
    pub fn schedule(&self, key: AlarmKey, at_ms: i64) {
        let mut state = self.lock();
        if let Some(old) = state.due.insert(key, at_ms) {
            state.queue.remove(&(old, key));
        }
        state.queue.insert((at_ms, key));
        if !state.running {
            state.running = true;
            let shared = self.shared.clone();
            let spawned = std::thread::Builder::new().name("open-do-alarms".into()).spawn(move || run(&shared));
            if spawned.is_err() {
                state.running = false;
            }
        }
        drop(state);
        self.shared.wake.notify_one();
    }

    /// Forgets `key`'s pending time, if any.
    pub fn cancel(&self, key: AlarmKey) {
        let mut state = self.lock();
        if let Some(old) = state.due.remove(&key) {
            state.queue.remove(&(old, key));
        }
    }

    /// How many alarms are pending.
    pub fn pending(&self) -> usize {
        self.lock().queue.len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.shared.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn run(shared: &Shared) {
    let mut state = shared.state.lock().unwrap_or_else(|p| p.into_inner());
    loop {
        let Some(&(at, key)) = state.queue.first() else {
            state = shared.wake.wait(state).unwrap_or_else(|p| p.into_inner());
            continue;
        };
        let now = now_ms();
        if at > now {
            let wait = Duration::from_millis((at - now) as u64);
            state = shared.wake.wait_timeout(state, wait).unwrap_or_else(|p| p.into_inner()).0;
            continue;
        }
        let mut batch = vec![key];
        state.queue.pop_first();
        state.due.remove(&key);
        while batch.len() < MAX_BATCH {
            match state.queue.first() {
                Some(&(at, key)) if at <= now => {
                    state.queue.pop_first();
                    state.due.remove(&key);
                    batch.push(key);
                }
                _ => break,
            }
        }
        drop(state);
        (shared.fire)(batch);
        state = shared.state.lock().unwrap_or_else(|p| p.into_inner());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    /// Sizes of the batches a timer reported.
    type BatchSizes = Arc<Mutex<Vec<usize>>>;

    /// A timer whose batches arrive one key at a time.
    fn timer() -> (AlarmTimer, mpsc::Receiver<AlarmKey>) {
        let (timer, rx, _) = batched_timer();
        (timer, rx)
    }

    fn batched_timer() -> (AlarmTimer, mpsc::Receiver<AlarmKey>, BatchSizes) {
        let (tx, rx) = mpsc::channel();
        let tx = Mutex::new(tx);
        let sizes = Arc::new(Mutex::new(Vec::new()));
        let seen = sizes.clone();
        let timer = AlarmTimer::new(Box::new(move |keys: Vec<AlarmKey>| {
            seen.lock().unwrap().push(keys.len());
            for key in keys {
                tx.lock().unwrap().send(key).unwrap();
            }
        }));
        (timer, rx, sizes)
    }

    #[test]
    fn fires_in_time_order_and_past_times_at_once() {
        let (t, rx) = timer();
        let now = now_ms();
        t.schedule(3, now + 60);
        t.schedule(1, now - 1_000);
        t.schedule(2, now + 20);
        let order: Vec<AlarmKey> = (0..3).map(|_| rx.recv_timeout(Duration::from_secs(5)).unwrap()).collect();
        assert_eq!(order, vec![1, 2, 3]);
        assert_eq!(t.pending(), 0);
    }

    #[test]
    fn rescheduling_replaces_and_cancelling_forgets() {
        let (t, rx) = timer();
        let now = now_ms();
        t.schedule(1, now + 10_000);
        t.schedule(1, now + 10);
        t.schedule(2, now + 15);
        t.cancel(2);
        assert_eq!(rx.recv_timeout(Duration::from_secs(5)).unwrap(), 1);
        assert!(rx.recv_timeout(Duration::from_millis(100)).is_err(), "1 fired once, 2 never");
        assert_eq!(t.pending(), 0);
    }

    #[test]
    fn ten_thousand_due_together_all_fire_once_in_a_few_batches() {
        let (t, rx, sizes) = batched_timer();
        let at = now_ms() + 50;
        for key in 0..10_000 {
            t.schedule(key, at);
        }
        let mut seen = vec![false; 10_000];
        for _ in 0..10_000 {
            let key = rx.recv_timeout(Duration::from_secs(5)).unwrap() as usize;
            assert!(!seen[key]);
            seen[key] = true;
        }
        assert!(rx.recv_timeout(Duration::from_millis(50)).is_err());
        let sizes = sizes.lock().unwrap();
        assert!(sizes.iter().all(|&n| n <= MAX_BATCH), "{sizes:?}");
        assert!(sizes.len() <= 10_000 / MAX_BATCH + 2, "due together, reported together: {} batches", sizes.len());
    }
}
