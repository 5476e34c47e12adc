//! Durable Object ids for `lib/namespace.ts`. `jurisdiction` is None for an unrestricted
//! namespace.

use napi::Env;
use napi_derive::napi;

use super::errors::OrThrow;
use crate::engine::ids::{parse_any, to_hex, IdKey};
use crate::engine::storage::StorageError;

#[napi]
pub fn id_from_name(unique_key: String, name: String, jurisdiction: Option<String>) -> String {
    to_hex(&IdKey::for_jurisdiction(&unique_key, jurisdiction.as_deref()).id_from_name(&name))
}

/// `id_from_name` for a name that is not well-formed UTF-16 (it holds a lone surrogate),
/// given as WTF-8: napi's string conversion would turn each lone surrogate into U+FFFD and
/// merge names that workerd keeps apart.
#[napi]
pub fn id_from_wtf8_name(unique_key: String, name: &[u8], jurisdiction: Option<String>) -> String {
    to_hex(&IdKey::for_jurisdiction(&unique_key, jurisdiction.as_deref()).id_from_name(name))
}

#[napi]
pub fn new_unique_id(unique_key: String, jurisdiction: Option<String>) -> String {
    to_hex(&IdKey::for_jurisdiction(&unique_key, jurisdiction.as_deref()).new_unique_id())
}

/// An id's lowercase text and the jurisdiction it belongs to.
#[napi(object)]
pub struct ParsedId {
    pub hex: String,
    pub jurisdiction: Option<String>,
}

/// Validates an id's text and namespace MAC (any jurisdiction). Throws workerd's TypeErrors.
#[napi]
pub fn parse_id(env: Env, unique_key: String, text: String) -> napi::Result<ParsedId> {
    parse_any(&unique_key, &text)
        .map(|(id, jurisdiction)| ParsedId { hex: to_hex(&id), jurisdiction: jurisdiction.map(str::to_owned) })
        .map_err(|e| StorageError::type_error(e.message()))
        .or_throw(&env)
}
