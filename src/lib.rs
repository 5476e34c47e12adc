//! open-do: Cloudflare Durable Objects that run anywhere.
//!
//! `engine` is pure Rust (storage, ids, later scheduling and networking) and knows nothing
//! of JavaScript. `binding` is the thin napi layer that exposes it to Node.js and Bun (the
//! default `node` feature); it is left out of `cargo test` builds so the engine's unit
//! tests link without a JS runtime.

pub mod engine;

#[cfg(all(feature = "node", not(test)))]
mod binding;
