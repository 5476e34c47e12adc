//! A time limit on user SQL.
//!
//! Storage runs on the JavaScript thread, so a statement that never ends (an unbounded
//! recursive CTE, a cross join of big tables) would freeze every object, the Worker and
//! every timer of the process for good. SQLite calls a progress handler every few thousand
//! virtual-machine instructions; ours interrupts the statement once the native call that
//! runs it has taken longer than the limit, and the caller gets a clear error while the
//! object stays usable.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use rusqlite::Connection;

/// VM instructions between two looks at the clock: a look costs ~25 ns, this many
/// instructions some tens of microseconds, so the check costs well under 1%.
const INSTRUCTIONS_PER_CHECK: i32 = 10_000;

/// A connection's limit clock, shared with its progress handler.
#[derive(Clone, Debug)]
pub struct StatementTimer {
    /// Nanoseconds since `epoch()` after which the running statement is interrupted; 0 while
    /// no user call runs (our own statements outside one, commits included, are never
    /// interrupted; inside one, the BEGIN it opens could be, which fails just that call).
    deadline: Arc<AtomicU64>,
    /// Set by the handler when it interrupted, so the error can say why.
    fired: Arc<AtomicBool>,
}

fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

fn now_nanos() -> u64 {
    // Never 0, so that 0 can mean "no deadline".
    epoch().elapsed().as_nanos() as u64 + 1
}

impl StatementTimer {
    /// Installs the progress handler on `conn`.
    pub fn install(conn: &mut Connection) -> rusqlite::Result<StatementTimer> {
        let timer = StatementTimer { deadline: Arc::new(AtomicU64::new(0)), fired: Arc::new(AtomicBool::new(false)) };
        let (deadline, fired) = (timer.deadline.clone(), timer.fired.clone());
        conn.progress_handler(
            INSTRUCTIONS_PER_CHECK,
            Some(move || {
                let at = deadline.load(Ordering::Relaxed);
                if at == 0 || now_nanos() < at {
                    return false;
                }
                fired.store(true, Ordering::Relaxed);
                true
            }),
        )?;
        Ok(timer)
    }

    /// Starts the clock for one call that runs user SQL; it stops when the guard drops.
    pub fn arm(&self, limit: Duration) -> Armed<'_> {
        self.fired.store(false, Ordering::Relaxed);
        let at = now_nanos().saturating_add(limit.as_nanos().min(u64::MAX as u128) as u64);
        self.deadline.store(at, Ordering::Relaxed);
        Armed { timer: self }
    }

    /// True when the last armed call was interrupted by the limit (not by anything else).
    pub fn fired(&self) -> bool {
        self.fired.load(Ordering::Relaxed)
    }
}

/// The clock of one call; disarms on drop.
pub struct Armed<'a> {
    timer: &'a StatementTimer,
}

impl Drop for Armed<'_> {
    fn drop(&mut self) {
        self.timer.deadline.store(0, Ordering::Relaxed);
    }
}

/// The message of a statement the limit interrupted.
pub fn timeout_message(limit: Duration) -> String {
    format!(
        "SQL statement interrupted: it ran longer than the time limit of {} ms (the Registry's sqlTimeLimit option): SQLITE_INTERRUPT",
        limit.as_millis()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const ENDLESS: &str = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c";

    #[test]
    fn an_endless_statement_is_interrupted_once_the_limit_passes() {
        let mut conn = Connection::open_in_memory().unwrap();
        let timer = StatementTimer::install(&mut conn).unwrap();
        let started = Instant::now();
        let result = {
            let _armed = timer.arm(Duration::from_millis(50));
            conn.query_row(ENDLESS, [], |r| r.get::<_, i64>(0))
        };
        assert_eq!(result.unwrap_err().sqlite_error_code(), Some(rusqlite::ErrorCode::OperationInterrupted));
        assert!(timer.fired());
        assert!(started.elapsed() >= Duration::from_millis(50));
        // Disarmed: the connection works, and unarmed statements are never interrupted.
        assert_eq!(conn.query_row("SELECT 1", [], |r| r.get::<_, i64>(0)).unwrap(), 1);
        let n: i64 = conn
            .query_row("WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 200000) SELECT count(*) FROM c", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 200_000);
    }
}
