//! Storage errors carry the JavaScript error class Cloudflare throws for them, so the binding
//! can rethrow them unchanged (`TypeError: put() called with undefined value.`, SQLite
//! failures as `Error: <message>: SQLITE_<CODE>`, ...).

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    Error,
    TypeError,
    RangeError,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorageError {
    pub kind: ErrorKind,
    pub message: String,
}

impl StorageError {
    pub fn error(message: impl Into<String>) -> Self {
        StorageError { kind: ErrorKind::Error, message: message.into() }
    }
    pub fn type_error(message: impl Into<String>) -> Self {
        StorageError { kind: ErrorKind::TypeError, message: message.into() }
    }
    pub fn range_error(message: impl Into<String>) -> Self {
        StorageError { kind: ErrorKind::RangeError, message: message.into() }
    }
    pub fn io(context: &str, err: std::io::Error) -> Self {
        StorageError::error(format!("{context}: {err}"))
    }
}

impl fmt::Display for StorageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}: {}", self.kind, self.message)
    }
}

impl std::error::Error for StorageError {}

impl From<rusqlite::Error> for StorageError {
    fn from(err: rusqlite::Error) -> Self {
        StorageError::error(super::sqlite_error_message(&err))
    }
}

pub type Result<T> = std::result::Result<T, StorageError>;
