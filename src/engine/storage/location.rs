//! Where objects' databases live: `<dataDir>/<uniqueKey>/<idHex>.sqlite`, workerd's layout,
//! or nowhere (`":memory:"`). Names that come from users never reach the file system
//! unchecked: a uniqueKey must be one plain folder name and an id is 64 hex digits.

use std::path::{Path, PathBuf};

use super::error::{Result, StorageError};
use crate::engine::ids;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// Each object gets a private in-memory database that lives as long as the registry.
    Memory,
    Directory(PathBuf),
}

impl Location {
    pub fn parse(data_dir: &str) -> Location {
        if data_dir == ":memory:" {
            Location::Memory
        } else {
            Location::Directory(PathBuf::from(data_dir))
        }
    }

    /// The database file of one object, or None for in-memory storage.
    pub fn object_path(&self, unique_key: &str, id_hex: &str) -> Result<Option<PathBuf>> {
        check_unique_key(unique_key)?;
        ids::parse_hex(id_hex).map_err(|e| StorageError::type_error(e.message()))?;
        Ok(match self {
            Location::Memory => None,
            Location::Directory(dir) => {
                Some(dir.join(unique_key).join(format!("{}.sqlite", id_hex.to_ascii_lowercase())))
            }
        })
    }
}

/// A uniqueKey becomes a folder name, so it must be exactly one path segment.
pub fn check_unique_key(unique_key: &str) -> Result<()> {
    let bad = unique_key.is_empty()
        || unique_key.len() > 200
        || unique_key == "."
        || unique_key == ".."
        || unique_key.chars().any(|c| c == '/' || c == '\\' || c.is_control());
    if bad {
        return Err(StorageError::type_error(format!(
            "Invalid Durable Object namespace key {unique_key:?}: it names a folder under dataDir, \
             so it must be 1-200 characters without \"/\", \"\\\" or control characters, \
             and not \".\" or \"..\"."
        )));
    }
    Ok(())
}

/// The WAL file SQLite keeps beside a database.
pub fn wal_path(db: &Path) -> PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push("-wal");
    PathBuf::from(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_is_workerds() {
        let loc = Location::parse("/data");
        let id = "ab".repeat(32);
        assert_eq!(
            loc.object_path("w-Counter", &id).unwrap(),
            Some(PathBuf::from(format!("/data/w-Counter/{id}.sqlite")))
        );
        assert_eq!(Location::parse(":memory:").object_path("w-Counter", &id).unwrap(), None);
    }

    #[test]
    fn names_cannot_escape_the_data_dir() {
        let loc = Location::parse("/data");
        let id = "ab".repeat(32);
        for bad in ["", ".", "..", "../x", "a/b", "a\\b", "a\0b", "a\nb"] {
            assert!(loc.object_path(bad, &id).is_err(), "{bad:?} accepted");
        }
        assert!(loc.object_path("ok", "../../etc/passwd").is_err());
        assert!(loc.object_path("ok", &"zz".repeat(32)).is_err());
    }
}
