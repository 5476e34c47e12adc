//! One WebSocket connection of our server: frames in, frames out, and the answers the
//! runtime gives by itself — protocol pongs, the reply to a Close, and the object's
//! auto-response — none of which wakes the application.

use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::mpsc::UnboundedReceiver;
use tokio_tungstenite::tungstenite::error::{CapacityError, Error as WsError};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use super::events::{EventQueue, NetEvent, Payload};
use super::sockets::{Outgoing, SocketShared, Sockets};

/// Cloudflare's limit on a received message.
pub const MAX_MESSAGE_SIZE: usize = 32 << 20;

/// Cloudflare's words when a peer vanishes without a Close frame.
pub const DISCONNECTED: &str = "WebSocket disconnected without sending Close frame.";

/// Reads and discards until the peer closes, goes quiet for a moment, or 5 s have passed.
async fn drain<S: AsyncRead + Unpin>(io: &mut S) {
    let mut buffer = vec![0u8; 64 * 1024];
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        while let Ok(Ok(n)) = tokio::time::timeout(Duration::from_millis(250), io.read(&mut buffer)).await {
            if n == 0 {
                break;
            }
        }
    })
    .await;
}

fn config() -> WebSocketConfig {
    // Small read buffers: thousands of idle sockets should cost little (tungstenite
    // allocates the read buffer eagerly). Writes go out at once: a message is sent when
    // the application sends it, as on Cloudflare.
    WebSocketConfig::default()
        .read_buffer_size(4096)
        .write_buffer_size(0)
        .max_message_size(Some(MAX_MESSAGE_SIZE))
        .max_frame_size(Some(MAX_MESSAGE_SIZE))
}

pub(crate) async fn serve(
    upgrade: OnUpgrade,
    shared: Arc<SocketShared>,
    mut outgoing: UnboundedReceiver<Outgoing>,
    queue: Arc<EventQueue>,
    sockets: Arc<Sockets>,
) {
    let socket = shared.id;
    let closed = |code: u16, reason: String, clean: bool| NetEvent::SocketClosed { socket, group: shared.group_id(), code, reason, clean };
    let io = match upgrade.await {
        Ok(upgraded) => TokioIo::new(upgraded),
        Err(_) => {
            sockets.ended(socket);
            queue.push(closed(1006, DISCONNECTED.into(), false));
            return;
        }
    };
    let stream = WebSocketStream::from_raw_socket(io, Role::Server, Some(config())).await;
    let (mut sink, mut incoming) = stream.split();
    let mut reported_close = false;
    loop {
        tokio::select! {
            command = outgoing.recv() => match command {
                Some(Outgoing::Message(message)) => {
                    // A failed write shows up as the read side ending.
                    let _ = sink.send(message).await;
                }
                Some(Outgoing::Close(frame)) => {
                    // The peer's echo arrives as a Close frame below.
                    let _ = sink.send(Message::Close(frame)).await;
                }
                None => break, // released by the application
            },
            frame = incoming.next() => match frame {
                Some(Ok(Message::Text(text))) => {
                    if let Some(reply) = shared.auto_reply(&text) {
                        let _ = sink.send(Message::Text(reply.into())).await;
                    } else {
                        queue.push(NetEvent::SocketMessage { socket, group: shared.group_id(), data: Payload::Text(text.as_str().to_owned()) });
                    }
                }
                Some(Ok(Message::Binary(data))) => {
                    queue.push(NetEvent::SocketMessage { socket, group: shared.group_id(), data: Payload::Binary(data) });
                }
                Some(Ok(Message::Close(frame))) => {
                    // tungstenite queues the answering Close itself; send it now.
                    let _ = sink.flush().await;
                    let (code, reason) = match frame {
                        Some(f) => (u16::from(f.code), f.reason.as_str().to_owned()),
                        None => (1005, String::new()),
                    };
                    if !reported_close {
                        reported_close = true;
                        sockets.ended(socket);
                        queue.push(closed(code, reason, true));
                    }
                }
                Some(Ok(_)) => {
                    // Ping: the pong is queued by tungstenite; send it now.
                    let _ = sink.flush().await;
                }
                Some(Err(WsError::Capacity(CapacityError::MessageTooLong { size, max_size }))) => {
                    let message = format!("WebSocket message of {size} bytes is larger than the limit of {max_size} bytes.");
                    let frame = CloseFrame { code: CloseCode::Size, reason: "Message too big".into() };
                    let _ = sink.send(Message::Close(Some(frame))).await;
                    if !reported_close {
                        reported_close = true;
                        sockets.ended(socket);
                        queue.push(NetEvent::SocketError { socket, group: shared.group_id(), message });
                    }
                    // The peer is still sending the oversized message. Cutting the
                    // connection now would make its kernel discard our Close (the peer
                    // would see 1006): read and drop what it sends until it goes quiet.
                    if let Ok(mut stream) = sink.reunite(incoming) {
                        drain(stream.get_mut()).await;
                    }
                    break;
                }
                Some(Err(_)) | None => break,
            },
        }
    }
    if !reported_close {
        sockets.ended(socket);
        queue.push(closed(1006, DISCONNECTED.into(), false));
    }
}
