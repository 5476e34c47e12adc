//! Alarms: when each object's alarm is due. The times themselves live in the objects'
//! storage (see storage::alarm_metadata); this only wakes the host when one falls due.

pub mod timer;

pub use timer::{AlarmKey, AlarmTimer};
