//! What the application asks a connection's task to send, in order.
//!
//! A queue under a lock and a Notify rather than a tokio mpsc channel: an unbounded
//! channel allocates a block of 32 slots up front, about 2 KiB, and a server holding tens
//! of thousands of idle connections should not pay that for each.

use std::collections::VecDeque;
use std::sync::Mutex;

use tokio::sync::Notify;

use super::sockets::Outgoing;

#[derive(Default)]
pub(crate) struct Outbox {
    state: Mutex<State>,
    ready: Notify,
}

#[derive(Default)]
struct State {
    items: VecDeque<Outgoing>,
    closed: bool,
}

impl Outbox {
    /// False once the outbox is closed (the connection ended or was released).
    pub fn push(&self, item: Outgoing) -> bool {
        {
            let mut state = self.state.lock().unwrap();
            if state.closed {
                return false;
            }
            state.items.push_back(item);
        }
        self.ready.notify_one();
        true
    }

    /// The next item; None once closed and empty.
    pub async fn recv(&self) -> Option<Outgoing> {
        loop {
            {
                let mut state = self.state.lock().unwrap();
                if let Some(item) = state.items.pop_front() {
                    return Some(item);
                }
                if state.closed {
                    return None;
                }
            }
            // notify_one stores a permit when nobody waits: a push between the check
            // above and this await is not lost.
            self.ready.notified().await;
        }
    }

    pub fn close(&self) {
        self.state.lock().unwrap().closed = true;
        self.ready.notify_one();
    }
}
