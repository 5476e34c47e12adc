//! What the network tells the application, and the queue it waits in.
//!
//! One queue per host thread. Pushing onto an empty queue wakes the host once; the host
//! then takes everything queued at that moment in one call. Under load a single wake-up
//! carries many events, which is what keeps the per-request cost on the JS thread low.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bytes::Bytes;

/// A kind of log line is written at most once per this period; the next one says how many
/// were left out. An attacker who triggers a failure a million times gets a few lines.
const LOG_EVERY: Duration = Duration::from_secs(10);

/// A WebSocket message.
#[derive(Debug, Clone)]
pub enum Payload {
    Text(String),
    Binary(Bytes),
}

impl Payload {
    /// Its size in bytes (text as UTF-8).
    pub fn len(&self) -> usize {
        match self {
            Payload::Text(text) => text.len(),
            Payload::Binary(data) => data.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
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
    /// The body could not be read (`late`: it did not arrive within the request timeout).
    BodyError { request: u32, message: String, late: bool },
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
    /// One line for the server's log (see [`EventQueue::log`]).
    Log { line: String },
}

/// Per kind of log line and server: when one was last written, and how many were left
/// out since.
type Logged = HashMap<(&'static str, u32), (Instant, u64)>;

pub struct EventQueue {
    pending: Mutex<Pending>,
    wake: Box<dyn Fn() + Send + Sync>,
    logged: Mutex<Logged>,
}

#[derive(Default)]
struct Pending {
    events: Vec<NetEvent>,
    /// The host is working on the network inline and takes the events itself when done:
    /// no wake-up is needed (see [`EventQueue::hold`]).
    held: bool,
}

impl EventQueue {
    /// `wake` runs (on whatever thread pushed) when an event lands in an empty queue.
    pub fn new(wake: Box<dyn Fn() + Send + Sync>) -> Self {
        EventQueue { pending: Mutex::default(), wake, logged: Mutex::default() }
    }

    /// Queues one line for the log, unless a line of the same `kind` about the same
    /// `server` went out less than [`LOG_EVERY`] ago (then it is only counted, and the next
    /// line says how many were left out). `line` is only built when it is written.
    pub fn log(&self, kind: &'static str, server: u32, line: impl FnOnce() -> String) {
        let now = Instant::now();
        let suppressed = {
            let mut logged = self.logged.lock().unwrap();
            match logged.get_mut(&(kind, server)) {
                Some((last, count)) if now.duration_since(*last) < LOG_EVERY => {
                    *count += 1;
                    return;
                }
                Some((last, count)) => {
                    *last = now;
                    std::mem::take(count)
                }
                None => {
                    logged.insert((kind, server), (now, 0));
                    0
                }
            }
        };
        let mut line = line();
        if suppressed > 0 {
            line.push_str(&format!(" ({suppressed} more like this since the last such line)"));
        }
        self.push(NetEvent::Log { line });
    }

    pub fn push(&self, event: NetEvent) {
        let wake = {
            let mut pending = self.pending.lock().unwrap();
            pending.events.push(event);
            pending.events.len() == 1 && !pending.held
        };
        if wake {
            (self.wake)();
        }
    }

    /// Wakes the host even though no event waits (it has other work: see link.rs).
    pub fn wake_host(&self) {
        (self.wake)();
    }

    /// The host thread is about to produce events itself (an inline connection reading)
    /// and will take them right after: pushes until [`EventQueue::release`] do not wake it.
    pub fn hold(&self) {
        self.pending.lock().unwrap().held = true;
    }

    /// Ends [`EventQueue::hold`]; true when events wait (the host takes them now). A push
    /// after this wakes the host as usual.
    pub fn release(&self) -> bool {
        let mut pending = self.pending.lock().unwrap();
        pending.held = false;
        !pending.events.is_empty()
    }

    /// Everything queued so far, oldest first.
    pub fn take(&self) -> Vec<NetEvent> {
        std::mem::take(&mut self.pending.lock().unwrap().events)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    /// A queue and how many times it woke its host.
    fn counting_queue() -> (EventQueue, Arc<AtomicUsize>) {
        let wakes = Arc::new(AtomicUsize::new(0));
        let counter = wakes.clone();
        let queue = EventQueue::new(Box::new(move || {
            counter.fetch_add(1, Ordering::SeqCst);
        }));
        (queue, wakes)
    }

    #[test]
    fn wakes_once_per_batch() {
        let (queue, wakes) = counting_queue();
        for request in 0..3 {
            queue.push(NetEvent::BodyEnd { request });
        }
        assert_eq!(wakes.load(Ordering::SeqCst), 1);
        assert_eq!(queue.take().len(), 3);
        queue.push(NetEvent::BodyEnd { request: 9 });
        assert_eq!(wakes.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn a_kind_of_log_line_goes_out_once_per_period() {
        let (queue, _) = counting_queue();
        for i in 0..1000 {
            queue.log("flood", 1, || format!("line {i}"));
        }
        queue.log("other", 1, || "another kind".into());
        queue.log("flood", 2, || "another server".into());
        let lines: Vec<String> = queue
            .take()
            .into_iter()
            .map(|e| match e {
                NetEvent::Log { line } => line,
                other => panic!("unexpected {other:?}"),
            })
            .collect();
        assert_eq!(lines, ["line 0", "another kind", "another server"]);
        // A period later the next line counts what was left out.
        let earlier = Instant::now().checked_sub(LOG_EVERY).unwrap();
        queue.logged.lock().unwrap().get_mut(&("flood", 1)).unwrap().0 = earlier;
        queue.log("flood", 1, || "again".into());
        assert!(matches!(queue.take().as_slice(), [NetEvent::Log { line }] if line == "again (999 more like this since the last such line)"));
    }

    #[test]
    fn a_held_queue_does_not_wake_and_says_what_waits() {
        let (queue, wakes) = counting_queue();
        queue.hold();
        assert!(!queue.release(), "nothing was pushed");
        queue.hold();
        queue.push(NetEvent::BodyEnd { request: 1 });
        assert!(queue.release());
        assert_eq!(wakes.load(Ordering::SeqCst), 0, "the host takes them itself");
        assert_eq!(queue.take().len(), 1);
        queue.push(NetEvent::BodyEnd { request: 2 });
        assert_eq!(wakes.load(Ordering::SeqCst), 1, "released: pushes wake again");
    }
}
