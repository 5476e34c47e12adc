//! The built-in network server: HTTP/1.1 (hyper) and WebSockets (tungstenite) on a tokio
//! runtime of its own, so that parsing, framing and idle connections never touch the
//! JavaScript thread — except live WebSocket traffic on hosts whose event loop we can
//! poll (Node), which is cheapest read and answered on the JS thread (see link.rs).
//!
//! The engine knows nothing of JavaScript: whatever needs the application (a request, a
//! body chunk, a WebSocket message) becomes a [`NetEvent`] in an [`EventQueue`]; the host
//! drains the queue and answers through [`Net`]'s methods. Hibernatable WebSockets live
//! here whole — their tags, attachments and auto-response — so an object whose only ties
//! are sockets can leave the JavaScript heap.

mod connection;
mod events;
mod http_server;
mod idle;
mod limits;
mod link;
mod request_body;
mod request_checks;
mod response_body;
mod runtime;
mod sockets;
mod websocket;

pub use events::{BodyStart, EventQueue, IncomingRequest, NetEvent, Payload};
pub use http_server::{Net, NetError, ResponseStart};
pub use limits::ServerLimits;
pub use response_body::WriteOutcome;
pub use sockets::{AutoResponse, SocketError, MAX_HIBERNATABLE_SOCKETS};
pub use websocket::{HostConnection, HostSocket};
