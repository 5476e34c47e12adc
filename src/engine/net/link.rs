//! How the application reaches a connection of our server, and who drives it.
//!
//! A connection is driven either by the host's event loop ("inline": Node's libuv polls
//! the socket; reading, the object's handler and the answer's write all happen on the JS
//! thread, with no thread hand-off — what makes an echo as fast as a plain JS server) or
//! by a task on the network runtime (hosts we cannot poll from, like Bun; and any
//! connection that must wait on a timer or a full socket buffer). An inline connection
//! moves to the runtime when it needs one of those; it never moves back.
//!
//! While inline, the connection is parked here and only the host thread touches it:
//! sends write at once. Otherwise sends queue here for the task (a queue under a lock and
//! a Notify rather than a tokio channel: an unbounded channel allocates 32 slots up front,
//! about 2 KiB, and tens of thousands of idle connections should not pay that).

use std::collections::VecDeque;
use std::os::fd::AsRawFd;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::io::unix::AsyncFd;
use tokio::sync::Notify;
use tokio::time::sleep_until;

use super::connection::Connection;
use super::runtime::runtime;
use super::sockets::Outgoing;

pub(crate) struct Link {
    state: Mutex<State>,
    ready: Notify,
    /// The connection's buffer limit (see connection.rs): sends queued here for the runtime
    /// task count against it too, so an application that sends faster than the task
    /// writes cannot grow this queue without bound either.
    limit: usize,
}

#[derive(Default)]
struct State {
    /// Sends waiting for the runtime task, and their bytes.
    items: VecDeque<Outgoing>,
    queued: usize,
    /// A send found `queued` past the limit and was dropped: the connection gives up on
    /// its peer as when its own buffer overflows.
    overflowed: bool,
    /// The socket was released or its connection reported its end.
    closed: bool,
    /// The connection, while the host's loop drives it (taken out while it works).
    inline: Option<Inline>,
}

struct Inline {
    connection: Connection,
    /// Stops the host's polling of the socket (runs on the host thread).
    stop: Box<dyn FnOnce() + Send>,
}

fn size(item: &Outgoing) -> usize {
    match item {
        Outgoing::Message(message) => message.len(),
        Outgoing::Close(_) => 0,
    }
}

impl Link {
    pub fn new(limit: usize) -> Link {
        Link { state: Mutex::default(), ready: Notify::new(), limit }
    }

    /// Sends `item` (in order with everything sent before). False once the link is closed.
    pub fn push(self: &Arc<Self>, item: Outgoing) -> bool {
        let mut state = self.state.lock().unwrap();
        if state.closed {
            return false;
        }
        match state.inline.take() {
            Some(mut inline) => {
                drop(state);
                inline.connection.send(item);
                self.settle(inline);
            }
            None => {
                if state.queued > self.limit && matches!(item, Outgoing::Message(_)) {
                    state.overflowed = true;
                } else {
                    state.queued += size(&item);
                    state.items.push_back(item);
                }
                drop(state);
                self.ready.notify_one();
            }
        }
        true
    }

    /// No more sends; the driver drops the connection (unless it is draining).
    pub fn close(self: &Arc<Self>) {
        let inline = {
            let mut state = self.state.lock().unwrap();
            state.closed = true;
            state.inline.take()
        };
        self.ready.notify_one();
        if let Some(inline) = inline {
            self.settle(inline);
        }
    }

    /// The application caught up with the peer's messages: a task paused on them reads
    /// again. (An inline connection is never paused this way: it moves to the runtime.)
    pub fn resume_reading(&self) {
        self.ready.notify_one();
    }

    fn is_closed(&self) -> bool {
        self.state.lock().unwrap().closed
    }

    /// The sends still queued, whether some were dropped (see State::overflowed), and
    /// whether the link is closed: read together, so that a send pushed just before the
    /// close is not mistaken for one that never came.
    fn take_pending(&self) -> (VecDeque<Outgoing>, bool, bool) {
        let mut state = self.state.lock().unwrap();
        state.queued = 0;
        (std::mem::take(&mut state.items), std::mem::take(&mut state.overflowed), state.closed)
    }

    /// Gives `connection` what was sent to it while it was not at hand.
    fn deliver(&self, connection: &mut Connection) -> bool {
        let (items, overflowed, closed) = self.take_pending();
        items.into_iter().for_each(|item| connection.send(item));
        if overflowed {
            connection.overflow();
        }
        closed
    }

    /// Hands a new connection to the host's loop. `stop` ends the host's polling.
    pub fn drive_inline(self: &Arc<Self>, mut connection: Connection, stop: Box<dyn FnOnce() + Send>) {
        connection.set_level_triggered(true);
        // Frames may have arrived with the handshake, before polling began.
        connection.read();
        self.settle(Inline { connection, stop });
    }

