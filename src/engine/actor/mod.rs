//! The actor runtime's scheduling: per-object mailboxes with Cloudflare's input gate.
//!
//! The engine decides *when* an event may start; the host (the JavaScript side) keeps
//! *what* each event does and runs it. That keeps the hot path to a couple of integer
//! calls per event, and leaves one place where events from other threads (the HTTP
//! server, the alarm timer) will join the same queues.

pub mod mailbox;
pub mod scheduler;

pub use mailbox::{Mailbox, Offer, Token, MAX_CRITICAL_DEPTH};
pub use scheduler::{MailboxHandle, Scheduler};
