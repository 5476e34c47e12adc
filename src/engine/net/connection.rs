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

use std::io::{ErrorKind, Read, Write};
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
    Over,
}

/// The TCP stream, with one shortcut for level-triggered polling (the host's loop): a
/// read that returned less than asked for emptied the kernel's buffer, so the next read
/// answers WouldBlock without a system call — the poll reports anything that arrives
/// later. (An edge-triggered poller, the network runtime's, must see a real WouldBlock.)
struct Transport {
    tcp: TcpStream,
    level_triggered: bool,
    emptied: bool,
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
        self.tcp.write(data)
    }
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
    /// A write met a full socket buffer; the rest is in tungstenite's buffer.
    write_blocked: bool,
}

impl Connection {
    /// `read_ahead`: bytes the HTTP server read past the upgrade request (frames the
    /// client sent right behind its handshake).
    pub fn new(stream: TcpStream, read_ahead: Vec<u8>, shared: Arc<SocketShared>, queue: Arc<EventQueue>, sockets: Arc<Sockets>) -> Connection {
        let transport = Transport { tcp: stream, level_triggered: false, emptied: false };
        let ws = WebSocket::from_partially_read(transport, read_ahead, Role::Server, Some(config()));
        Connection { ws, shared, queue, sockets, phase: Phase::Open, reported: false, write_blocked: false }
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
        matches!(self.phase, Phase::Open | Phase::Draining { .. })
    }

    pub fn write_blocked(&self) -> bool {
        self.write_blocked
    }

    /// Needs what only the network runtime gives: a timer, or waiting to write.
    pub fn needs_runtime(&self) -> bool {
        self.write_blocked || matches!(self.phase, Phase::AwaitingAnswer { .. } | Phase::Draining { .. })
    }

    pub fn deadline(&self) -> Option<Instant> {
        match self.phase {
            Phase::AwaitingAnswer { until } => Some(until),
            Phase::Draining { until, quiet_until } => Some(until.min(quiet_until)),
            _ => None,
        }
    }

    /// Whether to drop the connection now. `released`: the socket's link was closed (the
    /// application released the socket, or the connection reported its own end).
    pub fn is_over(&self, released: bool) -> bool {
        match self.phase {
            Phase::Over => true,
            // Draining goes on after the error was reported (which released the link).
            Phase::Draining { .. } => false,
            _ => released,
        }
    }

    /// Reads everything the socket has. Returns true when it stopped because the socket
    /// had no more (the driver then waits for readability), false when the phase changed.
    pub fn read(&mut self) -> bool {
        loop {
            match self.phase {
                Phase::Open => {}
                Phase::Draining { .. } => return self.drain(),
                _ => return false,
            }
            match self.ws.read() {
                Ok(Message::Text(text)) => match self.shared.auto_reply(text.as_str()) {
                    Some(reply) => self.write(Message::Text(reply.into())),
                    None => self.queue.push(NetEvent::SocketMessage { socket: self.socket(), group: self.shared.group_id(), data: Payload::Text(text.as_str().to_owned()) }),
                },
                Ok(Message::Binary(data)) => {
                    self.queue.push(NetEvent::SocketMessage { socket: self.socket(), group: self.shared.group_id(), data: Payload::Binary(data) });
                }
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

    fn peer_closed(&mut self, frame: Option<CloseFrame>) {
        let (code, reason) = match frame {
            Some(f) => (u16::from(f.code), f.reason.as_str().to_owned()),
            None => (1005, String::new()),
        };
        if self.reported || self.sockets.close_auto_reply() {
            // tungstenite queued the answering Close; send it now. (A server's flush
            // after the handshake reports ConnectionClosed: that is the end we expect.)
            let _ = self.ws.flush();
            if !self.reported {
                self.report(NetEvent::SocketClosed { socket: self.socket(), group: self.shared.group_id(), code, reason, clean: true });
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
            // The peer's echo of our Close arrives through read().
            (Phase::Open, Outgoing::Close(frame)) => self.write(Message::Close(frame)),
            (Phase::AwaitingAnswer { .. }, Outgoing::Close(_)) => {
                let _ = self.ws.flush();
                self.end();
            }
            // After a Close nothing more goes out; a failed connection takes nothing.
            _ => {}
        }
    }

    fn write(&mut self, message: Message) {
        match self.ws.write(message).and_then(|()| self.ws.flush()) {
            Ok(()) => self.write_blocked = false,
            Err(WsError::Io(e)) if e.kind() == ErrorKind::WouldBlock => self.write_blocked = true,
            // A failed write shows up as the read side ending.
            Err(_) => {}
        }
    }

    /// The socket is writable again: sends what waited.
    pub fn flush(&mut self) {
        match self.ws.flush() {
            Err(WsError::Io(e)) if e.kind() == ErrorKind::WouldBlock => {}
            _ => self.write_blocked = false,
        }
    }

    pub fn deadline_passed(&mut self) {
        match self.phase {
            // Nobody answered the peer's Close in time.
            Phase::AwaitingAnswer { .. } => self.end(),
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
