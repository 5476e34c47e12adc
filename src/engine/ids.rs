//! Durable Object ids, derived exactly as workerd's local mode derives them.
//!
//! An id is 32 bytes, shown as 64 lowercase hex digits. The namespace key is
//! `SHA-256(uniqueKey)`. The first 16 bytes are either random (`newUniqueId`) or
//! `HMAC-SHA256(nsKey, name)[..16]` (`idFromName`); the last 16 bytes are
//! `HMAC-SHA256(nsKey, first16)[..16]`, a MAC that ties the id to its namespace. Because
//! Miniflare uses `<workerName>-<ClassName>` as the uniqueKey, a wrangler project's ids are
//! the same here and under `wrangler dev`, and so are its storage file names.

use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};

type HmacSha256 = Hmac<Sha256>;

/// Length of an id in bytes; its text form has twice as many hex digits.
pub const ID_LEN: usize = 32;

/// Why a string is not an id of a namespace. The messages are workerd's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdError {
    Malformed,
    WrongNamespace,
}

impl IdError {
    pub fn message(self) -> &'static str {
        match self {
            IdError::Malformed => "Invalid Durable Object ID: must be 64 hex digits",
            IdError::WrongNamespace => "Durable Object ID is not valid for this namespace.",
        }
    }
}

/// Cloudflare's jurisdictions (`ns.jurisdiction(name)`).
pub const JURISDICTIONS: [&str; 4] = ["eu", "fedramp", "fedramp-high", "us"];

/// A namespace's id key, computed once per namespace.
#[derive(Clone)]
pub struct IdKey {
    key: [u8; 32],
}

impl IdKey {
    pub fn new(unique_key: &str) -> Self {
        IdKey { key: Sha256::digest(unique_key.as_bytes()).into() }
    }

    /// The key of the namespace restricted to `jurisdiction` (None: unrestricted, which is
    /// workerd's key). workerd's local mode has no jurisdictions; ours give each its own
    /// key, so that one name maps to a different id in each, as on Cloudflare, and an id
    /// tells which jurisdiction it belongs to.
    pub fn for_jurisdiction(unique_key: &str, jurisdiction: Option<&str>) -> Self {
        match jurisdiction {
            None => IdKey::new(unique_key),
            Some(j) => IdKey { key: Sha256::new().chain_update(unique_key).chain_update([0u8]).chain_update(j).finalize().into() },
        }
    }

    fn mac(&self, data: &[u8]) -> [u8; 32] {
        let mut mac = HmacSha256::new_from_slice(&self.key).expect("HMAC accepts any key length");
        mac.update(data);
        mac.finalize().into_bytes().into()
    }

    fn seal(&self, first: [u8; 16]) -> [u8; ID_LEN] {
        let mut id = [0u8; ID_LEN];
        id[..16].copy_from_slice(&first);
        id[16..].copy_from_slice(&self.mac(&first)[..16]);
        id
    }

    /// The id a name maps to: the same name always gives the same id in one namespace.
    /// `name` is the name's UTF-8, or WTF-8 when it holds a lone surrogate: workerd hashes
    /// the string's code units that way, so "x\u{D800}", "x\u{DC00}" and "x\u{FFFD}" are three
    /// names with three ids (checked against workerd).
    pub fn id_from_name(&self, name: impl AsRef<[u8]>) -> [u8; ID_LEN] {
        let mut first = [0u8; 16];
        first.copy_from_slice(&self.mac(name.as_ref())[..16]);
        self.seal(first)
    }

    /// A fresh random id that no name maps to.
    pub fn new_unique_id(&self) -> [u8; ID_LEN] {
        let mut first = [0u8; 16];
        getrandom::fill(&mut first).expect("the OS random source is available");
        self.seal(first)
    }

    /// Parses the text form of an id and checks that it belongs to this namespace.
    pub fn parse(&self, text: &str) -> Result<[u8; ID_LEN], IdError> {
        let id = parse_hex(text)?;
        let mut first = [0u8; 16];
        first.copy_from_slice(&id[..16]);
        if self.seal(first) == id {
            Ok(id)
        } else {
            Err(IdError::WrongNamespace)
        }
    }
}

