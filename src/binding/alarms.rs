//! The alarm timer of this JavaScript thread (engine::alarms::AlarmTimer). Due alarms come
//! back through one weak threadsafe function: a pending alarm never keeps the process
//! alive by itself.

use std::cell::RefCell;
use std::sync::Arc;

use napi::bindgen_prelude::Function;
use napi::threadsafe_function::ThreadsafeFunctionCallMode;
use napi_derive::napi;

use crate::engine::alarms::AlarmTimer;

thread_local! {
    static TIMER: RefCell<Option<AlarmTimer>> = const { RefCell::new(None) };
}

/// Sets up the timer: `fire(keys)` runs on this thread with alarms that fell due (a batch,
/// earliest first).
#[napi(ts_args_type = "fire: (keys: number[]) => void")]
pub fn alarm_timer_init(fire: Function<Vec<u32>, ()>) -> napi::Result<()> {
    let callback = Arc::new(fire.build_threadsafe_function().callee_handled::<false>().weak::<true>().build()?);
    let timer = AlarmTimer::new(Box::new(move |keys| {
        callback.call(keys, ThreadsafeFunctionCallMode::NonBlocking);
    }));
    TIMER.with_borrow_mut(|t| *t = Some(timer));
    Ok(())
}

/// Sets `key` to fall due at `atMs` (ms since the epoch), replacing an earlier time.
#[napi]
pub fn alarm_timer_schedule(key: u32, at_ms: f64) {
    TIMER.with_borrow(|t| {
        if let Some(t) = t {
            t.schedule(key, at_ms as i64)
        }
    });
}

#[napi]
pub fn alarm_timer_cancel(key: u32) {
    TIMER.with_borrow(|t| {
        if let Some(t) = t {
            t.cancel(key)
        }
    });
}
