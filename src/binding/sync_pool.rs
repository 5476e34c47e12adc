//! The fsync pool of this JavaScript thread (engine::storage::SyncPool) and how its
//! completions come back: one threadsafe function, set up once by `syncInit`.
//!
//! The function is weak (it never keeps the process alive by itself): lib/commits.ts
//! holds the event loop open while syncs are in flight, and only then.

use std::cell::RefCell;
use std::sync::Arc;

use napi::bindgen_prelude::Function;
use napi::threadsafe_function::ThreadsafeFunctionCallMode;
use napi::Env;
use napi_derive::napi;

use super::errors::OrThrow;
use crate::engine::storage::{StorageError, SyncPool, SyncTarget};

thread_local! {
    static POOL: RefCell<Option<SyncPool>> = const { RefCell::new(None) };
}

/// Sets up the pool: `done([token, durable, error])` runs on this thread after each sync:
/// the token given to syncStart, how many of the object's commits are durable now, and
/// `error` (null on success). At most `maxThreads` fsyncs run at once.
#[napi(ts_args_type = "done: (result: [token: number, durable: number, error: string | null]) => void, maxThreads: number")]
pub fn sync_init(done: Function<(u32, f64, Option<String>), ()>, max_threads: u32) -> napi::Result<()> {
    let callback = done.build_threadsafe_function().callee_handled::<false>().weak::<true>().build()?;
    let callback = Arc::new(callback);
    let pool = SyncPool::new(
        max_threads as usize,
        Box::new(move |token, result| {
            let (durable, error) = match result {
                Ok(durable) => (durable as f64, None),
                Err(message) => (0.0, Some(message)),
            };
            callback.call((token, durable, error), ThreadsafeFunctionCallMode::NonBlocking);
        }),
    );
    POOL.with_borrow_mut(|p| *p = Some(pool));
    Ok(())
}

pub(super) fn submit(env: &Env, token: u32, target: SyncTarget) -> napi::Result<()> {
    POOL.with_borrow(|pool| match pool {
        Some(pool) => {
            pool.submit(token, target);
            Ok(())
        }
        None => Err(StorageError::error("syncInit() was not called")),
    })
    .or_throw(env)
}
