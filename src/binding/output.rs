//! Results travel back to JavaScript through a `Uint8Array` the caller owns and reuses.
//!
//! Functions build their result in a thread-local `Vec` and copy it into the caller's
//! buffer. When it does not fit, the bytes are kept here and the function returns their
//! length; seeing a length larger than its buffer, the caller fetches them with
//! `takeOverflow()` (one Buffer allocation, only for large results).

use std::cell::RefCell;

use napi::bindgen_prelude::Buffer;
use napi_derive::napi;

thread_local! {
    static SCRATCH: RefCell<Vec<u8>> = RefCell::new(Vec::with_capacity(64 * 1024));
    static OVERFLOW: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Runs `build` with an empty scratch vector, then delivers what it wrote into `out`.
/// Returns the result of `build` and the byte length delivered.
pub fn deliver<T>(out: &mut [u8], build: impl FnOnce(&mut Vec<u8>) -> T) -> (T, usize) {
    SCRATCH.with_borrow_mut(|scratch| {
        scratch.clear();
        let value = build(scratch);
        let len = scratch.len();
        if len <= out.len() {
            out[..len].copy_from_slice(scratch);
        } else {
            OVERFLOW.with_borrow_mut(|o| {
                o.clear();
                o.extend_from_slice(scratch);
            });
        }
        // Do not let one huge result pin memory for the life of the thread.
        if scratch.capacity() > 4 << 20 {
            *scratch = Vec::with_capacity(64 * 1024);
        }
        (value, len)
    })
}

/// The bytes of the last result that did not fit the caller's buffer.
#[napi]
pub fn take_overflow() -> Buffer {
    OVERFLOW.with_borrow_mut(std::mem::take).into()
}
