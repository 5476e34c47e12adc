//! The engine: everything that does not need a JavaScript runtime.

pub mod actor;
pub mod ids;
pub mod storage;
