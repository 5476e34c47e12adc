//! Streamed request bodies: read from the connection one chunk per `pull`, so the
//! application's consumption paces the client (TCP backpressure) and a large upload never
//! sits in memory whole.

use std::sync::Arc;

use http_body_util::BodyExt;
use hyper::body::Incoming;
use tokio::sync::Semaphore;

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

/// Starts pumping `body`; `done` runs when it ended, failed or was cancelled.
pub fn pump(request: u32, mut body: Incoming, queue: Arc<EventQueue>, done: impl FnOnce() + Send + 'static) -> Arc<BodyPump> {
    let pump = Arc::new(BodyPump { pulls: Semaphore::new(0) });
    let handle = pump.clone();
    tokio::spawn(async move {
        'chunks: loop {
            match handle.pulls.acquire().await {
                Ok(permit) => permit.forget(),
                Err(_) => break, // cancelled
            }
            // Frames without data (trailers) do not use up the pull.
            loop {
                match body.frame().await {
                    None => {
                        queue.push(NetEvent::BodyEnd { request });
                        break 'chunks;
                    }
                    Some(Err(e)) => {
                        queue.push(NetEvent::BodyError { request, message: describe(&e) });
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
