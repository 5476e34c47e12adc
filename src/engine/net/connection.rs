//! One WebSocket connection of our server as a state machine over a non-blocking socket:
//! frames in, frames out, and the answers the runtime gives by itself — protocol pongs,
//! the reply to a Close, and the object's auto-response — none of which wakes the
//! application.
//!
//! It never waits. Whoever drives it says "the socket is readable" ([`Connection::read`]),
//! "the application sends this" ([`Connection::send`]), "the socket is writable"
//! ([`Connection::flush`]) or "your deadline passed" ([`Connection::deadline_passed`]).
//! Two drivers exist (see link.rs): the host's own event loop, which runs a message's
//! whole round — read, the object's handler, the answer's write — on the JS thread with
//! no thread hand-off; and a task on the network runtime, for hosts without a loop we can
//! poll (Bun) and for the phases that wait on a timer or on a full socket buffer.

use std::collections::VecDeque;
use std::io::{ErrorKind, IoSlice, Read, Write};
use std::net::TcpStream;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tungstenite::error::{CapacityError, Error as WsError};
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};
use tungstenite::{Message, WebSocket};

use super::events::{EventQueue, NetEvent, Payload};
use super::sockets::{Outgoing, SocketShared, Sockets};

/// Cloudflare's limit on a received message.
const MAX_MESSAGE_SIZE: usize = 32 << 20;

/// How long a peer's Close waits for the application's answer (without auto-reply).
const CLOSE_ANSWER_WAIT: Duration = Duration::from_secs(30);

/// How long a Close we sent waits for the peer's (its answer, or its going away).
const CLOSE_ECHO_WAIT: Duration = Duration::from_secs(30);

/// What may wait to go out to a peer that does not read: past it the socket is closed with
/// 1011. Cloudflare documents no such limit; its bound is the isolate's 128 MB of memory.
/// Ours is twice the largest message a peer may send us (32 MiB), so that an object that
/// relays or echoes the largest messages to a peer reading at an ordinary pace never trips
/// it, while a peer that stops reading costs at most this (plus the one message being
/// sent when it tripped: a send is refused only once the buffer is already past the
/// limit, so a single message of any size — Cloudflare limits only received ones — can
/// always go out).
pub const DEFAULT_BUFFER_LIMIT: usize = 64 << 20;

/// While more than this waits to go out, the peer is not read: each of its messages could
/// ask for more replies (protocol pings are answered with pongs), so a peer that sends but
/// does not read is paced by TCP instead of growing our buffer. Small enough to cost
/// little per slow peer, large enough that an ordinary reader is never paused.
const PAUSE_READING_ABOVE: usize = 1 << 20;

/// After refusing an oversized message: how long we read and drop what the peer still
/// sends, and how long a pause counts as it having stopped. A peer still sending when we
/// close gets a reset instead of our Close, so the pause is generous: a slow uplink or a
/// busy client (one that stalls for a garbage collection) must not lose the 1009.
const DRAIN_AT_MOST: Duration = Duration::from_secs(5);
const DRAIN_QUIET: Duration = Duration::from_secs(1);

/// Cloudflare's words when a peer vanishes without a Close frame.
pub const DISCONNECTED: &str = "WebSocket disconnected without sending Close frame.";

fn config() -> WebSocketConfig {
    // Small read buffers: thousands of idle sockets should cost little (tungstenite
    // allocates the read buffer eagerly). Writes go out at once: a message is sent when
    // the application sends it, as on Cloudflare.
    WebSocketConfig::default()
        .read_buffer_size(512)
        .write_buffer_size(0)
        .max_message_size(Some(MAX_MESSAGE_SIZE))
        .max_frame_size(Some(MAX_MESSAGE_SIZE))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Open,
    /// The peer's Close was reported; before compat date 2026-04-07 the application
    /// answers it (ws.close() in webSocketClose) — or a peer nobody answers gives up.
    AwaitingAnswer { until: Instant },
    /// An oversized message was refused with 1009. The peer is still sending it; cutting
    /// the connection now would make its kernel discard our Close (it would see 1006), so
    /// we read and drop until it goes quiet.
    Draining { until: Instant, quiet_until: Instant },
    /// We sent a Close (the application's, or ours for a peer that stopped reading) and
    /// wait for the peer's, which ends the connection — or for the deadline.
    Closing { until: Instant },
    Over,
}

