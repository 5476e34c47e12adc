//! Streamed request bodies: read from the connection one chunk per `pull`, so the
//! application's consumption paces the client (TCP backpressure) and a large upload never
//! sits in memory whole.

use std::sync::Arc;
use std::time::Instant;

use http_body_util::BodyExt;
use hyper::body::Incoming;
use tokio::sync::Semaphore;
use tokio::time::timeout_at;

use super::events::{EventQueue, NetEvent};

/// The application's handle on a streamed body: each pull lets one more chunk through.
pub struct BodyPump {
    pulls: Semaphore,
}

impl BodyPump {
    pub fn pull(&self) {
        self.pulls.add_permits(1);
    }

    /// Stops reading; the connection's body is dropped.
    pub fn cancel(&self) {
        self.pulls.close();
    }
}

/// Starts pumping `body`; `done` runs when it ended, failed or was cancelled. A body not in
/// by `deadline` fails (the time the application takes to pull counts too: a client is not
/// owed a connection for longer because the application reads slowly).
pub fn pump(request: u32, mut body: Incoming, deadline: Instant, queue: Arc<EventQueue>, done: impl FnOnce() + Send + 'static) -> Arc<BodyPump> {
    let pump = Arc::new(BodyPump { pulls: Semaphore::new(0) });
    let handle = pump.clone();
    tokio::spawn(async move {
        'chunks: loop {
            match timeout_at(deadline.into(), handle.pulls.acquire()).await {
                Ok(Ok(permit)) => permit.forget(),
                Ok(Err(_)) => break, // cancelled
                // An application that never reads the body must not keep this task (and
                // the connection's body) forever either.
                Err(_) => {
                    queue.push(NetEvent::BodyError { request, message: "it did not arrive in time".into(), late: true });
                    break;
                }
            }
            // Frames without data (trailers) do not use up the pull.
            loop {
                let Ok(frame) = timeout_at(deadline.into(), body.frame()).await else {
                    queue.push(NetEvent::BodyError { request, message: "it did not arrive in time".into(), late: true });
                    break 'chunks;
                };
                match frame {
                    None => {
                        queue.push(NetEvent::BodyEnd { request });
                        break 'chunks;
                    }
                    Some(Err(e)) => {
                        queue.push(NetEvent::BodyError { request, message: describe(&e), late: false });
                        break 'chunks;
                    }
                    Some(Ok(frame)) => {
                        if let Ok(data) = frame.into_data() {
                            if !data.is_empty() {
                                queue.push(NetEvent::BodyChunk { request, data });
                                break;
                            }
                        }
                    }
                }
            }
        }
        done();
    });
    pump
}

/// hyper's error and what caused it ("error reading a body from connection: invalid chunk
/// size line"): one line that says what the client did wrong.
fn describe(error: &hyper::Error) -> String {
    let mut text = error.to_string();
    let mut cause = std::error::Error::source(error);
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    text
}
