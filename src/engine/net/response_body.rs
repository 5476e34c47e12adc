//! Response bodies: whole (one buffer from the application) or streamed chunk by chunk.
//!
//! A streamed body buffers what the application wrote until hyper sends it. Past
//! [`HIGH_WATER`] bytes a write reports "full" and the application waits for a
//! [`NetEvent::ResponseDrained`]; so a 100 MB download never sits in memory whole. If the
//! client goes away first, the application hears [`NetEvent::ResponseAborted`].

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};

use super::events::{EventQueue, NetEvent};

/// Bytes a streamed response may buffer before writes report "full".
pub const HIGH_WATER: usize = 256 * 1024;

pub enum ResponseBody {
    Full(Option<Bytes>),
    Stream(StreamedBody),
}

impl ResponseBody {
    pub fn empty() -> Self {
        ResponseBody::Full(None)
    }
}

/// What a write did.
#[derive(Debug, PartialEq, Eq)]
pub enum WriteOutcome {
    /// Buffered; there is room for more.
    Room,
    /// Buffered; wait for ResponseDrained before writing more.
    Full,
    /// The client is gone (or the body already ended): nothing was buffered.
    Gone,
}

#[derive(Default)]
struct StreamState {
    chunks: VecDeque<Bytes>,
    buffered: usize,
    ended: bool,
    failed: bool,
    gone: bool,
    wants_drain: bool,
    waker: Option<Waker>,
}

/// The application's side of a streamed body.
pub struct BodyWriter {
    state: Arc<Mutex<StreamState>>,
}

/// hyper's side of a streamed body.
pub struct StreamedBody {
    state: Arc<Mutex<StreamState>>,
    request: u32,
    queue: Arc<EventQueue>,
}

pub fn streamed(request: u32, queue: Arc<EventQueue>) -> (BodyWriter, StreamedBody) {
    let state = Arc::new(Mutex::new(StreamState::default()));
    (BodyWriter { state: state.clone() }, StreamedBody { state, request, queue })
}

impl BodyWriter {
    pub fn write(&self, data: Bytes) -> WriteOutcome {
        let mut s = self.state.lock().unwrap();
        if s.gone || s.ended || s.failed {
            return WriteOutcome::Gone;
        }
        s.buffered += data.len();
        s.chunks.push_back(data);
        if let Some(waker) = s.waker.take() {
            waker.wake();
        }
        if s.buffered >= HIGH_WATER {
            s.wants_drain = true;
            WriteOutcome::Full
        } else {
            WriteOutcome::Room
        }
    }

    /// Ends the body; with `failed` the connection is cut instead of ending cleanly (the
    /// client sees a truncated response, as it would from a failing upstream).
    pub fn end(&self, failed: bool) {
        let mut s = self.state.lock().unwrap();
        if failed {
            s.failed = true;
        } else {
            s.ended = true;
        }
        if let Some(waker) = s.waker.take() {
            waker.wake();
        }
    }
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        match self.get_mut() {
            ResponseBody::Full(data) => Poll::Ready(data.take().map(|d| Ok(Frame::data(d)))),
            ResponseBody::Stream(body) => body.poll_chunk(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self, ResponseBody::Full(None))
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ResponseBody::Full(data) => SizeHint::with_exact(data.as_ref().map_or(0, |d| d.len() as u64)),
            ResponseBody::Stream(_) => SizeHint::default(),
        }
    }
}

impl StreamedBody {
    fn poll_chunk(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        let mut s = self.state.lock().unwrap();
        if let Some(chunk) = s.chunks.pop_front() {
            s.buffered -= chunk.len();
            if s.wants_drain && s.buffered < HIGH_WATER / 2 {
                s.wants_drain = false;
                drop(s);
                self.queue.push(NetEvent::ResponseDrained { request: self.request });
            }
            return Poll::Ready(Some(Ok(Frame::data(chunk))));
        }
        if s.failed {
            return Poll::Ready(Some(Err(std::io::Error::other("the response body failed"))));
        }
        if s.ended {
            return Poll::Ready(None);
        }
        s.waker = Some(cx.waker().clone());
        Poll::Pending
    }
}

impl Drop for StreamedBody {
    fn drop(&mut self) {
        let mut s = self.state.lock().unwrap();
        if !s.ended && !s.failed {
            s.gone = true;
            s.chunks.clear();
            drop(s);
            self.queue.push(NetEvent::ResponseAborted { request: self.request });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    fn queue() -> Arc<EventQueue> {
        Arc::new(EventQueue::new(Box::new(|| {})))
    }

    #[tokio::test]
    async fn a_full_writer_hears_when_the_body_drains() {
        let q = queue();
        let (writer, body) = streamed(7, q.clone());
        let mut body = ResponseBody::Stream(body);
        let chunk = Bytes::from(vec![0u8; HIGH_WATER / 4]);
        let mut outcomes = Vec::new();
        for _ in 0..4 {
            outcomes.push(writer.write(chunk.clone()));
        }
        assert_eq!(outcomes.last(), Some(&WriteOutcome::Full));
        assert!(q.take().is_empty());
        for _ in 0..3 {
            body.frame().await.unwrap().unwrap();
        }
        assert!(matches!(q.take().as_slice(), [NetEvent::ResponseDrained { request: 7 }]));
        writer.end(false);
        body.frame().await.unwrap().unwrap();
        assert!(body.frame().await.is_none());
    }

    #[test]
    fn a_body_dropped_before_its_end_reports_the_client_gone() {
        let q = queue();
        let (writer, body) = streamed(3, q.clone());
        drop(body);
        assert!(matches!(q.take().as_slice(), [NetEvent::ResponseAborted { request: 3 }]));
        assert_eq!(writer.write(Bytes::from_static(b"x")), WriteOutcome::Gone);
    }
}
