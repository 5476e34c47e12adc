//! The engine: everything that does not need a JavaScript runtime.

pub mod actor;
pub mod alarms;
pub mod ids;
pub mod net;
pub mod storage;