/// The TCP stream, with one shortcut for level-triggered polling (the host's loop): a
/// read that returned less than asked for emptied the kernel's buffer, so the next read
/// answers WouldBlock without a system call — the poll reports anything that arrives
/// later. (An edge-triggered poller, the network runtime's, must see a real WouldBlock.)
///
/// Writes never block: what the kernel does not take waits in `pending`, which we can
/// count and bound (tungstenite's own buffer cannot be measured or cut). tungstenite hands
/// each write whole frames, so every chunk of `pending` but the first begins and ends on a
/// frame boundary; the first ends on one.
struct Transport {
    tcp: TcpStream,
    level_triggered: bool,
    emptied: bool,
    pending: VecDeque<Vec<u8>>,
    /// Bytes of `pending[0]` already sent.
    sent: usize,
    pending_bytes: usize,
    /// A write that finds more than this already waiting is dropped and `overflowed` set.
    limit: usize,
    overflowed: bool,
}

/// Small writes join the last pending chunk up to this size: a flood of pongs must not
/// cost an allocation each.
const JOIN_BELOW: usize = 16 * 1024;

impl Transport {
    fn queue(&mut self, data: &[u8]) {
        if self.pending_bytes > self.limit {
            self.overflowed = true;
            return;
        }
        self.pending_bytes += data.len();
        match self.pending.back_mut() {
            Some(last) if last.len() + data.len() <= JOIN_BELOW => last.extend_from_slice(data),
            _ => self.pending.push_back(data.to_vec()),
        }
    }

    /// Writes what waits until the kernel takes no more. Errors other than WouldBlock are
    /// the connection failing.
    fn drain(&mut self) -> std::io::Result<()> {
        while !self.pending.is_empty() {
            let mut slices = [IoSlice::new(&[]); 32];
            let mut count = 0;
            for (i, chunk) in self.pending.iter().take(slices.len()).enumerate() {
                slices[i] = IoSlice::new(if i == 0 { &chunk[self.sent..] } else { chunk });
                count += 1;
            }
            let mut written = match self.tcp.write_vectored(&slices[..count]) {
                Ok(0) => return Err(ErrorKind::WriteZero.into()),
                Ok(n) => n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            self.pending_bytes -= written;
            while written > 0 {
                let left = self.pending[0].len() - self.sent;
                if written < left {
                    self.sent += written;
                    break;
                }
                written -= left;
                self.pending.pop_front();
                self.sent = 0;
            }
        }
        Ok(())
    }

    /// Drops every frame that has not begun to go out (the first chunk stays: the peer
    /// must get the rest of the frame it has the beginning of).
    fn keep_first_chunk(&mut self) {
        self.pending.truncate(1);
        self.pending_bytes = self.pending.front().map_or(0, |c| c.len() - self.sent);
    }
}

impl Read for Transport {
    fn read(&mut self, buffer: &mut [u8]) -> std::io::Result<usize> {
        if std::mem::take(&mut self.emptied) {
            return Err(ErrorKind::WouldBlock.into());
        }
        let n = self.tcp.read(buffer)?;
        self.emptied = self.level_triggered && n > 0 && n < buffer.len();
        Ok(n)
    }
}

impl Write for Transport {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        if self.pending.is_empty() {
            loop {
                match self.tcp.write(data) {
                    Ok(n) if n == data.len() || n == 0 => return Ok(n),
                    Ok(n) => {
                        self.queue(&data[n..]);
                        return Ok(data.len());
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
            }
        }
        self.queue(data);
        Ok(data.len())
    }
    /// Nothing: pending bytes go out when the socket is writable (see Connection::flush).
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

pub(crate) struct Connection {
    ws: WebSocket<Transport>,
    shared: Arc<SocketShared>,
    queue: Arc<EventQueue>,
    sockets: Arc<Sockets>,
    phase: Phase,
    /// The application has been told the connection ended (close or error event).
    reported: bool,
}

impl Connection {
    /// `read_ahead`: bytes the HTTP server read past the upgrade request (frames the
    /// client sent right behind its handshake). `limit`: see [`DEFAULT_BUFFER_LIMIT`].
    pub fn new(stream: TcpStream, read_ahead: Vec<u8>, shared: Arc<SocketShared>, queue: Arc<EventQueue>, sockets: Arc<Sockets>, limit: usize) -> Connection {
        let transport = Transport { tcp: stream, level_triggered: false, emptied: false, pending: VecDeque::new(), sent: 0, pending_bytes: 0, limit, overflowed: false };
        let ws = WebSocket::from_partially_read(transport, read_ahead, Role::Server, Some(config()));
        Connection { ws, shared, queue, sockets, phase: Phase::Open, reported: false }
    }

