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

/// Sets up the pool: `done([handle, error])` runs on this thread after each sync, with
/// `error` null on success. At most `maxThreads` fsyncs run at once.
#[napi(ts_args_type = "done: (result: [handle: number, error: string | null]) => void, maxThreads: number")]
pub fn sync_init(done: Function<(u32, Option<String>), ()>, max_threads: u32) -> napi::Result<()> {
    let callback = done.build_threadsafe_function().callee_handled::<false>().weak::<true>().build()?;
    let callback = Arc::new(callback);
    let pool = SyncPool::new(
        max_threads as usize,
        Box::new(move |handle, result| {
            let error = result.err().map(|e| format!("fsync failed: {e}"));
            callback.call((handle, error), ThreadsafeFunctionCallMode::NonBlocking);
        }),
    );
    POOL.with_borrow_mut(|p| *p = Some(pool));
    Ok(())
}

pub(super) fn submit(env: &Env, handle: u32, target: SyncTarget) -> napi::Result<()> {
    POOL.with_borrow(|pool| match pool {
        Some(pool) => {
            pool.submit(handle, target);
            Ok(())
        }
        None => Err(StorageError::error("syncInit() was not called")),
    })
    .or_throw(env)
}