/// Parses an id of the namespace `unique_key` from any jurisdiction (or none); returns it
/// with the jurisdiction it belongs to.
pub fn parse_any(unique_key: &str, text: &str) -> Result<([u8; ID_LEN], Option<&'static str>), IdError> {
    let unrestricted = IdKey::new(unique_key).parse(text);
    if unrestricted != Err(IdError::WrongNamespace) {
        return unrestricted.map(|id| (id, None));
    }
    for j in JURISDICTIONS {
        if let Ok(id) = IdKey::for_jurisdiction(unique_key, Some(j)).parse(text) {
            return Ok((id, Some(j)));
        }
    }
    Err(IdError::WrongNamespace)
}

/// Parses 64 hex digits (either case) without checking the namespace.
pub fn parse_hex(text: &str) -> Result<[u8; ID_LEN], IdError> {
    let mut id = [0u8; ID_LEN];
    if text.len() != ID_LEN * 2 {
        return Err(IdError::Malformed);
    }
    hex::decode_to_slice(text, &mut id).map_err(|_| IdError::Malformed)?;
    Ok(id)
}

pub fn to_hex(id: &[u8; ID_LEN]) -> String {
    hex::encode(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn named_ids_are_deterministic_per_namespace() {
        let a = IdKey::new("test-Counter");
        let b = IdKey::new("test-Other");
        assert_eq!(a.id_from_name("x"), a.id_from_name("x"));
        assert_ne!(a.id_from_name("x"), a.id_from_name("y"));
        assert_ne!(a.id_from_name("x"), b.id_from_name("x"));
    }

    #[test]
    fn ids_carry_their_namespace_mac() {
        let a = IdKey::new("test-Counter");
        let b = IdKey::new("test-Other");
        let id = to_hex(&a.id_from_name("x"));
        assert_eq!(a.parse(&id), Ok(a.id_from_name("x")));
        assert_eq!(a.parse(&id.to_uppercase()), Ok(a.id_from_name("x")));
        assert_eq!(b.parse(&id), Err(IdError::WrongNamespace));
        let unique = a.new_unique_id();
        assert_ne!(unique, a.new_unique_id());
        assert!(a.parse(&to_hex(&unique)).is_ok());
    }

    #[test]
    fn malformed_ids_are_rejected() {
        let a = IdKey::new("k");
        assert_eq!(a.parse("abc"), Err(IdError::Malformed));
        assert_eq!(a.parse(&"g".repeat(64)), Err(IdError::Malformed));
        assert_eq!(a.parse(&"0".repeat(66)), Err(IdError::Malformed));
    }

    #[test]
    fn matches_workerd_derivation() {
        // Computed independently with Node's crypto (createHash/createHmac) for
        // uniqueKey "test-Counter" and name "hello", following workerd's actor-id-impl.
        let id = to_hex(&IdKey::new("test-Counter").id_from_name("hello"));
        assert_eq!(id.len(), 64);
        assert_eq!(id, KNOWN_HELLO_ID);
    }

    #[test]
    fn jurisdictions_give_other_ids_that_say_where_they_belong() {
        let plain = IdKey::new("ns");
        let eu = IdKey::for_jurisdiction("ns", Some("eu"));
        assert_ne!(plain.id_from_name("x"), eu.id_from_name("x"));
        let eu_id = to_hex(&eu.id_from_name("x"));
        assert_eq!(parse_any("ns", &eu_id), Ok((eu.id_from_name("x"), Some("eu"))));
        assert_eq!(parse_any("ns", &to_hex(&plain.id_from_name("x"))).unwrap().1, None);
        assert_eq!(plain.parse(&eu_id), Err(IdError::WrongNamespace));
        assert_eq!(parse_any("other", &eu_id), Err(IdError::WrongNamespace));
    }

    const KNOWN_HELLO_ID: &str = "b10174d18d4525d26a3422c50179339222437a1d4fc968abe55ff659e7a70a1b";
}
