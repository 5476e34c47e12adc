//! Per-object SQLite storage with Cloudflare's semantics and workerd's on-disk layout.
//!
//! Storage is synchronous and runs on the JavaScript thread (the SQL and sync-KV APIs are
//! synchronous in Cloudflare too). The one slow step, fsync, is handed to other threads
//! through `durability::SyncTarget`.

pub mod alarm_index;
mod alarm_metadata;
pub mod authorizer;
mod closer;
pub mod commit_watermark;
mod connection;
pub mod durability;
pub mod error;
mod file_lock;
mod folder_lock;
mod group_sync;
pub mod key_range;
mod kv_table;
mod local_bookmark;
pub mod location;
pub mod object_database;
pub mod object_store;
pub mod raw_statement;
pub mod sql_limits;
pub mod sql_text;
pub mod statement_timer;
pub mod sync_pool;

pub use authorizer::sqlite_error_message;
pub use commit_watermark::SyncStart;
pub use durability::{syncs_completed, Durability, SyncTarget};
pub use error::{ErrorKind, Result, StorageError};
pub use key_range::{KeyRange, ListOptions};
pub use location::Location;
pub use object_database::{CommitOutcome, CursorState, ObjectDatabase, RowSink};
pub use object_store::{Handle, ObjectStore};
pub use raw_statement::{SqlParam, SqlValue};
pub use sync_pool::SyncPool;
