//! Durable Object ids for `lib/namespace.ts`.

use napi::Env;
use napi_derive::napi;

use super::errors::OrThrow;
use crate::engine::ids::{to_hex, IdKey};
use crate::engine::storage::StorageError;

#[napi]
pub fn id_from_name(unique_key: String, name: String) -> String {
    to_hex(&IdKey::new(&unique_key).id_from_name(&name))
}

#[napi]
pub fn new_unique_id(unique_key: String) -> String {
    to_hex(&IdKey::new(&unique_key).new_unique_id())
}

/// Validates an id's text and namespace MAC; returns it in lowercase. Throws workerd's
/// TypeErrors.
#[napi]
pub fn parse_id(env: Env, unique_key: String, text: String) -> napi::Result<String> {
    IdKey::new(&unique_key)
        .parse(&text)
        .map(|id| to_hex(&id))
        .map_err(|e| StorageError::type_error(e.message()))
        .or_throw(&env)
}