    /// Whether a level-triggered poller (the host's loop) drives the connection now.
    pub fn set_level_triggered(&mut self, on: bool) {
        let transport = self.ws.get_mut();
        transport.level_triggered = on;
        transport.emptied = false;
    }

    pub fn socket(&self) -> u32 {
        self.shared.id
    }

    /// Whether the socket's readability matters now.
    pub fn wants_read(&self) -> bool {
        match self.phase {
            Phase::Open => !self.backed_up() && !self.shared.receiving_paused(),
            Phase::Draining { .. } | Phase::Closing { .. } => true,
            _ => false,
        }
    }

    /// Bytes wait for the socket to be writable.
    pub fn write_blocked(&self) -> bool {
        self.ws.get_ref().pending_bytes > 0
    }

    /// Too much waits to go out to read more (see [`PAUSE_READING_ABOVE`]).
    fn backed_up(&self) -> bool {
        let transport = self.ws.get_ref();
        transport.pending_bytes > PAUSE_READING_ABOVE.min(transport.limit / 2)
    }

    /// Needs what only the network runtime gives: a timer, waiting to write, or waiting
    /// for the application to catch up with the peer's messages (a level-triggered poller
    /// would report the unread socket over and over).
    pub fn needs_runtime(&self) -> bool {
        self.write_blocked() || self.deadline().is_some() || (self.phase == Phase::Open && self.shared.receiving_paused())
    }

    pub fn deadline(&self) -> Option<Instant> {
        match self.phase {
            Phase::AwaitingAnswer { until } | Phase::Closing { until } => Some(until),
            Phase::Draining { until, quiet_until } => Some(until.min(quiet_until)),
            _ => None,
        }
    }

    /// Whether to drop the connection now. `released`: the socket's link was closed (the
    /// application released the socket, or the connection reported its own end).
    pub fn is_over(&self, released: bool) -> bool {
        match self.phase {
            Phase::Over => true,
            // Draining and closing go on after the end was reported (which released the
            // link), until the peer answers or their deadline.
            Phase::Draining { .. } | Phase::Closing { .. } => false,
            _ => released,
        }
    }

    /// Reads everything the socket has. Returns true when it stopped because the socket
    /// had no more (the driver then waits for readability), false when the phase changed
    /// or too much waits to go out to read on (see [`Connection::wants_read`]).
    pub fn read(&mut self) -> bool {
        loop {
            match self.phase {
                Phase::Open if self.backed_up() || self.shared.receiving_paused() => return false,
                Phase::Open | Phase::Closing { .. } => {}
                Phase::Draining { .. } => return self.drain(),
                _ => return false,
            }
            let result = self.ws.read();
            // A pong (or the answer to a Close) went out inside read().
            self.check_overflow();
            match result {
                // Nothing reaches the application once it was told the socket ended.
                Ok(Message::Text(_) | Message::Binary(_)) if self.reported => {}
                Ok(Message::Text(text)) => match self.shared.auto_reply(text.as_str()) {
                    Some(reply) => self.write(Message::Text(reply.into())),
                    None => self.deliver(Payload::Text(text.as_str().to_owned())),
                },
                Ok(Message::Binary(data)) => self.deliver(Payload::Binary(data)),
                Ok(Message::Close(frame)) => self.peer_closed(frame),
                // Ping: tungstenite queued the pong; the next read sends it.
                Ok(_) => {}
                Err(WsError::Io(e)) if e.kind() == ErrorKind::WouldBlock => return true,
                Err(WsError::Io(e)) if e.kind() == ErrorKind::Interrupted => {}
                Err(WsError::Capacity(CapacityError::MessageTooLong { size, max_size })) => self.refuse(size, max_size),
                Err(_) => {
                    self.end();
                    return false;
                }
            }
        }
    }

