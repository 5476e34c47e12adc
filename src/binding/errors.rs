//! Engine errors become the JavaScript error class Cloudflare uses for them.

use napi::{Env, Error, Status};

use crate::engine::storage::{ErrorKind, StorageError};

/// Throws `err` as its JS class and returns the marker that tells napi an exception is
/// already pending.
pub fn throw<T>(env: &Env, err: StorageError) -> napi::Result<T> {
    let _ = match err.kind {
        ErrorKind::TypeError => env.throw_type_error(&err.message, None),
        ErrorKind::RangeError => env.throw_range_error(&err.message, None),
        ErrorKind::Error => env.throw_error(&err.message, None),
    };
    Err(Error::from_status(Status::PendingException))
}

pub trait OrThrow<T> {
    fn or_throw(self, env: &Env) -> napi::Result<T>;
}

impl<T> OrThrow<T> for Result<T, StorageError> {
    fn or_throw(self, env: &Env) -> napi::Result<T> {
        self.or_else(|e| throw(env, e))
    }
}