    /// The host saw the socket readable.
    pub fn readable(self: &Arc<Self>) {
        let Some(mut inline) = self.state.lock().unwrap().inline.take() else { return };
        inline.connection.read();
        self.settle(inline);
    }

    /// After an inline connection worked: park it again, hand it to the runtime, or end it.
    fn settle(self: &Arc<Self>, mut inline: Inline) {
        // Sends that queued while it worked (none are expected: only the host thread sends
        // to an inline connection) go out now, in order — not under the lock, since a
        // connection that ends reports it, and that closes this link.
        loop {
            let state = self.state.lock().unwrap();
            if state.items.is_empty() && !state.overflowed {
                break;
            }
            drop(state);
            self.deliver(&mut inline.connection);
        }
        let mut state = self.state.lock().unwrap();
        if !inline.connection.is_over(state.closed) && !inline.connection.needs_runtime() {
            state.inline = Some(inline);
            return;
        }
        drop(state);
        let Inline { mut connection, stop } = inline;
        stop();
        if connection.is_over(self.is_closed()) {
            connection.end();
        } else {
            connection.set_level_triggered(false);
            let link = self.clone();
            runtime().spawn(drive(connection, link));
        }
    }
}

/// Drives a connection on the network runtime until it is over.
pub(crate) async fn drive(mut connection: Connection, link: Arc<Link>) {
    // SAFETY: the descriptor belongs to `connection`, which outlives `io` (dropped first,
    // below) and never replaces its socket.
    let Ok(io) = (unsafe { AsyncFd::register(connection.as_raw_fd()) }) else {
        connection.end();
        return;
    };
    // What arrived before this task began (with the handshake, or while handed over).
    connection.read();
    loop {
        // What the application sent before it let the socket go still goes out: the
        // object's close() answering a peer's Close is followed at once by the socket's
        // release, and this task may wake to find both.
        let closed = link.deliver(&mut connection);
        if connection.is_over(closed) {
            break;
        }
        let deadline = connection.deadline().unwrap_or_else(Instant::now).into();
        tokio::select! {
            // notify_one stores a permit when nobody waits: a push between deliver() above
            // and this await is not lost.
            _ = link.ready.notified(), if !closed => {}
            guard = io.readable(), if connection.wants_read() => {
                let Ok(mut guard) = guard else { break };
                if connection.read() {
                    guard.clear_ready();
                }
            }
            guard = io.writable(), if connection.write_blocked() => {
                let Ok(mut guard) = guard else { break };
                if connection.flush().is_err() {
                    break; // the peer is gone: end() below reports it
                }
                if connection.write_blocked() {
                    guard.clear_ready();
                }
            }
            _ = sleep_until(deadline), if connection.deadline().is_some() => connection.deadline_passed(),
        }
    }
    drop(io); // deregisters the descriptor before the connection closes it
    connection.end();
}

#[cfg(test)]
mod tests {
    use std::net::{TcpListener, TcpStream};

    use tungstenite::protocol::frame::coding::CloseCode;
    use tungstenite::protocol::{CloseFrame, Role};
    use tungstenite::{Message, WebSocket};

    use super::*;
    use crate::engine::net::connection::DEFAULT_BUFFER_LIMIT;
    use crate::engine::net::events::EventQueue;
    use crate::engine::net::sockets::Sockets;

    #[test]
    fn an_answer_sent_just_before_the_release_still_goes_out() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut peer = WebSocket::from_raw_socket(TcpStream::connect(listener.local_addr().unwrap()).unwrap(), Role::Client, None);
        let (stream, _) = listener.accept().unwrap();
        stream.set_nonblocking(true).unwrap();
        let sockets = Arc::new(Sockets::default());
        sockets.set_close_auto_reply(false); // before compat date 2026-04-07: the object answers
        let queue = Arc::new(EventQueue::new(Box::new(|| {})));
        let mut connection = Connection::new(stream, Vec::new(), sockets.create(0, None), queue.clone(), sockets, DEFAULT_BUFFER_LIMIT);

        // The peer closes; the connection reports it and waits for the application's answer.
        peer.send(Message::Close(Some(CloseFrame { code: CloseCode::Library(4000), reason: "bye".into() }))).unwrap();
        while queue.take().is_empty() {
            connection.read();
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        // The answer and the release both happen before the driver runs.
        let link = Arc::new(Link::new(DEFAULT_BUFFER_LIMIT));
        assert!(link.push(Outgoing::Close(Some(CloseFrame { code: CloseCode::Library(4000), reason: "bye".into() }))));
        link.close();
        runtime().block_on(drive(connection, link));

        match peer.read() {
            Ok(Message::Close(Some(frame))) => assert_eq!(u16::from(frame.code), 4000),
            other => panic!("the peer should get our Close, got {other:?}"),
        }
    }
}
