//! What one server's connections may cost: how long each wait may last and how much a
//! WebSocket may have waiting to go out. Every input from the network is hostile until it
//! is whole: a client that sends nothing, half a request or a body at a byte a minute
//! holds a descriptor, and descriptors run out long before memory does.

use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerLimits {
    /// From a connection's start (or the end of its previous response) until a request's
    /// headers are in: past it the connection is closed. Node's `headersTimeout`: 60 s.
    pub headers: Duration,
    /// How long a keep-alive connection may sit idle between a response and the next
    /// request's first byte. Node's `keepAliveTimeout`: 5 s.
    pub idle: Duration,
    /// From a request's headers until its whole body is in: past it the client gets a 408
    /// (or, once the application reads the body, a read error) and the connection is
    /// closed. Node's `requestTimeout`: 300 s.
    pub request: Duration,
    /// A WebSocket with more than this waiting to go out to its peer (a peer that stopped
    /// reading) is closed with 1011 — see connection.rs for why 64 MiB.
    pub websocket_buffer: usize,
}

impl Default for ServerLimits {
    fn default() -> Self {
        ServerLimits {
            headers: Duration::from_secs(60),
            idle: Duration::from_secs(5),
            request: Duration::from_secs(300),
            websocket_buffer: super::connection::DEFAULT_BUFFER_LIMIT,
        }
    }
}