    /// Hands a message to the application; it counts against the peer's credit until the
    /// application says its handler started (see [`Sockets::delivered`]).
    fn deliver(&mut self, data: Payload) {
        self.shared.received(data.len());
        self.queue.push(NetEvent::SocketMessage { socket: self.socket(), group: self.shared.group_id(), data });
    }

    fn peer_closed(&mut self, frame: Option<CloseFrame>) {
        let (code, reason) = match frame {
            Some(f) => (u16::from(f.code), f.reason.as_str().to_owned()),
            None => (1005, String::new()),
        };
        // Our Close was first: this is the peer's answer, and the end.
        let answer = matches!(self.phase, Phase::Closing { .. });
        if answer || self.reported || self.sockets.close_auto_reply() {
            // tungstenite queued the answering Close; send it now. (A server's flush
            // after the handshake reports ConnectionClosed: that is the end we expect.)
            let _ = self.ws.flush();
            if !self.reported {
                self.report(NetEvent::SocketClosed { socket: self.socket(), group: self.shared.group_id(), code, reason, clean: true });
            }
            if answer {
                self.phase = Phase::Over;
            }
            return;
        }
        // The application answers: tungstenite's queued answer goes out only when it does.
        self.reported = true;
        self.sockets.left_group(self.socket());
        self.queue.push(NetEvent::SocketClosed { socket: self.socket(), group: self.shared.group_id(), code, reason, clean: true });
        self.phase = Phase::AwaitingAnswer { until: Instant::now() + CLOSE_ANSWER_WAIT };
    }

    fn refuse(&mut self, size: usize, max_size: usize) {
        let frame = CloseFrame { code: CloseCode::Size, reason: "Message too big".into() };
        self.write(Message::Close(Some(frame)));
        if !self.reported {
            let message = format!("WebSocket message of {size} bytes is larger than the limit of {max_size} bytes.");
            self.report(NetEvent::SocketError { socket: self.socket(), group: self.shared.group_id(), message });
        }
        let now = Instant::now();
        self.phase = Phase::Draining { until: now + DRAIN_AT_MOST, quiet_until: now + DRAIN_QUIET };
    }

