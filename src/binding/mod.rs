//! The napi layer: the only code that knows about JavaScript. It converts arguments,
//! moves bytes through caller-provided buffers and turns engine errors into the JS error
//! classes Cloudflare throws. No storage logic lives here.
//!
//! Hot-path functions are free functions on integer handles (a `#[napi]` class method
//! costs ~10x more per call), and results are written into a `Uint8Array` the caller
//! reuses (creating a Buffer per call would cost more than the SQLite work itself).

mod actor;
mod alarms;
mod errors;
mod host_loop;
mod ids;
mod net;
mod output;
mod storage;
mod sync_pool;
mod wire;
