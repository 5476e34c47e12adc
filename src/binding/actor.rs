//! Mailbox functions for `lib/object-runtime.ts` (see engine::actor). Free functions on
//! integer handles: every event crosses here two or three times.

use std::cell::RefCell;

use napi::Env;
use napi_derive::napi;

use super::errors::OrThrow;
use crate::engine::actor::{Mailbox, Offer, Scheduler};
use crate::engine::storage::StorageError;

thread_local! {
    /// Objects live on the JavaScript thread that created them.
    static SCHEDULER: RefCell<Scheduler> = RefCell::new(Scheduler::default());
}

fn with_mailbox<T>(env: &Env, handle: u32, f: impl FnOnce(&mut Mailbox) -> T) -> napi::Result<T> {
    SCHEDULER
        .with_borrow_mut(|s| s.get(handle).map(f))
        .ok_or_else(|| StorageError::error(format!("no mailbox {handle}")))
        .or_throw(env)
}

#[napi]
pub fn mailbox_open(capacity: u32) -> u32 {
    SCHEDULER.with_borrow_mut(|s| s.open(capacity as usize))
}

#[napi]
pub fn mailbox_close(handle: u32) {
    SCHEDULER.with_borrow_mut(|s| s.close(handle));
}

/// 0: start it now; 1: it waits; 2: it waits, schedule a delivery point; 3: overloaded.
#[napi]
pub fn mailbox_offer(env: Env, handle: u32, token: u32) -> napi::Result<u32> {
    with_mailbox(&env, handle, |m| match m.offer(token) {
        Offer::Start => 0,
        Offer::Wait => 1,
        Offer::WaitAndSchedule => 2,
        Offer::Overloaded => 3,
    })
}

/// A delivery point: 0 when nothing starts, else `token * 2 + 1` if another delivery point
/// is wanted, `token * 2` if not (tokens stay below 2^31).
#[napi]
pub fn mailbox_deliver(env: Env, handle: u32) -> napi::Result<u32> {
    with_mailbox(&env, handle, |m| match m.deliver() {
        None => 0,
        Some(token) => token << 1 | m.delivery_wanted() as u32,
    })
}

/// An event finished: the token of the event to start now, or 0.
#[napi]
pub fn mailbox_finished(env: Env, handle: u32) -> napi::Result<u32> {
    with_mailbox(&env, handle, |m| m.finished().unwrap_or(0))
}

/// Opens a critical section; false at the nesting limit.
#[napi]
pub fn mailbox_enter_critical(env: Env, handle: u32) -> napi::Result<bool> {
    with_mailbox(&env, handle, |m| m.enter_critical())
}

/// Closes a critical section; true when a delivery point must be scheduled.
#[napi]
pub fn mailbox_exit_critical(env: Env, handle: u32) -> napi::Result<bool> {
    with_mailbox(&env, handle, |m| m.exit_critical())
}

/// The object was reset: returns the waiting events' tokens (they fail).
#[napi]
pub fn mailbox_reset(env: Env, handle: u32) -> napi::Result<Vec<u32>> {
    with_mailbox(&env, handle, |m| m.reset())
}

/// Nothing running, waiting or holding the gate.
#[napi]
pub fn mailbox_idle(env: Env, handle: u32) -> napi::Result<bool> {
    with_mailbox(&env, handle, |m| m.is_idle())
}