    fn drain(&mut self) -> bool {
        let mut buffer = [0u8; 16 * 1024];
        loop {
            match self.ws.get_mut().tcp.read(&mut buffer) {
                Ok(0) => break,
                Ok(_) => {
                    if let Phase::Draining { quiet_until, .. } = &mut self.phase {
                        *quiet_until = Instant::now() + DRAIN_QUIET;
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return true,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
        self.phase = Phase::Over;
        false
    }

    /// What the application sends (in the order it sent it).
    pub fn send(&mut self, item: Outgoing) {
        match (self.phase, item) {
            (Phase::Open, Outgoing::Message(message)) => self.write(message),
            // The peer's answer to our Close arrives through read().
            (Phase::Open, Outgoing::Close(frame)) => {
                self.write(Message::Close(frame));
                if self.phase == Phase::Open {
                    self.phase = Phase::Closing { until: Instant::now() + CLOSE_ECHO_WAIT };
                }
            }
            (Phase::AwaitingAnswer { .. }, Outgoing::Close(_)) => {
                let _ = self.ws.flush();
                self.end();
            }
            // After a Close nothing more goes out; a failed connection takes nothing.
            _ => {}
        }
    }

    fn write(&mut self, message: Message) {
        // A failed write shows up as the read side ending. (Writes never block: see
        // Transport.)
        let _ = self.ws.write(message).and_then(|()| self.ws.flush());
        self.check_overflow();
    }

    /// The socket is writable again: sends what waited.
    /// Writes what waits. An error other than "would block" (the peer reset or left) means
    /// the connection is over: the caller ends it. While reading is paused (backed up) the
    /// write side is all that can see that, and ignoring it left the driver woken by the
    /// socket's lasting write readiness, spinning a core, with the socket never reported
    /// closed.
    pub fn flush(&mut self) -> std::io::Result<()> {
        self.ws.get_mut().drain()
    }

    /// If a write found the buffer past its limit — the peer stopped reading — gives up
    /// on the peer: what has not begun to go out is dropped, a Close with 1011 follows
    /// the frame in progress, the application hears an error, and the connection waits
    /// for the peer's Close (or its deadline) no longer reading anything for it.
    fn check_overflow(&mut self) {
        let transport = self.ws.get_mut();
        // Once given up on (the limit is lifted for our Close), the Close is queued: a later
        // report of the same (sends that piled up in the Link) must not cut it.
        if !std::mem::take(&mut transport.overflowed) || transport.limit == usize::MAX {
            return;
        }
        let limit = transport.limit;
        transport.keep_first_chunk();
        transport.limit = usize::MAX; // our Close must get in
        if self.ws.can_write() {
            let frame = CloseFrame { code: CloseCode::Error, reason: "The peer did not read what was sent to it.".into() };
            let _ = self.ws.write(Message::Close(Some(frame))).and_then(|()| self.ws.flush());
        }
        self.queue.log("websocket-buffer", self.shared.server(), || {
            format!("open-do: closed a WebSocket with 1011: its peer stopped reading and more than {limit} bytes waited to be sent to it (limits.webSocketBufferBytes).")
        });
        if !self.reported {
            let message = format!("The WebSocket was closed with 1011: its peer did not read, and more than {limit} bytes waited to be sent to it.");
            self.report(NetEvent::SocketError { socket: self.socket(), group: self.shared.group_id(), message });
        }
        if self.phase == Phase::Open {
            self.phase = Phase::Closing { until: Instant::now() + CLOSE_ECHO_WAIT };
        }
    }

    /// The application's sends piled up before they reached the connection (see Link):
    /// the same as the buffer overflowing.
    pub fn overflow(&mut self) {
        self.ws.get_mut().overflowed = true;
        self.check_overflow();
    }

    pub fn deadline_passed(&mut self) {
        match self.phase {
            // Nobody answered the peer's Close in time, or the peer ours.
            Phase::AwaitingAnswer { .. } | Phase::Closing { .. } => self.end(),
            Phase::Draining { until, quiet_until } => {
                let now = Instant::now();
                if now >= until || now >= quiet_until {
                    self.phase = Phase::Over;
                }
            }
            _ => {}
        }
    }

    /// The connection is over; if the application was not told yet, it hears 1006.
    pub fn end(&mut self) {
        self.phase = Phase::Over;
        if !self.reported {
            self.report(NetEvent::SocketClosed { socket: self.socket(), group: self.shared.group_id(), code: 1006, reason: DISCONNECTED.into(), clean: false });
        } else {
            self.sockets.ended(self.socket());
        }
    }

    fn report(&mut self, event: NetEvent) {
        self.reported = true;
        self.sockets.ended(self.socket());
        self.queue.push(event);
    }
}

impl AsRawFd for Connection {
    fn as_raw_fd(&self) -> RawFd {
        self.ws.get_ref().tcp.as_raw_fd()
    }
}

#[cfg(test)]
mod tests {
    use std::net::TcpListener;
    use std::os::fd::AsRawFd;
    use std::sync::atomic::{AtomicBool, Ordering};

    use bytes::Bytes;

    use super::*;
    use crate::engine::net::sockets::PAUSE_RECEIVING_ABOVE;

    /// Kernel buffers of about this size on the way to the peer, so that a peer that does
    /// not read is felt soon. (Only that way: small buffers both ways stall loopback TCP,
    /// whose segments are larger than such a buffer.)
    const SMALL: libc::c_int = 16 * 1024;

    fn shrink(fd: RawFd, option: libc::c_int) {
        // SAFETY: a valid socket and an int option.
        unsafe { libc::setsockopt(fd, libc::SOL_SOCKET, option, (&SMALL as *const libc::c_int).cast(), std::mem::size_of::<libc::c_int>() as libc::socklen_t) };
    }

    /// A connection (server end, non-blocking) and its peer's TCP stream (blocking).
    fn pair(limit: usize) -> (TcpStream, Connection, Arc<EventQueue>) {
        let (peer, connection, queue, _) = pair_with_sockets(limit);
        (peer, connection, queue)
    }

    fn pair_with_sockets(limit: usize) -> (TcpStream, Connection, Arc<EventQueue>, Arc<Sockets>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let peer = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (stream, _) = listener.accept().unwrap();
        shrink(stream.as_raw_fd(), libc::SO_SNDBUF);
        shrink(peer.as_raw_fd(), libc::SO_RCVBUF);
        stream.set_nonblocking(true).unwrap();
        let sockets = Arc::new(Sockets::default());
        let queue = Arc::new(EventQueue::new(Box::new(|| {})));
        let connection = Connection::new(stream, Vec::new(), sockets.create(0, None), queue.clone(), sockets.clone(), limit);
        (peer, connection, queue, sockets)
    }

    /// Writes what waits while the peer's reader runs; fails (rather than hanging) if it
    /// has not finished after 10 s.
    fn flush_until_read<T>(connection: &mut Connection, reader: &std::thread::JoinHandle<T>) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !reader.is_finished() {
            assert!(Instant::now() < deadline, "the peer never got our Close");
            connection.flush().unwrap();
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    #[test]
    fn a_peer_whose_messages_wait_for_the_application_is_read_again_once_they_are_delivered() {
        let (peer, mut connection, queue, sockets) = pair_with_sockets(DEFAULT_BUFFER_LIMIT);
        let socket = connection.socket();
        let writer = std::thread::spawn(move || {
            let mut peer = WebSocket::from_raw_socket(peer, Role::Client, None);
            for _ in 0..64 {
                peer.send(Message::Binary(vec![1u8; 64 * 1024].into())).unwrap();
            }
            peer
        });
        // Read until the application owes more than the pause threshold.
        let deadline = Instant::now() + Duration::from_secs(10);
        while connection.wants_read() {
            assert!(Instant::now() < deadline, "reading never paused");
            connection.read();
        }
        let read = |queue: &EventQueue| queue.take().iter().filter(|e| matches!(e, NetEvent::SocketMessage { .. })).count();
        let first = read(&queue);
        assert_eq!(first, PAUSE_RECEIVING_ABOVE / (64 * 1024) + 1, "one message past the threshold, then no more");
        assert!(connection.needs_runtime(), "a level-triggered poller must not spin on the unread socket");
        assert!(!connection.read(), "a paused connection does not read");
        assert_eq!(read(&queue), 0);

        // The handlers of all but one start: the rest is read.
        sockets.delivered(socket, (first - 1) * 64 * 1024);
        assert!(connection.wants_read());
        let mut total = first;
        while total < 64 {
            assert!(Instant::now() < deadline, "the rest never came");
            connection.read();
            let got = read(&queue);
            sockets.delivered(socket, got * 64 * 1024);
            total += got;
        }
        assert_eq!(total, 64);
        drop(writer.join().unwrap());
    }

    #[test]
    fn a_peer_that_stops_reading_is_closed_with_1011_and_costs_a_bounded_buffer() {
        let limit = 256 * 1024;
        let (peer, mut connection, queue) = pair(limit);
        let message = Bytes::from(vec![7u8; 64 * 1024]);
        for _ in 0..400 {
            connection.send(Outgoing::Message(Message::Binary(message.clone())));
            let pending = connection.ws.get_ref().pending_bytes;
            assert!(pending <= limit + message.len() + 16, "{pending} bytes wait");
        }
        let errors: Vec<String> = queue.take().into_iter().filter_map(|e| if let NetEvent::SocketError { message, .. } = e { Some(message) } else { None }).collect();
        assert_eq!(errors.len(), 1, "the application hears of it once");
        assert!(errors[0].contains("1011"), "{}", errors[0]);
        assert!(matches!(connection.phase, Phase::Closing { .. }));

        // The peer reads again: the messages that had begun to go out, then our Close.
        let reader = std::thread::spawn(move || {
            let mut peer = WebSocket::from_raw_socket(peer, Role::Client, None);
            let mut messages = 0;
            loop {
                match peer.read() {
                    Ok(Message::Binary(data)) => {
                        assert_eq!(data.len(), 64 * 1024);
                        messages += 1;
                    }
                    Ok(Message::Close(Some(frame))) => return (messages, u16::from(frame.code)),
                    other => panic!("unexpected {other:?}"),
                }
            }
        });
        flush_until_read(&mut connection, &reader);
        let (messages, code) = reader.join().unwrap();
        assert_eq!(code, 1011);
        assert!(messages < 400, "what never began to go out was dropped ({messages} arrived)");
    }

    #[test]
    fn giving_up_twice_keeps_the_close() {
        // The buffer overflows, and then sends that piled up in the Link report an overflow
        // too: the second must not cut the Close the first queued.
        let (peer, mut connection, _queue) = pair(64 * 1024);
        let message = Bytes::from(vec![7u8; 64 * 1024]);
        while connection.phase == Phase::Open {
            connection.send(Outgoing::Message(Message::Binary(message.clone())));
        }
        connection.overflow();
        let reader = std::thread::spawn(move || {
            let mut peer = WebSocket::from_raw_socket(peer, Role::Client, None);
            loop {
                match peer.read() {
                    Ok(Message::Binary(_)) => {}
                    Ok(Message::Close(frame)) => return frame.map(|f| u16::from(f.code)),
                    other => panic!("unexpected {other:?}"),
                }
            }
        });
        flush_until_read(&mut connection, &reader);
        assert_eq!(reader.join().unwrap(), Some(1011));
    }

    #[test]
    fn a_peer_that_pings_without_reading_the_pongs_is_no_longer_read() {
        let (peer, mut connection, _queue) = pair(DEFAULT_BUFFER_LIMIT);
        let done = Arc::new(AtomicBool::new(false));
        let writer = {
            let done = done.clone();
            let mut peer = peer.try_clone().unwrap();
            std::thread::spawn(move || {
                // 32 MiB of masked, empty pings (more than TCP buffers hold); blocks once
                // nobody reads them.
                let ping = [0x89u8, 0x80, 1, 2, 3, 4];
                let batch: Vec<u8> = ping.iter().copied().cycle().take(ping.len() * 1024).collect();
                for _ in 0..(32 << 20) / batch.len() {
                    if peer.write_all(&batch).is_err() {
                        break;
                    }
                }
                done.store(true, Ordering::SeqCst);
            })
        };
        // Read while there is something to read; stop when reading pauses.
        while connection.read() {
            std::thread::sleep(Duration::from_millis(1));
        }
        let pending = connection.ws.get_ref().pending_bytes;
        assert!(connection.backed_up() && !connection.wants_read(), "reading paused with {pending} bytes of pongs waiting");
        assert!(pending <= PAUSE_READING_ABOVE + 2 * 1024, "{pending} bytes of pongs wait");
        assert!(!done.load(Ordering::SeqCst), "the peer's pings wait in TCP's buffers, not ours");
        drop(connection); // the writer fails and ends
        drop(peer);
        writer.join().unwrap();
    }

    #[test]
    fn a_peer_that_leaves_while_writes_are_backed_up_ends_the_connection() {
        let (peer, mut connection, _queue) = pair(DEFAULT_BUFFER_LIMIT);
        let message = Bytes::from(vec![7u8; 256 * 1024]);
        // Enough to back up (reading pauses) while the peer reads nothing.
        for _ in 0..16 {
            connection.send(Outgoing::Message(Message::Binary(message.clone())));
        }
        assert!(connection.write_blocked());
        assert!(!connection.wants_read(), "backed up: reading pauses");
        drop(peer);
        // The peer's kernel answers further data with a reset: flushing must say so.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if connection.flush().is_err() {
                break;
            }
            assert!(Instant::now() < deadline, "flushing never noticed the peer was gone");
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}
