//! What the network tells the application, and the queue it waits in.
//!
//! One queue per host thread. Pushing onto an empty queue wakes the host once; the host
//! then takes everything queued at that moment in one call. Under load a single wake-up
//! carries many events, which is what keeps the per-request cost on the JS thread low.

use std::sync::Mutex;

use bytes::Bytes;

/// A WebSocket message.
#[derive(Debug, Clone)]
pub enum Payload {
    Text(String),
    Binary(Bytes),
}

/// How a request's body reaches the application.
#[derive(Debug)]
pub enum BodyStart {
    /// No body (GET, or Content-Length: 0).
    Empty,
    /// The whole body, read before the request was delivered (small, known length).
    Full(Bytes),
    /// Chunks follow as [`NetEvent::BodyChunk`] events, one per `pull_body` call.
    Stream,
}

#[derive(Debug)]
pub struct IncomingRequest {
    pub server: u32,
    pub request: u32,
    pub method: String,
    /// The request target as sent (path and query), e.g. "/rooms/a?x=1".
    pub target: String,
    /// Names lowercased; values as Latin-1 text, as the Fetch API's Headers holds them.
    pub headers: Vec<(String, String)>,
    pub body: BodyStart,
    /// A WebSocket upgrade request that [`Net::accept_websocket`] may answer.
    pub websocket: bool,
}

#[derive(Debug)]
pub enum NetEvent {
    Request(IncomingRequest),
    BodyChunk { request: u32, data: Bytes },
    BodyEnd { request: u32 },
    BodyError { request: u32, message: String },
    /// A response body that was over its high-water mark has room again.
    ResponseDrained { request: u32 },
    /// The client went away before the response body ended.
    ResponseAborted { request: u32 },
    /// A message from the peer. `group` is the hibernation group (0: none).
    SocketMessage { socket: u32, group: u32, data: Payload },
    /// The peer's Close frame (`clean`), or the connection ended without one (1006).
    SocketClosed { socket: u32, group: u32, code: u16, reason: String, clean: bool },
    SocketError { socket: u32, group: u32, message: String },
    /// A server stopped listening and its in-flight requests ended.
    ServerClosed { server: u32 },
}

pub struct EventQueue {
    events: Mutex<Vec<NetEvent>>,
    wake: Box<dyn Fn() + Send + Sync>,
}

impl EventQueue {
    /// `wake` runs (on whatever thread pushed) when an event lands in an empty queue.
    pub fn new(wake: Box<dyn Fn() + Send + Sync>) -> Self {
        EventQueue { events: Mutex::new(Vec::new()), wake }
    }

    pub fn push(&self, event: NetEvent) {
        let first = {
            let mut events = self.events.lock().unwrap();
            events.push(event);
            events.len() == 1
        };
        if first {
            (self.wake)();
        }
    }

    /// Everything queued so far, oldest first.
    pub fn take(&self) -> Vec<NetEvent> {
        std::mem::take(&mut *self.events.lock().unwrap())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    #[test]
    fn wakes_once_per_batch() {
        let wakes = Arc::new(AtomicUsize::new(0));
        let counter = wakes.clone();
        let queue = EventQueue::new(Box::new(move || {
            counter.fetch_add(1, Ordering::SeqCst);
        }));
        for request in 0..3 {
            queue.push(NetEvent::BodyEnd { request });
        }
        assert_eq!(wakes.load(Ordering::SeqCst), 1);
        assert_eq!(queue.take().len(), 3);
        queue.push(NetEvent::BodyEnd { request: 9 });
        assert_eq!(wakes.load(Ordering::SeqCst), 2);
    }
}
